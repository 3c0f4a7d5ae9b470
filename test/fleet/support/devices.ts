// Simulated devices for fleet tests: real MQTT clients publishing what a device publishes (retained
// status, health and info; events and audit records with ids). One client per device with its own
// certificate, or, to reach thousands, one `central` client publishing for many devices.
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { schemaVersion, topic } from '../../../device/protocol/index.js';

export function statusPayload(
  state: 'online' | 'offline',
  connection: number,
  at = new Date().toISOString(),
): string {
  return JSON.stringify({ schemaVersion, state, connection, at });
}

export function healthPayload(
  options: { nextWindowAt?: string; faults?: string[]; privacyOn?: boolean; uptimeS?: number } = {},
): string {
  return JSON.stringify({
    schemaVersion,
    uptimeS: options.uptimeS ?? 100,
    load1: 0.2,
    memFreeMB: 500,
    diskFreeMB: 9000,
    privacyOn: options.privacyOn ?? false,
    ...(options.nextWindowAt ? { scheduleVersion: 7, nextWindowAt: options.nextWindowAt } : {}),
    ...(options.faults && options.faults.length > 0 ? { faults: options.faults } : {}),
  });
}

export function infoPayload(firmware = '0.1.0'): string {
  return JSON.stringify({
    schemaVersion,
    firmware,
    node: 'v20.19.5',
    camera: {},
    configHash: '5d1f0c8e2b7a9c34',
    at: new Date().toISOString(),
  });
}

export function faultEvent(fault: string, active: boolean, id: string = randomUUID()): string {
  return JSON.stringify({ id, schemaVersion, type: 'fault', fault, active, at: new Date().toISOString() });
}

export function auditRecord(
  deviceId: string,
  decision: 'granted' | 'refused',
  id: string = randomUUID(),
): string {
  return JSON.stringify({
    schemaVersion,
    id,
    at: new Date().toISOString(),
    deviceId,
    kind: 'request',
    requestId: `req-${id.slice(0, 8)}`,
    ...(decision === 'granted' ? { sessionId: 'ses-1', operatorId: 'op-anna' } : { reason: 'privacy-on' }),
    decision,
  });
}

/** One simulated device on its own connection (its certificate, its will). */
export async function connectDevice(
  deviceId: string,
  options: IClientOptions,
  connection = 1,
): Promise<MqttClient> {
  return mqtt.connectAsync({
    ...options,
    clientId: `tk-${deviceId}`,
    reconnectPeriod: 0,
    will: {
      topic: topic(deviceId, 'status'),
      payload: Buffer.from(statusPayload('offline', connection)),
      qos: 1,
      retain: true,
    },
  });
}

/** Brings a device up as it does at connect: status, info and health, all retained. */
export async function announce(
  client: MqttClient,
  deviceId: string,
  health: string,
  connection = 1,
): Promise<void> {
  await client.publishAsync(topic(deviceId, 'status'), statusPayload('online', connection), {
    qos: 1,
    retain: true,
  });
  await client.publishAsync(topic(deviceId, 'info'), infoPayload(), { qos: 1, retain: true });
  await client.publishAsync(topic(deviceId, 'health'), health, { qos: 0, retain: true });
}

/** A local webhook receiver: collects the JSON bodies POSTed to it. */
export async function startWebhook(): Promise<{ url: string; bodies: unknown[]; stop(): Promise<void> }> {
  const bodies: unknown[] = [];
  const server: Server = createServer((request: IncomingMessage, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      bodies.push(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      response.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    bodies,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export async function until<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 15_000,
): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
