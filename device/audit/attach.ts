// Turns the supervisor's events into audit records: one per request (granted or refused), one per
// session end (how it ended and on whose word), one for the first refused answer or hang-up of each
// kind in a look (someone tried to take it over or end it), and every view start noted for the window
// watch. Refused candidates are only counted, in the session-end record: they may come by the thousand.
//
// Refused requests are aggregated, so that a flood cannot fill the card: the first refusal of a reason
// gets its own `request` record and opens an interval (audit.refusalIntervalS, 60 s); the further
// refusals of that reason in it are only counted, and one `refusals` record with the count is written
// when the interval ends (or at detach, on a clean stop). So a reason costs at most two records per
// interval, whatever the rate. Every granted request keeps its own records.
import { systemTimers, type Timers } from '../clock/index.js';
import type { RefusalReason } from '../protocol/index.js';
import type { DecisionEvent, SignalRefusedEvent, Supervisor, ViewEndedEvent } from '../supervisor/index.js';
import { type LookJournal, sessionEndId } from './look-journal.js';
import type { AuditTrail } from './trail.js';
import type { WindowWatch } from './window-watch.js';

export interface AggregateOptions {
  timers: Timers;
  /** Length of a refusal interval; default 60 s. */
  intervalMs: number;
}

interface Counted {
  count: number;
  fromMs: number;
  toMs: number;
  timer: unknown;
}

/**
 * Subscribes to the supervisor; returns a function that unsubscribes and records the refusals counted
 * so far (call it before the trail stops).
 */
export function attachAudit(
  supervisor: Supervisor,
  trail: Pick<AuditTrail, 'record'>,
  watch?: Pick<WindowWatch, 'noteLook'>,
  journal?: Pick<LookJournal, 'end'>,
  aggregate: AggregateOptions = { timers: systemTimers, intervalMs: 60_000 },
): () => void {
  // The trail logs its own failures; a listener must never throw or leave a rejection unhandled.
  const ignore = () => undefined;
  const intervals = new Map<RefusalReason, Counted>();
  const closeInterval = (reason: RefusalReason) => {
    const counted = intervals.get(reason);
    if (!counted) return;
    intervals.delete(reason);
    aggregate.timers.clearTimeout(counted.timer);
    if (counted.count === 0) return;
    trail
      .record(
        {
          kind: 'refusals',
          reason,
          count: counted.count,
          from: new Date(counted.fromMs).toISOString(),
          to: new Date(counted.toMs).toISOString(),
        },
        { atMs: counted.toMs },
      )
      .catch(ignore);
  };
  const onDecision = ({ requestId, decision, sessionId, operatorId, retry, atMs }: DecisionEvent) => {
    // A retry is answered with its look's decision, which has its own record already.
    if (retry) return;
    if (decision.granted) {
      const entry = {
        kind: 'request' as const,
        requestId,
        ...(sessionId !== undefined ? { sessionId } : {}),
        ...(operatorId !== undefined ? { operatorId } : {}),
        decision: 'granted' as const,
      };
      trail.record(entry, { atMs }).catch(ignore);
      return;
    }
    const { reason } = decision;
    const counted = intervals.get(reason);
    if (counted) {
      if (counted.count === 0) counted.fromMs = atMs;
      counted.count += 1;
      counted.toMs = Math.max(counted.toMs, atMs);
      return;
    }
    intervals.set(reason, {
      count: 0,
      fromMs: atMs,
      toMs: atMs,
      timer: aggregate.timers.setTimeout(() => closeInterval(reason), aggregate.intervalMs),
    });
    trail.record({ kind: 'request', requestId, decision: 'refused', reason }, { atMs }).catch(ignore);
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
    for (const reason of [...intervals.keys()]) closeInterval(reason);
    supervisor.off('decision', onDecision);
    supervisor.off('signalRefused', onRefused);
    supervisor.off('viewEnded', onEnded);
    supervisor.off('viewStarted', onStarted);
  };
}
