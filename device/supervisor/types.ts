// The seams the supervisor drives: the viewing LED, the media of a look, and persistence.
import type { MediaLook } from '../core/look.js';
import type { IceCandidate } from '../protocol/signalling.js';
import type { ViewMode } from '../protocol/tokens.js';
import type { Counters, PrivacyState, ReplayCache, StoredSchedule } from '../state/store.js';

/** The viewing LED. `setViewing` rejects when the LED could not be driven: a fault. */
export interface ViewingLed {
  setViewing(on: boolean): Promise<void>;
}

export interface Persistence {
  save(key: 'privacy', value: PrivacyState): Promise<void>;
  save(key: 'schedule', value: StoredSchedule): Promise<void>;
  save(key: 'replay', value: ReplayCache): Promise<void>;
  save(key: 'counters', value: Counters): Promise<void>;
}

/** What the media of a look reports back. Calls after `stop` are ignored by the supervisor. */
export interface MediaSink {
  /** The device's SDP offer, to be sent to the console. */
  offer(sdp: string): void;
  /** A local ICE candidate found after the offer. */
  candidate(candidate: IceCandidate): void;
  /** The first packet left for the console. */
  streaming(): void;
  /** The media cannot go on. */
  failed(reason: 'camera-failure' | 'peer-gone', detail: string): void;
}

/** A look as the media sees it, with the frame gate it must check before every packet leaves. */
export interface MediaRequest extends MediaLook {
  allowFrames(): boolean;
}

/**
 * `stop` could not confirm that the media is gone (a process that cannot be killed or reaped): something
 * of the look may still send. The supervisor keeps the LED lit, raises `camera-failure` and starts no
 * view; the service withholds the watchdog so that systemd restarts it.
 */
export class MediaStuckError extends Error {
  override readonly name = 'MediaStuckError';
}

/**
 * The media of a look (camera, encoder, WebRTC peer). The supervisor has already checked every answer
 * and candidate it passes on. `stop` resolves once nothing of the look can send any more; it rejects
 * with MediaStuckError if that cannot be confirmed (any other rejection counts as stopped).
 */
export interface MediaPort {
  start(look: MediaRequest, sink: MediaSink): void;
  applyAnswer(sessionId: string, sdp: string): void;
  addCandidate(sessionId: string, candidate: IceCandidate): void;
  stop(sessionId: string): Promise<void>;
  /**
   * Optional: keep the media ready for a look soon (a window is open or about to open), or not; the
   * view mode is that window's.
   */
  standBy?(on: boolean, viewMode?: ViewMode): void;
}

/** Media that moves nothing and "streams" at once: for the rules alone (tests, the core bench). */
export const instantMedia: MediaPort = {
  start: (_look, sink) => queueMicrotask(() => sink.streaming()),
  applyAnswer: () => undefined,
  addCandidate: () => undefined,
  stop: async () => undefined,
};
