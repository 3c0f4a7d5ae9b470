// This instance's picture of the whole fleet, in memory: loaded from the database at start, updated at
// once from the batches this instance stores, and polled for what the other instances stored (devices
// whose row was written since the last poll, with an overlap for clocks and slow commits).
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { FleetStore } from '../db/index.js';
import type { DeviceState } from '../state/index.js';

interface Events {
  /** Devices whose state changed. */
  changed: [deviceIds: string[]];
}

export interface FleetCacheOptions {
  pollIntervalMs: number;
  /** How far back each poll looks again: other instances' commits may carry a slightly older stamp. */
  pollOverlapMs: number;
}

export class FleetCache extends EventEmitter<Events> {
  readonly #devices = new Map<string, { state: DeviceState; json: string }>();
  readonly #store: FleetStore;
  readonly #options: FleetCacheOptions;
  readonly #clock: () => number;
  readonly #log: Logger;
  #timer: NodeJS.Timeout | undefined;
  #lastPollMs = 0;
  #polling = false;

  constructor(deps: { store: FleetStore; clock: () => number; log: Logger }, options: FleetCacheOptions) {
    super();
    this.#store = deps.store;
    this.#clock = deps.clock;
    this.#log = deps.log;
    this.#options = options;
  }

  async start(): Promise<void> {
    this.#lastPollMs = this.#clock();
    this.#merge((await this.#store.devices()).map((row) => row.state));
    this.#timer = setInterval(() => {
      void this.poll();
    }, this.#options.pollIntervalMs);
  }

  /** Reads what other instances stored since the last poll. */
  async poll(): Promise<void> {
    if (this.#polling) return;
    this.#polling = true;
    const started = this.#clock();
    try {
      const rows = await this.#store.devices(this.#lastPollMs - this.#options.pollOverlapMs);
      this.#lastPollMs = started;
      this.#merge(rows.map((row) => row.state));
    } catch (error) {
      this.#log.warn({ err: (error as Error).message }, 'polling the database failed');
    } finally {
      this.#polling = false;
    }
  }

  /** Takes states as stored (by this instance or read back); emits the ones that differ. */
  update(states: DeviceState[]): void {
    this.#merge(states);
  }

  #merge(states: DeviceState[]): void {
    const changed: string[] = [];
    for (const state of states) {
      const json = JSON.stringify(state);
      if (this.#devices.get(state.deviceId)?.json === json) continue;
      this.#devices.set(state.deviceId, { state, json });
      changed.push(state.deviceId);
    }
    if (changed.length > 0) {
      try {
        this.emit('changed', changed);
      } catch (error) {
        this.#log.error({ err: (error as Error).message }, 'changed listener failed');
      }
    }
  }

  get(deviceId: string): DeviceState | undefined {
    return this.#devices.get(deviceId)?.state;
  }

  all(): DeviceState[] {
    return [...this.#devices.values()].map((entry) => entry.state);
  }

  get size(): number {
    return this.#devices.size;
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
