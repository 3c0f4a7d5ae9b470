// The grant's `ice` claim: the look's STUN/TURN servers with short-lived TURN credentials. A grant that
// carries them verifies; a list that breaks the bounds is refused as malformed; the credentials are
// coturn's shared-secret scheme, checked against openssl's HMAC (not our code).
import { execFileSync } from 'node:child_process';
import { beforeAll, describe, expect, it } from 'vitest';
import { verifyGrant } from '../../device/auth/index.js';
import type { IceServer } from '../../device/protocol/index.js';
import { grantTokenType } from '../../device/protocol/tokens.js';
import {
  createSigner,
  grantClaims,
  signClaims,
  signGrant,
  type TestSigner,
} from '../../scripts/devstack/tokens.js';
import { grantIce, turnExpiryMarginS } from '../../scripts/devstack/turn.js';

const deviceId = 'cam-test';
const nowMs = Date.parse('2026-01-14T22:30:00+01:00');
let central: TestSigner;

beforeAll(async () => {
  central = await createSigner('central-1');
});

const verify = (token: string) => verifyGrant(token, central.keys);

describe("the grant's ICE servers", () => {
  it('verifies a grant with TURN credentials for its look and hands them over unchanged', async () => {
    const claims = grantClaims(deviceId, nowMs);
    const turn = {
      secret: 'lab-secret',
      urls: ['turn:100.64.0.1:3478?transport=udp', 'stun:100.64.0.1:3478'],
    };
    const result = await verify(await signGrant(central, claims, turn));
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.claims.ice).toEqual(grantIce(claims, turn));
    expect(result.claims.ice?.[1]).toEqual({ urls: 'stun:100.64.0.1:3478' });
  });

  it("makes coturn's REST credential: username expiry:lookId, credential base64 HMAC-SHA1 of it", () => {
    const claims = { sid: 'ses-8f3c21d4', exp: 1_773_181_020 };
    const [server] = grantIce(claims, { secret: 'example-secret', urls: ['turn:turn.example.se:3478'] });
    expect(server?.username).toBe(`${claims.exp + turnExpiryMarginS}:ses-8f3c21d4`);
    const oracle = execFileSync('openssl', ['dgst', '-sha1', '-hmac', 'example-secret', '-binary'], {
      input: server?.username ?? '',
    }).toString('base64');
    expect(server?.credential).toBe(oracle);
  });

  const turn = (urls: string): IceServer => ({ urls, username: '1:s', credential: 'c' });
  it.each<[string, unknown]>([
    ['an empty list', []],
    ['five servers', Array.from({ length: 5 }, (_, i) => turn(`turn:192.0.2.${i}:3478`))],
    ['a TURN server without credentials', [{ urls: 'turn:192.0.2.1:3478' }]],
    ['a URL that is not STUN or TURN', [turn('http://192.0.2.1/')]],
    ['a URL with another query', [turn('turn:192.0.2.1:3478?transport=udp&x=1')]],
    ['a URL with a user part', [turn('turn:user@192.0.2.1:3478')]],
    ['an unknown field', [{ ...turn('turn:192.0.2.1'), credentialType: 'password' }]],
    ['an over-long credential', [{ ...turn('turn:192.0.2.1'), credential: 'x'.repeat(129) }]],
  ])('refuses a grant whose ice is %s as malformed', async (_name, ice) => {
    const token = await signClaims(central, { ...grantClaims(deviceId, nowMs), ice }, grantTokenType);
    const result = await verify(token);
    expect(result).toMatchObject({ ok: false, reason: 'malformed' });
  });
});
