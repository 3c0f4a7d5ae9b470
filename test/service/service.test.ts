// The whole service against a real mosquitto over TLS with the device's own certificate: a retained
// schedule arrives and survives a restart, look requests get decisions on view/answer, a privacy press
// is reported at once, and the device's status is online while it runs and offline after it stops.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { schemaVersion, topic } from '../../device/protocol/index.js';
import { type Broker, startBroker } from '../../scripts/devstack/broker.js';
import { createSigner, grantClaims, signGrant, type TestSigner } from '../../scripts/devstack/tokens.js';
import {
  clearSchedule,
  publishSchedule,
  type StartedService,
  startDeviceService,
} from '../support/device-service.js';

const deviceId = 'dev-service';
// Tuesday 2026-11-24 23:00 in Stockholm: inside the nightly window. Time stands still in these tests.
const nowMs = Date.UTC(2026, 10, 24, 22, 0);

let broker: Broker;
let signer: TestSigner;
let central: MqttClient;
let stateDir: string;
const running: StartedService[] = [];

beforeAll(async () => {
  broker = await startBroker();
  signer = await createSigner();
  central = await mqtt.connectAsync(await broker.clientOptions('central'));
  await central.subscribeAsync(`tk/${deviceId}/#`, { qos: 1 });
  stateDir = mkdtempSync(join(tmpdir(), 'tk-service-'));
});

afterEach(async () => {
  for (const { service } of running.splice(0)) await service.stop();
});

afterAll(async () => {
  await central?.endAsync();
  await broker?.stop();
  rmSync(stateDir, { recursive: true, force: true });
});

/** Starts a device service and resolves once it is connected and subscribed. */
function startService(): Promise<StartedService> {
  return startDeviceService({ broker, signer, deviceId, stateDir, nowMs, running });
}

/** Resolves with the first message on `name` that matches. */
function nextMessage(suffix: string, match: (payload: Record<string, unknown>) => boolean = () => true) {
  return new Promise<Record<string, unknown>>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no message on ${suffix}`)), 10_000);
    const onMessage = (received: string, payload: Buffer) => {
      if (received !== `tk/${deviceId}/${suffix}` || payload.length === 0) return;
      const parsed = JSON.parse(payload.toString()) as Record<string, unknown>;
      if (!match(parsed)) return;
      clearTimeout(timer);
      central.off('message', onMessage);
      resolve(parsed);
    };
    central.on('message', onMessage);
  });
}

async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('Service over MQTT', () => {
  it('publishes online on connect and offline on a clean stop', async () => {
    const online = nextMessage('status', (m) => m.state === 'online');
    const { service } = await startService();
    expect(await online).toMatchObject({ schemaVersion, state: 'online' });
    const offline = nextMessage('status', (m) => m.state === 'offline');
    await service.stop();
    expect(await offline).toMatchObject({ state: 'offline' });
  });

  it('takes a retained schedule into use and keeps it across a restart', async () => {
    await publishSchedule(central, signer, deviceId, { version: 3 });
    const accepted = nextMessage('event', (m) => m.type === 'schedule');
    const first = await startService();
    expect(await accepted).toMatchObject({ accepted: true, version: 3 });
    await first.service.stop();
    running.length = 0;
    // Clear the retained copy: the restarted device must have it from its own state.
    await clearSchedule(central, deviceId);
    const second = await startService();
    await until(() => second.service.link?.connected === true, 'connect');
    expect(second.service.supervisor.schedule?.version).toBe(3);
  });

  it('answers a good request with granted, lights the LED, and reports the end on a privacy press', async () => {
    const { service, gpio } = await startService();
    await until(() => service.supervisor.schedule !== undefined, 'schedule');
    const claims = grantClaims(deviceId, nowMs);
    const decision = nextMessage('view/answer', (m) => m.requestId === 'req-1');
    await central.publishAsync(
      topic(deviceId, 'viewRequest'),
      JSON.stringify({
        schemaVersion,
        type: 'request',
        requestId: 'req-1',
        grant: await signGrant(signer, claims),
      }),
      { qos: 1 },
    );
    expect(await decision).toMatchObject({ decision: 'granted', sessionId: claims.sid });
    await until(() => gpio.viewingLed.value, 'LED on');
    const ended = nextMessage('view/answer', (m) => m.type === 'ended');
    const privacy = nextMessage('event', (m) => m.type === 'privacy');
    gpio.button.press();
    expect(await privacy).toMatchObject({ privacyOn: true, source: 'button' });
    expect(await ended).toMatchObject({ sessionId: claims.sid, reason: 'privacy-on' });
    expect(gpio.viewingLed.value).toBe(false);
    gpio.button.release();
  });

  it('refuses privacy-blocked, forged, malformed and oversized requests with distinct reasons, and stays up', async () => {
    const { service } = await startService();
    await until(() => service.link?.connected === true, 'connect');
    const send = async (requestId: string, grant: string) => {
      const reply = nextMessage('view/answer', (m) => m.requestId === requestId);
      await central.publishAsync(
        topic(deviceId, 'viewRequest'),
        JSON.stringify({ schemaVersion, type: 'request', requestId, grant }),
        { qos: 1 },
      );
      return reply;
    };
    // Privacy is on from the previous test: the state survived the restart.
    expect(service.supervisor.conditions.privacyOn).toBe(true);
    expect(await send('req-privacy', await signGrant(signer, grantClaims(deviceId, nowMs)))).toMatchObject({
      decision: 'refused',
      reason: 'privacy-on',
    });
    const forger = await createSigner(signer.kid);
    expect(await send('req-forged', await signGrant(forger, grantClaims(deviceId, nowMs)))).toMatchObject({
      reason: 'bad-signature',
    });
    expect(await send('req-junk', 'not.a.token')).toMatchObject({ reason: 'malformed' });
    const malformed = nextMessage('view/answer', (m) => m.requestId === 'req-shape');
    await central.publishAsync(topic(deviceId, 'viewRequest'), JSON.stringify({ requestId: 'req-shape' }), {
      qos: 1,
    });
    expect(await malformed).toMatchObject({ decision: 'refused', reason: 'malformed' });
    // Over the device's 16 KiB limit, under the broker's max_packet_size (which would drop it unseen).
    await central.publishAsync(topic(deviceId, 'viewRequest'), Buffer.alloc(60_000, 0x7b), { qos: 1 });
    await until(() => service.inboundRejected >= 2, 'oversized payload counted');
    expect(service.supervisor.phase).toBe('idle');
  });
});
