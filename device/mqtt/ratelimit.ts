// Token buckets for what arrives on the device's inbound topics, taken before anything costly is done
// with a message (signature checks, audit records, replies). Pure: the clock is injected, and the
// bucket holds nothing but two numbers. A message over the limit is dropped and counted, not queued:
// a queue would only move the flood into memory.
export interface TokenBucketOptions {
  /** Tokens added per second (sustained rate). */
  perS: number;
  /** Most tokens held (the burst admitted after a quiet spell). */
  burst: number;
  /** A monotonic clock in milliseconds: a wall clock set back must not refill or drain the bucket. */
  now(): number;
}

export class TokenBucket {
  readonly #perMs: number;
  readonly #burst: number;
  readonly #now: () => number;
  #tokens: number;
  #atMs: number;
  #dropped = 0;

  constructor(options: TokenBucketOptions) {
    if (!(options.perS > 0) || !(options.burst >= 1))
      throw new Error('a bucket needs perS > 0 and burst >= 1');
    this.#perMs = options.perS / 1000;
    this.#burst = options.burst;
    this.#now = options.now;
    this.#tokens = options.burst;
    this.#atMs = options.now();
  }

  /** Takes one token if there is one; counts a drop if not. */
  take(): boolean {
    this.#refill();
    if (this.#tokens >= 1) {
      this.#tokens -= 1;
      return true;
    }
    this.#dropped += 1;
    return false;
  }

  /** Milliseconds until the next token is there (0 if one is there now). */
  waitMs(): number {
    this.#refill();
    return this.#tokens >= 1 ? 0 : Math.ceil((1 - this.#tokens) / this.#perMs);
  }

  /** Messages refused since the bucket was made. */
  get dropped(): number {
    return this.#dropped;
  }

  #refill(): void {
    const nowMs = this.#now();
    const elapsedMs = Math.max(0, nowMs - this.#atMs);
    this.#atMs = Math.max(this.#atMs, nowMs);
    this.#tokens = Math.min(this.#burst, this.#tokens + elapsedMs * this.#perMs);
  }
}
