// Proves the dev stack's broker and the broker set-up we ship (ACL, username as client id, packet size
// limit) with real mosquitto and real mqtt.js clients. Denied reads and writes are proven by
// non-delivery: mosquitto 2.0 acknowledges a denied publish and grants every subscription, then silently
// drops what the ACL forbids. So every such test also sends a marker that must arrive, after the
// message that must not: the broker handles packets in order on one thread, so once the marker is
// delivered, the forbidden message would have been too.
import { readFile } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { maxPacketSizeBytes } from '../../scripts/broker/config.js';
import { type Broker, startBroker } from '../../scripts/devstack/broker.js';
import { createPki } from '../../scripts/devstack/pki.js';
import { waitUntil } from '../support/process.js';

const quietMs = 500;
const clients = new Set<MqttClient>();

/** Connects once (no reconnect) and resolves when the broker accepted the connection. */
function connect(options: IClientOptions): Promise<MqttClient> {
  const client = mqtt.connect({ reconnectPeriod: 0, connectTimeout: 5_000, ...options });
  clients.add(client);
  return new Promise((resolve, reject) => {
    client.once('connect', () => resolve(client));
    client.once('error', reject);
    client.once('close', () => reject(new Error('connection closed before CONNACK')));
  });
}

/** Collects every message a client receives, as `topic payload` strings. */
function record(client: MqttClient): string[] {
  const seen: string[] = [];
  client.on('message', (topic, payload) => seen.push(`${topic} ${payload.toString()}`));
  return seen;
}

const waitFor = (condition: () => boolean, timeoutMs = 5_000): Promise<void> =>
  waitUntil(condition, timeoutMs, 'the condition');

afterEach(async () => {
  await Promise.all([...clients].map((client) => client.endAsync(true)));
  clients.clear();
});

