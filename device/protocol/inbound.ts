// Reading what arrives on the device's inbound topics: a pure function from topic and payload to what
// it means, so the service only acts on messages that match the protocol. Size is checked before
// anything is parsed; nothing here touches state.
import { isoAt, schemaVersion } from './common.js';
import { ScheduleMessage, type ViewDecision, ViewInbound } from './messages.js';

export type Inbound =
  | { kind: 'schedule'; token: string }
  /** An empty retained message clears the topic; it is not a schedule. */
  | { kind: 'schedule-cleared' }
  | { kind: 'view'; message: ViewInbound }
  | {
      kind: 'rejected';
      detail: string;
      /** A schedule message that is not a schedule: the central service is told (rate-limited). */
      badSchedule: boolean;
      /** A view request that names who is asking gets a `malformed` refusal. */
      reply: ViewDecision | undefined;
    };

export function parseInbound(
  name: 'schedule' | 'viewRequest',
  payload: Buffer,
  maxBytes: number,
  nowMs: number,
): Inbound {
  const rejected = (detail: string, raw?: unknown): Inbound => ({
    kind: 'rejected',
    detail,
    badSchedule: name === 'schedule',
    reply: name === 'viewRequest' ? malformedReply(raw, nowMs) : undefined,
  });
  if (payload.length > maxBytes)
    return {
      kind: 'rejected',
      detail: `${payload.length} bytes is too large`,
      badSchedule: false,
      reply: undefined,
    };
  if (payload.length === 0 && name === 'schedule') return { kind: 'schedule-cleared' };
  let raw: unknown;
  try {
    raw = JSON.parse(payload.toString('utf8'));
  } catch {
    return rejected('not JSON');
  }
  if (name === 'schedule') {
    const parsed = ScheduleMessage.safeParse(raw);
    return parsed.success
      ? { kind: 'schedule', token: parsed.data.token }
      : rejected(firstIssue(parsed.error));
  }
  const parsed = ViewInbound.safeParse(raw);
  return parsed.success ? { kind: 'view', message: parsed.data } : rejected(firstIssue(parsed.error), raw);
}

function firstIssue(error: { issues: Array<{ message: string }> }): string {
  return error.issues[0]?.message ?? 'invalid';
}

/** Tells the operator why, when the request says who is asking. */
function malformedReply(raw: unknown, nowMs: number): ViewDecision | undefined {
  const requestId = (raw as { requestId?: unknown } | null | undefined)?.requestId;
  if (typeof requestId !== 'string' || requestId.length === 0 || requestId.length > 128) return undefined;
  return {
    schemaVersion,
    type: 'decision',
    requestId,
    decision: 'refused',
    reason: 'malformed',
    message: 'the request does not match the protocol',
    at: isoAt.parse(new Date(nowMs).toISOString()),
  };
}
