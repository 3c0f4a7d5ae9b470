// `decommission` against a real mosquitto with the device's own certificate: undelivered audit
// records are delivered, the last event is sent, the retained topics are cleared, and only then are
// keys, config and state wiped. Without a broker, nothing is wiped unless the records are exported.
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DecommissionedEvent } from '../../device/protocol/decommission.js';
import { topic } from '../../device/protocol/index.js';
import { type Broker, startBroker } from '../../scripts/devstack/broker.js';
import { removeTestTempDir, testPki, testTempDir } from '../../scripts/devstack/pki.js';
import { centralKeyFile, cliInProcess, signCsr } from './support.js';

let broker: Broker;
let dir: string;

beforeAll(async () => {
  broker = await startBroker();
  dir = testTempDir('decommission');
});
afterAll(async () => {
  await broker.stop();
  removeTestTempDir(dir);
});

const noSystemd = {
  unavailable: async () => 'no systemd',
  state: async () => 'unknown',
  stop: async () => undefined,
  start: async () => undefined,
};

async function provisionDevice(deviceId: string, brokerUrl: string) {
  const pki = await testPki();
  const configDir = join(dir, deviceId, 'etc');
  const stateDir = join(dir, deviceId, 'state');
  await mkdir(join(stateDir, 'audit'), { recursive: true });
  const args = ['provision', '--non-interactive', '--config-dir', configDir, '--device-id', deviceId];
  const provisioned = await cliInProcess(
    [
      ...args,
      '--broker-url',
      brokerUrl,
      '--ca-file',
      pki.caCert,
      '--central-key',
      await centralKeyFile(dir, `central-${deviceId}`),
      '--camera',
      'test',
      '--resolution',
      '320x240',
      '--gpio-kind',
      'sim',
      '--clock-mode',
      'trusted',
      '--state-dir',
      stateDir,
    ],
    { owner: null },
  );
  expect(provisioned.code).toBe(0);
  const signed = await signCsr(pki, join(configDir, 'device.csr'), join(configDir, 'signed.crt'));
  expect(
    (await cliInProcess(['provision', 'import-cert', signed, '--config-dir', configDir], { owner: null }))
      .code,
  ).toBe(0);
  // Two audit records the broker never acknowledged, one that it did.
  const put = (id: string) => JSON.stringify({ op: 'put', id, name: 'audit', payload: { id, kind: 'test' } });
  await writeFile(
    join(stateDir, 'outbox.log'),
    `${put('a-1')}\n${put('a-2')}\n${put('a-3')}\n{"op":"ack","id":"a-1"}\n`,
  );
  await writeFile(
    join(stateDir, 'audit', 'audit-2026-12-01.jsonl'),
    '{"id":"a-1"}\n{"id":"a-2"}\n{"id":"a-3"}\n',
  );
  await writeFile(join(stateDir, 'privacy.json'), '{"privacyOn":false}\n');
  return { configDir, stateDir };
}

/** Subscribes as central to the device's tree; collects every message (retained ones included). */
async function watch(deviceId: string) {
  const client = await mqtt.connectAsync(broker.url, {
    ...(await broker.clientOptions('central')),
    reconnectPeriod: 0,
  });
  const messages: Array<{ topic: string; payload: string; retain: boolean }> = [];
  client.on('message', (t, payload, packet) =>
    messages.push({ topic: t, payload: payload.toString(), retain: packet.retain }),
  );
  await client.subscribeAsync(`tk/${deviceId}/#`, { qos: 1 });
  return { client, messages };
}

describe('decommission', () => {
  it('delivers the outbox, sends the last event, clears retained topics, then wipes', async () => {
    const deviceId = 'decom-ok';
    const { configDir, stateDir } = await provisionDevice(deviceId, broker.url);
    // Retained status and health as a running device leaves them.
    const central = await mqtt.connectAsync(broker.url, {
      ...(await broker.clientOptions('central')),
      reconnectPeriod: 0,
    });
    await central.publishAsync(topic(deviceId, 'status'), '{"state":"online"}', { qos: 1, retain: true });
    await central.publishAsync(topic(deviceId, 'health'), '{"ok":true}', { qos: 1, retain: true });
    await central.endAsync();
    const observer = await watch(deviceId);

    const run = await cliInProcess(
      ['decommission', '--yes', '--config-dir', configDir, '--technician', 'Test Tekniker'],
      {
        service: noSystemd,
      },
    );
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const live = observer.messages.filter((m) => !m.retain);
    expect(live.filter((m) => m.topic.endsWith('/audit')).map((m) => JSON.parse(m.payload).id)).toEqual([
      'a-2',
      'a-3',
    ]);
    const event = live.find((m) => m.topic === topic(deviceId, 'event'));
    const parsed = DecommissionedEvent.parse(JSON.parse(event?.payload ?? 'null'));
    expect(parsed).toMatchObject({ auditDelivered: 2, auditExported: 0, technician: 'Test Tekniker' });
    for (const name of ['status', 'health', 'info'] as const) {
      expect(live.some((m) => m.topic === topic(deviceId, name) && m.payload === '')).toBe(true);
    }
    await observer.client.endAsync();
    // A new subscriber sees no retained message for the device any more.
    const after = await watch(deviceId);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(after.messages).toEqual([]);
    await after.client.endAsync();
    expect(await readdir(configDir)).toEqual([]);
    expect(await readdir(stateDir)).toEqual([]);
  });

  it('wipes nothing when the broker is unreachable and nothing was exported', async () => {
    const gone = await startBroker();
    const url = gone.url;
    await gone.stop();
    const { configDir, stateDir } = await provisionDevice('decom-offline', url);
    const run = await cliInProcess(['decommission', '--yes', '--config-dir', configDir], {
      service: noSystemd,
    });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('nothing was wiped');
    expect(await readdir(configDir)).toContain('device.key');
    expect(await readdir(stateDir)).toContain('outbox.log');
  });

  it('exports undelivered records and the audit trail, then wipes with --offline', async () => {
    const gone = await startBroker();
    const url = gone.url;
    await gone.stop();
    const { configDir, stateDir } = await provisionDevice('decom-export', url);
    const file = join(dir, 'decom-export.json');
    const run = await cliInProcess(
      ['decommission', '--yes', '--config-dir', configDir, '--export', file, '--offline'],
      {
        service: noSystemd,
      },
    );
    expect(run.code).toBe(0);
    const exported = JSON.parse(await readFile(file, 'utf8'));
    expect(exported.undelivered.map((r: { payload: { id: string } }) => r.payload.id)).toEqual([
      'a-2',
      'a-3',
    ]);
    expect(exported.auditTrail).toHaveLength(3);
    expect(await readdir(configDir)).toEqual([]);
    expect(await readdir(stateDir)).toEqual([]);
  });

  it('asks for the device id before wiping', async () => {
    const { configDir } = await provisionDevice('decom-ask', broker.url);
    const run = await cliInProcess(
      ['decommission', '--config-dir', configDir],
      { service: noSystemd },
      { answers: ['wrong'] },
    );
    expect(run.code).toBe(1);
    expect(await readdir(configDir)).toContain('device.key');
  });
});
