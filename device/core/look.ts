// The view session as one explicit state machine: a pure function (state, event, now) → (state, effects).
// Events are everything a look can receive (a request, the console's answer, candidates and hang-up,
// what the media side reports, deadlines, the privacy button, LED faults, the clock, schedules); effects
// are what the shell must do (drive the LED, start and stop media, store state, tell the world). The
// supervisor only interprets effects and feeds the results back as events.
//
//   idle ─request granted─▶ recording ─nonce stored─▶ lighting ─LED lit─▶ negotiating ─first packet─▶ streaming
//     ▲                        │                        │                     │                          │
//     └──────── ending ◀───────┴────────────────────────┴──────any end────────┴──────────────────────────┘
//
// Safety order of teardown, written once in `end`: the frame gate shuts at once (it is a function of the
// phase), the media is stopped, and the viewing LED goes dark only once the media has reported it is
// gone, so the LED is lit for as long as anything could be sending.
import type { Verified } from '../auth/verify.js';
import type { EndedBy, EndReason, ScheduleRejection, SignalRefusal } from '../protocol/reasons.js';
import { endedByReason } from '../protocol/reasons.js';
import type { IceCandidate } from '../protocol/signalling.js';
import type { GrantClaims, IceServer, ScheduleClaims, ViewMode } from '../protocol/tokens.js';
import type { Counters, StoredSchedule } from '../state/store.js';
import { type Conditions, type Decision, decide, type Limits, mustEnd, pruneNonces } from './decision.js';
import { checkAnswer, checkCandidate, hangupProven, maxRemoteCandidates } from './signalling.js';

export type Phase = 'idle' | 'recording' | 'lighting' | 'negotiating' | 'streaming' | 'ending';

/** A wall-clock and a monotonic reading of the same instant. Deadlines run on the monotonic one. */
export interface Instant {
  wallMs: number;
  monoMs: number;
}

export interface Look {
  sessionId: string;
  operatorId: string;
  requestId: string;
  /** Ties the decision to the caller's request (the shell's own counter). */
  requestRef: number;
  claims: GrantClaims;
  viewMode: ViewMode;
  startedAtMs: number;
  /** The decision on the monotonic clock: how long the look lasted is measured from here. */
  startedAtMono: number;
  /** Wall-clock end from the grant, the window and the maximum duration, fixed at the decision. */
  endsAtMs: number;
  /** The same length on the monotonic clock: a clock set back cannot make a view last longer. */
  endsAtMono: number;
  /** No first packet by then (monotonic) and the console counts as gone. */
  negotiateByMono: number | undefined;
  /** An LED-on was asked for: the look ends only once the LED-off after it is done. */
  ledRequested: boolean;
  ledOn: boolean;
  mediaRunning: boolean;
  answer: { ufrag: string } | undefined;
  /** Candidates that came before the answer; their ufrag is checked when it arrives. */
  early: IceCandidate[];
  candidates: number;
  refused: Partial<Record<SignalRefusal, number>>;
  /** Why it ends and when, on the monotonic clock. */
  ending: { reason: EndReason; monoMs: number } | undefined;
  /** The grant was accepted (its nonce is on disk): `granted` has been said. */
  decided: boolean;
  /** Retries of this request that came before the decision; each gets it once it exists. */
  waitingRetries: number[];
}

export interface ActiveSchedule {
  claims: ScheduleClaims;
  stored: StoredSchedule;
}

export interface CoreState {
  conditions: Conditions;
  /**
   * The time floor: the latest wall-clock time seen while the clock was trusted. A wall clock more than
   * `floorToleranceMs` below it has been set back: nothing measured on it can be trusted, and grants
   * whose nonces were forgotten could be replayed, so every grant is refused `clock-unsynced`.
   */
  floorMs: number;
  schedule: ActiveSchedule | undefined;
  nonces: Record<string, number>;
  counters: Counters;
  phase: Phase;
  look: Look | undefined;
  /** Signalling for no running look, or for another session: ignored, counted here. */
  strayMessages: number;
}

