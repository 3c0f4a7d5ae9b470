// The inbound rate limits in the running service, through a real mosquitto: a schedule held back by
// its limit is applied once the bucket refills (latest wins), and signalling for the running look
// gets through a flood that has spent the other bucket.
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { schemaVersion, topic } from '../../device/protocol/index.js';
import { type Broker, startBroker } from '../../scripts/devstack/broker.js';
import { timedRequest } from '../../scripts/devstack/flood.js';
import { createSigner, inWindowMs, type TestSigner, testConsole } from '../../scripts/devstack/tokens.js';
import {
  publishSchedule,
  type StartedService,
  startDeviceService,
  stopDeviceServices,
} from '../support/device-service.js';
import { waitUntil } from '../support/process.js';

let broker: Broker;
let signer: TestSigner;
let central: MqttClient;
const running: StartedService[] = [];

beforeAll(async () => {
  broker = await startBroker();
  signer = await createSigner();
  central = await mqtt.connectAsync(await broker.clientOptions('central'));
});

afterAll(async () => {
  await stopDeviceServices(running);
  await central?.endAsync();
  await broker?.stop();
});

async function start(deviceId: string, inbound: Record<string, unknown>): Promise<StartedService> {
  return startDeviceService({
    broker,
    signer,
    deviceId,
    nowMs: inWindowMs,
    running,
    config: { limits: { inbound } },
  });
}

function sendSchedule(deviceId: string, version: number): Promise<void> {
  return publishSchedule(central, signer, deviceId, { version, retain: false });
}

describe('inbound rate limits in the service', () => {
  it('applies the latest schedule its limit held back once the bucket has a token again', async () => {
    const deviceId = 'dev-rate-schedule';
    const { service } = await start(deviceId, { schedules: { perS: 2, burst: 1 } });
    await sendSchedule(deviceId, 1);
    await sendSchedule(deviceId, 2);
    await sendSchedule(deviceId, 3);
    await waitUntil(() => service.supervisor.schedule?.version === 3, 5000, 'schedule 3');
    // Version 2 was held, then replaced by 3 before the bucket refilled: dropped for good.
    expect(service.inboundDropped).toBe(1);
  });

  it('lets the running look hang up while a flood has spent the other bucket', async () => {
    const deviceId = 'dev-rate-signal';
    const { service } = await start(deviceId, { other: { perS: 0.01, burst: 1 } });
    await central.subscribeAsync(topic(deviceId, 'viewAnswer'), { qos: 1 });
    await sendSchedule(deviceId, 1);
    await waitUntil(() => service.supervisor.schedule !== undefined, 5000, 'a schedule');
    const legit = await timedRequest(central, signer, deviceId, inWindowMs, 'req-rate-legit');
    expect(legit.decision).toBe('granted');
    // Stray signalling spends the other bucket's one token and then is dropped.
    for (let i = 0; i < 20; i += 1) {
      await central.publishAsync(
        topic(deviceId, 'viewRequest'),
        JSON.stringify({
          schemaVersion,
          type: 'hangup',
          requestId: 'req-stray',
          sessionId: 'ses-stray',
          secret: testConsole.hangupSecret,
        }),
        { qos: 1 },
      );
    }
    await waitUntil(() => service.inboundDropped >= 19, 5000, 'the stray hang-ups dropped');
    await central.publishAsync(
      topic(deviceId, 'viewRequest'),
      JSON.stringify({
        schemaVersion,
        type: 'hangup',
        requestId: 'req-rate-legit',
        sessionId: legit.sessionId,
        secret: testConsole.hangupSecret,
      }),
      { qos: 1 },
    );
    await waitUntil(() => service.supervisor.phase === 'idle', 5000, 'the look ended');
    expect(service.inboundDropped).toBe(19);
  });
});
