// A cheap first look at a grant, before the rate limit and long before its signature is checked: does
// it even claim to be a live grant for this device, from a key it holds? Nothing here is trusted — a
// grant that passes is verified in full like any other; the answer only picks which rate-limit bucket
// the request spends (docs/protocol.md §3), so that a flood of requests that could never be granted
// (other devices, unknown keys, expired, not a token at all) cannot crowd out the ones that might.
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { grantTokenType } from '../protocol/tokens.js';
import type { KeySet } from './verify.js';

export interface ScreenContext {
  keys: KeySet;
  deviceId: string;
  nowMs: number;
  /** How far `nbf` may lie ahead and `exp` behind, to allow for the clock and the leeway. */
  slackMs: number;
}

/** True if the grant claims to be for this device, from a known key, and to be valid about now. */
export function plausibleGrant(token: string, context: ScreenContext): boolean {
  try {
    const header = decodeProtectedHeader(token);
    if (header.alg !== 'EdDSA' || header.typ !== grantTokenType) return false;
    if (typeof header.kid !== 'string' || !context.keys.has(header.kid)) return false;
    const claims = decodeJwt(token);
    if (claims.aud !== context.deviceId) return false;
    if (typeof claims.exp !== 'number' || claims.exp * 1000 < context.nowMs - context.slackMs) return false;
    if (typeof claims.nbf === 'number' && claims.nbf * 1000 > context.nowMs + context.slackMs) return false;
    return true;
  } catch {
    return false;
  }
}
