// The shell around the view-session state machine (core/look.ts): it feeds the machine events from the
// world, carries out the effects it returns (LED, media, state files, timers) and turns its notices
// into typed events for the service, the audit trail and the window watch. It makes no decision itself.
//
// Events are processed one at a time, to completion: an event raised while effects are being carried out
// (a listener that presses the button, a media callback) waits in the queue until the current step is
// done, so effects always run in the order the machine gave them.
import { EventEmitter } from 'node:events';
import { type KeySet, verifyGrant, verifySchedule } from '../auth/verify.js';
import type { Clock } from '../clock/clock.js';
import type { Conditions, Decision } from '../core/decision.js';
import {
  type CoreConfig,
  type CoreState,
  clockTrustedAt,
  type Effect,
  framesAllowed,
  initialState,
  type Look,
  type LookEvent,
  type MediaLook,
  type Notice,
  type Phase,
  transition,
} from '../core/look.js';
import { emitSafely, type Logger } from '../log/index.js';
import { schemaVersion } from '../protocol/common.js';
import type { EndedBy, EndReason, ScheduleRejection, SignalRefusal } from '../protocol/reasons.js';
import type { IceCandidate, SignalOutbound } from '../protocol/signalling.js';
import type { ScheduleClaims, ViewMode } from '../protocol/tokens.js';
import type { Counters, StoredSchedule } from '../state/store.js';
import {
  type MediaPort,
  type MediaSink,
  MediaStuckError,
  type Persistence,
  type ViewingLed,
} from './types.js';

export type { Phase } from '../core/look.js';

export interface DecisionEvent {
  requestId: string;
  decision: Decision;
  sessionId: string | undefined;
  operatorId: string | undefined;
  /** A retry of a look's own request, answered with that look's decision: not a new decision. */
  retry: boolean;
  atMs: number;
}

export interface ViewEndedEvent {
  sessionId: string;
  operatorId: string;
  requestId: string;
  reason: EndReason;
  endedBy: EndedBy;
  /** Signalling for this look that was ignored, by reason. */
  refusedSignals: Partial<Record<SignalRefusal, number>>;
  startedAtMs: number;
  durationMs: number;
}

export interface SignalRefusedEvent {
  sessionId: string;
  operatorId: string;
  requestId: string;
  signal: 'answer' | 'candidate' | 'hangup';
  reason: SignalRefusal;
  /** The first refusal of this reason in this look (the audit trail records only these). */
  first: boolean;
  atMs: number;
}

/** What the supervisor needs from a journal of open looks (audit/look-journal.ts). */
export interface LookJournalPort {
  open(session: {
    sessionId: string;
    operatorId: string;
    requestId: string;
    startedAtMs: number;
  }): Promise<void>;
  heartbeat(nowMs: number): void;
}

export interface SupervisorEvents {
  decision: [DecisionEvent];
  viewStarted: [{ sessionId: string; operatorId: string; viewMode: ViewMode; atMs: number }];
  viewEnded: [ViewEndedEvent];
  privacy: [{ privacyOn: boolean; source: 'button' | 'startup-safe-default'; atMs: number }];
  schedule: [
    { accepted: boolean; version?: number; reason?: ScheduleRejection; detail?: string; atMs: number },
  ];
  fault: [{ fault: 'led' | 'clock' | 'state' | 'camera'; active: boolean; detail: string; atMs: number }];
  signalRefused: [SignalRefusedEvent];
  /** Signalling for the console: the device's offer and late local candidates. */
  signal: [SignalOutbound];
}

