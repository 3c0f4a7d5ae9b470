// The open-session journal: a look that is running has a file on disk, written (and fsynced) before
// the viewing LED goes on and removed after its session-end record is written. A crash or power cut
// mid-look leaves the file behind, so the next start finds the look that was never closed and can
// write its session-end record, with the end reason `interrupted` and the best known end time: the
// last heartbeat (updated every few seconds while the look runs), or the start if there was none.
import { mkdir, open, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import type { Logger } from '../log/index.js';
import { readJsonFile, writeFileAtomic } from '../state/index.js';
import { nameUuid } from './uuid.js';

/** The end reason of a session closed at the next start after a crash or power cut. */
export const interruptedEndReason = 'interrupted' as const;
export type InterruptedEndReason = typeof interruptedEndReason;

export const openSessionFileName = 'open-session.json';

const id = z.string().min(1).max(200);
// Bounded to the range of a JavaScript Date, so every value can be written as an ISO time.
const epochMs = z.number().int().nonnegative().max(8_640_000_000_000_000);

export const OpenSessionFile = z
  .object({
    sessionId: id,
    operatorId: id,
    requestId: id,
    /** When the look was granted (the session-end record's `startedAt`). */
    startedAtMs: epochMs,
    /** The latest time the service was known to be alive with the look running. */
    lastSeenMs: epochMs,
  })
  .strict();
export type OpenSessionFile = z.infer<typeof OpenSessionFile>;

export type OpenSession = Omit<OpenSessionFile, 'lastSeenMs'>;

export interface InterruptedSession extends OpenSessionFile {
  /** The best known end: the last heartbeat, never before the start. */
  endedAtMs: number;
  endReason: InterruptedEndReason;
}

export interface OpenSessionJournalDeps {
  /** The folder of the journal file, e.g. the state directory. */
  dir: string;
  log: Logger;
  /** Heartbeats closer together than this are kept in memory only; default 5 s. */
  heartbeatIntervalMs?: number;
}

export class OpenSessionJournal {
  readonly #deps: OpenSessionJournalDeps;
  readonly #path: string;
  readonly #log: Logger;
  #current: OpenSessionFile | undefined;
  #writtenSeenMs = 0;
  /** A session found at start whose session-end record the caller has not yet confirmed (close). */
  #recovered: string | undefined;
  #chain: Promise<void> = Promise.resolve();

  constructor(deps: OpenSessionJournalDeps) {
    this.#deps = deps;
    this.#path = join(deps.dir, openSessionFileName);
    this.#log = deps.log.child({ mod: 'audit' });
  }

  /** The session being journalled, if any. */
  get current(): OpenSession | undefined {
    if (!this.#current) return undefined;
    const { lastSeenMs: _lastSeen, ...session } = this.#current;
    return session;
  }

  /**
   * At start: the look a crash or power cut left open, if any. The file stays until close(sessionId),
   * to be called once its session-end record is written, so a crash during recovery recovers again.
   * A corrupt file is logged and moved aside (`open-session.json.corrupt`) for support.
   */
  async recover(): Promise<InterruptedSession | undefined> {
    await mkdir(this.#deps.dir, { recursive: true, mode: 0o700 });
    const result = await readJsonFile(this.#path, OpenSessionFile);
    if (result.status === 'missing') return undefined;
    if (result.status === 'corrupt') {
      this.#log.error(
        { detail: result.detail },
        'open-session journal corrupt; an interrupted look cannot be closed',
      );
      await rename(this.#path, `${this.#path}.corrupt`).catch(() => undefined);
      return undefined;
    }
    const session = result.value;
    this.#recovered = session.sessionId;
    const endedAtMs = Math.max(session.startedAtMs, session.lastSeenMs);
    this.#log.warn(
      {
        sessionId: session.sessionId,
        requestId: session.requestId,
        endedAt: new Date(endedAtMs).toISOString(),
      },
      'a look was interrupted by a crash or power cut',
    );
    return { ...session, endedAtMs, endReason: interruptedEndReason };
  }

  /**
   * Records a look as open; durable when the promise resolves, so light the LED only after it.
   * Rejects if the file cannot be written, if another look is open, or if a recovered look has not
   * been closed yet: its record would be lost.
   */
  async open(session: OpenSession): Promise<void> {
    const parsed = OpenSessionFile.omit({ lastSeenMs: true }).parse(session);
    if (this.#recovered !== undefined)
      throw new Error(`the interrupted session ${this.#recovered} has not been closed yet`);
    if (this.#current && this.#current.sessionId !== parsed.sessionId)
      throw new Error(`session ${this.#current.sessionId} is still open`);
    const entry: OpenSessionFile = { ...parsed, lastSeenMs: parsed.startedAtMs };
    this.#current = entry;
    this.#writtenSeenMs = entry.lastSeenMs;
    try {
      await this.#enqueue(async () => {
        await mkdir(this.#deps.dir, { recursive: true, mode: 0o700 });
        await writeFileAtomic(this.#path, `${JSON.stringify(entry)}\n`);
      });
    } catch (error) {
      if (this.#current === entry) this.#current = undefined;
      throw error;
    }
  }

  /**
   * The look is still running at `nowMs`. Cheap to call often: the file is rewritten only when the
   * time has moved at least the heartbeat interval since the last write. Never throws.
   */
  heartbeat(nowMs: number): void {
    const current = this.#current;
    if (!current || !Number.isFinite(nowMs) || nowMs <= current.lastSeenMs) return;
    current.lastSeenMs = Math.floor(nowMs);
    if (current.lastSeenMs - this.#writtenSeenMs < (this.#deps.heartbeatIntervalMs ?? 5000)) return;
    this.#writtenSeenMs = current.lastSeenMs;
    this.#enqueue(async () => {
      // Written as it is when the write runs; nothing if the look was closed meanwhile.
      if (this.#current !== current) return;
      await writeFileAtomic(this.#path, `${JSON.stringify(current)}\n`);
    }).catch((error: unknown) => {
      this.#log.warn({ err: error, sessionId: current.sessionId }, 'cannot write the look heartbeat');
    });
  }

  /**
   * The look's session-end record is written: forget it. Durable when the promise resolves; for the
   * running look or the one recover() returned. Closing a session that is neither does nothing.
   */
  async close(sessionId: string): Promise<void> {
    const isCurrent = this.#current?.sessionId === sessionId;
    const isRecovered = this.#recovered === sessionId;
    if (!isCurrent && !isRecovered) {
      this.#log.debug({ sessionId }, 'close of a session that is not open');
      return;
    }
    if (isCurrent) this.#current = undefined;
    await this.#enqueue(async () => {
      await unlink(this.#path).catch((error: NodeJS.ErrnoException) => {
        if (error.code !== 'ENOENT') throw error;
      });
      // The removal is durable only once the directory entry is on disk.
      const directory = await open(this.#deps.dir, 'r');
      try {
        await directory.sync();
      } finally {
        await directory.close();
      }
    });
    if (isRecovered) this.#recovered = undefined;
  }

  /** Resolves once the writes already started have finished (whether or not they succeeded). */
  async settled(): Promise<void> {
    await this.#chain;
  }

  /**
   * Waits for pending writes. A look still open stays on disk: a stop without close() is an
   * interruption too, and the next start closes it. Idempotent; never throws.
   */
  async stop(): Promise<void> {
    await this.settled();
  }

  // One file operation at a time, in call order: a heartbeat can never re-create a closed look's file.
  #enqueue(operation: () => Promise<void>): Promise<void> {
    const run = this.#chain.then(operation);
    this.#chain = run.catch(() => undefined);
    return run;
  }
}

/**
 * The session-end audit entry for a recovered look, with a name-based id so that a record made again
 * (a crash between the record and close()) is deduplicated by the receiver. Pass `entry` and
 * `options` to AuditTrail.record once `interrupted` is in the end-reason list.
 */
export function interruptedSessionEnd(session: InterruptedSession): {
  entry: {
    kind: 'session-end';
    requestId: string;
    sessionId: string;
    operatorId: string;
    startedAt: string;
    durationMs: number;
    endReason: InterruptedEndReason;
  };
  options: { atMs: number; id: string };
} {
  return {
    entry: {
      kind: 'session-end',
      requestId: session.requestId,
      sessionId: session.sessionId,
      operatorId: session.operatorId,
      startedAt: new Date(session.startedAtMs).toISOString(),
      durationMs: Math.max(0, session.endedAtMs - session.startedAtMs),
      endReason: interruptedEndReason,
    },
    options: { atMs: session.endedAtMs, id: nameUuid(`session-end:${session.sessionId}`) },
  };
}
