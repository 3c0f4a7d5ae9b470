// scripts/fleet-status against a real mosquitto with several simulated devices (plain mqtt.js clients
// with their own certificates publishing realistic status, info, health and events), read as `ops`.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type HealthMessage, type StatusMessage, schemaVersion, topic } from '../../device/protocol/index.js';
import { type Broker, startBroker } from '../../scripts/devstack/broker.js';
import { type FleetRow, FleetView, formatTable, runFleetStatus } from '../../scripts/fleet-status.js';

const run = promisify(execFile);
const root = fileURLToPath(new URL('../../', import.meta.url));
let broker: Broker;
const devices = new Map<string, MqttClient>();

function status(state: StatusMessage['state'], connection: number): string {
  return JSON.stringify({
    schemaVersion,
    state,
    connection,
    at: '2026-03-10T20:58:12.907Z',
  } satisfies StatusMessage);
}

function health(extra: Partial<HealthMessage>): string {
  return JSON.stringify({
    schemaVersion,
    uptimeS: 3600,
    load1: 0.2,
    memFreeMB: 800,
    diskFreeMB: 9000,
    privacyOn: false,
    nextWindowAt: '2026-03-10T21:00:00Z',
    ...extra,
  } satisfies HealthMessage);
}

async function device(
  id: string,
  connection: number,
  healthExtra: Partial<HealthMessage>,
): Promise<MqttClient> {
  const client = await mqtt.connectAsync({
    ...(await broker.clientOptions(id)),
    reconnectPeriod: 0,
    keepalive: 5,
    will: {
      topic: topic(id, 'status'),
      payload: Buffer.from(status('offline', connection)),
      qos: 1,
      retain: true,
    },
  });
  devices.set(id, client);
  await client.publishAsync(topic(id, 'status'), status('online', connection), { qos: 1, retain: true });
  await client.publishAsync(topic(id, 'health'), health(healthExtra), {
    qos: 1, // the device uses 0; 1 here so the dropped device's report is surely in before it drops
    retain: true,
  });
  return client;
}

async function optionsFor(identity: string) {
  const files = await broker.pki.clientCert(identity);
  return { url: broker.url, ca: broker.pki.caCert, cert: files.cert, key: files.key };
}

beforeAll(async () => {
  broker = await startBroker();
  await device('kam-0001', 4, {});
  await device('kam-0002', 2, { faults: ['camera'] });
  await device('kam-0003', 9, { privacyOn: true });
  const dropped = await device('kam-0004', 1, {});
  // The device vanishes (power cut): the broker publishes its will.
  dropped.stream.destroy();
  await new Promise((resolve) => setTimeout(resolve, 300));
});

afterAll(async () => {
  await Promise.all([...devices.values()].map((client) => client.endAsync(true)));
  await broker?.stop();
});

