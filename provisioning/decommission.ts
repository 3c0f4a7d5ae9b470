// `trygghetskamera-provision decommission`: takes a device out of service when the resident leaves
// (ETSI EN 303 645 provision 5.11: user data can be erased in a simple way).
//
// Order matters, and nothing is wiped until every earlier step has succeeded:
//  1. stop the service, so nothing writes to the outbox or the audit trail any more;
//  2. audit records still in the outbox are delivered now (QoS 1, with the device's own
//     certificate); whatever cannot be delivered is exported to a file for the technician, or the
//     command stops with nothing wiped;
//  3. the last `decommissioned` event is sent, and the retained topics tk/<id>/status, info and
//     health are cleared (empty retained payloads), so the fleet view no longer shows the device;
//  4. keys, certificates, config, state and audit trail are wiped, and the service disabled.
import { createHash, randomUUID } from 'node:crypto';
import { open, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { IClientOptions, MqttClient } from 'mqtt';
import mqtt from 'mqtt';
import type { Config } from '../device/config/index.js';
import { parseLog } from '../device/outbox/index.js';
import type { DecommissionedEvent } from '../device/protocol/decommission.js';
import { schemaVersion, type TopicName, topic } from '../device/protocol/index.js';
import { connectClient } from './broker.js';
import type { ServiceControl } from './service.js';

export interface DecommissionDeps {
  config: Config;
  configDir: string;
  say(text: string): void;
  service: ServiceControl;
  now(): number;
  /** Where undelivered audit records (and the whole audit trail) go when the broker cannot take them. */
  exportFile: string | undefined;
  /** Wipe even though the broker is unreachable (after an export): central clears the retained topics. */
  offline: boolean;
  technician: string | undefined;
  timeoutMs: number;
  connect?: (url: string, options: IClientOptions) => MqttClient;
  /** Disables the unit so it does not restart without a config (systemctl disable). */
  disableService(): Promise<string | undefined>;
}

export type DecommissionResult =
  | { ok: true; delivered: number; exported: number; wiped: string[] }
  | { ok: false; reason: string };

const retainedTopics: TopicName[] = ['status', 'info', 'health'];

async function readOutbox(stateDir: string) {
  try {
    return parseLog(await readFile(join(stateDir, 'outbox.log'), 'utf8')).pending;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
}

async function auditTrail(stateDir: string): Promise<string[]> {
  const dir = join(stateDir, 'audit');
  let names: string[];
  try {
    names = (await readdir(dir)).filter((name) => name.endsWith('.jsonl')).sort();
  } catch {
    return [];
  }
  const lines: string[] = [];
  for (const name of names) {
    for (const line of (await readFile(join(dir, name), 'utf8')).split('\n'))
      if (line.trim()) lines.push(line);
  }
  return lines;
}

/** Overwrites a file with zeros and syncs before unlinking: best effort on flash (wear levelling). */
async function shred(path: string): Promise<void> {
  try {
    const { size } = await stat(path);
    const file = await open(path, 'r+');
    try {
      await file.write(Buffer.alloc(size), 0, size, 0);
      await file.sync();
    } finally {
      await file.close();
    }
  } catch {
    // Missing or unreadable: removing it below is all that can be done.
  }
  await rm(path, { force: true, recursive: true });
}

export async function decommission(deps: DecommissionDeps): Promise<DecommissionResult> {
  const { config, say } = deps;
  const stateDir = config.stateDir;

  if ((await deps.service.unavailable()) === undefined) {
    say('Stopping the service …');
    const failure = await deps.service.stop();
    if (failure) return { ok: false, reason: `cannot stop the service: ${failure}` };
  }

  const pending = (await readOutbox(stateDir)).filter(
    (line) => line.name === 'audit' || line.name === 'event',
  );
  say(`${pending.length} record(s) in the outbox not yet delivered.`);

  const tls = config.broker.url.startsWith('mqtts://')
    ? {
        ca: await readFile(config.broker.caFile ?? ''),
        cert: await readFile(config.broker.certFile ?? ''),
        key: await readFile(config.broker.keyFile ?? ''),
      }
    : undefined;
  const connected = await connectClient(
    {
      config,
      tls,
      timeoutMs: deps.timeoutMs,
      now: deps.now,
      ...(deps.connect ? { connect: deps.connect } : {}),
    },
    `tk-${config.deviceId}-decommission-${randomUUID().slice(0, 6)}`,
  );
  const client = connected instanceof mqtt.MqttClient ? connected : undefined;
  if (!client) say(`Broker: ${'detail' in connected ? connected.detail : 'unreachable'}`);

  let delivered = 0;
  let undelivered = pending;
  if (client) {
    undelivered = [];
    for (const line of pending) {
      try {
        await client.publishAsync(topic(config.deviceId, line.name), JSON.stringify(line.payload), {
          qos: 1,
        });
        delivered += 1;
      } catch {
        undelivered.push(line);
      }
    }
  }

  let exported = 0;
  let exportSha256: string | undefined;
  if (undelivered.length > 0 || deps.exportFile) {
    if (!deps.exportFile) {
      await client?.endAsync().catch(() => undefined);
      return {
        ok: false,
        reason: `${undelivered.length} record(s) could not be delivered: connect the device to the network, or give --export FILE to take them with you; nothing was wiped`,
      };
    }
    const content = `${JSON.stringify(
      {
        deviceId: config.deviceId,
        exportedAt: new Date(deps.now()).toISOString(),
        undelivered: undelivered.map((line) => ({
          topic: topic(config.deviceId, line.name),
          payload: line.payload,
        })),
        auditTrail: (await auditTrail(stateDir)).map((line) => JSON.parse(line) as unknown),
      },
      null,
      2,
    )}\n`;
    await writeFile(deps.exportFile, content, { mode: 0o600, flag: 'wx' });
    exported = undelivered.length;
    exportSha256 = createHash('sha256').update(content).digest('hex');
    say(
      `Exported ${exported} undelivered record(s) and the audit trail to ${deps.exportFile} (sha256 ${exportSha256}).`,
    );
  }

  if (client) {
    try {
      const event: DecommissionedEvent = {
        id: randomUUID(),
        schemaVersion,
        type: 'decommissioned',
        at: new Date(deps.now()).toISOString(),
        auditDelivered: delivered,
        auditExported: exported,
        ...(exportSha256 ? { exportSha256 } : {}),
        ...(deps.technician ? { technician: deps.technician } : {}),
      };
      await client.publishAsync(topic(config.deviceId, 'event'), JSON.stringify(event), { qos: 1 });
      for (const name of retainedTopics) {
        await client.publishAsync(topic(config.deviceId, name), '', { qos: 1, retain: true });
      }
      say('Sent the decommissioned event and cleared the retained status, info and health.');
    } catch (error) {
      await client.endAsync().catch(() => undefined);
      return { ok: false, reason: `broker: ${(error as Error).message}; nothing was wiped` };
    } finally {
      await client.endAsync().catch(() => undefined);
    }
  } else if (!deps.offline) {
    return {
      ok: false,
      reason:
        'the broker is unreachable, so the retained topics cannot be cleared: fix the network, or give --offline (central must then clear tk/<id>/status, info and health); nothing was wiped',
    };
  }

  const wiped: string[] = [];
  for (const file of [config.broker.keyFile, join(deps.configDir, 'device.key')]) {
    if (file) await shred(file);
  }
  for (const dir of [deps.configDir, stateDir]) {
    let names: string[] = [];
    try {
      names = await readdir(dir);
    } catch {
      continue;
    }
    for (const name of names) {
      await shred(join(dir, name));
      wiped.push(join(dir, name));
    }
  }
  const disable = await deps.disableService();
  if (disable) say(`Note: could not disable the service: ${disable}`);
  say(
    `Wiped ${wiped.length} file(s) in ${deps.configDir} and ${stateDir}. The device holds no keys, config or audit trail.`,
  );
  return { ok: true, delivered, exported, wiped };
}
