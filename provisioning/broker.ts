// The broker check: connect exactly as the service does (TLS, the configured CA, the device's own
// certificate and key), publish a status message retained on tk/<id>/status and read it back. That
// proves the network path, the TLS trust in both directions and the broker's ACL for this device.
//
// What is published is the status that was already retained there (the service's own `online` or
// `offline`) with a fresh `at`, or `offline` with connection 0 for a device never seen before, so
// what central and operations read about the device stays true. A separate client id keeps a running
// service's connection up.
import { randomBytes } from 'node:crypto';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { Config } from '../device/config/index.js';
import { StatusMessage, schemaVersion, topic } from '../device/protocol/index.js';

export type BrokerResult = { ok: true; detail: string } | { ok: false; detail: string; remedy: string };

export interface BrokerCheckDeps {
  config: Config;
  tls: { ca: Buffer; cert: Buffer; key: Buffer } | undefined;
  timeoutMs: number;
  now(): number;
  connect?: (url: string, options: IClientOptions) => MqttClient;
}

const unreachable = /ECONNREFUSED|EHOSTUNREACH|ENETUNREACH|ENOTFOUND|EAI_AGAIN|ETIMEDOUT/;
const serverTrust =
  /UNABLE_TO_VERIFY|SELF_SIGNED|CERT_HAS_EXPIRED|CERT_NOT_YET_VALID|ERR_TLS_CERT_ALTNAME|unable to (get|verify)/i;
const clientRejected = /alert|certificate (unknown|required|revoked)|ECONNRESET|not authori[sz]ed|bad user/i;

function describe(error: Error, url: string): BrokerResult & { ok: false } {
  const code = (error as NodeJS.ErrnoException).code ?? '';
  const text = `${code} ${error.message}`;
  if (unreachable.test(text))
    return {
      ok: false,
      detail: `cannot reach ${url}: ${error.message}`,
      remedy:
        'check the home network (router or 4G box on, Pi connected: `ip addr`), the broker URL in the config, and that the firewall lets the port out',
    };
  if (serverTrust.test(text))
    return {
      ok: false,
      detail: `the broker's certificate is not trusted: ${error.message}`,
      remedy:
        'check the CA file (broker.caFile) is the central CA, the broker host name in the URL, and the clock (timedatectl)',
    };
  if (clientRejected.test(text))
    return {
      ok: false,
      detail: `the broker refused the device's certificate: ${error.message}`,
      remedy:
        'import the certificate the central PKI signed for THIS device (provision import-cert FILE); the CN must be the device id',
    };
  return {
    ok: false,
    detail: `broker connection failed: ${error.message}`,
    remedy: 'check the broker URL and the network',
  };
}

export function connectClient(deps: BrokerCheckDeps, clientId: string): Promise<MqttClient | BrokerResult> {
  const { config, tls } = deps;
  const connect = deps.connect ?? mqtt.connect;
  const client = connect(config.broker.url, {
    clientId,
    clean: true,
    reconnectPeriod: 0,
    connectTimeout: deps.timeoutMs,
    keepalive: 30,
    ...(tls ? { ca: tls.ca, cert: tls.cert, key: tls.key, rejectUnauthorized: true } : {}),
  });
  return new Promise((resolve) => {
    let lastError: Error | undefined;
    const finish = (result: MqttClient | BrokerResult) => {
      clearTimeout(timer);
      client.removeListener('connect', onConnect);
      client.removeListener('error', onError);
      client.removeListener('close', onClose);
      resolve(result);
    };
    const timer = setTimeout(() => {
      client.end(true);
      finish({
        ok: false,
        detail: `no answer from ${config.broker.url} within ${deps.timeoutMs} ms`,
        remedy:
          'check the network and that the broker address and port are right (a firewall may drop the packets)',
      });
    }, deps.timeoutMs);
    const onConnect = () => finish(client);
    const onError = (error: Error) => {
      lastError = error;
    };
    const onClose = () => {
      client.end(true);
      finish(describe(lastError ?? new Error('connection closed by the broker'), config.broker.url));
    };
    client.on('connect', onConnect);
    client.on('error', onError);
    client.on('close', onClose);
  });
}

function parseStatus(text: string): StatusMessage | undefined {
  try {
    const parsed = StatusMessage.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/** Connects, publishes the status retained and reads it back; always closes the connection. */
export async function checkBroker(deps: BrokerCheckDeps): Promise<BrokerResult> {
  const { deviceId } = deps.config;
  const statusTopic = topic(deviceId, 'status');
  // A broker with use_username_as_clientid (docs/mosquitto/) ignores this id: the login with the device
  // certificate replaces the service's connection, so the self-test pauses a running service first.
  const connected = await connectClient(deps, `tk-${deviceId}-selftest-${randomBytes(3).toString('hex')}`);
  if (!(connected instanceof mqtt.MqttClient) && 'ok' in connected) return connected;
  const client = connected as MqttClient;
  try {
    const at = new Date(deps.now()).toISOString();
    let previous: StatusMessage | undefined;
    let sent: string | undefined;
    const echoed = new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), deps.timeoutMs);
      client.on('message', (received, payload) => {
        if (received !== statusTopic) return;
        const text = payload.toString('utf8');
        if (sent !== undefined && text === sent) {
          clearTimeout(timer);
          resolve(true);
          return;
        }
        // Retained messages are delivered right after the subscription, before our own comes back.
        if (sent === undefined && previous === undefined) {
          previous = parseStatus(text);
        }
      });
    });
    await client.subscribeAsync(statusTopic, { qos: 1 });
    // A moment for the retained message, so the state it carries can be kept.
    await new Promise((resolve) => setTimeout(resolve, 200));
    const message: StatusMessage = {
      schemaVersion,
      state: previous?.state ?? 'offline',
      connection: previous?.connection ?? 0,
      at,
    };
    sent = JSON.stringify(message);
    await client.publishAsync(statusTopic, sent, { qos: 1, retain: true });
    if (!(await echoed))
      return {
        ok: false,
        detail: `connected, but ${statusTopic} did not come back within ${deps.timeoutMs} ms`,
        remedy: `the broker's ACL does not give this certificate tk/${deviceId}/: the certificate's CN must be exactly the device id; ask central to check the ACL`,
      };
    return { ok: true, detail: `TLS with the device certificate; ${statusTopic} published and read back` };
  } catch (error) {
    return describe(error as Error, deps.config.broker.url);
  } finally {
    await client.endAsync().catch(() => undefined);
  }
}
