// A look's durable beginning and end: before the viewing LED goes on, the look is written to the
// open-session journal; when it ends, its session-end record is written to the audit trail and only
// then is the journal entry removed. A crash or power cut in between leaves the journal entry, and the
// next start writes the session-end record with the end reason `interrupted` (recover). The
// session-end record has a name-based id, so one written twice (a crash after the record, before the
// removal) is deduplicated by the receiver. A new look's entry waits for the previous look's end to be
// recorded, so the journal never forgets a look whose end is not yet on disk.
import type { Logger } from '../log/index.js';
import type { ViewEndedEvent } from '../supervisor/index.js';
import {
  type InterruptedSession,
  interruptedSessionEnd,
  type OpenSession,
  type OpenSessionJournal,
} from './open-session.js';
import type { AuditTrail } from './trail.js';
import { nameUuid } from './uuid.js';

export const sessionEndId = (sessionId: string): string => nameUuid(`session-end:${sessionId}`);

export class LookJournal {
  readonly #journal: OpenSessionJournal;
  readonly #trail: Pick<AuditTrail, 'record'>;
  readonly #log: Logger;
  #ending: Promise<void> = Promise.resolve();

  constructor(deps: { journal: OpenSessionJournal; trail: Pick<AuditTrail, 'record'>; log: Logger }) {
    this.#journal = deps.journal;
    this.#trail = deps.trail;
    this.#log = deps.log;
  }

  /** Durable when it resolves; rejects when the look cannot be recorded (then no LED, no look). */
  async open(session: OpenSession): Promise<void> {
    await this.#ending;
    await this.#journal.open(session);
  }

  heartbeat(nowMs: number): void {
    this.#journal.heartbeat(nowMs);
  }

  /** Records the end of a look, then forgets it. Never rejects; failures are logged. */
  end(ended: ViewEndedEvent): Promise<void> {
    const { sessionId } = ended;
    this.#ending = this.#ending
      .then(async () => {
        await this.#trail.record(
          {
            kind: 'session-end',
            requestId: ended.requestId,
            sessionId,
            operatorId: ended.operatorId,
            startedAt: new Date(ended.startedAtMs).toISOString(),
            durationMs: Math.max(0, Math.round(ended.durationMs)),
            endReason: ended.reason,
            endedBy: ended.endedBy,
            ...(Object.keys(ended.refusedSignals).length > 0 ? { refusedSignals: ended.refusedSignals } : {}),
          },
          { atMs: ended.startedAtMs + ended.durationMs, id: sessionEndId(sessionId) },
        );
        await this.#journal.close(sessionId);
      })
      .catch((error: unknown) =>
        this.#log.error({ err: error, sessionId }, 'the end of a look was not recorded'),
      );
    return this.#ending;
  }

  /** At start: the look a crash or power cut left open, recorded as `interrupted` and forgotten. */
  async recover(): Promise<InterruptedSession | undefined> {
    const interrupted = await this.#journal.recover();
    if (!interrupted) return undefined;
    const { entry, options } = interruptedSessionEnd(interrupted);
    await this.#trail.record({ ...entry, endedBy: 'device' }, options);
    await this.#journal.close(interrupted.sessionId);
    return interrupted;
  }

  async stop(): Promise<void> {
    await this.#ending;
    await this.#journal.stop();
  }
}
