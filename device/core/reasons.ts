// The closed vocabularies shared by decisions, audit records, MQTT messages and the protocol doc.
// Adding a reason here is a protocol change: docs/protocol.md lists each one.
import { z } from 'zod';

/** Why a request to look was refused. Checked in this order; the first that applies is reported. */
export const refusalReasons = [
  'malformed',
  'unknown-key',
  'bad-signature',
  'wrong-device',
  'clock-unsynced',
  'not-yet-valid',
  'expired',
  'replayed',
  'privacy-on',
  'led-fault',
  'no-schedule',
  'outside-window',
  'view-active',
  'state-unavailable',
] as const;
export const RefusalReason = z.enum(refusalReasons);
export type RefusalReason = z.infer<typeof RefusalReason>;

/** Why a running view ended. */
export const endReasons = [
  'operator-hangup',
  'max-duration',
  'window-end',
  'grant-expired',
  'privacy-on',
  'led-fault',
  'clock-unsynced',
  'schedule-changed',
  'camera-failure',
  'peer-gone',
  'shutdown',
] as const;
export const EndReason = z.enum(endReasons);
export type EndReason = z.infer<typeof EndReason>;

/** Why a schedule document was not taken into use. */
export const scheduleRejections = [
  'malformed',
  'unknown-key',
  'bad-signature',
  'wrong-device',
  'rollback',
] as const;
export const ScheduleRejection = z.enum(scheduleRejections);
export type ScheduleRejection = z.infer<typeof ScheduleRejection>;

/** One sentence per reason, for logs, the operator's screen and the protocol doc. */
export const refusalText: Record<RefusalReason, string> = {
  malformed: 'the request or its grant could not be parsed or broke a limit',
  'unknown-key': 'the grant is signed with a key id this device does not know',
  'bad-signature': 'the grant signature does not verify',
  'wrong-device': 'the grant is for another device',
  'clock-unsynced': "the device's clock is not known to be synchronised",
  'not-yet-valid': 'the grant is not valid yet (nbf in the future)',
  expired: 'the grant has expired',
  replayed: "the grant's nonce was already used",
  'privacy-on': 'the resident has turned privacy mode on',
  'led-fault': 'the viewing LED cannot be driven, so no view may start',
  'no-schedule': 'the device has no valid schedule (none received, or it is outside its validity dates)',
  'outside-window': 'no agreed check-in window is open now',
  'view-active': 'another view is already active',
  'state-unavailable': 'the device could not record the grant safely (state directory not writable)',
};