describe('test broker with the protocol ACL over TLS', () => {
  let broker: Broker;

  beforeAll(async () => {
    broker = await startBroker();
  });

  afterAll(async () => {
    await broker?.stop();
  });

  it('delivers a device status to central', async () => {
    const central = await connect(await broker.clientOptions('central'));
    const seen = record(central);
    await central.subscribeAsync('tk/#', { qos: 1 });
    const device = await connect(await broker.clientOptions('dev-aaa'));

    await device.publishAsync('tk/dev-aaa/status', 'online', { qos: 1 });

    await waitFor(() => seen.length > 0);
    expect(seen).toEqual(['tk/dev-aaa/status online']);
  });

  it('lets a device read back its own status', async () => {
    const device = await connect(await broker.clientOptions('dev-aaa'));
    const seen = record(device);
    await device.subscribeAsync('tk/dev-aaa/status', { qos: 1 });

    await device.publishAsync('tk/dev-aaa/status', 'self-test', { qos: 1 });

    await waitFor(() => seen.length > 0);
    expect(seen).toEqual(['tk/dev-aaa/status self-test']);
  });

  it('does not deliver another device schedule to a device', async () => {
    const device = await connect(await broker.clientOptions('dev-aaa'));
    const seen = record(device);
    await device.subscribeAsync(['tk/dev-bbb/schedule', 'tk/dev-aaa/schedule'], { qos: 1 });
    const central = await connect(await broker.clientOptions('central'));

    await central.publishAsync('tk/dev-bbb/schedule', 'for bbb', { qos: 1 });
    // Same publisher, same subscriber: had the first been delivered, it would arrive before this one.
    await central.publishAsync('tk/dev-aaa/schedule', 'for aaa', { qos: 1 });

    await waitFor(() => seen.length > 0);
    await delay(quietMs);
    expect(seen).toEqual(['tk/dev-aaa/schedule for aaa']);
  });

  it('drops a device publish to another device status', async () => {
    const central = await connect(await broker.clientOptions('central'));
    const seen = record(central);
    await central.subscribeAsync('tk/#', { qos: 1 });
    const device = await connect(await broker.clientOptions('dev-aaa'));

    await device.publishAsync('tk/dev-bbb/status', 'forged', { qos: 1 });
    await device.publishAsync('tk/dev-aaa/status', 'marker', { qos: 1 });

    await waitFor(() => seen.length > 0);
    await delay(quietMs);
    expect(seen).toEqual(['tk/dev-aaa/status marker']);
  });

  it('drops a device publish to its own schedule', async () => {
    const central = await connect(await broker.clientOptions('central'));
    const seen = record(central);
    await central.subscribeAsync('tk/#', { qos: 1 });
    const device = await connect(await broker.clientOptions('dev-aaa'));

    await device.publishAsync('tk/dev-aaa/schedule', 'self-granted', { qos: 1 });
    await device.publishAsync('tk/dev-aaa/status', 'marker', { qos: 1 });

    await waitFor(() => seen.length > 0);
    await delay(quietMs);
    expect(seen).toEqual(['tk/dev-aaa/status marker']);
  });

  it('drops everything ops publishes, including under its own name', async () => {
    const central = await connect(await broker.clientOptions('central'));
    const seen = record(central);
    await central.subscribeAsync('tk/#', { qos: 1 });
    const ops = await connect(await broker.clientOptions('ops'));
    const device = await connect(await broker.clientOptions('dev-aaa'));

    await ops.publishAsync('tk/dev-aaa/schedule', 'from ops', { qos: 1 });
    await ops.publishAsync('tk/ops/status', 'from ops', { qos: 1 });
    // Both PUBACKs are in, so mosquitto has routed (or dropped) both before it sees this marker.
    await device.publishAsync('tk/dev-aaa/status', 'marker', { qos: 1 });

    await waitFor(() => seen.length > 0);
    await delay(quietMs);
    expect(seen).toEqual(['tk/dev-aaa/status marker']);
  });

  it('delivers device messages to ops', async () => {
    const ops = await connect(await broker.clientOptions('ops'));
    const seen = record(ops);
    await ops.subscribeAsync('tk/#', { qos: 1 });
    const device = await connect(await broker.clientOptions('dev-aaa'));

    await device.publishAsync('tk/dev-aaa/health', 'ok', { qos: 1 });

    await waitFor(() => seen.length > 0);
    expect(seen).toEqual(['tk/dev-aaa/health ok']);
  });

  it('refuses a client without a certificate', async () => {
    const { cert: _cert, key: _key, ...withoutCertificate } = await broker.clientOptions('dev-aaa');

    await expect(connect(withoutCertificate)).rejects.toThrow();
  });

  it('refuses a client certificate from a different CA', async () => {
    const foreign = await (await createPki('foreign CA')).clientCert('dev-aaa');
    const options = await broker.clientOptions('dev-aaa');
    const [cert, key] = await Promise.all([readFile(foreign.cert), readFile(foreign.key)]);

    await expect(connect({ ...options, cert, key })).rejects.toThrow();
  });

  it('refuses a broker whose certificate is not from the configured CA', async () => {
    const foreignCa = await readFile((await createPki('foreign CA')).caCert);
    const options = await broker.clientOptions('dev-aaa');

    await expect(connect({ ...options, ca: foreignCa })).rejects.toThrow(/certificate/i);
  });
});

describe('test broker lifecycle', () => {
  let broker: Broker;

  beforeAll(async () => {
    broker = await startBroker();
  });

  afterAll(async () => {
    await broker?.stop();
  });

  it('serves again on the same port after a restart', async () => {
    const port = broker.port;

    await broker.restart();

    expect(broker.port).toBe(port);
    await expect(connect(await broker.clientOptions('central'))).resolves.toBeDefined();
  });

  it('refuses connections while stopped and tolerates repeated stops', async () => {
    await Promise.all([broker.stop(), broker.stop()]);
    await broker.stop();

    expect(broker.running).toBe(false);
    await expect(connect(await broker.clientOptions('central'))).rejects.toThrow(/ECONNREFUSED/);
    await broker.restart();
  });

  it('keeps the broker log', () => {
    expect(broker.logs()).toMatch(/mosquitto version 2\.\d+\.\d+ running/);
  });
});

