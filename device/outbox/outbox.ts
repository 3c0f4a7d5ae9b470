// A persisted outbox for QoS 1 records (audit records, events): nothing the device promised to deliver
// is lost through broker outages or crashes, network loss, device crashes or power cuts, and nothing
// is re-sent under a new id.
//
// - `enqueue` appends the record to `<stateDir>/outbox.log` and resolves with its id only after fsync.
//   Concurrent enqueues share one write and one fsync (group commit).
// - The id is the record's own `id` field when it has one, else a new UUID written into the record
//   (`id` first). It is kept for good: a re-sent record carries the same id, so the central side
//   de-duplicates by id (delivery is at least once).
// - A record leaves the outbox only when the central service acknowledges its id (`acknowledge`, fed
//   from tk/<id>/ack by `deliverAcks`): then an `ack` line is appended (not fsynced: losing one costs a
//   duplicate, never a record). A broker's PUBACK frees nothing, it only ends the record's in-flight
//   state: a broker that crashes before it saved (mosquitto autosaves every 30 minutes) or before the
//   central subscriber took the message loses it, and only the central service can say it has it.
// - Records are published in order, a few awaiting PUBACK at a time, while the link is connected.
//   Unacknowledged records are re-sent from the oldest after every (re)connect, and while connected
//   once their re-send delay has passed since their PUBACK (`resendMs`, doubling per re-send up to
//   `maxResendMs`, with jitter so a fleet does not re-send in step after a central outage).
// - The file is compacted (rewritten atomically with only the pending records) at start and when dead
//   lines outweigh live ones.
// - Bounded: when `maxRecords` or `maxBytes` would be exceeded, new records are REFUSED
//   (`OutboxFullError`, counted in `stats.refusedFull`) and the oldest are kept: they are already
//   promised to their callers, and order matters to the central side. The audit log keeps its own copy.
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { type FileHandle, mkdir, open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { systemTimers, type Timers } from '../clock/clock.js';
import type { Logger } from '../log/index.js';
import { backoffMs } from '../mqtt/backoff.js';
import type { TopicName } from '../protocol/index.js';
import { writeFileAtomic } from '../state/index.js';
import { ackLine, type PutLine, parseLog, putLine, RecordId } from './log-file.js';

export const outboxFileName = 'outbox.log';

/** The link as the outbox sees it: is it connected, and tell me when that changes. */
export interface OutboxConnection {
  readonly connected: boolean;
  on(event: 'connected' | 'disconnected', listener: () => void): unknown;
  off(event: 'connected' | 'disconnected', listener: () => void): unknown;
}

export interface OutboxDeps {
  /** The state directory. */
  dir: string;
  log: Logger;
  /** Publishes with the topic's QoS (1): resolves on PUBACK, rejects when not delivered. */
  publish(name: TopicName, payload: object): Promise<void>;
  connection: OutboxConnection;
  /** Default 10 000 records. */
  maxRecords?: number;
  /** Bytes of pending records; default 8 MiB. */
  maxBytes?: number;
  /** Largest single record (serialised); default 64 KiB. */
  maxRecordBytes?: number;
  /** Records published and not yet acknowledged at once; default 16. */
  inflight?: number;
  /** Delay before retrying a record whose publish failed while still connected; default 1 s. */
  retryMs?: number;
  /** Re-send a record not acknowledged this long after its PUBACK, while connected; default 60 s. */
  resendMs?: number;
  /** Cap of the re-send delay, which doubles with each re-send of a record; default 30 min. */
  maxResendMs?: number;
  /** Monotonic milliseconds, for re-send times; default `performance.now`. */
  now?: () => number;
  /** Timers for retries and re-sends; default the system's. */
  timers?: Timers;
  /** Returns a number in [0, 1), for the re-send jitter. */
  random?: () => number;
  newId?: () => string;
}

export interface OutboxStats {
  enqueued: number;
  /** Records acknowledged by the central service (and so removed). */
  delivered: number;
  /** PUBACKs received (first sends and re-sends). */
  published: number;
  /** Publishes of a record that had been published before (after a reconnect or its re-send delay). */
  resent: number;
  /** Records refused because the outbox was full. */
  refusedFull: number;
  /** Bytes of a torn last line dropped at start (a crash mid-append). */
  tornBytes: number;
  /** Whole lines that could not be read at start. */
  corruptLines: number;
  compactions: number;
}

export class OutboxFullError extends Error {
  constructor(detail: string) {
    super(`outbox full: ${detail}`);
    this.name = 'OutboxFullError';
  }
}

/**
 * `queued`: to be published on this connection; `sending`: published, no PUBACK yet; `sent`: the broker
 * has it, the central service has not acknowledged it (re-sent at `dueMs`).
 */
interface Entry {
  line: PutLine;
  bytes: number;
  state: 'queued' | 'sending' | 'sent';
  /** PUBACKs received for this record so far; the re-send delay doubles with each. */
  publishes: number;
  dueMs: number;
}

interface Waiter {
  entries: Entry[];
  text: string;
  resolve(): void;
  reject(error: Error): void;
}

export class Outbox extends EventEmitter<{ delivered: [id: string] }> {
  readonly #deps: OutboxDeps;
  readonly #log: Logger;
  readonly #timers: Timers;
  readonly #path: string;
  readonly #pending = new Map<string, Entry>();
  /** Ids being written, not yet durable: an enqueue of the same id again is not a second record. */
  readonly #writing = new Map<string, Promise<void>>();
  #liveBytes = 0;
  #fileBytes = 0;
  #file: FileHandle | undefined;
  #chain: Promise<void> = Promise.resolve();
  #batch: Waiter[] = [];
  #acks: string[] = [];
  #inflight = 0;
  #generation = 0;
  #retryTimer: unknown;
  #resendTimer: unknown;
  #resendAtMs = Number.POSITIVE_INFINITY;
  #started = false;
  #stopped = false;
  #wasFull = false;
  readonly #stats: OutboxStats = {
    enqueued: 0,
    delivered: 0,
    published: 0,
    resent: 0,
    refusedFull: 0,
    tornBytes: 0,
    corruptLines: 0,
    compactions: 0,
  };
  readonly #onConnected = (): void => {
    this.#generation += 1;
    this.#resetSending();
    this.#pump();
  };
  readonly #onDisconnected = (): void => {
    this.#generation += 1;
    this.#resetSending();
  };

  constructor(deps: OutboxDeps) {
    super();
    this.#deps = deps;
    this.#log = deps.log;
    this.#timers = deps.timers ?? systemTimers;
    this.#path = join(deps.dir, outboxFileName);
  }

  /** Records not yet acknowledged by the central service (including those being written). */
  get depth(): number {
    return this.#pending.size + this.#writing.size;
  }

  /** True from a refusal for lack of room until a record is accepted again. */
  get full(): boolean {
    return this.#wasFull;
  }

  get stats(): OutboxStats {
    return { ...this.#stats };
  }

  /** Ids of the pending records, oldest first. */
  pendingIds(): string[] {
    return [...this.#pending.keys()];
  }

  async start(): Promise<void> {
    if (this.#started) return;
    this.#started = true;
    await mkdir(this.#deps.dir, { recursive: true, mode: 0o700 });
    let text = '';
    try {
      text = await readFile(this.#path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    const parsed = parseLog(text);
    this.#stats.tornBytes = parsed.tornBytes;
    this.#stats.corruptLines = parsed.corruptLines;
    if (parsed.tornBytes > 0 || parsed.corruptLines > 0) {
      this.#log.warn(
        { tornBytes: parsed.tornBytes, corruptLines: parsed.corruptLines },
        'outbox had a torn or unreadable line; dropped (never acknowledged to its caller)',
      );
    }
    for (const line of parsed.pending) this.#add(line);
    await this.#compact();
    this.#deps.connection.on('connected', this.#onConnected);
    this.#deps.connection.on('disconnected', this.#onDisconnected);
    this.#log.info({ depth: this.#pending.size }, 'outbox started');
    this.#pump();
  }

  /**
   * Stores a record durably and queues it for publishing. Resolves with its id once it is on disk.
   * Rejects with `OutboxFullError` when full, or when the record is invalid or too large.
   */
  async enqueue<T extends object>(name: TopicName, payload: T & { id?: unknown }): Promise<string> {
    if (!this.#started || this.#stopped) throw new Error('outbox not running');
    const given = payload.id;
    if (given !== undefined && !RecordId.safeParse(given).success) {
      throw new Error('a record id must be a string of 1 to 128 characters');
    }
    const id = (given as string | undefined) ?? (this.#deps.newId ?? randomUUID)();
    if (this.#pending.has(id)) return id;
    const writing = this.#writing.get(id);
    if (writing) {
      await writing;
      return id;
    }
    const record: Record<string, unknown> = given === undefined ? { id, ...payload } : { ...payload };
    const line: PutLine = { op: 'put', id, name, payload: record };
    const text = putLine(line);
    const bytes = Buffer.byteLength(text);
    const maxRecordBytes = this.#deps.maxRecordBytes ?? 65_536;
    if (bytes > maxRecordBytes) throw new Error(`record of ${bytes} bytes exceeds ${maxRecordBytes}`);
    const maxRecords = this.#deps.maxRecords ?? 10_000;
    const maxBytes = this.#deps.maxBytes ?? 8 * 1024 * 1024;
    if (this.depth >= maxRecords || this.#liveBytes + bytes > maxBytes) {
      this.#stats.refusedFull += 1;
      if (!this.#wasFull) {
        this.#wasFull = true;
        this.#log.error(
          { depth: this.depth, liveBytes: this.#liveBytes },
          'outbox full: refusing new records',
        );
      }
      throw new OutboxFullError(`${this.depth} records, ${this.#liveBytes} bytes`);
    }
    this.#wasFull = false;
    const durable = new Promise<void>((resolve, reject) => {
      this.#batch.push({ entries: [newEntry(line, bytes)], text, resolve, reject });
    });
    this.#writing.set(id, durable);
    this.#liveBytes += bytes;
    this.#schedule(() => this.#flushBatch());
    try {
      await durable;
    } catch (error) {
      this.#liveBytes -= bytes;
      throw error;
    } finally {
      this.#writing.delete(id);
    }
    this.#stats.enqueued += 1;
    return id;
  }

  #add(line: PutLine): Entry {
    const entry = newEntry(line, Buffer.byteLength(putLine(line)));
    this.#pending.set(line.id, entry);
    this.#liveBytes += entry.bytes;
    return entry;
  }

  /** Runs file work one step at a time, in order. */
  #schedule(step: () => Promise<void>): void {
    this.#chain = this.#chain.then(step).catch((error: unknown) => {
      this.#log.error({ err: (error as Error).message }, 'outbox file write failed');
    });
  }

  async #flushBatch(): Promise<void> {
    const batch = this.#batch;
    this.#batch = [];
    const acks = this.#takeAcks();
    if (batch.length === 0 && acks.length === 0) return;
    const text = acks + batch.map((waiter) => waiter.text).join('');
    try {
      const file = await this.#openFile();
      await file.appendFile(text, 'utf8');
      if (batch.length > 0) await file.sync();
      this.#fileBytes += Buffer.byteLength(text);
    } catch (error) {
      for (const waiter of batch) waiter.reject(error as Error);
      return;
    }
    for (const waiter of batch) {
      for (const entry of waiter.entries) this.#pending.set(entry.line.id, entry);
      waiter.resolve();
    }
    this.#pump();
  }

  #takeAcks(): string {
    const text = this.#acks.join('');
    this.#acks = [];
    return text;
  }

  async #openFile(): Promise<FileHandle> {
    this.#file ??= await open(this.#path, 'a', 0o600);
    return this.#file;
  }

  /** Rewrites the file with only the pending records (atomically: old or new, never torn). */
  async #compact(): Promise<void> {
    await this.#file?.close();
    this.#file = undefined;
    this.#acks = [];
    const text = [...this.#pending.values()].map((entry) => putLine(entry.line)).join('');
    await writeFileAtomic(this.#path, text);
    this.#fileBytes = Buffer.byteLength(text);
    this.#stats.compactions += 1;
  }

  /** A new connection, or none: everything not acknowledged goes out again from the oldest. */
  #resetSending(): void {
    for (const entry of this.#pending.values()) entry.state = 'queued';
    this.#inflight = 0;
    if (this.#retryTimer) this.#timers.clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    this.#clearResendTimer();
  }

  #pump(): void {
    if (this.#stopped || !this.#deps.connection.connected) return;
    const window = this.#deps.inflight ?? 16;
    for (const entry of this.#pending.values()) {
      if (this.#inflight >= window) return;
      if (entry.state === 'queued') this.#send(entry);
    }
  }

  #send(entry: Entry): void {
    const generation = this.#generation;
    entry.state = 'sending';
    if (entry.publishes > 0) this.#stats.resent += 1;
    this.#inflight += 1;
    this.#deps.publish(entry.line.name, entry.line.payload).then(
      () => {
        // From an earlier connection: that one's in-flight count was reset, and the record re-queued.
        if (generation !== this.#generation) return;
        this.#inflight -= 1;
        this.#stats.published += 1;
        if (this.#pending.get(entry.line.id) === entry && entry.state === 'sending') {
          entry.state = 'sent';
          entry.publishes += 1;
          entry.dueMs = this.#now() + this.#resendDelayMs(entry.publishes - 1);
          this.#armResend(entry.dueMs);
        }
        this.#pump();
      },
      (error: Error) => {
        if (generation !== this.#generation) return;
        this.#inflight -= 1;
        if (entry.state === 'sending') entry.state = 'queued';
        this.#log.debug({ err: error.message, id: entry.line.id }, 'outbox publish failed; will retry');
        if (this.#deps.connection.connected && !this.#retryTimer && !this.#stopped) {
          this.#retryTimer = this.#timers.setTimeout(() => {
            this.#retryTimer = undefined;
            this.#pump();
          }, this.#deps.retryMs ?? 1000);
        }
      },
    );
  }

  #now(): number {
    return (this.#deps.now ?? performance.now.bind(performance))();
  }

  #resendDelayMs(resends: number): number {
    return backoffMs(resends, {
      initialMs: this.#deps.resendMs ?? 60_000,
      maxMs: this.#deps.maxResendMs ?? 1_800_000,
      ...(this.#deps.random ? { random: this.#deps.random } : {}),
    });
  }

  /** One timer for the earliest re-send: moved earlier when a sooner one comes, else left alone. */
  #armResend(atMs: number): void {
    if (this.#stopped || atMs >= this.#resendAtMs) return;
    this.#clearResendTimer();
    this.#resendAtMs = atMs;
    this.#resendTimer = this.#timers.setTimeout(() => this.#resendDue(), Math.max(0, atMs - this.#now()));
  }

  #clearResendTimer(): void {
    if (this.#resendTimer) this.#timers.clearTimeout(this.#resendTimer);
    this.#resendTimer = undefined;
    this.#resendAtMs = Number.POSITIVE_INFINITY;
  }

  #resendDue(): void {
    this.#resendTimer = undefined;
    this.#resendAtMs = Number.POSITIVE_INFINITY;
    if (this.#stopped || !this.#deps.connection.connected) return;
    const nowMs = this.#now();
    let due = 0;
    let nextMs = Number.POSITIVE_INFINITY;
    for (const entry of this.#pending.values()) {
      if (entry.state !== 'sent') continue;
      if (entry.dueMs <= nowMs) {
        entry.state = 'queued';
        due += 1;
      } else nextMs = Math.min(nextMs, entry.dueMs);
    }
    if (due > 0) {
      this.#log.info({ records: due }, 'outbox: re-sending records the central service has not acknowledged');
    }
    if (nextMs < Number.POSITIVE_INFINITY) this.#armResend(nextMs);
    this.#pump();
  }

  /**
   * The central service has these records (tk/<id>/ack): removes them for good. Unknown ids (already
   * acknowledged, or never ours) are ignored. Returns how many were removed.
   */
  acknowledge(ids: readonly string[]): number {
    let removed = 0;
    for (const id of ids) {
      const entry = this.#pending.get(id);
      if (!entry) continue;
      this.#pending.delete(id);
      this.#liveBytes -= entry.bytes;
      this.#stats.delivered += 1;
      removed += 1;
      if (this.#stopped) continue;
      this.#acks.push(ackLine(id));
      try {
        this.emit('delivered', id);
      } catch (error) {
        this.#log.error({ err: error }, 'outbox listener failed');
      }
    }
    if (removed > 0 && !this.#stopped && this.#acks.length === removed) {
      // The first acks since the last flush: schedule one; later ones join it.
      this.#schedule(async () => {
        await this.#flushBatch();
        if (this.#fileBytes > 65_536 && this.#fileBytes > 2 * this.#liveBytes) await this.#compact();
      });
    }
    return removed;
  }

  /** Stops publishing, finishes pending writes and closes the file; idempotent. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#deps.connection.off('connected', this.#onConnected);
    this.#deps.connection.off('disconnected', this.#onDisconnected);
    if (this.#retryTimer) this.#timers.clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    this.#clearResendTimer();
    if (!this.#started) return;
    this.#schedule(() => this.#flushBatch());
    await this.#chain;
    await this.#file?.close().catch(() => undefined);
    this.#file = undefined;
  }
}

function newEntry(line: PutLine, bytes: number): Entry {
  return { line, bytes, state: 'queued', publishes: 0, dueMs: 0 };
}
