import { describe, expect, it } from 'vitest';
import { SimGpio } from '../../device/hardware/sim-gpio.js';

const pins = { viewingLed: { pin: 17, activeLow: false }, button: { pin: 27, activeLow: true } };

function clock(start = 1000): () => number {
  let t = start;
  return () => t++;
}

describe('SimGpio', () => {
  it('records every LED change with a timestamp from the injected clock', async () => {
    const gpio = new SimGpio({ pins, privacyLed: true, now: clock() });
    await gpio.viewingLed.write(true);
    await gpio.privacyLed?.write(true);
    await gpio.viewingLed.write(false);
    expect(gpio.events).toEqual([
      { atMs: 1000, led: 'viewing', on: true },
      { atMs: 1001, led: 'privacy', on: true },
      { atMs: 1002, led: 'viewing', on: false },
    ]);
  });

  it('does not log a write that leaves the LED as it was', async () => {
    const gpio = new SimGpio({ now: clock() });
    await gpio.viewingLed.write(false);
    expect(gpio.events).toEqual([]);
  });

  it('a next-write fault rejects only the next write', async () => {
    const gpio = new SimGpio();
    gpio.viewingLed.injectFault('next');
    await expect(gpio.viewingLed.write(true)).rejects.toThrow(/simulated write fault/);
    expect(gpio.viewingLed.value).toBe(false);
    await gpio.viewingLed.write(true);
    expect(gpio.viewingLed.value).toBe(true);
  });

  it('an all-writes fault rejects every write until cleared', async () => {
    const gpio = new SimGpio();
    gpio.viewingLed.injectFault('all');
    await expect(gpio.viewingLed.write(true)).rejects.toThrow();
    await expect(gpio.viewingLed.write(true)).rejects.toThrow();
    gpio.viewingLed.injectFault('none');
    await expect(gpio.viewingLed.write(true)).resolves.toBeUndefined();
  });

  it('press with bounces emits alternating edges that end pressed', () => {
    const gpio = new SimGpio();
    const edges: boolean[] = [];
    gpio.button.watch((pressed) => edges.push(pressed));
    gpio.button.press(2);
    expect(edges).toEqual([true, false, true, false, true]);
    expect(gpio.button.pressed).toBe(true);
  });

  it('release with bounces emits alternating edges that end released', async () => {
    const gpio = new SimGpio();
    const edges: boolean[] = [];
    gpio.button.watch((pressed) => edges.push(pressed));
    gpio.button.release(1);
    expect(edges).toEqual([false, true, false]);
    await expect(gpio.button.read()).resolves.toBe(false);
  });

  it('stops calling a listener after it unsubscribes', () => {
    const gpio = new SimGpio();
    const edges: boolean[] = [];
    const unwatch = gpio.button.watch((pressed) => edges.push(pressed));
    unwatch();
    gpio.button.press();
    expect(edges).toEqual([]);
  });

  it('has a privacy LED only when one is configured', () => {
    expect(new SimGpio({ pins }).privacyLed).toBeUndefined();
    expect(
      new SimGpio({ pins: { ...pins, privacyLed: { pin: 22, activeLow: false } } }).privacyLed,
    ).toBeDefined();
  });

  it('close leaves the LEDs off, refuses later writes and is idempotent', async () => {
    const gpio = new SimGpio({ privacyLed: true });
    await gpio.viewingLed.write(true);
    await gpio.privacyLed?.write(true);
    await Promise.all([gpio.close(), gpio.close()]);
    await gpio.close();
    expect(gpio.viewingLed.value).toBe(false);
    expect(gpio.privacyLed?.value).toBe(false);
    await expect(gpio.viewingLed.write(true)).rejects.toThrow(/closed/);
  });
});
