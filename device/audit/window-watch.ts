// Notices agreed check-in windows in which nobody looked, and reports each as a `window-missed`
// audit record, so the central service sees that a planned check-in did not take place.
//
// A look is a view that started streaming inside the window (the supervisor's `viewStarted`). A
// refused request is not a look, nor is a granted one whose view never started (LED or camera
// failure): in both the operator saw nothing, and a person should have been sent instead.
//
// It checks every minute and at each window's end, over (lastCheckedAt, now]. `lastCheckedAt` and the
// recent look times are kept in a small state file (atomic writes), so windows that ended while the
// device was off are reported after the restart, looking back at most `lookBackMs` (7 days). While
// the clock is not trusted nothing is checked and nothing is skipped: the windows are checked once
// the time is known again. Ids are derived from the device and the window, so a window reported
// again after a crash carries the same id and is deduplicated by the receiver.
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { z } from 'zod';
import type { Timers } from '../clock/index.js';
import type { Logger } from '../log/index.js';
import type { ScheduleClaims } from '../protocol/index.js';
import { nextWindowAfter, openWindowAt, windowsEndingBetween } from '../schedule/index.js';
import { readJsonFile, writeFileAtomic } from '../state/index.js';
import { dayMs } from './files.js';
import type { AuditTrail } from './trail.js';
import { nameUuid } from './uuid.js';

export interface WindowWatchDeps {
  /** The watch's state file, e.g. `<stateDir>/audit/window-watch.json`. */
  path: string;
  deviceId: string;
  timeZone: string;
  now(): number;
  timers: Timers;
  log: Logger;
  schedule(): ScheduleClaims | undefined;
  clockTrusted(): boolean;
  trail: Pick<AuditTrail, 'record'>;
  lookBackMs?: number;
  checkIntervalMs?: number;
}

const WatchState = z
  .object({
    lastCheckedAt: z.iso.datetime(),
    looks: z.array(z.iso.datetime()).max(10_000),
  })
  .strict();

const maxTimerMs = 2 ** 31 - 1;

/** The id of the window-missed record of one window: the same every time it is made. */
export function windowMissedId(deviceId: string, startMs: number, endMs: number): string {
  const iso = (ms: number) => new Date(ms).toISOString();
  return nameUuid(`${deviceId}/window-missed/${iso(startMs)}/${iso(endMs)}`);
}

export class WindowWatch {
  readonly #deps: WindowWatchDeps;
  readonly #log: Logger;
  readonly #lookBackMs: number;
  #lastCheckedMs = 0;
  #looks: number[] = [];
  #intervalTimer: unknown;
  #endTimer: unknown;
  #checking: Promise<void> | undefined;
  #checkAgain = false;
  #saving: Promise<void> | undefined;
  #saveAgain = false;
  #started: Promise<void> | undefined;
  #stopping: Promise<void> | undefined;

  constructor(deps: WindowWatchDeps) {
    this.#deps = deps;
    this.#log = deps.log;
    this.#lookBackMs = deps.lookBackMs ?? 7 * dayMs;
  }

  /** Loads the state, checks at once (windows that ended while off), then every minute. */
  start(): Promise<void> {
    this.#started ??= this.#start();
    return this.#started;
  }

