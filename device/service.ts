// Wires the components of one running device together: state, LEDs and button, the supervisor, the
// clock watch and the MQTT link. Built by main.ts (the composition root) from the config; built by
// tests and the demo with simulated hardware. Nothing here reads config files or the environment.
import { access, constants } from 'node:fs/promises';
import { join } from 'node:path';
import { type AuditOutbox, AuditTrail, attachAudit, WindowWatch } from './audit/index.js';
import type { KeySet } from './auth/index.js';
import type { ClockCheck } from './clock/index.js';
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
import { fileCounter, type LinkDeps, MqttLink } from './mqtt/index.js';
import { Outbox } from './outbox/index.js';
import {
  type DeviceEvent,
  ScheduleMessage,
  schemaVersion,
  type ViewDecision,
  type ViewEnded,
  ViewInbound,
} from './protocol/index.js';
import { nextWindowAfter } from './schedule/index.js';
import { StateStore } from './state/index.js';
import { noMediaView, Supervisor, type Timers, type ViewPort } from './supervisor/index.js';
import type { SignallingViewPort, ViewWiring } from './view/index.js';

export interface ServiceDeps {
  config: Config;
  log: Logger;
  gpio: Gpio;
  keys: KeySet;
  tls: LinkDeps['tls'];
  now(): number;
  timers: Timers;
  clockCheck: ClockCheck;
  view?: ViewPort;
  /** Builds the WebRTC view once signalling and endView can be wired to it; takes precedence over `view`. */
  createView?: (wiring: ViewWiring) => SignallingViewPort;
  connect?: LinkDeps['connect'];
  /** System readers for health; default: the real /proc, /sys and commands. */
  systemReaders?: SystemReaders;
  /** Monotonic milliseconds for uptime; default performance.now. */
  monotonicMs?: () => number;
}

/** Long-press status codes, blinked on the LED (documented in docs/operations.md). */
export const statusCodes = { ok: 1, brokerOffline: 2, clockUnsynced: 3, fault: 4, noSchedule: 5 } as const;

export class Service {
  readonly #deps: ServiceDeps;
  readonly #log: Logger;
  #supervisor: Supervisor | undefined;
  #view: SignallingViewPort | undefined;
  #led: LedController | undefined;
  #button: PrivacyButton | undefined;
  #link: MqttLink | undefined;
  #outbox: Outbox | undefined;
  #audit: AuditTrail | undefined;
  #windowWatch: WindowWatch | undefined;
  #health: HealthMonitor | undefined;
  #clockTimer: unknown;
  #inboundRejected = 0;
  #lastBadScheduleReportMs = Number.NEGATIVE_INFINITY;
  #stopping: Promise<number> | undefined;

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

  async start(signal?: AbortSignal): Promise<void> {
    const { config, log, gpio, timers } = this.#deps;
    const check = () => signal?.throwIfAborted();
    const store = new StateStore({ dir: config.stateDir, log: log.child({ mod: 'state' }) });
    const state = await store.load(new Date(this.#deps.now()));
    check();

    const led = new LedController({
      viewingLed: gpio.viewingLed,
      privacyLed: gpio.privacyLed,
      log: log.child({ mod: 'led' }),
      setTimer: (callback, ms) => timers.setTimeout(callback, ms) as never,
      clearTimer: (handle) => timers.clearTimeout(handle),
    });
    this.#led = led;
    check();

    const clock = await this.#deps.clockCheck();
    check();
    const supervisor = new Supervisor({
      deviceId: config.deviceId,
      timeZone: config.timeZone,
      limits: config.limits,
      keys: this.#deps.keys,
      now: this.#deps.now,
      timers,
      led,
      view: this.#createView() ?? this.#deps.view ?? noMediaView,
      persist: store,
      log: log.child({ mod: 'supervisor' }),
      initial: {
        privacyOn: state.privacy.privacyOn,
        clockTrusted: clock.trusted,
        schedule: state.schedule,
        nonces: state.replay.nonces,
        counters: state.counters,
      },
    });
    this.#supervisor = supervisor;
    await supervisor.start();
    check();
    if (!clock.trusted)
      log.warn({ detail: clock.detail }, 'clock not trusted at start: grants refused until it is');
    if (state.privacy.privacyOn) await led.showPrivacy(true).catch(() => undefined);

    this.#clockTimer = timers.setInterval(() => {
      this.#deps.clockCheck().then(
        (result) => supervisor.setClockTrusted(result.trusted, result.detail),
        (error: Error) => supervisor.setClockTrusted(false, error.message),
      );
    }, config.clock.checkIntervalS * 1000);