describe('fleet-status', () => {
  it('shows every device with its state, faults, privacy and next window (--json)', async () => {
    const output: string[] = [];
    const code = await runFleetStatus(
      { ...(await optionsFor('ops')), waitMs: 700, watchS: undefined, json: true },
      (text) => output.push(text),
    );
    expect(code).toBe(0);
    const rows = JSON.parse(output[0] ?? '[]') as FleetRow[];
    expect(rows.map((row) => [row.device, row.state, row.faults, row.privacyOn, row.nextWindowAt])).toEqual([
      ['kam-0001', 'online', [], false, '2026-03-10T21:00:00Z'],
      ['kam-0002', 'online', ['camera'], false, '2026-03-10T21:00:00Z'],
      ['kam-0003', 'online', [], true, '2026-03-10T21:00:00Z'],
      ['kam-0004', 'offline', [], false, '2026-03-10T21:00:00Z'],
    ]);
    expect(rows.every((row) => row.healthAgeS !== undefined)).toBe(true);
  });

  it('runs as a command and prints a table with offline devices first', async () => {
    const options = await optionsFor('ops');
    const { stdout } = await run(
      'scripts/fleet-status',
      [
        '--url',
        options.url,
        '--ca',
        options.ca,
        '--cert',
        options.cert,
        '--key',
        options.key,
        '--wait-ms',
        '700',
      ],
      { cwd: root, timeout: 20_000 },
    );
    const lines = stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^DEVICE\s+STATE\s+SINCE\s+HEALTH\s+FAULTS\s+PRIVACY\s+NEXT WINDOW\s+AT RISK$/);
    expect(lines[1]).toMatch(/^kam-0004\s+OFFLINE/);
    expect(lines[2]).toMatch(/^kam-0002\s+online.*camera/);
    // How many are at risk depends on the time of day (the window is 22:00 local, the horizon 12 h).
    expect(lines.at(-1)).toMatch(/^4 devices, 3 online, 1 not online, [0-4] at risk$/);
  });

  it('sees a device go offline live while watching', async () => {
    const output: string[] = [];
    const controller = new AbortController();
    const watching = runFleetStatus(
      { ...(await optionsFor('ops')), waitMs: 500, watchS: 0.3, json: true },
      (text) => output.push(text),
      controller.signal,
    );
    await new Promise((resolve) => setTimeout(resolve, 700));
    devices.get('kam-0001')?.stream.destroy();
    const deadline = performance.now() + 5000;
    const offline = () =>
      (JSON.parse(output.at(-1) ?? '[]') as FleetRow[]).find((row) => row.device === 'kam-0001')?.state ===
      'offline';
    while (!offline() && performance.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 50));
    controller.abort();
    expect(await watching).toBe(0);
    expect(offline()).toBe(true);
  });
});

describe('FleetView', () => {
  const at = Date.parse('2026-03-10T21:00:00Z');
  it('ignores a stale will from an older connection', () => {
    const view = new FleetView();
    view.apply('tk/kam-0009/status', Buffer.from(status('online', 5)), at, false);
    view.apply('tk/kam-0009/status', Buffer.from(status('offline', 4)), at + 1000, false);
    expect(view.rows(at + 2000)[0]?.state).toBe('online');
  });

  it('counts malformed messages and keeps going', () => {
    const view = new FleetView();
    view.apply('tk/kam-0009/health', Buffer.from('{nope'), at, false);
    view.apply('tk/kam-0009/health', Buffer.from('{"schemaVersion":2}'), at, false);
    expect(view.malformed).toBe(2);
  });

  it('tracks camera faults from events as well as health', () => {
    const view = new FleetView();
    const fault = (active: boolean) =>
      Buffer.from(
        JSON.stringify({ schemaVersion, type: 'fault', fault: 'camera', active, at: '2026-03-10T21:00:00Z' }),
      );
    view.apply('tk/kam-0009/event', fault(true), at, false);
    expect(view.rows(at)[0]?.faults).toEqual(['camera']);
    view.apply('tk/kam-0009/event', fault(false), at, false);
    expect(formatTable(view.rows(at))).toContain('kam-0009');
    expect(view.rows(at)[0]?.faults).toEqual([]);
  });

  it('puts an offline device whose window is 6 h away at risk, first in the table', () => {
    const view = new FleetView();
    view.apply('tk/kam-0008/status', Buffer.from(status('online', 2)), at - 7 * 3600_000, true);
    view.apply('tk/kam-0008/health', Buffer.from(health({})), at - 7 * 3600_000, false);
    view.apply('tk/kam-0009/status', Buffer.from(status('online', 3)), at - 7 * 3600_000, true);
    view.apply('tk/kam-0009/status', Buffer.from(status('offline', 3)), at - 6 * 3600_000 - 1000, false);
    view.apply('tk/kam-0009/health', Buffer.from(health({ scheduleVersion: 7 })), at - 7 * 3600_000, false);
    const now = at - 6 * 3600_000;
    const rows = view.rows(now);
    expect(rows.find((row) => row.device === 'kam-0009')?.risk).toMatchObject({
      atRisk: true,
      reasons: ['offline'],
      timeLeftMs: 6 * 3600_000,
    });
    const lines = formatTable(rows).split('\n');
    expect(lines[1]).toMatch(/^kam-0009\s+OFFLINE.*offline \(6 h 00 min\)$/);
    expect(lines.at(-1)).toBe('2 devices, 1 online, 1 not online, 2 at risk');
  });
});
