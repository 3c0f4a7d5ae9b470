// The running service's side of updates, in one place so that service.ts only starts, feeds and
// stops it. It takes the manifest from tk/<id>/update (latest wins), asks decideUpdate whether now
// is the time (never during a look, never inside a check-in window or just before one opens, only
// forward unless the manifest says rollback, not before `nbf`), downloads and hands over to the
// root-side guard (client.ts), and asks again at every tick while it has to wait. The same tick
// writes the proof the guard waits for while this version is on trial, and reports the guard's
// outcome (`update-committed` / `update-failed`) once, through the persisted outbox. Every step
// is reported as an event (docs/protocol.md, "Updates").
import { createHash } from 'node:crypto';
import { rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import type { KeySet } from '../auth/index.js';
import type { Clock } from '../clock/index.js';
import type { Logger } from '../log/index.js';
import { TokenBucket } from '../mqtt/index.js';
import { schemaVersion } from '../protocol/common.js';
import { type PackageArch, SemVer, type UpdateEvent, UpdateMessage } from '../protocol/update.js';
import { readJsonFile, writeFileAtomic } from '../state/index.js';
import { type HandleResult, handleManifest, type UpdateProof, writeUpdateProof } from './client.js';
import type { UpdateFacts } from './decide.js';
import {
  outcomeEvent,
  readUpdateState,
  stateFileName,
  type UpdateState,
  unreportedOutcome,
} from './state.js';

/** A window that opens within this time counts as open: an update restarts the service. */
export const updateLeadMs = 15 * 60_000;
/** After a failed download, the same manifest is tried again this much later. */
export const downloadRetryMs = 10 * 60_000;

export interface UpdateAgentDeps {
  stateDir: string;
  deviceId: string;
  keys: KeySet;
  /** This machine's package architecture; undefined: updates are refused (`no-package-for-arch`). */
  arch: PackageArch | undefined;
  /** PEM of the provisioned CA; undefined (a plain loopback demo broker): updates are refused. */
  ca: string | undefined;
  /** The running firmware version (package.json). */
  runningVersion: string;
  clock: Clock;
  log: Logger;
  maxMessageBytes: number;
  /**
   * Whether the root-side update guard is installed, asked before each decision. Without it nothing
   * would ever take a handed-over update: manifests are refused (`no-update-guard`).
   */
  guardInstalled(): Promise<boolean>;
  /** How often to ask again, write the proof and look for the guard's outcome. */
  checkIntervalMs: number;
  /** What the decision needs from the running service, read at the moment of asking. */
  conditions(): { viewActive: boolean; clockTrusted: boolean; windowOpenUntilMs: number | null };
  /** What the guard waits for: ready, online at the broker, the service's own checks pass. */
  proof(): Promise<Omit<UpdateProof, 'version' | 'atMs'>>;
  /** Sends an event through the persisted outbox. */
  report(event: UpdateEvent): Promise<void>;
}

/** What the agent remembers across restarts: the outcome it reported, the manifest it handed over. */
const Memory = z
  .object({
    reportedAttempt: z.string().max(64).nullable(),
    handedOver: z
      .string()
      .regex(/^[0-9a-f]{64}$/)
      .nullable(),
  })
  .strict();
type Memory = z.infer<typeof Memory>;

const memoryFile = 'update-client.json';
const proofFile = 'update-proof.json';

export class UpdateAgent {
  readonly #deps: UpdateAgentDeps;
  readonly #bucket: TokenBucket;
  readonly #abort = new AbortController();
  #memory: Memory = { reportedAttempt: null, handedOver: null };
  /** The latest manifest token not yet acted on (latest wins). */
  #pending: string | undefined;
  #retryAtMonoMs = 0;
  /** What was last reported for each recent manifest, so a re-delivery does not repeat it. */
  #reported = new Map<string, string>();
  #busy: Promise<void> | undefined;
  #again = false;
  #timer: unknown;
  #started = false;
  #stopped = false;
  #rejected = 0;

  constructor(deps: UpdateAgentDeps) {
    this.#deps = deps;
    this.#bucket = new TokenBucket({ perS: 1, burst: 5, now: deps.clock.monotonicMs });
  }

  /** Update messages refused as malformed or oversized. */
  get rejected(): number {
    return this.#rejected;
  }

  async start(): Promise<void> {
    if (this.#started || this.#stopped) return;
    this.#started = true;
    const read = await readJsonFile(join(this.#deps.stateDir, memoryFile), Memory);
    if (read.status === 'ok') this.#memory = read.value;
    else if (read.status === 'corrupt')
      this.#deps.log.warn({ detail: read.detail }, 'update memory unreadable');
    if (!SemVer.safeParse(this.#deps.runningVersion).success) {
      this.#deps.log.warn({ running: this.#deps.runningVersion }, 'running version unknown: no updates');
    }
    this.#timer = this.#deps.clock.setInterval(() => this.poke(), this.#deps.checkIntervalMs);
    this.poke();
    await this.#busy;
  }

  /** A message on tk/<id>/update. Never throws. */
  onMessage(payload: Buffer): void {
    if (this.#stopped) return;
    if (payload.length === 0) {
      // The retained manifest was cleared: nothing to act on any more.
      this.#pending = undefined;
      return;
    }
    const token = this.#parse(payload);
    if (token === undefined) return;
    this.#pending = token;
    this.#retryAtMonoMs = 0;
    // Over the limit, it waits for the next tick: latest wins, nothing is lost but the haste.
    if (this.#bucket.take()) this.poke();
  }

  #parse(payload: Buffer): string | undefined {
    const reject = (detail: string) => {
      this.#rejected += 1;
      this.#deps.log.warn({ topic: 'update', detail }, 'inbound message refused');
      return undefined;
    };
    if (payload.length > this.#deps.maxMessageBytes) return reject(`${payload.length} bytes is too large`);
    let raw: unknown;
    try {
      raw = JSON.parse(payload.toString('utf8'));
    } catch {
      return reject('not JSON');
    }
    const parsed = UpdateMessage.safeParse(raw);
    return parsed.success ? parsed.data.token : reject(parsed.error.issues[0]?.message ?? 'invalid');
  }

  /** Something the decision depends on changed (a look ended, the clock, a tick): look again. */
  poke(): void {
    if (!this.#started || this.#stopped) return;
    if (this.#busy) {
      this.#again = true;
      return;
    }
    this.#busy = this.#tick()
      .catch((error: Error) => this.#deps.log.warn({ err: error.message }, 'update check failed'))
      .finally(() => {
        this.#busy = undefined;
        if (this.#again && !this.#stopped) {
          this.#again = false;
          this.poke();
        }
      });
  }

  async #tick(): Promise<void> {
    const { state, problem } = await readUpdateState(join(this.#deps.stateDir, 'updates', stateFileName));
    if (problem) this.#deps.log.warn({ problem }, 'update guard state unreadable');
    await this.#reportOutcome(state);
    await this.#prove(state);
    await this.#consider(state);
  }

  /** The guard's last outcome, once: at the first start after it, and as soon as it is written. */
  async #reportOutcome(state: UpdateState): Promise<void> {
    const outcome = unreportedOutcome(state, this.#memory.reportedAttempt);
    if (!outcome) return;
    await this.#deps.report(outcomeEvent(outcome, this.#deps.runningVersion, this.#deps.clock.now()));
    await this.#remember({ reportedAttempt: outcome.attempt });
    this.#deps.log.info({ ...outcome }, 'update outcome reported');
  }

  /** While this version is on trial, it proves itself: ready, online, its own checks pass. */
  async #prove(state: UpdateState): Promise<void> {
    if (state.phase !== 'trial' || state.target !== this.#deps.runningVersion) return;
    const proof = await this.#deps.proof();
    if (!proof.ready || !proof.brokerOnline || !proof.checksPass) return;
    await writeUpdateProof(join(this.#deps.stateDir, proofFile), {
      version: this.#deps.runningVersion,
      atMs: this.#deps.clock.now(),
      ...proof,
    });
  }

  async #consider(state: UpdateState): Promise<void> {
    const token = this.#pending;
    if (token === undefined || this.#deps.clock.monotonicMs() < this.#retryAtMonoMs) return;
    const id = createHash('sha256').update(token).digest('hex');
    if (id === this.#memory.handedOver) {
      // Handed over before (the retained manifest comes again at every connect): done with it.
      this.#pending = undefined;
      return;
    }
    const deps = this.#deps;
    // Without its own version it cannot tell forward from back; without a CA or an architecture it
    // has nothing to download with or for.
    const unable = !SemVer.safeParse(deps.runningVersion).success
      ? 'running-version-unknown'
      : !deps.arch
        ? 'no-package-for-arch'
        : !deps.ca
          ? 'no-ca'
          : undefined;
    if (unable || !deps.arch || !deps.ca) {
      this.#pending = undefined;
      const reason = unable ?? 'no-ca';
      deps.log.warn({ reason }, 'update refused: this device cannot download packages');
      await this.#once(id, 'update-refused', undefined, reason);
      return;
    }
    const inboxDir = join(deps.stateDir, 'update-inbox');
    const handedOverBefore = await stat(join(inboxDir, 'request.json')).then(
      () => true,
      () => false,
    );
    const guardInstalled = await deps.guardInstalled();
    if (!guardInstalled && handedOverBefore) {
      // Handed over while no guard was there to take it (or it was removed since): nothing ever will.
      deps.log.warn('update guard not installed: the waiting hand-over is removed');
      await rm(join(inboxDir, 'request.json'), { force: true });
      await rm(join(inboxDir, 'package.deb'), { force: true });
    }
    const inProgress = state.phase !== 'idle' || (guardInstalled && handedOverBefore);
    const result = await handleManifest(token, {
      inboxDir,
      keys: deps.keys,
      deviceId: deps.deviceId,
      arch: deps.arch,
      ca: deps.ca,
      signal: this.#abort.signal,
      facts: () => this.#facts(inProgress, guardInstalled),
    });
    // Stopping (an aborted download is no failure), or replaced meanwhile: the next pass takes it.
    if (this.#stopped || this.#pending !== token) return;
    await this.#act(id, result);
  }

  #facts(
    updateInProgress: boolean,
    guardInstalled: boolean,
  ): Omit<UpdateFacts, 'manifest' | 'deviceId' | 'arch'> {
    const { conditions, runningVersion, clock } = this.#deps;
    const nowMs = clock.now();
    return { ...conditions(), runningVersion, nowMs, updateInProgress, guardInstalled };
  }

  async #act(id: string, result: HandleResult): Promise<void> {
    const { log } = this.#deps;
    switch (result.status) {
      case 'refused':
        this.#pending = undefined;
        // The manifest of the version that runs (retained, re-sent at every connect) is no news.
        if (result.reason === 'not-newer' && result.version === this.#deps.runningVersion) return;
        log.warn({ reason: result.reason, version: result.version }, 'update refused');
        await this.#once(id, 'update-refused', result.version, result.reason, result.detail);
        return;
      case 'waiting': {
        const { reason } = result.decision;
        log.info({ reason, retryAtMs: result.decision.retryAtMs }, 'update waits');
        await this.#once(id, 'update-waiting', result.version, reason);
        return;
      }
      case 'failed':
        log.warn({ reason: result.reason, detail: result.detail }, 'update download failed');
        await this.#once(id, 'update-failed', result.version, result.reason, result.detail);
        if (result.reason === 'download-failed') {
          this.#retryAtMonoMs = this.#deps.clock.monotonicMs() + downloadRetryMs;
        } else this.#pending = undefined;
        return;
      case 'handed-over':
        this.#pending = undefined;
        await this.#remember({ handedOver: id });
        log.info({ version: result.version, bytes: result.bytes }, 'update handed over to the guard');
        await this.#event('update-downloaded', result.version, undefined, `${result.bytes} bytes`);
        await this.#event('update-installing', result.version);
        return;
    }
  }

  /** Reports what happened to a manifest, unless the same was reported for it already. */
  async #once(id: string, type: UpdateEvent['type'], version?: string, reason?: string, detail?: string) {
    const key = `${type}:${reason ?? ''}`;
    if (this.#reported.get(id) === key) return;
    this.#reported.set(id, key);
    while (this.#reported.size > 16) this.#reported.delete(this.#reported.keys().next().value as string);
    await this.#event(type, version, reason, detail);
  }

  #event(type: UpdateEvent['type'], version?: string, reason?: string, detail?: string): Promise<void> {
    return this.#deps.report({
      schemaVersion,
      type,
      ...(version !== undefined && SemVer.safeParse(version).success ? { version } : {}),
      ...(SemVer.safeParse(this.#deps.runningVersion).success ? { running: this.#deps.runningVersion } : {}),
      ...(reason === undefined ? {} : { reason: reason.slice(0, 64) }),
      ...(detail === undefined ? {} : { detail: detail.slice(0, 256) }),
      at: new Date(this.#deps.clock.now()).toISOString(),
    });
  }

  async #remember(change: Partial<Memory>): Promise<void> {
    this.#memory = { ...this.#memory, ...change };
    await writeFileAtomic(join(this.#deps.stateDir, memoryFile), `${JSON.stringify(this.#memory)}\n`);
  }

  /** Stops the tick, aborts a download in progress and waits for the pass to end. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#deps.clock.clearInterval(this.#timer);
    this.#abort.abort();
    await this.#busy;
  }
}

/** The Debian architecture of this Node process, or undefined where no package is built. */
export function packageArchOf(nodeArch: string): PackageArch | undefined {
  const map: Record<string, PackageArch> = { x64: 'amd64', arm64: 'arm64', arm: 'armhf' };
  return map[nodeArch];
}
