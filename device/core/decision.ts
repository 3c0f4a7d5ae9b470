// The rules that decide whether anyone may look now, and whether a running view must stop.
// Pure functions of plain data: no clock, no IO. The supervisor applies them at every event.
import type { Verified } from '../auth/verify.js';
import type { EndReason, RefusalReason } from '../protocol/reasons.js';
import type { GrantClaims, ScheduleClaims, ViewMode } from '../protocol/tokens.js';
import { openWindowAt } from '../schedule/windows.js';

export interface Limits {
  maxViewDurationS: number;
  maxGrantLifetimeS: number;
  nbfLeewayS: number;
}

/** The device conditions the privacy invariant depends on. */
export interface Conditions {
  privacyOn: boolean;
  clockTrusted: boolean;
  ledFault: boolean;
}

export interface DecisionInput {
  nowMs: number;
  deviceId: string;
  timeZone: string;
  limits: Limits;
  /** The verified schedule in use, if any. */
  schedule: ScheduleClaims | undefined;
  conditions: Conditions;
  viewActive: boolean;
  /** Nonces already used, with their grant's expiry in epoch seconds. */
  usedNonces: Readonly<Record<string, number>>;
  grant: Verified<GrantClaims>;
}

export type Decision =
  | {
      granted: true;
      claims: GrantClaims;
      viewMode: ViewMode;
      /** The view must have ended by then: the first of grant expiry, maximum duration and window end. */
      endsAtMs: number;
    }
  | { granted: false; reason: RefusalReason; detail: string };

function refuse(reason: RefusalReason, detail: string): Decision {
  return { granted: false, reason, detail };
}

export function decide(input: DecisionInput): Decision {
  const { grant, nowMs, limits, conditions } = input;
  if (!grant.ok) return refuse(grant.reason, grant.detail);
  const claims = grant.claims;
  if (claims.aud !== input.deviceId) return refuse('wrong-device', `grant is for ${claims.aud}`);
  if (claims.exp - claims.nbf > limits.maxGrantLifetimeS) {
    return refuse(
      'malformed',
      `grant lifetime ${claims.exp - claims.nbf} s exceeds ${limits.maxGrantLifetimeS} s`,
    );
  }
  // Without a trusted clock nbf/exp and the windows mean nothing.
  if (!conditions.clockTrusted) return refuse('clock-unsynced', 'clock not synchronised');
  const nowS = nowMs / 1000;
  if (nowS < claims.nbf - limits.nbfLeewayS) return refuse('not-yet-valid', `valid from ${claims.nbf}`);
  if (nowS >= claims.exp) return refuse('expired', `expired at ${claims.exp}`);
  if (Object.hasOwn(input.usedNonces, claims.jti)) return refuse('replayed', 'nonce already used');
  if (conditions.privacyOn) return refuse('privacy-on', 'privacy mode is on');
  if (conditions.ledFault) return refuse('led-fault', 'viewing LED fault');
  const schedule = input.schedule;
  if (!schedule || nowS < schedule.nbf || nowS >= schedule.exp) {
    return refuse('no-schedule', schedule ? `schedule v${schedule.version} not valid now` : 'no schedule');
  }
  const window = openWindowAt(nowMs, schedule, input.timeZone);
  if (!window) return refuse('outside-window', 'no window open');
  if (input.viewActive) return refuse('view-active', 'one viewer at a time');
  const maxDurationS = Math.min(claims.maxDurS, limits.maxViewDurationS);
  const endsAtMs = Math.min(claims.exp * 1000, nowMs + maxDurationS * 1000, window.endMs);
  return { granted: true, claims, viewMode: window.viewMode, endsAtMs };
}

export interface RunningView {
  claims: GrantClaims;
  startedAtMs: number;
  endsAtMs: number;
}

export interface EndCheckInput {
  nowMs: number;
  timeZone: string;
  limits: Limits;
  schedule: ScheduleClaims | undefined;
  conditions: Conditions;
  view: RunningView;
}

/** Why a running view must stop now, or undefined if it may go on. */
export function mustEnd(input: EndCheckInput): EndReason | undefined {
  const { conditions, view, nowMs, schedule } = input;
  if (conditions.privacyOn) return 'privacy-on';
  if (conditions.ledFault) return 'led-fault';
  if (!conditions.clockTrusted) return 'clock-unsynced';
  if (nowMs >= view.claims.exp * 1000) return 'grant-expired';
  const maxDurationS = Math.min(view.claims.maxDurS, input.limits.maxViewDurationS);
  if (nowMs >= view.startedAtMs + maxDurationS * 1000) return 'max-duration';
  if (!schedule || !openWindowAt(nowMs, schedule, input.timeZone)) return 'window-end';
  if (nowMs >= view.endsAtMs) return 'window-end';
  return undefined;
}

/** Drops nonces whose grants have expired; they can no longer be replayed anyway. */
export function pruneNonces(nonces: Readonly<Record<string, number>>, nowMs: number): Record<string, number> {
  const kept: Record<string, number> = {};
  for (const [nonce, expS] of Object.entries(nonces)) if (expS * 1000 > nowMs) kept[nonce] = expS;
  return kept;
}
