// Simulated GPIO for tests and the demo: a button that tests press (with bounce), LEDs they can read,
// a write fault they can inject on the viewing LED, and a timestamped log of every LED change so a
// test can line LED-on times up against video packet times.
import type { Logger } from 'pino';
import type { Gpio, GpioPins, InputPin, OutputPin } from './types.js';

export type LedName = 'viewing' | 'privacy';

/** One change of an LED's lit state, stamped with the injected clock. */
export interface LedEvent {
  atMs: number;
  led: LedName;
  on: boolean;
}

/** `next`: only the next write rejects; `all`: every write rejects until set back to `none`. */
export type WriteFault = 'none' | 'next' | 'all';

/** Wall-clock milliseconds with sub-millisecond resolution, comparable across modules in one process. */
export const defaultNow = (): number => performance.timeOrigin + performance.now();

export class SimOutputPin implements OutputPin {
  readonly #name: LedName;
  readonly #record: (event: LedEvent) => void;
  readonly #now: () => number;
  #value = false;
  #fault: WriteFault = 'none';
  #closed = false;

  constructor(name: LedName, now: () => number, record: (event: LedEvent) => void) {
    this.#name = name;
    this.#now = now;
    this.#record = record;
  }

  get value(): boolean {
    return this.#value;
  }

  injectFault(fault: WriteFault): void {
    this.#fault = fault;
  }

  // The level changes synchronously at call time (before the returned promise settles), so the
  // event log orders writes exactly as callers issued them.
  async write(on: boolean): Promise<void> {
    if (this.#closed) throw new Error(`simulated ${this.#name} LED is closed`);
    if (this.#fault !== 'none') {
      if (this.#fault === 'next') this.#fault = 'none';
      throw new Error(`simulated write fault on ${this.#name} LED`);
    }
    if (on === this.#value) return;
    this.#value = on;
    this.#record({ atMs: this.#now(), led: this.#name, on });
  }

  /** Turns the LED off if it can and refuses writes from then on. */
  async close(): Promise<void> {
    if (this.#closed) return;
    await this.write(false).catch(() => undefined);
    this.#closed = true;
  }
}

export class SimInputPin implements InputPin {
  readonly #listeners = new Set<(pressed: boolean) => void>();
  readonly #log: Logger | undefined;
  #pressed = false;

  constructor(log?: Logger) {
    this.#log = log;
  }

  get pressed(): boolean {
    return this.#pressed;
  }

  async read(): Promise<boolean> {
    return this.#pressed;
  }

  watch(listener: (pressed: boolean) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Emits one raw edge; successive calls with the same level are allowed, as real contacts produce them. */
  edge(pressed: boolean): void {
    this.#pressed = pressed;
    for (const listener of [...this.#listeners]) {
      // Like the real adapter: a throwing listener is logged, never thrown back into the "hardware".
      try {
        listener(pressed);
      } catch (err) {
        this.#log?.error({ err }, 'button listener threw');
      }
    }
  }

  /** Presses the button: one closing edge followed by `bounces` open/close pairs, all at once. */
  press(bounces = 0): void {
    this.#edges(true, bounces);
  }

  /** Releases the button: one opening edge followed by `bounces` close/open pairs, all at once. */
  release(bounces = 0): void {
    this.#edges(false, bounces);
  }

  #edges(final: boolean, bounces: number): void {
    this.edge(final);
    for (let i = 0; i < bounces; i++) {
      this.edge(!final);
      this.edge(final);
    }
  }

  removeAllListeners(): void {
    this.#listeners.clear();
  }
}

export interface SimGpioOptions {
  /** A privacy LED exists only if `pins.privacyLed` is set (or `privacyLed: true` without pins). */
  pins?: GpioPins | undefined;
  privacyLed?: boolean | undefined;
  now?: (() => number) | undefined;
  log?: Logger | undefined;
}

export class SimGpio implements Gpio {
  readonly viewingLed: SimOutputPin;
  readonly privacyLed: SimOutputPin | undefined;
  readonly button: SimInputPin;
  readonly #events: LedEvent[] = [];
  #closed: Promise<void> | undefined;

  constructor(options: SimGpioOptions = {}) {
    const now = options.now ?? defaultNow;
    const record = (event: LedEvent): void => {
      this.#events.push(event);
    };
    this.viewingLed = new SimOutputPin('viewing', now, record);
    const hasPrivacyLed = options.privacyLed ?? options.pins?.privacyLed !== undefined;
    this.privacyLed = hasPrivacyLed ? new SimOutputPin('privacy', now, record) : undefined;
    this.button = new SimInputPin(options.log);
  }

  /** Every LED change so far, oldest first. */
  get events(): readonly LedEvent[] {
    return this.#events;
  }

  close(): Promise<void> {
    this.#closed ??= (async () => {
      this.button.removeAllListeners();
      await this.viewingLed.close();
      await this.privacyLed?.close();
    })();
    return this.#closed;
  }
}
