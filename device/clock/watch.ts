// The clock watch: runs the clock check at start, every interval and at once after a step, and says
// so through typed events. On a step, `step` comes first, so the core can end a running view before
// anything else happens; then, synchronously, an untrusted verdict (kind `step`), so no grant is
// decided on the new time before it has been checked; then the verdict of the re-check. Owns the
// StepWatcher it is given.
import { EventEmitter } from 'node:events';
import type { Logger } from '../log/index.js';
import type { ClockVerdict } from './check.js';
import type { Timers } from './clock.js';
import type { ClockStep, StepWatcher } from './step.js';

export interface ClockWatchDeps {
  /** The composed clock check (clockCheck / combinedClockCheck). */
  check: () => Promise<ClockVerdict>;
  /** Started and stopped with the watch; omitted, steps are not watched. */
  steps?: Pick<StepWatcher, 'on' | 'off' | 'start' | 'stop' | 'poll'>;
  timers: Timers;
  log: Logger;
  checkIntervalMs: number;
}

export type ClockWatchEvents = { verdict: [ClockVerdict]; step: [ClockStep] };

export class ClockWatch extends EventEmitter<ClockWatchEvents> {
  readonly #deps: ClockWatchDeps;
  readonly #log: Logger;
  #timer: unknown;
  #running = false;
  #last: ClockVerdict | undefined;
  #chain: Promise<unknown> = Promise.resolve();
  #queued: Promise<ClockVerdict> | undefined;
  readonly #onStep = (step: ClockStep): void => {
    this.#emitSafe('step', step);
    const sizeS = Math.round(Math.abs(step.stepMs) / 100) / 10;
    this.#settle({
      trusted: false,
      kind: 'step',
      detail: `clock stepped ${step.direction === 'back' ? 'back' : 'forward'} by ${sizeS} s; checking it again`,
    });
    this.recheck().catch(() => undefined);
  };

  constructor(deps: ClockWatchDeps) {
    super();
    this.#deps = deps;
    this.#log = deps.log.child({ mod: 'clock' });
  }

  /** The latest verdict; undefined before the first check. */
  get last(): ClockVerdict | undefined {
    return this.#last;
  }

  /** Starts watching steps, checks once and resolves with that verdict, then checks every interval. */
  async start(): Promise<ClockVerdict> {
    if (this.#running) return this.#last ?? this.recheck();
    this.#running = true;
    this.#deps.steps?.on('step', this.#onStep);
    this.#deps.steps?.start();
    const first = await this.recheck();
    if (this.#running && this.#timer === undefined) {
      this.#timer = this.#deps.timers.setInterval(() => {
        this.recheck().catch(() => undefined);
      }, this.#deps.checkIntervalMs);
    }
    return first;
  }

  /**
   * Compares the clocks at once; a step found is reported (events included) before this returns.
   * Call it just before deciding on a grant, so a step since the last comparison cannot slip through.
   */
  poll(): void {
    if (this.#running) this.#deps.steps?.poll();
  }

  /** Idempotent. Checks still running finish without emitting. */
  stop(): void {
    this.#running = false;
    if (this.#timer !== undefined) {
      this.#deps.timers.clearInterval(this.#timer);
      this.#timer = undefined;
    }
    this.#deps.steps?.off('step', this.#onStep);
    this.#deps.steps?.stop();
  }

  /**
   * Checks the clock now and emits the verdict. Checks run one at a time; calls made while one runs
   * share the one check queued after it, so each verdict is read after the call that asked for it.
   */
  recheck(): Promise<ClockVerdict> {
    if (this.#queued) return this.#queued;
    const queued = this.#chain.then(() => {
      this.#queued = undefined;
      return this.#run();
    });
    this.#queued = queued;
    this.#chain = queued.catch(() => undefined);
    return queued;
  }

  async #run(): Promise<ClockVerdict> {
    let verdict: ClockVerdict;
    try {
      verdict = await this.#deps.check();
    } catch (error) {
      verdict = { trusted: false, kind: 'error', detail: `clock check failed: ${(error as Error).message}` };
    }
    this.#settle(verdict);
    return verdict;
  }

  #settle(verdict: ClockVerdict): void {
    const previous = this.#last;
    this.#last = verdict;
    if (previous?.trusted !== verdict.trusted || previous.kind !== verdict.kind) {
      const fields = { trusted: verdict.trusted, kind: verdict.kind, detail: verdict.detail };
      if (verdict.trusted) this.#log.info(fields, 'clock trusted');
      else this.#log.warn(fields, 'clock not trusted');
    }
    if (this.#running) this.#emitSafe('verdict', verdict);
  }

  #emitSafe<K extends keyof ClockWatchEvents>(event: K, ...args: ClockWatchEvents[K]): void {
    for (const listener of this.listeners(event)) {
      try {
        (listener as (...a: ClockWatchEvents[K]) => void)(...args);
      } catch (error) {
        this.#log.error({ err: error, event }, 'clock watch listener failed');
      }
    }
  }
}
