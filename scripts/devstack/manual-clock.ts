// A clock and timers that move only when a test says so. Timers fire in due order during advance().
// The wall clock can be stepped (set); the monotonic clock only moves with advance().
import { type Clock, systemClock } from '../../device/clock/index.js';

interface Pending {
  id: number;
  dueMs: number;
  callback: () => void;
  everyMs: number | undefined;
}

export class ManualClock implements Clock {
  #nowMs: number;
  #monoMs = 0;
  #nextId = 1;
  #pending = new Map<number, Pending>();

  constructor(startMs: number) {
    this.#nowMs = startMs;
  }

  now = (): number => this.#nowMs;
  monotonicMs = (): number => this.#monoMs;

  setTimeout = (callback: () => void, ms: number): unknown => this.#add(callback, ms, undefined);
  setInterval = (callback: () => void, ms: number): unknown => this.#add(callback, ms, Math.max(1, ms));
  clearTimeout = (handle: unknown): void => {
    this.#pending.delete(handle as number);
  };
  clearInterval = (handle: unknown): void => {
    this.#pending.delete(handle as number);
  };

  #add(callback: () => void, ms: number, everyMs: number | undefined): number {
    const id = this.#nextId++;
    // Timers run on the monotonic clock, as Node's do: a wall-clock step does not move them.
    this.#pending.set(id, { id, dueMs: this.#monoMs + Math.max(0, ms), callback, everyMs });
    return id;
  }

  get pendingCount(): number {
    return this.#pending.size;
  }

  /** Moves time forward, firing due timers in order with the clocks set to each one's due time. */
  advance(ms: number): void {
    const targetMono = this.#monoMs + ms;
    for (;;) {
      let next: Pending | undefined;
      for (const timer of this.#pending.values()) if (!next || timer.dueMs < next.dueMs) next = timer;
      if (!next || next.dueMs > targetMono) break;
      this.#move(next.dueMs);
      if (next.everyMs === undefined) this.#pending.delete(next.id);
      else next.dueMs += next.everyMs;
      next.callback();
    }
    this.#move(targetMono);
  }

  #move(toMono: number): void {
    const stepMs = Math.max(0, toMono - this.#monoMs);
    this.#monoMs += stepMs;
    this.#nowMs += stepMs;
  }

  /** Sets the wall clock (a clock step); the monotonic clock and timers' due times stay as they are. */
  set(ms: number): void {
    this.#nowMs = ms;
  }
}

/** Real timers and monotonic time, with the wall clock held at `wallMs` (or read from a function). */
export function fixedWallClock(wallMs: number | (() => number)): Clock {
  return { ...systemClock, now: typeof wallMs === 'number' ? () => wallMs : wallMs };
}
