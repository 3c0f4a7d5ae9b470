// Applies the core's rules to the world and keeps the privacy invariant at every event: a grant, a
// window end, a grant expiry, a button press, an LED fault, clock loss, a new schedule, shutdown.
//
// The view session's states, in one place:
//
//   idle ──grant──▶ negotiating ──media may flow──▶ streaming
//     ▲                  │                              │
//     └──── ending ◀─────┴──────────any end reason──────┘
//
// Safety order of teardown, written once in #end: the frame gate closes synchronously (no packet
// passes allowFrames() from that instant), then the LED goes off, then the media pipeline stops.
// Frames pass only while the LED is lit, the grant is valid, a window is open, privacy is off, the
// clock is trusted and the LED has no fault; allowFrames() checks all of it per packet.
import { EventEmitter } from 'node:events';
import { type KeySet, verifyGrant, verifySchedule } from '../auth/verify.js';
import {
  type Conditions,
  type Decision,
  decide,
  type Limits,
  mustEnd,
  pruneNonces,
} from '../core/decision.js';
import type { EndReason, RefusalReason, ScheduleRejection } from '../core/reasons.js';
import type { Logger } from '../log/index.js';
import type { GrantClaims, ScheduleClaims, ViewMode } from '../protocol/tokens.js';
import type { Counters, PrivacyState, ReplayCache, StoredSchedule } from '../state/store.js';
import type { Timers, ViewingLed, ViewPort } from './types.js';

export type Phase = 'idle' | 'negotiating' | 'streaming' | 'ending';

export interface Persistence {
  save(key: 'privacy', value: PrivacyState): Promise<void>;
  save(key: 'schedule', value: StoredSchedule): Promise<void>;
  save(key: 'replay', value: ReplayCache): Promise<void>;
  save(key: 'counters', value: Counters): Promise<void>;
}

export interface DecisionEvent {
  requestId: string;
  decision: Decision;
  sessionId: string | undefined;
  operatorId: string | undefined;
  atMs: number;
}

export interface ViewEndedEvent {
  sessionId: string;
  operatorId: string;
  requestId: string;
  reason: EndReason;
  startedAtMs: number;
  durationMs: number;
}

export interface SupervisorEvents {
  decision: [DecisionEvent];
  viewStarted: [{ sessionId: string; operatorId: string; viewMode: ViewMode; atMs: number }];
  viewEnded: [ViewEndedEvent];
  privacy: [{ privacyOn: boolean; source: 'button' | 'startup-safe-default'; atMs: number }];
  schedule: [
    { accepted: boolean; version?: number; reason?: ScheduleRejection; detail?: string; atMs: number },
  ];
  fault: [{ fault: 'led' | 'clock' | 'state'; active: boolean; detail: string; atMs: number }];
}

export interface SupervisorDeps {
  deviceId: string;
  timeZone: string;
  limits: Limits;
  keys: KeySet;
  now(): number;
  timers: Timers;
  led: ViewingLed;
  view: ViewPort;
  persist: Persistence;
  log: Logger;
  initial: {
    privacyOn: boolean;
    clockTrusted: boolean;
    schedule: StoredSchedule | undefined;
    nonces: Record<string, number>;
    counters: Counters;
  };
}

interface Session {
  sessionId: string;
  operatorId: string;
  requestId: string;
  claims: GrantClaims;
  viewMode: ViewMode;
  startedAtMs: number;
  endsAtMs: number;
  ledOn: boolean;
  abort: AbortController;
}

const tickMs = 1000;

export class Supervisor extends EventEmitter<SupervisorEvents> {
  readonly #deps: SupervisorDeps;
  readonly #log: Logger;
  #phase: Phase = 'idle';
  #session: Session | undefined;
  #privacyOn: boolean;
  #clockTrusted: boolean;
  #ledFault = false;
  #schedule: { claims: ScheduleClaims; stored: StoredSchedule } | undefined;
  #nonces: Record<string, number>;
  #counters: Counters;
  #deadlineTimer: unknown;
  #tickTimer: unknown;
  #teardown: Promise<void> = Promise.resolve();
  #countersDirty = false;
  #countersWriting: Promise<void> | undefined;
  #started = false;
  #stopped = false;

