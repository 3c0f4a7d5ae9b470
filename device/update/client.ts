// The service's side of an update: verify the manifest, decide (decide.ts), download with the
// provisioned CA and check the hash, then hand package and manifest to the root-side guard through
// <stateDir>/update-inbox/ (package first, request last: the request file is what starts the guard,
// via systemd/trygghetskamera-update.path). The service never installs anything itself.
import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { type KeySet, verifyUpdate } from '../auth/index.js';
import type { PackageArch } from '../protocol/update.js';
import { writeFileAtomic } from '../state/index.js';
import { decideUpdate, type UpdateDecision, type UpdateFacts } from './decide.js';
import { downloadPackage } from './download.js';

export interface UpdateClientDeps {
  inboxDir: string;
  keys: KeySet;
  deviceId: string;
  arch: PackageArch;
  /** PEM of the provisioned CA (config broker.caFile): the update server must chain to it. */
  ca: string;
  /** Aborts a download in progress. */
  signal?: AbortSignal;
  /** The facts decideUpdate needs besides the manifest, read at the moment of asking. */
  facts(): Omit<UpdateFacts, 'manifest' | 'deviceId' | 'arch'>;
}

export type HandleResult =
  /** `version`: the manifest's, once its signature verified. */
  | { status: 'refused'; reason: string; detail?: string; version?: string }
  | { status: 'waiting'; decision: Extract<UpdateDecision, { action: 'wait' }>; version: string }
  | { status: 'handed-over'; version: string; bytes: number }
  | { status: 'failed'; reason: 'download-failed' | 'hash-mismatch'; detail: string; version: string };

/** Acts on one manifest token. A `waiting` result is asked again at `retryAtMs` or the next event. */
export async function handleManifest(token: string, deps: UpdateClientDeps): Promise<HandleResult> {
  const verified = await verifyUpdate(token, deps.keys);
  if (!verified.ok) return { status: 'refused', reason: verified.reason, detail: verified.detail };
  const decide = () =>
    decideUpdate({ ...deps.facts(), manifest: verified.claims, deviceId: deps.deviceId, arch: deps.arch });
  const { version } = verified.claims;
  const decision = decide();
  if (decision.action === 'refuse') return { status: 'refused', reason: decision.reason, version };
  if (decision.action === 'wait') return { status: 'waiting', decision, version };
  await mkdir(deps.inboxDir, { recursive: true, mode: 0o700 });
  const to = join(deps.inboxDir, 'package.deb');
  const downloaded = await downloadPackage({
    url: decision.artifact.url,
    sha256: decision.artifact.sha256,
    ca: deps.ca,
    to,
    ...(decision.artifact.sizeBytes === undefined ? {} : { maxBytes: decision.artifact.sizeBytes }),
    ...(deps.signal ? { signal: deps.signal } : {}),
  });
  if (!downloaded.ok) {
    await rm(to, { force: true });
    return { status: 'failed', reason: downloaded.reason, detail: downloaded.detail, version };
  }
  // The download took time: a look or a window may have begun meanwhile. Asked again next time.
  const after = decide();
  if (after.action !== 'install') {
    await rm(to, { force: true });
    return after.action === 'wait'
      ? { status: 'waiting', decision: after, version }
      : { status: 'refused', reason: after.reason, version };
  }
  await writeFileAtomic(join(deps.inboxDir, 'request.json'), `${JSON.stringify({ token })}\n`);
  return { status: 'handed-over', version, bytes: downloaded.bytes };
}

/**
 * The proof the guard waits for during a trial (<stateDir>/update-proof.json), written by the
 * service once it is ready, online at the broker and its own health checks pass.
 */
export interface UpdateProof {
  version: string;
  atMs: number;
  ready: boolean;
  brokerOnline: boolean;
  checksPass: boolean;
}

export function writeUpdateProof(path: string, proof: UpdateProof): Promise<void> {
  return writeFileAtomic(path, `${JSON.stringify(proof)}\n`);
}

/** Whether the proof file says `version` proved itself since `sinceMs` (read by the root-side guard). */
export async function provenSince(path: string, version: string, sinceMs: number): Promise<boolean> {
  try {
    const proof = JSON.parse(await readFile(path, 'utf8')) as Partial<Record<keyof UpdateProof, unknown>>;
    return (
      proof.version === version &&
      typeof proof.atMs === 'number' &&
      proof.atMs >= sinceMs &&
      proof.ready === true &&
      proof.brokerOnline === true &&
      proof.checksPass === true
    );
  } catch {
    return false;
  }
}
