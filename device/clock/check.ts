// Is the clock trusted? A Pi has no real-time clock: after a power cut it starts from a stale time
// until NTP sets it, and an NTP answer is not authenticated. Until every part agrees, every grant is
// refused (clock-unsynced), since nbf/exp and the windows mean nothing. The parts, all required:
// the time is plausible (not before this code was built), the kernel says it is synchronised
// (adjtimex; timesyncd's flag file only where adjtimex cannot be read), and it is not below the
// persisted time floor. Each part is a small function; clockCheck() composes them.
import { access } from 'node:fs/promises';
import { type Logger, silentLogger } from '../log/index.js';
import { earliestPlausibleMs, type FloorGuard } from './floor.js';
import { isoTime } from './format.js';
import { adjtimexReader, interpretKernelTime, type KernelTimeReader, type SyncVerdict } from './kernel.js';

/**
 * Why the clock is or is not trusted: the first failing part, most serious first; `step` is the
 * ClockWatch's verdict between a step and the check that follows it.
 */
export type ClockKind = 'trusted' | 'below-floor' | 'implausible' | 'unsynchronised' | 'step' | 'error';

export interface ClockVerdict {
  trusted: boolean;
  detail: string;
  kind: ClockKind;
}

/** The service's clock check: `kind` is optional so that simple fakes stay simple. */
export type ClockCheck = () => Promise<{ trusted: boolean; detail: string; kind?: ClockKind }>;

/** Is the clock synchronised to a time source? */
export type SyncCheck = () => Promise<SyncVerdict>;

/** timesyncd's flag file: created at the first synchronisation, never removed. The fallback only. */
export function flagFileSyncCheck(syncedFile: string): SyncCheck {
  return async () => {
    try {
      await access(syncedFile);
      return { synchronised: true, detail: `${syncedFile} present` };
    } catch {
      return { synchronised: false, detail: `${syncedFile} absent: not synchronised yet` };
    }
  };
}

/**
 * The kernel's synchronisation state through adjtimex. Where it cannot be read (no koffi build for the
 * platform, no libc), the flag file decides, and that is logged once as a warning.
 */
export function kernelSyncCheck(deps: {
  syncedFile: string;
  log: Logger;
  read?: KernelTimeReader;
}): SyncCheck {
  const read = deps.read ?? adjtimexReader;
  const fallback = flagFileSyncCheck(deps.syncedFile);
  const log = deps.log.child({ mod: 'clock' });
  let warned = false;
  return async () => {
    const result = read();
    if (result.ok) return interpretKernelTime(result.value);
    if (!warned) {
      warned = true;
      log.warn({ detail: result.detail }, 'cannot read the kernel clock state; using the flag file');
    }
    const flag = await fallback();
    return { synchronised: flag.synchronised, detail: `${result.detail}; ${flag.detail}` };
  };
}

const trustedByConfiguration: SyncCheck = async () => ({
  synchronised: true,
  detail: 'trusted by configuration',
});

/** Composes the parts: plausible AND synchronised AND not below the floor. A trusted check raises the floor. */
export function combinedClockCheck(deps: {
  now(): number;
  sync: SyncCheck;
  floor?: FloorGuard;
}): () => Promise<ClockVerdict> {
  return async () => {
    const nowMs = deps.now();
    const failures: Array<{ kind: Exclude<ClockKind, 'trusted'>; detail: string }> = [];
    const details: string[] = [];
    if (!Number.isFinite(nowMs) || nowMs < earliestPlausibleMs)
      failures.push({ kind: 'implausible', detail: `clock reads ${isoTime(nowMs)}` });
    if (deps.floor) {
      const floor = deps.floor.check(nowMs);
      if (floor.trusted) details.push(floor.detail);
      else failures.push({ kind: 'below-floor', detail: floor.detail });
    }
    try {
      const sync = await deps.sync();
      if (sync.synchronised) details.unshift(sync.detail);
      else failures.push({ kind: 'unsynchronised', detail: sync.detail });
    } catch (error) {
      failures.push({ kind: 'error', detail: `cannot check synchronisation: ${(error as Error).message}` });
    }
    if (failures.length > 0) {
      const order: ClockKind[] = ['below-floor', 'implausible', 'unsynchronised', 'error'];
      failures.sort((a, b) => order.indexOf(a.kind) - order.indexOf(b.kind));
      return {
        trusted: false,
        kind: failures[0]!.kind,
        detail: failures.map((failure) => failure.detail).join('; '),
      };
    }
    // Only a reading that every part trusts may raise the floor; the one taken before the (awaited)
    // sync check is the lower, so the safer.
    deps.floor?.advanceTo(nowMs);
    return { trusted: true, kind: 'trusted', detail: details.join('; ') };
  };
}

export type ClockMode = 'kernel' | 'timesyncd' | 'file' | 'trusted';

/**
 * The clock check for a config's `clock` section. `kernel`: adjtimex (flag file as fallback);
 * `timesyncd`/`file`: the flag file only (as before); `trusted`: demo and tests. Plausibility and,
 * when given, the floor apply in every mode.
 */
export function clockCheck(deps: {
  mode: ClockMode;
  syncedFile: string;
  now(): number;
  floor?: FloorGuard;
  log?: Logger;
  readKernel?: KernelTimeReader;
}): () => Promise<ClockVerdict> {
  let sync: SyncCheck;
  switch (deps.mode) {
    case 'trusted':
      sync = trustedByConfiguration;
      break;
    case 'timesyncd':
    case 'file':
      sync = flagFileSyncCheck(deps.syncedFile);
      break;
    case 'kernel':
      sync = kernelSyncCheck({
        syncedFile: deps.syncedFile,
        log: deps.log ?? silentLogger(),
        ...(deps.readKernel ? { read: deps.readKernel } : {}),
      });
      break;
  }
  return combinedClockCheck({ now: deps.now, sync, ...(deps.floor ? { floor: deps.floor } : {}) });
}
