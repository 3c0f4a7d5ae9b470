// Prometheus metrics (prom-client) for the monitoring stacks operations already run. Gauges describe
// the whole fleet as this instance sees it (every instance reports the same: aggregate with max());
// counters count what this instance stored for the first time (sum() over instances is exact, since
// each record is stored once).
import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import type { BatchResult } from '../db/index.js';
import { assessRisk, type RiskOptions } from '../risk/index.js';
import { activeFaults } from '../state/index.js';
import type { FleetCache } from '../view/index.js';

export interface FleetMetrics {
  registry: Registry;
  /** Counts looks and refusals from newly stored audit records. */
  record(result: BatchResult): void;
}

export function createMetrics(deps: {
  cache: FleetCache;
  clock: () => number;
  risk: RiskOptions;
  /** Messages that did not parse, so far. */
  malformed: () => number;
}): FleetMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'tk_fleet_process_' });
  new Gauge({
    name: 'tk_fleet_devices',
    help: 'Devices by connection state',
    labelNames: ['state'] as const,
    registers: [registry],
    collect() {
      const counts = { online: 0, offline: 0, unknown: 0 };
      for (const device of deps.cache.all()) counts[device.state] += 1;
      for (const [state, count] of Object.entries(counts)) this.set({ state }, count);
    },
  });
  new Gauge({
    name: 'tk_fleet_devices_online',
    help: 'Devices online',
    registers: [registry],
    collect() {
      this.set(deps.cache.all().filter((device) => device.state === 'online').length);
    },
  });
  new Gauge({
    name: 'tk_fleet_at_risk',
    help: 'Devices whose next check-in is at risk',
    registers: [registry],
    collect() {
      const nowMs = deps.clock();
      this.set(deps.cache.all().filter((device) => assessRisk(device, nowMs, deps.risk).atRisk).length);
    },
  });
  new Gauge({
    name: 'tk_fleet_faults',
    help: 'Devices with an active fault, by kind',
    labelNames: ['kind'] as const,
    registers: [registry],
    collect() {
      this.reset();
      const counts = new Map<string, number>();
      for (const device of deps.cache.all())
        for (const kind of activeFaults(device)) counts.set(kind, (counts.get(kind) ?? 0) + 1);
      for (const [kind, count] of counts) this.set({ kind }, count);
    },
  });
  const looks = new Counter({
    name: 'tk_fleet_looks_total',
    help: 'Granted look-ins (audit records)',
    registers: [registry],
  });
  const refusals = new Counter({
    name: 'tk_fleet_refusals_total',
    help: 'Refused look requests by reason (audit records)',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  const missed = new Counter({
    name: 'tk_fleet_windows_missed_total',
    help: 'Agreed windows without a look',
    registers: [registry],
  });
  const events = new Counter({
    name: 'tk_fleet_events_total',
    help: 'Device events stored',
    registers: [registry],
  });
  const duplicates = new Counter({
    name: 'tk_fleet_duplicates_total',
    help: 'Re-delivered records dropped',
    registers: [registry],
  });
  new Counter({
    name: 'tk_fleet_malformed_total',
    help: 'Messages that did not parse',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(deps.malformed());
    },
  });
  return {
    registry,
    record(result) {
      events.inc(result.newEvents);
      duplicates.inc(result.duplicates);
      for (const item of result.newAudit) {
        if (item.message.topic !== 'audit') continue;
        const { audit } = item.message;
        if (audit.kind === 'request' && audit.decision === 'granted') looks.inc();
        else if (audit.kind === 'request' && audit.decision === 'refused')
          refusals.inc({ reason: audit.reason ?? 'unknown' });
        else if (audit.kind === 'window-missed') missed.inc();
      }
    },
  };
}
