// Prometheus metrics of the fleet.
export { createMetrics, type FleetMetrics } from './metrics.js';
