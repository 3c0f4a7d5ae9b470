// Signature and shape checks of grants and schedules: one test per refusal, and a property that no
// input, however odd, makes verification throw.
import { createHmac } from 'node:crypto';
import fc from 'fast-check';
import { type CompactJWSHeaderParameters, CompactSign } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { importKeys, type KeySet, verifyGrant, verifySchedule } from '../../device/auth/index.js';
import { grantTokenType, scheduleTokenType } from '../../device/protocol/tokens.js';
import {
  createSigner,
  grantClaims,
  nightlySchedule,
  signClaims,
  signGrant,
  signSchedule,
  type TestSigner,
} from '../../scripts/devstack/tokens.js';

const deviceId = 'cam-test';
const nowMs = Date.parse('2026-01-14T22:30:00+01:00');
const reasons = ['malformed', 'unknown-key', 'bad-signature'] as const;

const b64 = (value: unknown): string =>
  Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');
const segments = (token: string): [string, string, string] => {
  const [header = '', payload = '', signature = ''] = token.split('.');
  return [header, payload, signature];
};

let central: TestSigner;
/** A second key pair that claims to be the installed key `central-1`. */
let impostor: TestSigner;

beforeAll(async () => {
  central = await createSigner('central-1');
  impostor = await createSigner('central-1');
});

/** Signs any payload (text or bytes) with the central key, by default under a grant's header. */
function signRaw(
  payload: string | Uint8Array,
  header: CompactJWSHeaderParameters = { alg: 'EdDSA', kid: 'central-1', typ: grantTokenType },
): Promise<string> {
  const bytes = typeof payload === 'string' ? new TextEncoder().encode(payload) : payload;
  return new CompactSign(bytes).setProtectedHeader(header).sign(central.privateKey);
}

