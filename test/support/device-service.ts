// The whole device service against the test broker: it lives in the dev stack (the benchmarks use it).
export {
  clearSchedule,
  publishSchedule,
  type StartedService,
  startDeviceService,
  stopDeviceServices,
} from '../../scripts/devstack/device-service.js';
