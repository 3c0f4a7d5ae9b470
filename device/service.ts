// Wires the components of one running device together: state, LEDs and button, the supervisor, the
// clock watch and the MQTT link. Built by main.ts (the composition root) from the config; built by
// tests and the demo with simulated hardware. Nothing here reads config files or the environment.
import { access, constants } from 'node:fs/promises';
import { join } from 'node:path';
import { AuditTrail, attachAudit, LookJournal, OpenSessionJournal, WindowWatch } from './audit/index.js';
import { type KeySet, plausibleGrant } from './auth/index.js';
import type { CameraControlsStatus } from './camera/status.js';
import {
  type Clock,
  type ClockCheck,
  type ClockVerdict,
  ClockWatch,
  clockCheck,
  StepWatcher,
  TimeFloor,
} from './clock/index.js';
import type { Config } from './config/index.js';
import type { Gpio } from './hardware/index.js';
import { LedController, PrivacyButton } from './hardware/index.js';
import {
  collectHealth,
  collectInfo,
  configHash,
  HealthMonitor,
  type SystemReaders,
  systemReaders,
} from './health/index.js';
import type { Logger } from './log/index.js';
import { fileCounter, type InboundTopic, type LinkDeps, MqttLink, TokenBucket } from './mqtt/index.js';
import { deliverAcks, Outbox } from './outbox/index.js';
import {
  type DeviceEvent,
  decisionMessage,
  endedMessage,
  faultEvent,
  type Inbound,
  parseInbound,
  privacyEvent,
  scheduleEvent,
  schemaVersion,
  type ViewDecision,
  type ViewEnded,
} from './protocol/index.js';
import { nextWindowAfter, openWindowAt } from './schedule/index.js';
import { StateStore } from './state/index.js';
import { instantMedia, type MediaPort, Supervisor } from './supervisor/index.js';
import { startUpdates, type UpdateAgent, type UpdateWiringDeps } from './update/index.js';

export interface ServiceDeps {
  config: Config;
  log: Logger;
  gpio: Gpio;
  keys: KeySet;
  tls: LinkDeps['tls'];
  clock: Clock;
  /** Overrides the clock check built from the config (kernel sync state, time floor): tests, the demo. */
  clockCheck?: ClockCheck;
  /** The media of a look; default: none (the rules alone, as in the core demo). */
  media?: MediaPort;
  /** From the start of a look's media to its first packet; default 10 s. */
  negotiationTimeoutMs?: number;
  connect?: LinkDeps['connect'];
  /** System readers for health; default: the real /proc, /sys and commands. */
  systemReaders?: SystemReaders;
  /** How the camera's controls took at the latest camera open (fed by the media); default: not reported. */
  cameraControls?: CameraControlsStatus;
  /** Updates: another architecture, running version or tick (tests). */
  updates?: UpdateWiringDeps['overrides'];
}

/** A simple clock check (tests, the demo) as the watch wants it. */
function withKind(check: ClockCheck): () => Promise<ClockVerdict> {
  return async () => {
    const { trusted, detail, kind } = await check();
    return { trusted, detail, kind: kind ?? (trusted ? 'trusted' : 'unsynchronised') };
  };
}

interface InboundBuckets {
  requests: TokenBucket;
  other: TokenBucket;
  schedules: TokenBucket;
}

/** The media is made ready (a warm media process) this long before a window opens, and while it is open. */
export const mediaStandByLeadMs = 60_000;
const mediaStandByCheckMs = 10_000;

/** Long-press status codes, blinked on the LED (documented in docs/operations.md). */
export const statusCodes = { ok: 1, brokerOffline: 2, clockUnsynced: 3, fault: 4, noSchedule: 5 } as const;

