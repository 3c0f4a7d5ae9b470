import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { PrivacyButton } from '../../device/hardware/button.js';
import { SimGpio } from '../../device/hardware/sim-gpio.js';
import { captureLog, quietLog } from './log-capture.js';

function setup(log = quietLog) {
  const gpio = new SimGpio();
  const button = new PrivacyButton({ input: gpio.button, log, now: () => Date.now() });
  const seen: string[] = [];
  button.on('press', () => seen.push('press'));
  button.on('longPress', () => seen.push('longPress'));
  button.on('release', ({ heldMs }) => seen.push(`release ${heldMs}`));
  button.start();
  return { gpio, button, seen, sim: gpio.button };
}

describe('PrivacyButton', () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: 0 });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('acts on the first edge without waiting for debounce', () => {
    const { sim, seen } = setup();
    sim.press();
    expect(seen).toEqual(['press']);
  });

  it('ignores bounces within the debounce window', () => {
    const { sim, seen } = setup();
    sim.press(5);
    vi.advanceTimersByTime(49);
    sim.edge(false);
    sim.edge(true);
    vi.advanceTimersByTime(100);
    expect(seen).toEqual(['press']);
  });

  it('ignores release bounces after a release', () => {
    const { sim, seen } = setup();
    sim.press(3);
    vi.advanceTimersByTime(500);
    sim.release(3);
    vi.advanceTimersByTime(500);
    expect(seen).toEqual(['press', 'release 500']);
  });

  it('reports a tap shorter than the debounce window once the window ends', () => {
    const { sim, seen } = setup();
    sim.press();
    vi.advanceTimersByTime(20);
    sim.release();
    expect(seen).toEqual(['press']);
    vi.advanceTimersByTime(30);
    expect(seen).toEqual(['press', 'release 50']);
  });

  it('reports a second press after the debounce window', () => {
    const { sim, seen } = setup();
    sim.press();
    vi.advanceTimersByTime(100);
    sim.release();
    vi.advanceTimersByTime(100);
    sim.press();
    expect(seen).toEqual(['press', 'release 100', 'press']);
  });

  it('fires longPress once when held for longPressMs', () => {
    const { sim, seen } = setup();
    sim.press();
    vi.advanceTimersByTime(2999);
    expect(seen).toEqual(['press']);
    vi.advanceTimersByTime(1);
    expect(seen).toEqual(['press', 'longPress']);
    vi.advanceTimersByTime(10_000);
    sim.release();
    expect(seen).toEqual(['press', 'longPress', 'release 13000']);
  });

  it('a release before longPressMs cancels the long press', () => {
    const { sim, seen } = setup();
    sim.press();
    vi.advanceTimersByTime(2000);
    sim.release();
    vi.advanceTimersByTime(5000);
    expect(seen).toEqual(['press', 'release 2000']);
  });

  it('a throwing listener is logged and later listeners still hear the press', () => {
    const captured = captureLog();
    const { sim, button, seen } = setup(captured.log);
    button.prependListener('press', () => {
      throw new Error('listener bug');
    });
    sim.press();
    expect(seen).toEqual(['press']);
    expect(captured.records()).toContainEqual(
      expect.objectContaining({ msg: 'a listener threw; ignored', event: 'press' }),
    );
  });

  it('a rejecting async listener is logged', async () => {
    const captured = captureLog();
    const { sim, button } = setup(captured.log);
    button.on('press', async () => {
      throw new Error('async listener bug');
    });
    sim.press();
    await vi.advanceTimersByTimeAsync(0);
    expect(captured.records()).toContainEqual(
      expect.objectContaining({ msg: 'a listener rejected; ignored' }),
    );
  });

  it('a once listener runs only once', () => {
    const { sim, button } = setup();
    const once = vi.fn();
    button.once('press', once);
    sim.press();
    vi.advanceTimersByTime(100);
    sim.release();
    vi.advanceTimersByTime(100);
    sim.press();
    expect(once).toHaveBeenCalledTimes(1);
  });

  it('stop unsubscribes, leaves no timers and is idempotent', () => {
    const { sim, button, seen } = setup();
    sim.press();
    button.stop();
    button.stop();
    expect(vi.getTimerCount()).toBe(0);
    sim.release();
    sim.press();
    expect(seen).toEqual(['press']);
  });
});
