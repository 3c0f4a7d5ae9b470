// A flood of refused requests through a real mosquitto, from an operator console, at 3,000 a second:
// a legitimate request sent while it runs is granted before the flood ends, the flood costs a bounded
// number of audit records (counted, not one per refusal), and what went over the limit is counted.
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readAuditRecords } from '../../device/audit/index.js';
import { type AuditRecord, schemaVersion, topic } from '../../device/protocol/index.js';
import { type Broker, startBroker } from '../../scripts/devstack/broker.js';
import { refusedRequests, startFlood, timedRequest } from '../../scripts/devstack/flood.js';
import {
  createSigner,
  inWindowMs,
  nightlySchedule,
  signSchedule,
  type TestSigner,
} from '../../scripts/devstack/tokens.js';
import { type StartedService, startDeviceService, stopDeviceServices } from '../support/device-service.js';

const deviceId = 'dev-flood';
let broker: Broker;
let signer: TestSigner;
let central: MqttClient;
let flooder: MqttClient;
const running: StartedService[] = [];

beforeAll(async () => {
  // Quiet: a broker logging every PUBLISH stalls on its pipe to this busy process (broker.ts).
  broker = await startBroker({ quietLog: true });
  signer = await createSigner();
  central = await mqtt.connectAsync(await broker.clientOptions('central'));
  // A console may write view/request too. Not a second `central`: the broker takes the client id from
  // the certificate, so the two connections would take each other over.
  flooder = await mqtt.connectAsync(await broker.clientOptions('console-2'));
  await central.subscribeAsync(topic(deviceId, 'viewAnswer'), { qos: 1 });
});

afterAll(async () => {
  await stopDeviceServices(running);
  await flooder?.endAsync();
  await central?.endAsync();
  await broker?.stop();
});

describe('a flood of refused requests', () => {
  it('does not keep a legitimate request from its decision, and fills no card', async () => {
    const { service, stateDir } = await startDeviceService({
      broker,
      signer,
      deviceId,
      nowMs: inWindowMs,
      running,
    });
    const applied = new Promise<void>((resolve) => service.supervisor.once('schedule', () => resolve()));
    await central.publishAsync(
      topic(deviceId, 'schedule'),
      JSON.stringify({ schemaVersion, token: await signSchedule(signer, nightlySchedule(deviceId)) }),
      { qos: 1, retain: true },
    );
    await applied;

    const flood = startFlood(flooder, deviceId, await refusedRequests(deviceId, inWindowMs), 3000);
    await delay(1500);
    const legit = await timedRequest(central, signer, deviceId, inWindowMs, 'req-legit', 5000);
    const stillFlooding = flood.running;
    await delay(500);
    const figures = await flood.stop();
    expect(legit.decision).toBe('granted');
    // The decision came while the flood was still being sent (its latency is a figure for the flood
    // bench, not an assertion here).
    expect(stillFlooding).toBe(true);
    expect(figures.sent).toBeGreaterThan(3000);
    // Most of the flood was dropped by the limit, unverified; what was verified cost few records.
    await delay(500);
    expect(service.inboundDropped).toBeGreaterThan(0);
    await service.stop();
    const records: AuditRecord[] = [];
    for await (const record of readAuditRecords(join(stateDir, 'audit'))) records.push(record);
    const granted = records.filter((record) => record.kind === 'request' && record.decision === 'granted');
    expect(granted.map((record) => (record.kind === 'request' ? record.requestId : ''))).toEqual([
      'req-legit',
    ]);
    // Per refusal reason: its first record and, at the stop, one count.
    expect(
      records.filter((record) => record.kind === 'request' && record.decision === 'refused').length,
    ).toBeLessThanOrEqual(2);
    expect(records.filter((record) => record.kind === 'refusals').length).toBeLessThanOrEqual(2);
    console.log(
      `flood: ${figures.perS}/s sent for ${Math.round(figures.elapsedMs)} ms, ${service.inboundDropped} dropped; ` +
        `legit decision in ${Math.round(legit.latencyMs)} ms; ${records.length} audit records`,
    );
  });
});
