// The device's one MQTT connection to the central broker: outbound only, TLS with the device's own
// client certificate, server checked against the configured CA (never `rejectUnauthorized: false`).
// Retained `online` status on every connect, `offline` as the last will and on clean shutdown, with
// the connection counter in both. A clean shutdown ends with an MQTT DISCONNECT, so the broker drops
// the will and `offline` is said once.
//
// Reconnecting: mqtt.js only knows a fixed `reconnectPeriod`. We set it to 0 and make one fresh
// client per attempt, for two reasons: the delay follows exponential backoff with jitter
// (backoff.ts), and every attempt registers a will carrying its own, freshly persisted counter value
// (a reused client would keep re-sending the first attempt's will). A fresh client also has an empty
// in-flight store, so nothing is re-sent behind the outbox's back: the outbox is the one place that
// re-sends QoS 1 records, under their original ids.
import { EventEmitter } from 'node:events';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { systemTimers, type Timers } from '../clock/clock.js';
import { emitSafely, type Logger } from '../log/index.js';
import { type StatusMessage, schemaVersion, type TopicName, topic, topicSpecs } from '../protocol/index.js';
import { backoffMs } from './backoff.js';
import { type ConnectionCounter, memoryCounter } from './counter.js';
import { PacketSizeGuard } from './packet-guard.js';

export interface LinkDeps {
  deviceId: string;
  url: string;
  tls: { ca: Buffer; cert: Buffer; key: Buffer } | undefined;
  keepaliveS: number;
  log: Logger;
  /** Persisted connection counter; incremented before every connect attempt. Default: in memory. */
  counter?: ConnectionCounter;
  /** Backoff between attempts (before jitter). Default 500 ms doubling up to 30 s. */
  reconnect?: { initialMs: number; maxMs: number };
  /** QoS 0 telemetry kept while offline; the oldest is dropped when full. Default 20. */
  offlineQueueMax?: number;
  /** Wall clock for the `at` of status messages. */
  now?: () => number;
  random?: () => number;
  /** Timers for reconnect delays and bounded waits; default the system's. */
  timers?: Timers;
  /** How long a clean stop waits for in-flight PUBACKs and the DISCONNECT; default 2 s. */
  disconnectTimeoutMs?: number;
  connect?: (url: string, options: IClientOptions) => MqttClient;
  /**
   * Largest MQTT packet accepted from the broker, checked on the fixed header before the packet is
   * buffered (packet-guard.ts); a larger one closes the connection. Default `maxPacketBytes`.
   */
  maxPacketBytes?: number;
}

/**
 * The largest packet either side needs: the broker's `max_packet_size` (scripts/broker/config.ts has
 * the reasoning), so the device refuses what a broker set up as we ship it would never pass.
 */
export const maxPacketBytes = 66_560;

export interface LinkEvents {
  message: [name: InboundTopic, payload: Buffer];
  /** A message on tk/<id>/ack, unparsed: see `deliverAcks` (device/outbox) for the outbox's side. */
  ack: [payload: Buffer];
  connected: [];
  disconnected: [];
}

export interface LinkStats {
  /** Connect attempts made since start. */
  attempts: number;
  /** Connections established after the first one. */
  reconnects: number;
  /** The current (or last) connection's counter value. */
  connection: number;
  /** QoS 0 telemetry dropped because the offline queue was full. */
  telemetryDropped: number;
  /** QoS 0 telemetry waiting for the connection. */
  telemetryQueued: number;
  /** Connections closed because the broker sent a packet over `maxPacketBytes`. */
  oversizedPackets: number;
}

const inbound = ['schedule', 'viewRequest', 'update'] as const;
export type InboundTopic = (typeof inbound)[number];
// Acknowledgements get their own event: they are for the outbox, not for the service's message handler.
const subscribed = [...inbound, 'ack'] as const;
const stopPublishTimeoutMs = 2000;

interface Pending {
  reject(error: Error): void;
}

export class MqttLink extends EventEmitter<LinkEvents> {
  readonly #deps: LinkDeps;
  readonly #log: Logger;
  readonly #counter: ConnectionCounter;
  readonly #timers: Timers;
  #client: MqttClient | undefined;
  #connected = false;
  #connection = 0;
  #attempts = 0;
  #connects = 0;
  #failures = 0;
  #retryTimer: unknown;
  #started = false;
  #stopped = false;
  #pending = new Set<Pending>();
  #offline: Array<{ name: TopicName; payload: string }> = [];
  #telemetryDropped = 0;
  #oversizedPackets = 0;

  constructor(deps: LinkDeps) {
    super();
    this.#deps = deps;
    this.#log = deps.log;
    this.#counter = deps.counter ?? memoryCounter();
    this.#timers = deps.timers ?? systemTimers;
  }

