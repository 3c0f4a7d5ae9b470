// The link's own MQTT transport (device/mqtt/transport.ts) against a real mosquitto: TLS with the
// configured CA connects, a broker whose certificate another CA signed is refused before CONNECT, the
// plain listener works for the loopback demo, and nothing but mqtts:// and mqtt:// is accepted.
import { readFile } from 'node:fs/promises';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectMqtt } from '../../device/mqtt/transport.js';
import { type Broker, startBroker } from '../../scripts/devstack/broker.js';
import { createPki } from '../../scripts/devstack/pki.js';

let broker: Broker;

beforeAll(async () => {
  broker = await startBroker({ plain: true });
});

afterAll(async () => {
  await broker?.stop();
});

/** Resolves with how the client's first attempt ended: connected, or the first error. */
function firstOutcome(client: MqttClient): Promise<{ connected: boolean; error?: string }> {
  // The client may report a failed handshake more than once; only the first counts here.
  client.on('error', () => undefined);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve({ connected: false, error: 'no outcome in 10 s' }), 10_000);
    client.once('connect', () => {
      clearTimeout(timer);
      resolve({ connected: true });
    });
    client.once('error', (error) => {
      clearTimeout(timer);
      resolve({ connected: false, error: error.message });
    });
  });
}

async function deviceTls(caFile: string) {
  const files = await broker.pki.clientCert('dev-transport');
  const [ca, cert, key] = await Promise.all([readFile(caFile), readFile(files.cert), readFile(files.key)]);
  return { clientId: 'dev-transport', reconnectPeriod: 0, ca, cert, key };
}

describe('connectMqtt', () => {
  it('connects over TLS with the configured CA and the device certificate', async () => {
    const client = connectMqtt(broker.url, await deviceTls(broker.pki.caCert));
    const outcome = await firstOutcome(client);
    await client.endAsync(true);
    expect(outcome).toEqual({ connected: true });
  });

  it('refuses a broker whose certificate another CA signed', async () => {
    const other = await createPki('another CA');
    const client = connectMqtt(broker.url, await deviceTls(other.caCert));
    const outcome = await firstOutcome(client);
    await client.endAsync(true);
    expect(outcome.connected).toBe(false);
    expect(outcome.error).toMatch(/certificate/i);
  });

  it('connects to the plain loopback listener with mqtt://', async () => {
    const client = connectMqtt(broker.plainUrl!, { clientId: 'dev-transport-plain', reconnectPeriod: 0 });
    const outcome = await firstOutcome(client);
    await client.endAsync(true);
    expect(outcome).toEqual({ connected: true });
  });

  it('accepts no other scheme', () => {
    expect(() => connectMqtt('ws://127.0.0.1:9001', {})).toThrow(/not mqtts: or mqtt:/);
  });
});
