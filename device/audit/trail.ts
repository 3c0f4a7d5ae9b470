// The audit trail: every record is appended to the day's local file and fsynced before `record`
// resolves, then handed to the outbox that publishes it. A small cursor file remembers how far the
// outbox has taken the records, so a record written just before a crash is handed over again after
// the restart, under the same id (the receiver deduplicates by id).
//
// Appends that arrive while a write is in flight wait and go out together in the next write, so a
// burst costs one fsync. The file is named by the UTC date of writing and never goes back to an
// earlier day's file, so "the files in name order, each read to its end" is the order of writing.
import { randomUUID } from 'node:crypto';
import { type FileHandle, mkdir, open, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import type { Timers } from '../clock/index.js';
import type { Logger } from '../log/index.js';
import { AuditRecord, schemaVersion } from '../protocol/index.js';
import { readJsonFile, writeFileAtomic } from '../state/index.js';
import { auditFileName, dayMs, listAuditFiles, readLines } from './files.js';

/** Where records go after the local file: the persisted outbox, or any adapter with its method. */
export interface AuditOutbox {
  enqueue(name: 'audit', payload: AuditRecord): Promise<unknown>;
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** What a caller says; the trail adds schemaVersion, id, at and deviceId. */
export type AuditEntry = DistributiveOmit<AuditRecord, 'schemaVersion' | 'id' | 'at' | 'deviceId'>;

export interface RecordOptions {
  /** When it happened; defaults to now(). */
  atMs?: number;
  /** A name-based id for a record that may be made again (see uuid.ts); a fresh UUID otherwise. */
  id?: string;
}

export interface AuditTrailDeps {
  /** The trail's own folder, e.g. `<stateDir>/audit`. */
  dir: string;
  deviceId: string;
  now(): number;
  log: Logger;
  /** Files whose every record is older than this are deleted, at start and daily. */
  retentionDays: number;
  /**
   * Cap on the folder's audit files, in bytes (default: none). Over it, refusal records (refused
   * requests and `refusals` counts) are removed from the oldest files first, then the oldest files go
   * whole; the file being written is never touched. Checked at start, daily and after every
   * twentieth of the cap written.
   */
  maxBytes?: number;
  outbox: AuditOutbox;
  timers: Timers;
  /** Wait before handing a refused record to the outbox again. */
  retryMs?: number;
}

const HandoffCursor = z.object({ file: z.string(), offset: z.number().int().nonnegative() }).strict();
type HandoffCursor = z.infer<typeof HandoffCursor>;
const cursorFile = 'handoff.json';

interface Pending {
  record: AuditRecord;
  line: Buffer;
  resolve(record: AuditRecord): void;
  reject(error: Error): void;
}

interface Handoff {
  record: AuditRecord;
  /** Where the record's line ends: the cursor moves here once the outbox has it. */
  position: HandoffCursor;
  state: 'waiting' | 'sending' | 'done';
}

interface OpenFile {
  name: string;
  handle: FileHandle;
  size: number;
  created: boolean;
}

export class AuditTrail {
  readonly #deps: AuditTrailDeps;
  readonly #log: Logger;
  #queue: Pending[] = [];
  #flushing: Promise<void> | undefined;
  #file: OpenFile | undefined;
  #handoffs: Handoff[] = [];
  #cursor: HandoffCursor | undefined;
  #cursorDirty = false;
  #cursorWriting: Promise<void> | undefined;
  #starting: Promise<void> | undefined;
  #stopping: Promise<void> | undefined;
  #pruneTimer: unknown;
  #retryTimer: unknown;
  #writtenSincePrune = 0;
  #pruning: Promise<number> | undefined;

  constructor(deps: AuditTrailDeps) {
    this.#deps = deps;
    this.#log = deps.log;
  }

  get dir(): string {
    return this.#deps.dir;
  }

  /** Records handed to the outbox and not yet taken by it. */
  get pendingHandoffs(): number {
    return this.#handoffs.filter((handoff) => handoff.state !== 'done').length;
  }

  /** Deletes expired files and hands the outbox whatever it had not taken before the last stop. */
  start(): Promise<void> {
    this.#starting ??= this.#start();
    return this.#starting;
  }

  async #start(): Promise<void> {
    await mkdir(this.#deps.dir, { recursive: true, mode: 0o700 });
    // The cursor first: the byte cap rewrites only files the outbox has already taken.
    await this.#loadCursor();
    await this.prune();
    await this.#resume();
    if (this.#stopping) return;
    this.#pruneTimer = this.#deps.timers.setInterval(() => {
      this.prune().catch((error: Error) => this.#log.error({ err: error }, 'audit retention failed'));
    }, dayMs);
  }

  /** Waits for the records being written; later calls to `record` reject. Idempotent. */
  stop(): Promise<void> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  async #stop(): Promise<void> {
    this.#deps.timers.clearInterval(this.#pruneTimer);
    this.#deps.timers.clearTimeout(this.#retryTimer);
    await this.#starting?.catch(() => undefined);
    while (this.#flushing) await this.#flushing;
    while (this.#cursorWriting) await this.#cursorWriting;
    await this.#pruning?.catch(() => undefined);
    await this.#closeFile();
  }

  /**
   * Appends one record, durable on disk when this resolves, and hands it to the outbox. Rejects if the
   * record breaks the schema or cannot be written; the failure is logged here.
   */
  async record(entry: AuditEntry, options: RecordOptions = {}): Promise<AuditRecord> {
    if (this.#stopping) throw new Error('the audit trail is stopped');
    const parsed = AuditRecord.safeParse({
      schemaVersion,
      id: options.id ?? randomUUID(),
      at: new Date(options.atMs ?? this.#deps.now()).toISOString(),
      deviceId: this.#deps.deviceId,
      ...entry,
    });
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const detail = `${issue?.path.join('.') || '(top level)'}: ${issue?.message}`;
      this.#log.error({ kind: entry.kind, detail }, 'audit record does not match its schema');
      throw new Error(`invalid audit record: ${detail}`);
    }
    const record = parsed.data;
    try {
      return await new Promise<AuditRecord>((resolve, reject) => {
        this.#queue.push({ record, line: Buffer.from(`${JSON.stringify(record)}\n`), resolve, reject });
        this.#kick();
      });
    } catch (error) {
      this.#log.error({ err: error, id: record.id, kind: record.kind }, 'audit record not written');
      throw error;
    }
  }

  /**
   * Deletes the files whose every record is older than the retention period, then enforces the byte
   * cap. Resolves with the number of files deleted or rewritten. One prune runs at a time.
   */
  prune(): Promise<number> {
    this.#pruning ??= this.#prune().finally(() => {
      this.#pruning = undefined;
    });
    return this.#pruning;
  }

  async #prune(): Promise<number> {
    this.#writtenSincePrune = 0;
    return (await this.#pruneExpired()) + (await this.#pruneToCap());
  }

  async #pruneExpired(): Promise<number> {
    const cutoffMs = this.#deps.now() - this.#deps.retentionDays * dayMs;
    let deleted = 0;
    for (const file of await listAuditFiles(this.#deps.dir)) {
      if (file.dayMs + dayMs > cutoffMs || file.name === this.#file?.name) continue;
      try {
        await unlink(join(this.#deps.dir, file.name));
        deleted += 1;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      }
    }
    if (deleted > 0) {
      this.#log.info({ deleted, retentionDays: this.#deps.retentionDays }, 'old audit files deleted');
    }
    return deleted;
  }

  /**
   * Over the cap, what goes first: refusal records in the oldest files the outbox has already taken
   * (rewritten atomically, look records kept), then the oldest files whole. Never the newest file.
   */
  async #pruneToCap(): Promise<number> {
    const maxBytes = this.#deps.maxBytes;
    if (maxBytes === undefined) return 0;
    const dir = this.#deps.dir;
    const files: Array<{ name: string; size: number }> = [];
    for (const file of await listAuditFiles(dir)) {
      try {
        files.push({ name: file.name, size: (await stat(join(dir, file.name))).size });
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      }
    }
    let total = files.reduce((sum, file) => sum + file.size, 0);
    if (total <= maxBytes) return 0;
    // The newest file is the one being (or about to be) written: it is never rewritten or deleted.
    const newest = files.at(-1)?.name;
    const old = files.filter((file) => file.name !== this.#file?.name && file.name !== newest);
    let changed = 0;
    // Files before the hand-off cursor's are read by nobody but the `audit` command: safe to rewrite.
    const handedOff = old.filter((file) => this.#cursor !== undefined && file.name < this.#cursor.file);
    for (const file of handedOff) {
      if (total <= maxBytes) break;
      const path = join(dir, file.name);
      const lines = await readLines(path);
      const kept = lines.flatMap((line) =>
        line.ok && !isRefusal(line.record) ? [`${JSON.stringify(line.record)}\n`] : [],
      );
      if (kept.length === lines.length) continue;
      const text = kept.join('');
      await writeFileAtomic(path, text);
      total -= file.size - Buffer.byteLength(text);
      file.size = Buffer.byteLength(text);
      changed += 1;
    }
    let deleted = 0;
    for (const file of old) {
      if (total <= maxBytes) break;
      try {
        await unlink(join(dir, file.name));
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      }
      total -= file.size;
      deleted += 1;
    }
    this.#log.warn({ rewritten: changed, deleted, maxBytes, bytes: total }, 'audit folder over its byte cap');
    return changed + deleted;
  }

  // ── Writing ────────────────────────────────────────────────────────────────────────────────

  #kick(): void {
    if (this.#flushing) return;
    this.#flushing = this.#flush().finally(() => {
      this.#flushing = undefined;
      if (this.#queue.length > 0) this.#kick();
    });
  }

  async #flush(): Promise<void> {
    // Records written before the resume has read the files would be handed over out of order.
    await this.#starting?.catch(() => undefined);
    while (this.#queue.length > 0) {
      const batch = this.#queue.splice(0);
      let positions: HandoffCursor[];
      try {
        const file = await this.#openFor(this.#deps.now());
        await file.handle.writeFile(Buffer.concat(batch.map((pending) => pending.line)));
        await file.handle.sync();
        if (file.created) {
          await syncDir(this.#deps.dir);
          file.created = false;
        }
        positions = batch.map((pending) => {
          file.size += pending.line.length;
          this.#writtenSincePrune += pending.line.length;
          return { file: file.name, offset: file.size };
        });
        const maxBytes = this.#deps.maxBytes;
        if (maxBytes !== undefined && this.#writtenSincePrune > maxBytes / 20 && !this.#stopping) {
          this.prune().catch((error: Error) => this.#log.error({ err: error }, 'audit cap check failed'));
        }
      } catch (error) {
        // Reopened on the next write, which also seals a partly written line with a newline.
        await this.#closeFile();
        for (const pending of batch) pending.reject(error as Error);
        continue;
      }
      batch.forEach((pending, index) => {
        const position = positions[index];
        if (position) this.#handOff({ record: pending.record, position, state: 'waiting' });
        pending.resolve(pending.record);
      });
    }
  }

  async #openFor(nowMs: number): Promise<OpenFile> {
    const name = auditFileName(nowMs);
    const current = this.#file;
    // A clock stepped back keeps writing to the newer file: file order stays writing order.
    if (current && name <= current.name) return current;
    await this.#closeFile();
    await mkdir(this.#deps.dir, { recursive: true, mode: 0o700 });
    const handle = await open(join(this.#deps.dir, name), 'a+', 0o600);
    try {
      let size = (await handle.stat()).size;
      if (size > 0) {
        const last = Buffer.alloc(1);
        await handle.read(last, 0, 1, size - 1);
        if (last[0] !== 0x0a) {
          // A line torn by a power cut: end it, so it cannot swallow the next record.
          await handle.writeFile('\n');
          size += 1;
        }
      }
      this.#file = { name, handle, size, created: size === 0 };
      return this.#file;
    } catch (error) {
      await handle.close().catch(() => undefined);
      throw error;
    }
  }

  async #closeFile(): Promise<void> {
    const file = this.#file;
    this.#file = undefined;
    await file?.handle.close().catch(() => undefined);
  }

  // ── Handing records to the outbox ──────────────────────────────────────────────────────────

  /** Queues again what the outbox had not taken when the trail last stopped (or the power went). */
  async #loadCursor(): Promise<void> {
    const stored = await readJsonFile(join(this.#deps.dir, cursorFile), HandoffCursor);
    if (stored.status === 'corrupt') {
      this.#log.warn(
        { detail: stored.detail },
        'audit hand-off cursor unreadable: handing over every record',
      );
    }
    this.#cursor = stored.status === 'ok' ? stored.value : undefined;
  }

  async #resume(): Promise<void> {
    const dir = this.#deps.dir;
    const cursor = this.#cursor;
    let skipped = 0;
    for (const file of await listAuditFiles(dir)) {
      if (cursor && file.name < cursor.file) continue;
      const fromOffset = cursor && file.name === cursor.file ? cursor.offset : 0;
      for (const line of await readLines(join(dir, file.name), fromOffset)) {
        if (!line.ok) {
          skipped += 1;
          continue;
        }
        this.#handoffs.push({
          record: line.record,
          position: { file: file.name, offset: line.endOffset },
          state: 'waiting',
        });
      }
    }
    if (skipped > 0) this.#log.warn({ skipped }, 'unreadable audit lines skipped');
    if (this.#handoffs.length > 0) {
      this.#log.info({ records: this.#handoffs.length }, 'handing earlier audit records to the outbox');
    }
    for (const handoff of this.#handoffs) this.#send(handoff);
  }

  #handOff(handoff: Handoff): void {
    this.#handoffs.push(handoff);
    this.#send(handoff);
  }

  #send(handoff: Handoff): void {
    handoff.state = 'sending';
    let sent: Promise<unknown>;
    try {
      sent = this.#deps.outbox.enqueue('audit', handoff.record);
    } catch (error) {
      sent = Promise.reject(error);
    }
    sent.then(
      () => {
        handoff.state = 'done';
        this.#advance();
      },
      (error: unknown) => {
        handoff.state = 'waiting';
        this.#log.warn(
          { err: (error as Error)?.message, id: handoff.record.id },
          'outbox did not take an audit record; will retry',
        );
        this.#scheduleRetry();
      },
    );
  }

  #scheduleRetry(): void {
    if (this.#retryTimer !== undefined || this.#stopping) return;
    this.#retryTimer = this.#deps.timers.setTimeout(() => {
      this.#retryTimer = undefined;
      if (this.#stopping) return;
      for (const handoff of this.#handoffs) if (handoff.state === 'waiting') this.#send(handoff);
    }, this.#deps.retryMs ?? 60_000);
  }

  /** Moves the cursor over the records the outbox has taken, in file order. */
  #advance(): void {
    let moved = false;
    while (this.#handoffs[0]?.state === 'done') {
      const handoff = this.#handoffs.shift();
      if (handoff) this.#cursor = handoff.position;
      moved = true;
    }
    if (!moved || this.#stopping) return;
    this.#cursorDirty = true;
    if (this.#cursorWriting) return;
    this.#cursorWriting = this.#writeCursor().finally(() => {
      this.#cursorWriting = undefined;
    });
  }

  async #writeCursor(): Promise<void> {
    while (this.#cursorDirty && this.#cursor) {
      this.#cursorDirty = false;
      try {
        await writeFileAtomic(join(this.#deps.dir, cursorFile), JSON.stringify(this.#cursor));
      } catch (error) {
        // Not fatal: records after the stored cursor are handed over again (same ids) after a restart.
        this.#log.warn({ err: error }, 'cannot store the audit hand-off cursor');
        return;
      }
    }
  }
}

async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Refused requests and their counts: the records that go first when the folder is over its cap. */
function isRefusal(record: AuditRecord): boolean {
  return record.kind === 'refusals' || (record.kind === 'request' && record.decision === 'refused');
}
