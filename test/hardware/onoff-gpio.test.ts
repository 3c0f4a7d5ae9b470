// The onoff adapter, driven through a fake onoff `Gpio` class: there is no GPIO sysfs here and
// onoff's own `Gpio.accessible` is false, so only the adapter's own logic is exercised.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BinaryValue, Direction, Edge, Options } from 'onoff';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { initialDirection, type OnoffLine, openOnoffGpio } from '../../device/hardware/onoff-gpio.js';
import type { GpioPins } from '../../device/hardware/types.js';
import { captureLog, quietLog } from './log-capture.js';

type ValueCallback = (err: Error | null | undefined, value: BinaryValue) => void;

function fakeOnoff(accessible = true) {
  const lines: FakeLine[] = [];
  class FakeLine implements OnoffLine {
    static readonly accessible = accessible;
    readonly writes: BinaryValue[] = [];
    readonly watchers: ValueCallback[] = [];
    failWrites = false;
    level: BinaryValue = 0;
    unexported = false;

    constructor(
      readonly gpio: number,
      readonly direction: Direction,
      readonly edge?: Edge,
      readonly options?: Options,
    ) {
      lines.push(this);
    }
    async read(): Promise<BinaryValue> {
      return this.level;
    }
    async write(value: BinaryValue): Promise<void> {
      if (this.failWrites) throw new Error('EIO');
      this.writes.push(value);
    }
    watch(callback: ValueCallback): void {
      this.watchers.push(callback);
    }
    unwatchAll(): void {
      this.watchers.length = 0;
    }
    unexport(): void {
      this.unexported = true;
    }
    fire(err: Error | null, value: BinaryValue): void {
      for (const watcher of this.watchers) watcher(err, value);
    }
  }
  return { Line: FakeLine, lines };
}

const pins: GpioPins = {
  viewingLed: { pin: 17, activeLow: false },
  privacyLed: { pin: 22, activeLow: true },
  button: { pin: 27, activeLow: true },
};

let sysfsRoot: string;

describe('openOnoffGpio', () => {
  beforeEach(async () => {
    sysfsRoot = await mkdtemp(join(tmpdir(), 'sysfs-gpio-'));
    await mkdir(join(sysfsRoot, 'gpiochip512'));
    for (const [file, text] of Object.entries({ label: 'pinctrl-bcm2711', base: '512', ngpio: '58' })) {
      await writeFile(join(sysfsRoot, 'gpiochip512', file), `${text}\n`);
    }
  });
  afterEach(async () => {
    await rm(sysfsRoot, { recursive: true, force: true });
  });

  it('starts an active-low LED high and an active-high LED low, so neither lights at export', () => {
    expect(initialDirection(true)).toBe('high');
    expect(initialDirection(false)).toBe('low');
  });

  it('opens each pin at the chip base plus its BCM number, with active-low passed to onoff', async () => {
    const { Line, lines } = fakeOnoff();
    await openOnoffGpio({ pins, sysfsRoot, log: quietLog, Line });
    expect(lines.map((l) => [l.gpio, l.direction, l.edge, l.options])).toEqual([
      [529, 'low', 'none', { activeLow: false }],
      [534, 'high', 'none', { activeLow: true }],
      // No debounceTimeout: onoff's debounce would hold back the first edge.
      [539, 'in', 'both', { activeLow: true }],
    ]);
  });

  it('refuses to open when GPIO sysfs is not accessible', async () => {
    const { Line, lines } = fakeOnoff(false);
    await expect(openOnoffGpio({ pins, sysfsRoot, log: quietLog, Line })).rejects.toThrow(/not accessible/);
    expect(lines).toEqual([]);
  });

  it('unexports the pins already opened when a later pin cannot be opened', async () => {
    const { Line, lines } = fakeOnoff();
    const badPins = { ...pins, button: { pin: 99, activeLow: true } };
    await expect(openOnoffGpio({ pins: badPins, sysfsRoot, log: quietLog, Line })).rejects.toThrow(/pin 99/);
    expect(lines.map((l) => l.unexported)).toEqual([true, true]);
  });

  it('writes 1 and 0 for on and off and remembers the level', async () => {
    const { Line, lines } = fakeOnoff();
    const gpio = await openOnoffGpio({ pins, sysfsRoot, log: quietLog, Line });
    await gpio.viewingLed.write(true);
    expect(gpio.viewingLed.value).toBe(true);
    await gpio.viewingLed.write(false);
    expect(lines[0]?.writes).toEqual([1, 0]);
  });

  it('a failed write rejects and keeps the last good level', async () => {
    const { Line, lines } = fakeOnoff();
    const gpio = await openOnoffGpio({ pins, sysfsRoot, log: quietLog, Line });
    lines[0]!.failWrites = true;
    await expect(gpio.viewingLed.write(true)).rejects.toThrow('EIO');
    expect(gpio.viewingLed.value).toBe(false);
  });

  it('reports button edges as pressed booleans', async () => {
    const { Line, lines } = fakeOnoff();
    const gpio = await openOnoffGpio({ pins, sysfsRoot, log: quietLog, Line });
    const edges: boolean[] = [];
    gpio.button.watch((pressed) => edges.push(pressed));
    lines[2]?.fire(null, 1);
    lines[2]?.fire(null, 0);
    expect(edges).toEqual([true, false]);
    lines[2]!.level = 1;
    await expect(gpio.button.read()).resolves.toBe(true);
  });

  it('logs an edge error and a throwing listener instead of throwing into onoff', async () => {
    const captured = captureLog();
    const { Line, lines } = fakeOnoff();
    const gpio = await openOnoffGpio({ pins, sysfsRoot, log: captured.log, Line });
    gpio.button.watch(() => {
      throw new Error('listener bug');
    });
    expect(() => lines[2]?.fire(new Error('EIO'), 0)).not.toThrow();
    expect(() => lines[2]?.fire(null, 1)).not.toThrow();
    expect(captured.records().map((r) => r.msg)).toEqual(
      expect.arrayContaining(['button edge read failed', 'button listener threw']),
    );
  });

  it('close turns the LEDs off, releases every pin and is idempotent', async () => {
    const { Line, lines } = fakeOnoff();
    const gpio = await openOnoffGpio({ pins, sysfsRoot, log: quietLog, Line });
    await gpio.viewingLed.write(true);
    await Promise.all([gpio.close(), gpio.close()]);
    await gpio.close();
    expect(lines[0]?.writes).toEqual([1, 0]);
    expect(lines.every((l) => l.unexported)).toBe(true);
    expect(lines[2]?.watchers).toEqual([]);
    await expect(gpio.viewingLed.write(true)).rejects.toThrow(/closed/);
  });
});
