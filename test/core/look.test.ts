// The view-session state machine as a pure function: each test feeds events with fixed instants and
// reads the state and the effects, in order. No clock, no IO, no supervisor.
import { describe, expect, it } from 'vitest';
import {
  type CoreConfig,
  type CoreState,
  type Effect,
  framesAllowed,
  type Instant,
  initialState,
  type LookEvent,
  maxWaitingRetries,
  transition,
} from '../../device/core/index.js';
import type { IceCandidate } from '../../device/protocol/index.js';
import { grantClaims, inWindowMs, nightlySchedule, testConsole } from '../../scripts/devstack/tokens.js';

const deviceId = 'dev-test';
const config: CoreConfig = {
  deviceId,
  timeZone: 'Europe/Stockholm',
  limits: { maxViewDurationS: 120, maxGrantLifetimeS: 600, nbfLeewayS: 5 },
  negotiationTimeoutMs: 10_000,
  floorToleranceMs: 120_000,
};
const schedule = nightlySchedule(deviceId);

function start(): CoreState {
  return initialState({
    conditions: { privacyOn: false, clockTrusted: true, ledFault: false },
    floorMs: 0,
    schedule: { claims: schedule, stored: { version: schedule.version, token: 'stored' } },
    nonces: {},
    counters: { refusals: {}, views: 0 },
  });
}

/** Runs events in order; returns the final state and every effect, with `at` as the instants. */
function run(
  state: CoreState,
  events: Array<[LookEvent, Instant?]>,
): { state: CoreState; effects: Effect[] } {
  const effects: Effect[] = [];
  let current = state;
  let now: Instant = { wallMs: inWindowMs, monoMs: 0 };
  for (const [event, at] of events) {
    now = at ?? now;
    const step = transition(current, event, now, config);
    current = step.state;
    effects.push(...step.effects);
  }
  return { state: current, effects };
}

const kinds = (effects: Effect[]) => effects.filter((e) => e.kind !== 'log').map((e) => e.kind);
const claims = grantClaims(deviceId, inWindowMs);
const request: LookEvent = {
  type: 'request',
  ref: 1,
  requestId: 'r1',
  grant: { ok: true, claims, kid: 'k' },
};
const sid = claims.sid;
const answerSdp = (fingerprint: string, ufrag = 'abcd') =>
  ['v=0', `a=fingerprint:sha-256 ${fingerprint}`, `a=ice-ufrag:${ufrag}`, ''].join('\r\n');
const candidate = (n: number, ufrag = 'abcd'): IceCandidate => ({
  candidate: `candidate:${n} 1 udp 2122260223 192.0.2.${n % 250} ${40_000 + n} typ host`,
  usernameFragment: ufrag,
});

/** A look that is streaming: granted, nonce stored, LED lit, media started and streaming. */
function streaming(): CoreState {
  return run(start(), [
    [request],
    [{ type: 'nonces-saved', sessionId: sid, ok: true }],
    [{ type: 'led-done', on: true, ok: true, sessionId: sid }],
    [{ type: 'media-streaming', sessionId: sid }],
  ]).state;
}

