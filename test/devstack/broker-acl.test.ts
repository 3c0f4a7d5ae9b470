// Proves the test broker harness and the protocol ACL with real mosquitto and real mqtt.js clients.
// Denied reads and writes are proven by non-delivery: mosquitto 2.0 acknowledges a denied publish and
// grants every subscription, then silently drops what the ACL forbids.
import { readFile } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type Broker, mosquittoAcl, startBroker } from '../../scripts/devstack/broker.js';
import { createPki } from '../../scripts/devstack/pki.js';

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

async function waitFor(condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error('timed out waiting');
    await delay(10);
  }
}

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

    await ops.publishAsync('tk/dev-aaa/schedule', 'from ops', { qos: 1 });
    await ops.publishAsync('tk/ops/status', 'from ops', { qos: 1 });

    await delay(quietMs);
    expect(seen).toEqual([]);
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

  it('delivers a device answer to an operator logged in over WebSocket', async () => {
    const operator = await connect(broker.wsOptions('operator'));
    const seen = record(operator);
    await operator.subscribeAsync('tk/+/view/answer', { qos: 1 });
    const device = await connect(await broker.clientOptions('dev-aaa'));

    await device.publishAsync('tk/dev-aaa/view/answer', 'accepted', { qos: 1 });

    await waitFor(() => seen.length > 0);
    expect(seen).toEqual(['tk/dev-aaa/view/answer accepted']);
  });

  it('refuses a WebSocket login with a wrong password', async () => {
    await expect(connect({ ...broker.wsOptions('operator'), password: 'wrong' })).rejects.toThrow(
      /Not authorized|Bad User Name or Password/i,
    );
  });

  it('refuses an anonymous WebSocket client', async () => {
    const { username: _username, password: _password, ...anonymous } = broker.wsOptions('operator');

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

describe('operator documentation', () => {
  it('ships the ACL that the tests enforce in docs/mosquitto/acl.conf', async () => {
    const shipped = await readFile(new URL('../../docs/mosquitto/acl.conf', import.meta.url), 'utf8');

    expect(
      shipped,
      'regenerate: npx tsx -e "import(\'./scripts/devstack/broker.ts\').then(m=>process.stdout.write(m.mosquittoAcl()))" > docs/mosquitto/acl.conf',
    ).toBe(mosquittoAcl());
  });
});
