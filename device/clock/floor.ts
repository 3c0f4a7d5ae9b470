// The time floor: a persisted high-water mark of wall-clock time that was trusted. A Pi has no
// real-time clock and NTP answers are not authenticated, so "synchronised" alone cannot stop a clock
// set back to last night from making last night's grants and nonces valid again. The floor can: a
// wall clock more than a small tolerance below it is not trusted, whatever the kernel says. The floor
// rises (in memory) at every trusted clock check, is saved every few minutes when it has risen (at
// once when it jumped by more than that interval), and is saved at once, durably, at every accepted grant (`raise`), so no grant is ever accepted at a
// time that a later start could believe lies in the future.
import { rename, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import type { Logger } from '../log/index.js';
import { readJsonFile, writeFileAtomic } from '../state/index.js';
import type { Timers } from './clock.js';
import { isoTime as iso } from './format.js';

/** No device built from this code can legitimately run before this instant (2026-01-01T00:00:00Z). */
export const earliestPlausibleMs = Date.UTC(2026, 0, 1);

export const timeFloorFileName = 'time-floor.json';

const defaultSaveIntervalMs = 600_000;

export const TimeFloorFile = z
  .object({
    /** The highest wall-clock time (epoch ms) known to have been trusted. */
    floorMs: z.number().int().nonnegative().max(8_640_000_000_000_000),
    /** The same instant, for people reading the file. */
    floorAt: z.iso.datetime(),
  })
  .strict();
export type TimeFloorFile = z.infer<typeof TimeFloorFile>;

export interface FloorVerdict {
  trusted: boolean;
  detail: string;
}

/** What a clock check needs of a floor; TimeFloor implements it, tests may fake it. */
export interface FloorGuard {
  check(nowMs: number): FloorVerdict;
  /** Raises the floor in memory to a time that a trusted check has just read. */
  advanceTo(nowMs: number): void;
}

export interface TimeFloorDeps {
  stateDir: string;
  log: Logger;
  timers: Timers;
  /** How far below the floor the wall clock may read and still be trusted (NTP corrections, jitter). */
  toleranceMs: number;
  /** How often a risen floor is saved; default 10 min. */
  saveIntervalMs?: number;
  /** The lowest floor there can be; default earliestPlausibleMs. */
  minimumMs?: number;
}

/** Pure: is a wall clock reading `nowMs` at or above `floorMs`, less `toleranceMs`? */
export function checkFloor(nowMs: number, floorMs: number, toleranceMs: number): FloorVerdict {
  const belowMs = floorMs - nowMs;
  if (!(belowMs <= toleranceMs)) {
    return {
      trusted: false,
      detail: `clock reads ${iso(nowMs)}, ${Math.round(belowMs / 1000)} s before the last trusted time ${iso(floorMs)}`,
    };
  }
  return { trusted: true, detail: `not before the time floor ${iso(floorMs)}` };
}

/**
 * A read-only guard from the saved floor, for tools that must not write the service's state (the
 * technician's self-test). A missing or unreadable file gives the minimum.
 */
export async function savedFloorGuard(deps: {
  stateDir: string;
  toleranceMs: number;
  minimumMs?: number;
}): Promise<FloorGuard & { floorMs: number }> {
  const result = await readJsonFile(join(deps.stateDir, timeFloorFileName), TimeFloorFile);
  const minimumMs = deps.minimumMs ?? earliestPlausibleMs;
  const floorMs = result.status === 'ok' ? Math.max(minimumMs, result.value.floorMs) : minimumMs;
  return {
    floorMs,
    check: (nowMs) => checkFloor(nowMs, floorMs, deps.toleranceMs),
    advanceTo: () => undefined,
  };
}

export class TimeFloor implements FloorGuard {
  readonly #deps: TimeFloorDeps;
  readonly #path: string;
  readonly #log: Logger;
  #floorMs: number;
  #savedMs = Number.NEGATIVE_INFINITY;
  #chain: Promise<void> = Promise.resolve();
  #timer: unknown;
  #started = false;

  constructor(deps: TimeFloorDeps) {
    this.#deps = deps;
    this.#path = join(deps.stateDir, timeFloorFileName);
    this.#log = deps.log.child({ mod: 'clock' });
    this.#floorMs = deps.minimumMs ?? earliestPlausibleMs;
  }

  /** The floor, epoch ms. */
  get floorMs(): number {
    return this.#floorMs;
  }

  /**
   * The lowest wall-clock time that check() still accepts (floor minus tolerance). Nonces are kept
   * until this has passed their expiry: pruneNoncesByFloor(nonces, floor.trustedFromMs).
   */
  get trustedFromMs(): number {
    return this.#floorMs - this.#deps.toleranceMs;
  }

  /** Loads the saved floor and starts the periodic save. A corrupt file keeps the highest floor it can prove. */
  async start(): Promise<void> {
    if (this.#started) return;
    this.#started = true;
    const result = await readJsonFile(this.#path, TimeFloorFile);
    if (result.status === 'ok') {
      this.#floorMs = Math.max(this.#floorMs, result.value.floorMs);
      this.#savedMs = result.value.floorMs;
      this.#log.info({ floorAt: iso(this.#floorMs) }, 'time floor loaded');
    } else if (result.status === 'missing') {
      this.#log.info({ floorAt: iso(this.#floorMs) }, 'no time floor saved yet; starting from the minimum');
    } else {
      // The file was last written at a trusted time, so its modification time is a floor too, and the
      // highest one left. A write that had raised the floor further could not have torn the file
      // (writeFileAtomic), so whatever corrupted it, the last good value was not above that time.
      const modifiedMs = await stat(this.#path).then(
        (s) => Math.floor(s.mtimeMs),
        () => undefined,
      );
      if (modifiedMs !== undefined) this.#floorMs = Math.max(this.#floorMs, modifiedMs);
      this.#log.error(
        { detail: result.detail, floorAt: iso(this.#floorMs), fromModifiedTime: modifiedMs !== undefined },
        'time floor file corrupt; keeping the highest floor it still proves',
      );
      await rename(this.#path, `${this.#path}.corrupt-${this.#floorMs}`).catch(() => undefined);
      await this.#save().catch((error: unknown) => {
        this.#log.error({ err: error }, 'cannot save the time floor');
      });
    }
    this.#timer = this.#deps.timers.setInterval(() => {
      this.#save().catch((error: unknown) => {
        this.#log.error({ err: error }, 'cannot save the time floor');
      });
    }, this.#deps.saveIntervalMs ?? defaultSaveIntervalMs);
  }

  /** Stops the periodic save and saves a risen floor one last time. Idempotent; never throws. */
  async stop(): Promise<void> {
    if (this.#timer !== undefined) {
      this.#deps.timers.clearInterval(this.#timer);
      this.#timer = undefined;
    }
    await this.#save().catch((error: unknown) => {
      this.#log.error({ err: error }, 'cannot save the time floor');
    });
  }

  /** Is a wall clock reading `nowMs` at or above the floor, within the tolerance? */
  check(nowMs: number): FloorVerdict {
    return checkFloor(nowMs, this.#floorMs, this.#deps.toleranceMs);
  }

  /**
   * Raises the floor in memory. A rise of more than the save interval at once (a clock set forward,
   * the first trusted reading after a long power cut) is saved at once: otherwise a crash before the
   * next interval would lose it, and a clock then set back by up to that rise would be trusted again.
   */
  advanceTo(nowMs: number): void {
    if (!Number.isFinite(nowMs) || nowMs <= this.#floorMs) return;
    const jumped = nowMs - this.#floorMs > (this.#deps.saveIntervalMs ?? defaultSaveIntervalMs);
    this.#floorMs = Math.floor(nowMs);
    if (jumped && this.#started) {
      this.#save().catch((error: unknown) => {
        this.#log.error({ err: error }, 'cannot save the time floor');
      });
    }
  }

  /**
   * Raises the floor to `ms` and saves it; the floor is on disk when the promise resolves (rejects if it
   * cannot be written). Call it, with the time it was accepted at, for every accepted grant.
   */
  async raise(ms: number): Promise<void> {
    this.advanceTo(ms);
    await this.#save();
  }

  /** Resolves once the saves already started have finished (whether or not they succeeded). */
  async settled(): Promise<void> {
    await this.#chain;
  }

  // Saves run one at a time; each writes the floor as it is when it runs, so saves that queue up while
  // one is writing coalesce into one write, and a save that finds the floor already saved writes nothing.
  #save(): Promise<void> {
    const run = this.#chain.then(async () => {
      const floorMs = this.#floorMs;
      if (floorMs <= this.#savedMs) return;
      const file: TimeFloorFile = { floorMs, floorAt: iso(floorMs) };
      await writeFileAtomic(this.#path, `${JSON.stringify(file)}\n`);
      this.#savedMs = Math.max(this.#savedMs, floorMs);
      this.#log.debug({ floorAt: file.floorAt }, 'time floor saved');
    });
    this.#chain = run.catch(() => undefined);
    return run;
  }
}
