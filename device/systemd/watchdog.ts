// The systemd watchdog (WatchdogSec= in the unit): pings WATCHDOG=1 at half the interval systemd
// asks for, but only after a health check passes. A failing, throwing or hanging check means no
// ping, and systemd restarts the service once the interval runs out: that is the point. The
// composition root passes a check for "event loop alive and state directory writable".
import type { Logger } from '../log/index.js';
import type { Env, SystemdNotifier } from './notify.js';

type TimerHandle = ReturnType<typeof setTimeout>;

export interface WatchdogDeps {
  notifier: Pick<SystemdNotifier, 'watchdog'>;
  /** Resolves true when the service is fit to keep running; a rejection counts as false. */
  healthy: () => Promise<boolean>;
  env: Env;
  log: Logger;
  /** This process's id, compared with WATCHDOG_PID; defaults to `process.pid`. */
  pid?: number | undefined;
  /** Injected for tests; the defaults look the globals up at call time (fake-timer friendly). */
  setTimer?: ((callback: () => void, delayMs: number) => TimerHandle) | undefined;
  clearTimer?: ((handle: TimerHandle) => void) | undefined;
}

/**
 * The ping interval in ms (half of WATCHDOG_USEC), or undefined when systemd asked for no watchdog
 * or asked another process (WATCHDOG_PID set and not ours), as sd_watchdog_enabled(3) does.
 */
export function watchdogPingIntervalMs(env: Env, pid: number): number | undefined {
  const usecText = env.WATCHDOG_USEC;
  if (usecText === undefined || !/^[0-9]+$/.test(usecText)) return undefined;
  const usec = Number(usecText);
  if (!Number.isSafeInteger(usec) || usec <= 0) return undefined;
  const pidText = env.WATCHDOG_PID;
  if (pidText !== undefined && pidText !== '' && Number(pidText) !== pid) return undefined;
  return Math.max(1, Math.floor(usec / 2 / 1000));
}

export class Watchdog {
  /** Undefined when systemd requested no watchdog; start() then does nothing. */
  readonly pingIntervalMs: number | undefined;
  readonly #deps: WatchdogDeps;
  readonly #log: Logger;
  readonly #setTimer: NonNullable<WatchdogDeps['setTimer']>;
  readonly #clearTimer: NonNullable<WatchdogDeps['clearTimer']>;
  #timer: TimerHandle | undefined;
  #running = false;

  constructor(deps: WatchdogDeps) {
    this.#deps = deps;
    this.#log = deps.log.child({ mod: 'watchdog' });
    this.#setTimer = deps.setTimer ?? ((callback, delayMs) => setTimeout(callback, delayMs));
    this.#clearTimer = deps.clearTimer ?? ((handle) => clearTimeout(handle));
    this.pingIntervalMs = watchdogPingIntervalMs(deps.env, deps.pid ?? process.pid);
  }

  get running(): boolean {
    return this.#running;
  }

  start(): void {
    if (this.#running) return;
    if (this.pingIntervalMs === undefined) {
      this.#log.debug('systemd watchdog not requested');
      return;
    }
    this.#running = true;
    this.#log.info({ pingIntervalMs: this.pingIntervalMs }, 'systemd watchdog started');
    this.#schedule();
  }

  stop(): void {
    if (!this.#running) return;
    this.#running = false;
    if (this.#timer !== undefined) this.#clearTimer(this.#timer);
    this.#timer = undefined;
    this.#log.debug('systemd watchdog stopped');
  }

  #schedule(): void {
    const interval = this.pingIntervalMs;
    if (!this.#running || interval === undefined) return;
    this.#timer = this.#setTimer(() => {
      this.#timer = undefined;
      void this.#tick();
    }, interval);
  }

  // One check at a time: the next is scheduled only after this one settles, so a hung check
  // stops the pings (and systemd restarts us) instead of piling up.
  async #tick(): Promise<void> {
    let healthy = false;
    let error: string | undefined;
    try {
      healthy = await this.#deps.healthy();
    } catch (caught) {
      error = caught instanceof Error ? caught.message : String(caught);
    }
    if (!this.#running) return;
    if (healthy) {
      this.#deps.notifier.watchdog();
    } else if (error !== undefined) {
      this.#log.warn({ reason: 'health-check-threw', error }, 'skipping watchdog ping');
    } else {
      this.#log.warn({ reason: 'health-check-failed' }, 'skipping watchdog ping');
    }
    this.#schedule();
  }
}
