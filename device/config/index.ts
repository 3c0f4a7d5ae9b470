// Configuration: schema and loading. Only the composition root calls loadConfig.
export { type ConfigResult, describeIssues, loadConfig, parseConfig } from './load.js';
export { CameraSource, Config, type ConfigInput } from './schema.js';