describe('verifyGrant', () => {
  it('accepts a grant signed by an installed key and returns its claims and kid', async () => {
    const claims = grantClaims(deviceId, nowMs);
    const result = await verifyGrant(await signGrant(central, claims), central.keys);
    expect(result).toEqual({ ok: true, claims, kid: 'central-1' });
  });

  it('picks the key named by kid when several keys are installed (key rotation)', async () => {
    const next = await createSigner('central-2');
    const keys = await importKeys([
      { kid: 'central-1', pem: central.publicKeyPem },
      { kid: 'central-2', pem: next.publicKeyPem },
    ]);
    const result = await verifyGrant(await signGrant(next, grantClaims(deviceId, nowMs)), keys);
    expect(result).toMatchObject({ ok: true, kid: 'central-2' });
  });

  it('refuses a grant whose payload was changed after signing, as a bad signature', async () => {
    const claims = grantClaims(deviceId, nowMs);
    const [header, , signature] = segments(await signGrant(central, claims));
    const tampered = `${header}.${b64({ ...claims, maxDurS: 3600 })}.${signature}`;
    expect(await verifyGrant(tampered, central.keys)).toEqual({
      ok: false,
      reason: 'bad-signature',
      detail: 'signature does not verify',
    });
  });

  it('refuses a grant whose signature was changed, as a bad signature', async () => {
    const [header, payload, signature] = segments(await signGrant(central, grantClaims(deviceId, nowMs)));
    const flipped = `${signature.startsWith('A') ? 'B' : 'A'}${signature.slice(1)}`;
    expect(await verifyGrant(`${header}.${payload}.${flipped}`, central.keys)).toEqual({
      ok: false,
      reason: 'bad-signature',
      detail: 'signature does not verify',
    });
  });

  it('refuses a grant signed by another key under the installed kid, as a bad signature', async () => {
    const token = await signGrant(impostor, grantClaims(deviceId, nowMs));
    expect(await verifyGrant(token, central.keys)).toEqual({
      ok: false,
      reason: 'bad-signature',
      detail: 'signature does not verify',
    });
  });

  it('refuses a grant whose kid is not installed, as an unknown key', async () => {
    const stranger = await createSigner('someone-else');
    const token = await signGrant(stranger, grantClaims(deviceId, nowMs));
    expect(await verifyGrant(token, central.keys)).toEqual({
      ok: false,
      reason: 'unknown-key',
      detail: 'kid someone-else is not installed',
    });
  });

  it('cuts a long unknown kid to 64 characters in the detail', async () => {
    const stranger = await createSigner('k'.repeat(500));
    const result = await verifyGrant(await signGrant(stranger, grantClaims(deviceId, nowMs)), central.keys);
    expect(result).toEqual({
      ok: false,
      reason: 'unknown-key',
      detail: `kid ${'k'.repeat(64)} is not installed`,
    });
  });

  it('refuses a grant whose header has no kid, as malformed', async () => {
    const token = await signRaw(JSON.stringify(grantClaims(deviceId, nowMs)), {
      alg: 'EdDSA',
      typ: grantTokenType,
    });
    expect(await verifyGrant(token, central.keys)).toEqual({
      ok: false,
      reason: 'malformed',
      detail: 'header has no kid',
    });
  });

  it('refuses a grant whose kid is not a string (a number), as malformed, without throwing', async () => {
    const token = `${b64({ alg: 'EdDSA', typ: grantTokenType, kid: 1 })}.${b64(grantClaims(deviceId, nowMs))}.AAAA`;
    expect(await verifyGrant(token, central.keys)).toEqual({
      ok: false,
      reason: 'malformed',
      detail: 'header has no kid',
    });
  });

  it('refuses a schedule token presented as a grant, as malformed for its typ', async () => {
    const token = await signSchedule(central, nightlySchedule(deviceId));
    expect(await verifyGrant(token, central.keys)).toEqual({
      ok: false,
      reason: 'malformed',
      detail: `typ must be ${grantTokenType}`,
    });
  });

  it('refuses a grant with no typ, as malformed for its typ', async () => {
    const token = await signRaw(JSON.stringify(grantClaims(deviceId, nowMs)), {
      alg: 'EdDSA',
      kid: 'central-1',
    });
    expect(await verifyGrant(token, central.keys)).toEqual({
      ok: false,
      reason: 'malformed',
      detail: `typ must be ${grantTokenType}`,
    });
  });

  it('refuses an unsigned alg "none" token, as malformed for its alg', async () => {
    const header = b64({ alg: 'none', typ: grantTokenType, kid: 'central-1' });
    const token = `${header}.${b64(grantClaims(deviceId, nowMs))}.`;
    expect(await verifyGrant(token, central.keys)).toEqual({
      ok: false,
      reason: 'malformed',
      detail: 'alg none not allowed',
    });
  });

  it('refuses an HS256 token MACed with the public key as secret, as malformed for its alg', async () => {
    const signingInput = `${b64({ alg: 'HS256', typ: grantTokenType, kid: 'central-1' })}.${b64(grantClaims(deviceId, nowMs))}`;
    const mac = createHmac('sha256', central.publicKeyPem).update(signingInput).digest('base64url');
    expect(await verifyGrant(`${signingInput}.${mac}`, central.keys)).toEqual({
      ok: false,
      reason: 'malformed',
      detail: 'alg HS256 not allowed',
    });
  });

  it('refuses a header without alg, as malformed for its alg', async () => {
    const token = `${b64({ typ: grantTokenType, kid: 'central-1' })}.${b64(grantClaims(deviceId, nowMs))}.AAAA`;
    expect(await verifyGrant(token, central.keys)).toEqual({
      ok: false,
      reason: 'malformed',
      detail: 'alg undefined not allowed',
    });
  });

  it('refuses non-JWS garbage as not a JWS compact token', async () => {
    expect(await verifyGrant('hello, camera', central.keys)).toEqual({
      ok: false,
      reason: 'malformed',
      detail: 'not a JWS compact token',
    });
  });

  it('refuses the empty string as not a JWS compact token', async () => {
    expect(await verifyGrant('', central.keys)).toEqual({
      ok: false,
      reason: 'malformed',
      detail: 'not a JWS compact token',
    });
  });

  it('refuses 8 KB of junk as not a JWS compact token', async () => {
    const junk = Array.from({ length: 8192 }, (_, i) => String.fromCharCode(33 + ((i * 7919) % 94))).join('');
    expect(await verifyGrant(junk, central.keys)).toEqual({
      ok: false,
      reason: 'malformed',
      detail: 'not a JWS compact token',
    });
  });

  it('refuses a header that is base64url but not JSON as not a JWS compact token', async () => {
    expect(await verifyGrant(`${b64('{not json')}.${b64('{}')}.AAAA`, central.keys)).toEqual({
      ok: false,
      reason: 'malformed',
      detail: 'not a JWS compact token',
    });
  });

  it('refuses a correctly signed payload that is not JSON, as malformed', async () => {
    const token = await signRaw('op=anna&jti=1');
    expect(await verifyGrant(token, central.keys)).toEqual({
      ok: false,
      reason: 'malformed',
      detail: 'payload is not JSON',
    });
  });

  it('refuses a correctly signed payload that is not UTF-8, as malformed', async () => {
    const token = await signRaw(new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]));
    expect(await verifyGrant(token, central.keys)).toEqual({
      ok: false,
      reason: 'malformed',
      detail: 'payload is not JSON',
    });
  });

  it('refuses signed claims without op, naming op', async () => {
    const { op: _op, ...claims } = grantClaims(deviceId, nowMs);
    const result = await verifyGrant(await signClaims(central, claims, grantTokenType), central.keys);
    expect(result).toMatchObject({ ok: false, reason: 'malformed', detail: expect.stringMatching(/^op: /) });
  });

  it('refuses signed claims with an extra claim, naming it', async () => {
    const claims = { ...grantClaims(deviceId, nowMs), role: 'admin' };
    const result = await verifyGrant(await signClaims(central, claims, grantTokenType), central.keys);
    expect(result).toMatchObject({ ok: false, reason: 'malformed', detail: expect.stringContaining('role') });
  });

  it('refuses signed claims whose exp equals nbf, naming exp', async () => {
    const claims = grantClaims(deviceId, nowMs, { nbf: 1_768_426_200, exp: 1_768_426_200 });
    const result = await verifyGrant(await signGrant(central, claims), central.keys);
    expect(result).toEqual({ ok: false, reason: 'malformed', detail: 'exp: exp must be after nbf' });
  });

  it('refuses signed claims whose exp is before nbf, naming exp', async () => {
    const claims = grantClaims(deviceId, nowMs, { nbf: 1_768_426_200, exp: 1_768_426_100 });
    const result = await verifyGrant(await signGrant(central, claims), central.keys);
    expect(result).toEqual({ ok: false, reason: 'malformed', detail: 'exp: exp must be after nbf' });
  });

  it('refuses signed claims with a jti shorter than 16 characters, naming jti', async () => {
    const claims = grantClaims(deviceId, nowMs, { jti: 'fifteen-chars-x' });
    const result = await verifyGrant(await signGrant(central, claims), central.keys);
    expect(result).toMatchObject({ ok: false, reason: 'malformed', detail: expect.stringMatching(/^jti: /) });
  });

  it('accepts a jti of exactly 16 characters', async () => {
    const claims = grantClaims(deviceId, nowMs, { jti: 'sixteen-chars-xx' });
    expect(await verifyGrant(await signGrant(central, claims), central.keys)).toMatchObject({ ok: true });
  });

  it('refuses signed claims that are a JSON array, not an object', async () => {
    const token = await signRaw('[1,2,3]');
    expect(await verifyGrant(token, central.keys)).toMatchObject({
      ok: false,
      reason: 'malformed',
      detail: expect.stringMatching(/^claims: /),
    });
  });
});