export interface CoreConfig {
  deviceId: string;
  timeZone: string;
  limits: Limits;
  /** From the start of the media to the first packet; past it the console counts as gone. */
  negotiationTimeoutMs: number;
  /** How far below the time floor the wall clock may read and still be trusted. */
  floorToleranceMs: number;
}

/** What a running look's media needs to know. */
export interface MediaLook {
  sessionId: string;
  requestId: string;
  viewMode: ViewMode;
  /** The console's DTLS certificate fingerprint from the grant: the media checks it once more. */
  fingerprint: string;
  /** The grant's STUN/TURN servers for this look; absent: the device's configured list. */
  iceServers?: IceServer[] | undefined;
}

export type Notice =
  | {
      type: 'decision';
      ref: number;
      requestId: string;
      decision: Decision;
      look: Look | undefined;
      /** The answer to a retry of a look's own request (`isRetry`): said again, not a new decision. */
      retry: boolean;
    }
  /** A retry beyond `maxWaitingRetries` while the decision is pending: no answer of its own. */
  | { type: 'retry-dropped'; ref: number; requestId: string }
  | { type: 'view-started'; look: Look }
  | {
      type: 'view-ended';
      look: Look;
      reason: EndReason;
      endedBy: EndedBy;
      /** From the decision to the end on the monotonic clock: a clock step during the look changes nothing. */
      durationMs: number;
    }
  | { type: 'privacy'; privacyOn: boolean; source: 'button' | 'startup-safe-default' }
  | { type: 'schedule'; accepted: boolean; version?: number; reason?: ScheduleRejection; detail?: string }
  | { type: 'fault'; fault: 'led' | 'clock' | 'state'; active: boolean; detail: string }
  | {
      type: 'signal-refused';
      look: Look;
      signal: 'answer' | 'candidate' | 'hangup';
      reason: SignalRefusal;
      first: boolean;
    }
  | { type: 'offer'; look: Look; sdp: string }
  | { type: 'local-candidate'; look: Look; candidate: IceCandidate };

export type Effect =
  | { kind: 'save-nonces'; sessionId: string; nonces: Record<string, number> }
  | { kind: 'save-privacy'; privacyOn: boolean; atMs: number }
  | { kind: 'save-schedule'; stored: StoredSchedule; claims: ScheduleClaims }
  | { kind: 'save-counters' }
  /** Drive the viewing LED; the result comes back as `led-done`. `sessionId` ties it to a look. */
  | { kind: 'led'; on: boolean; sessionId: string | undefined }
  | { kind: 'start-media'; look: MediaLook }
  | { kind: 'apply-answer'; sessionId: string; sdp: string }
  | { kind: 'add-candidate'; sessionId: string; candidate: IceCandidate }
  | { kind: 'stop-media'; sessionId: string }
  /** Wake me up (with a `deadline` event) in this many ms; replaces any earlier wake-up. */
  | { kind: 'wake'; inMs: number | undefined }
  | { kind: 'notify'; notice: Notice }
  | {
      kind: 'log';
      level: 'debug' | 'info' | 'warn' | 'error';
      message: string;
      fields: Record<string, unknown>;
    };

export type LookEvent =
  | { type: 'request'; ref: number; requestId: string; grant: Verified<GrantClaims> }
  | { type: 'nonces-saved'; sessionId: string; ok: boolean }
  | { type: 'led-done'; on: boolean; ok: boolean; sessionId: string | undefined; detail?: string }
  | { type: 'media-offer'; sessionId: string; sdp: string }
  | { type: 'media-candidate'; sessionId: string; candidate: IceCandidate }
  | { type: 'media-streaming'; sessionId: string }
  | { type: 'media-failed'; sessionId: string; reason: 'camera-failure' | 'peer-gone'; detail: string }
  | { type: 'media-stopped'; sessionId: string }
  | { type: 'answer'; sessionId: string; sdp: string }
  | { type: 'candidate'; sessionId: string; candidate: IceCandidate }
  | { type: 'hangup'; sessionId: string; secret: string }
  | { type: 'deadline' }
  | { type: 'privacy'; privacyOn: boolean; source: 'button' | 'startup-safe-default' }
  | { type: 'clock'; trusted: boolean; detail: string }
  | { type: 'clock-step'; stepMs: number }
  | { type: 'led-fault'; detail: string }
  | { type: 'schedule'; token: string; verified: Verified<ScheduleClaims> }
  | { type: 'schedule-saved'; stored: StoredSchedule; claims: ScheduleClaims; ok: boolean }
  | { type: 'shutdown' };

