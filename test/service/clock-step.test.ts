// A wall clock set forward or back while a look runs, through the whole service (its step watcher
// compares the wall clock with the monotonic one): the look ends at once with clock-unsynced, the LED
// goes off, and `ended` says how long the look really ran, not the size of the step. Real mosquitto
// over TLS; the wall clock is the test's, the monotonic clock and the timers are real.
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { schemaVersion, topic } from '../../device/protocol/index.js';
import { type Broker, startBroker } from '../../scripts/devstack/broker.js';
import { fixedWallClock } from '../../scripts/devstack/manual-clock.js';
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

const deviceId = 'dev-clock-step';
let broker: Broker;
let signer: TestSigner;
let central: MqttClient;
const received: Array<Record<string, unknown>> = [];
const running: StartedService[] = [];
// The wall clock: inWindowMs plus real time since the test set it, plus any step the test makes.
let wall = { atMs: inWindowMs, realMs: Date.now() };
const wallMs = () => wall.atMs + (Date.now() - wall.realMs);

beforeAll(async () => {
  broker = await startBroker();
  signer = await createSigner();
  central = await mqtt.connectAsync(await broker.clientOptions('central'));
  central.on('message', (name, payload) => {
    if (name === topic(deviceId, 'viewAnswer') && payload.length > 0)
      received.push(JSON.parse(String(payload)));
  });
  await central.subscribeAsync(topic(deviceId, 'viewAnswer'), { qos: 1 });
  await publishSchedule(central, signer, deviceId);
});

afterEach(() => stopDeviceServices(running));

afterAll(async () => {
  if (central) await clearSchedule(central, deviceId);
  await central?.endAsync();
  await broker?.stop();
});

describe('a clock step during a look, through the service', () => {
  for (const stepMs of [3_600_000, -3_600_000]) {
    it(`ends the look at once when the clock is set ${stepMs > 0 ? 'forward' : 'back'} an hour, and reports its real duration`, async () => {
      wall = { atMs: inWindowMs, realMs: Date.now() };
      const { service, gpio } = await startDeviceService({
        broker,
        signer,
        deviceId,
        nowMs: inWindowMs,
        clock: fixedWallClock(wallMs),
        running,
      });
      await waitUntil(() => service.supervisor.schedule !== undefined, 10_000, 'schedule');
      const claims = grantClaims(deviceId, wallMs(), { maxDurS: 60 });
      const requestedAt = performance.now();
      await central.publishAsync(
        topic(deviceId, 'viewRequest'),
        JSON.stringify({
          schemaVersion,
          type: 'request',
          requestId: `req-${stepMs}`,
          grant: await signGrant(signer, claims),
        }),
        { qos: 1 },
      );
      await waitUntil(() => gpio.viewingLed.value, 10_000, 'LED on');
      wall = { atMs: wallMs() + stepMs, realMs: Date.now() };
      await waitUntil(
        () => received.some((m) => m.type === 'ended' && m.sessionId === claims.sid),
        10_000,
        'ended',
      );
      const realMs = performance.now() - requestedAt;
      const ended = received.find((m) => m.type === 'ended' && m.sessionId === claims.sid);
      expect(ended).toMatchObject({ reason: 'clock-unsynced', endedBy: 'device' });
      // The look ran for `realMs` at most (from before the request to after `ended` arrived).
      expect(ended?.durationMs).toBeLessThanOrEqual(realMs);
      expect(gpio.viewingLed.value).toBe(false);
    });
  }
});
