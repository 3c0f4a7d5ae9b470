// Used nonces are kept until the floor (the lowest trusted time) has passed their grant's expiry.
import { describe, expect, it } from 'vitest';
import { pruneNoncesByFloor } from '../../device/clock/index.js';

const tonightS = Date.UTC(2026, 11, 1, 22, 0) / 1000;

describe('pruneNoncesByFloor', () => {
  it('drops a nonce whose grant expired at or before the floor', () => {
    const nonces = { early: tonightS - 600, exact: tonightS };
    expect(pruneNoncesByFloor(nonces, tonightS * 1000)).toEqual({});
  });

  it('keeps a nonce whose grant expires after the floor, even long after the wall clock passed it', () => {
    // The wall clock may read a day later; only the floor counts, and it has not passed the expiry.
    expect(pruneNoncesByFloor({ late: tonightS + 1 }, tonightS * 1000)).toEqual({ late: tonightS + 1 });
  });

  it('keeps a nonce with no usable expiry: refusing a replay is the safe side', () => {
    expect(pruneNoncesByFloor({ odd: Number.NaN }, tonightS * 1000)).toHaveProperty('odd');
  });

  it('returns a new object and leaves its input alone', () => {
    const nonces = Object.freeze({ a: tonightS - 1, b: tonightS + 1 });
    const kept = pruneNoncesByFloor(nonces, tonightS * 1000);
    expect(kept).toEqual({ b: tonightS + 1 });
    expect(nonces).toEqual({ a: tonightS - 1, b: tonightS + 1 });
  });
});
