// The fleet service against a real mosquitto with simulated devices: retained state at start, a device
// going at risk live (API, webhook, metrics), history and looks from audit records.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { topic } from '../../device/protocol/index.js';
import { type Fleet, startFleet } from '../../fleet/index.js';
import type { DeviceRow } from '../../fleet/view/index.js';
import { type Broker, startBroker } from '../../scripts/devstack/broker.js';
import {
  announce,
  auditRecord,
  connectDevice,
  faultEvent,
  healthPayload,
  startWebhook,
  until,
} from './support/devices.js';

let broker: Broker;
let fleet: Fleet;
let webhook: Awaited<ReturnType<typeof startWebhook>>;
const devices: MqttClient[] = [];
const dir = mkdtempSync(join(tmpdir(), 'tk-fleet-service-'));
const inTwoHours = () => new Date(Date.now() + 2 * 3600_000).toISOString();

async function fleetJson(): Promise<{ devices: DeviceRow[]; atRisk: string[] }> {
  return (await fetch(new URL('api/fleet', fleet.url))).json() as Promise<{
    devices: DeviceRow[];
    atRisk: string[];
  }>;
}

beforeAll(async () => {
  broker = await startBroker();
  webhook = await startWebhook();
  // kam-0001 is up before the fleet starts: the fleet must learn it from retained messages.
  const early = await connectDevice('kam-0001', await broker.clientOptions('kam-0001'));
  devices.push(early);
  await announce(early, 'kam-0001', healthPayload({ nextWindowAt: inTwoHours() }));
  fleet = await startFleet(
    {
      instance: 'test-a',
      mqtt: await broker.clientOptions('ops'),
      database: join(dir, 'fleet.db'),
      http: { host: '127.0.0.1', port: 0 },
      webhookUrl: webhook.url,
      retainedSyncMs: 500,
    },
    { log: pino({ level: 'silent' }) },
  );
});

afterAll(async () => {
  await fleet?.stop();
  for (const device of devices) await device.endAsync(true);
  await webhook?.stop();
  await broker?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('fleet service', () => {
  it('knows a device from its retained status, health and info', async () => {
    const row = await until('kam-0001', async () =>
      (await fleetJson()).devices.find((d) => d.device === 'kam-0001'),
    );
    expect(row).toMatchObject({ state: 'online', firmware: '0.1.0', faults: [], risk: { atRisk: false } });
    expect(row.nextWindowAt).toBeDefined();
  });

  it('puts a device at risk when its camera is unplugged, alerts by webhook with the time left, and clears', async () => {
    const device = await connectDevice('kam-0002', await broker.clientOptions('kam-0002'));
    devices.push(device);
    const windowAt = inTwoHours();
    await announce(device, 'kam-0002', healthPayload({ nextWindowAt: windowAt }));
    await until('kam-0002 online', async () =>
      (await fleetJson()).devices.find((d) => d.device === 'kam-0002' && d.state === 'online'),
    );
    await device.publishAsync(topic('kam-0002', 'event'), faultEvent('camera', true), { qos: 1 });
    await device.publishAsync(
      topic('kam-0002', 'health'),
      healthPayload({ nextWindowAt: windowAt, faults: ['camera'] }),
      { qos: 0, retain: true },
    );
    const fleetView = await until('at risk', async () => {
      const view = await fleetJson();
      return view.atRisk.includes('kam-0002') ? view : undefined;
    });
    const row = fleetView.devices.find((d) => d.device === 'kam-0002');
    expect(row?.risk.reasons).toEqual(['camera']);
    const body = (await until('webhook', () =>
      webhook.bodies.find((b) => (b as { device: string }).device === 'kam-0002'),
    )) as {
      device: string;
      reasons: string[];
      timeLeftS: number;
      text: string;
    };
    expect(body.reasons).toEqual(['camera']);
    expect(body.timeLeftS).toBeGreaterThan(7000);
    expect(body.timeLeftS).toBeLessThanOrEqual(7200);
    expect(body.text).toMatch(
      /^kam-0002: camera fault; check-in at .* in (1 h 5\d|2 h 00) min\. Send a person\.$/,
    );
    const metrics = await (await fetch(new URL('metrics', fleet.url))).text();
    expect(metrics).toMatch(/^tk_fleet_at_risk 1$/m);
    expect(metrics).toMatch(/^tk_fleet_faults\{kind="camera"\} 1$/m);

    await device.publishAsync(topic('kam-0002', 'event'), faultEvent('camera', false), { qos: 1 });
    await until('cleared', async () => !(await fleetJson()).atRisk.includes('kam-0002'));
  });

  it('marks a device whose process dies offline (its will) and at risk', async () => {
    const device = await connectDevice('kam-0003', await broker.clientOptions('kam-0003'));
    await announce(device, 'kam-0003', healthPayload({ nextWindowAt: inTwoHours() }));
    await until('kam-0003 online', async () =>
      (await fleetJson()).devices.find((d) => d.device === 'kam-0003' && d.state === 'online'),
    );
    device.stream.destroy();
    const row = await until('offline', async () =>
      (await fleetJson()).devices.find((d) => d.device === 'kam-0003' && d.risk.atRisk),
    );
    expect(row.state).toBe('offline');
    expect(row.risk.reasons).toEqual(['offline']);
    await device.endAsync(true);
  });

  it('counts looks and refusals from audit records, and keeps the history', async () => {
    const device = devices[0]!;
    await device.publishAsync(topic('kam-0001', 'audit'), auditRecord('kam-0001', 'granted'), { qos: 1 });
    await device.publishAsync(topic('kam-0001', 'audit'), auditRecord('kam-0001', 'refused'), { qos: 1 });
    await until('look stored', async () =>
      (await fleetJson()).devices.find((d) => d.device === 'kam-0001' && d.lastLookAt),
    );
    const metrics = await (await fetch(new URL('metrics', fleet.url))).text();
    expect(metrics).toMatch(/^tk_fleet_looks_total 1$/m);
    expect(metrics).toMatch(/^tk_fleet_refusals_total\{reason="privacy-on"\} 1$/m);
    const history = (await (await fetch(new URL('api/devices/kam-0001/history', fleet.url))).json()) as {
      entries: { kind: string }[];
      looksPerNight: { looks: number }[];
    };
    expect(history.entries.map((entry) => entry.kind)).toEqual(['online', 'look', 'refusal']);
    expect(history.looksPerNight.map((night) => night.looks)).toEqual([1]);
    const kam2 = (await (await fetch(new URL('api/devices/kam-0002/history', fleet.url))).json()) as {
      entries: { kind: string }[];
    };
    expect(kam2.entries.map((entry) => entry.kind)).toEqual(['online', 'fault-on', 'fault-off']);
  });
});
