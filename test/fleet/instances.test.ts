// Two fleet instances in one shared-subscription group, on one database: the broker splits the
// messages between them; one is killed (SIGKILL) mid-run and started again with the same client id;
// every event ends up in the database exactly once. Run on SQLite and on PostgreSQL.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { topic } from '../../device/protocol/index.js';
import { FleetStore, openDatabase } from '../../fleet/db/index.js';
import { type Broker, startBroker } from '../../scripts/devstack/broker.js';
import { faultEvent, statusPayload } from './support/devices.js';
import { type FleetProcess, fleetArgs, spawnFleet } from './support/instance.js';
import { type Postgres, startPostgres } from './support/postgres.js';

const deviceCount = 50;
const eventCount = 1500;
let broker: Broker;
let postgres: Postgres;
let publisher: MqttClient;
const dir = mkdtempSync(join(tmpdir(), 'tk-fleet-instances-'));
const running = new Set<FleetProcess>();

beforeAll(async () => {
  [broker, postgres] = await Promise.all([startBroker(), startPostgres()]);
  // `central` may publish on every device's topics: one connection stands in for many devices.
  publisher = await mqtt.connectAsync({ ...(await broker.clientOptions('central')), reconnectPeriod: 0 });
}, 60_000);

afterAll(async () => {
  for (const instance of running) await instance.kill();
  await publisher?.endAsync(true);
  await Promise.all([broker?.stop(), postgres?.stop()]);
  rmSync(dir, { recursive: true, force: true });
});

async function metric(url: string, name: string): Promise<number> {
  const text = await (await fetch(new URL('metrics', url))).text();
  return Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(text)?.[1] ?? Number.NaN);
}

const backends: [string, () => Promise<string>][] = [
  ['sqlite', async () => join(dir, 'fleet.db')],
  ['postgres', () => postgres.createDatabase('fleet_instances')],
];

describe.each(backends)('two instances on %s', (name, location) => {
  it('split the events, survive a SIGKILL of one, and store every event exactly once', async () => {
    const database = await location();
    const common = [
      ...(await fleetArgs(broker)),
      '--db',
      database,
      '--group',
      `fleet-${name}`,
      '--retained-sync-ms',
      '300',
      '--retained-refresh-s',
      '2',
    ];
    const start = async (instance: string) => {
      const process = await spawnFleet([...common, '--instance', `${name}-${instance}`]);
      running.add(process);
      return process;
    };
    const a = await start('a');
    const b = await start('b');
    const ids: string[] = [];
    let killedAt = -1;
    for (let i = 0; i < eventCount; i += 1) {
      const deviceId = `sim-${String(i % deviceCount).padStart(4, '0')}`;
      const id = `${name}-event-${String(i).padStart(5, '0')}`;
      ids.push(id);
      await publisher.publishAsync(topic(deviceId, 'event'), faultEvent('camera', i % 2 === 0, id), {
        qos: 1,
      });
      if (i === Math.floor(eventCount / 3)) {
        await a.kill();
        running.delete(a);
        killedAt = i;
      }
    }
    expect(killedAt).toBeGreaterThan(0);
    // While A is down the broker keeps queueing A's share for it (mosquitto 2.0): B still sees every
    // device go offline, from the retained state it reads again every 2 s.
    const gone = Array.from({ length: 6 }, (_, i) => `sim-${String(i).padStart(4, '0')}`);
    for (const deviceId of gone) {
      await publisher.publishAsync(topic(deviceId, 'status'), statusPayload('offline', 7), {
        qos: 1,
        retain: true,
      });
    }
    const deadlineOffline = performance.now() + 20_000;
    let offline: string[] = [];
    while (performance.now() < deadlineOffline) {
      const fleetB = (await (await fetch(new URL('api/fleet', b.url))).json()) as {
        devices: { device: string; state: string }[];
      };
      offline = fleetB.devices.filter((row) => row.state === 'offline').map((row) => row.device);
      if (offline.length === gone.length) break;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    expect(offline.sort()).toEqual(gone);
    // B keeps its share; what the broker queued for A's session waits for A to come back.
    const aAgain = await start('a');
    const db = openDatabase(database);
    const store = new FleetStore(db);
    try {
      const deadline = performance.now() + 60_000;
      let stored: string[] = [];
      while (performance.now() < deadline) {
        stored = await store.eventIds();
        if (stored.length >= eventCount) break;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      expect(stored).toEqual([...ids].sort());
      expect(new Set(stored).size).toBe(eventCount);
    } finally {
      await db.close();
    }
    // Both took part: each stored events of its own.
    expect(await metric(b.url, 'tk_fleet_events_total')).toBeGreaterThan(0);
    expect(await metric(aAgain.url, 'tk_fleet_events_total')).toBeGreaterThanOrEqual(0);
    // And both serve the whole fleet.
    const fleetA = (await (await fetch(new URL('api/fleet', aAgain.url))).json()) as { devices: unknown[] };
    expect(fleetA.devices).toHaveLength(deviceCount);
    expect(await aAgain.stop()).toBe(0);
    expect(await b.stop()).toBe(0);
    running.delete(aAgain);
    running.delete(b);
  }, 300_000);
});
