// Clock steps: the pure comparison of wall-clock and monotonic progress, and the watcher that polls it
// on a manual wall clock and a manual monotonic clock (a step moves only the wall clock).
import { afterEach, describe, expect, it } from 'vitest';
import { type ClockStep, detectStep, StepWatcher } from '../../device/clock/index.js';
import { ManualClock } from '../../scripts/devstack/manual-clock.js';
import { quietLog } from '../hardware/log-capture.js';

const tonightMs = Date.UTC(2026, 11, 1, 22, 0);

describe('detectStep', () => {
  it('finds no step when both clocks moved alike', () => {
    expect(
      detectStep({ wallMs: tonightMs, monoMs: 500 }, { wallMs: tonightMs + 1000, monoMs: 1500 }, 2000),
    ).toBe(undefined);
  });

  it('finds no step in a difference up to the threshold (slewing, a late timer)', () => {
    expect(
      detectStep({ wallMs: tonightMs, monoMs: 0 }, { wallMs: tonightMs + 3000, monoMs: 1000 }, 2000),
    ).toBe(undefined);
    expect(
      detectStep({ wallMs: tonightMs, monoMs: 0 }, { wallMs: tonightMs - 1000, monoMs: 1000 }, 2000),
    ).toBe(undefined);
  });

  it('reports a clock set back, with the size of the step', () => {
    expect(
      detectStep(
        { wallMs: tonightMs, monoMs: 0 },
        { wallMs: tonightMs - 3_600_000 + 1000, monoMs: 1000 },
        2000,
      ),
    ).toEqual({
      direction: 'back',
      stepMs: -3_600_000,
      fromWallMs: tonightMs,
      toWallMs: tonightMs - 3_599_000,
      elapsedMs: 1000,
    });
  });

  it('reports a clock set forward', () => {
    expect(
      detectStep({ wallMs: tonightMs, monoMs: 0 }, { wallMs: tonightMs + 3500, monoMs: 1000 }, 2000),
    ).toMatchObject({
      direction: 'forward',
      stepMs: 2500,
    });
  });

  it('reports a wall clock that stood still while time passed as a step back', () => {
    expect(
      detectStep({ wallMs: tonightMs, monoMs: 0 }, { wallMs: tonightMs, monoMs: 5000 }, 2000),
    ).toMatchObject({
      direction: 'back',
      stepMs: -5000,
    });
  });
});

describe('StepWatcher', () => {
  const watchers: StepWatcher[] = [];
  afterEach(() => {
    for (const watcher of watchers.splice(0)) watcher.stop();
  });

  // Timers run on the monotonic clock, as Node's do; a step moves only the wall clock.
  function setup(): {
    wall: { now(): number; set(ms: number): void };
    mono: ManualClock;
    steps: ClockStep[];
    watcher: StepWatcher;
    advance(ms: number): void;
  } {
    const mono = new ManualClock(10_000);
    let offsetMs = tonightMs - mono.now();
    const wall = {
      now: (): number => mono.now() + offsetMs,
      set: (ms: number): void => {
        offsetMs = ms - mono.now();
      },
    };
    const watcher = new StepWatcher({
      now: wall.now,
      monotonicNow: mono.now,
      timers: mono,
      log: quietLog,
      thresholdMs: 2000,
      intervalMs: 1000,
    });
    watchers.push(watcher);
    const steps: ClockStep[] = [];
    watcher.on('step', (step) => steps.push(step));
    return { wall, mono, steps, watcher, advance: (ms) => mono.advance(ms) };
  }

  it('reports nothing while the wall clock runs normally', () => {
    const { steps, watcher, advance } = setup();
    watcher.start();
    advance(60_000);
    expect(steps).toEqual([]);
  });

  it('reports a step back at the next comparison', () => {
    const { wall, steps, watcher, advance } = setup();
    watcher.start();
    advance(5000);
    wall.set(wall.now() - 3_600_000);
    advance(1000);
    expect(steps).toHaveLength(1);
    expect(steps[0]).toMatchObject({ direction: 'back', stepMs: -3_600_000 });
    advance(10_000);
    expect(steps).toHaveLength(1);
  });

  it('reports a step forward', () => {
    const { wall, steps, watcher, advance } = setup();
    watcher.start();
    advance(1000);
    wall.set(wall.now() + 86_400_000);
    advance(1000);
    expect(steps.map((step) => [step.direction, step.stepMs])).toEqual([['forward', 86_400_000]]);
  });

  it('poll() finds a step at once, before the next interval, and the interval does not report it again', () => {
    const { wall, steps, watcher, advance } = setup();
    watcher.start();
    advance(200);
    wall.set(wall.now() - 10_000);
    expect(watcher.poll()).toMatchObject({ direction: 'back', stepMs: -10_000 });
    advance(2000);
    expect(steps).toHaveLength(1);
  });

  it('keeps watching after a listener throws', () => {
    const { wall, steps, watcher, advance } = setup();
    watcher.prependListener('step', () => {
      throw new Error('bad listener');
    });
    watcher.start();
    advance(1000);
    wall.set(wall.now() - 60_000);
    advance(1000);
    wall.set(wall.now() - 60_000);
    advance(1000);
    expect(steps).toHaveLength(2);
  });

  it('stops its timer, idempotently, and a restart compares from a fresh reading', () => {
    const { wall, mono, steps, watcher, advance } = setup();
    watcher.start();
    expect(mono.pendingCount).toBe(1);
    watcher.stop();
    watcher.stop();
    expect(mono.pendingCount).toBe(0);
    wall.set(wall.now() - 60_000);
    watcher.start();
    advance(5000);
    expect(steps).toEqual([]);
  });
});

describe('detectStep with readings that are not numbers', () => {
  it('finds no step (there is nothing to compare), and does not throw', () => {
    expect(detectStep({ wallMs: Number.NaN, monoMs: 0 }, { wallMs: tonightMs, monoMs: 1000 }, 2000)).toBe(
      undefined,
    );
  });
});
