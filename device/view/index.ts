// Public surface of the view concern: the WebRTC media of a look, in this process (WebRtcMedia, for
// tests) or in a killable process of its own (ProcessMedia, the service), and how its settings come from
// the device config. Importing this file loads werift; the service imports process-media.js and
// settings.js directly so that it does not.
export {
  MediaStuckError,
  type MediaView,
  ProcessMedia,
  type ProcessMediaDeps,
  type ProcessMediaEvents,
  runningInGroup,
} from './process-media.js';
export { mediaSettingsFromConfig, type WebRtcMediaSettings } from './settings.js';
export {
  WebRtcMedia,
  type WebRtcMediaDeps,
  type WebRtcMediaEvents,
} from './webrtc-media.js';
