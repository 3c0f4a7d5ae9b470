// Audit records: one per look request (granted or refused), one per session end, one for the first
// refused answer or hang-up of each kind in a look (someone tried to take it over or end it), and one
// per agreed window in which nobody looked. Kept on the device (daily JSON-lines files) and published on
// tk/<id>/audit. They say who looked, when and for how long; never a token, key or SDP.
import { z } from 'zod';
import { isoAt, shortId, version } from './common.js';
import { EndedBy, EndReason, RefusalReason, SignalRefusal } from './reasons.js';
import { DeviceId } from './tokens.js';

const common = {
  schemaVersion: version,
  id: z.uuid().describe('made once when the record is created and never re-issued: deduplicate by it'),
  at: isoAt.describe('when it happened: the decision, the end of the view, or when the miss was found'),
  deviceId: DeviceId,
};

const RequestRecord = z
  .object({
    ...common,
    kind: z.literal('request'),
    requestId: shortId.describe("the requester's id, as in the request"),
    sessionId: shortId.optional().describe("the grant's sid; present when granted"),
    operatorId: shortId.optional().describe("the grant's op; present when granted"),
    decision: z.enum(['granted', 'refused']),
    reason: RefusalReason.optional().describe('present when refused'),
  })
  .strict();

const SessionEndRecord = z
  .object({
    ...common,
    kind: z.literal('session-end'),
    requestId: shortId,
    sessionId: shortId,
    operatorId: shortId,
    startedAt: isoAt.describe('when the request was granted'),
    durationMs: z.number().int().nonnegative().describe('from the decision to the end of the view'),
    endReason: EndReason,
    endedBy: EndedBy.describe('on whose word the view ended'),
    refusedSignals: z
      .partialRecord(SignalRefusal, z.number().int().positive())
      .optional()
      .describe('signalling for this look that was ignored, counted by reason; left out when none was'),
  })
  .strict();

const SignalRefusedRecord = z
  .object({
    ...common,
    kind: z.literal('signal-refused'),
    requestId: shortId,
    sessionId: shortId,
    operatorId: shortId.describe("the grant's op: the look someone tried to take over or end"),
    signal: z.enum(['answer', 'candidate', 'hangup']),
    reason: SignalRefusal,
  })
  .strict();

const WindowMissedRecord = z
  .object({
    ...common,
    kind: z.literal('window-missed'),
    windowStart: isoAt,
    windowEnd: isoAt,
  })
  .strict();

/** tk/<id>/audit (device → central, QoS 1): one audit record. */
export const AuditRecord = z.discriminatedUnion('kind', [
  RequestRecord,
  SessionEndRecord,
  SignalRefusedRecord,
  WindowMissedRecord,
]);
export type AuditRecord = z.infer<typeof AuditRecord>;
export type AuditKind = AuditRecord['kind'];
