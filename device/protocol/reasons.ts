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

/**
 * On whose word a view ended: the grant holder (a hang-up that proved it holds the grant's secret), the
 * resident (the privacy button), the device (its rules, a fault, a shutdown) or the network (the
 * console's connection was lost or never came up).
 */
export const endedBy = ['grant-holder', 'resident', 'device', 'network'] as const;
export const EndedBy = z.enum(endedBy);
export type EndedBy = z.infer<typeof EndedBy>;

/** Who ends a view for each end reason. */
export const endedByReason: Record<EndReason, EndedBy> = {
  'operator-hangup': 'grant-holder',
  'max-duration': 'device',
  'window-end': 'device',
  'grant-expired': 'device',
  'privacy-on': 'resident',
  'led-fault': 'device',
  'clock-unsynced': 'device',
  'schedule-changed': 'device',
  'camera-failure': 'device',
  'peer-gone': 'network',
  shutdown: 'device',
};

/**
 * Why signalling for a running look was ignored. Only the holder of the grant may steer a look: its
 * answer must carry the DTLS fingerprint the grant names, its candidates the ICE ufrag of that answer,
 * its hang-up the secret whose hash the grant carries.
 */
export const signalRefusals = [
  'fingerprint-mismatch',
  'no-ice-ufrag',
  'already-answered',
  'ufrag-mismatch',
  'not-an-ip-address',
  'too-many-candidates',
  'bad-hangup-secret',
] as const;
export const SignalRefusal = z.enum(signalRefusals);
export type SignalRefusal = z.infer<typeof SignalRefusal>;

export const signalRefusalText: Record<SignalRefusal, string> = {
  'fingerprint-mismatch': "the answer's DTLS fingerprint is not the one the grant names",
  'no-ice-ufrag': 'the answer carries no ICE username fragment',
  'already-answered': 'an answer was already taken for this look',
  'ufrag-mismatch': 'the candidate does not carry the ICE ufrag of the answer that was taken',
  'not-an-ip-address': 'the candidate is not a UDP candidate with an IP address (no host names, no mDNS)',
  'too-many-candidates': 'the look already has the most remote candidates it takes',
  'bad-hangup-secret': 'the hang-up does not carry the secret whose hash the grant names',
};

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
