// The root-side update guard with a fake dpkg: a good update commits, one that never proves itself
// rolls back by itself, a bad signature or a wrong hash installs nothing, and a power cut (SIGKILL
// of a child process running the guard) in the middle of dpkg -i or of the trial leaves a device
// that, when the guard runs again at boot, returns to or keeps a working version.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { UpdateEvent, updateTokenType } from '../../device/protocol/update.js';
import { outcomeEvent, readUpdateState, runGuard, unreportedOutcome } from '../../device/update/index.js';
import { createSigner, signClaims, type TestSigner } from '../../scripts/devstack/tokens.js';
import { fakeDeps, fakePackage, installed } from './fake-dpkg.js';

const child = fileURLToPath(new URL('./fixtures/guard-child.ts', import.meta.url));
let central: TestSigner;
let impostor: TestSigner;
let root: string;

beforeAll(async () => {
  central = await createSigner('central-1');
  impostor = await createSigner('central-1');
});
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'tk-update-guard-'));
  await mkdir(join(root, 'inbox'));
  await writeFile(join(root, 'installed'), '1.0.0\n');
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

/** Puts version's package into the inbox with a manifest, as the service does after downloading. */
async function offer(
  version: string,
  options: { signer?: TestSigner; sha256?: string; rollback?: true } = {},
) {
  const deb = join(root, 'inbox', 'package.deb');
  await fakePackage(deb, version);
  const sha256 =
    options.sha256 ??
    createHash('sha256')
      .update(await readFile(deb))
      .digest('hex');
  const claims = {
    aud: 'cam-test',
    version,
    packages: { arm64: { url: `https://updates.test/tk_${version}_arm64.deb`, sha256 } },
    ...(options.rollback ? { rollback: true } : {}),
  };
  const token = await signClaims(options.signer ?? central, claims, updateTokenType);
  await writeFile(join(root, 'inbox', 'request.json'), JSON.stringify({ token }));
}

const dpkgLog = async () =>
  (await readFile(join(root, 'dpkg.log'), 'utf8').catch(() => '')).trim().split('\n').filter(Boolean);
const state = async () => (await readUpdateState(join(root, 'updates', 'state.json'))).state;

