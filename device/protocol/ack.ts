// Acknowledgements from the central service: "these records are in my database". The device keeps
// every audit record and event in its outbox until one of these names it; a broker's PUBACK only
// says the broker has it, and a broker crash can still lose it (issue 9: acknowledged by the broker
// is not delivered).
import { z } from 'zod';
import { shortId, version } from './common.js';

/** Largest number of ids in one acknowledgement, so one message stays small (about 13 KB). */
export const maxAckIds = 100;

/** tk/<id>/ack (central → device, QoS 1): the ids of audit records and events now stored centrally. */
export const AckMessage = z
  .object({
    schemaVersion: version,
    ids: z
      .array(shortId)
      .min(1)
      .max(maxAckIds)
      .describe('the `id` of each audit record or event received; unknown ids are ignored'),
  })
  .strict();
export type AckMessage = z.infer<typeof AckMessage>;