describe('verifySchedule', () => {
  it('accepts a schedule signed by an installed key', async () => {
    const claims = nightlySchedule(deviceId, 3);
    expect(await verifySchedule(await signSchedule(central, claims), central.keys)).toEqual({
      ok: true,
      claims,
      kid: 'central-1',
    });
  });

  it('refuses a grant presented as a schedule, as malformed for its typ', async () => {
    const token = await signGrant(central, grantClaims(deviceId, nowMs));
    expect(await verifySchedule(token, central.keys)).toEqual({
      ok: false,
      reason: 'malformed',
      detail: `typ must be ${scheduleTokenType}`,
    });
  });

  it('refuses a schedule signed by another key under the installed kid, as a bad signature', async () => {
    const token = await signSchedule(impostor, nightlySchedule(deviceId));
    expect(await verifySchedule(token, central.keys)).toMatchObject({ ok: false, reason: 'bad-signature' });
  });

  it('refuses a signed schedule with a window start that is not HH:MM, naming the field', async () => {
    const claims = nightlySchedule(deviceId, 1, {
      windows: [{ days: ['mon'], start: '24:00', durationMin: 30, viewMode: 'full' }],
    });
    const result = await verifySchedule(await signSchedule(central, claims), central.keys);
    expect(result).toMatchObject({
      ok: false,
      reason: 'malformed',
      detail: expect.stringMatching(/^windows\.0\.start: /),
    });
  });
});

describe('never crashes', () => {
  let keys: KeySet;
  beforeAll(() => {
    keys = central.keys;
  });

  const assertRefused = async (token: string): Promise<void> => {
    const result = await verifyGrant(token, keys);
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(reasons).toContain(result.reason);
      expect(typeof result.detail).toBe('string');
    }
  };

  it('any string resolves to ok:false with a reason from the closed set', async () => {
    await fc.assert(fc.asyncProperty(fc.string({ unit: 'binary', maxLength: 1000 }), assertRefused), {
      numRuns: 200,
    });
  });

  it('any three dot-separated base64url segments resolve to ok:false with a reason from the closed set', async () => {
    const segment = fc.string({
      unit: fc.constantFrom(...'ABCDEFGHabcdefgh0123456789-_'.split('')),
      maxLength: 120,
    });
    await fc.assert(
      fc.asyncProperty(fc.tuple(segment, segment, segment), ([h, p, s]) => assertRefused(`${h}.${p}.${s}`)),
      { numRuns: 300 },
    );
  });

  it('any JSON header and payload with a random signature resolve to ok:false with a reason from the closed set', async () => {
    const header = fc.record(
      {
        alg: fc.oneof(fc.constantFrom('EdDSA', 'none', 'HS256', 'RS256'), fc.jsonValue()),
        typ: fc.oneof(fc.constantFrom(grantTokenType, scheduleTokenType), fc.jsonValue()),
        kid: fc.oneof(fc.constantFrom('central-1', 'other'), fc.jsonValue()),
        crit: fc.jsonValue(),
        b64: fc.jsonValue(),
      },
      { requiredKeys: [] },
    );
    const payload = fc.oneof(fc.jsonValue(), fc.constant(grantClaims(deviceId, nowMs)));
    const signature = fc
      .uint8Array({ maxLength: 80 })
      .map((bytes) => Buffer.from(bytes).toString('base64url'));
    await fc.assert(
      fc.asyncProperty(header, payload, signature, (h, p, s) => assertRefused(`${b64(h)}.${b64(p)}.${s}`)),
      { numRuns: 300 },
    );
  });
});
