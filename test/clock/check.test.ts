// The composed clock check: plausible AND synchronised (kernel, flag file as fallback) AND not below the
// time floor; a trusted check raises the floor. Then the scenario of issue 9: a clock set back to the
// previous night is not trusted, even though the kernel and the flag file both say "synchronised".
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  clockCheck,
  combinedClockCheck,
  type FloorGuard,
  type KernelReadResult,
  kernelSyncCheck,
  pruneNoncesByFloor,
  type SyncCheck,
  TimeFloor,
} from '../../device/clock/index.js';
import { ManualClock } from '../../scripts/devstack/manual-clock.js';
import { captureLog, quietLog } from '../hardware/log-capture.js';

const tonightMs = Date.UTC(2026, 11, 1, 22, 0);
const synced: KernelReadResult = {
  ok: true,
  value: { state: 0, status: 0x0001, maxErrorUs: 48_000, estErrorUs: 1_200 },
};
const unsynced: KernelReadResult = {
  ok: true,
  value: { state: 5, status: 0x0040, maxErrorUs: 16_000_000, estErrorUs: 16_000_000 },
};
const syncOk: SyncCheck = async () => ({ synchronised: true, detail: 'synchronised' });
const syncNot: SyncCheck = async () => ({ synchronised: false, detail: 'not synchronised' });

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tk-clock-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A floor guard that records what it was raised to. */
function fakeFloor(floorMs: number): FloorGuard & { raisedTo: number[] } {
  const raisedTo: number[] = [];
  return {
    raisedTo,
    check: (nowMs) =>
      nowMs < floorMs - 120_000
        ? { trusted: false, detail: 'below the floor' }
        : { trusted: true, detail: 'above' },
    advanceTo: (nowMs) => {
      raisedTo.push(nowMs);
    },
  };
}

describe('kernelSyncCheck', () => {
  it('follows the kernel when adjtimex can be read, whatever the flag file says', async () => {
    const flag = join(dir, 'synchronized');
    await writeFile(flag, '');
    const check = kernelSyncCheck({ syncedFile: flag, log: quietLog, read: () => unsynced });
    expect(await check()).toMatchObject({ synchronised: false });
    const ok = kernelSyncCheck({ syncedFile: join(dir, 'absent'), log: quietLog, read: () => synced });
    expect(await ok()).toMatchObject({ synchronised: true });
  });

  it('falls back to the flag file when adjtimex is unavailable, and warns once', async () => {
    const flag = join(dir, 'synchronized');
    const captured = captureLog();
    const check = kernelSyncCheck({
      syncedFile: flag,
      log: captured.log,
      read: () => ({ ok: false, detail: 'adjtimex unavailable: no koffi' }),
    });
    expect(await check()).toEqual({
      synchronised: false,
      detail: `adjtimex unavailable: no koffi; ${flag} absent: not synchronised yet`,
    });
    await writeFile(flag, '');
    expect(await check()).toMatchObject({ synchronised: true });
    expect(captured.records().filter((r) => r.msg.includes('using the flag file'))).toHaveLength(1);
  });
});

describe('combinedClockCheck', () => {
  it('trusts a plausible, synchronised clock above the floor, and raises the floor to it', async () => {
    const floor = fakeFloor(tonightMs);
    const check = combinedClockCheck({ now: () => tonightMs, sync: syncOk, floor });
    expect(await check()).toEqual({ trusted: true, kind: 'trusted', detail: 'synchronised; above' });
    expect(floor.raisedTo).toEqual([tonightMs]);
  });

  it('does not trust a clock below the floor even when synchronised (kind below-floor), nor raise the floor', async () => {
    const floor = fakeFloor(tonightMs);
    const check = combinedClockCheck({ now: () => tonightMs - 86_400_000, sync: syncOk, floor });
    expect(await check()).toEqual({ trusted: false, kind: 'below-floor', detail: 'below the floor' });
    expect(floor.raisedTo).toEqual([]);
  });

  it('does not trust an unsynchronised clock (kind unsynchronised), nor raise the floor', async () => {
    const floor = fakeFloor(tonightMs);
    const check = combinedClockCheck({ now: () => tonightMs, sync: syncNot, floor });
    expect(await check()).toEqual({ trusted: false, kind: 'unsynchronised', detail: 'not synchronised' });
    expect(floor.raisedTo).toEqual([]);
  });

  it('does not trust a time before 2026 (kind implausible)', async () => {
    const check = combinedClockCheck({ now: () => Date.UTC(2025, 5, 1), sync: syncOk });
    expect(await check()).toEqual({
      trusted: false,
      kind: 'implausible',
      detail: 'clock reads 2025-06-01T00:00:00.000Z',
    });
  });

  it('names every failing part, the most serious first', async () => {
    const floor = fakeFloor(tonightMs);
    const check = combinedClockCheck({ now: () => tonightMs - 86_400_000, sync: syncNot, floor });
    expect(await check()).toEqual({
      trusted: false,
      kind: 'below-floor',
      detail: 'below the floor; not synchronised',
    });
  });

  it('does not trust a clock whose synchronisation check throws (kind error)', async () => {
    const check = combinedClockCheck({
      now: () => tonightMs,
      sync: async () => {
        throw new Error('boom');
      },
    });
    expect(await check()).toEqual({
      trusted: false,
      kind: 'error',
      detail: 'cannot check synchronisation: boom',
    });
  });
});

