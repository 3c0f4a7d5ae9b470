// Health: what the device is (`info`) and how it is (`health`), for operations.
export {
  type CollectOptions,
  collectHealth,
  collectInfo,
  type ServiceSnapshot,
  type SystemReaders,
  systemReaders,
} from './collect.js';
export { configHash, type HealthConnection, HealthMonitor, type HealthMonitorDeps } from './monitor.js';
export * from './readers.js';