describe('the view-session state machine', () => {
  it("starts the media with the grant's ICE servers, and without any when the grant names none", () => {
    const ice = [{ urls: 'turn:192.0.2.1:3478', username: '1773181080:s', credential: 'c2VjcmV0' }];
    const withIce = grantClaims(deviceId, inWindowMs, { ice });
    const startMedia = (grantedClaims: typeof claims) =>
      run(start(), [
        [{ type: 'request', ref: 1, requestId: 'r1', grant: { ok: true, claims: grantedClaims, kid: 'k' } }],
        [{ type: 'nonces-saved', sessionId: grantedClaims.sid, ok: true }],
        [{ type: 'led-done', on: true, ok: true, sessionId: grantedClaims.sid }],
      ]).effects.find((effect) => effect.kind === 'start-media');
    expect(startMedia(withIce)).toMatchObject({ look: { iceServers: ice } });
    const plain = startMedia(grantClaims(deviceId, inWindowMs));
    expect(plain?.kind === 'start-media' && 'iceServers' in plain.look).toBe(false);
  });

  it('stores the nonce, then announces the decision and lights the LED, then starts the media', () => {
    const first = run(start(), [[request]]);
    expect(first.state.phase).toBe('recording');
    expect(kinds(first.effects)).toEqual(['save-nonces']);
    const second = run(first.state, [[{ type: 'nonces-saved', sessionId: sid, ok: true }]]);
    expect(kinds(second.effects)).toEqual(['notify', 'led']);
    const third = run(second.state, [[{ type: 'led-done', on: true, ok: true, sessionId: sid }]]);
    expect(third.state.phase).toBe('negotiating');
    expect(kinds(third.effects)).toEqual(['start-media', 'wake']);
  });

  it('opens the frame gate only once the LED is lit, and shuts it the moment the look ends', () => {
    const now = { wallMs: inWindowMs, monoMs: 0 };
    const lighting = run(start(), [[request], [{ type: 'nonces-saved', sessionId: sid, ok: true }]]).state;
    expect(framesAllowed(lighting, now, config)).toBe(false);
    const open = streaming();
    expect(framesAllowed(open, now, config)).toBe(true);
    const ended = run(open, [[{ type: 'privacy', privacyOn: true, source: 'button' }]]).state;
    expect(ended.phase).toBe('ending');
    expect(framesAllowed(ended, now, config)).toBe(false);
  });

  it('stops the media first and darkens the LED only once the media is gone', () => {
    const ending = run(streaming(), [[{ type: 'hangup', sessionId: sid, secret: testConsole.hangupSecret }]]);
    expect(kinds(ending.effects)).toEqual(['wake', 'stop-media']);
    const stopped = run(ending.state, [[{ type: 'media-stopped', sessionId: sid }]]);
    expect(kinds(stopped.effects)).toEqual(['led']);
    expect(stopped.state.phase).toBe('ending');
    const dark = run(stopped.state, [[{ type: 'led-done', on: false, ok: true, sessionId: sid }]]);
    expect(dark.state.phase).toBe('idle');
    const ended = dark.effects.find((e) => e.kind === 'notify' && e.notice.type === 'view-ended');
    expect(ended).toMatchObject({ notice: { reason: 'operator-hangup', endedBy: 'grant-holder' } });
  });

  it('takes only an answer with the grant fingerprint, once, and then only candidates with its ufrag', () => {
    const negotiating = run(start(), [
      [request],
      [{ type: 'nonces-saved', sessionId: sid, ok: true }],
      [{ type: 'led-done', on: true, ok: true, sessionId: sid }],
      // Early candidates: one from the console that will answer, one from someone else.
      [{ type: 'candidate', sessionId: sid, candidate: candidate(1) }],
      [{ type: 'candidate', sessionId: sid, candidate: candidate(2, 'evil') }],
      [{ type: 'answer', sessionId: sid, sdp: answerSdp(`${'00:'.repeat(31)}00`) }],
    ]);
    expect(kinds(negotiating.effects)).not.toContain('apply-answer');
    const answered = run(negotiating.state, [
      [{ type: 'answer', sessionId: sid, sdp: answerSdp(testConsole.fingerprint) }],
      [{ type: 'answer', sessionId: sid, sdp: answerSdp(testConsole.fingerprint, 'late') }],
      [{ type: 'candidate', sessionId: sid, candidate: candidate(3) }],
      [{ type: 'candidate', sessionId: sid, candidate: candidate(4, 'evil') }],
    ]);
    const applied = answered.effects.filter((e) => e.kind === 'apply-answer' || e.kind === 'add-candidate');
    expect(
      applied.map((e) => (e.kind === 'add-candidate' ? e.candidate.candidate.split(' ')[0] : e.kind)),
    ).toEqual(['apply-answer', 'candidate:1', 'candidate:3']);
    expect(answered.state.look?.refused).toEqual({
      'fingerprint-mismatch': 1,
      'already-answered': 1,
      'ufrag-mismatch': 2,
    });
  });

  it('takes at most 32 remote candidates in a look', () => {
    const events: Array<[LookEvent]> = [
      [{ type: 'answer', sessionId: sid, sdp: answerSdp(testConsole.fingerprint) }],
    ];
    for (let n = 0; n < 100; n += 1)
      events.push([{ type: 'candidate', sessionId: sid, candidate: candidate(n) }]);
    const result = run(streaming(), events);
    expect(result.effects.filter((e) => e.kind === 'add-candidate')).toHaveLength(32);
    expect(result.state.look?.refused['too-many-candidates']).toBe(68);
  });

  it('ignores a hang-up without the secret, and counts signalling for no running look', () => {
    const result = run(streaming(), [
      [{ type: 'hangup', sessionId: sid, secret: 'not-the-secret-of-this-look' }],
      [{ type: 'hangup', sessionId: 'another-session', secret: testConsole.hangupSecret }],
    ]);
    expect(result.state.phase).toBe('streaming');
    expect(result.state.look?.refused).toEqual({ 'bad-hangup-secret': 1 });
    expect(result.state.strayMessages).toBe(1);
  });

  it('ends a look on the monotonic clock even when the wall clock is set back', () => {
    const open = streaming();
    // One hour back on the wall clock, 61 s on the monotonic one: maxDurS 60 has passed.
    const result = run(open, [
      [{ type: 'deadline' }, { wallMs: inWindowMs - 3_600_000 + 61_000, monoMs: 61_000 }],
    ]);
    expect(result.state.phase).toBe('ending');
    expect(result.state.look?.ending?.reason).toBe('clock-unsynced');
  });

  it('ends a look at its length on the monotonic clock when the wall clock lags within the tolerance', () => {
    // The wall clock was set back 100 s (within the floor's 120 s): by it only 21 s have passed.
    const result = run(streaming(), [
      [{ type: 'deadline' }, { wallMs: inWindowMs - 39_000, monoMs: 61_000 }],
    ]);
    expect(result.state.look?.ending?.reason).toBe('max-duration');
  });

  it('refuses every grant while the wall clock is below the time floor, so a used grant cannot come back', () => {
    const floor = { ...start(), floorMs: inWindowMs + 3_600_000 };
    const result = run(floor, [[request]]);
    const decision = result.effects.find((e) => e.kind === 'notify' && e.notice.type === 'decision');
    expect(decision).toMatchObject({ notice: { decision: { granted: false, reason: 'clock-unsynced' } } });
  });

  it('keeps a used nonce until the floor has passed its expiry', () => {
    const used = run(start(), [[request], [{ type: 'nonces-saved', sessionId: sid, ok: true }]]).state;
    expect(used.nonces[claims.jti]).toBe(claims.exp);
    // Later, at a time past the grant's expiry but within the floor's tolerance of it, another grant.
    const later = { ...used, phase: 'idle' as const, look: undefined, floorMs: claims.exp * 1000 + 60_000 };
    const other = grantClaims(deviceId, claims.exp * 1000 + 60_000);
    const next = run(later, [
      [
        { type: 'request', ref: 2, requestId: 'r2', grant: { ok: true, claims: other, kid: 'k' } },
        { wallMs: claims.exp * 1000 + 60_000, monoMs: 200_000 },
      ],
    ]).state;
    expect(Object.keys(next.nonces)).toContain(claims.jti);
  });

  it('ends a look whose console never connects at the negotiation deadline, as peer-gone', () => {
    const negotiating = run(start(), [
      [request],
      [{ type: 'nonces-saved', sessionId: sid, ok: true }],
      [{ type: 'led-done', on: true, ok: true, sessionId: sid }],
    ]).state;
    const result = run(negotiating, [
      [{ type: 'deadline' }, { wallMs: inWindowMs + 10_000, monoMs: 10_000 }],
    ]);
    expect(result.state.look?.ending?.reason).toBe('peer-gone');
  });
});

