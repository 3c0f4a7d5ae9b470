// The fleet's MQTT side: one client per instance with a fixed client id and a persistent session, so
// QoS 1 messages that arrive while the instance is down wait in the broker. It reads the device topics
// through shared subscriptions ($share/<group>/tk/+/...), so the broker hands each message to one of
// the instances of the group: several run side by side and split the work.
//
// Nothing is lost to a crash: a QoS 1 message is acknowledged only after the transaction that stores
// it has committed. One killed mid-batch gets it again (same record id) when it reconnects, and the
// store de-duplicates. Messages are written in batches (QoS 0 health piles up while a QoS 1 message
// is being stored); mqtt.js takes the next packet only after an acknowledgement, so a batch holds at
// most one QoS 1 message and the QoS 0 ones that came before it.
//
// Retained messages are not sent on shared subscriptions (MQTT 5, 4.8.2), so on every connect each
// instance also subscribes to status, health and info directly for a short while to read the broker's
// retained state, then unsubscribes. The store's reducer keeps whatever is newer.
import { EventEmitter } from 'node:events';
import { setTimeout as delay } from 'node:timers/promises';
import mqtt, { type IClientOptions, type MqttClient, type Packet } from 'mqtt';
import type { Logger } from 'pino';
import type { BatchResult, FleetStore, Incoming } from '../db/index.js';
import { parseFleetMessage } from '../protocol.js';

export interface IngestOptions {
  /** mqtt.js connection options (URL parts, TLS files already read). */
  connect: IClientOptions & { url?: string };
  /** This instance's MQTT client id: fixed, so its persistent session survives restarts. */
  clientId: string;
  /** Shared subscription group: instances with the same group split the messages. */
  group: string;
  /** How long the broker keeps the session of a disconnected instance. */
  sessionExpiryS: number;
  /** How long to read retained messages after each connect. */
  retainedSyncMs: number;
  /** How often to read the retained state again (0: only at connect); see #readRetained. */
  retainedRefreshMs: number;
  maxBatch: number;
}

export const defaultIngestOptions = {
  group: 'fleet',
  sessionExpiryS: 7 * 24 * 3600,
  retainedSyncMs: 3000,
  retainedRefreshMs: 120_000,
  maxBatch: 2000,
} as const;

export interface IngestDeps {
  store: FleetStore;
  log: Logger;
  clock: () => number;
}

interface Events {
  applied: [result: BatchResult];
  connected: [];
  'retained-synced': [];
}

interface Queued {
  item: Incoming;
  ack: (() => void) | undefined;
}

const sharedTopics = ['status', 'health', 'info', 'event', 'audit'] as const;
const retainedTopics = ['tk/+/status', 'tk/+/health', 'tk/+/info'];
const retainedQuietMs = 500;

export class Ingest extends EventEmitter<Events> {
  readonly #options: IngestOptions;
  readonly #deps: IngestDeps;
  #client: MqttClient | undefined;
  #queue: Queued[] = [];
  #draining: Promise<void> | undefined;
  #stopped = false;
  #stopping = false;
  #readingRetained = false;
  #refreshTimer: NodeJS.Timeout | undefined;
  #lastRetainedAt = 0;
  /** Messages that did not parse (acknowledged and dropped: a re-delivery would not parse either). */
  malformed = 0;
  received = 0;

  constructor(options: IngestOptions, deps: IngestDeps) {
    super();
    this.#options = options;
    this.#deps = deps;
  }

  get topics(): string[] {
    return sharedTopics.map((name) => `$share/${this.#options.group}/tk/+/${name}`);
  }

  async start(signal?: AbortSignal): Promise<void> {
    const { url, ...connect } = this.#options.connect;
    const options: IClientOptions = {
      ...connect,
      clientId: this.#options.clientId,
      protocolVersion: 5,
      clean: false,
      properties: { sessionExpiryInterval: this.#options.sessionExpiryS },
      reconnectPeriod: 1000,
      connectTimeout: 10_000,
      resubscribe: false,
      customHandleAcks: (topicName, payload, packet, done) => {
        this.#receive(topicName, payload, packet, () => done(0));
      },
    };
    const client = url ? mqtt.connect(url, options) : mqtt.connect(options);
    this.#client = client;
    const log = this.#deps.log;
    client.on('message', (topicName, payload, packet) => {
      // QoS 1 arrives through customHandleAcks (and is emitted again after its acknowledgement).
      if (packet.qos === 0) this.#receive(topicName, payload, packet, undefined);
    });
    client.on('error', (error) => log.warn({ err: error.message }, 'broker connection error'));
    client.on('offline', () => log.warn('broker offline'));
    client.on('connect', (connack) => {
      log.info(
        { sessionPresent: connack.sessionPresent, clientId: this.#options.clientId },
        'broker connected',
      );
      this.#onConnect().catch((error: unknown) =>
        log.error({ err: (error as Error).message }, 'subscribe failed'),
      );
    });
    await new Promise<void>((resolve, reject) => {
      const onAbort = () => reject(new Error('start aborted'));
      signal?.addEventListener('abort', onAbort, { once: true });
      this.once('retained-synced', () => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      });
    });
  }

