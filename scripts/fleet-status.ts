// Operations view of the fleet: subscribes to every device's status, health, info and events and
// prints one line per device: online/offline since when, age of the last health report, faults,
// privacy and the next window. `--watch` redraws every `--interval` seconds (5); `--json` prints the rows for other tools.
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
import { DeviceEvent, HealthMessage, StatusMessage } from '../device/protocol/index.js';

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
}

interface DeviceState {
  state: FleetRow['state'];
  sinceMs: number | undefined;
  connection: number | undefined;
  healthAtMs: number | undefined;
  healthFaults: string[];
  eventFaults: Set<string>;
  privacyOn: boolean | undefined;
  nextWindowAt: string | undefined;
}

const topicPattern = /^tk\/([a-z0-9][a-z0-9-]{2,62})\/(status|health|info|event)$/;

/** The fleet as seen from its messages; pure apart from the times it is given. */
export class FleetView {
  readonly #devices = new Map<string, DeviceState>();
  /** Messages that did not match their schema. */
  malformed = 0;

  #device(id: string): DeviceState {
    let state = this.#devices.get(id);
    if (!state) {
      state = {
        state: 'unknown',
        sinceMs: undefined,
        connection: undefined,
        healthAtMs: undefined,
        healthFaults: [],
        eventFaults: new Set(),
        privacyOn: undefined,
        nextWindowAt: undefined,
      };
      this.#devices.set(id, state);
    }
    return state;
  }

  /** Takes one message. `retained` messages are history: their time is the device's, not ours. */
  apply(topicName: string, payload: Buffer, receivedAtMs: number, retained: boolean): void {
    const match = topicPattern.exec(topicName);
    if (!match?.[1] || payload.length === 0) return;
    const [, id, kind] = match;
    let raw: unknown;
    try {
      raw = JSON.parse(payload.toString('utf8'));
    } catch {
      this.malformed += 1;
      return;
    }
    const device = this.#device(id);
    if (kind === 'status') {
      const status = StatusMessage.safeParse(raw);
      if (!status.success) {
        this.malformed += 1;
        return;
      }
      const { state, connection, at } = status.data;
      // A will from an older connection than the one we saw come online is stale.
      if (state === 'offline' && device.state === 'online' && (device.connection ?? 0) > connection) return;
      const stamped = at === undefined ? undefined : Date.parse(at);
      device.state = state;
      device.connection = connection;
      // A live will's `at` is when that connection began; the device went away now.
      device.sinceMs = retained ? stamped : receivedAtMs;
    } else if (kind === 'health') {
      const health = HealthMessage.safeParse(raw);
      if (!health.success) {
        this.malformed += 1;
        return;
      }
      device.healthAtMs = receivedAtMs;
      device.healthFaults = health.data.faults ?? [];
      device.privacyOn = health.data.privacyOn;
      device.nextWindowAt = health.data.nextWindowAt;
    } else if (kind === 'event') {
      const event = DeviceEvent.safeParse(raw);
      if (!event.success) {
        this.malformed += 1;
        return;
      }
      if (event.data.type === 'privacy') device.privacyOn = event.data.privacyOn;
      if (event.data.type === 'fault') {
        if (event.data.active) device.eventFaults.add(event.data.fault);
        else device.eventFaults.delete(event.data.fault);
      }
    }
  }

  rows(nowMs: number): FleetRow[] {
    return [...this.#devices.entries()]
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([device, state]) => ({
        device,
        state: state.state,
        since:
          state.sinceMs === undefined || Number.isNaN(state.sinceMs)
            ? undefined
            : new Date(state.sinceMs).toISOString(),
        connection: state.connection,
        healthAgeS:
          state.healthAtMs === undefined
            ? undefined
            : Math.max(0, Math.round((nowMs - state.healthAtMs) / 1000)),
        faults: [...new Set([...state.healthFaults, ...state.eventFaults])].sort(),
        privacyOn: state.privacyOn,
        nextWindowAt: state.nextWindowAt,
      }));
  }
}

/** A fixed-width table, offline and faulty devices first (they need someone to act). */
export function formatTable(rows: FleetRow[]): string {
  const urgent = (row: FleetRow) => (row.state !== 'online' ? 0 : row.faults.length > 0 ? 1 : 2);
  const sorted = [...rows].sort((a, b) => urgent(a) - urgent(b) || (a.device < b.device ? -1 : 1));
  const header = ['DEVICE', 'STATE', 'SINCE', 'HEALTH', 'FAULTS', 'PRIVACY', 'NEXT WINDOW'];
  const cells = sorted.map((row) => [
    row.device,
    row.state === 'online' ? 'online' : row.state.toUpperCase(),
    row.since?.slice(0, 19).replace('T', ' ') ?? '-',
    row.healthAgeS === undefined ? '-' : `${row.healthAgeS}s ago`,
    row.faults.join(',') || '-',
    row.privacyOn === undefined ? '-' : row.privacyOn ? 'ON' : 'off',
    row.nextWindowAt?.slice(0, 16).replace('T', ' ') ?? '-',
  ]);
  const widths = header.map((title, i) => Math.max(title.length, ...cells.map((row) => row[i]?.length ?? 0)));
  const line = (row: string[]) =>
    row
      .map((cell, i) => cell.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  const online = rows.filter((row) => row.state === 'online').length;
  return [
    line(header),
    ...cells.map(line),
    '',
    `${rows.length} devices, ${online} online, ${rows.length - online} not online`,
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