describe('clockCheck by mode', () => {
  it('kernel: follows adjtimex', async () => {
    const check = clockCheck({
      mode: 'kernel',
      syncedFile: join(dir, 'x'),
      now: () => tonightMs,
      readKernel: () => unsynced,
    });
    expect(await check()).toMatchObject({ trusted: false, kind: 'unsynchronised' });
  });

  it('timesyncd: follows the flag file only', async () => {
    const flag = join(dir, 'synchronized');
    await writeFile(flag, '');
    const check = clockCheck({
      mode: 'timesyncd',
      syncedFile: flag,
      now: () => tonightMs,
      readKernel: () => unsynced,
    });
    expect(await check()).toMatchObject({ trusted: true, detail: `${flag} present` });
  });

  it('trusted: trusts by configuration, yet still applies the floor', async () => {
    const check = clockCheck({ mode: 'trusted', syncedFile: '/nonexistent', now: () => tonightMs });
    expect(await check()).toEqual({ trusted: true, kind: 'trusted', detail: 'trusted by configuration' });
    const below = clockCheck({
      mode: 'trusted',
      syncedFile: '/nonexistent',
      now: () => tonightMs - 86_400_000,
      floor: fakeFloor(tonightMs),
    });
    expect(await below()).toMatchObject({ trusted: false, kind: 'below-floor' });
  });
});

describe('a clock set back to the previous night (issue 9)', () => {
  it('is not trusted although the kernel and the flag file say synchronised, and the used nonce is kept', async () => {
    const clock = new ManualClock(tonightMs);
    const flag = join(dir, 'synchronized');
    await writeFile(flag, '');
    const floor = new TimeFloor({ stateDir: dir, log: quietLog, timers: clock, toleranceMs: 120_000 });
    await floor.start();
    const check = clockCheck({
      mode: 'kernel',
      syncedFile: flag,
      now: clock.now,
      floor,
      readKernel: () => synced,
    });

    // A look at 22:00: the clock is trusted, the grant (valid 10 min) accepted, the floor raised to it.
    expect((await check()).trusted).toBe(true);
    await floor.raise(clock.now());
    const grantExpS = tonightMs / 1000 + 600;
    let nonces: Record<string, number> = { 'grant-1': grantExpS };

    // The device keeps running and checking for an hour; the floor follows the trusted clock.
    for (let i = 0; i < 360; i += 1) {
      clock.advance(10_000);
      expect((await check()).trusted).toBe(true);
    }
    expect(floor.floorMs).toBe(tonightMs + 3_600_000);
    await floor.stop();

    // Restart; then someone sets the clock back 24 h, to just after last night's grant was issued.
    const restarted = new TimeFloor({ stateDir: dir, log: quietLog, timers: clock, toleranceMs: 120_000 });
    await restarted.start();
    clock.set(tonightMs - 86_400_000 + 60_000);
    const afterRestart = clockCheck({
      mode: 'kernel',
      syncedFile: flag,
      now: clock.now,
      floor: restarted,
      readKernel: () => synced,
    });
    const verdict = await afterRestart();
    expect(verdict).toMatchObject({ trusted: false, kind: 'below-floor' });
    expect(verdict.detail).toContain('s before the last trusted time 2026-12-01T23:00:00.000Z');

    // Set back only to 22:01, within the grant's lifetime but 59 min below the floor: still refused.
    // The nonce may go: the floor has passed its expiry, so every clock still trusted sees it expired.
    clock.set(tonightMs + 60_000);
    expect((await afterRestart()).kind).toBe('below-floor');
    nonces = pruneNoncesByFloor(nonces, restarted.trustedFromMs);
    expect(nonces).toEqual({});
    await restarted.stop();
  });

  it('keeps a nonce while a clock set back within the tolerance could still see its grant unexpired', async () => {
    const clock = new ManualClock(tonightMs);
    const floor = new TimeFloor({ stateDir: dir, log: quietLog, timers: clock, toleranceMs: 120_000 });
    await floor.start();
    const check = clockCheck({ mode: 'trusted', syncedFile: '/nonexistent', now: clock.now, floor });
    await floor.raise(clock.now());
    const grantExpS = tonightMs / 1000 + 60;
    clock.advance(90_000);
    expect((await check()).trusted).toBe(true);
    // The floor is 30 s past the expiry, but a clock set back 100 s is still trusted and would read
    // the grant as valid: the nonce must stay.
    expect(pruneNoncesByFloor({ 'grant-1': grantExpS }, floor.trustedFromMs)).toEqual({
      'grant-1': grantExpS,
    });
    clock.set(clock.now() - 100_000);
    expect((await check()).trusted).toBe(true);
    expect(clock.now()).toBeLessThan(grantExpS * 1000);
    await floor.stop();
  });
});

describe('a wall clock that is not a number', () => {
  it('is not trusted, and the check does not throw', async () => {
    const check = combinedClockCheck({ now: () => Number.NaN, sync: syncOk, floor: fakeFloor(tonightMs) });
    expect(await check()).toMatchObject({
      trusted: false,
      kind: 'implausible',
      detail: expect.stringContaining('invalid time'),
    });
  });
});
