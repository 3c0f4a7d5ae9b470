// The inbound token bucket: a burst, then the sustained rate; drops are counted; time runs on the
// injected monotonic clock only.
import { describe, expect, it } from 'vitest';
import { TokenBucket } from '../../device/mqtt/index.js';

function bucket(perS: number, burst: number): { bucket: TokenBucket; clock: { ms: number } } {
  const clock = { ms: 1000 };
  return { bucket: new TokenBucket({ perS, burst, now: () => clock.ms }), clock };
}

function takeAll(target: TokenBucket, times: number): number {
  let taken = 0;
  for (let i = 0; i < times; i += 1) if (target.take()) taken += 1;
  return taken;
}

describe('TokenBucket', () => {
  it('admits a full burst at once and drops the rest', () => {
    const { bucket: b } = bucket(20, 40);
    expect(takeAll(b, 100)).toBe(40);
    expect(b.dropped).toBe(60);
  });

  it('admits the sustained rate after the burst is spent', () => {
    const { bucket: b, clock } = bucket(20, 40);
    takeAll(b, 40);
    let taken = 0;
    // Ten seconds of a flood at 3,000 a second, in 1 ms steps.
    for (let step = 0; step < 10_000; step += 1) {
      clock.ms += 1;
      taken += takeAll(b, 3);
    }
    expect(taken).toBe(200);
  });

  it('never holds more than its burst after a quiet spell', () => {
    const { bucket: b, clock } = bucket(20, 40);
    clock.ms += 3_600_000;
    expect(takeAll(b, 100)).toBe(40);
  });

  it('does not refill when the clock goes back', () => {
    const { bucket: b, clock } = bucket(1, 1);
    expect(b.take()).toBe(true);
    clock.ms -= 10_000;
    expect(b.take()).toBe(false);
    clock.ms += 10_000;
    expect(b.take()).toBe(false);
    clock.ms += 1000;
    expect(b.take()).toBe(true);
  });

  it('says how long until the next token', () => {
    const { bucket: b, clock } = bucket(2, 1);
    expect(b.waitMs()).toBe(0);
    b.take();
    expect(b.waitMs()).toBe(500);
    clock.ms += 200;
    expect(b.waitMs()).toBe(300);
  });

  it('refuses a bucket that could never admit anything', () => {
    expect(() => bucket(0, 10)).toThrow();
    expect(() => bucket(1, 0)).toThrow();
  });
});
