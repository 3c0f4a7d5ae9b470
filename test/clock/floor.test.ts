// The time floor: loaded from and saved to the state directory, raised only forwards, saved every
// interval when it has risen and at once by raise(), and a clock below it (beyond the tolerance) is not
// trusted. A corrupt file keeps the highest floor it still proves.
import { mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  checkFloor,
  earliestPlausibleMs,
  savedFloorGuard,
  TimeFloor,
  timeFloorFileName,
} from '../../device/clock/index.js';
import { ManualClock } from '../../scripts/devstack/manual-clock.js';
import { captureLog, quietLog } from '../hardware/log-capture.js';

const tonightMs = Date.UTC(2026, 11, 1, 22, 0);
const toleranceMs = 120_000;
const saveIntervalMs = 600_000;

let dir: string;
let clock: ManualClock;
const floors: TimeFloor[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tk-floor-'));
  clock = new ManualClock(tonightMs);
});

afterEach(async () => {
  for (const floor of floors.splice(0)) await floor.stop();
  await rm(dir, { recursive: true, force: true });
});

function timeFloor(log = quietLog): TimeFloor {
  const floor = new TimeFloor({ stateDir: dir, log, timers: clock, toleranceMs, saveIntervalMs });
  floors.push(floor);
  return floor;
}

const saved = async (): Promise<{ floorMs: number; floorAt: string }> =>
  JSON.parse(await readFile(join(dir, timeFloorFileName), 'utf8'));

/** Lets the save that a timer started finish. */
const settle = (floor: TimeFloor): Promise<void> => floor.settled();

describe('TimeFloor loading', () => {
  it('starts from the earliest plausible time when nothing was saved', async () => {
    const floor = timeFloor();
    await floor.start();
    expect(floor.floorMs).toBe(earliestPlausibleMs);
    expect(floor.trustedFromMs).toBe(earliestPlausibleMs - toleranceMs);
  });

  it('loads the floor a previous run saved', async () => {
    const first = timeFloor();
    await first.start();
    await first.raise(tonightMs);
    await first.stop();
    const second = timeFloor();
    await second.start();
    expect(second.floorMs).toBe(tonightMs);
  });

  it('keeps the file modification time as the floor when the file is corrupt, and logs it', async () => {
    const path = join(dir, timeFloorFileName);
    await writeFile(path, '{"floorMs": "garbage"');
    const modifiedS = tonightMs / 1000 - 3600;
    await utimes(path, modifiedS, modifiedS);
    const captured = captureLog();
    const floor = timeFloor(captured.log);
    await floor.start();
    expect(floor.floorMs).toBe(modifiedS * 1000);
    expect(captured.records().some((r) => r.level === 50 && r.msg.includes('time floor file corrupt'))).toBe(
      true,
    );
    // The corrupt copy is kept beside, and the floor it proves is written at once.
    expect((await readdir(dir)).sort()).toEqual([
      timeFloorFileName,
      `${timeFloorFileName}.corrupt-${modifiedS * 1000}`,
    ]);
    expect((await saved()).floorMs).toBe(modifiedS * 1000);
  });

  it('never goes below the earliest plausible time, whatever the file says', async () => {
    await writeFile(
      join(dir, timeFloorFileName),
      JSON.stringify({ floorMs: 1000, floorAt: new Date(1000).toISOString() }),
    );
    const floor = timeFloor();
    await floor.start();
    expect(floor.floorMs).toBe(earliestPlausibleMs);
  });
});

describe('TimeFloor.check', () => {
  it('trusts a clock at or above the floor', async () => {
    const floor = timeFloor();
    await floor.start();
    await floor.raise(tonightMs);
    expect(floor.check(tonightMs)).toEqual({
      trusted: true,
      detail: 'not before the time floor 2026-12-01T22:00:00.000Z',
    });
    expect(floor.check(tonightMs + 86_400_000).trusted).toBe(true);
  });

  it('trusts a clock below the floor by no more than the tolerance', async () => {
    const floor = timeFloor();
    await floor.start();
    await floor.raise(tonightMs);
    expect(floor.check(tonightMs - toleranceMs).trusted).toBe(true);
  });

  it('does not trust a clock set back beyond the tolerance, and says by how much', async () => {
    const floor = timeFloor();
    await floor.start();
    await floor.raise(tonightMs);
    expect(floor.check(tonightMs - 3_600_000)).toEqual({
      trusted: false,
      detail:
        'clock reads 2026-12-01T21:00:00.000Z, 3600 s before the last trusted time 2026-12-01T22:00:00.000Z',
    });
    expect(floor.check(tonightMs - toleranceMs - 1).trusted).toBe(false);
  });
});

