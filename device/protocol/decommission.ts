// The last message a device sends (tk/<id>/event, QoS 1): it is being wiped and leaves service.
// One member of DeviceEvent's union (messages.ts), with the fields every event has (id,
// schemaVersion, type, at).
import { z } from 'zod';
import { schemaVersion } from './common.js';

export const DecommissionedEvent = z
  .object({
    id: z.string().min(1).max(128).optional(),
    schemaVersion: z.literal(schemaVersion),
    type: z.literal('decommissioned'),
    at: z.string().datetime({ offset: true }),
    /** Audit records that were still in the outbox and were delivered now. */
    auditDelivered: z.number().int().nonnegative(),
    /** Audit records not delivered, exported to a file the technician takes (0 when all delivered). */
    auditExported: z.number().int().nonnegative(),
    /** SHA-256 (hex) of the export file, so central can match the file the technician hands in. */
    exportSha256: z
      .string()
      .regex(/^[0-9a-f]{64}$/)
      .optional(),
    technician: z.string().min(1).max(128).optional(),
  })
  .strict();
export type DecommissionedEvent = z.infer<typeof DecommissionedEvent>;