export class Service {
  readonly #deps: ServiceDeps;
  readonly #log: Logger;
  #supervisor: Supervisor | undefined;
  #led: LedController | undefined;
  #button: PrivacyButton | undefined;
  #link: MqttLink | undefined;
  #outbox: Outbox | undefined;
  #audit: AuditTrail | undefined;
  #windowWatch: WindowWatch | undefined;
  #health: HealthMonitor | undefined;
  #floor: TimeFloor | undefined;
  #clockWatch: ClockWatch | undefined;
  #lookJournal: LookJournal | undefined;
  #inboundRejected = 0;
  #buckets: InboundBuckets | undefined;
  #dropped = 0;
  /** The latest schedule the limit held back: schedules are latest-wins, so it is applied later. */
  #heldSchedule: Buffer | undefined;
  #heldScheduleTimer: unknown;
  #detachAudit: (() => void) | undefined;
  #lastBadScheduleReportMs = Number.NEGATIVE_INFINITY;
  #stopping: Promise<number> | undefined;
  #standByTimer: unknown;
  #updates: UpdateAgent | undefined;
  #started = false;

  constructor(deps: ServiceDeps) {
    this.#deps = deps;
    this.#log = deps.log;
  }

  get supervisor(): Supervisor {
    if (!this.#supervisor) throw new Error('service not started');
    return this.#supervisor;
  }

  get link(): MqttLink | undefined {
    return this.#link;
  }

  /** Persisted QoS 1 records (audit, events); `enqueue('audit', record)`. Set once started. */
  get outbox(): Outbox | undefined {
    return this.#outbox;
  }

  get health(): HealthMonitor | undefined {
    return this.#health;
  }

  /** Inbound MQTT payloads refused as malformed, oversized or of the wrong schema. */
  get inboundRejected(): number {
    return this.#inboundRejected;
  }

  /**
   * Well-formed inbound messages dropped by the rate limits since start: not verified, not audited.
   * (Malformed ones over the limit are counted in `inboundRejected` and get no reply.)
   */
  get inboundDropped(): number {
    return this.#dropped;
  }

  async start(signal?: AbortSignal): Promise<void> {
    const { config, log, gpio, clock } = this.#deps;
    const timers = clock;
    const rates = config.limits.inbound;
    this.#buckets = {
      requests: new TokenBucket({ ...rates.requests, now: clock.monotonicMs }),
      other: new TokenBucket({ ...rates.other, now: clock.monotonicMs }),
      schedules: new TokenBucket({ ...rates.schedules, now: clock.monotonicMs }),
    };
    const check = () => signal?.throwIfAborted();
    const store = new StateStore({ dir: config.stateDir, log: log.child({ mod: 'state' }) });
    const state = await store.load(new Date(clock.now()));
    check();

    const led = new LedController({
      viewingLed: gpio.viewingLed,
      privacyLed: gpio.privacyLed,
      log: log.child({ mod: 'led' }),
      timers,
    });
    this.#led = led;
    check();

    // The time floor first: it decides whether the clock can be trusted at all.
    const floor = new TimeFloor({
      stateDir: config.stateDir,
      log: log.child({ mod: 'clock' }),
      timers,
      toleranceMs: config.clock.floorToleranceS * 1000,
      saveIntervalMs: config.clock.floorSaveIntervalS * 1000,
    });
    this.#floor = floor;
    await floor.start();
    check();
    const clockWatch = new ClockWatch({
      check: this.#deps.clockCheck
        ? withKind(this.#deps.clockCheck)
        : clockCheck({ ...config.clock, now: clock.now, floor, log: log.child({ mod: 'clock' }) }),
      steps: new StepWatcher({
        now: clock.now,
        monotonicNow: clock.monotonicMs,
        timers,
        log: log.child({ mod: 'clock' }),
        thresholdMs: config.clock.stepThresholdMs,
      }),
      timers,
      log,
      checkIntervalMs: config.clock.checkIntervalS * 1000,
    });
    this.#clockWatch = clockWatch;
    const time = await clockWatch.start();
    check();
    const lookJournal = new LookJournal({
      journal: new OpenSessionJournal({ dir: config.stateDir, log: log.child({ mod: 'audit' }) }),
      trail: {
        record: (entry, options) => {
          if (!this.#audit) return Promise.reject(new Error('the audit trail is not started'));
          return this.#audit.record(entry, options);
        },
      },
      log: log.child({ mod: 'audit' }),
    });
    this.#lookJournal = lookJournal;
    const supervisor = new Supervisor({
      config: {
        deviceId: config.deviceId,
        timeZone: config.timeZone,
        limits: config.limits,
        ...(this.#deps.negotiationTimeoutMs !== undefined
          ? { negotiationTimeoutMs: this.#deps.negotiationTimeoutMs }
          : {}),
      },
      keys: this.#deps.keys,
      clock,
      led,
      media: this.#deps.media ?? instantMedia,
      persist: store,
      timeFloor: floor,
      lookJournal,
      log: log.child({ mod: 'supervisor' }),
      initial: {
        privacyOn: state.privacy.privacyOn,
        clockTrusted: time.trusted,
        floorMs: floor.floorMs,
        schedule: state.schedule,
        nonces: state.replay.nonces,
        counters: state.counters,
      },
    });
    this.#supervisor = supervisor;
    await supervisor.start();
    check();
    if (!time.trusted)
      log.warn({ detail: time.detail }, 'clock not trusted at start: grants refused until it is');
    if (state.privacy.privacyOn) await led.showPrivacy(true).catch(() => undefined);

    // A step ends any running look at once (even one forward, which the re-check may then trust).
    clockWatch.on('step', (step) => supervisor.clockStepped(step.stepMs));
    clockWatch.on('verdict', (verdict) => supervisor.setClockTrusted(verdict.trusted, verdict.detail));

    const button = new PrivacyButton({
      input: gpio.button,
      log: log.child({ mod: 'button' }),
      now: clock.now,
      debounceMs: config.gpio.button.debounceMs,
      longPressMs: config.gpio.button.longPressMs,
      timers,
    });
    this.#button = button;
    button.on('press', () => supervisor.togglePrivacy());
    button.on('longPress', () => {
      led.showStatus(this.#statusCode()).catch(() => undefined);
    });
    button.start();

    const counter = await fileCounter({ dir: config.stateDir, log: log.child({ mod: 'mqtt' }) });
    check();
    const link = new MqttLink({
      deviceId: config.deviceId,
      url: config.broker.url,
      tls: this.#deps.tls,
      keepaliveS: config.broker.keepaliveS,
      log: log.child({ mod: 'mqtt' }),
      counter,
      reconnect: config.broker.reconnect,
      offlineQueueMax: config.broker.offlineQueueMax,
      now: clock.now,
      timers,
      ...(this.#deps.connect ? { connect: this.#deps.connect } : {}),
    });
    this.#link = link;
    const outbox = new Outbox({
      dir: config.stateDir,
      log: log.child({ mod: 'outbox' }),
      publish: (name, payload) => link.publish(name, payload),
      connection: link,
      maxRecords: config.outbox.maxRecords,
      maxBytes: config.outbox.maxBytes,
      resendMs: config.outbox.resendS * 1000,
      maxResendMs: config.outbox.maxResendS * 1000,
      now: clock.monotonicMs,
      timers,
    });
    this.#outbox = outbox;
    await outbox.start();
    // A record leaves the outbox only once the central service has acknowledged its id.
    deliverAcks({ link, outbox, log: log.child({ mod: 'outbox' }) });
    check();
    await this.#startAudit(supervisor, outbox);
    check();
    const health = this.#createHealth(supervisor, link, outbox);
    this.#wire(supervisor, led, link, state.problems);
    this.#watchStandBy(supervisor);
    // Before the link starts: the retained manifest may be the first message. Reports outcomes.
    this.#updates = await startUpdates({
      config,
      log,
      keys: this.#deps.keys,
      clock,
      ca: this.#deps.tls?.ca,
      supervisor,
      link,
      outbox,
      ready: () => this.#started,
      healthy: () => this.healthy(),
      ...(this.#deps.updates ? { overrides: this.#deps.updates } : {}),
    });
    check();
    link.start();
    health.start();
    this.#started = true;
    log.info(
      {
        deviceId: config.deviceId,
        privacyOn: state.privacy.privacyOn,
        scheduleVersion: supervisor.schedule?.version,
      },
      'service started',
    );
  }

  #createHealth(supervisor: Supervisor, link: MqttLink, outbox: Outbox): HealthMonitor {
    const { config, log, clock } = this.#deps;
    const timers = clock;
    const source = config.camera.source;
    const cameraDevice = source.kind === 'v4l2' ? source.device : undefined;
    const cameraLabel = source.kind === 'libcamera' ? `libcamera camera ${source.camera}` : undefined;
    const readers =
      this.#deps.systemReaders ?? systemReaders({ stateDir: config.stateDir, cameraDevice, cameraLabel });
    const startedMs = clock.monotonicMs();
    const hash = configHash(config);
    let throttled: number | undefined;
    const health = new HealthMonitor({
      log: log.child({ mod: 'health' }),
      timers,
      now: clock.now,
      intervalS: config.health.intervalS,
      checkIntervalS: config.health.checkIntervalS,
      publish: (name, payload) => link.publish(name, payload),
      connection: link,
      collectHealth: async (quick) => {
        const { conditions, counters, schedule } = supervisor;
        const nowMs = clock.now();
        const report = await collectHealth({
          readers,
          uptimeS: (clock.monotonicMs() - startedMs) / 1000,
          diskLowMB: config.health.diskLowMB,
          throttled,
          skipCommands: quick,
          snapshot: {
            privacyOn: conditions.privacyOn,
            clockTrusted: conditions.clockTrusted,
            ledFault: conditions.ledFault,
            scheduleVersion: schedule?.version,
            nextWindowStartMs: schedule
              ? nextWindowAfter(nowMs, schedule, config.timeZone)?.startMs
              : undefined,
            lastEndReason: counters.lastEndReason,
            refusals: counters.refusals,
            reconnects: link.reconnects,
            outboxDepth: outbox.depth,
            outboxFull: outbox.full,
            telemetryDropped: link.stats.telemetryDropped,
            inboundDropped: this.inboundDropped,
            cameraControlsFault: this.#deps.cameraControls?.fault ?? false,
            cameraControlWarnings: this.#deps.cameraControls?.warnings ?? [],
          },
        });
        throttled = report.throttled;
        return report;
      },
      collectInfo: () =>
        collectInfo({
          readers,
          cameraDevice,
          configHash: hash,
          nodeVersion: process.version,
          nowMs: clock.now(),
        }),
      onFaultChange: (fault, active) => {
        // The camera has no other watcher: its loss is an event (QoS 1, persisted), not only health.
        if (fault !== 'camera') return;
        this.#outbox
          ?.enqueue('event', {
            schemaVersion,
            type: 'fault',
            fault: 'camera',
            active,
            detail: active ? `${cameraDevice ?? 'camera'} is gone` : `${cameraDevice ?? 'camera'} is back`,
            at: new Date(clock.now()).toISOString(),
          } satisfies DeviceEvent)
          .catch((error: Error) => this.#log.warn({ err: error.message }, 'camera event not stored'));
        if (!active) health.refreshInfo();
      },
    });
    this.#health = health;
    this.#deps.cameraControls?.on('change', () => health.notify());
    return health;
  }

  /** The audit trail and the missed-window watch, attached before any request can arrive. */
  async #startAudit(supervisor: Supervisor, outbox: Outbox): Promise<void> {
    const { config, log, clock } = this.#deps;
    const timers = clock;
    const dir = join(config.stateDir, 'audit');
    const trail = new AuditTrail({
      dir,
      deviceId: config.deviceId,
      now: clock.now,
      log: log.child({ mod: 'audit' }),
      retentionDays: config.audit.retentionDays,
      maxBytes: config.audit.maxBytes,
      outbox,
      timers,
    });
    this.#audit = trail;
    const watch = new WindowWatch({
      path: join(dir, 'window-watch.json'),
      deviceId: config.deviceId,
      timeZone: config.timeZone,
      now: clock.now,
      timers,
      log: log.child({ mod: 'window-watch' }),
      schedule: () => supervisor.schedule,
      clockTrusted: () => supervisor.conditions.clockTrusted,
      trail,
    });
    this.#windowWatch = watch;
    this.#detachAudit = attachAudit(supervisor, trail, watch, this.#lookJournal, {
      timers,
      intervalMs: config.audit.refusalIntervalS * 1000,
    });
    await trail.start();
    // A look a crash or power cut left open is closed now: its session-end record and its `ended`.
    const interrupted = await this.#lookJournal?.recover();
    if (interrupted) {
      outbox
        .enqueue(
          'viewAnswer',
          endedMessage({
            sessionId: interrupted.sessionId,
            reason: 'interrupted',
            endedBy: 'device',
            startedAtMs: interrupted.startedAtMs,
            durationMs: interrupted.endedAtMs - interrupted.startedAtMs,
          }),
        )
        .catch((error: Error) =>
          this.#log.warn({ err: error.message }, 'ended of an interrupted look not stored'),
        );
    }
    await watch.start();
  }

  #statusCode(): number {
    const supervisor = this.#supervisor;
    if (!supervisor) return statusCodes.fault;
    const { clockTrusted, ledFault } = supervisor.conditions;
    if (ledFault) return statusCodes.fault;
    if (!clockTrusted) return statusCodes.clockUnsynced;
    if (!this.#link?.connected) return statusCodes.brokerOffline;
    if (!supervisor.schedule) return statusCodes.noSchedule;
    return statusCodes.ok;
  }

  #wire(supervisor: Supervisor, led: LedController, link: MqttLink, problems: Array<{ file: string }>): void {
    const { clock } = this.#deps;
    const publish = (
      name: 'event' | 'viewAnswer',
      payload: DeviceEvent | ViewDecision | ViewEnded | object,
      durable = name === 'event',
    ) => {
      // Events and a look's end are promised to the central side: persisted, re-sent until acknowledged.
      const sent =
        durable && this.#outbox
          ? this.#outbox.enqueue(name, payload).then(() => undefined)
          : link.publish(name, payload);
      sent.catch((error: Error) => this.#log.warn({ err: error.message, name }, 'publish failed'));
      if (name === 'event') this.#health?.notify();
    };

    supervisor.on('privacy', ({ privacyOn, source, atMs }) => {
      led.showPrivacy(privacyOn).catch(() => undefined);
      publish('event', privacyEvent(privacyOn, source, atMs));
    });
    supervisor.on('fault', ({ fault, active, detail, atMs }) => {
      publish('event', faultEvent(fault, active, detail, atMs));
    });
    supervisor.on('schedule', (outcome) => publish('event', scheduleEvent(outcome)));
    supervisor.on('decision', ({ requestId, decision, sessionId, atMs }) => {
      const refusal = decision.granted ? undefined : { reason: decision.reason, detail: decision.detail };
      publish('viewAnswer', decisionMessage({ requestId, sessionId, refusal, atMs }));
    });
    supervisor.on('viewEnded', (ended) => publish('viewAnswer', endedMessage(ended), true));
    supervisor.on('signal', (message) => publish('viewAnswer', message));

    link.on('connected', () => {
      for (const problem of problems) {
        if (problem.file === 'privacy.json') {
          // The privacy state could not be read, so privacy is on: say so, so a person can be sent.
          publish(
            'event',
            privacyEvent(supervisor.conditions.privacyOn, 'startup-safe-default', clock.now()),
          );
        }
        publish(
          'event',
          faultEvent(
            'state',
            true,
            `${problem.file} was corrupt and replaced by a safe default`,
            clock.now(),
          ),
        );
      }
      problems.length = 0;
    });
    link.on('message', (name, payload) => this.#onMessage(supervisor, name, payload));
  }

  /**
   * A schedule message that is not even a token is still news for the central service (its schedule is
   * not in use), but at most once a minute: the event goes to the persisted outbox.
   */
  #reportBadSchedule(supervisor: Supervisor): void {
    const nowMs = this.#deps.clock.now();
    if (nowMs - this.#lastBadScheduleReportMs < 60_000) return;
    this.#lastBadScheduleReportMs = nowMs;
    supervisor.emit('schedule', {
      accepted: false,
      reason: 'malformed',
      detail: 'not a schedule message',
      atMs: nowMs,
    });
  }

  #reject(name: string, detail: string): void {
    this.#inboundRejected += 1;
    this.#log.warn({ topic: name, detail }, 'inbound message refused');
  }

  /**
   * Rate limits first, before any signature check, audit record or reply (docs/protocol.md §3).
   * Requests whose grant could be granted spend their own bucket, so a flood of requests that never
   * could (another device's, an unknown key's, expired, not a token) cannot crowd them out. Signalling
   * for the running look is not limited here: the supervisor bounds it per look.
   */
  #admit(supervisor: Supervisor, name: 'schedule' | 'viewRequest', inbound: Inbound): boolean {
    const buckets = this.#buckets;
    if (!buckets || inbound.kind === 'schedule-cleared') return true;
    if (name === 'schedule') return buckets.schedules.take();
    if (inbound.kind !== 'view') return buckets.other.take();
    const message = inbound.message;
    if (message.type !== 'request') {
      return message.sessionId === supervisor.activeSessionId || buckets.other.take();
    }
    const { config, keys, clock } = this.#deps;
    const plausible = plausibleGrant(message.grant, {
      keys,
      deviceId: config.deviceId,
      nowMs: clock.now(),
      slackMs: (config.clock.floorToleranceS + config.limits.nbfLeewayS) * 1000,
    });
    return plausible ? buckets.requests.take() : buckets.other.take();
  }

