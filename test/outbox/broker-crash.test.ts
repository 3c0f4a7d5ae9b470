// "Nothing lost" end to end, against a real mosquitto that crashes. The central subscriber is away for
// a moment (its persistent session keeps its messages in the broker's memory); the device publishes,
// the broker PUBACKs, and then the broker is SIGKILLed before the subscriber is back, so whatever it
// held is gone (our broker config autosaves every 30 minutes; this test broker saves nothing at all).
// The device must still deliver every record: it keeps each one until the central service
// acknowledges its id on tk/<id>/ack, re-sends after reconnecting and after its re-send delay, and
// forgets acknowledged records for good (also in its file, across a restart of the outbox).
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../device/log/index.js';
import { MqttLink, memoryCounter } from '../../device/mqtt/index.js';
import { deliverAcks, Outbox, outboxFileName, parseLog } from '../../device/outbox/index.js';
import { type AckMessage, schemaVersion, topic } from '../../device/protocol/index.js';
import { type Broker, startBroker } from '../../scripts/devstack/broker.js';
import { waitUntil } from '../support/process.js';

const deviceId = 'dev-crash';
let broker: Broker;
let dir: string;

beforeAll(async () => {
  broker = await startBroker();
  dir = await mkdtemp(join(tmpdir(), 'tk-broker-crash-'));
});

afterAll(async () => {
  await broker?.stop();
  await rm(dir, { recursive: true, force: true });
});

/** The central service's side: a persistent session on audit and event, acknowledging every id. */
class Central {
  readonly seen = new Set<string>();
  subscribed = false;
  #client: MqttClient | undefined;

  async connect(): Promise<void> {
    const client = mqtt.connect({
      ...(await broker.clientOptions('central')),
      clientId: 'central-crash-test',
      clean: false,
      reconnectPeriod: 100,
    });
    this.#client = client;
    client.on('connect', () => {
      void client
        .subscribeAsync([topic(deviceId, 'audit'), topic(deviceId, 'event')], { qos: 1 })
        .then(() => {
          this.subscribed = true;
        });
    });
    client.on('message', (_topic, payload) => {
      const id = (JSON.parse(payload.toString()) as { id: string }).id;
      this.seen.add(id);
      const ack: AckMessage = { schemaVersion, ids: [id] };
      client.publish(topic(deviceId, 'ack'), JSON.stringify(ack), { qos: 1 });
    });
    await waitUntil(() => this.subscribed, 5000, 'central subscribed');
  }

  /** Goes away without ending its session: the broker queues its messages meanwhile. */
  async leave(): Promise<void> {
    this.subscribed = false;
    await this.#client?.endAsync();
    this.#client = undefined;
  }
}

describe('outbox through a broker crash', () => {
  it('delivers every record the broker had PUBACKed and lost, and forgets each once acknowledged by id', async () => {
    const central = new Central();
    await central.connect();
    const options = await broker.clientOptions(deviceId);
    const link = new MqttLink({
      deviceId,
      url: broker.url,
      tls: { ca: options.ca as Buffer, cert: options.cert as Buffer, key: options.key as Buffer },
      keepaliveS: 5,
      log: silentLogger(),
      counter: memoryCounter(),
      reconnect: { initialMs: 100, maxMs: 1000 },
    });
    const outbox = new Outbox({
      dir,
      log: silentLogger(),
      publish: (name, payload) => link.publish(name, payload),
      connection: link,
      retryMs: 50,
      resendMs: 300,
      maxResendMs: 1000,
    });
    await outbox.start();
    const stopAcks = deliverAcks({ link, outbox, log: silentLogger() });
    link.start();
    await waitUntil(() => link.connected, 5000, 'the condition');

    // While the central service is there, records arrive and are acknowledged.
    const before = [
      await outbox.enqueue('audit', { id: 'before-1' }),
      await outbox.enqueue('event', { id: 'before-2', type: 'privacy' }),
    ];
    await waitUntil(() => outbox.depth === 0, 5000, 'the condition');
    expect([...central.seen].sort()).toEqual(before);

    // The central service is away; the broker PUBACKs what it can only hold in memory.
    await central.leave();
    const published = outbox.stats.published;
    const during: string[] = [];
    for (let n = 0; n < 5; n += 1) during.push(await outbox.enqueue('audit', { id: `during-${n}` }));
    during.push(await outbox.enqueue('event', { id: 'during-event', type: 'privacy' }));
    await waitUntil(() => outbox.stats.published >= published + during.length, 5000, 'the condition');

    await broker.crash();
    await broker.restart();
    await central.connect();

    await waitUntil(() => during.every((id) => central.seen.has(id)), 15_000, 'every record').catch(
      () => undefined,
    );
    expect(during.filter((id) => !central.seen.has(id))).toEqual([]);
    await waitUntil(() => outbox.depth === 0, 5000, 'the condition');
    expect(outbox.stats.resent).toBeGreaterThanOrEqual(during.length);

    await outbox.stop();
    stopAcks();
    await link.stop();
    await central.leave();

    // Acknowledged records are gone from the file too: the next start has nothing to send.
    expect(parseLog(await readFile(join(dir, outboxFileName), 'utf8')).pending).toEqual([]);
    const next = new Outbox({
      dir,
      log: silentLogger(),
      publish: async () => undefined,
      connection: link,
    });
    await next.start();
    expect(next.pendingIds()).toEqual([]);
    await next.stop();
  });
});
