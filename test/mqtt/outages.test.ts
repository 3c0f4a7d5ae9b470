// The link and the outbox against a real mosquitto that is stopped and restarted five times while
// audit records are produced: every record arrives (by id, none under a new id, none missing), the
// device reconnects within seconds of each return, status is `online` again with a new, persisted
// connection counter. The central subscriber acknowledges every record by id on tk/<id>/ack, and
// only that empties the outbox.
//
// The broker keeps no sessions across a restart (persistence off), so the test's central subscriber
// must be subscribed again before the device publishes: the device's connects are held behind a gate
// until then (mqtt.js `manualConnect`), so that first arrivals follow production order (the outbox's
// re-send delay would deliver the rest anyway, later). The gate only adds delay to the measured
// reconnect time.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../device/log/index.js';
import { fileCounter, MqttLink } from '../../device/mqtt/index.js';
import { deliverAcks, Outbox } from '../../device/outbox/index.js';
import { type AckMessage, schemaVersion, topic } from '../../device/protocol/index.js';
import { type Broker, startBroker } from '../../scripts/devstack/broker.js';
import { waitUntil } from '../support/process.js';

const deviceId = 'dev-outage';
let broker: Broker;
let dir: string;

beforeAll(async () => {
  broker = await startBroker();
  dir = await mkdtemp(join(tmpdir(), 'tk-outage-'));
});

afterAll(async () => {
  await broker?.stop();
  await rm(dir, { recursive: true, force: true });
});

async function centralClient(seen: { ids: string[]; status: string[] }): Promise<MqttClient> {
  const client = mqtt.connect({
    ...(await broker.clientOptions('central')),
    reconnectPeriod: 50,
    clientId: 'central-outage-test',
  });
  client.on('message', (topicName, payload) => {
    const body = JSON.parse(payload.toString()) as { id?: string; state?: string; connection?: number };
    if (topicName.endsWith('/audit') && body.id) {
      seen.ids.push(body.id);
      const ack: AckMessage = { schemaVersion, ids: [body.id] };
      client.publish(topic(deviceId, 'ack'), JSON.stringify(ack), { qos: 1 });
    }
    if (topicName.endsWith('/status')) seen.status.push(`${body.state}:${body.connection}`);
  });
  client.on('connect', () => {
    void client.subscribeAsync([`tk/${deviceId}/audit`, `tk/${deviceId}/status`], { qos: 1 }).then(() => {
      subscribed = true;
    });
  });
  return client;
}
let subscribed = false;

describe('link and outbox through broker outages', () => {
  it('delivers every record by id across 5 outages and comes back online each time', async () => {
    const seen = { ids: [] as string[], status: [] as string[] };
    const central = await centralClient(seen);
    await waitUntil(() => subscribed, 5000, 'central subscribed');

    let gate: Promise<void> = Promise.resolve();
    const options = await broker.clientOptions(deviceId);
    const counter = await fileCounter({ dir, log: silentLogger() });
    const link = new MqttLink({
      deviceId,
      url: broker.url,
      tls: { ca: options.ca as Buffer, cert: options.cert as Buffer, key: options.key as Buffer },
      keepaliveS: 5,
      log: silentLogger(),
      counter,
      reconnect: { initialMs: 100, maxMs: 1000 },
      connect: (url, connectOptions) => {
        const client = mqtt.connect(url, { ...connectOptions, manualConnect: true });
        void gate.then(() => client.connect());
        return client;
      },
    });
    const outbox = new Outbox({
      dir,
      log: silentLogger(),
      publish: (name, payload) => link.publish(name, payload),
      connection: link,
      retryMs: 50,
    });
    await outbox.start();
    const stopAcks = deliverAcks({ link, outbox, log: silentLogger() });
    link.start();
    await waitUntil(() => link.connected, 5000, 'the device connected');

    const produced: string[] = [];
    let producing = true;
    const producer = (async () => {
      for (let n = 0; producing; n += 1) {
        produced.push(await outbox.enqueue('audit', { id: `rec-${n}`, n }));
        await delay(5);
      }
    })();

    for (let outage = 0; outage < 5; outage += 1) {
      await delay(400);
      let open!: () => void;
      gate = new Promise((resolve) => {
        open = resolve;
      });
      subscribed = false;
      await broker.restart();
      await waitUntil(() => subscribed, 5000, 'central subscribed again');
      open();
      await waitUntil(() => link.connected, 10_000, 'the device connected again');
    }
    await delay(300);
    producing = false;
    await producer;
    await waitUntil(() => outbox.depth === 0, 10_000, 'an empty outbox');
    await waitUntil(() => new Set(seen.ids).size >= produced.length, 10_000, 'every record');

    const unique = new Set(seen.ids);
    expect([...unique].sort()).toEqual([...produced].sort());
    // Order: the first arrival of each id follows production order.
    const firstSeen = seen.ids.filter((id, index) => seen.ids.indexOf(id) === index);
    expect(firstSeen).toEqual(produced);
    // How fast the device is back is a figure for npm run bench (the fleet bench), not a test.
    const connection = link.stats.connection;
    expect(seen.status.at(-1)).toBe(`online:${connection}`);
    expect(counter.value).toBe(connection);
    console.log(
      `outages: ${produced.length} records, ${seen.ids.length - unique.size} duplicates (same id), ` +
        `${link.stats.attempts} connect attempts, counter ${connection}`,
    );

    await outbox.stop();
    stopAcks();
    await link.stop();
    await central.endAsync(true);
  });

  it('keeps the connection counter across a restart of the device', async () => {
    const before = (await fileCounter({ dir, log: silentLogger() })).value;
    const counter = await fileCounter({ dir, log: silentLogger() });
    expect(await counter.next()).toBe(before + 1);
    expect((await fileCounter({ dir, log: silentLogger() })).value).toBe(before + 1);
  });
});
