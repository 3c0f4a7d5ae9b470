// Builds the update agent from the running service's parts, so that service.ts wires updates in a
// few lines: the facts come from the supervisor and the schedule, events go through the outbox, the
// proof is the service's own health check, and a look's end or a clock verdict asks again at once.

import type { KeySet } from '../auth/index.js';
import type { Clock } from '../clock/index.js';
import type { Config } from '../config/index.js';
import { readFirmwareVersion } from '../health/index.js';
import type { Logger } from '../log/index.js';
import type { PackageArch } from '../protocol/update.js';
import { nextWindowAfter, openWindowAt } from '../schedule/index.js';
import type { Supervisor } from '../supervisor/index.js';
import { packageArchOf, UpdateAgent, updateLeadMs } from './agent.js';

export interface UpdateWiringDeps {
  config: Config;
  log: Logger;
  keys: KeySet;
  clock: Clock;
  /** The provisioned CA (config broker.caFile), undefined without TLS. */
  ca: Buffer | undefined;
  supervisor: Supervisor;
  link: { readonly connected: boolean };
  outbox: { enqueue(name: 'event', record: object): Promise<unknown> };
  /** Started and READY sent: the service's start() has returned. */
  ready(): boolean;
  /** The service's own checks (the watchdog's). */
  healthy(): Promise<boolean>;
  /** Tests: another architecture, version or tick. */
  overrides?: { arch?: PackageArch; runningVersion?: string; checkIntervalMs?: number };
}

export async function startUpdates(deps: UpdateWiringDeps): Promise<UpdateAgent> {
  const { config, supervisor, clock } = deps;
  const agent = new UpdateAgent({
    stateDir: config.stateDir,
    deviceId: config.deviceId,
    keys: deps.keys,
    arch: deps.overrides?.arch ?? packageArchOf(process.arch),
    ca: deps.ca?.toString('utf8'),
    runningVersion: deps.overrides?.runningVersion ?? (await readFirmwareVersion()),
    clock,
    log: deps.log.child({ mod: 'update' }),
    maxMessageBytes: config.limits.maxMessageBytes,
    checkIntervalMs: deps.overrides?.checkIntervalMs ?? config.health.checkIntervalS * 1000,
    conditions: () => {
      const nowMs = clock.now();
      const schedule = supervisor.schedule;
      const open = schedule && openWindowAt(nowMs, schedule, config.timeZone);
      const next = schedule && nextWindowAfter(nowMs, schedule, config.timeZone);
      const soon = next && next.startMs - nowMs <= updateLeadMs ? next : undefined;
      return {
        viewActive: supervisor.phase !== 'idle',
        clockTrusted: supervisor.conditions.clockTrusted,
        windowOpenUntilMs: open?.endMs ?? soon?.endMs ?? null,
      };
    },
    proof: async () => ({
      ready: deps.ready(),
      brokerOnline: deps.link.connected,
      checksPass: await deps.healthy(),
    }),
    report: async (event) => {
      await deps.outbox.enqueue('event', event);
    },
  });
  supervisor.on('viewEnded', () => agent.poke());
  supervisor.on('fault', () => agent.poke());
  await agent.start();
  return agent;
}
