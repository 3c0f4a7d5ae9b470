// What the device tells the world, as pure mappings from what happened to the protocol's messages, so
// the service only chooses where each message goes (persisted outbox or the live link).
import { schemaVersion } from './common.js';
import type { DeviceEvent, ViewDecision, ViewEnded } from './messages.js';
import type { EndedBy, EndReason, RefusalReason, ScheduleRejection } from './reasons.js';

const iso = (ms: number): string => new Date(ms).toISOString();

export function decisionMessage(decision: {
  requestId: string;
  sessionId: string | undefined;
  refusal: { reason: RefusalReason; detail: string } | undefined;
  atMs: number;
}): ViewDecision {
  return {
    schemaVersion,
    type: 'decision',
    requestId: decision.requestId,
    ...(decision.sessionId !== undefined ? { sessionId: decision.sessionId } : {}),
    decision: decision.refusal ? 'refused' : 'granted',
    ...(decision.refusal
      ? { reason: decision.refusal.reason, message: decision.refusal.detail.slice(0, 300) }
      : {}),
    at: iso(decision.atMs),
  };
}

export function endedMessage(ended: {
  sessionId: string;
  reason: EndReason;
  endedBy: EndedBy;
  startedAtMs: number;
  durationMs: number;
}): ViewEnded {
  return {
    schemaVersion,
    type: 'ended',
    sessionId: ended.sessionId,
    reason: ended.reason,
    endedBy: ended.endedBy,
    durationMs: Math.max(0, Math.round(ended.durationMs)),
    at: iso(ended.startedAtMs + ended.durationMs),
  };
}

export function privacyEvent(
  privacyOn: boolean,
  source: 'button' | 'startup-safe-default',
  atMs: number,
): DeviceEvent {
  return { schemaVersion, type: 'privacy', privacyOn, source, at: iso(atMs) };
}

export function faultEvent(
  fault: 'led' | 'clock' | 'state' | 'camera',
  active: boolean,
  detail: string,
  atMs: number,
): DeviceEvent {
  return { schemaVersion, type: 'fault', fault, active, detail: detail.slice(0, 300), at: iso(atMs) };
}

export function scheduleEvent(outcome: {
  accepted: boolean;
  version?: number | undefined;
  reason?: ScheduleRejection | undefined;
  atMs: number;
}): DeviceEvent {
  return {
    schemaVersion,
    type: 'schedule',
    accepted: outcome.accepted,
    ...(outcome.version !== undefined ? { version: outcome.version } : {}),
    ...(outcome.reason !== undefined ? { reason: outcome.reason } : {}),
    at: iso(outcome.atMs),
  };
}
