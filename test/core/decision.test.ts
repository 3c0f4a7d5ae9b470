// One example per refusal reason, in the order the rules check them, and the end rules for a running view.
import { describe, expect, it } from 'vitest';
import { type DecisionInput, decide, mustEnd, pruneNonces } from '../../device/core/index.js';
import type { GrantClaims } from '../../device/protocol/tokens.js';
import { grantClaims, inWindowMs, nightlySchedule } from '../../scripts/devstack/tokens.js';

const deviceId = 'dev-test';
// Tuesday 2026-11-24 12:00 local: outside.
const outsideMs = Date.UTC(2026, 10, 24, 11, 0);
const limits = { maxViewDurationS: 120, maxGrantLifetimeS: 600, nbfLeewayS: 5 };

function input(overrides: Partial<DecisionInput> = {}, claims: Partial<GrantClaims> = {}): DecisionInput {
  const nowMs = overrides.nowMs ?? inWindowMs;
  return {
    nowMs,
    deviceId,
    timeZone: 'Europe/Stockholm',
    limits,
    schedule: nightlySchedule(deviceId),
    conditions: { privacyOn: false, clockTrusted: true, ledFault: false },
    viewActive: false,
    usedNonces: {},
    grant: { ok: true, kid: 'central-1', claims: grantClaims(deviceId, nowMs, claims) },
    ...overrides,
  };
}

function reasonOf(decisionInput: DecisionInput): string {
  const decision = decide(decisionInput);
  return decision.granted ? 'granted' : decision.reason;
}

describe('decide', () => {
  it('grants a valid grant inside a window when every condition holds', () => {
    const decision = decide(input());
    expect(decision.granted).toBe(true);
  });

  it('ends the granted view at the earliest of expiry, maximum duration and window end', () => {
    const decision = decide(input({}, { maxDurS: 30 }));
    expect(decision.granted && decision.endsAtMs).toBe(inWindowMs + 30_000);
    const nearEnd = Date.UTC(2026, 10, 25, 5, 59); // 06:59 local; the window closes at 07:00
    const late = decide(input({ nowMs: nearEnd }, { maxDurS: 600 }));
    expect(late.granted && late.endsAtMs).toBe(Date.UTC(2026, 10, 25, 6, 0));
  });

  it('passes on the verification failure reasons unchanged', () => {
    for (const reason of ['malformed', 'unknown-key', 'bad-signature'] as const) {
      expect(reasonOf(input({ grant: { ok: false, reason, detail: 'x' } }))).toBe(reason);
    }
  });

  it('refuses a grant for another device', () => {
    expect(reasonOf(input({}, { aud: 'dev-other' }))).toBe('wrong-device');
  });

  it('refuses a grant whose lifetime exceeds the limit as malformed', () => {
    const nowS = inWindowMs / 1000;
    expect(reasonOf(input({}, { nbf: nowS - 10, exp: nowS + 700 }))).toBe('malformed');
  });

  it('refuses every grant while the clock is not trusted', () => {
    expect(reasonOf(input({ conditions: { privacyOn: false, clockTrusted: false, ledFault: false } }))).toBe(
      'clock-unsynced',
    );
  });

  it('refuses a grant that is not valid yet, beyond the leeway', () => {
    const nowS = inWindowMs / 1000;
    expect(reasonOf(input({}, { nbf: nowS + 6, exp: nowS + 100 }))).toBe('not-yet-valid');
    expect(reasonOf(input({}, { nbf: nowS + 4, exp: nowS + 100 }))).toBe('granted');
  });

  it('refuses an expired grant, at the very second of expiry', () => {
    const nowS = inWindowMs / 1000;
    expect(reasonOf(input({}, { nbf: nowS - 100, exp: nowS }))).toBe('expired');
  });

  it('refuses a grant whose nonce was already used', () => {
    const claims = grantClaims(deviceId, inWindowMs);
    const used = { [claims.jti]: claims.exp };
    expect(reasonOf(input({ usedNonces: used, grant: { ok: true, kid: 'k', claims } }))).toBe('replayed');
  });

  it('refuses while privacy is on', () => {
    expect(reasonOf(input({ conditions: { privacyOn: true, clockTrusted: true, ledFault: false } }))).toBe(
      'privacy-on',
    );
  });

  it('refuses while the viewing LED has a fault', () => {
    expect(reasonOf(input({ conditions: { privacyOn: false, clockTrusted: true, ledFault: true } }))).toBe(
      'led-fault',
    );
  });

  it('refuses without a schedule, and with one outside its validity', () => {
    expect(reasonOf(input({ schedule: undefined }))).toBe('no-schedule');
    const expired = nightlySchedule(deviceId, 1, {
      exp: inWindowMs / 1000 - 1,
      nbf: inWindowMs / 1000 - 100_000,
    });
    expect(reasonOf(input({ schedule: expired }))).toBe('no-schedule');
  });

  it('refuses outside every window', () => {
    expect(reasonOf(input({ nowMs: outsideMs }))).toBe('outside-window');
  });

  it('refuses while another view is active', () => {
    expect(reasonOf(input({ viewActive: true }))).toBe('view-active');
  });
});

describe('mustEnd', () => {
  const claims = grantClaims(deviceId, inWindowMs, { maxDurS: 60 });
  const view = { claims, startedAtMs: inWindowMs, endsAtMs: inWindowMs + 60_000 };
  const base = {
    nowMs: inWindowMs + 1000,
    timeZone: 'Europe/Stockholm',
    limits,
    schedule: nightlySchedule(deviceId),
    conditions: { privacyOn: false, clockTrusted: true, ledFault: false },
    view,
  };

  it('lets a view inside all its limits go on', () => {
    expect(mustEnd(base)).toBeUndefined();
  });

  it('names the reason a view must end', () => {
    expect(mustEnd({ ...base, conditions: { ...base.conditions, privacyOn: true } })).toBe('privacy-on');
    expect(mustEnd({ ...base, conditions: { ...base.conditions, ledFault: true } })).toBe('led-fault');
    expect(mustEnd({ ...base, conditions: { ...base.conditions, clockTrusted: false } })).toBe(
      'clock-unsynced',
    );
    expect(mustEnd({ ...base, nowMs: claims.exp * 1000 })).toBe('grant-expired');
    expect(mustEnd({ ...base, nowMs: inWindowMs + 60_000 })).toBe('max-duration');
    expect(mustEnd({ ...base, schedule: undefined })).toBe('window-end');
  });
});

describe('pruneNonces', () => {
  it('keeps only nonces of grants that have not expired', () => {
    expect(pruneNonces({ a: 100, b: 200 }, 150_000)).toEqual({ b: 200 });
  });
});
