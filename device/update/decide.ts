// Whether to act on a verified update manifest now: a pure function of plain facts, like the view
// rules in core/decision.ts. An update restarts the service, so it never happens during a look or
// inside a check-in window (it waits for the window to close), and versions only move forward
// unless the manifest says `rollback: true`.
import {
  compareVersions,
  type PackageArch,
  type UpdateArtifact,
  type UpdateClaims,
} from '../protocol/update.js';

export interface UpdateFacts {
  manifest: UpdateClaims;
  deviceId: string;
  arch: PackageArch;
  runningVersion: string;
  nowMs: number;
  clockTrusted: boolean;
  viewActive: boolean;
  /** The open check-in window's end, or null when no window is open. */
  windowOpenUntilMs: number | null;
  /** An earlier update is still downloading, installing or on trial. */
  updateInProgress: boolean;
  /**
   * The root-side update guard is installed (the Debian package installs it; install.sh does not).
   * Without it a handed-over update would wait for ever.
   */
  guardInstalled: boolean;
}

export type UpdateDecision =
  | { action: 'install'; artifact: UpdateArtifact }
  | {
      action: 'wait';
      reason: 'clock-unsynced' | 'not-yet-valid' | 'view-active' | 'inside-window' | 'update-in-progress';
      /** When to ask again; null: at the next event (view end, clock sync, update end). */
      retryAtMs: number | null;
    }
  | {
      action: 'refuse';
      reason: 'wrong-device' | 'expired' | 'not-newer' | 'no-package-for-arch' | 'no-update-guard';
    };

export function decideUpdate(facts: UpdateFacts): UpdateDecision {
  const { manifest } = facts;
  if (manifest.aud !== facts.deviceId) return { action: 'refuse', reason: 'wrong-device' };
  const artifact = manifest.packages[facts.arch];
  if (!artifact) return { action: 'refuse', reason: 'no-package-for-arch' };
  const order = compareVersions(manifest.version, facts.runningVersion);
  if (order === 0 || (order < 0 && manifest.rollback !== true))
    return { action: 'refuse', reason: 'not-newer' };
  if (!facts.guardInstalled) return { action: 'refuse', reason: 'no-update-guard' };
  // Validity times mean nothing on an untrusted clock; wait for it rather than refuse.
  if (!facts.clockTrusted) return { action: 'wait', reason: 'clock-unsynced', retryAtMs: null };
  if (manifest.exp !== undefined && facts.nowMs >= manifest.exp * 1000)
    return { action: 'refuse', reason: 'expired' };
  if (manifest.nbf !== undefined && facts.nowMs < manifest.nbf * 1000) {
    return { action: 'wait', reason: 'not-yet-valid', retryAtMs: manifest.nbf * 1000 };
  }
  if (facts.updateInProgress) return { action: 'wait', reason: 'update-in-progress', retryAtMs: null };
  if (facts.viewActive) return { action: 'wait', reason: 'view-active', retryAtMs: null };
  if (facts.windowOpenUntilMs !== null && facts.windowOpenUntilMs > facts.nowMs) {
    return { action: 'wait', reason: 'inside-window', retryAtMs: facts.windowOpenUntilMs };
  }
  return { action: 'install', artifact };
}
