// The privacy button's logic over a raw input pin: act on the first edge at once (privacy must not
// wait for a debounce delay), ignore contact bounce after it, and report a long press separately.
import { EventEmitter } from 'node:events';
import { systemTimers, type Timers } from '../clock/clock.js';
import { emitSafely, type Logger } from '../log/index.js';
import type { InputPin, TimerDeps } from './types.js';

export type PrivacyButtonEvents = {
  /** The button went down. Fired on the first edge, with no debounce delay: toggle privacy here. */
  press: [];
  /** Held for `longPressMs`: means "show status". It does not toggle privacy a second time. */
  longPress: [];
  /** The button came back up after a press. */
  release: [{ heldMs: number }];
};

export interface PrivacyButtonDeps extends TimerDeps {
  input: InputPin;
  log: Logger;
  now?: (() => number) | undefined;
  debounceMs?: number | undefined;
  longPressMs?: number | undefined;
}

export const DEFAULT_DEBOUNCE_MS = 50;
export const DEFAULT_LONG_PRESS_MS = 3000;

export class PrivacyButton extends EventEmitter<PrivacyButtonEvents> {
  readonly #input: InputPin;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #timers: Pick<Timers, 'setTimeout' | 'clearTimeout'>;
  readonly #debounceMs: number;
  readonly #longPressMs: number;
  #unwatch: (() => void) | undefined;
  /** The debounced state, as last reported to listeners. */
  #pressed = false;
  /** The level of the latest raw edge, bounces included. */
  #rawPressed = false;
  #pressedAtMs = 0;
  #settleTimer: unknown | undefined;
  #longPressTimer: unknown | undefined;

  constructor(deps: PrivacyButtonDeps) {
    super();
    this.#input = deps.input;
    this.#log = deps.log;
    this.#now = deps.now ?? Date.now;
    this.#timers = deps.timers ?? systemTimers;
    this.#debounceMs = deps.debounceMs ?? DEFAULT_DEBOUNCE_MS;
    this.#longPressMs = deps.longPressMs ?? DEFAULT_LONG_PRESS_MS;
  }

  /** True while the button is (debounced) down. */
  get pressed(): boolean {
    return this.#pressed;
  }

  /** Starts listening. Assumes the button is up; if it is held at start, its release is ignored. */
  start(): void {
    this.#unwatch ??= this.#input.watch((pressed) => this.#onEdge(pressed));
  }

  stop(): void {
    this.#unwatch?.();
    this.#unwatch = undefined;
    this.#settleTimer = this.#clear(this.#settleTimer);
    this.#longPressTimer = this.#clear(this.#longPressTimer);
  }

  #onEdge(pressed: boolean): void {
    this.#rawPressed = pressed;
    // Inside the debounce window edges are bounce; the window's end looks at where the contact settled.
    if (this.#settleTimer === undefined) this.#accept(pressed);
  }

  #accept(pressed: boolean): void {
    if (pressed === this.#pressed) return;
    this.#pressed = pressed;
    this.#settleTimer = this.#timers.setTimeout(() => {
      this.#settleTimer = undefined;
      this.#accept(this.#rawPressed);
    }, this.#debounceMs);

    if (pressed) {
      this.#pressedAtMs = this.#now();
      this.#longPressTimer = this.#timers.setTimeout(() => {
        this.#longPressTimer = undefined;
        this.#emitSafely('longPress');
      }, this.#longPressMs);
      this.#emitSafely('press');
    } else {
      this.#longPressTimer = this.#clear(this.#longPressTimer);
      this.#emitSafely('release', { heldMs: this.#now() - this.#pressedAtMs });
    }
  }

  #clear(handle: unknown | undefined): undefined {
    if (handle !== undefined) this.#timers.clearTimeout(handle);
    return undefined;
  }

  // One bad handler neither kills the process nor keeps the others from hearing about the press.
  #emitSafely<K extends keyof PrivacyButtonEvents & string>(event: K, ...args: PrivacyButtonEvents[K]): void {
    emitSafely<PrivacyButtonEvents, K>(this, this.#log, event, ...args);
  }
}
