// The fleet page for scripts/demo: one instance on the demo's loopback broker, a SQLite file in a temp
// dir (removed on stop), the page on 127.0.0.1. scripts/demo calls `startFleetForDemo` and prints `url`.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { IClientOptions } from 'mqtt';
import type { Logger } from 'pino';
import { type Fleet, startFleet } from './service.js';

export interface DemoFleetOptions {
  /** The broker the demo device uses, e.g. `broker.plainUrl` (mqtt://127.0.0.1:…). */
  brokerUrl: string;
  /** Extra mqtt.js options (e.g. `broker.plainOptions('ops')`). */
  mqtt?: IClientOptions;
  log: Logger;
  /** Port of the fleet page; 0 for any free port. */
  port?: number;
  webhookUrl?: string;
}

export async function startFleetForDemo(
  options: DemoFleetOptions,
): Promise<{ url: string; fleet: Fleet; stop(): Promise<number> }> {
  const dir = mkdtempSync(join(tmpdir(), 'tk-fleet-demo-'));
  try {
    const fleet = await startFleet(
      {
        instance: 'demo',
        mqtt: { ...options.mqtt, url: options.brokerUrl },
        database: join(dir, 'fleet.db'),
        http: { host: '127.0.0.1', port: options.port ?? 0 },
        webhookUrl: options.webhookUrl,
        retainedSyncMs: 500,
      },
      { log: options.log.child({ mod: 'fleet' }) },
    );
    return {
      url: fleet.url,
      fleet,
      async stop() {
        const code = await fleet.stop();
        rmSync(dir, { recursive: true, force: true });
        return code;
      },
    };
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}