export interface SupervisorDeps {
  config: Omit<CoreConfig, 'negotiationTimeoutMs' | 'floorToleranceMs'> & {
    negotiationTimeoutMs?: number;
    floorToleranceMs?: number;
  };
  keys: KeySet;
  clock: Clock;
  led: ViewingLed;
  media: MediaPort;
  persist: Persistence;
  /** The persisted time floor: raised, durably, with every accepted grant. */
  timeFloor?: { raise(ms: number): Promise<void> };
  /** The open-look journal: written, durably, before the LED goes on; kept alive while the look runs. */
  lookJournal?: Pick<LookJournalPort, 'open' | 'heartbeat'>;
  log: Logger;
  initial: {
    privacyOn: boolean;
    clockTrusted: boolean;
    /** The persisted time floor (epoch ms); 0 when there is none. */
    floorMs?: number;
    schedule: StoredSchedule | undefined;
    nonces: Record<string, number>;
    counters: Counters;
  };
}

/** From the start of the media to the first packet; past it the console counts as gone. */
export const defaultNegotiationTimeoutMs = 10_000;
/** A wall clock this far below the time floor has been set back (NTP's steps are far smaller). */
export const defaultFloorToleranceMs = 120_000;
const tickMs = 1000;

export class Supervisor extends EventEmitter<SupervisorEvents> {
  readonly #deps: SupervisorDeps;
  readonly #config: CoreConfig;
  readonly #log: Logger;
  #state: CoreState;
  readonly #queue: LookEvent[] = [];
  #draining = false;
  /** Promises of the state writes started while draining: `request` and `applySchedule` wait for them. */
  #started: Array<Promise<unknown>> = [];
  readonly #decisions = new Map<number, (decision: Decision) => void>();
  #nextRef = 1;
  #scheduleOutcome: { accepted: boolean; reason?: ScheduleRejection } | undefined;
  #wakeTimer: unknown;
  #tickTimer: unknown;
  readonly #idleWaiters: Array<() => void> = [];
  #countersDirty = false;
  #countersWriting: Promise<void> | undefined;
  #running = false;
  #stopped = false;
  #mediaStuck: string | undefined;

