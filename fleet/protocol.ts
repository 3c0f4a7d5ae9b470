// Reading device messages for the fleet: the zod schemas of device/protocol first, and, for a payload
// of the other schema version (1 while the protocol moves to 2, or 2 from a newer device), only the
// fields the fleet needs, checked one by one with the same field schemas. Unknown fields are allowed
// there, and fault kinds are kept as strings, so a newer device still shows up with what is wrong.
import { createHash } from 'node:crypto';
import { z } from 'zod';
import {
  AuditRecord,
  DeviceEvent,
  HealthMessage,
  InfoMessage,
  StatusMessage,
  schemaVersion,
} from '../device/protocol/index.js';

/** Payload versions the fleet reads: the protocol's current one and its neighbour. */
export const acceptedVersions = [1, 2] as const;
const otherVersion = z
  .number()
  .int()
  .refine((v) => (acceptedVersions as readonly number[]).includes(v));
const isoAt = z.iso.datetime();

const LenientStatus = z.looseObject({
  schemaVersion: otherVersion,
  state: z.enum(['online', 'offline']),
  connection: z.number().int().nonnegative(),
  at: isoAt.optional(),
});

const LenientHealth = z.looseObject({
  schemaVersion: otherVersion,
  uptimeS: z.number().nonnegative().optional(),
  privacyOn: z.boolean(),
  scheduleVersion: z.number().int().optional(),
  nextWindowAt: isoAt.optional(),
  refusals: z.record(z.string(), z.number().int().nonnegative()).optional(),
  faults: z.array(z.string().max(64)).max(32).optional(),
});

const LenientInfo = z.looseObject({
  schemaVersion: otherVersion,
  firmware: z.string().max(64),
  hardware: z.string().max(128).optional(),
  at: isoAt.optional(),
});

const LenientEvent = z.discriminatedUnion('type', [
  z.looseObject({
    id: z.string().min(1).max(128).optional(),
    schemaVersion: otherVersion,
    type: z.literal('privacy'),
    privacyOn: z.boolean(),
    at: isoAt,
  }),
  z.looseObject({
    id: z.string().min(1).max(128).optional(),
    schemaVersion: otherVersion,
    type: z.literal('schedule'),
    accepted: z.boolean(),
    version: z.number().int().optional(),
    reason: z.string().max(64).optional(),
    at: isoAt,
  }),
  z.looseObject({
    id: z.string().min(1).max(128).optional(),
    schemaVersion: otherVersion,
    type: z.literal('fault'),
    fault: z.string().max(64),
    active: z.boolean(),
    at: isoAt,
  }),
]);

const LenientAudit = z.looseObject({
  schemaVersion: otherVersion,
  id: z.string().min(1).max(128),
  at: isoAt,
  kind: z.string().max(64),
  decision: z.enum(['granted', 'refused']).optional(),
  reason: z.string().max(64).optional(),
  startedAt: isoAt.optional(),
  durationMs: z.number().int().nonnegative().optional(),
});

export interface Status {
  state: 'online' | 'offline';
  connection: number;
  at: string | undefined;
}
export interface Health {
  uptimeS: number | undefined;
  privacyOn: boolean;
  scheduleVersion: number | undefined;
  nextWindowAt: string | undefined;
  refusals: Record<string, number>;
  faults: string[];
}
export interface Info {
  firmware: string;
  hardware: string | undefined;
}
export type FleetEvent =
  | { id: string; type: 'privacy'; privacyOn: boolean; at: string }
  | { id: string; type: 'schedule'; accepted: boolean; version: number | undefined; at: string }
  | { id: string; type: 'fault'; fault: string; active: boolean; at: string }
  /** Update progress and a decommissioning: stored and shown, no effect on check-ins at risk. */
  | { id: string; type: `update-${string}` | 'decommissioned'; at: string };
export interface Audit {
  id: string;
  at: string;
  kind: string;
  decision: 'granted' | 'refused' | undefined;
  reason: string | undefined;
  startedAt: string | undefined;
}

/** One device message as the fleet sees it. `raw` is the JSON text as it arrived. */
export type FleetMessage =
  | { deviceId: string; topic: 'status'; status: Status }
  | { deviceId: string; topic: 'health'; health: Health; raw: string }
  | { deviceId: string; topic: 'info'; info: Info }
  | { deviceId: string; topic: 'event'; event: FleetEvent; raw: string }
  | { deviceId: string; topic: 'audit'; audit: Audit; raw: string };

