// Publishes `info` (retained) at every connect and `health` every `intervalS`, and publishes health at
// once, not at the next tick, when something that matters changes: camera lost or back, privacy
// toggled, clock lost, a fault raised or cleared (disk nearly full, LED, power). Changes are found by
// a cheap check every `checkIntervalS` (files only, no subprocesses) and by `notify()` from the service.
import { createHash } from 'node:crypto';
import type { Timers } from '../clock/index.js';
import type { Logger } from '../log/index.js';
import type { HealthFault, HealthMessage, InfoMessage } from '../protocol/index.js';

export interface HealthConnection {
  readonly connected: boolean;
  on(event: 'connected', listener: () => void): unknown;
  off(event: 'connected', listener: () => void): unknown;
}

export interface HealthMonitorDeps {
  log: Logger;
  timers: Timers;
  /** Wall clock; used only for the spacing of immediate reports. */
  now(): number;
  intervalS: number;
  checkIntervalS: number;
  /** Smallest gap between two reports; changes inside it are coalesced into one. Default 1000 ms. */
  minGapMs?: number;
  publish(name: 'health' | 'info', payload: HealthMessage | InfoMessage): Promise<void>;
  connection: HealthConnection;
  /** `quick`: no subprocesses (reuse the last throttling bits read). */
  collectHealth(quick: boolean): Promise<HealthMessage>;
  collectInfo(): Promise<InfoMessage>;
  /** A fault appeared or cleared (compared with the previous check). */
  onFaultChange?(fault: HealthFault, active: boolean): void;
}

/** The part of a report whose change is worth a message at once. */
function significant(health: HealthMessage): string {
  return JSON.stringify([health.privacyOn, health.faults ?? []]);
}

export class HealthMonitor {
  readonly #deps: HealthMonitorDeps;
  #interval: unknown;
  #check: unknown;
  #soon: unknown;
  #running: Promise<void> | undefined;
  #rerun: 'quick' | 'full' | undefined;
  #lastPublishedKey: string | undefined;
  #lastPublishedAtMs = Number.NEGATIVE_INFINITY;
  #lastFaults = new Set<HealthFault>();
  #started = false;
  #stopped = false;
  #published = 0;
  #last: HealthMessage | undefined;
  readonly #onConnected = (): void => {
    this.#publishInfo();
    this.#run('full');
  };

  constructor(deps: HealthMonitorDeps) {
    this.#deps = deps;
  }

  /** Health messages handed to the link so far. */
  get published(): number {
    return this.#published;
  }

  /** The last health report made. */
  get last(): HealthMessage | undefined {
    return this.#last;
  }

  start(): void {
    if (this.#started || this.#stopped) return;
    this.#started = true;
    const { timers } = this.#deps;
    this.#deps.connection.on('connected', this.#onConnected);
    this.#interval = timers.setInterval(() => this.#run('full'), this.#deps.intervalS * 1000);
    this.#check = timers.setInterval(() => this.#run('quick'), this.#deps.checkIntervalS * 1000);
    if (this.#deps.connection.connected) this.#onConnected();
  }

  /** Something that matters may have changed (privacy, clock, LED): check now. */
  notify(): void {
    if (!this.#started || this.#stopped) return;
    this.#run('quick');
  }

  /** Re-sends `info`, e.g. when the camera came back (its model and formats may differ). */
  refreshInfo(): void {
    if (this.#started && !this.#stopped && this.#deps.connection.connected) this.#publishInfo();
  }

  #publishInfo(): void {
    this.#deps
      .collectInfo()
      .then((info) => this.#deps.publish('info', info))
      .catch((error: Error) => this.#deps.log.warn({ err: error.message }, 'info not published'));
  }

  #run(kind: 'quick' | 'full'): void {
    if (this.#stopped) return;
    if (this.#running) {
      if (this.#rerun !== 'full') this.#rerun = kind;
      return;
    }
    this.#running = this.#report(kind)
      .catch((error: Error) => this.#deps.log.warn({ err: error.message }, 'health report failed'))
      .finally(() => {
        this.#running = undefined;
        const again = this.#rerun;
        this.#rerun = undefined;
        if (again) this.#run(again);
      });
  }

  async #report(kind: 'quick' | 'full'): Promise<void> {
    const health = await this.#deps.collectHealth(kind === 'quick');
    if (this.#stopped) return;
    this.#last = health;
    this.#faultChanges(health);
    const key = significant(health);
    if (kind === 'full') {
      this.#send(health, key);
      return;
    }
    if (key === this.#lastPublishedKey) return;
    const waitMs = this.#lastPublishedAtMs + (this.#deps.minGapMs ?? 1000) - this.#deps.now();
    if (waitMs > 0) {
      // Coalesce bursts (a resident pressing the button again and again) into one report.
      this.#soon ??= this.#deps.timers.setTimeout(() => {
        this.#soon = undefined;
        this.#run('quick');
      }, waitMs);
      return;
    }
    this.#send(health, key);
  }

  #faultChanges(health: HealthMessage): void {
    const now = new Set(health.faults ?? []);
    for (const fault of now) if (!this.#lastFaults.has(fault)) this.#faultChanged(fault, true);
    for (const fault of this.#lastFaults) if (!now.has(fault)) this.#faultChanged(fault, false);
    this.#lastFaults = now;
  }

  #faultChanged(fault: HealthFault, active: boolean): void {
    this.#deps.log.info({ fault, active }, active ? 'fault raised' : 'fault cleared');
    try {
      this.#deps.onFaultChange?.(fault, active);
    } catch (error) {
      this.#deps.log.error({ err: error }, 'fault listener failed');
    }
  }

  #send(health: HealthMessage, key: string): void {
    this.#lastPublishedKey = key;
    this.#lastPublishedAtMs = this.#deps.now();
    this.#published += 1;
    this.#deps
      .publish('health', health)
      .catch((error: Error) => this.#deps.log.debug({ err: error.message }, 'health not published'));
  }

  /** Stops the timers; idempotent. A report in progress finishes without publishing. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    const { timers } = this.#deps;
    this.#deps.connection.off('connected', this.#onConnected);
    timers.clearInterval(this.#interval);
    timers.clearInterval(this.#check);
    timers.clearTimeout(this.#soon);
    await this.#running;
  }
}

/** A short, stable fingerprint of the effective config, to spot devices set up differently. */
export function configHash(config: unknown): string {
  return createHash('sha256').update(JSON.stringify(config)).digest('hex').slice(0, 16);
}
