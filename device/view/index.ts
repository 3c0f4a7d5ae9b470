// Public surface of the view concern: the WebRTC view port the supervisor drives, and how its settings
// come from the device config.
import type { Config } from '../config/index.js';
import type { WebRtcViewSettings } from './webrtc-port.js';

export {
  DEFAULT_NEGOTIATION_TIMEOUT_MS,
  type SignallingViewPort,
  type ViewWiring,
  type WebRtcViewDeps,
  type WebRtcViewEvents,
  WebRtcViewPort,
  type WebRtcViewSettings,
} from './webrtc-port.js';

/** The camera and ICE settings of a view, from the validated config. */
export function viewSettingsFromConfig(config: Config): WebRtcViewSettings {
  const { camera, webrtc } = config;
  return {
    camera: {
      source: camera.source,
      width: camera.width,
      height: camera.height,
      fps: camera.fps,
      encoder: camera.encoder,
    },
    peer: {
      iceServers: webrtc.iceServers.map((server) => ({
        urls: server.urls,
        ...(server.username === undefined ? {} : { username: server.username }),
        ...(server.credential === undefined ? {} : { credential: server.credential }),
      })),
      icePortRange: webrtc.icePortRange,
    },
  };
}