describe('test broker WebSocket and plain listeners', () => {
  let broker: Broker;

  beforeAll(async () => {
    broker = await startBroker({ websockets: true, plain: true });
  });

  afterAll(async () => {
    await broker?.stop();
  });

  it('delivers a device answer to a console logged in over WebSocket', async () => {
    const console1 = await connect(broker.wsOptions('console-1'));
    const seen = record(console1);
    await console1.subscribeAsync('tk/+/view/answer', { qos: 1 });
    const device = await connect(await broker.clientOptions('dev-aaa'));

    await device.publishAsync('tk/dev-aaa/view/answer', 'accepted', { qos: 1 });

    await waitFor(() => seen.length > 0);
    expect(seen).toEqual(['tk/dev-aaa/view/answer accepted']);
  });

  it('refuses a WebSocket login with a wrong password', async () => {
    await expect(connect({ ...broker.wsOptions('console-1'), password: 'wrong' })).rejects.toThrow(
      /Not authorized|Bad User Name or Password/i,
    );
  });

  it('refuses an anonymous WebSocket client', async () => {
    const { username: _username, password: _password, ...anonymous } = broker.wsOptions('console-1');

    await expect(connect(anonymous)).rejects.toThrow(/Not authorized/i);
  });

  it('applies the stated identity ACL on the plain listener', async () => {
    const central = await connect(await broker.clientOptions('central'));
    const seen = record(central);
    await central.subscribeAsync('tk/#', { qos: 1 });
    const device = await connect(broker.plainOptions('dev-aaa'));

    await device.publishAsync('tk/dev-bbb/status', 'forged', { qos: 1 });
    await device.publishAsync('tk/dev-aaa/status', 'plain', { qos: 1 });

    await waitFor(() => seen.length > 0);
    await delay(quietMs);
    expect(seen).toEqual(['tk/dev-aaa/status plain']);
  });

  it('lets an anonymous client on the plain listener use the whole tree', async () => {
    const central = await connect(await broker.clientOptions('central'));
    const seen = record(central);
    await central.subscribeAsync('tk/#', { qos: 1 });
    const demo = await connect(broker.plainOptions());

    await demo.publishAsync('tk/dev-demo/status', 'online', { qos: 1 });

    await waitFor(() => seen.length > 0);
    expect(seen).toEqual(['tk/dev-demo/status online']);
  });
});

/** Counts the times the broker closed a client's connection. */
function closes(client: MqttClient): { count: number } {
  const seen = { count: 0 };
  client.on('close', () => {
    seen.count += 1;
  });
  return seen;
}