describe('update guard', () => {
  it('commits a version that proves itself within the trial', async () => {
    await offer('1.1.0');
    const result = await runGuard(fakeDeps({ root, keys: central.keys, healthy: new Set(['1.1.0']) }));
    expect(result).toEqual({ outcome: 'committed', version: '1.1.0' });
    expect(await installed(root)).toBe('1.1.0');
    expect(await state()).toMatchObject({ phase: 'idle', last: { version: '1.1.0', outcome: 'committed' } });
    // The running version's package is kept to return to; the new one becomes "current".
    expect(await readFile(join(root, 'updates', 'previous.deb'), 'utf8')).toContain('version=1.0.0');
    expect(await readFile(join(root, 'updates', 'current.deb'), 'utf8')).toContain('version=1.1.0');
  });

  it('rolls back by itself when the new version fails its health check', async () => {
    await offer('1.1.0');
    const result = await runGuard(fakeDeps({ root, keys: central.keys, healthy: new Set(['1.0.0']) }));
    expect(result).toEqual({ outcome: 'rolled-back', version: '1.0.0', reason: 'health-timeout' });
    expect(await installed(root)).toBe('1.0.0');
    expect(await dpkgLog()).toEqual(['install 1.1.0', 'install 1.0.0']);
    const now = await state();
    const outcome = unreportedOutcome(now, null);
    expect(outcome).toMatchObject({ outcome: 'failed', reason: 'health-timeout', version: '1.1.0' });
    const atMs = Date.UTC(2026, 11, 1, 12, 10);
    expect(outcome && UpdateEvent.parse(outcomeEvent(outcome, '1.0.0', atMs))).toEqual({
      schemaVersion: 2,
      type: 'update-failed',
      version: '1.1.0',
      running: '1.0.0',
      reason: 'health-timeout',
      at: '2026-12-01T12:10:00.000Z',
    });
    // Reported once: the service remembers the attempt it reported.
    expect(unreportedOutcome(now, outcome?.attempt ?? null)).toBeNull();
  });

  it('rolls back when dpkg -i of the new version fails', async () => {
    await offer('1.1.0');
    const deps = fakeDeps({ root, keys: central.keys, failInstall: new Set(['1.1.0']) });
    expect(await runGuard(deps)).toMatchObject({ outcome: 'rolled-back', reason: 'install-failed' });
    expect(await installed(root)).toBe('1.0.0');
  });

  it('installs nothing from a manifest with a bad signature', async () => {
    await offer('1.1.0', { signer: impostor });
    const result = await runGuard(fakeDeps({ root, keys: central.keys, healthy: new Set(['1.1.0']) }));
    expect(result).toMatchObject({ outcome: 'refused', reason: 'bad-signature' });
    expect(await dpkgLog()).toEqual([]);
    expect(await installed(root)).toBe('1.0.0');
    expect(await state()).toMatchObject({
      phase: 'idle',
      last: { outcome: 'failed', reason: 'bad-signature' },
    });
  });

  it('installs nothing whose hash differs from the manifest', async () => {
    await offer('1.1.0', { sha256: 'ab'.repeat(32) });
    const result = await runGuard(fakeDeps({ root, keys: central.keys, healthy: new Set(['1.1.0']) }));
    expect(result).toMatchObject({ outcome: 'refused', reason: 'hash-mismatch' });
    expect(await dpkgLog()).toEqual([]);
  });

  it('refuses an older version unless the manifest says rollback', async () => {
    await offer('0.9.0');
    const deps = fakeDeps({ root, keys: central.keys, healthy: new Set(['0.9.0']) });
    expect(await runGuard(deps)).toMatchObject({ outcome: 'refused', reason: 'not-newer' });
    await offer('0.9.0', { rollback: true });
    expect(await runGuard(deps)).toEqual({ outcome: 'committed', version: '0.9.0' });
  });

  it('does nothing without a request', async () => {
    expect(await runGuard(fakeDeps({ root, keys: central.keys }))).toEqual({ outcome: 'nothing-to-do' });
  });

  it('returns to the previous version after a power cut in the middle of dpkg -i', async () => {
    await offer('1.1.0');
    await killChildWhen('install', (out) => out.includes('installing 1.1.0'));
    expect(await installed(root)).toBe('half-installed');
    expect(await state()).toMatchObject({ phase: 'installing', target: '1.1.0', previous: '1.0.0' });
    // The next boot runs the guard again.
    const result = await runGuard(
      fakeDeps({ root, keys: central.keys, healthy: new Set(['1.0.0', '1.1.0']) }),
    );
    expect(result).toEqual({ outcome: 'rolled-back', version: '1.0.0', reason: 'interrupted' });
    expect(await installed(root)).toBe('1.0.0');
  });

  it('resumes the trial after a power cut during it, and counts the boots', async () => {
    await offer('1.1.0');
    await killChildWhen('trial', (out) => out.includes('trial'));
    expect(await installed(root)).toBe('1.1.0');
    expect(await state()).toMatchObject({ phase: 'trial', boots: 0 });
    const result = await runGuard(fakeDeps({ root, keys: central.keys, healthy: new Set(['1.1.0']) }));
    expect(result).toEqual({ outcome: 'committed', version: '1.1.0' });
  });

  it('gives up a trial that never outlives a boot', async () => {
    await offer('1.1.0');
    await killChildWhen('trial', (out) => out.includes('trial'));
    for (let boot = 0; boot < 3; boot++) await killChildWhen('trial', (out) => out.includes('trial'));
    expect(await state()).toMatchObject({ phase: 'trial', boots: 3 });
    const result = await runGuard(fakeDeps({ root, keys: central.keys, healthy: new Set(['1.1.0']) }));
    expect(result).toMatchObject({ outcome: 'rolled-back', reason: 'too-many-boots' });
    expect(await installed(root)).toBe('1.0.0');
  });
});

/** Runs the guard in a child process and SIGKILLs it once its output satisfies `when`. */
function killChildWhen(phase: 'install' | 'trial', when: (out: string) => boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, ['--import', 'tsx/esm', child, root, central.publicKeyPem, phase], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`child never reached ${phase}: ${err}`));
    }, 20_000);
    proc.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      if (when(out)) proc.kill('SIGKILL');
    });
    proc.stderr.on('data', (chunk: Buffer) => {
      err += chunk.toString();
    });
    proc.on('exit', (_code, signal) => {
      clearTimeout(timer);
      if (signal === 'SIGKILL') resolve();
      else reject(new Error(`child exited without being killed: ${err}`));
    });
  });
}
