// Operations view of the fleet in a terminal: subscribes to every device's status, health, info and
// events and prints one line per device: online/offline since when, age of the last health report,
// faults, privacy, the next window and whether that check-in is at risk. It runs the fleet service's
// own reducer and at-risk rule (fleet/state, fleet/risk) in memory, without a database.
// `--watch` redraws every `--interval` seconds (5); `--json` prints the rows for other tools.
//
//   scripts/fleet-status --url mqtts://broker:8883 --ca ca.pem --cert ops.pem --key ops-key.pem [--watch [--interval S]] [--json]
//
// It connects as the `ops` identity (read-only in the broker's ACL). Status, health and info are
// retained, so the first table is complete after `--wait-ms` (default 2 s).
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { parseFleetMessage } from '../fleet/protocol.js';
import { compareRisk, formatTimeLeft, type Risk } from '../fleet/risk/index.js';
import { applyMessage, type DeviceState, emptyDevice } from '../fleet/state/index.js';
import { deviceRow } from '../fleet/view/index.js';

export interface FleetRow {
  device: string;
  state: 'online' | 'offline' | 'unknown';
  /** ISO time the state began, as well as known. */
  since: string | undefined;
  connection: number | undefined;
  /** Seconds since the last health report arrived; undefined if none. */
  healthAgeS: number | undefined;
  faults: string[];
  privacyOn: boolean | undefined;
  nextWindowAt: string | undefined;
  /** Whether the next check-in is at risk, why, and the time left (the fleet service's rule). */
  risk: Risk;
}

/** The fleet as seen from its messages, with the fleet service's reducer; pure apart from the times it is given. */
export class FleetView {
  readonly #devices = new Map<string, DeviceState>();
  /** Messages that did not match their schema. */
  malformed = 0;

  /** Takes one message. `retained` messages are history: their time is the device's, not ours. */
  apply(topicName: string, payload: Buffer, receivedAtMs: number, retained: boolean): void {
    const parsed = parseFleetMessage(topicName, payload);
    if (!parsed.ok) {
      if (parsed.reason !== 'empty' && parsed.reason !== 'topic') this.malformed += 1;
      return;
    }
    const id = parsed.message.deviceId;
    const applied = applyMessage(this.#devices.get(id) ?? emptyDevice(id), parsed.message, {
      receivedAtMs,
      retained,
    });
    this.#devices.set(id, applied.state);
  }

  rows(nowMs: number): FleetRow[] {
    return [...this.#devices.values()]
      .sort((a, b) => (a.deviceId < b.deviceId ? -1 : 1))
      .map((state) => {
        const row = deviceRow(state, nowMs);
        return {
          device: row.device,
          state: row.state,
          since: row.since,
          connection: row.connection,
          healthAgeS: row.healthAgeS,
          faults: row.faults,
          privacyOn: row.privacyOn,
          nextWindowAt: row.nextWindowAt,
          risk: row.risk,
        };
      });
  }
}

