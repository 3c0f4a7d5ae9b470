// The root-side updater and rollback guard (systemd/trygghetskamera-update.service). The service
// itself runs unprivileged and cannot install packages: it verifies, decides and downloads, then
// drops the manifest and the package into <stateDir>/update-inbox/. This guard takes them from
// there, verifies both again (the service user must not be able to install anything the central
// service did not sign), keeps the running version's package as updates/previous.deb, installs
// with dpkg, and gives the new version `trialMs` to prove itself. Otherwise it installs
// previous.deb again. It also runs at every boot, where it resumes whatever a power cut interrupted
// (see state.ts). All IO is injected: tests drive it with a fake dpkg and a fake health probe.
import { copyFile, mkdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { type KeySet, verifyUpdate } from '../auth/index.js';
import { compareVersions, type PackageArch } from '../protocol/update.js';
import { sha256File } from './download.js';
import { readUpdateState, stateFileName, type UpdateState, writeUpdateState } from './state.js';

export interface GuardLog {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
}

export interface GuardDeps {
  /** Root-owned <stateDir>/updates: state.json, previous.deb, incoming.deb, current.deb. */
  updatesDir: string;
  /** Service-owned <stateDir>/update-inbox: request.json and package.deb. */
  inboxDir: string;
  keys: KeySet;
  deviceId: string;
  arch: PackageArch;
  /** The installed version of the firmware package (dpkg-query), or null if not installed. */
  installedVersion(): Promise<string | null>;
  /** `dpkg -i FILE`. */
  install(deb: string): Promise<{ ok: boolean; detail: string }>;
  /** The Version field of a .deb (`dpkg-deb -f FILE Version`). */
  packageVersion(deb: string): Promise<string | null>;
  /** Rebuilds a .deb of the installed package (dpkg-repack), when no kept one matches it. */
  repackInstalled(to: string): Promise<boolean>;
  /** Whether `version` has proven itself: unit ready (active), broker online, its checks pass. */
  proven(version: string, sinceMs: number): Promise<boolean>;
  nowMs(): number;
  sleep(ms: number): Promise<void>;
  newAttemptId(): string;
  log: GuardLog;
  trialMs: number;
  pollMs: number;
  /** A trial interrupted by this many boots (power cuts, crashes of the whole Pi) fails. */
  maxTrialBoots: number;
}

export const Request = z.object({ token: z.string().min(1).max(16_384) }).strict();

export type GuardResult =
  | { outcome: 'nothing-to-do' }
  | { outcome: 'committed'; version: string }
  | { outcome: 'rolled-back'; version: string; reason: string }
  | { outcome: 'refused'; reason: string; detail: string }
  | { outcome: 'rollback-failed'; detail: string };

const paths = (deps: GuardDeps) => ({
  state: join(deps.updatesDir, stateFileName),
  incoming: join(deps.updatesDir, 'incoming.deb'),
  previous: join(deps.updatesDir, 'previous.deb'),
  current: join(deps.updatesDir, 'current.deb'),
  request: join(deps.inboxDir, 'request.json'),
  inboxPackage: join(deps.inboxDir, 'package.deb'),
});

/** One run of the guard: resume an interrupted update, or take a new request from the inbox. */
export async function runGuard(deps: GuardDeps): Promise<GuardResult> {
  await mkdir(deps.updatesDir, { recursive: true, mode: 0o755 });
  const p = paths(deps);
  const { state, problem } = await readUpdateState(p.state);
  if (problem) deps.log.warn({ problem }, 'update state unreadable: treated as idle');
  switch (state.phase) {
    case 'idle':
      return takeRequest(deps);
    case 'installing':
      // Cut while dpkg ran: the tree may be half old, half new. Back to the version that worked.
      deps.log.warn({ target: state.target }, 'update was interrupted during install: rolling back');
      return rollBack(deps, backFrom(state, 'interrupted'));
    case 'trial':
      return trial(deps, { ...state, boots: state.boots + 1 });
    case 'rolling-back':
      return rollBack(deps, state);
  }
}

async function finish(deps: GuardDeps, last: NonNullable<Extract<UpdateState, { phase: 'idle' }>['last']>) {
  await writeUpdateState(paths(deps).state, { phase: 'idle', last });
}

async function takeRequest(deps: GuardDeps): Promise<GuardResult> {
  const p = paths(deps);
  let raw: string;
  try {
    raw = await readFile(p.request, 'utf8');
  } catch {
    return { outcome: 'nothing-to-do' };
  }
  // Consumed whatever happens next: a bad request must not be retried at every boot.
  await rm(p.request, { force: true });
  const attempt = deps.newAttemptId();
  const refuse = async (reason: string, detail: string, version = 'unknown'): Promise<GuardResult> => {
    await rm(p.inboxPackage, { force: true });
    await rm(p.incoming, { force: true });
    await finish(deps, { attempt, version, outcome: 'failed', reason, detail, atMs: deps.nowMs() });
    deps.log.warn({ reason, detail, version }, 'update refused');
    return { outcome: 'refused', reason, detail };
  };
  let request: z.infer<typeof Request>;
  try {
    request = Request.parse(JSON.parse(raw));
  } catch {
    return refuse('malformed', 'request.json is not a request');
  }
  const verified = await verifyUpdate(request.token, deps.keys);
  if (!verified.ok) return refuse(verified.reason, verified.detail);
  const manifest = verified.claims;
  if (manifest.aud !== deps.deviceId) return refuse('wrong-device', `for ${manifest.aud}`, manifest.version);
  const artifact = manifest.packages[deps.arch];
  if (!artifact) return refuse('no-package-for-arch', deps.arch, manifest.version);
  const running = await deps.installedVersion();
  if (!running) return refuse('not-installed', 'the firmware package is not installed', manifest.version);
  const order = compareVersions(manifest.version, running);
  if (order === 0 || (order < 0 && manifest.rollback !== true)) {
    return refuse('not-newer', `running ${running}`, manifest.version);
  }
  // Copy first, then hash the copy: the service user cannot swap the file after the check.
  try {
    await copyFile(p.inboxPackage, p.incoming);
  } catch (error) {
    return refuse('download-failed', (error as Error).message.slice(0, 200), manifest.version);
  }
  await rm(p.inboxPackage, { force: true });
  const digest = await sha256File(p.incoming);
  if (digest !== artifact.sha256) return refuse('hash-mismatch', `sha256 ${digest}`, manifest.version);
  const packaged = await deps.packageVersion(p.incoming);
  if (packaged !== manifest.version) {
    return refuse('install-failed', `package holds version ${packaged ?? '?'}`, manifest.version);
  }
  if (!(await keepPrevious(deps, running))) {
    return refuse(
      'no-previous-package',
      `cannot keep a package of ${running} to return to`,
      manifest.version,
    );
  }

  const installing: Extract<UpdateState, { phase: 'installing' }> = {
    phase: 'installing',
    attempt,
    target: manifest.version,
    previous: running,
  };
  await writeUpdateState(p.state, installing);
  deps.log.info({ target: manifest.version, previous: running }, 'installing update');
  const result = await deps.install(p.incoming);
  if (!result.ok) {
    return rollBack(deps, backFrom(installing, 'install-failed', result.detail.slice(0, 256)));
  }
  return trial(deps, { phase: 'trial', attempt, target: installing.target, previous: running, boots: 0 });
}

/** Makes updates/previous.deb a package of the running version. */
async function keepPrevious(deps: GuardDeps, running: string): Promise<boolean> {
  const p = paths(deps);
  if ((await exists(p.current)) && (await deps.packageVersion(p.current)) === running) {
    await rename(p.current, p.previous);
    return true;
  }
  if ((await exists(p.previous)) && (await deps.packageVersion(p.previous)) === running) return true;
  const temp = `${p.previous}.tmp`;
  if (!(await deps.repackInstalled(temp))) return false;
  await rename(temp, p.previous);
  return (await deps.packageVersion(p.previous)) === running;
}

async function trial(deps: GuardDeps, state: Extract<UpdateState, { phase: 'trial' }>): Promise<GuardResult> {
  const p = paths(deps);
  if (state.boots > deps.maxTrialBoots) {
    return rollBack(deps, backFrom(state, 'too-many-boots'));
  }
  await writeUpdateState(p.state, state);
  const startMs = deps.nowMs();
  deps.log.info({ target: state.target, trialMs: deps.trialMs, boots: state.boots }, 'update on trial');
  while (deps.nowMs() - startMs < deps.trialMs) {
    if (await deps.proven(state.target, startMs)) {
      if (await exists(p.incoming)) await rename(p.incoming, p.current);
      await finish(deps, {
        attempt: state.attempt,
        version: state.target,
        outcome: 'committed',
        atMs: deps.nowMs(),
      });
      deps.log.info({ version: state.target }, 'update committed');
      return { outcome: 'committed', version: state.target };
    }
    await deps.sleep(deps.pollMs);
  }
  return rollBack(deps, backFrom(state, 'health-timeout'));
}

async function rollBack(
  deps: GuardDeps,
  state: Extract<UpdateState, { phase: 'rolling-back' }>,
): Promise<GuardResult> {
  const p = paths(deps);
  await writeUpdateState(p.state, state);
  deps.log.warn({ target: state.target, previous: state.previous, reason: state.reason }, 'rolling back');
  const result = await deps.install(p.previous);
  if (!result.ok) {
    // Stays in rolling-back: the unit fails, systemd runs the guard again, and so does every boot.
    deps.log.warn({ detail: result.detail }, 'rollback install failed; will retry');
    return { outcome: 'rollback-failed', detail: result.detail };
  }
  await rm(p.incoming, { force: true });
  const last = {
    attempt: state.attempt,
    version: state.target,
    outcome: 'failed' as const,
    reason: state.reason,
    atMs: deps.nowMs(),
    ...(state.detail === undefined ? {} : { detail: state.detail }),
  };
  await finish(deps, last);
  return { outcome: 'rolled-back', version: state.previous, reason: state.reason };
}

type Step = Extract<UpdateState, { phase: 'installing' | 'trial' }>;

function backFrom(
  state: Step,
  reason: string,
  detail?: string,
): Extract<UpdateState, { phase: 'rolling-back' }> {
  return {
    phase: 'rolling-back',
    attempt: state.attempt,
    target: state.target,
    previous: state.previous,
    reason,
    ...(detail === undefined ? {} : { detail }),
  };
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}
