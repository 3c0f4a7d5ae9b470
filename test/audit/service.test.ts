// The audit trail wired into the whole service, against a real mosquitto: a request's audit record is
// written to the local log and published on tk/<id>/audit under the same id.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditRecord, schemaVersion, topic } from '../../device/protocol/index.js';
import type { Service } from '../../device/service.js';
import { type Broker, startBroker } from '../../scripts/devstack/broker.js';
import { ManualClock } from '../../scripts/devstack/manual-clock.js';
import {
  createSigner,
  grantClaims,
  nightlySchedule,
  signGrant,
  signSchedule,
  type TestSigner,
} from '../../scripts/devstack/tokens.js';
import { startDeviceService } from '../support/device-service.js';
import { readAll } from './helpers.js';

const deviceId = 'dev-audit';
// Tuesday 2026-11-24 23:00 in Stockholm. Time stands still in this test.
const nowMs = Date.UTC(2026, 10, 24, 22, 0);

let broker: Broker;
let signer: TestSigner;
let central: MqttClient;
let stateDir: string;

beforeAll(async () => {
  broker = await startBroker();
  signer = await createSigner();
  central = await mqtt.connectAsync(await broker.clientOptions('central'));
  await central.subscribeAsync(`tk/${deviceId}/audit`, { qos: 1 });
  stateDir = mkdtempSync(join(tmpdir(), 'tk-audit-service-'));
});

afterAll(async () => {
  await central?.endAsync();
  await broker?.stop();
  rmSync(stateDir, { recursive: true, force: true });
});

async function startService(): Promise<Service> {
  return (await startDeviceService({ broker, signer, deviceId, stateDir, nowMs })).service;
}

function nextAudit(): Promise<AuditRecord> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no audit record')), 10_000);
    central.once('message', (_topic, payload) => {
      clearTimeout(timer);
      resolve(AuditRecord.parse(JSON.parse(payload.toString())));
    });
  });
}

describe('audit in the service', () => {
  it('publishes the audit record of a refused request under the id it has in the local log', async () => {
    const service = await startService();
    try {
      const published = nextAudit();
      const grant = await signGrant(signer, grantClaims(deviceId, nowMs));
      await central.publishAsync(
        topic(deviceId, 'viewRequest'),
        JSON.stringify({ schemaVersion, type: 'request', requestId: 'req-audit-1', grant }),
        { qos: 1 },
      );
      const record = await published;
      expect(record).toMatchObject({
        kind: 'request',
        requestId: 'req-audit-1',
        decision: 'refused',
        reason: 'no-schedule',
        deviceId,
        at: new Date(nowMs).toISOString(),
      });
      const { records } = await readAll(join(stateDir, 'audit'));
      expect(records).toEqual([record]);
    } finally {
      expect(await service.stop()).toBe(0);
    }
  });

  it('reports a window that passes unused after the first schedule arrived during it', async () => {
    // Tuesday 2026-11-24: the nightly window is 22:00-07:00 local, 21:00Z to 06:00Z the next day.
    const windowStartMs = Date.UTC(2026, 10, 24, 21, 0);
    const windowEndMs = Date.UTC(2026, 10, 25, 6, 0);
    const clock = new ManualClock(windowStartMs - 60 * 60_000);
    const dir = mkdtempSync(join(tmpdir(), 'tk-audit-first-schedule-'));
    const { service } = await startDeviceService({
      broker,
      signer,
      deviceId,
      stateDir: dir,
      nowMs: clock.now(),
      clock,
    });
    try {
      clock.advance(3 * 60 * 60_000);
      const applied = new Promise<void>((resolve) => service.supervisor.once('schedule', () => resolve()));
      await central.publishAsync(
        topic(deviceId, 'schedule'),
        JSON.stringify({ schemaVersion, token: await signSchedule(signer, nightlySchedule(deviceId)) }),
        { qos: 1 },
      );
      await applied;
      expect(service.supervisor.schedule?.version).toBe(1);
      for (let at = clock.now(); at < windowEndMs + 2 * 60_000; at += 60_000) {
        clock.advance(60_000);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
      const { records } = await readAll(join(dir, 'audit'));
      expect(records.map((record) => record.kind)).toEqual(['window-missed']);
    } finally {
      expect(await service.stop()).toBe(0);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
