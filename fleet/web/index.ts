// The operations page, its API, live updates and metrics over HTTP.
export { FleetWeb, type WebOptions } from './server.js';
