// Turns the supervisor's events into audit records: one per request (granted or refused), one per
// session end (how it ended and on whose word), one for the first refused answer or hang-up of each
// kind in a look (someone tried to take it over or end it), and every view start noted for the window
// watch. Refused candidates are only counted, in the session-end record: they may come by the thousand.
import type { DecisionEvent, SignalRefusedEvent, Supervisor, ViewEndedEvent } from '../supervisor/index.js';
import { type LookJournal, sessionEndId } from './look-journal.js';
import type { AuditTrail } from './trail.js';
import type { WindowWatch } from './window-watch.js';

/** Subscribes to the supervisor; returns a function that unsubscribes. */
export function attachAudit(
  supervisor: Supervisor,
  trail: Pick<AuditTrail, 'record'>,
  watch?: Pick<WindowWatch, 'noteLook'>,
  journal?: Pick<LookJournal, 'end'>,
): () => void {
  // The trail logs its own failures; a listener must never throw or leave a rejection unhandled.
  const ignore = () => undefined;
  const onDecision = ({ requestId, decision, sessionId, operatorId, atMs }: DecisionEvent) => {
    const entry = decision.granted
      ? {
          kind: 'request' as const,
          requestId,
          ...(sessionId !== undefined ? { sessionId } : {}),
          ...(operatorId !== undefined ? { operatorId } : {}),
          decision: 'granted' as const,
        }
      : { kind: 'request' as const, requestId, decision: 'refused' as const, reason: decision.reason };
    trail.record(entry, { atMs }).catch(ignore);
  };
  const onEnded = (ended: ViewEndedEvent) => {
    // With a journal, the end is recorded there (then the journal entry is removed).
    if (journal) void journal.end(ended);
    else recordEnd(ended);
  };
  const recordEnd = ({
    sessionId,
    operatorId,
    requestId,
    reason,
    endedBy,
    refusedSignals,
    startedAtMs,
    durationMs,
  }: ViewEndedEvent) => {
    trail
      .record(
        {
          kind: 'session-end',
          requestId,
          sessionId,
          operatorId,
          startedAt: new Date(startedAtMs).toISOString(),
          durationMs: Math.max(0, Math.round(durationMs)),
          endReason: reason,
          endedBy,
          ...(Object.keys(refusedSignals).length > 0 ? { refusedSignals } : {}),
        },
        { atMs: startedAtMs + durationMs, id: sessionEndId(sessionId) },
      )
      .catch(ignore);
  };
  const onRefused = ({
    sessionId,
    operatorId,
    requestId,
    signal,
    reason,
    first,
    atMs,
  }: SignalRefusedEvent) => {
    if (!first || signal === 'candidate') return;
    trail
      .record({ kind: 'signal-refused', requestId, sessionId, operatorId, signal, reason }, { atMs })
      .catch(ignore);
  };
  const onStarted = ({ atMs }: { atMs: number }) => watch?.noteLook(atMs);
  supervisor.on('decision', onDecision);
  supervisor.on('signalRefused', onRefused);
  supervisor.on('viewEnded', onEnded);
  supervisor.on('viewStarted', onStarted);
  return () => {
    supervisor.off('decision', onDecision);
    supervisor.off('signalRefused', onRefused);
    supervisor.off('viewEnded', onEnded);
    supervisor.off('viewStarted', onStarted);
  };
}
