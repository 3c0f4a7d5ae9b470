// Hostile input on every topic the device subscribes to (schedule, view/request), through a real
// mosquitto: thousands of generated malformed, oversized and wrong-schema payloads. The service stays
// up, counts every one in `inboundRejected`, starts no view, and still answers the broker afterwards.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import fc from 'fast-check';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../device/config/index.js';
import { openGpio } from '../../device/hardware/index.js';
import { silentLogger } from '../../device/log/index.js';
import { topic } from '../../device/protocol/index.js';
import { Service } from '../../device/service.js';
import type { MediaPort } from '../../device/supervisor/index.js';
import { maxPacketSizeBytes } from '../../scripts/broker/config.js';
import { type Broker, startBroker } from '../../scripts/devstack/broker.js';
import { fixedWallClock } from '../../scripts/devstack/manual-clock.js';
import { createSigner } from '../../scripts/devstack/tokens.js';

const deviceId = 'dev-fuzz';
const perTopic = 1500;
let broker: Broker;
let central: MqttClient;
let stateDir: string;
let service: Service;
const viewStarts: string[] = [];

const media: MediaPort = {
  start: (look) => {
    viewStarts.push(look.sessionId);
  },
  applyAnswer: () => undefined,
  addCandidate: () => undefined,
  stop: async () => undefined,
};

beforeAll(async () => {
  broker = await startBroker();
  central = await mqtt.connectAsync(await broker.clientOptions('central'));
  stateDir = mkdtempSync(join(tmpdir(), 'tk-fuzz-'));
  const signer = await createSigner();
  const cert = await broker.pki.clientCert(deviceId);
  const parsed = parseConfig({
    deviceId,
    stateDir,
    broker: { url: broker.url, caFile: broker.pki.caCert, certFile: cert.cert, keyFile: cert.key },
    centralKeys: [{ kid: signer.kid, publicKeyPem: signer.publicKeyPem }],
    gpio: { kind: 'sim', viewingLed: { pin: 17 }, button: { pin: 27 } },
    camera: { source: { kind: 'test' } },
    clock: { mode: 'trusted' },
  });
  if (!parsed.ok) throw new Error(parsed.errors.join('\n'));
  const log = silentLogger();
  service = new Service({
    config: parsed.config,
    log,
    gpio: await openGpio({ kind: 'sim', pins: parsed.config.gpio, log }),
    keys: signer.keys,
    tls: {
      ca: readFileSync(broker.pki.caCert),
      cert: readFileSync(cert.cert),
      key: readFileSync(cert.key),
    },
    clock: fixedWallClock(Date.UTC(2026, 10, 24, 22, 0)),
    clockCheck: async () => ({ trusted: true, detail: 'test' }),
    media,
  });
  await service.start();
  await new Promise<void>((resolve) => service.link?.once('connected', () => resolve()));
});

afterAll(async () => {
  await service?.stop();
  await central?.endAsync();
  await broker?.stop();
  rmSync(stateDir, { recursive: true, force: true });
});

/** Payloads that must all be refused: not JSON, JSON of the wrong shape, wrong version, oversized. */
function hostile(seed: number): Buffer[] {
  const notJson = fc.uint8Array({ minLength: 1, maxLength: 300 }).map((bytes) => {
    const buffer = Buffer.from(bytes);
    buffer[0] = 0xff; // never valid UTF-8 JSON
    return buffer;
  });
  const anyJson = fc
    .jsonValue({ maxDepth: 4 })
    .map((value) => Buffer.from(JSON.stringify(value)))
    .filter((buffer) => buffer.length > 0);
  const wrongSchema = fc
    .record({
      schemaVersion: fc.oneof(fc.constant(2), fc.constant('1'), fc.integer()),
      type: fc.constantFrom('request', 'hangup', 'answer', 'candidate', 'offer', 'nonsense'),
      requestId: fc.oneof(fc.string({ maxLength: 200 }), fc.integer()),
      token: fc.string({ maxLength: 40 }),
      grant: fc.string({ maxLength: 40 }),
      extra: fc.anything({ maxDepth: 2 }),
    })
    .map((value) => Buffer.from(JSON.stringify(value)));
  // Over the device's 16 KiB limit, under the broker's max_packet_size (which refuses larger packets
  // before they reach the device; test/devstack/broker-acl.test.ts).
  const oversized = fc
    .integer({ min: 16_385, max: maxPacketSizeBytes - 1_024 })
    .map((size) => Buffer.from(JSON.stringify({ schemaVersion: 1, token: 'x'.repeat(size) })));
  const payload = fc.oneof(
    { weight: 3, arbitrary: notJson },
    { weight: 3, arbitrary: anyJson },
    { weight: 3, arbitrary: wrongSchema },
    { weight: 1, arbitrary: oversized },
  );
  return fc.sample(payload, { numRuns: perTopic, seed });
}

async function until(check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!check()) {
    if (performance.now() > deadline) throw new Error('timed out');
    await delay(10);
  }
}

describe('hostile inbound payloads', () => {
  it(`refuses ${perTopic} generated payloads on each subscribed topic, stays up and starts no view`, async () => {
    let sent = 0;
    for (const [index, name] of (['schedule', 'viewRequest'] as const).entries()) {
      const payloads = hostile(0xf022 + index);
      for (let start = 0; start < payloads.length; start += 200) {
        const batch = payloads.slice(start, start + 200);
        await Promise.all(
          batch.map((payload) => central.publishAsync(topic(deviceId, name), payload, { qos: 1 })),
        );
        sent += batch.length;
        // Pace to the device, so the broker's per-client queue never overflows.
        await until(() => service.inboundRejected >= sent, 15_000);
      }
    }
    expect(service.inboundRejected).toBe(sent);
    expect(viewStarts).toEqual([]);
    expect(service.supervisor.phase).toBe('idle');
    expect(service.link?.connected).toBe(true);
  });
});
