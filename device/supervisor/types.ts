// The seams the supervisor drives: the viewing LED, the media pipeline, persistence and time.
import type { EndReason } from '../core/reasons.js';
import type { ViewMode } from '../protocol/tokens.js';

/** The viewing LED. `setViewing` rejects when the LED could not be driven: a fault. */
export interface ViewingLed {
  setViewing(on: boolean): Promise<void>;
}

export interface ViewSession {
  sessionId: string;
  operatorId: string;
  requestId: string;
  viewMode: ViewMode;
  endsAtMs: number;
  /** Checked before every media packet leaves: false means drop it. The last line of the invariant. */
  allowFrames(): boolean;
}

/**
 * The media pipeline behind a view (camera, encoder, WebRTC peer). `start` resolves once media may flow
 * or rejects; it must give up when `signal` aborts. `stop` stops media and releases the camera; idempotent.
 * Failures after start are reported back with `Supervisor.endView(sessionId, reason)`.
 */
export interface ViewPort {
  start(session: ViewSession, signal: AbortSignal): Promise<void>;
  stop(sessionId: string, reason: EndReason): Promise<void>;
}

export interface Timers {
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  setInterval(callback: () => void, ms: number): unknown;
  clearInterval(handle: unknown): void;
}

export const systemTimers: Timers = {
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
  setInterval: (callback, ms) => setInterval(callback, ms),
  clearInterval: (handle) => clearInterval(handle as NodeJS.Timeout),
};

/** A view port that moves no media: for the core demo and tests of the rules alone. */
export const noMediaView: ViewPort = {
  start: async () => undefined,
  stop: async () => undefined,
};
