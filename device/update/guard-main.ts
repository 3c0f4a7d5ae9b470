#!/usr/bin/env node
// Entry point of the root-side update guard (systemd/trygghetskamera-update.service): builds the
// real adapters (dpkg, dpkg-repack, systemctl, the service's proof file) and runs the guard once.
// Exit 0: nothing to do, committed, refused or rolled back; 1: rollback failed (systemd retries).
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { runFile } from '../../provisioning/run.js';
import { importKeys } from '../auth/index.js';
import { loadConfig } from '../config/index.js';
import { createLogger } from '../log/index.js';
import { PackageArch } from '../protocol/update.js';
import { provenSince } from './client.js';
import { type GuardDeps, runGuard } from './guard.js';

const packageName = 'trygghetskamera';

const { values } = parseArgs({
  options: {
    config: { type: 'string', default: '/etc/trygghetskamera/config.json' },
    'trial-min': { type: 'string', default: '5' },
  },
});
const log = createLogger().child({ mod: 'update-guard' });
const loaded = await loadConfig(values.config ?? '');
if (!loaded.ok) {
  log.warn({ errors: loaded.errors }, 'no usable config: nothing to update against');
  process.exit(0);
}
const config = loaded.config;
const keys = await importKeys(
  await Promise.all(
    config.centralKeys.map(async (k) => ({
      kid: k.kid,
      pem: k.publicKeyPem ?? (await readFile(k.publicKeyFile ?? '', 'utf8')),
    })),
  ),
);
const archOut = await runFile('dpkg', ['--print-architecture']);
const arch = PackageArch.parse(archOut.stdout.trim());
const stateDir = config.stateDir;

const deps: GuardDeps = {
  updatesDir: join(stateDir, 'updates'),
  inboxDir: join(stateDir, 'update-inbox'),
  keys,
  deviceId: config.deviceId,
  arch,
  async installedVersion() {
    // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's own format syntax
    const r = await runFile('dpkg-query', ['-W', '-f=${Status} ${Version}', packageName]);
    const m = /^install ok installed (\S+)$/.exec(r.stdout.trim());
    return m?.[1] ?? null;
  },
  async install(deb) {
    const r = await runFile('dpkg', ['-i', '--force-confold', deb], { timeoutMs: 15 * 60_000 });
    return { ok: r.code === 0, detail: (r.failure ?? r.stderr).slice(-256) };
  },
  async packageVersion(deb) {
    const r = await runFile('dpkg-deb', ['-f', deb, 'Version']);
    return r.code === 0 ? r.stdout.trim() : null;
  },
  // gzip -1: xz of the whole program (runtime included) takes minutes on a Pi; the file is only kept
  // until the next update.
  async repackInstalled(to) {
    const dir = `${to}.d`;
    await runFile('rm', ['-rf', dir]);
    await runFile('mkdir', ['-p', dir]);
    const r = await runFile(
      'sh',
      [
        '-c',
        `cd "$1" && dpkg-repack --deb-option=-Zgzip --deb-option=-z1 ${packageName} >/dev/null && mv ./*.deb "$2"`,
        'sh',
        dir,
        to,
      ],
      {
        timeoutMs: 10 * 60_000,
      },
    );
    await runFile('rm', ['-rf', dir]);
    return r.code === 0;
  },
  async proven(version, sinceMs) {
    const active = await runFile('systemctl', ['is-active', '--quiet', `${packageName}.service`]);
    if (active.code !== 0) return false;
    return provenSince(join(stateDir, 'update-proof.json'), version, sinceMs);
  },
  nowMs: () => Date.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
  newAttemptId: () => randomUUID(),
  log,
  trialMs: Number(values['trial-min']) * 60_000,
  pollMs: 5_000,
  maxTrialBoots: 3,
};
const result = await runGuard(deps);
log.info(result, 'update guard done');
process.exitCode = result.outcome === 'rollback-failed' ? 1 : 0;