export interface Step {
  state: CoreState;
  effects: Effect[];
}

export function initialState(init: {
  conditions: Conditions;
  floorMs: number;
  schedule: ActiveSchedule | undefined;
  nonces: Record<string, number>;
  counters: Counters;
}): CoreState {
  return { ...init, phase: 'idle', look: undefined, strayMessages: 0 };
}

/** Is the wall clock trusted now: synchronised, and not set back below the time floor? */
export function clockTrustedAt(state: CoreState, now: Instant, config: CoreConfig): boolean {
  return state.conditions.clockTrusted && now.wallMs >= state.floorMs - config.floorToleranceMs;
}

/** The frame gate: may a media packet leave now? True only while every condition of the invariant holds. */
export function framesAllowed(state: CoreState, now: Instant, config: CoreConfig): boolean {
  const { look, conditions } = state;
  if (!look || (state.phase !== 'negotiating' && state.phase !== 'streaming')) return false;
  return (
    look.ledOn &&
    !conditions.privacyOn &&
    clockTrustedAt(state, now, config) &&
    !conditions.ledFault &&
    now.wallMs < look.endsAtMs &&
    now.monoMs < look.endsAtMono
  );
}

/** Schedule acceptance: the same token is no news; another device's or an older version is refused. */
export function acceptSchedule(
  current: ActiveSchedule | undefined,
  verified: Verified<ScheduleClaims>,
  token: string,
  deviceId: string,
):
  | { outcome: 'same' }
  | { outcome: 'accept'; claims: ScheduleClaims; stored: StoredSchedule }
  | { outcome: 'reject'; reason: ScheduleRejection; detail: string; version?: number } {
  if (!verified.ok) return { outcome: 'reject', reason: verified.reason, detail: verified.detail };
  const claims = verified.claims;
  if (claims.aud !== deviceId) {
    return {
      outcome: 'reject',
      reason: 'wrong-device',
      detail: `schedule is for ${claims.aud}`,
      version: claims.version,
    };
  }
  // A retained message is delivered again at every connect: the same token is not news.
  if (current?.stored.token === token) return { outcome: 'same' };
  if (current && claims.version <= current.stored.version) {
    return {
      outcome: 'reject',
      reason: 'rollback',
      detail: `version ${claims.version} is not newer than ${current.stored.version}`,
      version: claims.version,
    };
  }
  return { outcome: 'accept', claims, stored: { version: claims.version, token } };
}

/** One step of the machine. Never throws; an event that does not apply now changes nothing. */
export function transition(state: CoreState, event: LookEvent, now: Instant, config: CoreConfig): Step {
  const step = new Stepper(state, now, config);
  step.apply(event);
  return { state: step.state, effects: step.effects };
}

const isCurrent = (state: CoreState, sessionId: string): state is CoreState & { look: Look } =>
  state.look?.sessionId === sessionId;

/** Retries waiting for one look's decision (a nonce write): beyond this they are dropped unanswered. */
export const maxWaitingRetries = 16;

/**
 * Is this request a retry of the look's own request: the same requestId and a verified grant with the
 * same nonce, bound to the same console (operator, session, DTLS certificate, hang-up secret)? Only
 * then is it answered with the look's decision; anything else that reuses the nonce is `replayed`.
 */
export function isRetry(look: Look | undefined, requestId: string, grant: Verified<GrantClaims>): boolean {
  if (!look || !grant.ok || requestId !== look.requestId) return false;
  const { claims } = grant;
  const own = look.claims;
  return (
    claims.jti === own.jti &&
    claims.aud === own.aud &&
    claims.sid === own.sid &&
    claims.op === own.op &&
    claims.fp === own.fp &&
    claims.hup === own.hup
  );
}

