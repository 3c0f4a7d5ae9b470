// verifyUpdate: the update manifest's signature, typ and claims.
import { beforeAll, describe, expect, it } from 'vitest';
import { verifyUpdate } from '../../device/auth/index.js';
import { grantTokenType } from '../../device/protocol/tokens.js';
import { updateTokenType } from '../../device/protocol/update.js';
import { createSigner, signClaims, type TestSigner } from '../../scripts/devstack/tokens.js';

let central: TestSigner;
let impostor: TestSigner;
const sha256 = 'c'.repeat(64);
const claims = {
  aud: 'cam-test',
  version: '1.2.0',
  packages: { arm64: { url: 'https://updates.test/tk_1.2.0_arm64.deb', sha256 } },
  nbf: 1_790_000_000,
};

beforeAll(async () => {
  central = await createSigner('central-1');
  impostor = await createSigner('central-1');
});

describe('verifyUpdate', () => {
  it('accepts a manifest signed by an installed key', async () => {
    const result = await verifyUpdate(await signClaims(central, claims, updateTokenType), central.keys);
    expect(result).toEqual({ ok: true, claims, kid: 'central-1' });
  });
  it('refuses a manifest signed by another key under the same kid', async () => {
    const result = await verifyUpdate(await signClaims(impostor, claims, updateTokenType), central.keys);
    expect(result).toMatchObject({ ok: false, reason: 'bad-signature' });
  });
  it('refuses a grant presented as a manifest', async () => {
    const result = await verifyUpdate(await signClaims(central, claims, grantTokenType), central.keys);
    expect(result).toMatchObject({
      ok: false,
      reason: 'malformed',
      detail: `typ must be ${updateTokenType}`,
    });
  });
  it('refuses a package URL that is not https', async () => {
    const bad = { ...claims, packages: { arm64: { url: 'http://updates.test/x.deb', sha256 } } };
    const result = await verifyUpdate(await signClaims(central, bad, updateTokenType), central.keys);
    expect(result).toMatchObject({ ok: false, reason: 'malformed' });
  });
  it('refuses a version that is not semver', async () => {
    const result = await verifyUpdate(
      await signClaims(central, { ...claims, version: 'latest' }, updateTokenType),
      central.keys,
    );
    expect(result).toMatchObject({ ok: false, reason: 'malformed' });
  });
  it('refuses rollback: false (only true may be said)', async () => {
    const result = await verifyUpdate(
      await signClaims(central, { ...claims, rollback: false }, updateTokenType),
      central.keys,
    );
    expect(result).toMatchObject({ ok: false, reason: 'malformed' });
  });
});
