// Clock steps: the wall clock jumping against the monotonic clock. Between two readings both clocks
// should advance by the same amount (NTP slewing changes the rate by at most 0.05 %); a difference
// beyond a threshold means the wall clock was set (by NTP stepping, `date -s`, a bad time source).
// Everything decided on wall-clock time (grant validity, windows, the floor) must then be checked
// again, and a running view ends. The comparison is a pure function; the watcher polls it.
import { EventEmitter } from 'node:events';
import type { Logger } from '../log/index.js';
import type { Timers } from './clock.js';
import { isoTime } from './format.js';

/** One reading of both clocks, taken together. */
export interface ClockReading {
  wallMs: number;
  monoMs: number;
}

export interface ClockStep {
  direction: 'forward' | 'back';
  /** Signed size of the step: wall-clock progress minus monotonic progress (negative: set back). */
  stepMs: number;
  /** The wall clock at the reading before the step and at the reading that found it. */
  fromWallMs: number;
  toWallMs: number;
  /** Monotonic time between the two readings. */
  elapsedMs: number;
}

/** Pure: did the wall clock step between two readings, by more than `thresholdMs` either way? */
export function detectStep(
  previous: ClockReading,
  current: ClockReading,
  thresholdMs: number,
): ClockStep | undefined {
  const elapsedMs = current.monoMs - previous.monoMs;
  const stepMs = current.wallMs - previous.wallMs - elapsedMs;
  // Readings that are not numbers cannot be compared; the clock check refuses such a wall clock.
  if (!Number.isFinite(stepMs) || Math.abs(stepMs) <= thresholdMs) return undefined;
  return {
    direction: stepMs > 0 ? 'forward' : 'back',
    stepMs,
    fromWallMs: previous.wallMs,
    toWallMs: current.wallMs,
    elapsedMs,
  };
}

export interface StepWatcherDeps {
  /** The wall clock, epoch ms. */
  now(): number;
  /** A monotonic clock in ms (performance.now), which no one can set. */
  monotonicNow(): number;
  timers: Timers;
  log: Logger;
  /** Default 2 s. */
  thresholdMs?: number;
  /** How often the clocks are compared; default 1 s. */
  intervalMs?: number;
}

export type StepWatcherEvents = { step: [ClockStep] };

/**
 * Compares the clocks every interval and emits `step` for each step found. poll() compares at once
 * (for example just before a decision), so a step is never older than the last poll. A listener that
 * throws is logged, not passed on.
 */
export class StepWatcher extends EventEmitter<StepWatcherEvents> {
  readonly #deps: StepWatcherDeps;
  readonly #log: Logger;
  #last: ClockReading | undefined;
  #timer: unknown;

  constructor(deps: StepWatcherDeps) {
    super();
    this.#deps = deps;
    this.#log = deps.log.child({ mod: 'clock' });
  }

  start(): void {
    if (this.#timer !== undefined) return;
    this.#last = this.#read();
    this.#timer = this.#deps.timers.setInterval(() => {
      this.poll();
    }, this.#deps.intervalMs ?? 1000);
  }

  /** Idempotent. */
  stop(): void {
    if (this.#timer === undefined) return;
    this.#deps.timers.clearInterval(this.#timer);
    this.#timer = undefined;
    this.#last = undefined;
  }

  /** Compares the clocks now; emits and returns the step if there was one since the last comparison. */
  poll(): ClockStep | undefined {
    const current = this.#read();
    const previous = this.#last;
    this.#last = current;
    if (!previous) return undefined;
    const step = detectStep(previous, current, this.#deps.thresholdMs ?? 2000);
    if (!step) return undefined;
    this.#log.warn(
      {
        direction: step.direction,
        stepS: Math.round(step.stepMs / 100) / 10,
        from: isoTime(step.fromWallMs),
        to: isoTime(step.toWallMs),
      },
      'wall clock stepped',
    );
    for (const listener of this.listeners('step')) {
      try {
        listener(step);
      } catch (error) {
        this.#log.error({ err: error }, 'clock step listener failed');
      }
    }
    return step;
  }

  #read(): ClockReading {
    return { wallMs: this.#deps.now(), monoMs: this.#deps.monotonicNow() };
  }
}