/** A fixed-width table: check-ins at risk first (soonest window first), then offline, then faulty devices. */
export function formatTable(rows: FleetRow[]): string {
  const urgent = (row: FleetRow) => (row.state !== 'online' ? 0 : row.faults.length > 0 ? 1 : 2);
  const sorted = [...rows].sort(
    (a, b) =>
      Number(b.risk.atRisk) - Number(a.risk.atRisk) ||
      (a.risk.atRisk && b.risk.atRisk
        ? (a.risk.timeLeftMs ?? Infinity) - (b.risk.timeLeftMs ?? Infinity)
        : 0) ||
      urgent(a) - urgent(b) ||
      compareRisk({ deviceId: a.device, risk: a.risk }, { deviceId: b.device, risk: b.risk }),
  );
  const header = ['DEVICE', 'STATE', 'SINCE', 'HEALTH', 'FAULTS', 'PRIVACY', 'NEXT WINDOW', 'AT RISK'];
  const cells = sorted.map((row) => [
    row.device,
    row.state === 'online' ? 'online' : row.state.toUpperCase(),
    row.since?.slice(0, 19).replace('T', ' ') ?? '-',
    row.healthAgeS === undefined ? '-' : `${row.healthAgeS}s ago`,
    row.faults.join(',') || '-',
    row.privacyOn === undefined ? '-' : row.privacyOn ? 'ON' : 'off',
    row.nextWindowAt?.slice(0, 16).replace('T', ' ') ?? '-',
    row.risk.atRisk ? `${row.risk.reasons.join(',')} (${formatTimeLeft(row.risk.timeLeftMs)})` : '-',
  ]);
  const widths = header.map((title, i) => Math.max(title.length, ...cells.map((row) => row[i]?.length ?? 0)));
  const line = (row: string[]) =>
    row
      .map((cell, i) => cell.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  const online = rows.filter((row) => row.state === 'online').length;
  const atRisk = rows.filter((row) => row.risk.atRisk).length;
  return [
    line(header),
    ...cells.map(line),
    '',
    `${rows.length} devices, ${online} online, ${rows.length - online} not online, ${atRisk} at risk`,
  ].join('\n');
}

export interface FleetStatusOptions {
  url: string;
  ca?: string;
  cert?: string;
  key?: string;
  waitMs: number;
  watchS: number | undefined;
  json: boolean;
}

/** Connects, collects for `waitMs`, prints; with `watchS`, keeps printing until `signal` aborts. */
export async function runFleetStatus(
  options: FleetStatusOptions,
  out: (text: string) => void,
  signal?: AbortSignal,
): Promise<number> {
  const connectOptions: IClientOptions = {
    reconnectPeriod: options.watchS === undefined ? 0 : 2000,
    connectTimeout: 10_000,
    clean: true,
    ...(options.ca ? { ca: await readFile(options.ca), rejectUnauthorized: true } : {}),
    ...(options.cert ? { cert: await readFile(options.cert) } : {}),
    ...(options.key ? { key: await readFile(options.key) } : {}),
  };
  const view = new FleetView();
  const client: MqttClient = mqtt.connect(options.url, connectOptions);
  client.on('message', (topicName, payload, packet) =>
    view.apply(topicName, payload, Date.now(), packet.retain),
  );
  try {
    await new Promise<void>((resolveConnect, reject) => {
      client.once('connect', () => resolveConnect());
      client.once('error', reject);
    });
    await client.subscribeAsync(['tk/+/status', 'tk/+/health', 'tk/+/info', 'tk/+/event'], { qos: 1 });
    const print = () => {
      const rows = view.rows(Date.now());
      out(options.json ? JSON.stringify(rows) : formatTable(rows));
    };
    await sleep(options.waitMs, signal);
    print();
    if (options.watchS !== undefined) {
      while (!signal?.aborted) {
        await sleep(options.watchS * 1000, signal);
        if (signal?.aborted) break;
        if (!options.json) out('\x1b[2J\x1b[H');
        print();
      }
    }
    return 0;
  } catch (error) {
    out(`fleet-status: ${(error as Error).message}`);
    return 1;
  } finally {
    await client.endAsync(true);
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolveSleep) => {
    const timer = setTimeout(resolveSleep, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(timer);
      resolveSleep();
    });
  });
}

const usage = `Usage: scripts/fleet-status --url URL [--ca FILE --cert FILE --key FILE] [--watch [--interval S]] [--json] [--wait-ms MS]`;

async function main(argv: string[]): Promise<number> {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        url: { type: 'string' },
        ca: { type: 'string' },
        cert: { type: 'string' },
        key: { type: 'string' },
        watch: { type: 'boolean' },
        interval: { type: 'string' },
        json: { type: 'boolean' },
        'wait-ms': { type: 'string' },
        help: { type: 'boolean' },
      },
    }));
  } catch (error) {
    console.error(`${(error as Error).message}\n${usage}`);
    return 2;
  }
  if (values.help || typeof values.url !== 'string') {
    console.error(usage);
    return values.help ? 0 : 2;
  }
  const controller = new AbortController();
  process.once('SIGINT', () => controller.abort());
  process.once('SIGTERM', () => controller.abort());
  return runFleetStatus(
    {
      url: values.url,
      ...(typeof values.ca === 'string' ? { ca: values.ca } : {}),
      ...(typeof values.cert === 'string' ? { cert: values.cert } : {}),
      ...(typeof values.key === 'string' ? { key: values.key } : {}),
      waitMs: Number(values['wait-ms'] ?? 2000),
      watchS: values.watch ? Number(values.interval ?? 5) : undefined,
      json: values.json === true,
    },
    (text) => console.log(text),
    controller.signal,
  );
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = await main(process.argv.slice(2));
}