  constructor(deps: SupervisorDeps) {
    super();
    this.#deps = deps;
    this.#log = deps.log;
    this.#privacyOn = deps.initial.privacyOn;
    this.#clockTrusted = deps.initial.clockTrusted;
    this.#nonces = { ...deps.initial.nonces };
    this.#counters = structuredClone(deps.initial.counters);
  }

  /** Loads the stored schedule (re-verified: keys may have changed) and starts the periodic check. */
  async start(): Promise<void> {
    if (this.#started) return;
    this.#started = true;
    const stored = this.#deps.initial.schedule;
    if (stored) {
      const verified = await verifySchedule(stored.token, this.#deps.keys);
      if (verified.ok && verified.claims.aud === this.#deps.deviceId) {
        this.#schedule = { claims: verified.claims, stored };
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
    // Belt and braces beside the exact deadline timer: catches clock steps and retries a faulty LED.
    this.#tickTimer = this.#deps.timers.setInterval(() => this.#tick(), tickMs);
  }

  /** Ends any view, flushes state; idempotent. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#deps.timers.clearInterval(this.#tickTimer);
    this.#end('shutdown');
    await this.#teardown;
    await this.#flushCounters();
  }

  // ── Queries ────────────────────────────────────────────────────────────────────────────────

  get phase(): Phase {
    return this.#phase;
  }

  get conditions(): Conditions {
    return { privacyOn: this.#privacyOn, clockTrusted: this.#clockTrusted, ledFault: this.#ledFault };
  }

  get schedule(): ScheduleClaims | undefined {
    return this.#schedule?.claims;
  }

  get counters(): Counters {
    return structuredClone(this.#counters);
  }

  get activeSessionId(): string | undefined {
    return this.#session?.sessionId;
  }

  /** The frame gate: true only while every condition of the privacy invariant holds right now. */
  allowFrames(): boolean {
    const session = this.#session;
    if (!session || (this.#phase !== 'negotiating' && this.#phase !== 'streaming')) return false;
    return (
      session.ledOn &&
      !this.#privacyOn &&
      this.#clockTrusted &&
      !this.#ledFault &&
      this.#deps.now() < session.endsAtMs
    );
  }

  // ── Events from the world ──────────────────────────────────────────────────────────────────

  /** A look request carrying a grant token. Resolves with the decision; the view goes on afterwards. */
  async request(token: string, requestId: string): Promise<Decision> {
    const verified = await verifyGrant(token, this.#deps.keys);
    if (this.#stopped) return this.#refused(requestId, 'view-active', 'the service is stopping');
    const nowMs = this.#deps.now();
    const decision = decide({
      nowMs,
      deviceId: this.#deps.deviceId,
      timeZone: this.#deps.timeZone,
      limits: this.#deps.limits,
      schedule: this.#schedule?.claims,
      conditions: this.conditions,
      viewActive: this.#phase !== 'idle',
      usedNonces: this.#nonces,
      grant: verified,
    });
    if (!decision.granted) return this.#refused(requestId, decision.reason, decision.detail);

    // Claim the single view slot synchronously, before any await, so a concurrent request sees it.
    const { claims } = decision;
    const session: Session = {
      sessionId: claims.sid,
      operatorId: claims.op,
      requestId,
      claims,
      viewMode: decision.viewMode,
      startedAtMs: nowMs,
      endsAtMs: decision.endsAtMs,
      ledOn: false,
      abort: new AbortController(),
    };
    this.#session = session;
    this.#phase = 'negotiating';
    this.#nonces = { ...pruneNonces(this.#nonces, nowMs), [claims.jti]: claims.exp };
    try {
      // The nonce is on disk before the view starts, so a replay after a crash is still refused.
      await this.#deps.persist.save('replay', { nonces: this.#nonces });
    } catch (error) {
      this.#log.error({ err: error }, 'cannot record the grant nonce');
      this.#emitSafe('fault', {
        fault: 'state',
        active: true,
        detail: 'replay cache not writable',
        atMs: nowMs,
      });
      this.#abandon(session);
      // Not used after all: the same grant may be retried once the disk is writable again.
      const { [claims.jti]: _unused, ...rest } = this.#nonces;
      this.#nonces = rest;
      return this.#refused(requestId, 'state-unavailable', 'the replay cache could not be written');
    }
    this.#log.info(
      { requestId, sessionId: session.sessionId, operatorId: session.operatorId },
      'grant accepted',
    );
    this.#emitSafe('decision', {
      requestId,
      decision,
      sessionId: session.sessionId,
      operatorId: session.operatorId,
      atMs: nowMs,
    });
    void this.#run(session);
    return decision;
  }

  /** The operator hung up, the peer vanished or the camera failed. Ignored for a session no longer active. */
  endView(sessionId: string, reason: EndReason): void {
    if (this.#session?.sessionId === sessionId) this.#end(reason);
  }

  /** The privacy button's short press: toggles privacy at once. */
  togglePrivacy(): boolean {
    this.setPrivacy(!this.#privacyOn, 'button');
    return this.#privacyOn;
  }

  setPrivacy(privacyOn: boolean, source: 'button' | 'startup-safe-default'): void {
    const atMs = this.#deps.now();
    if (privacyOn) this.#end('privacy-on');
    if (this.#privacyOn === privacyOn) return;
    this.#privacyOn = privacyOn;
    this.#log.info({ privacyOn, source }, privacyOn ? 'privacy on' : 'privacy off');
    this.#emitSafe('privacy', { privacyOn, source, atMs });
    this.#deps.persist
      .save('privacy', { privacyOn, changedAt: new Date(atMs).toISOString() })
      .catch((error) => {
        // Privacy stays as set in memory; on restart an unreadable file means privacy on.
        this.#log.error({ err: error }, 'cannot persist privacy state');
        this.#emitSafe('fault', { fault: 'state', active: true, detail: 'privacy state not writable', atMs });
      });
  }

  setClockTrusted(trusted: boolean, detail = ''): void {
    if (!trusted) this.#end('clock-unsynced');
    if (this.#clockTrusted === trusted) return;
    this.#clockTrusted = trusted;
    this.#log.info({ clockTrusted: trusted, detail }, trusted ? 'clock trusted' : 'clock not trusted');
    this.#emitSafe('fault', { fault: 'clock', active: !trusted, detail, atMs: this.#deps.now() });
  }

  /** The viewing LED could not be driven: no view may start and a running one stops. */
  reportLedFault(detail: string): void {
    this.#end('led-fault');
    if (this.#ledFault) return;
    this.#ledFault = true;
    this.#log.error({ detail }, 'viewing LED fault');
    this.#emitSafe('fault', { fault: 'led', active: true, detail, atMs: this.#deps.now() });
  }

  /** A schedule token from the central service. Refused if it does not verify or would roll back. */
  async applySchedule(token: string): Promise<{ accepted: boolean; reason?: ScheduleRejection }> {
    const atMs = () => this.#deps.now();
    const verified = await verifySchedule(token, this.#deps.keys);
    const reject = (reason: ScheduleRejection, detail: string, version?: number) => {
      this.#log.warn({ reason, detail, version }, 'schedule refused');
      this.#emitSafe('schedule', {
        accepted: false,
        reason,
        detail,
        ...(version !== undefined ? { version } : {}),
        atMs: atMs(),
      });
      return { accepted: false, reason };
    };
    if (!verified.ok) return reject(verified.reason, verified.detail);
    const claims = verified.claims;
    if (claims.aud !== this.#deps.deviceId) {
      return reject('wrong-device', `schedule is for ${claims.aud}`, claims.version);
    }
    const current = this.#schedule?.stored;
    // A retained message is delivered again at every connect: the same token is not news.
    if (current && current.token === token) return { accepted: true };
    if (current && claims.version <= current.version) {
      return reject(
        'rollback',
        `version ${claims.version} is not newer than ${current.version}`,
        claims.version,
      );
    }
    const stored: StoredSchedule = { version: claims.version, token };
    try {
      await this.#deps.persist.save('schedule', stored);
    } catch (error) {
      this.#log.error({ err: error }, 'cannot store schedule');
      this.#emitSafe('fault', {
        fault: 'state',
        active: true,
        detail: 'schedule not writable',
        atMs: atMs(),
      });
      return reject('malformed', 'the schedule could not be stored');
    }
    if (this.#schedule && this.#schedule.stored.version >= claims.version) return { accepted: true };
    this.#schedule = { claims, stored };
    this.#log.info({ version: claims.version, windows: claims.windows.length }, 'schedule accepted');
    this.#emitSafe('schedule', { accepted: true, version: claims.version, atMs: atMs() });
    this.#enforce('schedule-changed');
    return { accepted: true };
  }

  /** A message on the schedule topic that is not a schedule token at all: reported, nothing changes. */
  reportUnreadableSchedule(detail: string): void {
    this.#log.warn({ detail }, 'schedule message unreadable');
    this.#emitSafe('schedule', { accepted: false, reason: 'malformed', detail, atMs: this.#deps.now() });
  }

  /** Re-checks a running view against the rules; public so the composition root can call it after a clock step. */
  enforce(): void {
    this.#enforce();
  }

  // ── Internals ──────────────────────────────────────────────────────────────────────────────

  async #run(session: Session): Promise<void> {
    const stillCurrent = () => this.#session === session && this.#phase === 'negotiating';
    // The session may have ended while its nonce was written (a press, a shutdown): never light the
    // LED for it then. The check and the write are in the same tick, so an end that follows queues
    // its LED-off after this LED-on.
    if (!stillCurrent()) return;
    try {
      await this.#deps.led.setViewing(true);
      session.ledOn = true;
    } catch (error) {
      this.reportLedFault((error as Error).message);
      return;
    }
    if (!stillCurrent()) return;
    this.#armDeadline(session);
    this.#enforce();
    if (!stillCurrent()) return;
    try {
      await this.#deps.view.start(
        {
          sessionId: session.sessionId,
          operatorId: session.operatorId,
          requestId: session.requestId,
          viewMode: session.viewMode,
          endsAtMs: session.endsAtMs,
          allowFrames: () => this.#session === session && this.allowFrames(),
        },
        session.abort.signal,
      );
    } catch (error) {
      if (stillCurrent()) {
        this.#log.error({ err: error, sessionId: session.sessionId }, 'view failed to start');
        this.#end('camera-failure');
      }
      return;
    }
    if (!stillCurrent()) return;
    this.#phase = 'streaming';
    this.#counters.views += 1;
    this.#log.info({ sessionId: session.sessionId, operatorId: session.operatorId }, 'view streaming');
    this.#emitSafe('viewStarted', {
      sessionId: session.sessionId,
      operatorId: session.operatorId,
      viewMode: session.viewMode,
      atMs: this.#deps.now(),
    });
  }

  #armDeadline(session: Session): void {
    this.#deps.timers.clearTimeout(this.#deadlineTimer);
    const delayMs = Math.max(0, session.endsAtMs - this.#deps.now());
    this.#deadlineTimer = this.#deps.timers.setTimeout(() => this.#enforce(), delayMs);
  }

  #tick(): void {
    this.#enforce();
    if (this.#ledFault && this.#phase === 'idle') {
      // A fault clears only when the LED can be driven again.
      this.#deps.led.setViewing(false).then(
        () => {
          if (!this.#ledFault || this.#phase !== 'idle') return;
          this.#ledFault = false;
          this.#log.info('viewing LED works again');
          this.#emitSafe('fault', {
            fault: 'led',
            active: false,
            detail: 'recovered',
            atMs: this.#deps.now(),
          });
        },
        () => undefined,
      );
    }
  }

  #enforce(cause?: EndReason): void {
    const session = this.#session;
    if (!session || (this.#phase !== 'negotiating' && this.#phase !== 'streaming')) return;
    const reason = mustEnd({
      nowMs: this.#deps.now(),
      timeZone: this.#deps.timeZone,
      limits: this.#deps.limits,
      schedule: this.#schedule?.claims,
      conditions: this.conditions,
      view: session,
    });
    if (reason) this.#end(reason === 'window-end' && cause ? cause : reason);
  }

  #end(reason: EndReason): void {
    const session = this.#session;
    if (!session || this.#phase === 'ending' || this.#phase === 'idle') return;
    // From here allowFrames() is false: the gate is closed before anything else happens.
    this.#phase = 'ending';
    session.abort.abort();
    this.#deps.timers.clearTimeout(this.#deadlineTimer);
    const endedAtMs = this.#deps.now();
    this.#log.info({ sessionId: session.sessionId, reason }, 'view ending');
    const previous = this.#teardown;
    this.#teardown = (async () => {
      await previous;
      try {
        await this.#deps.led.setViewing(false);
        session.ledOn = false;
      } catch (error) {
        this.#ledFault = true;
        this.#emitSafe('fault', {
          fault: 'led',
          active: true,
          detail: (error as Error).message,
          atMs: endedAtMs,
        });
      }
      try {
        await this.#deps.view.stop(session.sessionId, reason);
      } catch (error) {
        this.#log.error({ err: error, sessionId: session.sessionId }, 'view did not stop cleanly');
      }
      this.#counters.lastEndReason = reason;
      this.#saveCounters();
      if (this.#session === session) {
        this.#session = undefined;
        this.#phase = 'idle';
      }
      this.#emitSafe('viewEnded', {
        sessionId: session.sessionId,
        operatorId: session.operatorId,
        requestId: session.requestId,
        reason,
        startedAtMs: session.startedAtMs,
        durationMs: endedAtMs - session.startedAtMs,
      });
    })();
  }

  /** Gives the slot back for a session that never lit the LED (its nonce could not be recorded). */
  #abandon(session: Session): void {
    if (this.#session !== session) return;
    session.abort.abort();
    this.#session = undefined;
    this.#phase = 'idle';
  }

  #refused(requestId: string, reason: RefusalReason, detail: string): Decision {
    const decision: Decision = { granted: false, reason, detail };
    this.#counters.refusals[reason] = (this.#counters.refusals[reason] ?? 0) + 1;
    this.#saveCounters();
    this.#log.info({ requestId, reason, detail }, 'request refused');
    this.#emitSafe('decision', {
      requestId,
      decision,
      sessionId: undefined,
      operatorId: undefined,
      atMs: this.#deps.now(),
    });
    return decision;
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
        await this.#deps.persist.save('counters', structuredClone(this.#counters));
      } catch (error) {
        this.#log.warn({ err: error }, 'cannot persist counters');
        return;
      }
    }
  }

  #emitSafe<K extends keyof SupervisorEvents>(event: K, ...args: SupervisorEvents[K]): void {
    try {
      // biome-ignore lint/suspicious/noExplicitAny: EventEmitter's generic emit signature needs the cast.
      (this.emit as any)(event, ...args);
    } catch (error) {
      this.#log.error({ err: error, event }, 'a listener threw; ignored');
    }
  }
}
