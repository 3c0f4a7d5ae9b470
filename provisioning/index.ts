// Public surface of the provisioning concern: the technician's CLI as a function, for tests and tools.
export { type CliDeps, type CliIo, defaultConfigDir, runCli } from './commands.js';
export type { CheckId, CheckResult, CheckStatus, SelfTestReport } from './selftest.js';
export { checkIds } from './selftest.js';
