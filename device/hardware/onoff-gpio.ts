// The real GPIO adapter: the three pins on a Raspberry Pi through `onoff` (sysfs). Kept thin; the
// logic that matters (debounce, long press, blink patterns) lives in button.ts and led.ts and is
// tested against the simulator. `onoff` is loaded lazily so nothing else ever pulls in its native part.

import type { BinaryValue, Direction, Edge, Options } from 'onoff';
import type { Logger } from 'pino';
import { type ChipBaseOptions, resolveMainChip, sysfsNumber } from './chip-base.js';
import type { Gpio, GpioPins, InputPin, OutputPin } from './types.js';

/** The part of onoff's `Gpio` used here; a test can pass a fake class with the same shape. */
export interface OnoffLine {
  read(): Promise<BinaryValue>;
  write(value: BinaryValue): Promise<void>;
  watch(callback: (err: Error | null | undefined, value: BinaryValue) => void): void;
  unwatchAll(): void;
  unexport(): void;
}

export interface OnoffLineClass {
  new (gpio: number, direction: Direction, edge?: Edge, options?: Options): OnoffLine;
  readonly accessible: boolean;
}

/**
 * Direction to export an LED with so it starts dark. The kernel applies `high`/`low` as raw levels,
 * before `active_low` inverts anything, so an active-low LED must start `high` (plain `out` would light it).
 */
export function initialDirection(activeLow: boolean): Direction {
  return activeLow ? 'high' : 'low';
}

const toBit = (on: boolean): BinaryValue => (on ? 1 : 0);

function releaseLine(line: OnoffLine, log: Logger): void {
  try {
    line.unexport();
  } catch (err) {
    log.warn({ err }, 'could not unexport GPIO');
  }
}

class OnoffOutput implements OutputPin {
  readonly #line: OnoffLine;
  #value = false;
  #closed = false;

  constructor(line: OnoffLine) {
    this.#line = line;
  }

  get value(): boolean {
    return this.#value;
  }

  async write(on: boolean): Promise<void> {
    if (this.#closed) throw new Error('GPIO output is closed');
    await this.#line.write(toBit(on));
    this.#value = on;
  }

  async close(log: Logger): Promise<void> {
    if (this.#closed) return;
    await this.write(false).catch((err: unknown) => log.error({ err }, 'could not turn LED off on close'));
    this.#closed = true;
    releaseLine(this.#line, log);
  }
}

class OnoffInput implements InputPin {
  readonly #line: OnoffLine;
  readonly #log: Logger;
  readonly #listeners = new Set<(pressed: boolean) => void>();

  constructor(line: OnoffLine, log: Logger) {
    this.#line = line;
    this.#log = log;
    // One onoff callback fans out to our listeners so a throwing listener never reaches epoll's emitter.
    line.watch((err, value) => {
      if (err) {
        this.#log.warn({ err }, 'button edge read failed');
        return;
      }
      for (const listener of [...this.#listeners]) {
        try {
          listener(value === 1);
        } catch (listenerErr) {
          this.#log.error({ err: listenerErr }, 'button listener threw');
        }
      }
    });
  }

  async read(): Promise<boolean> {
    return (await this.#line.read()) === 1;
  }

  watch(listener: (pressed: boolean) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  close(): void {
    this.#listeners.clear();
    this.#line.unwatchAll();
    releaseLine(this.#line, this.#log);
  }
}

class OnoffGpio implements Gpio {
  readonly viewingLed: OnoffOutput;
  readonly privacyLed: OnoffOutput | undefined;
  readonly button: OnoffInput;
  readonly #log: Logger;
  #closed: Promise<void> | undefined;

  constructor(
    parts: { viewingLed: OnoffOutput; privacyLed: OnoffOutput | undefined; button: OnoffInput },
    log: Logger,
  ) {
    this.viewingLed = parts.viewingLed;
    this.privacyLed = parts.privacyLed;
    this.button = parts.button;
    this.#log = log;
  }

  close(): Promise<void> {
    this.#closed ??= (async () => {
      this.button.close();
      await this.viewingLed.close(this.#log);
      await this.privacyLed?.close(this.#log);
    })();
    return this.#closed;
  }
}

export interface OnoffGpioDeps extends ChipBaseOptions {
  pins: GpioPins;
  log: Logger;
  /** onoff's `Gpio` class; loaded with a dynamic import when not given. */
  Line?: OnoffLineClass | undefined;
}

export async function openOnoffGpio(deps: OnoffGpioDeps): Promise<Gpio> {
  const Line: OnoffLineClass = deps.Line ?? (await import('onoff')).Gpio;
  if (!Line.accessible) {
    throw new Error(
      'GPIO sysfs is not accessible (/sys/class/gpio/export): not a Pi, or user not in group gpio',
    );
  }
  const chip = await resolveMainChip(deps);
  const number = (pin: number): number => sysfsNumber(chip, pin);
  deps.log.info({ chip: chip.name, label: chip.label, base: chip.base }, 'GPIO chip resolved');

  const opened: OnoffLine[] = [];
  const open = (...args: ConstructorParameters<OnoffLineClass>): OnoffLine => {
    const line = new Line(...args);
    opened.push(line);
    return line;
  };
  const output = (pin: { pin: number; activeLow: boolean }): OnoffOutput =>
    new OnoffOutput(
      open(number(pin.pin), initialDirection(pin.activeLow), 'none', { activeLow: pin.activeLow }),
    );

  try {
    const { viewingLed, privacyLed, button } = deps.pins;
    return new OnoffGpio(
      {
        viewingLed: output(viewingLed),
        privacyLed: privacyLed === undefined ? undefined : output(privacyLed),
        // No onoff debounceTimeout: it delays the first edge, and privacy must act on that edge at once.
        button: new OnoffInput(
          open(number(button.pin), 'in', 'both', { activeLow: button.activeLow }),
          deps.log,
        ),
      },
      deps.log,
    );
  } catch (err) {
    for (const line of opened) releaseLine(line, deps.log);
    throw err;
  }
}
