// window-missed: reported once for each agreed window in which no view started, also after a restart.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  type AuditEntry,
  type AuditTrail,
  type RecordOptions,
  WindowWatch,
  windowMissedId,
} from '../../device/audit/index.js';
import { silentLogger } from '../../device/log/index.js';
import { type AuditRecord, ScheduleClaims } from '../../device/protocol/index.js';
import { ManualClock } from '../../scripts/devstack/manual-clock.js';
import { nightlySchedule } from '../../scripts/devstack/tokens.js';
import { createTrail, flushIo, readAll, tempDir } from './helpers.js';

// Tuesday 2026-03-10: the nightly window is 22:00-07:00 local, 21:00Z to 06:00Z the next day.
const beforeWindowMs = Date.UTC(2026, 2, 10, 20, 0);
const windowStartMs = Date.UTC(2026, 2, 10, 21, 0);
const windowEndMs = Date.UTC(2026, 2, 11, 6, 0);
const minuteMs = 60_000;
const schedule = ScheduleClaims.parse(nightlySchedule('dev-test'));

class FakeTrail {
  made: Array<{ entry: AuditEntry; options: RecordOptions }> = [];
  fail = false;
  record = async (entry: AuditEntry, options: RecordOptions = {}) => {
    if (this.fail) throw new Error('disk full');
    this.made.push({ entry, options });
    return {} as AuditRecord;
  };
}

let dir: string;
let remove: () => Promise<void>;
const watches: WindowWatch[] = [];

beforeEach(async () => {
  ({ dir, remove } = await tempDir());
});

afterEach(async () => {
  for (const watch of watches.splice(0)) await watch.stop();
  await remove();
});

function createWatch(
  clock: ManualClock,
  trail: Pick<AuditTrail, 'record'>,
  options: { clockTrusted?: () => boolean; withSchedule?: boolean } = {},
): WindowWatch {
  const watch = new WindowWatch({
    path: join(dir, 'window-watch.json'),
    deviceId: 'dev-test',
    timeZone: 'Europe/Stockholm',
    now: clock.now,
    timers: clock,
    log: silentLogger(),
    schedule: () => (options.withSchedule === false ? undefined : schedule),
    clockTrusted: options.clockTrusted ?? (() => true),
    trail,
  });
  watches.push(watch);
  return watch;
}

/** Moves the manual clock, firing the timers on the way; the last minute is its own step, so the
 * check at its end runs at that instant and not coalesced with earlier ones. Each step waits until
 * every watch has finished the checks and saves it started (on a loaded machine a save can take
 * longer than any fixed pause). */
async function advance(clock: ManualClock, ms: number): Promise<void> {
  if (ms > minuteMs) {
    clock.advance(ms - minuteMs);
    await settle();
  }
  clock.advance(Math.min(ms, minuteMs));
  await settle();
}

async function settle(): Promise<void> {
  await flushIo();
  for (const watch of watches) await watch.idle();
}

const missed = {
  kind: 'window-missed',
  windowStart: new Date(windowStartMs).toISOString(),
  windowEnd: new Date(windowEndMs).toISOString(),
};

