// MQTT messages of the device, one zod schema each. The topic tree and QoS/retain flags are in topics.ts.
import { z } from 'zod';
import { isoAt, shortId, version } from './common.js';
import { DecommissionedEvent } from './decommission.js';
import { EndedBy, EndReason, RefusalReason, ScheduleRejection } from './reasons.js';
import { SignalAnswer, SignalCandidate } from './signalling.js';
import { UpdateEvent } from './update.js';

export { schemaVersion } from './common.js';

const requestId = shortId.describe('chosen by the requester; echoed in the reply');
/** JWS compact tokens are three base64url parts; the bound keeps hostile payloads cheap to reject. */
const jws = z.string().min(10).max(8192);

/** tk/<id>/schedule (central → device, retained, QoS 1). */
export const ScheduleMessage = z.object({ schemaVersion: version, token: jws }).strict();
export type ScheduleMessage = z.infer<typeof ScheduleMessage>;

/** tk/<id>/view/request (operator → device, QoS 1): ask to look, carrying a grant. */
export const ViewRequest = z
  .object({ schemaVersion: version, type: z.literal('request'), requestId, grant: jws })
  .strict();
/** The console's hang-up secret: random, at least 128 bits, base64url; the grant carries its SHA-256. */
export const HangupSecret = z
  .string()
  .regex(/^[A-Za-z0-9_-]{22,128}$/, 'base64url, 22-128 characters')
  .describe("the hang-up secret whose SHA-256 is the grant's hup claim");

/** tk/<id>/view/request: the grant holder ends the look, proving it with the hang-up secret. */
export const ViewHangup = z
  .object({
    schemaVersion: version,
    type: z.literal('hangup'),
    requestId,
    sessionId: z.string().max(128),
    secret: HangupSecret,
  })
  .strict();
/** Everything the device accepts on tk/<id>/view/request: requests, hang-ups and WebRTC signalling. */
export const ViewInbound = z.discriminatedUnion('type', [
  ViewRequest,
  ViewHangup,
  SignalAnswer,
  SignalCandidate,
]);
export type ViewInbound = z.infer<typeof ViewInbound>;

/** tk/<id>/view/answer (device → operator, QoS 1): the decision on a request. */
export const ViewDecision = z
  .object({
    schemaVersion: version,
    type: z.literal('decision'),
    requestId,
    sessionId: z.string().max(128).optional(),
    decision: z.enum(['granted', 'refused']),
    reason: RefusalReason.optional(),
    message: z.string().max(300).optional(),
    at: isoAt,
  })
  .strict();
export type ViewDecision = z.infer<typeof ViewDecision>;

/** tk/<id>/view/answer: the view has ended. */
export const ViewEnded = z
  .object({
    id: z
      .string()
      .min(1)
      .max(128)
      .optional()
      .describe(
        'stable record id (ended messages go through the outbox): acknowledge and de-duplicate by it',
      ),
    schemaVersion: version,
    type: z.literal('ended'),
    sessionId: z.string().max(128),
    reason: EndReason,
    endedBy: EndedBy.describe('on whose word the view ended'),
    durationMs: z.number().int().nonnegative(),
    at: isoAt,
  })
  .strict();
export type ViewEnded = z.infer<typeof ViewEnded>;

/** Set by the device's outbox and kept on every re-delivery: de-duplicate events by it. */
const recordId = shortId.describe('stable record id; the same on every re-delivery');

/** tk/<id>/event (device → central, QoS 1): things the central service must act on at once. */
export const DeviceEvent = z.discriminatedUnion('type', [
  z
    .object({
      id: recordId.optional(),
      schemaVersion: version,
      type: z.literal('privacy'),
      privacyOn: z.boolean(),
      source: z.enum(['button', 'startup-safe-default']),
      at: isoAt,
    })
    .strict(),
  z
    .object({
      id: recordId.optional(),
      schemaVersion: version,
      type: z.literal('schedule'),
      accepted: z.boolean(),
      version: z.number().int().optional(),
      reason: ScheduleRejection.optional(),
      at: isoAt,
    })
    .strict(),
  z
    .object({
      id: recordId.optional(),
      schemaVersion: version,
      type: z.literal('fault'),
      fault: z.enum(['led', 'clock', 'state', 'camera']),
      active: z.boolean(),
      detail: z.string().max(300).optional(),
      at: isoAt,
    })
    .strict(),
  UpdateEvent,
  DecommissionedEvent,
]);
export type DeviceEvent = z.infer<typeof DeviceEvent>;

/** tk/<id>/status (device → all, retained, QoS 1): online/offline; `offline` is also the last will. */
export const StatusMessage = z
  .object({
    schemaVersion: version,
    state: z.enum(['online', 'offline']),
    connection: z.number().int().nonnegative().describe('connection counter; a will carries the same'),
    at: isoAt.optional(),
  })
  .strict();
export type StatusMessage = z.infer<typeof StatusMessage>;
