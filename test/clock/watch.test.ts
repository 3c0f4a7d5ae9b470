// The clock watch: a verdict at start and every interval, a step reported first and then a re-check,
// one check at a time, listeners that throw are contained, and stop leaves no timer.
import { describe, expect, it } from 'vitest';
import { type ClockStep, type ClockVerdict, ClockWatch, StepWatcher } from '../../device/clock/index.js';
import { ManualClock } from '../../scripts/devstack/manual-clock.js';
import { captureLog, quietLog } from '../hardware/log-capture.js';

const tonightMs = Date.UTC(2026, 11, 1, 22, 0);
const trusted: ClockVerdict = { trusted: true, kind: 'trusted', detail: 'ok' };
const belowFloor: ClockVerdict = { trusted: false, kind: 'below-floor', detail: 'below the floor' };

const flush = async (): Promise<void> => {
  for (let i = 0; i < 10; i += 1) await Promise.resolve();
};

function setup(verdicts: () => ClockVerdict) {
  const mono = new ManualClock(0);
  let offsetMs = tonightMs;
  const wall = {
    now: (): number => mono.now() + offsetMs,
    step: (byMs: number): void => {
      offsetMs += byMs;
    },
  };
  const steps = new StepWatcher({ now: wall.now, monotonicNow: mono.now, timers: mono, log: quietLog });
  let checks = 0;
  const watch = new ClockWatch({
    check: async () => {
      checks += 1;
      return verdicts();
    },
    steps,
    timers: mono,
    log: quietLog,
    checkIntervalMs: 10_000,
  });
  const events: Array<['verdict', ClockVerdict] | ['step', ClockStep]> = [];
  watch.on('verdict', (verdict) => events.push(['verdict', verdict]));
  watch.on('step', (step) => events.push(['step', step]));
  return { mono, wall, watch, events, checks: () => checks };
}

describe('ClockWatch', () => {
  it('checks at start, resolving with the verdict, then every interval', async () => {
    const { mono, watch, events, checks } = setup(() => trusted);
    expect(await watch.start()).toEqual(trusted);
    expect(watch.last).toEqual(trusted);
    for (let i = 0; i < 3; i += 1) {
      mono.advance(10_000);
      await flush();
    }
    expect(checks()).toBe(4);
    expect(events.every(([name]) => name === 'verdict')).toBe(true);
    watch.stop();
  });

  it('reports a step first, then at once an untrusted verdict, then the verdict of a check made at once', async () => {
    let verdict = trusted;
    const { mono, wall, watch, events } = setup(() => verdict);
    await watch.start();
    events.length = 0;
    mono.advance(2000);
    verdict = belowFloor;
    wall.step(-3_600_000);
    mono.advance(1000);
    // Synchronously, before any check has run: no grant can be decided on the stepped clock.
    expect(events.map(([name]) => name)).toEqual(['step', 'verdict']);
    expect(events[0]?.[1]).toMatchObject({ direction: 'back', stepMs: -3_600_000 });
    expect(events[1]?.[1]).toEqual({
      trusted: false,
      kind: 'step',
      detail: 'clock stepped back by 3600 s; checking it again',
    });
    expect(watch.last?.kind).toBe('step');
    await flush();
    expect(events.map(([name]) => name)).toEqual(['step', 'verdict', 'verdict']);
    expect(events[2]?.[1]).toEqual(belowFloor);
    watch.stop();
  });

  it('trusts the clock again after a step once the re-check says so', async () => {
    const { mono, wall, watch, events } = setup(() => trusted);
    await watch.start();
    events.length = 0;
    wall.step(5000);
    mono.advance(1000);
    await flush();
    expect(events.map(([name, value]) => (name === 'verdict' ? value.kind : name))).toEqual([
      'step',
      'step',
      'trusted',
    ]);
    expect(watch.last).toEqual(trusted);
    watch.stop();
  });

  it("poll() finds a step at once, between the step watcher's comparisons", async () => {
    const { mono, wall, watch, events } = setup(() => trusted);
    await watch.start();
    events.length = 0;
    mono.advance(300);
    wall.step(-60_000);
    watch.poll();
    expect(events.map(([name]) => name)).toEqual(['step', 'verdict']);
    expect(watch.last?.trusted).toBe(false);
    watch.stop();
  });

  it('runs one check at a time and shares one queued check among callers', async () => {
    let release: (() => void) | undefined;
    let running = 0;
    let most = 0;
    let checks = 0;
    const watch = new ClockWatch({
      check: async () => {
        checks += 1;
        running += 1;
        most = Math.max(most, running);
        await new Promise<void>((resolve) => {
          release = resolve;
        });
        running -= 1;
        return trusted;
      },
      timers: new ManualClock(0),
      log: quietLog,
      checkIntervalMs: 10_000,
    });
    const first = watch.recheck();
    await flush();
    // The first check is running: these two share the one queued after it.
    const second = watch.recheck();
    const third = watch.recheck();
    expect(second).toBe(third);
    await flush();
    release?.();
    await first;
    await flush();
    release?.();
    await Promise.all([second, third]);
    expect(checks).toBe(2);
    expect(most).toBe(1);
  });

  it('turns a check that throws into an untrusted verdict', async () => {
    const watch = new ClockWatch({
      check: async () => {
        throw new Error('boom');
      },
      timers: new ManualClock(0),
      log: quietLog,
      checkIntervalMs: 10_000,
    });
    expect(await watch.start()).toEqual({
      trusted: false,
      kind: 'error',
      detail: 'clock check failed: boom',
    });
    watch.stop();
  });

  it('logs when trust changes, not at every check', async () => {
    let verdict = trusted;
    const captured = captureLog();
    const mono = new ManualClock(0);
    const watch = new ClockWatch({
      check: async () => verdict,
      timers: mono,
      log: captured.log,
      checkIntervalMs: 1000,
    });
    await watch.start();
    mono.advance(5000);
    await flush();
    verdict = belowFloor;
    mono.advance(5000);
    await flush();
    const messages = captured.records().map((r) => r.msg);
    expect(messages.filter((m) => m === 'clock trusted')).toHaveLength(1);
    expect(messages.filter((m) => m === 'clock not trusted')).toHaveLength(1);
    watch.stop();
  });

  it('keeps going when a listener throws', async () => {
    const { mono, watch, events } = setup(() => trusted);
    watch.prependListener('verdict', () => {
      throw new Error('bad listener');
    });
    await watch.start();
    mono.advance(10_000);
    await flush();
    expect(events).toHaveLength(2);
    watch.stop();
  });

  it('stops its timer and the step watcher, idempotently, and emits nothing after', async () => {
    const { mono, wall, watch, events } = setup(() => trusted);
    await watch.start();
    expect(mono.pendingCount).toBe(2);
    watch.stop();
    watch.stop();
    expect(mono.pendingCount).toBe(0);
    events.length = 0;
    wall.step(-60_000);
    mono.advance(60_000);
    await watch.recheck();
    expect(events).toEqual([]);
  });
});