describe('WindowWatch', () => {
  it('reports a window in which nobody looked, at its end', async () => {
    const clock = new ManualClock(beforeWindowMs);
    const trail = new FakeTrail();
    await createWatch(clock, trail).start();
    await advance(clock, windowEndMs - beforeWindowMs - minuteMs);
    expect(trail.made).toEqual([]);
    await advance(clock, minuteMs);
    expect(trail.made).toEqual([
      {
        entry: missed,
        options: { atMs: windowEndMs, id: windowMissedId('dev-test', windowStartMs, windowEndMs) },
      },
    ]);
  });

  it('checks at the exact end of the window, not only on the minute', async () => {
    const clock = new ManualClock(beforeWindowMs + 30_000);
    const trail = new FakeTrail();
    await createWatch(clock, trail).start();
    // The minute checks fall on hh:mm:30; the last one before the end is at 05:59:30.
    clock.advance(windowEndMs - 10_000 - clock.now());
    await flushIo();
    expect(trail.made).toEqual([]);
    clock.advance(10_000);
    await flushIo();
    expect(trail.made.map((made) => made.options.atMs)).toEqual([windowEndMs]);
  });

  it('does not report a window in which a view started', async () => {
    const clock = new ManualClock(beforeWindowMs);
    const trail = new FakeTrail();
    const watch = createWatch(clock, trail);
    await watch.start();
    await advance(clock, 3 * 60 * minuteMs);
    watch.noteLook(clock.now());
    await advance(clock, windowEndMs + minuteMs - clock.now());
    expect(trail.made).toEqual([]);
  });

  it('reports a window with only a look before it opened', async () => {
    const clock = new ManualClock(beforeWindowMs);
    const trail = new FakeTrail();
    const watch = createWatch(clock, trail);
    await watch.start();
    watch.noteLook(clock.now());
    await advance(clock, windowEndMs + minuteMs - clock.now());
    expect(trail.made.map((made) => made.entry)).toEqual([missed]);
  });

  it('reports a window that ended while the device was off, after the restart', async () => {
    const clock = new ManualClock(beforeWindowMs);
    const first = new FakeTrail();
    const watch = createWatch(clock, first);
    await watch.start();
    await watch.stop();
    clock.set(Date.UTC(2026, 2, 11, 9, 0));
    const second = new FakeTrail();
    await createWatch(clock, second).start();
    expect(first.made).toEqual([]);
    expect(second.made.map((made) => made.entry)).toEqual([missed]);
  });

  it('remembers a look across a restart within the window', async () => {
    const clock = new ManualClock(beforeWindowMs);
    const first = createWatch(clock, new FakeTrail());
    await first.start();
    await advance(clock, 2 * 60 * minuteMs);
    first.noteLook(clock.now());
    await first.stop();
    clock.set(Date.UTC(2026, 2, 11, 9, 0));
    const trail = new FakeTrail();
    await createWatch(clock, trail).start();
    expect(trail.made).toEqual([]);
  });

  it('reports a window once, not again at later checks or after a restart', async () => {
    const clock = new ManualClock(beforeWindowMs);
    const trail = new FakeTrail();
    const watch = createWatch(clock, trail);
    await watch.start();
    await advance(clock, windowEndMs + 30 * minuteMs - clock.now());
    await watch.stop();
    const again = new FakeTrail();
    await createWatch(clock, again).start();
    await advance(clock, 10 * minuteMs);
    expect(trail.made).toHaveLength(1);
    expect(again.made).toEqual([]);
  });

  it('looks back at most seven days after a long time off', async () => {
    const clock = new ManualClock(beforeWindowMs);
    const watch = createWatch(clock, new FakeTrail());
    await watch.start();
    await watch.stop();
    clock.set(Date.UTC(2026, 2, 30, 12, 0));
    const trail = new FakeTrail();
    await createWatch(clock, trail).start();
    const ends = trail.made.map((made) => Date.parse((made.entry as typeof missed).windowEnd));
    expect(ends).toHaveLength(7);
    expect(Math.min(...ends)).toBeGreaterThanOrEqual(clock.now() - 7 * 86_400_000);
  });

  it('reports nothing before its first start', async () => {
    const clock = new ManualClock(Date.UTC(2026, 2, 11, 9, 0));
    const trail = new FakeTrail();
    await createWatch(clock, trail).start();
    expect(trail.made).toEqual([]);
  });

  it('waits for a trusted clock, then reports the windows it could not check', async () => {
    const clock = new ManualClock(beforeWindowMs);
    const trail = new FakeTrail();
    let trusted = false;
    await createWatch(clock, trail, { clockTrusted: () => trusted }).start();
    await advance(clock, windowEndMs + 10 * minuteMs - clock.now());
    expect(trail.made).toEqual([]);
    trusted = true;
    await advance(clock, minuteMs);
    expect(trail.made.map((made) => made.entry)).toEqual([missed]);
  });

  it('tries again when the record could not be written', async () => {
    const clock = new ManualClock(beforeWindowMs);
    const trail = new FakeTrail();
    trail.fail = true;
    await createWatch(clock, trail).start();
    await advance(clock, windowEndMs + minuteMs - clock.now());
    trail.fail = false;
    await advance(clock, minuteMs);
    expect(trail.made.map((made) => made.entry)).toEqual([missed]);
  });

  it('reports nothing without a schedule', async () => {
    const clock = new ManualClock(beforeWindowMs);
    const trail = new FakeTrail();
    await createWatch(clock, trail, { withSchedule: false }).start();
    await advance(clock, windowEndMs + minuteMs - clock.now());
    expect(trail.made).toEqual([]);
  });

  it('reports a window that passes unused after the first schedule arrived during it', async () => {
    const clock = new ManualClock(beforeWindowMs);
    const trail = new FakeTrail();
    let current: ScheduleClaims | undefined;
    const watch = new WindowWatch({
      path: join(dir, 'window-watch.json'),
      deviceId: 'dev-test',
      timeZone: 'Europe/Stockholm',
      now: clock.now,
      timers: clock,
      log: silentLogger(),
      schedule: () => current,
      clockTrusted: () => true,
      trail,
    });
    watches.push(watch);
    await watch.start();
    await advance(clock, windowStartMs + 2 * 60 * minuteMs - clock.now());
    const arrivedMs = clock.now();
    current = { ...schedule, nbf: arrivedMs / 1000 };
    await advance(clock, windowEndMs + minuteMs - clock.now());
    // The window as clipped to the schedule's validity, which began when it was issued.
    expect(trail.made.map((made) => made.entry)).toEqual([
      { ...missed, windowStart: new Date(arrivedMs).toISOString() },
    ]);
  });

  it('writes a window-missed record whose id is the same when read back and when made again', async () => {
    const clock = new ManualClock(beforeWindowMs);
    const { trail } = createTrail({ dir: join(dir, 'audit'), clock });
    await trail.start();
    await createWatch(clock, trail).start();
    await advance(clock, windowEndMs - clock.now());
    await trail.stop();
    const { records } = await readAll(join(dir, 'audit'));
    expect(records).toEqual([
      {
        schemaVersion: 2,
        id: windowMissedId('dev-test', windowStartMs, windowEndMs),
        at: new Date(windowEndMs).toISOString(),
        deviceId: 'dev-test',
        ...missed,
      },
    ]);
    expect(windowMissedId('dev-test', windowStartMs, windowEndMs)).not.toBe(
      windowMissedId('dev-other', windowStartMs, windowEndMs),
    );
  });

  it('stops its timers and is idempotent to stop', async () => {
    const clock = new ManualClock(beforeWindowMs);
    const watch = createWatch(clock, new FakeTrail());
    await watch.start();
    await Promise.all([watch.stop(), watch.stop()]);
    expect(clock.pendingCount).toBe(0);
    const state = JSON.parse(await readFile(join(dir, 'window-watch.json'), 'utf8'));
    expect(state).toEqual({ lastCheckedAt: new Date(beforeWindowMs).toISOString(), looks: [] });
  });
});