describe('a retry of the look request (same requestId, same grant)', () => {
  const retry = (ref: number, requestId = 'r1', retried = claims): LookEvent => ({
    type: 'request',
    ref,
    requestId,
    grant: { ok: true, claims: retried, kid: 'k' },
  });
  const decisions = (effects: Effect[]) =>
    effects.flatMap((e) =>
      e.kind === 'notify' && e.notice.type === 'decision'
        ? [
            {
              ref: e.notice.ref,
              retry: e.notice.retry,
              ...(e.notice.decision.granted
                ? { granted: true }
                : { granted: false, reason: e.notice.decision.reason }),
            },
          ]
        : [],
    );

  it('waits while the nonce is written and then gets the look decision with the original', () => {
    const recording = run(start(), [[request], [retry(2)], [retry(3)]]);
    expect(decisions(recording.effects)).toEqual([]);
    expect(kinds(recording.effects)).toEqual(['save-nonces']);
    const decided = run(recording.state, [[{ type: 'nonces-saved', sessionId: sid, ok: true }]]);
    expect(decisions(decided.effects)).toEqual([
      { ref: 1, retry: false, granted: true },
      { ref: 2, retry: true, granted: true },
      { ref: 3, retry: true, granted: true },
    ]);
    // One LED-on, one look: the retries start nothing.
    expect(kinds(decided.effects)).toEqual(['notify', 'notify', 'notify', 'led']);
  });

  it('is answered at once with granted after the decision, and starts nothing', () => {
    const result = run(streaming(), [[retry(2)]]);
    expect(decisions(result.effects)).toEqual([{ ref: 2, retry: true, granted: true }]);
    expect(kinds(result.effects)).toEqual(['notify']);
    expect(result.state.phase).toBe('streaming');
    expect(result.state.counters.refusals).toEqual({});
  });

  it('gets the same state-unavailable refusal as the original when the nonce cannot be written, counted once', () => {
    const result = run(start(), [
      [request],
      [retry(2)],
      [{ type: 'nonces-saved', sessionId: sid, ok: false }],
    ]);
    expect(decisions(result.effects)).toEqual([
      { ref: 1, retry: false, granted: false, reason: 'state-unavailable' },
      { ref: 2, retry: true, granted: false, reason: 'state-unavailable' },
    ]);
    expect(result.state.counters.refusals).toEqual({ 'state-unavailable': 1 });
  });

  it('is replayed when the requestId differs, or the grant with the same nonce names another console', () => {
    const otherConsole = { ...claims, fp: `${'AB:'.repeat(31)}AB` };
    const otherOperator = { ...claims, op: 'operator-bo' };
    const result = run(start(), [
      [request],
      [retry(2, 'r2')],
      [retry(3, 'r1', otherConsole)],
      [retry(4, 'r1', otherOperator)],
    ]);
    expect(decisions(result.effects)).toEqual([
      { ref: 2, retry: false, granted: false, reason: 'replayed' },
      { ref: 3, retry: false, granted: false, reason: 'replayed' },
      { ref: 4, retry: false, granted: false, reason: 'replayed' },
    ]);
  });

  it('is replayed once the look has ended', () => {
    const ended = run(streaming(), [
      [{ type: 'hangup', sessionId: sid, secret: testConsole.hangupSecret }],
      [{ type: 'media-stopped', sessionId: sid }],
      [{ type: 'led-done', on: false, ok: true, sessionId: sid }],
    ]).state;
    expect(ended.phase).toBe('idle');
    expect(decisions(run(ended, [[retry(2)]]).effects)).toEqual([
      { ref: 2, retry: false, granted: false, reason: 'replayed' },
    ]);
  });

  it(`drops retries beyond ${maxWaitingRetries} waiting for one decision, unanswered`, () => {
    const events: Array<[LookEvent]> = [[request]];
    for (let ref = 2; ref < maxWaitingRetries + 4; ref += 1) events.push([retry(ref)]);
    const recording = run(start(), events);
    const dropped = recording.effects.filter((e) => e.kind === 'notify' && e.notice.type === 'retry-dropped');
    expect(dropped).toHaveLength(2);
    const decided = run(recording.state, [[{ type: 'nonces-saved', sessionId: sid, ok: true }]]);
    expect(decisions(decided.effects)).toHaveLength(1 + maxWaitingRetries);
    expect(decisions(decided.effects).every((d) => d.granted)).toBe(true);
  });
});
