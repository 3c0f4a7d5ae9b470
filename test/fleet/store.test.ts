// The fleet store on both databases: SQLite always, PostgreSQL on a throwaway server this test starts.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type Database,
  FleetStore,
  type Incoming,
  migrate,
  openDatabase,
  splitStatements,
} from '../../fleet/db/index.js';
import { parseFleetMessage } from '../../fleet/protocol.js';
import { activeFaults } from '../../fleet/state/index.js';
import { type Postgres, startPostgres } from './support/postgres.js';

const t0 = Date.parse('2026-03-10T20:00:00Z');

function incoming(topic: string, deviceId: string, payload: object, receivedAtMs = t0): Incoming {
  const parsed = parseFleetMessage(`tk/${deviceId}/${topic}`, JSON.stringify(payload));
  if (!parsed.ok) throw new Error(parsed.reason);
  return { message: parsed.message, receivedAtMs, retained: false };
}
const fault = (deviceId: string, id: string, active: boolean) =>
  incoming('event', deviceId, {
    id,
    schemaVersion: 1,
    type: 'fault',
    fault: 'camera',
    active,
    at: '2026-03-10T19:59:00.000Z',
  });

let postgres: Postgres | undefined;
const dir = mkdtempSync(join(tmpdir(), 'tk-fleet-store-'));
let counter = 0;

beforeAll(async () => {
  postgres = await startPostgres();
}, 60_000);
afterAll(async () => {
  await postgres?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const backends: [string, () => Promise<string>][] = [
  ['sqlite', async () => join(dir, `fleet-${++counter}.db`)],
  ['postgres', async () => postgres!.createDatabase(`fleet_${++counter}`)],
];

describe.each(backends)('FleetStore on %s', (_name, location) => {
  const opened: Database[] = [];
  afterAll(async () => {
    for (const db of opened) await db.close();
  });
  async function open(url?: string): Promise<{ db: Database; store: FleetStore; url: string }> {
    const where = url ?? (await location());
    const db = openDatabase(where);
    opened.push(db);
    await migrate(db);
    return { db, store: new FleetStore(db), url: where };
  }

  it('applies its migrations once', async () => {
    const { db } = await open();
    expect(await migrate(db)).toEqual([]);
    expect(await db.query('SELECT version FROM schema_migrations')).toEqual([{ version: '001_init' }]);
  });

  it('stores an event delivered twice exactly once, and applies it once', async () => {
    const { store } = await open();
    const first = await store.applyBatch([fault('kam-0001', 'ev-1', true)], t0);
    const again = await store.applyBatch([fault('kam-0001', 'ev-1', true)], t0 + 10);
    expect(first).toMatchObject({ newEvents: 1, duplicates: 0 });
    expect(again).toMatchObject({ newEvents: 0, duplicates: 1, changed: [] });
    expect(await store.eventIds()).toEqual(['ev-1']);
    const [device] = await store.devices();
    expect(activeFaults(device!.state)).toEqual(['camera']);
    expect((await store.history('kam-0001', 0)).map((entry) => entry.kind)).toEqual(['fault-on']);
  });

  it('keeps state consistent when two connections apply batches for the same device', async () => {
    const a = await open();
    const b = await open(a.url);
    const batches = Array.from({ length: 40 }, (_, i) =>
      (i % 2 === 0 ? a : b).store.applyBatch(
        [fault('kam-0002', `ev-${i}`, i % 4 === 0), fault('kam-0003', `x-${i}`, true)],
        t0 + i,
      ),
    );
    await Promise.all(batches);
    expect((await a.store.eventIds()).length).toBe(80);
    const devices = await b.store.devices();
    expect(devices.map((device) => device.state.deviceId).sort()).toEqual(['kam-0002', 'kam-0003']);
  });

  it('gives an alert claim to exactly one caller per episode', async () => {
    const a = await open();
    const b = await open(a.url);
    await a.store.applyBatch([fault('kam-0004', 'ev-a', true)], t0);
    const claims = await Promise.all([
      a.store.claimAlert('kam-0004', 'w1:camera'),
      b.store.claimAlert('kam-0004', 'w1:camera'),
    ]);
    expect(claims.filter(Boolean)).toHaveLength(1);
    expect(await a.store.claimAlert('kam-0004', 'w1:camera,offline')).toBe(true);
    await b.store.clearAlert('kam-0004');
    expect(await b.store.claimAlert('kam-0004', 'w1:camera')).toBe(true);
  });

  it('lists devices written since a time, and records alerts', async () => {
    const { store } = await open();
    await store.applyBatch([fault('kam-0005', 'e5', true)], t0);
    await store.applyBatch([fault('kam-0006', 'e6', true)], t0 + 5000);
    expect((await store.devices(t0 + 1000)).map((device) => device.state.deviceId)).toEqual(['kam-0006']);
    await store.recordAlert({
      id: 'al-1',
      deviceId: 'kam-0005',
      raisedAtMs: t0,
      windowAt: '2026-03-10T21:00:00.000Z',
      timeLeftMs: 3600_000,
      reasons: ['camera'],
      text: 'x',
    });
    expect(await store.recentAlerts(5)).toEqual([
      {
        id: 'al-1',
        deviceId: 'kam-0005',
        raisedAtMs: t0,
        windowAt: '2026-03-10T21:00:00.000Z',
        timeLeftMs: 3600_000,
        reasons: ['camera'],
        text: 'x',
      },
    ]);
  });
});

describe('splitStatements', () => {
  it('splits a migration into statements without comments', () => {
    expect(splitStatements('-- a comment\nCREATE TABLE a (x TEXT);\nCREATE INDEX b ON a (x);\n')).toEqual([
      'CREATE TABLE a (x TEXT)',
      'CREATE INDEX b ON a (x)',
    ]);
  });
});