describe('test broker with one identity per console', () => {
  let broker: Broker;

  beforeAll(async () => {
    broker = await startBroker({ consoles: ['console-a', 'console-b'], websockets: true });
  });

  afterAll(async () => {
    await broker?.stop();
  });

  it('delivers a view request to the device from each console, over TLS and over WebSocket', async () => {
    const device = await connect(await broker.clientOptions('dev-aaa'));
    const seen = record(device);
    await device.subscribeAsync('tk/dev-aaa/view/request', { qos: 1 });
    const consoleA = await connect(await broker.clientOptions('console-a'));
    const consoleB = await connect(broker.wsOptions('console-b'));

    await consoleA.publishAsync('tk/dev-aaa/view/request', 'from a', { qos: 1 });
    await consoleB.publishAsync('tk/dev-aaa/view/request', 'from b', { qos: 1 });

    await waitFor(() => seen.length >= 2);
    expect(seen.sort()).toEqual(['tk/dev-aaa/view/request from a', 'tk/dev-aaa/view/request from b']);
  });

  it('delivers a device answer and status to each console', async () => {
    const consoleA = await connect(broker.wsOptions('console-a'));
    const consoleB = await connect(await broker.clientOptions('console-b'));
    const seenA = record(consoleA);
    const seenB = record(consoleB);
    await consoleA.subscribeAsync(['tk/+/view/answer', 'tk/+/status'], { qos: 1 });
    await consoleB.subscribeAsync(['tk/+/view/answer', 'tk/+/status'], { qos: 1 });
    const device = await connect(await broker.clientOptions('dev-aaa'));

    await device.publishAsync('tk/dev-aaa/view/answer', 'answer', { qos: 1 });
    await device.publishAsync('tk/dev-aaa/status', 'online', { qos: 1 });

    await waitFor(() => seenA.length >= 2 && seenB.length >= 2);
    const expected = ['tk/dev-aaa/view/answer answer', 'tk/dev-aaa/status online'];
    expect(seenA).toEqual(expected);
    expect(seenB).toEqual(expected);
  });

  it('does not deliver device health, events, audit or schedules to a console', async () => {
    const consoleA = await connect(await broker.clientOptions('console-a'));
    const seen = record(consoleA);
    await consoleA.subscribeAsync('tk/#', { qos: 1 });
    const device = await connect(await broker.clientOptions('dev-aaa'));
    const central = await connect(await broker.clientOptions('central'));

    await central.publishAsync('tk/dev-aaa/schedule', 'schedule', { qos: 1 });
    await device.publishAsync('tk/dev-aaa/health', 'health', { qos: 1 });
    await device.publishAsync('tk/dev-aaa/event', 'event', { qos: 1 });
    await device.publishAsync('tk/dev-aaa/audit', 'audit', { qos: 1 });
    await device.publishAsync('tk/dev-aaa/status', 'marker', { qos: 1 });

    await waitFor(() => seen.length > 0);
    await delay(quietMs);
    expect(seen).toEqual(['tk/dev-aaa/status marker']);
  });

  it('drops a console publish to a schedule, a device topic or its own subtree', async () => {
    const central = await connect(await broker.clientOptions('central'));
    const seen = record(central);
    await central.subscribeAsync('tk/#', { qos: 1 });
    const consoleA = await connect(await broker.clientOptions('console-a'));

    await consoleA.publishAsync('tk/dev-aaa/schedule', 'forged', { qos: 1 });
    await consoleA.publishAsync('tk/dev-aaa/status', 'forged', { qos: 1 });
    await consoleA.publishAsync('tk/console-a/status', 'own', { qos: 1 });
    await consoleA.publishAsync('tk/dev-aaa/view/request', 'marker', { qos: 1 });

    await waitFor(() => seen.length > 0);
    await delay(quietMs);
    expect(seen).toEqual(['tk/dev-aaa/view/request marker']);
  });

  it('gives a certificate named after the retired shared operator account no console rights', async () => {
    const device = await connect(await broker.clientOptions('dev-aaa'));
    const seen = record(device);
    await device.subscribeAsync('tk/dev-aaa/view/request', { qos: 1 });
    const operator = await connect(await broker.clientOptions('operator'));
    const consoleA = await connect(await broker.clientOptions('console-a'));

    await operator.publishAsync('tk/dev-aaa/view/request', 'from operator', { qos: 1 });
    await consoleA.publishAsync('tk/dev-aaa/view/request', 'marker', { qos: 1 });

    await waitFor(() => seen.length > 0);
    await delay(quietMs);
    expect(seen).toEqual(['tk/dev-aaa/view/request marker']);
  });

  it('refuses a WebSocket login as the retired shared operator account', async () => {
    const options = { ...broker.wsOptions('console-a'), username: 'operator' };

    await expect(connect(options)).rejects.toThrow(/Not authorized|Bad User Name or Password/i);
  });
});

