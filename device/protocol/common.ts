// Fragments every protocol message is built from. Not part of the public surface (index.ts exports
// only the messages made of them), so the generated JSON Schemas name no schema of their own for these.
import { z } from 'zod';

/** The payload schema version every message carries. */
export const schemaVersion = 2;
export const version = z.literal(schemaVersion).describe('payload schema version');
/** An ISO 8601 UTC instant. */
export const isoAt = z.iso.datetime();
/** An id chosen by one side and echoed by the other (request, session, operator, record). */
export const shortId = z.string().min(1).max(128);