  async #onConnect(): Promise<void> {
    const client = this.#client;
    if (!client || this.#stopped) return;
    // Subscribing again with a session present changes nothing; without one (expired, broker restarted) it is needed.
    await client.subscribeAsync(this.topics, { qos: 1 });
    this.emit('connected');
    await this.#readRetained();
    if (this.#stopped || !client.connected) return;
    this.emit('retained-synced');
    if (this.#refreshTimer === undefined && this.#options.retainedRefreshMs > 0) {
      this.#refreshTimer = setInterval(() => {
        this.#readRetained().catch((error: unknown) =>
          this.#deps.log.warn({ err: (error as Error).message }, 'reading the retained state failed'),
        );
      }, this.#options.retainedRefreshMs);
    }
  }

  /**
   * Reads the broker's retained status, health and info. At connect, and again every
   * `retainedRefreshMs`: mosquitto 2.0 keeps handing a stopped instance its share of the messages
   * (queued in its session until it returns, QoS 0 health dropped), so without this the instances
   * still running would not see half of the wills and faults until it comes back.
   */
  async #readRetained(): Promise<void> {
    const client = this.#client;
    if (!client || this.#stopped || this.#readingRetained) return;
    this.#readingRetained = true;
    try {
      // QoS 0: the retained state can be read again at any time, and without acknowledgements the
      // tens of thousands of messages of a large fleet are stored in big batches.
      await client.subscribeAsync(retainedTopics, { qos: 0, rh: 0 });
      // At least `retainedSyncMs`, then for as long as retained messages keep coming (a large
      // fleet's tens of thousands take a while), up to a minute.
      const started = performance.now();
      await delay(this.#options.retainedSyncMs);
      while (
        performance.now() - this.#lastRetainedAt < retainedQuietMs &&
        performance.now() - started < 60_000
      ) {
        await delay(retainedQuietMs);
      }
      if (this.#stopped || !client.connected) return;
      await client.unsubscribeAsync(retainedTopics);
      await this.idle();
    } finally {
      this.#readingRetained = false;
    }
  }

  #receive(
    topicName: string,
    payload: Buffer,
    packet: Packet & { retain?: boolean },
    ack: (() => void) | undefined,
  ): void {
    this.received += 1;
    if (packet.retain) this.#lastRetainedAt = performance.now();
    const parsed = parseFleetMessage(topicName, payload);
    if (!parsed.ok) {
      // An empty retained payload just clears a topic; anything else is a device or test sending junk.
      if (parsed.reason !== 'empty') this.malformed += 1;
      this.#deps.log.debug({ topic: topicName, reason: parsed.reason }, 'message dropped');
      ack?.();
      return;
    }
    this.#queue.push({
      item: { message: parsed.message, receivedAtMs: this.#deps.clock(), retained: packet.retain === true },
      ack,
    });
    this.#draining ??= this.#drain().finally(() => {
      this.#draining = undefined;
    });
  }

  async #drain(): Promise<void> {
    while (this.#queue.length > 0 && !this.#stopped) {
      const batch = this.#queue.slice(0, this.#options.maxBatch);
      let result: BatchResult;
      try {
        result = await this.#deps.store.applyBatch(
          batch.map((queued) => queued.item),
          this.#deps.clock(),
        );
      } catch (error) {
        // Not acknowledged, so not lost: retry; if we die first, the broker re-delivers.
        this.#deps.log.error(
          { err: (error as Error).message, batch: batch.length },
          'storing messages failed; retrying',
        );
        // Stopping: leave them unacknowledged in the broker's session for the next start.
        if (this.#stopping) return;
        await delay(1000);
        continue;
      }
      this.#queue.splice(0, batch.length);
      for (const queued of batch) queued.ack?.();
      try {
        this.emit('applied', result);
      } catch (error) {
        this.#deps.log.error({ err: (error as Error).message }, 'applied listener failed');
      }
    }
  }

  /** Resolves when everything received so far is stored. */
  async idle(): Promise<void> {
    while (this.#draining) await this.#draining;
  }

  get queued(): number {
    return this.#queue.length;
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopping = true;
    if (this.#refreshTimer) clearInterval(this.#refreshTimer);
    this.#refreshTimer = undefined;
    await this.idle();
    this.#stopped = true;
    const client = this.#client;
    this.#client = undefined;
    // Not acknowledged messages stay in the session and come back on the next start.
    await client?.endAsync(true);
  }
}