/** Builds one step: a copy of the state changed in place, and the effects in the order they are due. */
class Stepper {
  state: CoreState;
  readonly effects: Effect[] = [];
  readonly #now: Instant;
  readonly #config: CoreConfig;

  constructor(state: CoreState, now: Instant, config: CoreConfig) {
    this.state = {
      ...state,
      conditions: { ...state.conditions },
      counters: { ...state.counters, refusals: { ...state.counters.refusals } },
      look: state.look
        ? { ...state.look, early: [...state.look.early], refused: { ...state.look.refused } }
        : undefined,
    };
    this.#now = now;
    this.#config = config;
  }

  apply(event: LookEvent): void {
    if (clockTrustedAt(this.state, this.#now, this.#config)) {
      this.state.floorMs = Math.max(this.state.floorMs, this.#now.wallMs);
    }
    switch (event.type) {
      case 'request':
        this.#request(event);
        return;
      case 'nonces-saved':
        this.#noncesSaved(event.sessionId, event.ok);
        return;
      case 'led-done':
        this.#ledDone(event);
        return;
      case 'media-offer':
        if (isCurrent(this.state, event.sessionId) && this.#active())
          this.#notify({ type: 'offer', look: this.state.look, sdp: event.sdp });
        return;
      case 'media-candidate':
        if (isCurrent(this.state, event.sessionId) && this.#active())
          this.#notify({ type: 'local-candidate', look: this.state.look, candidate: event.candidate });
        return;
      case 'media-streaming':
        this.#streaming(event.sessionId);
        return;
      case 'media-failed':
        if (isCurrent(this.state, event.sessionId)) {
          this.#log('warn', 'media failed', { sessionId: event.sessionId, detail: event.detail });
          this.#end(event.reason);
        }
        return;
      case 'media-stopped':
        this.#mediaStopped(event.sessionId);
        return;
      case 'answer':
        this.#answer(event.sessionId, event.sdp);
        return;
      case 'candidate':
        this.#candidate(event.sessionId, event.candidate);
        return;
      case 'hangup':
        this.#hangup(event.sessionId, event.secret);
        return;
      case 'deadline':
        this.#enforce();
        return;
      case 'privacy':
        this.#privacy(event.privacyOn, event.source);
        return;
      case 'clock':
        this.#clock(event.trusted, event.detail);
        return;
      case 'clock-step':
        // After a step nothing measured on the wall clock can be trusted: end the view, check again.
        this.#log('warn', 'clock stepped', { stepMs: event.stepMs });
        this.#end('clock-unsynced');
        return;
      case 'led-fault':
        this.#ledFault(event.detail);
        return;
      case 'schedule':
        this.#schedule(event.token, event.verified);
        return;
      case 'schedule-saved':
        this.#scheduleSaved(event);
        return;
      case 'shutdown':
        this.#end('shutdown');
        return;
    }
  }

  // ── Requests ──────────────────────────────────────────────────────────────────────────────────

  #request(event: Extract<LookEvent, { type: 'request' }>): void {
    if (isRetry(this.state.look, event.requestId, event.grant)) {
      this.#retry(event.ref, this.state.look as Look);
      return;
    }
    const { wallMs } = this.#now;
    const decision = decide({
      nowMs: wallMs,
      deviceId: this.#config.deviceId,
      timeZone: this.#config.timeZone,
      limits: this.#config.limits,
      schedule: this.state.schedule?.claims,
      conditions: {
        ...this.state.conditions,
        clockTrusted: clockTrustedAt(this.state, this.#now, this.#config),
      },
      viewActive: this.state.phase !== 'idle',
      usedNonces: this.state.nonces,
      grant: event.grant,
    });
    if (!decision.granted) {
      this.#refuse(event.ref, event.requestId, decision);
      return;
    }
    const { claims } = decision;
    const look: Look = {
      sessionId: claims.sid,
      operatorId: claims.op,
      requestId: event.requestId,
      requestRef: event.ref,
      claims,
      viewMode: decision.viewMode,
      startedAtMs: wallMs,
      startedAtMono: this.#now.monoMs,
      endsAtMs: decision.endsAtMs,
      endsAtMono: this.#now.monoMs + (decision.endsAtMs - wallMs),
      negotiateByMono: undefined,
      ledRequested: false,
      ledOn: false,
      mediaRunning: false,
      answer: undefined,
      early: [],
      candidates: 0,
      refused: {},
      ending: undefined,
      decided: false,
      waitingRetries: [],
    };
    // The single view slot is taken now: a request that follows sees `view-active`.
    this.state.look = look;
    this.state.phase = 'recording';
    // A nonce is forgotten only once even a clock set back to the floor's tolerance cannot revive its grant.
    const forgetBeforeMs = this.state.floorMs - this.#config.floorToleranceMs;
    this.state.nonces = { ...pruneNonces(this.state.nonces, forgetBeforeMs), [claims.jti]: claims.exp };
    // The nonce is on disk before the LED goes on, so a replay after a crash is still refused.
    this.effects.push({ kind: 'save-nonces', sessionId: look.sessionId, nonces: this.state.nonces });
  }

  /**
   * A retry of the look's request: no new decision, no nonce, no media. It gets the look's own decision,
   * at once if it exists, otherwise with the original when the nonce write is done.
   */
  #retry(ref: number, look: Look): void {
    this.#log('debug', 'request retried', { requestId: look.requestId, sessionId: look.sessionId });
    if (look.decided) {
      this.#notify({
        type: 'decision',
        ref,
        requestId: look.requestId,
        decision: granted(look),
        look,
        retry: true,
      });
    } else if (look.waitingRetries.length < maxWaitingRetries) {
      look.waitingRetries = [...look.waitingRetries, ref];
    } else {
      this.#notify({ type: 'retry-dropped', ref, requestId: look.requestId });
    }
  }

  #refuse(ref: number, requestId: string, decision: Extract<Decision, { granted: false }>): void {
    this.state.counters.refusals[decision.reason] = (this.state.counters.refusals[decision.reason] ?? 0) + 1;
    this.effects.push({ kind: 'save-counters' });
    this.#log('info', 'request refused', { requestId, reason: decision.reason, detail: decision.detail });
    this.#notify({ type: 'decision', ref, requestId, decision, look: undefined, retry: false });
  }

