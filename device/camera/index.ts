// Camera controls: the V4L2 control ioctls behind a small port, and the plan-apply-read-back of the
// controls the config asks for. The media process applies them after every camera open.
export {
  applyControls,
  type ControlOutcome,
  type ControlPlan,
  type ControlProfile,
  type ControlStatus,
  type ControlsReport,
  controlIds,
  describeControls,
  isNight,
  type ListedControl,
  planControls,
  summarise,
  verifyControls,
  type WantedControl,
} from './controls.js';
export { koffiV4l2Port } from './koffi-port.js';
export { CameraControlsStatus, type CameraControlsStatusEvents } from './status.js';
export * from './v4l2.js';
