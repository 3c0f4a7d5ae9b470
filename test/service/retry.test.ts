// A console that sends the same look request several times at once (docs/protocol.md tells it to ask
// again with the same grant when no decision comes; QoS 1 may deliver a request twice), through the
// whole service against a real mosquitto over TLS: every answer for that requestId is the look's own
// `granted`, none is a refusal, one look streams, and the audit trail has one request record for it;
// a copy sent after the look has ended is `replayed`.
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AuditRecord, schemaVersion, topic } from '../../device/protocol/index.js';
import { type Broker, startBroker } from '../../scripts/devstack/broker.js';
import {
  createSigner,
  grantClaims,
  inWindowMs,
  signGrant,
  type TestSigner,
} from '../../scripts/devstack/tokens.js';
import {
  clearSchedule,
  publishSchedule,
  type StartedService,
  startDeviceService,
  stopDeviceServices,
} from '../support/device-service.js';
import { waitUntil } from '../support/process.js';

const deviceId = 'dev-retry';
const sends = 5;
let broker: Broker;
let signer: TestSigner;
let central: MqttClient;
let operatorConsole: MqttClient;
const answers: Array<Record<string, unknown>> = [];
const audit: AuditRecord[] = [];
const running: StartedService[] = [];

beforeAll(async () => {
  broker = await startBroker();
  signer = await createSigner();
  central = await mqtt.connectAsync(await broker.clientOptions('central'));
  central.on('message', (name, payload) => {
    if (payload.length === 0) return;
    if (name === topic(deviceId, 'audit')) audit.push(AuditRecord.parse(JSON.parse(String(payload))));
  });
  await central.subscribeAsync(topic(deviceId, 'audit'), { qos: 1 });
  operatorConsole = await mqtt.connectAsync(await broker.clientOptions(broker.consoles[0] as string));
  operatorConsole.on('message', (name, payload) => {
    if (name === topic(deviceId, 'viewAnswer') && payload.length > 0)
      answers.push(JSON.parse(String(payload)));
  });
  await operatorConsole.subscribeAsync(topic(deviceId, 'viewAnswer'), { qos: 1 });
  await publishSchedule(central, signer, deviceId);
});

afterEach(() => stopDeviceServices(running));

afterAll(async () => {
  if (central) await clearSchedule(central, deviceId);
  await operatorConsole?.endAsync();
  await central?.endAsync();
  await broker?.stop();
});

describe('the same request sent several times at once, through the service', () => {
  it(`answers each of ${sends} copies with the look's own granted decision, starts one look and audits it once`, async () => {
    const { service, gpio } = await startDeviceService({
      broker,
      signer,
      deviceId,
      nowMs: inWindowMs,
      running,
    });
    await waitUntil(() => service.supervisor.schedule !== undefined, 10_000, 'schedule');
    const claims = grantClaims(deviceId, inWindowMs);
    const request = JSON.stringify({
      schemaVersion,
      type: 'request',
      requestId: 'req-retry',
      grant: await signGrant(signer, claims),
    });
    await Promise.all(
      Array.from({ length: sends }, () =>
        operatorConsole.publishAsync(topic(deviceId, 'viewRequest'), request, { qos: 1 }),
      ),
    );
    const decisions = () => answers.filter((m) => m.type === 'decision' && m.requestId === 'req-retry');
    await waitUntil(() => decisions().length >= sends, 10_000, 'an answer to every copy');
    expect(decisions().map((m) => m.decision)).toEqual(Array(sends).fill('granted'));
    expect(decisions().every((m) => m.sessionId === claims.sid)).toBe(true);
    await waitUntil(() => service.supervisor.phase === 'streaming', 10_000, 'streaming');
    expect(gpio.viewingLed.value).toBe(true);
    // End the look: its session-end record comes after any request record the copies could have made.
    gpio.button.press();
    await waitUntil(
      () => audit.some((r) => r.kind === 'session-end' && r.sessionId === claims.sid),
      10_000,
      'session-end record',
    );
    gpio.button.release();
    const requests = audit.filter((r) => r.kind === 'request' && r.requestId === 'req-retry');
    expect(requests).toMatchObject([{ decision: 'granted', sessionId: claims.sid }]);
    expect(service.supervisor.counters.views).toBe(1);
    await waitUntil(() => answers.some((m) => m.type === 'ended'), 10_000, 'ended');
    expect(answers.filter((m) => m.type === 'ended' && m.sessionId === claims.sid)).toMatchObject([
      { reason: 'privacy-on' },
    ]);
    // Once the look has ended the same request is a replay: the nonce stays used.
    await operatorConsole.publishAsync(topic(deviceId, 'viewRequest'), request, { qos: 1 });
    await waitUntil(() => decisions().length > sends, 10_000, 'an answer to the late copy');
    expect(decisions()[sends]).toMatchObject({ decision: 'refused', reason: 'replayed' });
  });
});