  constructor(deps: SupervisorDeps) {
    super();
    this.#deps = deps;
    this.#log = deps.log;
    this.#config = {
      ...deps.config,
      negotiationTimeoutMs: deps.config.negotiationTimeoutMs ?? defaultNegotiationTimeoutMs,
      floorToleranceMs: deps.config.floorToleranceMs ?? defaultFloorToleranceMs,
    };
    this.#state = initialState({
      conditions: {
        privacyOn: deps.initial.privacyOn,
        clockTrusted: deps.initial.clockTrusted,
        ledFault: false,
      },
      floorMs: deps.initial.floorMs ?? 0,
      schedule: undefined,
      nonces: { ...deps.initial.nonces },
      counters: structuredClone(deps.initial.counters),
    });
  }

  /** Loads the stored schedule (re-verified: keys may have changed) and starts the periodic check. */
  async start(): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    const stored = this.#deps.initial.schedule;
    if (stored) {
      const verified = await verifySchedule(stored.token, this.#deps.keys);
      if (verified.ok && verified.claims.aud === this.#config.deviceId) {
        this.#state = { ...this.#state, schedule: { claims: verified.claims, stored } };
      } else {
        this.#log.error(
          { reason: verified.ok ? 'wrong-device' : verified.reason },
          'stored schedule no longer verifies',
        );
      }
    }
    // Whatever the LED showed before (a crash mid-view), it starts dark; if it cannot be driven, no
    // view may start until it can.
    await this.#deps.led.setViewing(false).catch((error: Error) => this.reportLedFault(error.message));
    // Beside the exact wake-up: re-checks the window end on the wall clock and retries a faulty LED.
    this.#tickTimer = this.#deps.clock.setInterval(() => this.#tick(), tickMs);
  }

  /** Ends any view and waits until its media is gone and the LED is dark; flushes state. Idempotent. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#deps.clock.clearInterval(this.#tickTimer);
    this.#dispatch({ type: 'shutdown' });
    // Media that could not be confirmed gone never reports stopped: the look stays `ending`, LED lit.
    if (this.#state.phase !== 'idle' && this.#mediaStuck === undefined)
      await new Promise<void>((resolve) => this.#idleWaiters.push(resolve));
    this.#deps.clock.clearTimeout(this.#wakeTimer);
    await this.#flushCounters();
  }

  // ── Queries ────────────────────────────────────────────────────────────────────────────────

  get phase(): Phase {
    return this.#state.phase;
  }

  /** The conditions of the invariant now; `clockTrusted` is false too while the clock is below the floor. */
  get conditions(): Conditions {
    return {
      ...this.#state.conditions,
      clockTrusted: clockTrustedAt(this.#state, this.#now(), this.#config),
    };
  }

  /** The time floor in memory (epoch ms): the latest trusted wall-clock time seen. */
  get floorMs(): number {
    return this.#state.floorMs;
  }

  get schedule(): ScheduleClaims | undefined {
    return this.#state.schedule?.claims;
  }

  get counters(): Counters {
    return structuredClone(this.#state.counters);
  }

  get activeSessionId(): string | undefined {
    return this.#state.look?.sessionId;
  }

  /**
   * Set once a look's media could not be confirmed gone (MediaStuckError from `stop`). Its look stays
   * `ending` with the LED lit, since something may still send; every request is refused meanwhile
   * (`view-active`), and the service withholds the watchdog so systemd restarts it.
   */
  get mediaStuck(): string | undefined {
    return this.#mediaStuck;
  }

  /** Signalling that named no running look (or another session), ignored since start. */
  get strayMessages(): number {
    return this.#state.strayMessages;
  }

  /** The frame gate: true only while every condition of the privacy invariant holds right now. */
  allowFrames(): boolean {
    return framesAllowed(this.#state, this.#now(), this.#config);
  }

  // ── Events from the world ──────────────────────────────────────────────────────────────────

  /** A look request carrying a grant token. Resolves with the decision; the view goes on afterwards. */
  async request(token: string, requestId: string): Promise<Decision> {
    const grant = await verifyGrant(token, this.#deps.keys);
    if (this.#stopped) {
      const decision: Decision = { granted: false, reason: 'view-active', detail: 'the service is stopping' };
      this.#emitDecision(requestId, decision, undefined, false);
      return decision;
    }
    const ref = this.#nextRef++;
    const decided = new Promise<Decision>((resolve) => this.#decisions.set(ref, resolve));
    this.#dispatch({ type: 'request', ref, requestId, grant });
    return decided;
  }

  /** The console's SDP answer for a running look (checked against the grant before it is used). */
  answer(sessionId: string, sdp: string): void {
    this.#dispatch({ type: 'answer', sessionId, sdp });
  }

  /** A remote ICE candidate trickled by the console. */
  candidate(sessionId: string, candidate: IceCandidate): void {
    this.#dispatch({ type: 'candidate', sessionId, candidate });
  }

  /** A hang-up; ends the look only if `secret` proves it comes from the grant holder. */
  hangup(sessionId: string, secret: string): void {
    this.#dispatch({ type: 'hangup', sessionId, secret });
  }

  /** The privacy button's short press: toggles privacy at once. */
  togglePrivacy(): boolean {
    void this.setPrivacy(!this.#state.conditions.privacyOn, 'button');
    return this.#state.conditions.privacyOn;
  }

  /** Sets privacy at once; resolves when the new state is stored (or its storing failed, reported). */
  async setPrivacy(privacyOn: boolean, source: 'button' | 'startup-safe-default'): Promise<void> {
    await this.#dispatchAndWait({ type: 'privacy', privacyOn, source });
  }

  setClockTrusted(trusted: boolean, detail = ''): void {
    this.#dispatch({ type: 'clock', trusted, detail });
  }

  /** The wall clock jumped against the monotonic clock: any running view ends and is checked again. */
  clockStepped(stepMs: number): void {
    this.#dispatch({ type: 'clock-step', stepMs });
  }

  /** The viewing LED could not be driven: no view may start and a running one stops. */
  reportLedFault(detail: string): void {
    this.#dispatch({ type: 'led-fault', detail });
  }

  /** A schedule token from the central service. Refused if it does not verify or would roll back. */
  async applySchedule(token: string): Promise<{ accepted: boolean; reason?: ScheduleRejection }> {
    const verified = await verifySchedule(token, this.#deps.keys);
    this.#scheduleOutcome = { accepted: true };
    await this.#dispatchAndWait({ type: 'schedule', token, verified });
    const outcome = this.#scheduleOutcome;
    this.#scheduleOutcome = undefined;
    return outcome;
  }

  // ── The interpreter ────────────────────────────────────────────────────────────────────────

  #now(): { wallMs: number; monoMs: number } {
    return { wallMs: this.#deps.clock.now(), monoMs: this.#deps.clock.monotonicMs() };
  }

  /** Queues an event and, unless a step is running, processes the queue. */
  #dispatch(event: LookEvent): void {
    // The writes handle their own failures (they feed them back as events); nobody waits for them here.
    void Promise.all(this.#drain(event));
  }

  /** As #dispatch, and resolves once the state writes it started are done. */
  async #dispatchAndWait(event: LookEvent): Promise<void> {
    await Promise.all(this.#drain(event));
  }

  #drain(event: LookEvent): Array<Promise<unknown>> {
    this.#queue.push(event);
    if (this.#draining) return [];
    this.#draining = true;
    const started: Array<Promise<unknown>> = [];
    this.#started = started;
    try {
      for (let next = this.#queue.shift(); next !== undefined; next = this.#queue.shift()) {
        const step = transition(this.#state, next, this.#now(), this.#config);
        this.#state = step.state;
        for (const effect of step.effects) this.#run(effect);
      }
    } finally {
      this.#draining = false;
    }
    if (this.#state.phase === 'idle') for (const resolve of this.#idleWaiters.splice(0)) resolve();
    return started;
  }

  #run(effect: Effect): void {
    try {
      this.#execute(effect);
    } catch (error) {
      this.#log.error({ err: error, effect: effect.kind }, 'effect failed');
    }
  }

  #execute(effect: Effect): void {
    const { persist, led, media } = this.#deps;
    switch (effect.kind) {
      case 'save-nonces': {
        const { sessionId } = effect;
        const look = this.#state.look;
        const writes = [
          persist.save('replay', { nonces: effect.nonces }),
          // The floor: a clock set back below this grant's time is caught even after a restart.
          this.#deps.timeFloor?.raise(this.#deps.clock.now()),
          look?.sessionId === sessionId
            ? this.#deps.lookJournal?.open({
                sessionId,
                operatorId: look.operatorId,
                requestId: look.requestId,
                startedAtMs: look.startedAtMs,
              })
            : undefined,
        ];
        this.#track(
          Promise.all(writes).then(
            () => this.#dispatch({ type: 'nonces-saved', sessionId, ok: true }),
            (error: unknown) => {
              this.#log.error({ err: error }, 'cannot record the grant nonce');
              this.#dispatch({ type: 'nonces-saved', sessionId, ok: false });
            },
          ),
        );
        return;
      }
      case 'save-privacy':
        this.#track(
          persist
            .save('privacy', { privacyOn: effect.privacyOn, changedAt: new Date(effect.atMs).toISOString() })
            .catch((error: unknown) => {
              // Privacy stays as set in memory; on restart an unreadable file means privacy on.
              this.#log.error({ err: error }, 'cannot persist privacy state');
              this.#emit('fault', {
                fault: 'state',
                active: true,
                detail: 'privacy state not writable',
                atMs: effect.atMs,
              });
            }),
        );
        return;
      case 'save-schedule': {
        const { stored, claims } = effect;
        this.#track(
          persist.save('schedule', stored).then(
            () => this.#dispatch({ type: 'schedule-saved', stored, claims, ok: true }),
            (error: unknown) => {
              this.#log.error({ err: error }, 'cannot store schedule');
              this.#dispatch({ type: 'schedule-saved', stored, claims, ok: false });
            },
          ),
        );
        return;
      }
      case 'save-counters':
        this.#saveCounters();
        return;
      case 'led': {
        const { on, sessionId } = effect;
        led.setViewing(on).then(
          () => this.#dispatch({ type: 'led-done', on, ok: true, sessionId }),
          (error: Error) =>
            this.#dispatch({ type: 'led-done', on, ok: false, sessionId, detail: error.message }),
        );
        return;
      }
      case 'start-media':
        this.#startMedia(effect.look);
        return;
      case 'apply-answer':
        media.applyAnswer(effect.sessionId, effect.sdp);
        return;
      case 'add-candidate':
        media.addCandidate(effect.sessionId, effect.candidate);
        return;
      case 'stop-media': {
        const { sessionId } = effect;
        media.stop(sessionId).then(
          () => this.#dispatch({ type: 'media-stopped', sessionId }),
          (error: unknown) => {
            if (error instanceof MediaStuckError) {
              this.#onMediaStuck(sessionId, error.message);
              return;
            }
            this.#log.error({ err: error, sessionId }, 'media did not stop cleanly');
            this.#dispatch({ type: 'media-stopped', sessionId });
          },
        );
        return;
      }
      case 'wake':
        this.#deps.clock.clearTimeout(this.#wakeTimer);
        this.#wakeTimer =
          effect.inMs === undefined
            ? undefined
            : this.#deps.clock.setTimeout(() => this.#dispatch({ type: 'deadline' }), effect.inMs);
        return;
      case 'notify':
        this.#notice(effect.notice);
        return;
      case 'log':
        this.#log[effect.level](effect.fields, effect.message);
        return;
    }
  }

  /** The media of `sessionId` may still be sending: fault, LED kept lit, no look until a restart. */
  #onMediaStuck(sessionId: string, detail: string): void {
    if (this.#mediaStuck !== undefined) return;
    this.#mediaStuck = detail;
    this.#log.error(
      { sessionId, detail },
      'look media not confirmed gone: camera failure, no view until restart',
    );
    this.#emit('fault', { fault: 'camera', active: true, detail, atMs: this.#deps.clock.now() });
    for (const resolve of this.#idleWaiters.splice(0)) resolve();
  }

  #track(write: Promise<unknown>): void {
    this.#started.push(write);
  }

  #startMedia(look: MediaLook): void {
    const { sessionId } = look;
    // Reports from a look that has ended are dropped by the machine: it checks the session id.
    const sink: MediaSink = {
      offer: (sdp) => this.#dispatch({ type: 'media-offer', sessionId, sdp }),
      candidate: (candidate) => this.#dispatch({ type: 'media-candidate', sessionId, candidate }),
      streaming: () => this.#dispatch({ type: 'media-streaming', sessionId }),
      failed: (reason, detail) => this.#dispatch({ type: 'media-failed', sessionId, reason, detail }),
    };
    const allowFrames = () => this.#state.look?.sessionId === sessionId && this.allowFrames();
    try {
      this.#deps.media.start({ ...look, allowFrames }, sink);
    } catch (error) {
      this.#dispatch({ type: 'media-failed', sessionId, reason: 'camera-failure', detail: String(error) });
    }
  }

  #tick(): void {
    this.#dispatch({ type: 'deadline' });
    if (this.#state.look && this.#state.phase !== 'ending')
      this.#deps.lookJournal?.heartbeat(this.#deps.clock.now());
    if (this.#state.conditions.ledFault && this.#state.phase === 'idle') {
      // A fault clears only when the LED can be driven again.
      this.#deps.led.setViewing(false).then(
        () => this.#dispatch({ type: 'led-done', on: false, ok: true, sessionId: undefined }),
        () => undefined,
      );
    }
  }

  #notice(notice: Notice): void {
    const atMs = this.#deps.clock.now();
    switch (notice.type) {
      case 'decision': {
        this.#emitDecision(notice.requestId, notice.decision, notice.look, notice.retry, atMs);
        this.#resolve(notice.ref, notice.decision);
        return;
      }
      case 'retry-dropped':
        // Too many retries wait for one decision: this one gets no answer of its own (the others do).
        this.#log.debug({ requestId: notice.requestId }, 'retry dropped while the decision is pending');
        this.#resolve(notice.ref, {
          granted: false,
          reason: 'view-active',
          detail: 'a retry dropped while its look was being decided',
        });
        return;
      case 'view-started':
        this.#emit('viewStarted', {
          sessionId: notice.look.sessionId,
          operatorId: notice.look.operatorId,
          viewMode: notice.look.viewMode,
          atMs,
        });
        return;
      case 'view-ended': {
        const { look } = notice;
        this.#emit('viewEnded', {
          sessionId: look.sessionId,
          operatorId: look.operatorId,
          requestId: look.requestId,
          reason: notice.reason,
          endedBy: notice.endedBy,
          refusedSignals: { ...look.refused },
          startedAtMs: look.startedAtMs,
          durationMs: notice.durationMs,
        });
        return;
      }
      case 'privacy':
        this.#emit('privacy', { privacyOn: notice.privacyOn, source: notice.source, atMs });
        return;
      case 'schedule': {
        if (this.#scheduleOutcome) {
          this.#scheduleOutcome = {
            accepted: notice.accepted,
            ...(notice.reason !== undefined ? { reason: notice.reason } : {}),
          };
        }
        const { type: _type, ...rest } = notice;
        this.#emit('schedule', { ...rest, atMs });
        return;
      }
      case 'fault':
        this.#emit('fault', { fault: notice.fault, active: notice.active, detail: notice.detail, atMs });
        return;
      case 'signal-refused':
        this.#emit('signalRefused', {
          sessionId: notice.look.sessionId,
          operatorId: notice.look.operatorId,
          requestId: notice.look.requestId,
          signal: notice.signal,
          reason: notice.reason,
          first: notice.first,
          atMs,
        });
        return;
      case 'offer':
        this.#emit('signal', {
          schemaVersion,
          type: 'offer',
          sessionId: notice.look.sessionId,
          requestId: notice.look.requestId,
          sdp: notice.sdp,
        });
        return;
      case 'local-candidate':
        this.#emit('signal', {
          schemaVersion,
          type: 'candidate',
          sessionId: notice.look.sessionId,
          candidate: notice.candidate,
        });
        return;
    }
  }

  #resolve(ref: number, decision: Decision): void {
    const resolve = this.#decisions.get(ref);
    this.#decisions.delete(ref);
    resolve?.(decision);
  }

  #emitDecision(
    requestId: string,
    decision: Decision,
    look: Look | undefined,
    retry: boolean,
    atMs = this.#deps.clock.now(),
  ): void {
    this.#emit('decision', {
      requestId,
      decision,
      sessionId: look?.sessionId,
      operatorId: look?.operatorId,
      retry,
      atMs,
    });
  }

  /** Counters are not safety state: writes are coalesced so a flood of bad requests cannot flood the disk. */
  #saveCounters(): void {
    this.#countersDirty = true;
    if (this.#countersWriting) return;
    this.#countersWriting = this.#flushCounters().finally(() => {
      this.#countersWriting = undefined;
    });
  }

  async #flushCounters(): Promise<void> {
    while (this.#countersDirty) {
      this.#countersDirty = false;
      try {
        await this.#deps.persist.save('counters', structuredClone(this.#state.counters));
      } catch (error) {
        this.#log.warn({ err: error }, 'cannot persist counters');
        return;
      }
    }
  }

  #emit<K extends keyof SupervisorEvents & string>(event: K, ...args: SupervisorEvents[K]): void {
    emitSafely<SupervisorEvents, K>(this, this.#log, event, ...args);
  }
}
