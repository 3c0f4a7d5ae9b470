// The supervisor applies the rules at every event and keeps the LED in step with the view.
import { beforeAll, describe, expect, it } from 'vitest';
import type { DecisionEvent, MediaPort, ViewEndedEvent } from '../../device/supervisor/index.js';
import {
  createHarness,
  deviceId,
  type Harness,
  MemoryPersistence,
  scheduledHarness,
  settle,
} from '../../scripts/devstack/harness.js';
import {
  createSigner,
  grantClaims,
  inWindowMs,
  nightlySchedule,
  signGrant,
  signSchedule,
  type TestSigner,
  testConsole,
} from '../../scripts/devstack/tokens.js';
import { sleep, waitUntil } from '../support/process.js';

let signer: TestSigner;
beforeAll(async () => {
  signer = await createSigner();
});

function ready(startMs = inWindowMs, media?: MediaPort): Promise<Harness> {
  return scheduledHarness(signer, startMs, media);
}

function endedReasons(harness: Harness): ViewEndedEvent['reason'][] {
  const reasons: ViewEndedEvent['reason'][] = [];
  harness.supervisor.on('viewEnded', (event) => reasons.push(event.reason));
  return reasons;
}

describe('Supervisor', () => {
  it('lights the LED for a granted view and lets frames through only then', async () => {
    const h = await ready();
    expect(h.supervisor.allowFrames()).toBe(false);
    const decision = await h.supervisor.request(
      await signGrant(signer, grantClaims(deviceId, h.clock.now())),
      'r1',
    );
    expect(decision.granted).toBe(true);
    await settle();
    expect(h.gpio.viewingLed.value).toBe(true);
    expect(h.supervisor.phase).toBe('streaming');
    expect(h.supervisor.allowFrames()).toBe(true);
  });

  it('ends the view when its maximum duration is reached, and turns the LED off', async () => {
    const h = await ready();
    const ended = endedReasons(h);
    await h.supervisor.request(
      await signGrant(signer, grantClaims(deviceId, h.clock.now(), { maxDurS: 30 })),
      'r1',
    );
    await settle();
    h.clock.advance(29_999);
    expect(h.supervisor.allowFrames()).toBe(true);
    h.clock.advance(1);
    expect(h.supervisor.allowFrames()).toBe(false);
    await settle();
    expect(ended).toEqual(['max-duration']);
    expect(h.gpio.viewingLed.value).toBe(false);
  });

  it('ends the view at once on a privacy press, closing the gate before the LED goes off', async () => {
    const h = await ready();
    const ended = endedReasons(h);
    await h.supervisor.request(await signGrant(signer, grantClaims(deviceId, h.clock.now())), 'r1');
    await settle();
    h.supervisor.togglePrivacy();
    expect(h.supervisor.allowFrames()).toBe(false);
    await settle();
    expect(ended).toEqual(['privacy-on']);
    expect(h.gpio.viewingLed.value).toBe(false);
    expect(h.persist.privacy?.privacyOn).toBe(true);
  });

  it('ends the view when the window closes', async () => {
    const nearEnd = Date.UTC(2026, 10, 25, 5, 59, 30); // 06:59:30 local
    const h = await ready(nearEnd);
    const ended = endedReasons(h);
    await h.supervisor.request(await signGrant(signer, grantClaims(deviceId, nearEnd)), 'r1');
    await settle();
    h.clock.advance(30_000);
    await settle();
    expect(ended).toEqual(['window-end']);
  });

  it('ends the view when the clock stops being trusted', async () => {
    const h = await ready();
    const ended = endedReasons(h);
    await h.supervisor.request(await signGrant(signer, grantClaims(deviceId, h.clock.now())), 'r1');
    await settle();
    h.supervisor.setClockTrusted(false, 'lost sync');
    await settle();
    expect(ended).toEqual(['clock-unsynced']);
  });

  it('measures a view ended by a clock step on the monotonic clock, whichever way the clock jumped', async () => {
    for (const stepMs of [3_600_000, -3_600_000]) {
      const h = await ready();
      const ended: ViewEndedEvent[] = [];
      h.supervisor.on('viewEnded', (event) => ended.push(event));
      const grant = grantClaims(deviceId, h.clock.now());
      await h.supervisor.request(await signGrant(signer, grant), `r${stepMs}`);
      await settle();
      const startedAtMs = h.clock.now();
      h.clock.advance(3_000);
      h.clock.set(h.clock.now() + stepMs);
      h.supervisor.clockStepped(stepMs);
      await settle();
      expect(ended.map((e) => e.reason)).toEqual(['clock-unsynced']);
      // It ran for 3 s; the stepped wall clock would say an hour, or less than nothing.
      expect(ended[0]?.durationMs).toBe(3_000);
      expect(ended[0]?.startedAtMs).toBe(startedAtMs);
    }
  });

  it('refuses to start a view when the LED cannot be lit, and reports the fault', async () => {
    const h = await ready();
    const faults: string[] = [];
    h.supervisor.on('fault', (f) => faults.push(f.fault));
    h.gpio.viewingLed.injectFault('all');
    await h.supervisor.request(await signGrant(signer, grantClaims(deviceId, h.clock.now())), 'r1');
    await settle();
    expect(h.supervisor.allowFrames()).toBe(false);
    expect(h.supervisor.phase).toBe('idle');
    expect(faults).toContain('led');
    const next = await h.supervisor.request(
      await signGrant(signer, grantClaims(deviceId, h.clock.now())),
      'r2',
    );
    expect(next.granted ? 'granted' : next.reason).toBe('led-fault');
  });

  it('turns a lit LED off when it starts, as after a crash mid-view', async () => {
    const { SimGpio } = await import('../../device/hardware/index.js');
    const { silentLogger } = await import('../../device/log/index.js');
    const gpio = new SimGpio({
      pins: { viewingLed: { pin: 17, activeLow: false }, button: { pin: 27, activeLow: true } },
      log: silentLogger(),
    });
    await gpio.viewingLed.write(true);
    await createHarness({ signer, startMs: inWindowMs, gpio });
    expect(gpio.viewingLed.value).toBe(false);
  });

  it('clears an LED fault once the LED can be driven again', async () => {
    const h = await ready();
    h.gpio.viewingLed.injectFault('all');
    await h.supervisor.request(await signGrant(signer, grantClaims(deviceId, h.clock.now())), 'r1');
    await settle();
    h.gpio.viewingLed.injectFault('none');
    h.clock.advance(1000);
    await settle();
    expect(h.supervisor.conditions.ledFault).toBe(false);
  });

  it('allows one viewer at a time, even for requests that arrive together', async () => {
    const h = await ready();
    const [a, b] = await Promise.all([
      h.supervisor.request(await signGrant(signer, grantClaims(deviceId, h.clock.now())), 'r1'),
      h.supervisor.request(await signGrant(signer, grantClaims(deviceId, h.clock.now())), 'r2'),
    ]);
    expect([a.granted, b.granted].sort()).toEqual([false, true]);
    expect(a.granted ? b : a).toMatchObject({ reason: 'view-active' });
  });

  it('refuses a replayed grant after a restart, its own request too: the nonce is on disk before the view starts', async () => {
    const h = await ready();
    const token = await signGrant(signer, grantClaims(deviceId, h.clock.now()));
    expect((await h.supervisor.request(token, 'r1')).granted).toBe(true);
    await settle();
    await h.supervisor.stop();
    const restarted = await createHarness({
      signer,
      startMs: h.clock.now(),
      persist: h.persist,
      clock: h.clock,
    });
    const again = await restarted.supervisor.request(token, 'r2');
    expect(again.granted ? 'granted' : again.reason).toBe('replayed');
    // The very same request (a console's retry) is no retry any more: its look is gone.
    const retried = await restarted.supervisor.request(token, 'r1');
    expect(retried.granted ? 'granted' : retried.reason).toBe('replayed');
    expect(restarted.supervisor.schedule?.version).toBe(1);
  });

  it('refuses a grant it cannot record, leaves the LED off, and accepts the same grant once the disk works', async () => {
    const h = await ready();
    h.persist.failNext = true;
    const token = await signGrant(signer, grantClaims(deviceId, h.clock.now()));
    const decision = await h.supervisor.request(token, 'r1');
    expect(decision.granted ? 'granted' : decision.reason).toBe('state-unavailable');
    await settle();
    expect(h.gpio.viewingLed.value).toBe(false);
    expect(h.supervisor.phase).toBe('idle');
    expect((await h.supervisor.request(token, 'r2')).granted).toBe(true);
  });

  it('refuses a schedule that would roll back, and ignores the same schedule delivered again', async () => {
    const h = await ready();
    const v2 = await signSchedule(signer, nightlySchedule(deviceId, 2));
    expect(await h.supervisor.applySchedule(v2)).toEqual({ accepted: true });
    expect(await h.supervisor.applySchedule(v2)).toEqual({ accepted: true });
    const v1 = await signSchedule(signer, { ...nightlySchedule(deviceId, 1), windows: [] });
    expect(await h.supervisor.applySchedule(v1)).toEqual({ accepted: false, reason: 'rollback' });
    expect(h.supervisor.schedule?.version).toBe(2);
  });

  it('ends a running view when a new schedule closes the window', async () => {
    const h = await ready();
    const ended = endedReasons(h);
    await h.supervisor.request(await signGrant(signer, grantClaims(deviceId, h.clock.now())), 'r1');
    await settle();
    await h.supervisor.applySchedule(
      await signSchedule(signer, { ...nightlySchedule(deviceId, 2), windows: [] }),
    );
    await settle();
    expect(ended).toEqual(['schedule-changed']);
  });

  it('names the version of a schedule it refuses, so the central service knows which one', async () => {
    const h = await ready();
    const events: Array<{ accepted: boolean; version?: number; reason?: string }> = [];
    h.supervisor.on('schedule', ({ accepted, version, reason }) =>
      events.push({ accepted, ...(version !== undefined ? { version } : {}), ...(reason ? { reason } : {}) }),
    );
    await h.supervisor.applySchedule(
      await signSchedule(signer, { ...nightlySchedule(deviceId, 1), windows: [] }),
    );
    expect(events).toEqual([{ accepted: false, version: 1, reason: 'rollback' }]);
  });

  it('refuses a schedule for another device or with a bad signature', async () => {
    const h = await ready();
    const other = await signSchedule(signer, nightlySchedule('dev-other', 5));
    expect(await h.supervisor.applySchedule(other)).toEqual({ accepted: false, reason: 'wrong-device' });
    const stranger = await createSigner('central-1');
    const forged = await signSchedule(stranger, nightlySchedule(deviceId, 6));
    expect(await h.supervisor.applySchedule(forged)).toEqual({ accepted: false, reason: 'bad-signature' });
  });

  it('ends the view with camera-failure when the media pipeline cannot start', async () => {
    const failing: MediaPort = {
      start: () => {
        throw new Error('no camera');
      },
      applyAnswer: () => undefined,
      addCandidate: () => undefined,
      stop: async () => undefined,
    };
    const h = await ready(inWindowMs, failing);
    const ended = endedReasons(h);
    await h.supervisor.request(await signGrant(signer, grantClaims(deviceId, h.clock.now())), 'r1');
    await settle();
    expect(ended).toEqual(['camera-failure']);
    expect(h.gpio.viewingLed.value).toBe(false);
  });

  it('ends the view for a hang-up only with the session id and the secret of the grant', async () => {
    const h = await ready();
    const ended: Array<Pick<ViewEndedEvent, 'reason' | 'endedBy' | 'refusedSignals'>> = [];
    h.supervisor.on('viewEnded', ({ reason, endedBy, refusedSignals }) =>
      ended.push({ reason, endedBy, refusedSignals }),
    );
    const claims = grantClaims(deviceId, h.clock.now());
    await h.supervisor.request(await signGrant(signer, claims), 'r1');
    await settle();
    h.supervisor.hangup('someone-else', testConsole.hangupSecret);
    h.supervisor.hangup(claims.sid, 'a-guessed-secret-that-is-long-enough');
    expect(h.supervisor.allowFrames()).toBe(true);
    expect(h.supervisor.strayMessages).toBe(1);
    h.supervisor.hangup(claims.sid, testConsole.hangupSecret);
    await settle();
    expect(ended).toEqual([
      { reason: 'operator-hangup', endedBy: 'grant-holder', refusedSignals: { 'bad-hangup-secret': 1 } },
    ]);
  });

  it('counts refusals by reason', async () => {
    const h = await ready();
    h.supervisor.togglePrivacy();
    await h.supervisor.request(await signGrant(signer, grantClaims(deviceId, h.clock.now())), 'r1');
    await h.supervisor.request('garbage', 'r2');
    await settle();
    expect(h.supervisor.counters.refusals).toEqual({ 'privacy-on': 1, malformed: 1 });
    expect(h.persist.counters.refusals).toEqual({ 'privacy-on': 1, malformed: 1 });
  });

  it('stops idempotently, ending the view with shutdown', async () => {
    const h = await ready();
    const ended = endedReasons(h);
    await h.supervisor.request(await signGrant(signer, grantClaims(deviceId, h.clock.now())), 'r1');
    await settle();
    await Promise.all([h.supervisor.stop(), h.supervisor.stop()]);
    expect(ended).toEqual(['shutdown']);
    expect(h.gpio.viewingLed.value).toBe(false);
    expect(h.clock.pendingCount).toBe(0);
  });

  it('answers a retry that comes before the decision only once the nonce is stored, with granted', async () => {
    const persist = new HeldReplay();
    const h = await createHarness({ signer, startMs: inWindowMs, persist });
    await h.supervisor.applySchedule(await signSchedule(signer, nightlySchedule(deviceId)));
    const decisions: DecisionEvent[] = [];
    h.supervisor.on('decision', (event) => decisions.push(event));
    const started: string[] = [];
    h.supervisor.on('viewStarted', ({ sessionId }) => started.push(sessionId));
    const claims = grantClaims(deviceId, h.clock.now());
    const grant = await signGrant(signer, claims);
    // Two identical copies: whichever is verified first is the original, the other its retry.
    const answered: boolean[] = [];
    const copies = [1, 2].map(() => h.supervisor.request(grant, 'r1').then((d) => answered.push(d.granted)));
    // The signature checks run off the main thread: wait (bounded) until the original holds the write,
    // then give the retry time to be checked as well.
    await waitUntil(() => persist.held === 1, 10_000, 'the nonce write of the original');
    await sleep(100);
    await settle();
    // The nonce write is still pending: nobody has an answer, and nothing is refused.
    expect(persist.held).toBe(1);
    expect(answered).toEqual([]);
    expect(decisions).toEqual([]);
    expect(h.gpio.viewingLed.value).toBe(false);
    persist.release();
    await Promise.all(copies);
    await settle();
    expect(answered).toEqual([true, true]);
    expect(
      decisions.map(({ requestId, decision, sessionId, retry }) => [
        requestId,
        decision.granted,
        sessionId,
        retry,
      ]),
    ).toEqual([
      ['r1', true, claims.sid, false],
      ['r1', true, claims.sid, true],
    ]);
    expect(started).toEqual([claims.sid]);
    expect(h.persist.replay.nonces).toHaveProperty(claims.jti);
  });
});

/** Memory persistence whose replay-cache writes wait until `release()`. */
class HeldReplay extends MemoryPersistence {
  readonly #waiting: Array<() => void> = [];

  get held(): number {
    return this.#waiting.length;
  }

  release(): void {
    for (const resolve of this.#waiting.splice(0)) resolve();
  }

  override async save(key: 'privacy' | 'schedule' | 'replay' | 'counters', value: unknown): Promise<void> {
    if (key === 'replay') await new Promise<void>((resolve) => this.#waiting.push(resolve));
    await super.save(key, value);
  }
}