  get connected(): boolean {
    return this.#connected;
  }

  /** Connections established after the first one. */
  get reconnects(): number {
    return Math.max(0, this.#connects - 1);
  }

  get stats(): LinkStats {
    return {
      attempts: this.#attempts,
      reconnects: this.reconnects,
      connection: this.#connection,
      telemetryDropped: this.#telemetryDropped,
      telemetryQueued: this.#offline.length,
      oversizedPackets: this.#oversizedPackets,
    };
  }

  #status(state: StatusMessage['state'], connection: number): string {
    const message: StatusMessage = {
      schemaVersion,
      state,
      connection,
      at: new Date((this.#deps.now ?? Date.now)()).toISOString(),
    };
    return JSON.stringify(message);
  }

  #emit<K extends keyof LinkEvents & string>(name: K, ...args: LinkEvents[K]): void {
    emitSafely<LinkEvents, K>(this, this.#log, name, ...args);
  }

  start(): void {
    if (this.#started || this.#stopped) return;
    this.#started = true;
    void this.#attempt();
  }

  async #attempt(): Promise<void> {
    this.#retryTimer = undefined;
    if (this.#stopped) return;
    const connection = await this.#counter.next();
    if (this.#stopped) return;
    this.#connection = connection;
    this.#attempts += 1;
    const { deviceId, tls } = this.#deps;
    const options: IClientOptions = {
      clientId: `tk-${deviceId}`,
      keepalive: this.#deps.keepaliveS,
      reconnectPeriod: 0,
      connectTimeout: 10_000,
      clean: true,
      will: {
        topic: topic(deviceId, 'status'),
        payload: Buffer.from(this.#status('offline', connection)),
        qos: 1,
        retain: true,
      },
      ...(tls ? { ca: tls.ca, cert: tls.cert, key: tls.key, rejectUnauthorized: true } : {}),
    };
    let client: MqttClient;
    try {
      client = (this.#deps.connect ?? mqtt.connect)(this.#deps.url, options);
    } catch (error) {
      this.#log.error({ err: (error as Error).message }, 'cannot create the MQTT client');
      this.#scheduleRetry();
      return;
    }
    this.#client = client;
    this.#guard(client);
    let closed = false;
    client.on('connect', () => {
      if (client !== this.#client) return;
      this.#connected = true;
      this.#connects += 1;
      this.#failures = 0;
      this.#log.info({ url: this.#deps.url, connection }, 'broker connected');
      client.publish(
        topic(deviceId, 'status'),
        this.#status('online', connection),
        { qos: 1, retain: true },
        () => undefined,
      );
      this.#flushOffline(client);
      // `connected` means ready: subscribed, so requests published from now on reach the device.
      const topics = Object.fromEntries(
        subscribed.map((name) => [topic(deviceId, name), { qos: 1 as const }]),
      );
      client.subscribe(topics, (error) => {
        if (error) this.#log.error({ err: error.message }, 'subscribe failed');
        if (client === this.#client && this.#connected) this.#emit('connected');
      });
    });
    client.on('close', () => {
      if (closed) return;
      closed = true;
      const wasConnected = this.#connected && client === this.#client;
      if (client === this.#client) {
        this.#connected = false;
        this.#client = undefined;
      }
      this.#rejectPending(new Error('connection closed'));
      client.end(true, () => undefined);
      if (wasConnected) {
        if (!this.#stopped) this.#log.warn({ connection }, 'broker connection lost');
        this.#emit('disconnected');
      }
      if (!this.#stopped) this.#scheduleRetry();
    });
    client.on('error', (error) => this.#log.debug({ err: error.message }, 'broker error'));
    client.on('message', (received, payload) => {
      if (received === topic(deviceId, 'ack')) {
        this.#emit('ack', payload);
        return;
      }
      const name = inbound.find((n) => topic(deviceId, n) === received);
      if (name) this.#emit('message', name, payload);
    });
  }

  /** Closes the connection on the first packet over the size limit, before the parser buffers it. */
  #guard(client: MqttClient): void {
    const stream = client.stream as (MqttClient['stream'] & NodeJS.EventEmitter) | undefined;
    if (!stream || typeof stream.prependListener !== 'function') return;
    const guard = new PacketSizeGuard(this.#deps.maxPacketBytes ?? maxPacketBytes);
    let tripped = false;
    // Ahead of mqtt.js's own listener, so it sees each chunk first.
    stream.prependListener('data', (chunk: Buffer) => {
      if (tripped) return;
      const size = guard.feed(chunk);
      if (size === undefined) return;
      tripped = true;
      this.#oversizedPackets += 1;
      this.#log.warn(
        { packetBytes: size, maxPacketBytes: this.#deps.maxPacketBytes ?? maxPacketBytes },
        'oversized packet from the broker: closing the connection',
      );
      stream.destroy();
    });
  }

  #scheduleRetry(): void {
    if (this.#stopped || this.#retryTimer) return;
    const { initialMs, maxMs } = this.#deps.reconnect ?? { initialMs: 500, maxMs: 30_000 };
    const delayMs = backoffMs(this.#failures, {
      initialMs,
      maxMs,
      ...(this.#deps.random ? { random: this.#deps.random } : {}),
    });
    this.#failures += 1;
    this.#log.debug({ delayMs, failures: this.#failures }, 'reconnecting after a delay');
    this.#retryTimer = this.#timers.setTimeout(() => void this.#attempt(), delayMs);
  }

  #rejectPending(error: Error): void {
    const pending = [...this.#pending];
    this.#pending.clear();
    for (const entry of pending) entry.reject(error);
  }

  #flushOffline(client: MqttClient): void {
    const queued = this.#offline;
    this.#offline = [];
    for (const { name, payload } of queued) {
      const spec = topicSpecs[name];
      client.publish(
        topic(this.#deps.deviceId, name),
        payload,
        { qos: spec.qos, retain: spec.retain },
        () => {
          /* telemetry: best effort */
        },
      );
    }
  }

  /**
   * Publishes with the topic's QoS and retain flag. QoS 1 resolves on PUBACK and rejects when offline
   * or when the connection drops first (the outbox re-sends). QoS 0 telemetry is queued while offline
   * (bounded; the oldest is dropped and counted) and resolves once sent or queued.
   */
  publish(name: TopicName, payload: unknown): Promise<void> {
    if (!this.#started) return Promise.reject(new Error('not started'));
    const spec = topicSpecs[name];
    const text = JSON.stringify(payload);
    const client = this.#client;
    if (spec.qos === 0 && (!client || !this.#connected)) {
      if (this.#stopped) return Promise.resolve();
      const max = this.#deps.offlineQueueMax ?? 20;
      this.#offline.push({ name, payload: text });
      while (this.#offline.length > max) {
        this.#offline.shift();
        this.#telemetryDropped += 1;
      }
      return Promise.resolve();
    }
    if (!client || !this.#connected) return Promise.reject(new Error('offline'));
    return new Promise((resolve, reject) => {
      let settled = false;
      const entry: Pending = {
        reject: (error) => {
          if (settled) return;
          settled = true;
          reject(error);
        },
      };
      this.#pending.add(entry);
      client.publish(
        topic(this.#deps.deviceId, name),
        text,
        { qos: spec.qos, retain: spec.retain },
        (error) => {
          this.#pending.delete(entry);
          if (settled) return;
          settled = true;
          if (error) reject(error);
          else resolve();
        },
      );
    });
  }

  /** Publishes `offline` (retained) and disconnects with a DISCONNECT (no will); idempotent. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#retryTimer) this.#timers.clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    const client = this.#client;
    if (!client) return;
    if (this.#connected) {
      await new Promise<void>((resolve) => {
        const timer = this.#timers.setTimeout(resolve, stopPublishTimeoutMs);
        client.publish(
          topic(this.#deps.deviceId, 'status'),
          this.#status('offline', this.#connection),
          { qos: 1, retain: true },
          () => {
            this.#timers.clearTimeout(timer);
            resolve();
          },
        );
      });
    }
    this.#connected = false;
    this.#rejectPending(new Error('link stopped'));
    await this.#disconnect(client);
    this.#client = undefined;
  }

  /**
   * Ends the session with a DISCONNECT packet, which tells the broker to discard the will (MQTT 3.1.1
   * §3.14.4): closing the socket without one makes the broker publish a second, stale `offline` after
   * ours. mqtt.js sends it once its in-flight QoS 1 publishes are acknowledged, which may never happen
   * on a dying link, so the wait is bounded; after it the socket is closed (the will then fires, which
   * is right: we could not say goodbye).
   */
  async #disconnect(client: MqttClient): Promise<void> {
    const timeoutMs = this.#deps.disconnectTimeoutMs ?? 2000;
    let timer: unknown;
    const ended = await Promise.race([
      new Promise<boolean>((resolve) => client.end(false, () => resolve(true))),
      new Promise<boolean>((resolve) => {
        timer = this.#timers.setTimeout(() => resolve(false), timeoutMs);
      }),
    ]);
    this.#timers.clearTimeout(timer);
    if (!ended) {
      this.#log.warn({ timeoutMs }, 'no clean MQTT disconnect in time; closing the socket');
      client.stream?.destroy();
    }
  }
}