describe('TimeFloor raising and saving', () => {
  it('only ever rises', async () => {
    const floor = timeFloor();
    await floor.start();
    floor.advanceTo(tonightMs);
    floor.advanceTo(tonightMs - 86_400_000);
    await floor.raise(tonightMs - 1000);
    expect(floor.floorMs).toBe(tonightMs);
    expect((await saved()).floorMs).toBe(tonightMs);
  });

  it('has the raised floor on disk when raise() resolves', async () => {
    const floor = timeFloor();
    await floor.start();
    await floor.raise(tonightMs + 5000);
    expect(await saved()).toEqual({ floorMs: tonightMs + 5000, floorAt: '2026-12-01T22:00:05.000Z' });
  });

  it('saves a floor raised in memory at the next interval, not before', async () => {
    const floor = timeFloor();
    await floor.start();
    await floor.raise(tonightMs);
    floor.advanceTo(tonightMs + saveIntervalMs);
    clock.advance(saveIntervalMs - 1);
    await settle(floor);
    expect((await saved()).floorMs).toBe(tonightMs);
    clock.advance(1);
    await settle(floor);
    expect((await saved()).floorMs).toBe(tonightMs + saveIntervalMs);
  });

  it('saves at once a floor that jumped by more than the save interval (a clock set forward)', async () => {
    const floor = timeFloor();
    await floor.start();
    await floor.raise(tonightMs);
    floor.advanceTo(tonightMs + saveIntervalMs + 1);
    await settle(floor);
    expect((await saved()).floorMs).toBe(tonightMs + saveIntervalMs + 1);
  });

  it('writes nothing at an interval when the floor has not risen', async () => {
    const floor = timeFloor();
    await floor.start();
    await floor.raise(tonightMs);
    const before = (await stat(join(dir, timeFloorFileName))).mtimeMs;
    await new Promise((resolve) => setTimeout(resolve, 20));
    clock.advance(saveIntervalMs);
    await settle(floor);
    expect((await stat(join(dir, timeFloorFileName))).mtimeMs).toBe(before);
  });

  it('coalesces raises made while a save is running, and the last (highest) floor wins', async () => {
    const floor = timeFloor();
    await floor.start();
    await Promise.all(Array.from({ length: 20 }, (_, i) => floor.raise(tonightMs + i * 1000)));
    expect((await saved()).floorMs).toBe(tonightMs + 19_000);
    // No temp files are left behind.
    expect(await readdir(dir)).toEqual([timeFloorFileName]);
  });

  it('saves a risen floor at stop, stops its timer, and stops idempotently', async () => {
    const floor = timeFloor();
    await floor.start();
    expect(clock.pendingCount).toBe(1);
    floor.advanceTo(tonightMs + 1);
    await floor.stop();
    await floor.stop();
    expect(clock.pendingCount).toBe(0);
    expect((await saved()).floorMs).toBe(tonightMs + 1);
  });

  it('rejects raise() when the floor cannot be written, so the caller can refuse the grant', async () => {
    const floor = new TimeFloor({
      stateDir: join(dir, 'missing'),
      log: quietLog,
      timers: clock,
      toleranceMs,
    });
    floors.push(floor);
    await floor.start();
    await expect(floor.raise(tonightMs)).rejects.toThrow(/ENOENT/);
    // The floor still rose in memory: the running device keeps refusing a clock set back.
    expect(floor.check(tonightMs - 3_600_000).trusted).toBe(false);
  });
});

describe('checkFloor', () => {
  it('does not trust a reading that is not a number', () => {
    expect(checkFloor(Number.NaN, tonightMs, toleranceMs).trusted).toBe(false);
  });
});

describe('savedFloorGuard (read only, for the self-test)', () => {
  it('checks against the saved floor and writes nothing, not even when raised', async () => {
    const floor = timeFloor();
    await floor.start();
    await floor.raise(tonightMs);
    await floor.stop();
    const before = await readFile(join(dir, timeFloorFileName), 'utf8');
    const guard = await savedFloorGuard({ stateDir: dir, toleranceMs });
    expect(guard.floorMs).toBe(tonightMs);
    expect(guard.check(tonightMs - 3_600_000).trusted).toBe(false);
    expect(guard.check(tonightMs).trusted).toBe(true);
    guard.advanceTo(tonightMs + 86_400_000);
    expect(guard.check(tonightMs).trusted).toBe(true);
    expect(await readFile(join(dir, timeFloorFileName), 'utf8')).toBe(before);
  });

  it('gives the minimum when nothing was saved', async () => {
    expect((await savedFloorGuard({ stateDir: dir, toleranceMs })).floorMs).toBe(earliestPlausibleMs);
    expect(await readdir(dir)).toEqual([]);
  });
});
