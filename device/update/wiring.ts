// Builds the update agent from the running service's parts, so that service.ts wires updates in a
// few lines: the facts come from the supervisor and the schedule, events go through the outbox, the
// proof is the service's own health check, and a look's end or a clock verdict asks again at once.

import { access } from 'node:fs/promises';
import { join } from 'node:path';
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
  /** Tests: another architecture, version, tick or systemd unit directories. */
  overrides?: {
    arch?: PackageArch;
    runningVersion?: string;
    checkIntervalMs?: number;
    unitDirs?: readonly string[];
  };
}

/**
 * The unit that starts the root-side guard when an update is handed over. The Debian package
 * installs it in /lib/systemd/system; install.sh installs only the service, so such a device has no
 * guard and cannot take updates.
 */
export const guardUnit = 'trygghetskamera-update.path';
/** Where systemd looks for system units (an administrator's copy in /etc counts too). */
export const systemUnitDirs = ['/etc/systemd/system', '/lib/systemd/system', '/usr/lib/systemd/system'];

/** Whether the guard's path unit is installed in one of `dirs`. */
export async function guardUnitInstalled(dirs: readonly string[]): Promise<boolean> {
  for (const dir of dirs) {
    const found = await access(join(dir, guardUnit)).then(
      () => true,
      () => false,
    );
    if (found) return true;
  }
  return false;
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
    guardInstalled: () => guardUnitInstalled(deps.overrides?.unitDirs ?? systemUnitDirs),
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
