// The cheap first look at a grant that picks its rate-limit bucket: read, never trusted.
import { beforeAll, describe, expect, it } from 'vitest';
import { plausibleGrant } from '../../device/auth/index.js';
import { grantTokenType } from '../../device/protocol/index.js';
import {
  createSigner,
  grantClaims,
  signClaims,
  signGrant,
  type TestSigner,
} from '../../scripts/devstack/tokens.js';

const nowMs = Date.UTC(2026, 10, 24, 22, 0);
const deviceId = 'dev-screen';
let signer: TestSigner;
let stranger: TestSigner;

beforeAll(async () => {
  signer = await createSigner();
  stranger = await createSigner('central-unknown');
});

const context = () => ({ keys: signer.keys, deviceId, nowMs, slackMs: 125_000 });

describe('plausibleGrant', () => {
  it('passes a live grant for this device from a known key', async () => {
    expect(plausibleGrant(await signGrant(signer, grantClaims(deviceId, nowMs)), context())).toBe(true);
  });

  it('passes a grant whose signature is broken: only the full check can tell', async () => {
    const token = await signGrant(signer, grantClaims(deviceId, nowMs));
    const broken = `${token.slice(0, -4)}AAAA`;
    expect(plausibleGrant(broken, context())).toBe(true);
  });

  it('sends a grant from an unknown key, for another device or long expired to the other bucket', async () => {
    expect(plausibleGrant(await signGrant(stranger, grantClaims(deviceId, nowMs)), context())).toBe(false);
    expect(plausibleGrant(await signGrant(signer, grantClaims('dev-other', nowMs)), context())).toBe(false);
    const old = grantClaims(deviceId, nowMs - 3_600_000);
    expect(plausibleGrant(await signGrant(signer, old), context())).toBe(false);
    const future = grantClaims(deviceId, nowMs + 3_600_000);
    expect(plausibleGrant(await signGrant(signer, future), context())).toBe(false);
  });

  it('sends what is not a grant token to the other bucket', async () => {
    expect(plausibleGrant('not-a-token', context())).toBe(false);
    const schedule = await signClaims(signer, { aud: deviceId, exp: nowMs / 1000 + 60 }, 'tk-schedule+jwt');
    expect(plausibleGrant(schedule, context())).toBe(false);
    expect(grantTokenType).toBe('tk-grant+jwt');
  });
});
