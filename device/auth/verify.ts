// Verifying tokens from the central service with jose (EdDSA / Ed25519 JWS). Hand-made crypto and
// formats are what we avoid: jose is small, maintained and audited.
// Only the signature and the shape are checked here. Times, device and nonce are decided by the pure
// core with the injected clock (see core/decision.ts), so one place holds every rule.
import { compactVerify, decodeProtectedHeader, importSPKI } from 'jose';
import type { z } from 'zod';
import { GrantClaims, grantTokenType, ScheduleClaims, scheduleTokenType } from '../protocol/tokens.js';
import { UpdateClaims, updateTokenType } from '../protocol/update.js';

export type KeySet = ReadonlyMap<string, CryptoKey>;

export type Verified<T> =
  | { ok: true; claims: T; kid: string }
  | { ok: false; reason: 'malformed' | 'unknown-key' | 'bad-signature'; detail: string };

export async function importKeys(keys: ReadonlyArray<{ kid: string; pem: string }>): Promise<KeySet> {
  const set = new Map<string, CryptoKey>();
  for (const { kid, pem } of keys) set.set(kid, await importSPKI(pem, 'EdDSA'));
  return set;
}

async function verifyToken<T>(
  token: string,
  keys: KeySet,
  schema: z.ZodType<T>,
  expectedType: string,
): Promise<Verified<T>> {
  let kid: string | undefined;
  try {
    const header = decodeProtectedHeader(token);
    if (header.alg !== 'EdDSA')
      return { ok: false, reason: 'malformed', detail: `alg ${String(header.alg)} not allowed` };
    if (header.typ !== expectedType)
      return { ok: false, reason: 'malformed', detail: `typ must be ${expectedType}` };
    kid = header.kid;
  } catch {
    return { ok: false, reason: 'malformed', detail: 'not a JWS compact token' };
  }
  // The header is attacker-controlled JSON: a kid of another type must be refused, not crash below.
  if (typeof kid !== 'string') return { ok: false, reason: 'malformed', detail: 'header has no kid' };
  const key = keys.get(kid);
  if (!key) return { ok: false, reason: 'unknown-key', detail: `kid ${kid.slice(0, 64)} is not installed` };
  let payload: Uint8Array;
  try {
    ({ payload } = await compactVerify(token, key, { algorithms: ['EdDSA'] }));
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED') {
      return { ok: false, reason: 'bad-signature', detail: 'signature does not verify' };
    }
    return { ok: false, reason: 'malformed', detail: code ?? 'invalid JWS' };
  }
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(payload));
  } catch {
    return { ok: false, reason: 'malformed', detail: 'payload is not JSON' };
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return {
      ok: false,
      reason: 'malformed',
      detail: `${issue?.path.join('.') || 'claims'}: ${issue?.message}`,
    };
  }
  return { ok: true, claims: parsed.data, kid };
}

export function verifyGrant(token: string, keys: KeySet): Promise<Verified<GrantClaims>> {
  return verifyToken(token, keys, GrantClaims, grantTokenType);
}

export function verifySchedule(token: string, keys: KeySet): Promise<Verified<ScheduleClaims>> {
  return verifyToken(token, keys, ScheduleClaims, scheduleTokenType);
}

/** An update manifest (`tk-update+jwt`); whether and when to act on it is decideUpdate's question. */
export function verifyUpdate(token: string, keys: KeySet): Promise<Verified<UpdateClaims>> {
  return verifyToken(token, keys, UpdateClaims, updateTokenType);
}
