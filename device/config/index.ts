// Configuration: schema and loading. Only the composition root calls loadConfig.
export { type ConfigResult, describeIssues, loadConfig, parseConfig } from './load.js';
export {
  type CameraControls,
  CameraSource,
  Config,
  type ConfigInput,
  type ControlName,
  ControlValues,
  controlNames,
  dayControls,
  nightControls,
} from './schema.js';
