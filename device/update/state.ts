// The update's persisted state machine, kept by the root-side guard in <stateDir>/updates/state.json
// (atomic writes: temp file, fsync, rename, fsync the directory). Each phase is written BEFORE the
// step it names starts, so after a power cut at any moment the guard, run again at boot, knows
// which step may have been torn and repairs from there:
//
//   idle ──request verified──▶ installing ──dpkg ok──▶ trial ──proven──▶ idle (committed)
//                                  │                     │ timeout / too many boots
//                                  │ dpkg failed, or     ▼
//                                  └─cut mid-dpkg──▶ rolling-back ──previous reinstalled──▶ idle (failed)
//
// `rolling-back` is re-entered until the previous package is installed again; dpkg -i of the same
// .deb is idempotent, so repeating it after another cut is safe.
import { z } from 'zod';
import { schemaVersion } from '../protocol/common.js';
import type { UpdateEvent } from '../protocol/update.js';
import { readJsonFile, writeFileAtomic } from '../state/index.js';

const version = z.string().min(1).max(64);
const attempt = z.string().min(1).max(64);

export const UpdateOutcome = z
  .object({
    attempt,
    version,
    outcome: z.enum(['committed', 'failed']),
    reason: z.string().max(64).optional(),
    detail: z.string().max(256).optional(),
    atMs: z.number().int().nonnegative(),
  })
  .strict();
export type UpdateOutcome = z.infer<typeof UpdateOutcome>;

export const UpdateState = z.discriminatedUnion('phase', [
  z.object({ phase: z.literal('idle'), last: UpdateOutcome.optional() }).strict(),
  z.object({ phase: z.literal('installing'), attempt, target: version, previous: version }).strict(),
  z
    .object({
      phase: z.literal('trial'),
      attempt,
      target: version,
      previous: version,
      /** Boots (guard starts) seen during the trial; too many means it never proves itself. */
      boots: z.number().int().nonnegative(),
    })
    .strict(),
  z
    .object({
      phase: z.literal('rolling-back'),
      attempt,
      target: version,
      previous: version,
      reason: z.string().max(64),
      detail: z.string().max(256).optional(),
    })
    .strict(),
]);
export type UpdateState = z.infer<typeof UpdateState>;

export const stateFileName = 'state.json';

export async function readUpdateState(path: string): Promise<{ state: UpdateState; problem?: string }> {
  const read = await readJsonFile(path, UpdateState);
  if (read.status === 'ok') return { state: read.value };
  if (read.status === 'missing') return { state: { phase: 'idle' } };
  // Atomic writes never leave a torn file; a corrupt one was written by something else. Idle is
  // the safe reading: it installs nothing, and the running version stays.
  return { state: { phase: 'idle' }, problem: read.detail };
}

/** 0644: the guard is root, and the service (its own user) reads the state to report outcomes. */
export function writeUpdateState(path: string, state: UpdateState): Promise<void> {
  return writeFileAtomic(path, `${JSON.stringify(UpdateState.parse(state))}\n`, 0o644);
}

/** The outcome the service has not reported yet (`update-committed` / `update-failed`), if any. */
export function unreportedOutcome(
  state: UpdateState,
  lastReportedAttempt: string | null,
): UpdateOutcome | null {
  if (state.phase !== 'idle' || !state.last) return null;
  return state.last.attempt === lastReportedAttempt ? null : state.last;
}

/** The event that reports an outcome (`update-committed` or `update-failed` with its reason). */
export function outcomeEvent(outcome: UpdateOutcome, runningVersion: string, atMs: number): UpdateEvent {
  return {
    schemaVersion,
    type: outcome.outcome === 'committed' ? 'update-committed' : 'update-failed',
    version: outcome.version,
    running: runningVersion,
    ...(outcome.reason === undefined ? {} : { reason: outcome.reason }),
    ...(outcome.detail === undefined ? {} : { detail: outcome.detail }),
    at: new Date(atMs).toISOString(),
  };
}
