import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { acknowledgePattern, LedController, statusPattern } from '../../device/hardware/led.js';
import { SimGpio } from '../../device/hardware/sim-gpio.js';
import { captureLog, quietLog } from './log-capture.js';

function setup(options: { privacyLed?: boolean; log?: typeof quietLog } = {}) {
  const gpio = new SimGpio({ privacyLed: options.privacyLed ?? false, now: () => Date.now() });
  const leds = new LedController({
    viewingLed: gpio.viewingLed,
    privacyLed: gpio.privacyLed,
    log: options.log ?? quietLog,
  });
  const viewingEvents = () =>
    gpio.events.filter((e) => e.led === 'viewing').map(({ atMs, on }) => [atMs, on]);
  return { gpio, leds, viewingEvents };
}

describe('blink patterns', () => {
  it('every acknowledge and status pattern ends with the LED off', () => {
    fc.assert(
      fc.property(fc.boolean(), fc.integer({ min: 1, max: 10 }), (privacyOn, code) => {
        expect(acknowledgePattern(privacyOn).at(-1)?.on).toBe(false);
        expect(statusPattern(code).at(-1)?.on).toBe(false);
      }),
    );
  });

  it('the privacy-on acknowledge differs from the privacy-off one', () => {
    expect(acknowledgePattern(true).filter((s) => s.on)).toHaveLength(2);
    expect(acknowledgePattern(false).filter((s) => s.on)).toHaveLength(1);
  });
});

describe('LedController', () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: 0 });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('setViewing lights the viewing LED solid until it is turned off', async () => {
    const { gpio, leds, viewingEvents } = setup();
    await leds.setViewing(true);
    await vi.advanceTimersByTimeAsync(5000);
    expect(gpio.viewingLed.value).toBe(true);
    await leds.setViewing(false);
    expect(viewingEvents()).toEqual([
      [0, true],
      [5000, false],
    ]);
  });

  it('a write failure on the viewing LED rejects and sets the fault flag', async () => {
    const { gpio, leds } = setup();
    gpio.viewingLed.injectFault('next');
    await expect(leds.setViewing(true)).rejects.toThrow(/simulated write fault/);
    expect(leds.fault).toBe(true);
  });

  it('a later successful write clears the fault flag', async () => {
    const { gpio, leds } = setup();
    gpio.viewingLed.injectFault('next');
    await leds.setViewing(true).catch(() => undefined);
    await leds.setViewing(true);
    expect(leds.fault).toBe(false);
  });

  it('privacy on without a privacy LED blinks twice quickly', async () => {
    const { leds, viewingEvents } = setup();
    const done = leds.showPrivacy(true);
    await vi.advanceTimersByTimeAsync(1000);
    await done;
    expect(viewingEvents()).toEqual([
      [0, true],
      [100, false],
      [200, true],
      [300, false],
    ]);
  });

  it('privacy off without a privacy LED blinks once', async () => {
    const { leds, viewingEvents } = setup();
    const done = leds.showPrivacy(false);
    await vi.advanceTimersByTimeAsync(1000);
    await done;
    expect(viewingEvents()).toEqual([
      [0, true],
      [100, false],
    ]);
  });

  it('the acknowledge pattern never leaves the LED lit', async () => {
    const { gpio, leds } = setup();
    const done = leds.showPrivacy(true);
    await vi.advanceTimersByTimeAsync(1000);
    await done;
    expect(gpio.viewingLed.value).toBe(false);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('setViewing cancels a running acknowledge pattern', async () => {
    const { gpio, leds, viewingEvents } = setup();
    const pattern = leds.showPrivacy(true);
    await vi.advanceTimersByTimeAsync(150);
    await leds.setViewing(true);
    await vi.advanceTimersByTimeAsync(1000);
    await pattern;
    expect(gpio.viewingLed.value).toBe(true);
    expect(viewingEvents()).toEqual([
      [0, true],
      [100, false],
      [150, true],
    ]);
  });

  it('setViewing(false) during a pattern leaves the LED dark', async () => {
    const { gpio, leds } = setup();
    void leds.showPrivacy(true);
    await vi.advanceTimersByTimeAsync(50);
    await leds.setViewing(false);
    await vi.advanceTimersByTimeAsync(1000);
    expect(gpio.viewingLed.value).toBe(false);
  });

  it('does not blink while a view is active', async () => {
    const { leds, viewingEvents } = setup();
    await leds.setViewing(true);
    await leds.showPrivacy(false);
    await leds.showStatus(3);
    await vi.advanceTimersByTimeAsync(5000);
    expect(viewingEvents()).toEqual([[0, true]]);
  });

  it('a new pattern replaces a running one and still ends dark', async () => {
    const { gpio, leds, viewingEvents } = setup();
    void leds.showPrivacy(true);
    await vi.advanceTimersByTimeAsync(50);
    void leds.showPrivacy(false);
    await vi.advanceTimersByTimeAsync(1000);
    expect(gpio.viewingLed.value).toBe(false);
    expect(viewingEvents()).toEqual([
      [0, true],
      [150, false],
    ]);
  });

  it('with a privacy LED, privacy mode shows on it steadily and the viewing LED stays dark', async () => {
    const { gpio, leds } = setup({ privacyLed: true });
    await leds.showPrivacy(true);
    await vi.advanceTimersByTimeAsync(5000);
    expect(gpio.privacyLed?.value).toBe(true);
    expect(gpio.events.filter((e) => e.led === 'viewing')).toEqual([]);
    await leds.showPrivacy(false);
    expect(gpio.privacyLed?.value).toBe(false);
  });

  it('a privacy LED write failure is logged, not thrown', async () => {
    const captured = captureLog();
    const { gpio, leds } = setup({ privacyLed: true, log: captured.log });
    gpio.privacyLed?.injectFault('next');
    await expect(leds.showPrivacy(true)).resolves.toBeUndefined();
    expect(captured.records()).toContainEqual(expect.objectContaining({ msg: 'privacy LED write failed' }));
  });

  it('showStatus blinks the code as a count of slower blinks', async () => {
    const { leds, viewingEvents } = setup();
    const done = leds.showStatus(3);
    await vi.advanceTimersByTimeAsync(2000);
    await done;
    expect(viewingEvents().filter(([, on]) => on)).toEqual([
      [0, true],
      [500, true],
      [1000, true],
    ]);
  });

  it('a write fault during a pattern ends it dark and logs it', async () => {
    const captured = captureLog();
    const { gpio, leds } = setup({ log: captured.log });
    const done = leds.showPrivacy(true);
    await vi.advanceTimersByTimeAsync(50);
    gpio.viewingLed.injectFault('next');
    await vi.advanceTimersByTimeAsync(1000);
    await done;
    expect(gpio.viewingLed.value).toBe(false);
    expect(leds.fault).toBe(false);
    expect(captured.records()).toContainEqual(
      expect.objectContaining({ msg: 'viewing LED write failed during blink' }),
    );
  });

  it('close stops a pattern, turns the LEDs off and leaves no timers', async () => {
    const { gpio, leds } = setup();
    void leds.showPrivacy(true);
    await vi.advanceTimersByTimeAsync(50);
    await leds.close();
    await leds.close();
    expect(gpio.viewingLed.value).toBe(false);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('refuses to light the viewing LED after close', async () => {
    const { leds } = setup();
    await leds.close();
    await expect(leds.setViewing(true)).rejects.toThrow(/closed/);
    await expect(leds.setViewing(false)).resolves.toBeUndefined();
  });
});