    const button = new PrivacyButton({
      input: gpio.button,
      log: log.child({ mod: 'button' }),
      now: this.#deps.now,
      debounceMs: config.gpio.button.debounceMs,
      longPressMs: config.gpio.button.longPressMs,
      setTimer: (callback, ms) => timers.setTimeout(callback, ms) as never,
      clearTimer: (handle) => timers.clearTimeout(handle),
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
      now: this.#deps.now,
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
    });
    this.#outbox = outbox;
    await outbox.start();
    check();
    await this.#startAudit(supervisor, outbox);
    check();
    const health = this.#createHealth(supervisor, link, outbox);
    this.#wire(supervisor, led, link, state.problems);
    link.start();
    health.start();
    log.info(
      {
        deviceId: config.deviceId,
        privacyOn: state.privacy.privacyOn,
        scheduleVersion: supervisor.schedule?.version,
      },
      'service started',
    );
  }

  #createView(): SignallingViewPort | undefined {
    this.#view = this.#deps.createView?.({
      send: (message) => this.#link?.publish('viewAnswer', message) ?? Promise.reject(new Error('no link')),
      endView: (sessionId, reason) => this.#supervisor?.endView(sessionId, reason),
    });
    return this.#view;
  }

  #createHealth(supervisor: Supervisor, link: MqttLink, outbox: Outbox): HealthMonitor {
    const { config, log, timers } = this.#deps;
    const source = config.camera.source;
    const cameraDevice = source.kind === 'v4l2' ? source.device : undefined;
    const readers = this.#deps.systemReaders ?? systemReaders({ stateDir: config.stateDir, cameraDevice });
    const monotonicMs = this.#deps.monotonicMs ?? (() => performance.now());
    const startedMs = monotonicMs();
    const hash = configHash(config);
    let throttled: number | undefined;
    const health = new HealthMonitor({
      log: log.child({ mod: 'health' }),
      timers,
      now: this.#deps.now,
      intervalS: config.health.intervalS,
      checkIntervalS: config.health.checkIntervalS,
      publish: (name, payload) => link.publish(name, payload),
      connection: link,
      collectHealth: async (quick) => {
        const { conditions, counters, schedule } = supervisor;
        const nowMs = this.#deps.now();
        const report = await collectHealth({
          readers,
          uptimeS: (monotonicMs() - startedMs) / 1000,
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
          nowMs: this.#deps.now(),
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
            at: new Date(this.#deps.now()).toISOString(),
          } satisfies DeviceEvent)
          .catch((error: Error) => this.#log.warn({ err: error.message }, 'camera event not stored'));
        if (!active) health.refreshInfo();
      },
    });
    this.#health = health;
    return health;
  }

  /** The audit trail and the missed-window watch, attached before any request can arrive. */
  async #startAudit(supervisor: Supervisor, outbox: AuditOutbox): Promise<void> {
    const { config, log, timers } = this.#deps;
    const dir = join(config.stateDir, 'audit');
    const trail = new AuditTrail({
      dir,
      deviceId: config.deviceId,
      now: this.#deps.now,
      log: log.child({ mod: 'audit' }),
      retentionDays: config.audit.retentionDays,
      outbox,
      timers,
    });
    this.#audit = trail;
    const watch = new WindowWatch({
      path: join(dir, 'window-watch.json'),
      deviceId: config.deviceId,
      timeZone: config.timeZone,
      now: this.#deps.now,
      timers,
      log: log.child({ mod: 'window-watch' }),
      schedule: () => supervisor.schedule,
      clockTrusted: () => supervisor.conditions.clockTrusted,
      trail,
    });
    this.#windowWatch = watch;
    attachAudit(supervisor, trail, watch);
    await trail.start();
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
    const iso = (ms: number) => new Date(ms).toISOString();
    const publish = (name: 'event' | 'viewAnswer', payload: DeviceEvent | ViewDecision | ViewEnded) => {
      // Events are promised to the central side: persisted and re-sent until acknowledged.
      const sent =
        name === 'event' && this.#outbox
          ? this.#outbox.enqueue('event', payload).then(() => undefined)
          : link.publish(name, payload);
      sent.catch((error: Error) => this.#log.warn({ err: error.message, name }, 'publish failed'));
      if (name === 'event') this.#health?.notify();
    };

    supervisor.on('privacy', ({ privacyOn, source, atMs }) => {
      led.showPrivacy(privacyOn).catch(() => undefined);
      publish('event', { schemaVersion, type: 'privacy', privacyOn, source, at: iso(atMs) });
    });
    supervisor.on('fault', ({ fault, active, detail, atMs }) => {
      publish('event', {
        schemaVersion,
        type: 'fault',
        fault,
        active,
        detail: detail.slice(0, 300),
        at: iso(atMs),
      });
    });
    supervisor.on('schedule', ({ accepted, version, reason, atMs }) => {
      publish('event', {
        schemaVersion,
        type: 'schedule',
        accepted,
        ...(version !== undefined ? { version } : {}),
        ...(reason !== undefined ? { reason } : {}),
        at: iso(atMs),
      });
    });
    supervisor.on('decision', ({ requestId, decision, sessionId, atMs }) => {
      publish('viewAnswer', {
        schemaVersion,
        type: 'decision',
        requestId,
        ...(sessionId !== undefined ? { sessionId } : {}),
        decision: decision.granted ? 'granted' : 'refused',
        ...(decision.granted ? {} : { reason: decision.reason, message: decision.detail.slice(0, 300) }),
        at: iso(atMs),
      });
    });
    supervisor.on('viewEnded', ({ sessionId, reason, durationMs, startedAtMs }) => {
      publish('viewAnswer', {
        schemaVersion,
        type: 'ended',
        sessionId,
        reason,
        durationMs: Math.max(0, Math.round(durationMs)),
        at: iso(startedAtMs + durationMs),
      });
    });

    link.on('connected', () => {
      for (const problem of problems) {
        if (problem.file === 'privacy.json') {
          // The privacy state could not be read, so privacy is on: say so, so a person can be sent.
          publish('event', {
            schemaVersion,
            type: 'privacy',
            privacyOn: supervisor.conditions.privacyOn,
            source: 'startup-safe-default',
            at: iso(this.#deps.now()),
          });
        }
        publish('event', {
          schemaVersion,
          type: 'fault',
          fault: 'state',
          active: true,
          detail: `${problem.file} was corrupt and replaced by a safe default`,
          at: iso(this.#deps.now()),
        });
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
    const nowMs = this.#deps.now();
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

  #onMessage(supervisor: Supervisor, name: 'schedule' | 'viewRequest', payload: Buffer): void {
    const { config } = this.#deps;
    if (payload.length > config.limits.maxMessageBytes) {
      this.#reject(name, `${payload.length} bytes is too large`);
      return;
    }
    // An empty retained message clears the topic; it is not a schedule.
    if (payload.length === 0) return;
    let raw: unknown;
    try {
      raw = JSON.parse(payload.toString('utf8'));
    } catch {
      this.#reject(name, 'not JSON');
      if (name === 'schedule') this.#reportBadSchedule(supervisor);
      return;
    }
    if (name === 'schedule') {
      const parsed = ScheduleMessage.safeParse(raw);
      if (!parsed.success) {
        this.#reject(name, parsed.error.issues[0]?.message ?? 'invalid');
        this.#reportBadSchedule(supervisor);
        return;
      }
      supervisor.applySchedule(parsed.data.token).catch((error: Error) => this.#reject(name, error.message));
      return;
    }
    const parsed = ViewInbound.safeParse(raw);
    if (!parsed.success) {
      this.#reject(name, parsed.error.issues[0]?.message ?? 'invalid');
      // Tell the operator why, when the request says who is asking.
      const requestId = (raw as { requestId?: unknown } | null)?.requestId;
      if (typeof requestId === 'string' && requestId.length > 0 && requestId.length <= 128) {
        this.#link
          ?.publish('viewAnswer', {
            schemaVersion,
            type: 'decision',
            requestId,
            decision: 'refused',
            reason: 'malformed',
            message: 'the request does not match the protocol',
            at: new Date(this.#deps.now()).toISOString(),
          } satisfies ViewDecision)
          .catch(() => undefined);
      }
      return;
    }
    const message = parsed.data;
    if (message.type === 'hangup') {
      supervisor.endView(message.sessionId, 'operator-hangup');
      return;
    }
    if (message.type === 'answer' || message.type === 'candidate') {
      this.#view?.onSignal(message);
      return;
    }
    supervisor
      .request(message.grant, message.requestId)
      .catch((error: Error) => this.#reject(name, error.message));
  }

  /** For the systemd watchdog: the supervisor runs and the state directory is writable. */
  async healthy(): Promise<boolean> {
    if (!this.#supervisor || this.#stopping) return false;
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
    this.#deps.timers.clearInterval(this.#clockTimer);
    await attempt('supervisor', () => this.#supervisor?.stop());
    await attempt('button', () => this.#button?.stop());
    // After the supervisor: the session end of a view cut off by the shutdown is still recorded.
    await attempt('window-watch', () => this.#windowWatch?.stop());
    await attempt('audit', () => this.#audit?.stop());
    await attempt('health', () => this.#health?.stop());
    await attempt('outbox', () => this.#outbox?.stop());
    await attempt('mqtt', () => this.#link?.stop());
    await attempt('led', () => this.#led?.close());
    await attempt('gpio', () => this.#deps.gpio.close());
    return exitCode;
  }
}
