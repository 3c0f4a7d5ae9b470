// Short-lived TURN credentials per look, as the central service issues them inside the grant: coturn's
// shared-secret scheme ("TURN REST API", coturn's `use-auth-secret`): the username is
// `<expiry epoch s>:<lookId>` and the credential is base64(HMAC-SHA1(secret, username)). coturn checks
// both with the same secret; the device gets only the credential of its look, valid for minutes.
import { createHmac } from 'node:crypto';
import type { IceServer } from '../../device/protocol/index.js';

export interface TurnCredentials {
  username: string;
  credential: string;
}

export function turnCredentials(options: {
  secret: string;
  lookId: string;
  /** When coturn stops taking it (epoch s): the grant's `exp`, which also ends the look, plus a margin. */
  expiresAtS: number;
}): TurnCredentials {
  const username = `${options.expiresAtS}:${options.lookId}`;
  const credential = createHmac('sha1', options.secret).update(username).digest('base64');
  return { username, credential };
}

/** The grant's `ice` claim: every TURN URL with the look's credentials, STUN URLs as they are. */
export function lookIceServers(urls: readonly string[], credentials: TurnCredentials): IceServer[] {
  return urls.map((urls) => (urls.startsWith('stun:') ? { urls } : { urls, ...credentials }));
}

/** Clock difference between the central service and the TURN server that a credential tolerates. */
export const turnExpiryMarginS = 60;

/**
 * The `ice` claim of a grant: the look's TURN credentials (look id the grant's `sid`, expiry its `exp`
 * plus a margin: a look never outlives its grant, and coturn checks the expiry at every refresh).
 */
export function grantIce(
  claims: { sid: string; exp: number },
  turn: { secret: string; urls: readonly string[] },
): IceServer[] {
  return lookIceServers(
    turn.urls,
    turnCredentials({ secret: turn.secret, lookId: claims.sid, expiresAtS: claims.exp + turnExpiryMarginS }),
  );
}
