// A fake dpkg for the update guard's tests: a "package" is a small text file `version=X`, the
// installed version lives in <root>/installed, and each install is appended to <root>/dpkg.log.
// Shared by the in-process tests and the child process that is killed mid-install.
import { appendFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { KeySet } from '../../device/auth/index.js';
import type { GuardDeps } from '../../device/update/index.js';

export interface FakeOptions {
  root: string;
  keys: KeySet;
  deviceId?: string;
  /** Versions whose service proves itself during the trial. */
  healthy?: ReadonlySet<string>;
  /** Versions whose dpkg -i fails. */
  failInstall?: ReadonlySet<string>;
  /** Called inside dpkg -i before the install completes (the child blocks here to be killed). */
  duringInstall?: (version: string) => Promise<void>;
}

export async function fakePackage(path: string, version: string): Promise<void> {
  await writeFile(path, `version=${version}\n`);
}

async function versionOf(deb: string): Promise<string | null> {
  try {
    return /^version=(\S+)$/m.exec(await readFile(deb, 'utf8'))?.[1] ?? null;
  } catch {
    return null;
  }
}

export async function installed(root: string): Promise<string | null> {
  try {
    return (await readFile(join(root, 'installed'), 'utf8')).trim();
  } catch {
    return null;
  }
}

export function fakeDeps(options: FakeOptions): GuardDeps {
  const { root } = options;
  let clockMs = Date.UTC(2026, 11, 1, 12);
  let attempt = 0;
  return {
    updatesDir: join(root, 'updates'),
    inboxDir: join(root, 'inbox'),
    keys: options.keys,
    deviceId: options.deviceId ?? 'cam-test',
    arch: 'arm64',
    installedVersion: () => installed(root),
    async install(deb) {
      const version = await versionOf(deb);
      await appendFile(join(root, 'dpkg.log'), `install ${version}\n`);
      if (!version || options.failInstall?.has(version))
        return { ok: false, detail: 'dpkg: error processing' };
      await writeFile(join(root, 'installed'), 'half-installed\n');
      await options.duringInstall?.(version);
      await writeFile(join(root, 'installed'), `${version}\n`);
      return { ok: true, detail: '' };
    },
    packageVersion: versionOf,
    async repackInstalled(to) {
      const version = await installed(root);
      if (!version || version === 'half-installed') return false;
      await mkdir(join(root, 'updates'), { recursive: true });
      await fakePackage(to, version);
      return true;
    },
    async proven(version) {
      return options.healthy?.has(version) === true && (await installed(root)) === version;
    },
    nowMs: () => clockMs,
    async sleep(ms) {
      clockMs += ms;
    },
    newAttemptId: () => `attempt-${++attempt}-${process.pid}`,
    log: { info: () => undefined, warn: () => undefined },
    trialMs: 5 * 60_000,
    pollMs: 5_000,
    maxTrialBoots: 3,
  };
}
