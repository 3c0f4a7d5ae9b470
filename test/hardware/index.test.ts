// The public surface, and the wiring a caller does: button press → privacy toggle → LED acknowledge.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { LedController, openGpio, PrivacyButton } from '../../device/hardware/index.js';
import { quietLog } from './log-capture.js';

const pins = { viewingLed: { pin: 17, activeLow: false }, button: { pin: 27, activeLow: true } };

describe('openGpio', () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: 0 });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('opens a simulated GPIO with a privacy LED only when one is configured', async () => {
    const plain = await openGpio({ kind: 'sim', pins, log: quietLog });
    const withPrivacyLed = await openGpio({
      kind: 'sim',
      pins: { ...pins, privacyLed: { pin: 22, activeLow: false } },
      log: quietLog,
    });
    expect(plain.privacyLed).toBeUndefined();
    expect(withPrivacyLed.privacyLed).toBeDefined();
  });

  it('a button press toggles privacy at once and acknowledges it on the LED', async () => {
    const gpio = await openGpio({ kind: 'sim', pins, now: () => Date.now(), log: quietLog });
    const leds = new LedController({
      viewingLed: gpio.viewingLed,
      privacyLed: gpio.privacyLed,
      log: quietLog,
    });
    const button = new PrivacyButton({ input: gpio.button, log: quietLog });
    let privacyOn = false;
    button.on('press', async () => {
      privacyOn = !privacyOn;
      await leds.setViewing(false); // the service ends any view first (camera stops)
      await leds.showPrivacy(privacyOn);
    });
    button.start();

    gpio.button.press(4);
    expect(privacyOn).toBe(true);
    await vi.advanceTimersByTimeAsync(1000);
    expect(gpio.events.filter((e) => e.on)).toHaveLength(2);
    expect(gpio.viewingLed.value).toBe(false);

    button.stop();
    await leds.close();
    await gpio.close();
    expect(vi.getTimerCount()).toBe(0);
  });
});
