// How a look's media settings come from the device config. Kept apart from the media itself so that
// the service can build them without loading werift (see process-media.ts).
import type { CameraControls, Config } from '../config/index.js';
import type { EncoderKind, PeerOptions, VideoSource } from '../video/index.js';

export interface WebRtcMediaSettings {
  camera: {
    source: VideoSource;
    width: number;
    height: number;
    fps: number;
    encoder: EncoderKind;
    bitrateKbps?: number | undefined;
    /** Set on a V4L2 camera after every open; absent: the camera is left as it is. */
    controls?: CameraControls | undefined;
    /** For the controls' day and night (the config's timeZone). */
    timeZone?: string | undefined;
  };
  /** Keyframe interval in frames; default one second's worth. */
  gopFrames?: number | undefined;
  peer?: PeerOptions | undefined;
}

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
      controls: camera.controls,
      timeZone: config.timeZone,
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