export type ParseResult = { ok: true; message: FleetMessage } | { ok: false; reason: string };

export const fleetTopics = ['status', 'health', 'info', 'event', 'audit'] as const;
export type FleetTopic = (typeof fleetTopics)[number];
const topicPattern = /^tk\/([a-z0-9][a-z0-9-]{2,62})\/(status|health|info|event|audit)$/;

/** A device's record id, or, for an event sent without one, a digest of it (re-deliveries are identical). */
function recordId(deviceId: string, id: string | undefined, raw: string): string {
  return id ?? `sha256:${createHash('sha256').update(`${deviceId}\n${raw}`).digest('hex').slice(0, 32)}`;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** Parses one message from a `tk/<id>/<topic>` topic; never throws. */
export function parseFleetMessage(topicName: string, payload: Buffer | string): ParseResult {
  const match = topicPattern.exec(topicName);
  if (!match) return { ok: false, reason: 'topic' };
  const deviceId = match[1] as string;
  const topic = match[2] as FleetTopic;
  const raw = typeof payload === 'string' ? payload : payload.toString('utf8');
  if (raw.length === 0) return { ok: false, reason: 'empty' };
  const json = parseJson(raw);
  if (typeof json !== 'object' || json === null) return { ok: false, reason: 'not-json' };
  const current = (json as { schemaVersion?: unknown }).schemaVersion === schemaVersion;
  switch (topic) {
    case 'status': {
      const parsed = current ? StatusMessage.safeParse(json) : LenientStatus.safeParse(json);
      if (!parsed.success) return { ok: false, reason: 'schema' };
      const { state, connection, at } = parsed.data;
      return { ok: true, message: { deviceId, topic, status: { state, connection, at } } };
    }
    case 'health': {
      const parsed = current ? HealthMessage.safeParse(json) : LenientHealth.safeParse(json);
      if (!parsed.success) return { ok: false, reason: 'schema' };
      const data = parsed.data;
      const refusals: Record<string, number> = {};
      for (const [reason, count] of Object.entries(data.refusals ?? {})) {
        if (typeof count === 'number') refusals[reason] = count;
      }
      return {
        ok: true,
        message: {
          deviceId,
          topic,
          raw,
          health: {
            uptimeS: data.uptimeS,
            privacyOn: data.privacyOn,
            scheduleVersion: data.scheduleVersion,
            nextWindowAt: data.nextWindowAt,
            refusals,
            faults: [...(data.faults ?? [])],
          },
        },
      };
    }
    case 'info': {
      const parsed = current ? InfoMessage.safeParse(json) : LenientInfo.safeParse(json);
      if (!parsed.success) return { ok: false, reason: 'schema' };
      return {
        ok: true,
        message: {
          deviceId,
          topic,
          info: { firmware: parsed.data.firmware, hardware: parsed.data.hardware },
        },
      };
    }
    case 'event': {
      const parsed = current ? DeviceEvent.safeParse(json) : LenientEvent.safeParse(json);
      if (!parsed.success) return { ok: false, reason: 'schema' };
      const data = parsed.data;
      const id = recordId(deviceId, data.id, raw);
      const event: FleetEvent =
        data.type === 'privacy'
          ? { id, type: 'privacy', privacyOn: data.privacyOn, at: data.at }
          : data.type === 'schedule'
            ? { id, type: 'schedule', accepted: data.accepted, version: data.version, at: data.at }
            : data.type === 'fault'
              ? { id, type: 'fault', fault: data.fault, active: data.active, at: data.at }
              : { id, type: data.type, at: data.at };
      return { ok: true, message: { deviceId, topic, raw, event } };
    }
    case 'audit': {
      const parsed = current ? AuditRecord.safeParse(json) : LenientAudit.safeParse(json);
      if (!parsed.success) return { ok: false, reason: 'schema' };
      const data = parsed.data as z.infer<typeof LenientAudit>;
      return {
        ok: true,
        message: {
          deviceId,
          topic,
          raw,
          audit: {
            id: data.id,
            at: data.at,
            kind: data.kind,
            decision: data.decision,
            reason: data.reason,
            startedAt: data.startedAt,
          },
        },
      };
    }
  }
}
