// Downloading an update package from a local HTTPS server with the test PKI: only a server whose
// certificate chains to the provisioned CA is trusted, and only a file with the manifest's hash is kept.
import { createHash } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { updateTokenType } from '../../device/protocol/update.js';
import { downloadPackage, handleManifest } from '../../device/update/index.js';
import { createPki, removeTestTempDir, testPki, testTempDir } from '../../scripts/devstack/pki.js';
import { createSigner, signClaims, type TestSigner } from '../../scripts/devstack/tokens.js';

const body = Buffer.from('version=1.1.0\n'.repeat(1000));
const sha256 = createHash('sha256').update(body).digest('hex');
let server: Server;
let base: string;
let ca: string;
let foreignCa: string;
let dir: string;
let central: TestSigner;

beforeAll(async () => {
  const pki = await testPki();
  const foreign = await createPki('foreign CA');
  ca = await readFile(pki.caCert, 'utf8');
  foreignCa = await readFile(foreign.caCert, 'utf8');
  server = createServer(
    { cert: await readFile(pki.server.cert), key: await readFile(pki.server.key) },
    (req, res) => {
      if (req.url === '/tk.deb') res.end(body);
      else res.writeHead(404).end();
    },
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `https://localhost:${(server.address() as AddressInfo).port}`;
  dir = testTempDir('update-download');
  central = await createSigner('central-1');
});
afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  removeTestTempDir(dir);
});

describe('downloadPackage', () => {
  it('keeps a package whose SHA-256 matches', async () => {
    const to = join(dir, 'good.deb');
    const result = await downloadPackage({ url: `${base}/tk.deb`, sha256, ca, to });
    expect(result).toEqual({ ok: true, path: to, bytes: body.length });
    expect(await readFile(to)).toEqual(body);
  });
  it('drops a package with the wrong hash and leaves no file', async () => {
    const to = join(dir, 'bad.deb');
    const result = await downloadPackage({ url: `${base}/tk.deb`, sha256: '0'.repeat(64), ca, to });
    expect(result).toMatchObject({ ok: false, reason: 'hash-mismatch' });
    await expect(readFile(to)).rejects.toThrow();
    await expect(readFile(`${to}.part`)).rejects.toThrow();
  });
  it('trusts no server outside the provisioned CA', async () => {
    const result = await downloadPackage({
      url: `${base}/tk.deb`,
      sha256,
      ca: foreignCa,
      to: join(dir, 'x.deb'),
    });
    expect(result).toMatchObject({ ok: false, reason: 'download-failed' });
  });
  it('fails on HTTP errors', async () => {
    const result = await downloadPackage({ url: `${base}/missing.deb`, sha256, ca, to: join(dir, 'y.deb') });
    expect(result).toEqual({ ok: false, reason: 'download-failed', detail: 'HTTP 404' });
  });
  it('stops a download larger than announced', async () => {
    const result = await downloadPackage({
      url: `${base}/tk.deb`,
      sha256,
      ca,
      to: join(dir, 'z.deb'),
      maxBytes: 100,
    });
    expect(result).toMatchObject({ ok: false, reason: 'download-failed' });
  });
});

describe('handleManifest', () => {
  const facts = () => ({
    runningVersion: '1.0.0',
    nowMs: Date.now(),
    clockTrusted: true,
    viewActive: false,
    windowOpenUntilMs: null,
    updateInProgress: false,
    guardInstalled: true,
  });
  it('hands a verified, downloaded package to the guard', async () => {
    const inboxDir = join(dir, 'inbox');
    const claims = {
      aud: 'cam-test',
      version: '1.1.0',
      packages: { arm64: { url: `${base}/tk.deb`, sha256 } },
    };
    const token = await signClaims(central, claims, updateTokenType);
    const result = await handleManifest(token, {
      inboxDir,
      keys: central.keys,
      deviceId: 'cam-test',
      arch: 'arm64',
      ca,
      facts,
    });
    expect(result).toEqual({ status: 'handed-over', version: '1.1.0', bytes: body.length });
    expect(JSON.parse(await readFile(join(inboxDir, 'request.json'), 'utf8'))).toEqual({ token });
    await rm(inboxDir, { recursive: true });
  });
  it('refuses a manifest signed with an unknown key', async () => {
    const other = await createSigner('central-9');
    const token = await signClaims(
      other,
      { aud: 'cam-test', version: '1.1.0', packages: { arm64: { url: `${base}/tk.deb`, sha256 } } },
      updateTokenType,
    );
    const result = await handleManifest(token, {
      inboxDir: join(dir, 'inbox2'),
      keys: central.keys,
      deviceId: 'cam-test',
      arch: 'arm64',
      ca,
      facts,
    });
    expect(result).toMatchObject({ status: 'refused', reason: 'unknown-key' });
  });
});
