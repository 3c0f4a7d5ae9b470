// Signed documents from the central service: the per-look grant and the device's schedule.
// Both are JWS compact tokens (JWT) signed with EdDSA (Ed25519); the header's `kid` names the key.
// These schemas are the single definition: types, checks and docs/schemas/*.json come from them.
import { z } from 'zod';

export const DeviceId = z
  .string()
  .regex(/^[a-z0-9][a-z0-9-]{2,62}$/, 'a device id is 3-63 characters: a-z, 0-9 and -, not starting with -');

const epochS = z.number().int().nonnegative().max(4_102_444_800); // up to year 2100
const shortId = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[\x21-\x7e]+$/, 'printable ASCII without spaces');

/** SHA-256 of a DTLS certificate as SDP's a=fingerprint and RTCCertificate.getFingerprints() write it. */
export const DtlsFingerprint = z
  .string()
  .regex(/^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){31}$/, '32 hex byte pairs separated by colons (SHA-256)');

/** base64url without padding of a SHA-256 digest (43 characters). */
export const Sha256Base64url = z.string().regex(/^[A-Za-z0-9_-]{43}$/, 'base64url SHA-256 (43 characters)');

/**
 * A STUN or TURN server for one look, as RTCIceServer writes it (one URL per entry). A TURN entry carries
 * the look's short-lived credentials (coturn's shared-secret scheme: username `<expiry>:<lookId>`,
 * credential base64 HMAC-SHA1 of it), so the device never holds a long-lived TURN secret.
 */
export const IceServer = z
  .object({
    urls: z
      .string()
      .max(256)
      .regex(
        /^(stun|turns?):[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?(\?transport=(udp|tcp))?$/,
        'a stun:, turn: or turns: URL with a host or IP literal, an optional port and ?transport=udp|tcp',
      ),
    username: z.string().min(1).max(128).optional(),
    credential: z.string().min(1).max(128).optional(),
  })
  .strict()
  .refine((s) => !/^turns?:/.test(s.urls) || (s.username !== undefined && s.credential !== undefined), {
    message: 'a TURN server needs username and credential',
    path: ['username'],
  });
export type IceServer = z.infer<typeof IceServer>;

/** At most this many ICE servers in a grant (a TURN server over UDP, its TLS fallback, a STUN server…). */
export const maxGrantIceServers = 4;

export const grantTokenType = 'tk-grant+jwt';
export const scheduleTokenType = 'tk-schedule+jwt';

/** Claims of a grant: permission for one look by one operator at one device. */
export const GrantClaims = z
  .object({
    iss: shortId.optional(),
    aud: DeviceId.describe('the device this grant is for'),
    sid: shortId.describe('session id, chosen by the central service; appears in every audit record'),
    op: shortId.describe('operator id (a personal login, never a shared account)'),
    nbf: epochS.describe('not before, seconds since the epoch'),
    exp: epochS.describe('expires at, seconds since the epoch'),
    iat: epochS.optional(),
    jti: z.string().min(16).max(128).describe('nonce; a grant is used at most once'),
    maxDurS: z.number().int().min(1).max(3600).describe('longest the view may last, seconds'),
    fp: DtlsFingerprint.describe(
      "SHA-256 fingerprint of the console's DTLS certificate: only its holder receives the picture",
    ),
    hup: Sha256Base64url.describe("base64url SHA-256 of the console's hang-up secret"),
    ice: z
      .array(IceServer)
      .min(1)
      .max(maxGrantIceServers)
      .optional()
      .describe(
        "this look's STUN/TURN servers with short-lived credentials; default the device's configured list",
      ),
  })
  .strict()
  .refine((c) => c.exp > c.nbf, { message: 'exp must be after nbf', path: ['exp'] });
export type GrantClaims = z.infer<typeof GrantClaims>;

const weekday = z.enum(['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun']);
export type Weekday = z.infer<typeof weekday>;
const localTime = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'local time as HH:MM (24 h)');
const localDate = z
  .string()
  .regex(/^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$/, 'local date as YYYY-MM-DD');

export const ViewMode = z
  .enum(['full', 'blurred', 'low-resolution'])
  .describe('how much the operator sees: the full picture, a blurred one, or a low-resolution one');
export type ViewMode = z.infer<typeof ViewMode>;

/** Durations are real elapsed minutes; at most 24 h so a window never spans more than two local dates. */
const durationMin = z.number().int().min(1).max(1440);

export const RecurringWindow = z
  .object({
    days: z.array(weekday).min(1).max(7).describe('local weekdays on which the window starts'),
    start: localTime,
    durationMin,
    viewMode: ViewMode.default('full'),
  })
  .strict();
export type RecurringWindow = z.infer<typeof RecurringWindow>;

export const OneOffWindow = z
  .object({ date: localDate, start: localTime, durationMin, viewMode: ViewMode.default('full') })
  .strict();
export type OneOffWindow = z.infer<typeof OneOffWindow>;

/** Claims of a schedule: the check-in windows agreed with the resident. */
export const ScheduleClaims = z
  .object({
    iss: shortId.optional(),
    aud: DeviceId,
    version: z.number().int().min(1).describe('moves only forward; an older version is refused'),
    nbf: epochS.describe('valid from, seconds since the epoch'),
    exp: epochS.describe('valid until, seconds since the epoch'),
    iat: epochS.optional(),
    windows: z.array(RecurringWindow).max(64),
    oneOff: z.array(OneOffWindow).max(256).default([]),
  })
  .strict()
  .refine((c) => c.exp > c.nbf, { message: 'exp must be after nbf', path: ['exp'] });
export type ScheduleClaims = z.infer<typeof ScheduleClaims>;
