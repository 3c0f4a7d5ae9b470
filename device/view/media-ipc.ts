// The messages between the service (ProcessMedia) and its media process (media-child.ts), over the
// IPC channel of node:child_process. Types only: importing this file loads nothing.
import type { ControlsReport } from '../camera/controls.js';
import type { MediaLook } from '../core/look.js';
import type { IceCandidate } from '../protocol/signalling.js';
import type { ViewMode } from '../protocol/tokens.js';
import type { RtpSourceStats, VideoTimings } from '../video/index.js';
import type { WebRtcMediaSettings } from './settings.js';

export type ToChild =
  | {
      type: 'init';
      settings: WebRtcMediaSettings;
      ffmpegPath: string | undefined;
      logLevel: string;
      /** The parent's pid: if it is already gone when the child arms its death signal, the child exits. */
      parentPid: number;
      /**
       * A stand-by process readies the next look's encoder for this view mode (held before the camera
       * opens), its gate in `dir`: a private directory that the parent removes once the group is gone.
       */
      prepare?: { viewMode: ViewMode; dir: string } | undefined;
    }
  | { type: 'start'; look: MediaLook; gateOpen: boolean }
  /** The child's own copy of the frame gate; the authoritative gate is that the parent kills it. */
  | { type: 'gate'; sessionId: string; open: boolean }
  | { type: 'answer'; sessionId: string; sdp: string }
  | { type: 'candidate'; sessionId: string; candidate: IceCandidate }
  | { type: 'stop'; sessionId: string };

export type FromChild =
  /** werift is loaded and the child waits for a look. */
  | { type: 'ready' }
  | { type: 'offer'; sessionId: string; sdp: string }
  | { type: 'candidate'; sessionId: string; candidate: IceCandidate }
  | { type: 'streaming'; sessionId: string; timings: VideoTimings; stats: RtpSourceStats }
  | { type: 'failed'; sessionId: string; reason: 'camera-failure' | 'peer-gone'; detail: string }
  /** The camera's controls were set and read back, at a camera open of this look. */
  | { type: 'camera-controls'; sessionId: string; report: ControlsReport }
  /** The look's video session exists; for tests and benches. */
  | { type: 'video'; sessionId: string; encoderPid: number | undefined; timings: VideoTimings }
  /** The look's media is down (stats undefined when it never got that far); the child exits next. */
  | {
      type: 'stopped';
      sessionId: string;
      stats: RtpSourceStats | undefined;
      timings: VideoTimings | undefined;
    };
