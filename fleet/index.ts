// The fleet service for operations: its public surface.
export { startFleetForDemo } from './demo.js';
export { type Fleet, type FleetConfig, startFleet } from './service.js';