  /** Holds the latest schedule the limit dropped and applies it once the bucket has a token again. */
  #holdSchedule(supervisor: Supervisor, payload: Buffer): void {
    // A later schedule replaces the one held: that one is dropped for good.
    if (this.#heldSchedule) this.#dropped += 1;
    this.#heldSchedule = payload;
    if (this.#heldScheduleTimer !== undefined || this.#stopping) return;
    const waitMs = Math.max(1, this.#buckets?.schedules.waitMs() ?? 1000);
    this.#heldScheduleTimer = this.#deps.clock.setTimeout(() => {
      this.#heldScheduleTimer = undefined;
      const held = this.#heldSchedule;
      this.#heldSchedule = undefined;
      if (held && !this.#stopping) this.#onMessage(supervisor, 'schedule', held, true);
    }, waitMs);
  }

  #onMessage(supervisor: Supervisor, name: InboundTopic, payload: Buffer, held = false): void {
    if (name === 'update') {
      this.#updates?.onMessage(payload);
      return;
    }
    const inbound = parseInbound(
      name,
      payload,
      this.#deps.config.limits.maxMessageBytes,
      this.#deps.clock.now(),
    );
    // A held schedule has waited for its token: it is taken now, whatever the bucket says.
    if (held) this.#buckets?.schedules.take();
    if (!held && !this.#admit(supervisor, name, inbound)) {
      // Malformed input is still counted (cheaply, unlogged); only a schedule token is worth keeping.
      if (inbound.kind === 'rejected') this.#inboundRejected += 1;
      else if (inbound.kind === 'schedule') this.#holdSchedule(supervisor, payload);
      else this.#dropped += 1;
      return;
    }
    switch (inbound.kind) {
      case 'schedule-cleared':
        return;
      case 'rejected':
        this.#reject(name, inbound.detail);
        if (inbound.badSchedule) this.#reportBadSchedule(supervisor);
        if (inbound.reply) this.#link?.publish('viewAnswer', inbound.reply).catch(() => undefined);
        return;
      case 'schedule':
        supervisor.applySchedule(inbound.token).catch((error: Error) => this.#reject(name, error.message));
        return;
      case 'view':
        break;
    }
    const message = inbound.message;
    switch (message.type) {
      case 'hangup':
        supervisor.hangup(message.sessionId, message.secret);
        return;
      case 'answer':
        supervisor.answer(message.sessionId, message.sdp);
        return;
      case 'candidate':
        supervisor.candidate(message.sessionId, message.candidate);
        return;
      case 'request':
        supervisor
          .request(message.grant, message.requestId)
          .catch((error: Error) => this.#reject(name, error.message));
        return;
    }
  }

  /**
   * The media stands by (a warm media process, werift loaded) while a window is open or opens within
   * `mediaStandByLeadMs` and privacy is off; otherwise the service idles without it.
   */
  #watchStandBy(supervisor: Supervisor): void {
    const media = this.#deps.media;
    if (!media?.standBy) return;
    const { clock, config } = this.#deps;
    const update = () => {
      if (this.#stopping) return;
      const schedule = supervisor.schedule;
      const nowMs = clock.now();
      const window =
        schedule === undefined
          ? undefined
          : (openWindowAt(nowMs, schedule, config.timeZone) ??
            nextWindowAfter(nowMs, schedule, config.timeZone));
      const soon =
        window !== undefined &&
        !supervisor.conditions.privacyOn &&
        supervisor.mediaStuck === undefined &&
        window.startMs - nowMs <= mediaStandByLeadMs;
      media.standBy?.(soon, window?.viewMode);
    };
    supervisor.on('schedule', update);
    supervisor.on('privacy', update);
    supervisor.on('viewEnded', update);
    this.#standByTimer = clock.setInterval(update, mediaStandByCheckMs);
    update();
  }

  /**
   * For the systemd watchdog: the supervisor runs, no look's media is stuck (not confirmed gone after
   * a kill), and the state directory is writable.
   */
  async healthy(): Promise<boolean> {
    if (!this.#supervisor || this.#stopping) return false;
    if (this.#supervisor.mediaStuck !== undefined) return false;
    try {
      await access(this.#deps.config.stateDir, constants.W_OK);
      return true;
    } catch {
      return false;
    }
  }

  /** Stops everything; the view ends first (LED off), then the link says offline. Returns an exit code. */
  stop(): Promise<number> {
    this.#stopping ??= this.#stopAll();
    return this.#stopping;
  }

  async #stopAll(): Promise<number> {
    let exitCode = 0;
    const attempt = async (name: string, step: () => Promise<void> | void) => {
      try {
        await step();
      } catch (error) {
        exitCode = 1;
        this.#log.error({ err: error, component: name }, 'stop failed');
      }
    };
    this.#deps.clock.clearTimeout(this.#heldScheduleTimer);
    await attempt('clock', () => this.#clockWatch?.stop());
    this.#deps.clock.clearInterval(this.#standByTimer);
    await attempt('supervisor', () => this.#supervisor?.stop());
    await attempt('media-stand-by', () => this.#deps.media?.standBy?.(false));
    await attempt('button', () => this.#button?.stop());
    // After the supervisor: the session end of a view cut off by the shutdown is still recorded.
    await attempt('window-watch', () => this.#windowWatch?.stop());
    await attempt('look-journal', () => this.#lookJournal?.stop());
    // The refusals counted in the current interval are recorded before the trail stops.
    await attempt('audit-counts', () => this.#detachAudit?.());
    await attempt('audit', () => this.#audit?.stop());
    await attempt('time-floor', () => this.#floor?.stop());
    await attempt('health', () => this.#health?.stop());
    await attempt('updates', () => this.#updates?.stop());
    await attempt('outbox', () => this.#outbox?.stop());
    await attempt('mqtt', () => this.#link?.stop());
    await attempt('led', () => this.#led?.close());
    await attempt('gpio', () => this.#deps.gpio.close());
    return exitCode;
  }
}
