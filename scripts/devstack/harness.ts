// A supervisor on simulated hardware, a manual clock and in-memory persistence: the rules end to end.

import { LedController, SimGpio } from '../../device/hardware/index.js';
import { silentLogger } from '../../device/log/index.js';
import type { Counters, PrivacyState, ReplayCache, StoredSchedule } from '../../device/state/index.js';
import { instantMedia, type MediaPort, type Persistence, Supervisor } from '../../device/supervisor/index.js';
import { ManualClock } from './manual-clock.js';
import { inWindowMs, nightlySchedule, signSchedule, type TestSigner } from './tokens.js';

export const deviceId = 'dev-test';
export const limits = { maxViewDurationS: 120, maxGrantLifetimeS: 600, nbfLeewayS: 5 };

export class MemoryPersistence implements Persistence {
  privacy: PrivacyState | undefined;
  schedule: StoredSchedule | undefined;
  replay: ReplayCache = { nonces: {} };
  counters: Counters = { refusals: {}, views: 0 };
  failNext = false;

  async save(key: 'privacy' | 'schedule' | 'replay' | 'counters', value: unknown): Promise<void> {
    if (this.failNext) {
      this.failNext = false;
      throw new Error('disk full');
    }
    (this as Record<string, unknown>)[key] = structuredClone(value);
  }
}

export interface Harness {
  clock: ManualClock;
  gpio: SimGpio;
  led: LedController;
  persist: MemoryPersistence;
  supervisor: Supervisor;
}

export async function createHarness(options: {
  signer: TestSigner;
  startMs: number;
  clock?: ManualClock;
  gpio?: SimGpio;
  persist?: MemoryPersistence;
  media?: MediaPort;
  clockTrusted?: boolean;
}): Promise<Harness> {
  const clock = options.clock ?? new ManualClock(options.startMs);
  const log = silentLogger();
  const gpio =
    options.gpio ??
    new SimGpio({
      pins: { viewingLed: { pin: 17, activeLow: false }, button: { pin: 27, activeLow: true } },
      now: clock.now,
      log,
    });
  const led = new LedController({
    viewingLed: gpio.viewingLed,
    log,
    timers: clock,
  });
  const persist = options.persist ?? new MemoryPersistence();
  const supervisor = new Supervisor({
    config: { deviceId, timeZone: 'Europe/Stockholm', limits },
    keys: options.signer.keys,
    clock,
    led,
    media: options.media ?? instantMedia,
    persist,
    log,
    initial: {
      privacyOn: persist.privacy?.privacyOn ?? false,
      clockTrusted: options.clockTrusted ?? true,
      schedule: persist.schedule,
      nonces: persist.replay.nonces,
      counters: persist.counters,
    },
  });
  await supervisor.start();
  return { clock, gpio, led, persist, supervisor };
}

/** A harness at `startMs` (inside the nightly window unless told) with the nightly schedule applied. */
export async function scheduledHarness(
  signer: TestSigner,
  startMs = inWindowMs,
  media?: MediaPort,
): Promise<Harness> {
  const harness = await createHarness({ signer, startMs, ...(media ? { media } : {}) });
  await harness.supervisor.applySchedule(await signSchedule(signer, nightlySchedule(deviceId)));
  return harness;
}

/** Lets queued promise callbacks (LED writes, teardown) run. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 20; i += 1) await new Promise<void>((resolve) => setImmediate(resolve));
}
