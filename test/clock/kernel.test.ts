// The kernel's synchronisation state: the pure reading of adjtimex's answer (fixtures of real answers)
// and one real adjtimex call on this machine, whose result must be a sane structure either way.
import { describe, expect, it } from 'vitest';
import {
  adjtimexReader,
  interpretKernelTime,
  type KernelTimeState,
  STA_UNSYNC,
  TIME_ERROR,
} from '../../device/clock/index.js';

// As timesyncd leaves it after a sync: STA_PLL (0x0001), TIME_OK, a small maximum error.
const synced: KernelTimeState = { state: 0, status: 0x0001, maxErrorUs: 48_000, estErrorUs: 1_200 };
// A freshly booted machine, or one whose time was set by hand: STA_UNSYNC, TIME_ERROR, the 16 s cap.
const freshBoot: KernelTimeState = {
  state: 5,
  status: 0x0040,
  maxErrorUs: 16_000_000,
  estErrorUs: 16_000_000,
};

describe('interpretKernelTime', () => {
  it('trusts TIME_OK without STA_UNSYNC and a small maximum error', () => {
    expect(interpretKernelTime(synced)).toEqual({
      synchronised: true,
      detail: 'kernel clock synchronised (adjtimex state 0, status 0x0001, maxerror 48 ms)',
    });
  });

  it('does not trust a freshly booted clock (TIME_ERROR, STA_UNSYNC)', () => {
    const verdict = interpretKernelTime(freshBoot);
    expect(verdict.synchronised).toBe(false);
    expect(verdict.detail).toBe(
      'kernel clock not synchronised (adjtimex state 5, status 0x0040, maxerror 16000 ms)',
    );
  });

  it('does not trust STA_UNSYNC alone, whatever the return value says', () => {
    const verdict = interpretKernelTime({ ...synced, status: 0x0001 | STA_UNSYNC });
    expect(verdict).toMatchObject({ synchronised: false });
    expect(verdict.detail).toContain('STA_UNSYNC set');
  });

  it('does not trust TIME_ERROR alone, whatever the status bits say', () => {
    expect(interpretKernelTime({ ...synced, state: TIME_ERROR }).synchronised).toBe(false);
  });

  it('trusts a pending leap second (TIME_INS, TIME_WAIT): the clock is still synchronised', () => {
    expect(interpretKernelTime({ ...synced, state: 1, status: 0x0011 }).synchronised).toBe(true);
    expect(interpretKernelTime({ ...synced, state: 4 }).synchronised).toBe(true);
  });

  it('does not trust a maximum error at the kernel limit of 16 s', () => {
    expect(interpretKernelTime({ ...synced, maxErrorUs: 16_000_000 }).synchronised).toBe(false);
  });

  it('does not trust a return value outside the documented range', () => {
    expect(interpretKernelTime({ ...synced, state: 9 }).synchronised).toBe(false);
    expect(interpretKernelTime({ ...synced, state: -1 }).synchronised).toBe(false);
  });
});

describe('adjtimexReader on this machine', () => {
  it('reads the kernel clock state without privileges', () => {
    const result = adjtimexReader();
    if (!result.ok) throw new Error(result.detail);
    const { state, status, maxErrorUs, estErrorUs } = result.value;
    expect(Number.isInteger(state)).toBe(true);
    expect(state).toBeGreaterThanOrEqual(0);
    expect(state).toBeLessThanOrEqual(TIME_ERROR);
    expect(Number.isInteger(status)).toBe(true);
    // Only the kernel's defined STA_* bits (0x0001 … 0x8000) can be set.
    expect(status & ~0xffff).toBe(0);
    expect(maxErrorUs).toBeGreaterThanOrEqual(0);
    expect(estErrorUs).toBeGreaterThanOrEqual(0);
    // The kernel answers TIME_ERROR whenever STA_UNSYNC is set.
    if ((status & STA_UNSYNC) !== 0) expect(state).toBe(TIME_ERROR);
  });

  it('reads the same way twice (the native binding is loaded once) and the reading can be interpreted', () => {
    const first = adjtimexReader();
    const second = adjtimexReader();
    if (!first.ok || !second.ok) throw new Error('adjtimex failed');
    const verdict = interpretKernelTime(second.value);
    expect(verdict.synchronised).toBe(
      (second.value.status & STA_UNSYNC) === 0 &&
        second.value.state !== TIME_ERROR &&
        second.value.maxErrorUs < 16_000_000,
    );
  });
});
