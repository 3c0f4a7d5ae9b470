// TLS session resumption on reconnect: after a network drop the device resumes the broker's TLS session
// (a TLS 1.3 ticket) instead of a full handshake with both certificate chains, so a reconnect on a
// metered 4G link costs far fewer bytes. The oracle is a TCP proxy counting the bytes on the wire.
import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../device/log/index.js';
import { MqttLink, memoryCounter } from '../../device/mqtt/index.js';
import { type Broker, startBroker } from '../../scripts/devstack/broker.js';
import { type CountingProxy, startCountingProxy } from '../../scripts/devstack/counting-proxy.js';
import { waitUntil } from '../support/process.js';

const deviceId = 'kam-resume';
let broker: Broker;
let proxy: CountingProxy;

beforeAll(async () => {
  broker = await startBroker();
  proxy = await startCountingProxy({ host: '127.0.0.1', port: broker.port });
});

afterAll(async () => {
  await proxy?.close();
  await broker?.stop();
});

/** Connects, lets it settle, cuts the connection, and returns the bytes of both connections. */
async function reconnectOnce(tlsResumption: boolean) {
  const options = await broker.clientOptions(deviceId);
  const link = new MqttLink({
    deviceId,
    url: `mqtts://127.0.0.1:${proxy.port}`,
    tls: { ca: options.ca as Buffer, cert: options.cert as Buffer, key: options.key as Buffer },
    keepaliveS: 30,
    log: silentLogger(),
    counter: memoryCounter(),
    tlsResumption,
  });
  const first = proxy.connections.length;
  try {
    link.start();
    await waitUntil(() => link.connected, 10_000, 'connected');
    // The ticket comes after the handshake, and the online status and subscriptions after CONNACK.
    await delay(300);
    const before = { ...proxy.connections[first]! };
    proxy.cut();
    await waitUntil(() => !link.connected, 10_000, 'the drop noticed');
    await waitUntil(() => link.connected && proxy.connections.length > first + 1, 10_000, 'reconnected');
    await delay(300);
    const after = { ...proxy.connections[first + 1]! };
    return {
      resumed: link.tlsSessionsResumed,
      firstBytes: before.up + before.down,
      againBytes: after.up + after.down,
    };
  } finally {
    await link.stop();
  }
}

describe('MQTT reconnects over TLS', () => {
  it('resume the TLS session after a drop, and cost fewer bytes than the first connection', async () => {
    const { resumed, firstBytes, againBytes } = await reconnectOnce(true);
    expect(resumed).toBe(1);
    expect(againBytes).toBeLessThan(firstBytes);
  });

  it('make a full handshake again when resumption is off (the comparison the bench prints)', async () => {
    const { resumed, firstBytes, againBytes } = await reconnectOnce(false);
    expect(resumed).toBe(0);
    // Within a few per cent of the first: the same handshake with both certificate chains.
    expect(Math.abs(againBytes - firstBytes)).toBeLessThan(firstBytes * 0.1);
  });
});
