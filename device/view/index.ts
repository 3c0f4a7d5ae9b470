// Public surface of the view concern: the WebRTC media of a look, and how its settings come from the
// device config.
import type { Config } from '../config/index.js';
import type { WebRtcMediaSettings } from './webrtc-media.js';

export {
  WebRtcMedia,
  type WebRtcMediaDeps,
  type WebRtcMediaEvents,
  type WebRtcMediaSettings,
} from './webrtc-media.js';

/** The camera and ICE settings of a look's media, from the validated config. */
export function mediaSettingsFromConfig(config: Config): WebRtcMediaSettings {
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