  /** The look's decision, said once more to each retry that waited for it. */
  #answerRetries(look: Look, decision: Decision): void {
    const forLook = decision.granted ? look : undefined;
    for (const ref of look.waitingRetries)
      this.#notify({
        type: 'decision',
        ref,
        requestId: look.requestId,
        decision,
        look: forLook,
        retry: true,
      });
    look.waitingRetries = [];
  }

  #noncesSaved(sessionId: string, ok: boolean): void {
    const look = this.state.look;
    if (!look || look.sessionId !== sessionId) return;
    const ref = look.requestRef;
    if (!ok) {
      // Not used after all: the same grant may be retried once the disk is writable again.
      const { [look.claims.jti]: _unused, ...rest } = this.state.nonces;
      this.state.nonces = rest;
      this.state.look = undefined;
      this.state.phase = 'idle';
      this.#notify({ type: 'fault', fault: 'state', active: true, detail: 'replay cache not writable' });
      const refusal = {
        granted: false as const,
        reason: 'state-unavailable' as const,
        detail: 'the replay cache could not be written',
      };
      this.#refuse(ref, look.requestId, refusal);
      this.#answerRetries(look, refusal);
      return;
    }
    this.#log('info', 'grant accepted', {
      requestId: look.requestId,
      sessionId,
      operatorId: look.operatorId,
    });
    look.decided = true;
    const decision = granted(look);
    this.#notify({ type: 'decision', ref, requestId: look.requestId, decision, look, retry: false });
    this.#answerRetries(look, decision);
    if (this.state.phase === 'ending') {
      // Ended while its nonce was written (a press, a shutdown): the LED never lights for it.
      this.#finishIfDone();
      return;
    }
    this.state.phase = 'lighting';
    look.ledRequested = true;
    this.effects.push({ kind: 'led', on: true, sessionId });
  }

  #ledDone(event: Extract<LookEvent, { type: 'led-done' }>): void {
    const look = this.state.look;
    const forLook = look !== undefined && event.sessionId === look.sessionId;
    if (!event.ok) {
      if (forLook && !event.on) look.ledOn = false;
      this.#ledFault(event.detail ?? 'viewing LED write failed');
      if (forLook && !event.on) this.#finishIfDone(true);
      return;
    }
    if (event.sessionId === undefined) {
      // A probe of a faulty LED while idle: it can be driven again.
      if (event.on === false && this.state.conditions.ledFault && this.state.phase === 'idle') {
        this.state.conditions.ledFault = false;
        this.#log('info', 'viewing LED works again', {});
        this.#notify({ type: 'fault', fault: 'led', active: false, detail: 'recovered' });
      }
      return;
    }
    if (!forLook) return;
    look.ledOn = event.on;
    if (!event.on) {
      this.#finishIfDone(true);
      return;
    }
    if (this.state.phase !== 'lighting') return;
    this.state.phase = 'negotiating';
    look.negotiateByMono = this.#now.monoMs + this.#config.negotiationTimeoutMs;
    look.mediaRunning = true;
    this.effects.push({
      kind: 'start-media',
      look: {
        sessionId: look.sessionId,
        requestId: look.requestId,
        viewMode: look.viewMode,
        fingerprint: look.claims.fp,
        ...(look.claims.ice === undefined ? {} : { iceServers: look.claims.ice }),
      },
    });
    this.#enforce();
  }

  #streaming(sessionId: string): void {
    const look = this.state.look;
    if (!look || look.sessionId !== sessionId || this.state.phase !== 'negotiating') return;
    this.state.phase = 'streaming';
    look.negotiateByMono = undefined;
    this.state.counters.views += 1;
    this.effects.push({ kind: 'save-counters' });
    this.#log('info', 'view streaming', { sessionId, operatorId: look.operatorId });
    this.#notify({ type: 'view-started', look });
    this.#wake();
  }

  // ── The console's signalling: only the grant holder may steer the look ───────────────────────

  #stray(sessionId: string, type: string): boolean {
    if (isCurrent(this.state, sessionId) && this.#active()) return false;
    this.state.strayMessages += 1;
    this.#log('debug', 'signalling for no running look; ignored', { sessionId, type });
    return true;
  }

  #refuseSignal(signal: 'answer' | 'candidate' | 'hangup', reason: SignalRefusal, count = 1): void {
    const look = this.state.look;
    if (!look || count <= 0) return;
    const first = look.refused[reason] === undefined;
    look.refused[reason] = (look.refused[reason] ?? 0) + count;
    this.#log(signal === 'candidate' ? 'debug' : 'warn', 'signalling refused', {
      sessionId: look.sessionId,
      signal,
      reason,
    });
    this.#notify({ type: 'signal-refused', look, signal, reason, first });
  }

  #answer(sessionId: string, sdp: string): void {
    if (this.#stray(sessionId, 'answer')) return;
    const look = this.state.look as Look;
    if (look.answer || this.state.phase === 'recording' || this.state.phase === 'lighting') {
      // Too early (no offer was sent yet) counts as a second answer too: only an answer to our offer counts.
      this.#refuseSignal('answer', 'already-answered');
      return;
    }
    const checked = checkAnswer(sdp, look.claims.fp, maxRemoteCandidates - look.candidates);
    if (!checked.ok) {
      this.#refuseSignal('answer', checked.reason);
      return;
    }
    for (const [reason, count] of Object.entries(checked.refused)) {
      this.#refuseSignal('candidate', reason as SignalRefusal, count);
    }
    look.answer = { ufrag: checked.ufrag };
    look.candidates += checked.candidates;
    this.effects.push({ kind: 'apply-answer', sessionId, sdp: checked.sdp });
    for (const candidate of look.early.splice(0)) {
      if (candidate.usernameFragment !== checked.ufrag) {
        look.candidates -= 1;
        this.#refuseSignal('candidate', 'ufrag-mismatch');
      } else this.effects.push({ kind: 'add-candidate', sessionId, candidate });
    }
  }

  #candidate(sessionId: string, candidate: IceCandidate): void {
    if (this.#stray(sessionId, 'candidate')) return;
    const look = this.state.look as Look;
    // An empty candidate ends the trickle: nothing to do.
    if (candidate.candidate === '') return;
    const reason =
      checkCandidate(candidate, look.answer?.ufrag) ??
      (look.candidates >= maxRemoteCandidates ? 'too-many-candidates' : undefined);
    if (reason) {
      this.#refuseSignal('candidate', reason);
      return;
    }
    look.candidates += 1;
    if (look.answer) this.effects.push({ kind: 'add-candidate', sessionId, candidate });
    else look.early.push(candidate);
  }

  #hangup(sessionId: string, secret: string): void {
    if (this.#stray(sessionId, 'hangup')) return;
    const look = this.state.look as Look;
    if (!hangupProven(secret, look.claims.hup)) {
      this.#refuseSignal('hangup', 'bad-hangup-secret');
      return;
    }
    this.#end('operator-hangup');
  }

  // ── Conditions ────────────────────────────────────────────────────────────────────────────────

  #privacy(privacyOn: boolean, source: 'button' | 'startup-safe-default'): void {
    if (privacyOn) this.#end('privacy-on');
    if (this.state.conditions.privacyOn === privacyOn) return;
    this.state.conditions.privacyOn = privacyOn;
    this.#log('info', privacyOn ? 'privacy on' : 'privacy off', { privacyOn, source });
    this.effects.push({ kind: 'save-privacy', privacyOn, atMs: this.#now.wallMs });
    this.#notify({ type: 'privacy', privacyOn, source });
  }

  #clock(trusted: boolean, detail: string): void {
    if (!trusted) this.#end('clock-unsynced');
    if (this.state.conditions.clockTrusted === trusted) return;
    this.state.conditions.clockTrusted = trusted;
    this.#log('info', trusted ? 'clock trusted' : 'clock not trusted', { clockTrusted: trusted, detail });
    this.#notify({ type: 'fault', fault: 'clock', active: !trusted, detail });
  }

  #ledFault(detail: string): void {
    this.#end('led-fault');
    if (this.state.conditions.ledFault) return;
    this.state.conditions.ledFault = true;
    this.#log('error', 'viewing LED fault', { detail });
    this.#notify({ type: 'fault', fault: 'led', active: true, detail });
  }

  #schedule(token: string, verified: Verified<ScheduleClaims>): void {
    const result = acceptSchedule(this.state.schedule, verified, token, this.#config.deviceId);
    if (result.outcome === 'same') return;
    if (result.outcome === 'reject') {
      this.#log('warn', 'schedule refused', {
        reason: result.reason,
        detail: result.detail,
        version: result.version,
      });
      this.#notify({
        type: 'schedule',
        accepted: false,
        reason: result.reason,
        detail: result.detail,
        ...(result.version !== undefined ? { version: result.version } : {}),
      });
      return;
    }
    this.effects.push({ kind: 'save-schedule', stored: result.stored, claims: result.claims });
  }

  #scheduleSaved(event: Extract<LookEvent, { type: 'schedule-saved' }>): void {
    if (!event.ok) {
      this.#notify({ type: 'fault', fault: 'state', active: true, detail: 'schedule not writable' });
      this.#notify({
        type: 'schedule',
        accepted: false,
        reason: 'malformed',
        detail: 'the schedule could not be stored',
      });
      return;
    }
    // Two schedules stored at once: the newer one wins whichever finished last.
    if (this.state.schedule && this.state.schedule.stored.version >= event.stored.version) return;
    this.state.schedule = { claims: event.claims, stored: event.stored };
    this.#log('info', 'schedule accepted', {
      version: event.stored.version,
      windows: event.claims.windows.length,
    });
    this.#notify({ type: 'schedule', accepted: true, version: event.stored.version });
    this.#enforce('schedule-changed');
  }

  // ── Ending ────────────────────────────────────────────────────────────────────────────────────

  #active(): boolean {
    return this.state.phase !== 'idle' && this.state.phase !== 'ending';
  }

  /** Checks a running look against the rules and its deadlines, then asks to be woken at the next one. */
  #enforce(cause?: EndReason): void {
    const look = this.state.look;
    if (!look || (this.state.phase !== 'negotiating' && this.state.phase !== 'streaming')) return;
    const { wallMs, monoMs } = this.#now;
    let reason = mustEnd({
      nowMs: wallMs,
      timeZone: this.#config.timeZone,
      limits: this.#config.limits,
      schedule: this.state.schedule?.claims,
      conditions: {
        ...this.state.conditions,
        clockTrusted: clockTrustedAt(this.state, this.#now, this.#config),
      },
      view: look,
    });
    if (reason === 'window-end' && cause) reason = cause;
    if (!reason && monoMs >= look.endsAtMono) reason = 'max-duration';
    if (!reason && look.negotiateByMono !== undefined && monoMs >= look.negotiateByMono) {
      this.#log('warn', 'viewer did not connect in time', { sessionId: look.sessionId });
      reason = 'peer-gone';
    }
    if (reason) this.#end(reason);
    else this.#wake();
  }

  #wake(): void {
    const look = this.state.look;
    if (!look || this.state.phase === 'ending' || this.state.phase === 'idle') {
      this.effects.push({ kind: 'wake', inMs: undefined });
      return;
    }
    const dueMono = Math.min(look.endsAtMono, look.negotiateByMono ?? Number.POSITIVE_INFINITY);
    this.effects.push({ kind: 'wake', inMs: Math.max(0, dueMono - this.#now.monoMs) });
  }

  #end(reason: EndReason): void {
    const look = this.state.look;
    if (!look || !this.#active()) return;
    // From here the frame gate is shut: framesAllowed() is false in `ending`.
    this.state.phase = 'ending';
    look.ending = { reason, monoMs: this.#now.monoMs };
    this.#log('info', 'view ending', { sessionId: look.sessionId, reason });
    this.effects.push({ kind: 'wake', inMs: undefined });
    if (look.mediaRunning) this.effects.push({ kind: 'stop-media', sessionId: look.sessionId });
    else if (look.ledRequested) this.effects.push({ kind: 'led', on: false, sessionId: look.sessionId });
    // Still recording the nonce: the look finishes once that is done (see #noncesSaved).
  }

  #mediaStopped(sessionId: string): void {
    const look = this.state.look;
    if (!look || look.sessionId !== sessionId || !look.mediaRunning) return;
    look.mediaRunning = false;
    if (this.state.phase !== 'ending') {
      // Media gone by itself before any end: treat as a failure of the camera path.
      this.#end('camera-failure');
      return;
    }
    // Only now, with nothing left that could send, does the LED go dark.
    this.effects.push({ kind: 'led', on: false, sessionId });
  }

  /** Ends the look for good once the media is gone and the LED is dark (or was never lit). */
  #finishIfDone(ledOffDone = false): void {
    const look = this.state.look;
    if (!look || this.state.phase !== 'ending' || look.mediaRunning) return;
    if (look.ledRequested && !ledOffDone) return;
    const ending = look.ending ?? { reason: 'shutdown' as EndReason, monoMs: this.#now.monoMs };
    this.state.look = undefined;
    this.state.phase = 'idle';
    this.state.counters.lastEndReason = ending.reason;
    this.effects.push({ kind: 'save-counters' });
    this.#notify({
      type: 'view-ended',
      look,
      reason: ending.reason,
      endedBy: endedByReason[ending.reason],
      durationMs: Math.max(0, ending.monoMs - look.startedAtMono),
    });
  }

  #notify(notice: Notice): void {
    this.effects.push({ kind: 'notify', notice });
  }

  #log(level: 'debug' | 'info' | 'warn' | 'error', message: string, fields: Record<string, unknown>): void {
    this.effects.push({ kind: 'log', level, message, fields });
  }
}

/** The decision that granted a look. */
function granted(look: Look): Decision {
  return { granted: true, claims: look.claims, viewMode: look.viewMode, endsAtMs: look.endsAtMs };
}