  async #start(): Promise<void> {
    const nowMs = this.#deps.now();
    const stored = await readJsonFile(this.#deps.path, WatchState);
    if (stored.status === 'ok') {
      this.#lastCheckedMs = Date.parse(stored.value.lastCheckedAt);
      this.#looks = [...stored.value.looks.map((at) => Date.parse(at)), ...this.#looks];
    } else {
      // First start: windows before it are none of our business. A corrupt file lost the looks, so
      // reporting earlier windows could claim checks were missed that were not: start afresh.
      if (stored.status === 'corrupt') {
        this.#log.error({ detail: stored.detail }, 'window watch state unreadable: checking from now');
      }
      this.#lastCheckedMs = nowMs;
      await mkdir(dirname(this.#deps.path), { recursive: true, mode: 0o700 });
      await this.#save();
    }
    if (this.#stopping) return;
    this.#intervalTimer = this.#deps.timers.setInterval(
      () => this.check(),
      this.#deps.checkIntervalMs ?? 60_000,
    );
    this.check();
    await this.#checking;
  }

  /** Stops the timers and waits for a check and a save in flight. Idempotent. */
  stop(): Promise<void> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  async #stop(): Promise<void> {
    this.#deps.timers.clearInterval(this.#intervalTimer);
    this.#deps.timers.clearTimeout(this.#endTimer);
    await this.#started?.catch(() => undefined);
    while (this.#checking) await this.#checking;
    while (this.#saving) await this.#saving;
  }

  /** Settles once no check and no save is in flight (tests: a step of a manual clock is done). */
  async idle(): Promise<void> {
    while (this.#checking || this.#saving) {
      await this.#checking;
      await this.#saving;
    }
  }

  /** A view started streaming at `atMs`: the window it is in had its look. */
  noteLook(atMs: number): void {
    this.#looks.push(atMs);
    this.#requestSave();
  }

  /** Checks the windows that ended since the last check; runs one check at a time. */
  check(): void {
    if (this.#stopping) return;
    if (this.#checking) {
      this.#checkAgain = true;
      return;
    }
    this.#checking = this.#check()
      .catch((error: Error) => this.#log.error({ err: error }, 'window check failed'))
      .finally(() => {
        this.#checking = undefined;
        if (this.#checkAgain && !this.#stopping) {
          this.#checkAgain = false;
          this.check();
        }
      });
  }

  async #check(): Promise<void> {
    if (!this.#deps.clockTrusted()) return;
    const nowMs = this.#deps.now();
    // A clock stepped back re-checks nothing: a window is reported at most once.
    if (nowMs <= this.#lastCheckedMs) return;
    const fromMs = Math.max(this.#lastCheckedMs, nowMs - this.#lookBackMs);
    const schedule = this.#deps.schedule();
    let checkedMs = nowMs;
    if (schedule) {
      const ended = windowsEndingBetween(fromMs, nowMs, schedule, this.#deps.timeZone).sort(
        (a, b) => a.endMs - b.endMs || a.startMs - b.startMs,
      );
      for (const window of ended) {
        if (this.#looks.some((atMs) => atMs >= window.startMs && atMs < window.endMs)) continue;
        try {
          await this.#deps.trail.record(
            {
              kind: 'window-missed',
              windowStart: new Date(window.startMs).toISOString(),
              windowEnd: new Date(window.endMs).toISOString(),
            },
            { atMs: nowMs, id: windowMissedId(this.#deps.deviceId, window.startMs, window.endMs) },
          );
          this.#log.info(
            { windowStart: window.startMs, windowEnd: window.endMs },
            'check-in window ended without a look',
          );
        } catch {
          // Not written: check this window again at the next tick.
          checkedMs = window.endMs - 1;
          break;
        }
      }
      this.#armEndTimer(nowMs, schedule);
    }
    this.#lastCheckedMs = Math.max(this.#lastCheckedMs, checkedMs);
    this.#looks = this.#looks.filter((atMs) => atMs >= nowMs - this.#lookBackMs - dayMs);
    this.#requestSave();
    await this.#saving;
  }

  /** Checks again exactly when the open or next window ends, not up to a minute later. */
  #armEndTimer(nowMs: number, schedule: ScheduleClaims): void {
    if (this.#stopping) return;
    const zone = this.#deps.timeZone;
    const ends = [openWindowAt(nowMs, schedule, zone)?.endMs, nextWindowAfter(nowMs, schedule, zone)?.endMs]
      .filter((endMs): endMs is number => endMs !== undefined && endMs > nowMs)
      .sort((a, b) => a - b);
    this.#deps.timers.clearTimeout(this.#endTimer);
    const delayMs = (ends[0] ?? Infinity) - nowMs;
    this.#endTimer =
      delayMs <= maxTimerMs ? this.#deps.timers.setTimeout(() => this.check(), delayMs) : undefined;
  }

  #requestSave(): void {
    this.#saveAgain = true;
    if (this.#saving) return;
    this.#saving = (async () => {
      while (this.#saveAgain) {
        this.#saveAgain = false;
        try {
          await this.#save();
        } catch (error) {
          this.#log.warn({ err: error }, 'cannot store the window watch state');
          return;
        }
      }
    })().finally(() => {
      this.#saving = undefined;
    });
  }

  async #save(): Promise<void> {
    const state: z.infer<typeof WatchState> = {
      lastCheckedAt: new Date(this.#lastCheckedMs).toISOString(),
      looks: this.#looks.map((atMs) => new Date(atMs).toISOString()),
    };
    await writeFileAtomic(this.#deps.path, JSON.stringify(state));
  }
}
