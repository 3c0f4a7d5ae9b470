import type { Timers } from '../clock/clock.js';
// The small GPIO surface the service needs: one output per LED, one input for the privacy button.
// Two adapters implement it: onoff on a Pi, and a simulated one for tests and the demo.

/** One digital output. `write` rejects if the pin could not be driven (a fault the caller must act on). */
export interface OutputPin {
  write(on: boolean): Promise<void>;
  /** Level last written successfully (logical: true = lit, after active-low is applied). */
  readonly value: boolean;
}

/** One digital input with edge events. `pressed` is logical (after active-low is applied). */
export interface InputPin {
  read(): Promise<boolean>;
  /** Called on every edge the hardware reports (bounces included); returns an unsubscribe function. */
  watch(listener: (pressed: boolean) => void): () => void;
}

export interface Gpio {
  readonly viewingLed: OutputPin;
  /** Present only when a privacy LED is configured. */
  readonly privacyLed: OutputPin | undefined;
  readonly button: InputPin;
  /** Releases every pin; idempotent. Leaves LEDs off. */
  close(): Promise<void>;
}

export interface GpioPins {
  viewingLed: { pin: number; activeLow: boolean };
  privacyLed?: { pin: number; activeLow: boolean } | undefined;
  button: { pin: number; activeLow: boolean };
}

/**
 * Timers are injected (the service's one clock) so tests can drive them; the default looks the
 * globals up at call time, so `vi.useFakeTimers()` installed after construction still takes effect.
 */
export interface TimerDeps {
  timers?: Pick<Timers, 'setTimeout' | 'clearTimeout'> | undefined;
}
