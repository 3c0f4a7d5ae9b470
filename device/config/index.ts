// Configuration: schema and loading. Only the composition root calls loadConfig.
export { type ConfigResult, describeIssues, loadConfig, parseConfig } from './load.js';
export { Config, type ConfigInput } from './schema.js';
