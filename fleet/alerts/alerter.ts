// Alerts when a check-in becomes at risk: evaluated for every device on a timer and after every change
// (time alone can make an offline device at risk, when its window comes within the horizon). Each
// at-risk episode (device, window, reasons) is claimed in the database, so with several instances
// exactly one sends it: a webhook POST (JSON, with the time left) and an `alert` to the page.
// When the device is no longer at risk the claim is cleared, and the next episode alerts again.
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { DateTime } from 'luxon';
import type { Logger } from 'pino';
import type { AlertRecord, FleetStore } from '../db/index.js';
import { assessRisk, formatTimeLeft, type Risk, type RiskOptions } from '../risk/index.js';
import type { FleetCache } from '../view/index.js';

export interface AlerterOptions {
  /** Where alerts are POSTed; none: only the page and the metrics. */
  webhookUrl: string | undefined;
  evaluateIntervalMs: number;
  webhookTimeoutMs: number;
  webhookAttempts: number;
  risk: RiskOptions;
}

export interface Alert extends AlertRecord {
  type: 'at-risk';
}

interface Events {
  alert: [alert: Alert];
}

const reasonText: Record<Risk['reasons'][number], string> = {
  offline: 'offline',
  silent: 'not reporting',
  'privacy-on': 'privacy on',
  camera: 'camera fault',
  clock: 'clock not synchronised',
  led: 'LED fault',
  'no-schedule': 'no valid schedule',
};

/** The alert's one line for people. */
export function alertText(deviceId: string, risk: Risk, timeZone: string): string {
  const reasons = risk.reasons.map((reason) => reasonText[reason]).join(', ');
  const when =
    risk.windowAt === undefined
      ? 'next check-in time unknown'
      : risk.timeLeftMs === 0
        ? 'check-in window open now'
        : `check-in at ${DateTime.fromISO(risk.windowAt, { zone: timeZone }).toFormat('yyyy-MM-dd HH:mm')} in ${formatTimeLeft(risk.timeLeftMs)}`;
  return `${deviceId}: ${reasons}; ${when}. Send a person.`;
}

export const alertKey = (risk: Risk) => `${risk.windowAt ?? 'unknown'}|${risk.reasons.join(',')}`;

export class Alerter extends EventEmitter<Events> {
  readonly #options: AlerterOptions;
  readonly #deps: { store: FleetStore; cache: FleetCache; clock: () => number; log: Logger };
  /** Episodes this instance knows are claimed (by it or another), so it does not ask again each tick. */
  readonly #known = new Map<string, string>();
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #everyone = false;
  readonly #pendingIds = new Set<string>();
  #deliveries = new Set<Promise<void>>();
  sent = 0;
  webhookFailures = 0;

  constructor(
    options: AlerterOptions,
    deps: { store: FleetStore; cache: FleetCache; clock: () => number; log: Logger },
  ) {
    super();
    this.#options = options;
    this.#deps = deps;
  }

  async start(): Promise<void> {
    // Episodes claimed before a restart: known, so they are cleared when the device is fine again
    // (otherwise the same episode later could never alert).
    for (const row of await this.#deps.store.devices()) {
      if (row.alertKey !== null) this.#known.set(row.state.deviceId, row.alertKey);
    }
    this.#timer = setInterval(() => this.evaluate(), this.#options.evaluateIntervalMs);
    this.evaluate();
  }

  /**
   * Evaluates these devices now (or right after the current run); without ids, every device. The
   * timer evaluates everyone (time moves windows closer); a stored batch only the devices it changed.
   */
  evaluate(deviceIds?: string[]): void {
    if (deviceIds === undefined) this.#everyone = true;
    else for (const id of deviceIds) this.#pendingIds.add(id);
    if (this.#running) return;
    const everyone = this.#everyone;
    const ids = [...this.#pendingIds];
    this.#everyone = false;
    this.#pendingIds.clear();
    this.#running = this.#evaluate(everyone ? undefined : ids)
      .catch((error: unknown) =>
        this.#deps.log.error({ err: (error as Error).message }, 'alert evaluation failed'),
      )
      .finally(() => {
        this.#running = undefined;
        if (this.#everyone) this.evaluate();
        else if (this.#pendingIds.size > 0) this.evaluate([]);
      });
  }

  async #evaluate(deviceIds: string[] | undefined): Promise<void> {
    const nowMs = this.#deps.clock();
    const cache = this.#deps.cache;
    const devices =
      deviceIds === undefined
        ? cache.all()
        : deviceIds.map((id) => cache.get(id)).filter((device) => device !== undefined);
    for (const device of devices) {
      const risk = assessRisk(device, nowMs, this.#options.risk);
      const id = device.deviceId;
      if (!risk.atRisk) {
        if (this.#known.has(id)) {
          this.#known.delete(id);
          await this.#deps.store.clearAlert(id);
        }
        continue;
      }
      const key = alertKey(risk);
      if (this.#known.get(id) === key) continue;
      const claimed = await this.#deps.store.claimAlert(id, key);
      this.#known.set(id, key);
      if (!claimed) continue;
      const alert: Alert = {
        type: 'at-risk',
        id: randomUUID(),
        deviceId: id,
        raisedAtMs: nowMs,
        windowAt: risk.windowAt ?? null,
        timeLeftMs: risk.timeLeftMs ?? null,
        reasons: risk.reasons,
        text: alertText(id, risk, this.#options.risk.timeZone),
      };
      await this.#deps.store.recordAlert(alert);
      this.sent += 1;
      this.#deps.log.info(
        { device: id, reasons: risk.reasons, timeLeftMs: risk.timeLeftMs },
        'check-in at risk',
      );
      try {
        this.emit('alert', alert);
      } catch (error) {
        this.#deps.log.error({ err: (error as Error).message }, 'alert listener failed');
      }
      if (this.#options.webhookUrl) {
        const delivery = this.#post(this.#options.webhookUrl, alert).finally(() =>
          this.#deliveries.delete(delivery),
        );
        this.#deliveries.add(delivery);
      }
    }
  }

  async #post(url: string, alert: Alert): Promise<void> {
    const body = JSON.stringify({
      type: alert.type,
      device: alert.deviceId,
      reasons: alert.reasons,
      windowAt: alert.windowAt,
      timeLeftS: alert.timeLeftMs === null ? null : Math.round(alert.timeLeftMs / 1000),
      raisedAt: new Date(alert.raisedAtMs).toISOString(),
      text: alert.text,
    });
    for (let attempt = 1; attempt <= this.#options.webhookAttempts; attempt += 1) {
      try {
        const response = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body,
          signal: AbortSignal.timeout(this.#options.webhookTimeoutMs),
        });
        await response.body?.cancel();
        if (response.ok) return;
        this.#deps.log.warn({ status: response.status, attempt }, 'webhook refused the alert');
      } catch (error) {
        this.#deps.log.warn({ err: (error as Error).message, attempt }, 'webhook failed');
      }
      await new Promise((resolve) => setTimeout(resolve, 500 * attempt));
    }
    this.webhookFailures += 1;
  }

  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#running;
    await Promise.allSettled([...this.#deliveries]);
  }
}
