// The whole device service against the test broker: it lives in the dev stack (the benchmarks use it).
export { type StartedService, startDeviceService } from '../../scripts/devstack/device-service.js';
