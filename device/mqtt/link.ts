// The device's one MQTT connection to the central broker: outbound only, TLS with the device's own
// client certificate, server checked against the configured CA. Retained `online` status on every
// connect, `offline` as the last will and on clean shutdown, with a connection counter in both.
import { EventEmitter } from 'node:events';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { Logger } from '../log/index.js';
import { type StatusMessage, schemaVersion, type TopicName, topic, topicSpecs } from '../protocol/index.js';

export interface LinkDeps {
  deviceId: string;
  url: string;
  tls: { ca: Buffer; cert: Buffer; key: Buffer } | undefined;
  keepaliveS: number;
  log: Logger;
  /** Connection counter persisted by the caller; incremented at every connect. */
  connectionCounter?: number;
  connect?: (url: string, options: IClientOptions) => MqttClient;
}

export interface LinkEvents {
  message: [name: 'schedule' | 'viewRequest', payload: Buffer];
  connected: [];
  disconnected: [];
}

const inbound = ['schedule', 'viewRequest'] as const;

export class MqttLink extends EventEmitter<LinkEvents> {
  readonly #deps: LinkDeps;
  readonly #log: Logger;
  #client: MqttClient | undefined;
  #connection: number;
  #reconnects = 0;
  #stopped = false;

  constructor(deps: LinkDeps) {
    super();
    this.#deps = deps;
    this.#log = deps.log;
    this.#connection = deps.connectionCounter ?? 0;
  }

  get connected(): boolean {
    return this.#client?.connected ?? false;
  }

  get reconnects(): number {
    return this.#reconnects;
  }

  #status(state: StatusMessage['state']): string {
    const message: StatusMessage = {
      schemaVersion,
      state,
      connection: this.#connection,
      at: new Date().toISOString(),
    };
    return JSON.stringify(message);
  }

  start(): void {
    if (this.#client || this.#stopped) return;
    const { deviceId, tls } = this.#deps;
    this.#connection += 1;
    const options: IClientOptions = {
      clientId: `tk-${deviceId}`,
      keepalive: this.#deps.keepaliveS,
      reconnectPeriod: 2000,
      connectTimeout: 10_000,
      clean: true,
      will: {
        topic: topic(deviceId, 'status'),
        payload: Buffer.from(this.#status('offline')),
        qos: 1,
        retain: true,
      },
      ...(tls ? { ca: tls.ca, cert: tls.cert, key: tls.key, rejectUnauthorized: true } : {}),
    };
    const client = (this.#deps.connect ?? mqtt.connect)(this.#deps.url, options);
    this.#client = client;
    client.on('connect', () => {
      this.#log.info({ url: this.#deps.url, connection: this.#connection }, 'broker connected');
      const statusTopic = topic(deviceId, 'status');
      client.publish(statusTopic, this.#status('online'), { qos: 1, retain: true }, () => undefined);
      // `connected` means ready: subscribed, so requests published from now on reach the device.
      const topics = Object.fromEntries(inbound.map((name) => [topic(deviceId, name), { qos: 1 as const }]));
      client.subscribe(topics, (error) => {
        if (error) this.#log.error({ err: error }, 'subscribe failed');
        else this.emit('connected');
      });
    });
    client.on('reconnect', () => {
      this.#reconnects += 1;
    });
    client.on('close', () => {
      if (!this.#stopped) this.#log.warn('broker connection closed');
      this.emit('disconnected');
    });
    client.on('error', (error) => this.#log.warn({ err: error.message }, 'broker error'));
    client.on('message', (received, payload) => {
      const name = inbound.find((n) => topic(deviceId, n) === received);
      if (name) this.emit('message', name, payload);
    });
  }

  /** Publishes with the topic's QoS and retain flag. Resolves when sent (QoS 0) or acknowledged (QoS 1). */
  publish(name: TopicName, payload: unknown): Promise<void> {
    const client = this.#client;
    if (!client) return Promise.reject(new Error('not started'));
    const spec = topicSpecs[name];
    return new Promise((resolve, reject) => {
      client.publish(
        topic(this.#deps.deviceId, name),
        JSON.stringify(payload),
        { qos: spec.qos, retain: spec.retain },
        (error) => (error ? reject(error) : resolve()),
      );
    });
  }

  /** Publishes `offline` (retained) and disconnects; idempotent. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    const client = this.#client;
    if (!client) return;
    if (client.connected) {
      await new Promise<void>((resolve) => {
        client.publish(
          topic(this.#deps.deviceId, 'status'),
          this.#status('offline'),
          { qos: 1, retain: true },
          () => resolve(),
        );
        setTimeout(resolve, 2000).unref();
      });
    }
    await client.endAsync(true);
  }
}
