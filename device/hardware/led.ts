// What the LEDs say. The viewing LED is lit solid exactly while someone views; every other signal on
// it is a short blink pattern that always ends dark and never plays during a view, so a resident can
// trust that "lit" means "watched". An optional privacy LED shows privacy mode steadily.
import type { Logger } from 'pino';
import { systemTimers, type Timers } from '../clock/clock.js';
import type { OutputPin, TimerDeps } from './types.js';

export interface BlinkStep {
  on: boolean;
  ms: number;
}

export const ACK_BLINK_MS = 100;
export const STATUS_BLINK_MS = 250;

function blinks(count: number, ms: number): BlinkStep[] {
  return Array.from({ length: count }, () => [
    { on: true, ms },
    { on: false, ms },
  ]).flat();
}

/** Acknowledges a privacy toggle: two quick blinks for "privacy on", one for "privacy off". Ends dark. */
export function acknowledgePattern(privacyOn: boolean, blinkMs = ACK_BLINK_MS): BlinkStep[] {
  return blinks(privacyOn ? 2 : 1, blinkMs);
}

/** A status code as a count of slower blinks (long press). Ends dark. */
export function statusPattern(code: number, blinkMs = STATUS_BLINK_MS): BlinkStep[] {
  return blinks(code, blinkMs);
}

export interface LedControllerDeps extends TimerDeps {
  viewingLed: OutputPin;
  privacyLed?: OutputPin | undefined;
  log: Logger;
}

interface RunningPattern {
  cancelled: boolean;
  timer: unknown | undefined;
  wake: () => void;
}

export class LedController {
  readonly #viewingLed: OutputPin;
  readonly #privacyLed: OutputPin | undefined;
  readonly #log: Logger;
  readonly #timers: Pick<Timers, 'setTimeout' | 'clearTimeout'>;
  #viewing = false;
  #fault = false;
  #closed = false;
  #pattern: RunningPattern | undefined;
  // Viewing-LED writes go out one after another: two sysfs writes in flight at once may land in
  // either order, and the last one requested must be the one that sticks.
  #queue: Promise<void> = Promise.resolve();

  constructor(deps: LedControllerDeps) {
    this.#viewingLed = deps.viewingLed;
    this.#privacyLed = deps.privacyLed;
    this.#log = deps.log;
    this.#timers = deps.timers ?? systemTimers;
  }

  /** True if the last write to the viewing LED failed. */
  get fault(): boolean {
    return this.#fault;
  }

  /**
   * Lights the viewing LED solid (or turns it off). Cancels any blink pattern first. Rejects if the
   * LED could not be driven: the caller must then treat the LED as faulty (and not stream unlit).
   */
  async setViewing(on: boolean): Promise<void> {
    if (this.#closed) {
      if (on) throw new Error('LED controller is closed');
      return;
    }
    this.#viewing = on;
    this.#cancelPattern();
    await this.#writeViewing(on);
  }

  /**
   * Shows a privacy change: steadily on the privacy LED if there is one, otherwise as an acknowledge
   * blink on the viewing LED (skipped while a view is active). Never rejects; failures are logged.
   * Resolves when the pattern has finished or was cancelled.
   */
  async showPrivacy(on: boolean): Promise<void> {
    if (this.#closed) return;
    if (this.#privacyLed === undefined) return this.#play(acknowledgePattern(on), 'privacy acknowledge');
    await this.#privacyLed.write(on).catch((err: unknown) => {
      this.#log.error({ err, on }, 'privacy LED write failed');
    });
  }

  /** Blinks `code` times on the viewing LED (skipped while a view is active). Never rejects. */
  async showStatus(code: number): Promise<void> {
    if (this.#closed) return;
    if (!Number.isInteger(code) || code < 1 || code > 10) {
      this.#log.warn({ code }, 'status code cannot be blinked');
      return;
    }
    return this.#play(statusPattern(code), 'status');
  }

  /** Stops any pattern and turns the LEDs off. Idempotent; never rejects. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#viewing = false;
    this.#cancelPattern();
    await this.#writeViewing(false).catch((err: unknown) => {
      this.#log.error({ err }, 'could not turn viewing LED off on close');
    });
    await this.#privacyLed?.write(false).catch((err: unknown) => {
      this.#log.error({ err }, 'could not turn privacy LED off on close');
    });
  }

  #writeViewing(on: boolean): Promise<void> {
    const write = this.#queue
      .then(() => this.#viewingLed.write(on))
      .then(
        () => {
          this.#fault = false;
        },
        (err: unknown) => {
          this.#fault = true;
          throw err;
        },
      );
    this.#queue = write.catch(() => undefined);
    return write;
  }

  // Whoever cancels a pattern sets the LED's final state next (setViewing, close or a new pattern);
  // the write queue makes that write land after any step still in flight.
  #cancelPattern(): void {
    const pattern = this.#pattern;
    if (pattern === undefined) return;
    this.#pattern = undefined;
    pattern.cancelled = true;
    if (pattern.timer !== undefined) this.#timers.clearTimeout(pattern.timer);
    pattern.wake();
  }

  async #play(steps: readonly BlinkStep[], what: string): Promise<void> {
    this.#cancelPattern();
    if (this.#viewing) {
      this.#log.debug({ what }, 'blink skipped: a view is active');
      return;
    }
    const pattern: RunningPattern = { cancelled: false, timer: undefined, wake: () => undefined };
    this.#pattern = pattern;
    try {
      for (const step of steps) {
        if (pattern.cancelled) return;
        await this.#writeViewing(step.on);
        if (pattern.cancelled) return;
        await new Promise<void>((resolve) => {
          pattern.wake = resolve;
          pattern.timer = this.#timers.setTimeout(resolve, step.ms);
        });
      }
    } catch (err) {
      this.#log.error({ err, what }, 'viewing LED write failed during blink');
      if (!pattern.cancelled) await this.#writeViewing(false).catch(() => undefined);
    } finally {
      if (this.#pattern === pattern) this.#pattern = undefined;
    }
  }
}
