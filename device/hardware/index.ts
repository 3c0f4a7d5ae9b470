// Public surface of the hardware concern: open the GPIO (simulated or real), then build the privacy
// button and the LED controller on top of its pins. The onoff adapter is imported only when asked for,
// so tests and the demo never load onoff or its native epoll module.
import type { Logger } from 'pino';
import { SimGpio } from './sim-gpio.js';
import type { Gpio, GpioPins } from './types.js';

export {
  DEFAULT_DEBOUNCE_MS,
  DEFAULT_LONG_PRESS_MS,
  PrivacyButton,
  type PrivacyButtonDeps,
  type PrivacyButtonEvents,
} from './button.js';
export { type GpioChip, resolveMainChip, sysfsNumber } from './chip-base.js';
export {
  acknowledgePattern,
  type BlinkStep,
  LedController,
  type LedControllerDeps,
  statusPattern,
} from './led.js';
export {
  defaultNow,
  type LedEvent,
  type LedName,
  SimGpio,
  type SimGpioOptions,
  SimInputPin,
  SimOutputPin,
  type WriteFault,
} from './sim-gpio.js';
export type { Gpio, GpioPins, InputPin, OutputPin, TimerDeps } from './types.js';

export interface OpenGpioOptions {
  kind: 'sim' | 'onoff';
  pins: GpioPins;
  /** onoff only: label of the GPIO controller, when the built-in list of Pi controllers is not right. */
  chipLabel?: string | undefined;
  /** onoff only: where to look for gpiochip directories (default `/sys/class/gpio`). */
  sysfsRoot?: string | undefined;
  /** sim only: clock for the LED event log. */
  now?: (() => number) | undefined;
  log: Logger;
}

/** Opens the pins. For `kind: 'sim'` the result is a `SimGpio` the caller can press and inspect. */
export function openGpio(options: OpenGpioOptions & { kind: 'sim' }): Promise<SimGpio>;
export function openGpio(options: OpenGpioOptions): Promise<Gpio>;
export async function openGpio(options: OpenGpioOptions): Promise<Gpio> {
  switch (options.kind) {
    case 'sim':
      return new SimGpio({ pins: options.pins, now: options.now, log: options.log });
    case 'onoff': {
      const { openOnoffGpio } = await import('./onoff-gpio.js');
      return openOnoffGpio(options);
    }
  }
}