describe('test broker client ids', () => {
  let broker: Broker;

  beforeAll(async () => {
    broker = await startBroker({ websockets: true });
  });

  afterAll(async () => {
    await broker?.stop();
  });

  /** A device as device/mqtt/link.ts connects it: client id tk-<deviceId>, listening to its schedule. */
  async function connectDevice(): Promise<{ seen: string[]; closed: { count: number } }> {
    const device = await connect({ ...(await broker.clientOptions('dev-aaa')), clientId: 'tk-dev-aaa' });
    const closed = closes(device);
    const seen = record(device);
    await device.subscribeAsync('tk/dev-aaa/schedule', { qos: 1 });
    return { seen, closed };
  }

  // mosquitto settles a client id clash while it handles the CONNECT, before it sends the CONNACK: once
  // the second login is accepted, a take-over would already have closed the device's connection, and
  // a marker published after that can only reach the device if it is still connected.
  async function expectStillConnected(device: { seen: string[]; closed: { count: number } }) {
    const central = await connect(await broker.clientOptions('central'));
    await central.publishAsync('tk/dev-aaa/schedule', 'marker', { qos: 1 });
    await waitFor(() => device.seen.length > 0);
    expect(device.seen).toEqual(['tk/dev-aaa/schedule marker']);
    expect(device.closed.count).toBe(0);
  }

  it('keeps a device connected when ops logs in with the device client id', async () => {
    const device = await connectDevice();

    await connect({ ...(await broker.clientOptions('ops')), clientId: 'tk-dev-aaa' });

    await expectStillConnected(device);
  });

  it('keeps a device connected when a console logs in over WebSocket with the device client id', async () => {
    const device = await connectDevice();

    await connect({ ...broker.wsOptions('console-1'), clientId: 'tk-dev-aaa' });

    await expectStillConnected(device);
  });

  it('keeps a device connected when a console logs in over TLS with the device id as client id', async () => {
    const device = await connectDevice();

    await connect({ ...(await broker.clientOptions('console-2')), clientId: 'dev-aaa' });

    await expectStillConnected(device);
  });

  it('replaces a device connection when the same certificate logs in again, whatever its client id', async () => {
    const first = await connectDevice();

    const second = await connect({ ...(await broker.clientOptions('dev-aaa')), clientId: 'anything' });
    const seen = record(second);
    await second.subscribeAsync('tk/dev-aaa/schedule', { qos: 1 });
    const central = await connect(await broker.clientOptions('central'));
    await central.publishAsync('tk/dev-aaa/schedule', 'marker', { qos: 1 });

    await waitFor(() => seen.length > 0 && first.closed.count > 0);
    expect(first.seen).toEqual([]);
  });
});

describe('test broker packet size limit', () => {
  let broker: Broker;

  beforeAll(async () => {
    broker = await startBroker();
  });

  afterAll(async () => {
    await broker?.stop();
  });

  it('disconnects a client that sends a packet over max_packet_size and delivers nothing of it', async () => {
    const central = await connect(await broker.clientOptions('central'));
    const seen = record(central);
    await central.subscribeAsync('tk/#', { qos: 1 });
    const sender = await connect(await broker.clientOptions('dev-aaa'));
    const senderClosed = closes(sender);

    sender.publish('tk/dev-aaa/audit', 'x'.repeat(maxPacketSizeBytes), { qos: 0 });
    await waitFor(() => senderClosed.count > 0);
    const fresh = await connect(await broker.clientOptions('dev-aaa'));
    await fresh.publishAsync('tk/dev-aaa/status', 'marker', { qos: 1 });

    await waitFor(() => seen.length > 0);
    await delay(quietMs);
    expect(seen).toEqual(['tk/dev-aaa/status marker']);
  });

  it('delivers a publish as large as the largest record the device outbox sends', async () => {
    const central = await connect(await broker.clientOptions('central'));
    const seen: number[] = [];
    central.on('message', (_topic, payload) => seen.push(payload.length));
    await central.subscribeAsync('tk/#', { qos: 1 });
    const device = await connect(await broker.clientOptions('dev-aaa'));

    await device.publishAsync('tk/dev-aaa/audit', 'x'.repeat(65_536), { qos: 1 });

    await waitFor(() => seen.length > 0);
    expect(seen).toEqual([65_536]);
  });
});
