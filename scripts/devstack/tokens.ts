// Test keys and token signing, standing in for the central service.
import { exportSPKI, generateKeyPair, SignJWT } from 'jose';
import { importKeys, type KeySet } from '../../device/auth/index.js';
import { hangupHash } from '../../device/core/index.js';
import { grantTokenType, scheduleTokenType } from '../../device/protocol/index.js';
import type { GrantClaims, ScheduleClaims } from '../../device/protocol/tokens.js';
import { grantIce } from './turn.js';

export interface TestSigner {
  kid: string;
  publicKeyPem: string;
  privateKey: CryptoKey;
  keys: KeySet;
}

export async function createSigner(kid = 'central-1'): Promise<TestSigner> {
  const { publicKey, privateKey } = await generateKeyPair('EdDSA', { extractable: true });
  const publicKeyPem = await exportSPKI(publicKey);
  return { kid, publicKeyPem, privateKey, keys: await importKeys([{ kid, pem: publicKeyPem }]) };
}

export async function signClaims(
  signer: Pick<TestSigner, 'kid' | 'privateKey'>,
  claims: Record<string, unknown>,
  typ: string,
): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'EdDSA', kid: signer.kid, typ })
    .sign(signer.privateKey);
}

let nonceCounter = 0;

/**
 * The console that holds every grant `grantClaims` makes unless told otherwise: its DTLS fingerprint
 * and hang-up secret. Rule tests move no media, so any well-formed fingerprint will do.
 */
export const testConsole = {
  fingerprint: Array.from({ length: 32 }, (_, i) =>
    (i * 7 + 16).toString(16).toUpperCase().padStart(2, '0'),
  ).join(':'),
  hangupSecret: 'test-hangup-secret-0123456789abcdef',
};

/** A grant valid for 2 minutes from `nowMs`, with a fresh nonce; override any claim. */
export function grantClaims(
  deviceId: string,
  nowMs: number,
  overrides: Partial<GrantClaims> = {},
): GrantClaims {
  nonceCounter += 1;
  const nowS = Math.floor(nowMs / 1000);
  return {
    aud: deviceId,
    sid: `session-${nonceCounter}`,
    op: 'operator-anna',
    nbf: nowS - 5,
    exp: nowS + 120,
    jti: `nonce-${nonceCounter.toString().padStart(12, '0')}-${Math.random().toString(36).slice(2, 10)}`,
    maxDurS: 60,
    fp: testConsole.fingerprint,
    hup: hangupHash(testConsole.hangupSecret),
    ...overrides,
  };
}

/**
 * Signs a grant. With `turn`, the grant also carries the look's ICE servers with short-lived TURN
 * credentials for that shared secret (`ice`, see turn.ts), as the central service issues them.
 */
export function signGrant(
  signer: TestSigner,
  claims: GrantClaims,
  turn?: { secret: string; urls: readonly string[] },
): Promise<string> {
  return signClaims(signer, turn ? { ...claims, ice: grantIce(claims, turn) } : claims, grantTokenType);
}

export function signSchedule(signer: TestSigner, claims: ScheduleClaims): Promise<string> {
  return signClaims(signer, claims, scheduleTokenType);
}

/** Tuesday 2026-11-24 23:00 in Stockholm: inside the nightly 22:00-07:00 window of `nightlySchedule`. */
export const inWindowMs = Date.UTC(2026, 10, 24, 22, 0);

/** Every night 22:00 for 9 hours, valid through 2027. */
export function nightlySchedule(
  deviceId: string,
  version = 1,
  overrides: Partial<ScheduleClaims> = {},
): ScheduleClaims {
  return {
    aud: deviceId,
    version,
    nbf: Date.UTC(2026, 0, 1) / 1000,
    exp: Date.UTC(2028, 0, 1) / 1000,
    windows: [
      {
        days: ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'],
        start: '22:00',
        durationMin: 540,
        viewMode: 'full',
      },
    ],
    oneOff: [],
    ...overrides,
  };
}
