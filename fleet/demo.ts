// The fleet page for scripts/demo: one instance on the demo's loopback broker, a SQLite file in a temp
// dir, the page on 127.0.0.1. One line in scripts/demo starts it and prints where the page is:
//
//   await startFleetForDemo({ brokerUrl: broker.plainUrl!, mqtt: broker.plainOptions('ops'), log, port: 8766 });
//
// The demo ends with process.exit, so the temp dir is also removed on exit; `stop()` is there for
// callers that stop it themselves (tests).
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
  /** Where to print the page's address (default: console.log); null for silence. */
  print?: ((line: string) => void) | null;
}

export async function startFleetForDemo(
  options: DemoFleetOptions,
): Promise<{ url: string; fleet: Fleet; stop(): Promise<number> }> {
  const dir = mkdtempSync(join(tmpdir(), 'tk-fleet-demo-'));
  const removeDir = () => rmSync(dir, { recursive: true, force: true });
  process.once('exit', removeDir);
  try {
    const fleet = await startFleet(
      {
        instance: 'demo',
        mqtt: { ...options.mqtt, url: options.brokerUrl },
        database: join(dir, 'fleet.db'),
        http: { host: '127.0.0.1', port: options.port ?? 0 },
        ...(options.webhookUrl ? { webhookUrl: options.webhookUrl } : {}),
        retainedSyncMs: 500,
      },
      { log: options.log.child({ mod: 'fleet' }) },
    );
    const print = options.print === undefined ? console.log : options.print;
    print?.(`    Fleet:   ${fleet.url} (operations page: check-ins at risk, live)`);
    return {
      url: fleet.url,
      fleet,
      async stop() {
        const code = await fleet.stop();
        process.off('exit', removeDir);
        removeDir();
        return code;
      },
    };
  } catch (error) {
    process.off('exit', removeDir);
    removeDir();
    throw error;
  }
}
