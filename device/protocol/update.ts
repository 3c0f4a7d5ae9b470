// The signed update manifest (token typ `tk-update+jwt`, EdDSA like grants and schedules) and the
// update progress events the device sends. The single definition: the verifier, the updater and
// docs/schemas come from these schemas.
import { z } from 'zod';
import { isoAt, version as schemaVersionField, shortId } from './common.js';
import { DeviceId } from './tokens.js';

export const updateTokenType = 'tk-update+jwt';

const epochS = z.number().int().nonnegative().max(4_102_444_800);

/** Semantic version without build metadata, e.g. 1.4.0 or 1.5.0-rc.1 (Debian versions may add `+N`). */
export const SemVer = z
  .string()
  .max(64)
  .regex(
    /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.]+)?$/,
    'a semantic version such as 1.4.0',
  );

export const PackageArch = z.enum(['amd64', 'arm64', 'armhf']);
export type PackageArch = z.infer<typeof PackageArch>;

/** SHA-256 as 64 lowercase hex digits (what sha256sum prints). */
export const Sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, '64 lowercase hex digits (SHA-256)');

export const UpdateArtifact = z
  .object({
    url: z
      .string()
      .max(2048)
      .url()
      .refine((url) => url.startsWith('https://'), 'an https:// URL'),
    sha256: Sha256Hex,
    sizeBytes: z
      .number()
      .int()
      .min(1)
      .max(512 * 1024 * 1024)
      .optional(),
  })
  .strict();
export type UpdateArtifact = z.infer<typeof UpdateArtifact>;

/** Claims of an update manifest: install this version of the firmware package on this device. */
export const UpdateClaims = z
  .object({
    iss: z.string().min(1).max(128).optional(),
    aud: DeviceId.describe('the device this update is for'),
    version: SemVer.describe('the version the package installs'),
    packages: z
      .object({
        amd64: UpdateArtifact.optional(),
        arm64: UpdateArtifact.optional(),
        armhf: UpdateArtifact.optional(),
      })
      .strict()
      .refine((p) => Object.keys(p).length > 0, 'at least one architecture')
      .describe('the Debian package for each architecture: HTTPS URL and SHA-256'),
    nbf: epochS.optional().describe('not before (seconds since the epoch): the device waits until then'),
    exp: epochS.optional().describe('the manifest is ignored after this instant'),
    iat: epochS.optional(),
    rollback: z
      .literal(true)
      .optional()
      .describe('allow installing a version older than the running one (otherwise only forward)'),
  })
  .strict();
export type UpdateClaims = z.infer<typeof UpdateClaims>;

/** Why an update did not take: the `reason` of an `update-failed` event. A closed list. */
export const UpdateFailure = z.enum([
  'download-failed',
  'hash-mismatch',
  'no-package-for-arch',
  'install-failed',
  'interrupted',
  'health-timeout',
  'too-many-boots',
  'no-previous-package',
]);
export type UpdateFailure = z.infer<typeof UpdateFailure>;

/**
 * tk/<id>/update (central → device, retained, QoS 1): the manifest for this device. Retained, so a
 * device that was offline gets it at its next connect; an empty retained message clears it.
 */
export const UpdateMessage = z
  .object({ schemaVersion: schemaVersionField, token: z.string().min(10).max(8192) })
  .strict();
export type UpdateMessage = z.infer<typeof UpdateMessage>;

/**
 * Update progress on tk/<id>/event: `update-waiting` (a look, a check-in window, the clock or
 * not-before holds it back) → `update-downloaded` (hash checked) → `update-installing` (handed to
 * the root-side guard, which installs and restarts the service) → `update-committed` (the new
 * version proved itself), or `update-failed` with a reason (the previous version runs again), or
 * `update-refused` for a manifest not acted on.
 */
export const UpdateEvent = z
  .object({
    id: shortId.optional().describe('stable record id; the same on every re-delivery'),
    schemaVersion: schemaVersionField,
    type: z.enum([
      'update-waiting',
      'update-downloaded',
      'update-installing',
      'update-committed',
      'update-failed',
      'update-refused',
    ]),
    version: SemVer.optional().describe(
      'the version the manifest named; absent when the manifest could not be verified',
    ),
    running: SemVer.optional().describe(
      'the version running when the event was sent; absent when the device cannot tell its own version',
    ),
    reason: z.string().max(64).optional(),
    detail: z.string().max(256).optional(),
    at: isoAt,
  })
  .strict();
export type UpdateEvent = z.infer<typeof UpdateEvent>;

/** Compares two semantic versions (precedence as semver.org §11; build metadata ignored). */
export function compareVersions(a: string, b: string): number {
  const parse = (v: string) => {
    const [core = '', pre] = v.split('+')[0]?.split(/-(.*)/s) ?? [];
    return { nums: core.split('.').map(Number), pre: pre ? pre.split('.') : [] };
  };
  const x = parse(a);
  const y = parse(b);
  for (let i = 0; i < 3; i++) {
    const d = (x.nums[i] ?? 0) - (y.nums[i] ?? 0);
    if (d !== 0) return Math.sign(d);
  }
  if (x.pre.length === 0 || y.pre.length === 0) return Math.sign(y.pre.length - x.pre.length);
  for (let i = 0; i < Math.max(x.pre.length, y.pre.length); i++) {
    const p = x.pre[i];
    const q = y.pre[i];
    if (p === undefined) return -1;
    if (q === undefined) return 1;
    const pn = /^\d+$/.test(p);
    const qn = /^\d+$/.test(q);
    if (pn && qn) {
      const d = Number(p) - Number(q);
      if (d !== 0) return Math.sign(d);
    } else if (pn !== qn) return pn ? -1 : 1;
    else if (p !== q) return p < q ? -1 : 1;
  }
  return 0;
}
