// Configuration: schema and loading. Only the composition root calls loadConfig.
export { describeIssues, loadConfig, parseConfig, type ConfigResult } from './load.js';
export { Config, type ConfigInput } from './schema.js';
