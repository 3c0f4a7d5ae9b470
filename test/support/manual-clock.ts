// A clock and timers that move only when a test says so. Timers fire in due order during advance().
import type { Timers } from '../../device/supervisor/index.js';

interface Pending {
  id: number;
  dueMs: number;
  callback: () => void;
  everyMs: number | undefined;
}

export class ManualClock implements Timers {
  #nowMs: number;
  #nextId = 1;
  #pending = new Map<number, Pending>();

  constructor(startMs: number) {
    this.#nowMs = startMs;
  }

  now = (): number => this.#nowMs;

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
    this.#pending.set(id, { id, dueMs: this.#nowMs + Math.max(0, ms), callback, everyMs });
    return id;
  }

  get pendingCount(): number {
    return this.#pending.size;
  }

  /** Moves time forward, firing due timers in order with the clock set to each one's due time. */
  advance(ms: number): void {
    const targetMs = this.#nowMs + ms;
    for (;;) {
      let next: Pending | undefined;
      for (const timer of this.#pending.values()) if (!next || timer.dueMs < next.dueMs) next = timer;
      if (!next || next.dueMs > targetMs) break;
      this.#nowMs = Math.max(this.#nowMs, next.dueMs);
      if (next.everyMs === undefined) this.#pending.delete(next.id);
      else next.dueMs += next.everyMs;
      next.callback();
    }
    this.#nowMs = targetMs;
  }

  /** Sets the wall clock (a clock step); timers keep their due times. */
  set(ms: number): void {
    this.#nowMs = ms;
  }
}
