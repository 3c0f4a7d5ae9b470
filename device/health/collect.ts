// Builds `info` and `health` payloads from the system readers and a snapshot of the service. Pure
// apart from the readers it is given.

import { type HealthFault, type HealthMessage, type InfoMessage, schemaVersion } from '../protocol/index.js';
import { EndReason, RefusalReason } from '../protocol/reasons.js';
import {
  cameraPresent,
  type RunCommand,
  readCameraFormats,
  readCameraModel,
  readCpuTempC,
  readDiskFreeMB,
  readFirmwareVersion,
  readLoad1,
  readMemFreeMB,
  readModel,
  readOs,
  readThrottled,
  readWifiDbm,
  runCommand,
} from './readers.js';

export interface SystemReaders {
  firmware(): Promise<string>;
  model(): Promise<string | undefined>;
  os(): Promise<string | undefined>;
  cpuTempC(): Promise<number | undefined>;
  throttled(): Promise<number | undefined>;
  load1(): Promise<number | undefined>;
  memFreeMB(): Promise<number | undefined>;
  diskFreeMB(): Promise<number | undefined>;
  wifiDbm(): Promise<number | undefined>;
  cameraPresent(): Promise<boolean>;
  cameraModel(): Promise<string | undefined>;
  cameraFormats(): Promise<string[] | undefined>;
}

/**
 * The real readers. `cameraDevice` undefined means a camera without a V4L2 node to watch: the built-in
 * test source, or a CSI camera through libcamera (`cameraLabel` names it), counted as present.
 */
export function systemReaders(options: {
  root?: string;
  stateDir: string;
  cameraDevice: string | undefined;
  cameraLabel?: string | undefined;
  run?: RunCommand;
}): SystemReaders {
  const root = options.root ?? '/';
  const run = options.run ?? runCommand;
  const device = options.cameraDevice;
  return {
    firmware: readFirmwareVersion,
    model: () => readModel(root),
    os: () => readOs(root),
    cpuTempC: () => readCpuTempC(root),
    throttled: () => readThrottled(root, run),
    load1: () => readLoad1(root),
    memFreeMB: () => readMemFreeMB(root),
    diskFreeMB: () => readDiskFreeMB(options.stateDir),
    wifiDbm: () => readWifiDbm(root),
    cameraPresent: async () => (device ? cameraPresent(root, device) : true),
    cameraModel: async () =>
      device ? readCameraModel(root, device) : (options.cameraLabel ?? 'test pattern'),
    cameraFormats: async () => (device ? readCameraFormats(run, device) : undefined),
  };
}

/** What the service knows about itself, read at each health report. */
export interface ServiceSnapshot {
  privacyOn: boolean;
  clockTrusted: boolean;
  ledFault: boolean;
  scheduleVersion: number | undefined;
  nextWindowStartMs: number | undefined;
  lastEndReason: string | undefined;
  refusals: Record<string, number>;
  reconnects: number;
  outboxDepth: number;
  outboxFull: boolean;
  telemetryDropped: number;
  /** Inbound messages dropped by the rate limits since start. */
  inboundDropped?: number;
  /** A required camera control could not be set at the latest camera open. */
  cameraControlsFault?: boolean;
  /** Camera controls not as configured at the latest camera open. */
  cameraControlWarnings?: string[];
}

export interface CollectOptions {
  readers: SystemReaders;
  snapshot: ServiceSnapshot;
  uptimeS: number;
  /** Free disk below this is the `disk` fault. */
  diskLowMB: number;
  /** Reuse this throttled value instead of reading it again (quick checks between reports). */
  throttled?: number | undefined;
  skipCommands?: boolean;
}

/** Throttling bits (as `vcgencmd get_throttled` shows them) that are "now" (0–3); 16–19 are "since boot". */
const underVoltageNow = 0x1;
const throttledNow = 0x2 | 0x4 | 0x8;

/** Seconds precision keeps the message short; windows start on minutes anyway. */
function isoSeconds(ms: number): string {
  return `${new Date(Math.floor(ms / 1000) * 1000).toISOString().slice(0, 19)}Z`;
}

export async function collectHealth(options: CollectOptions): Promise<HealthMessage> {
  const { readers, snapshot } = options;
  const [cpuTempC, throttled, load1, memFreeMB, diskFreeMB, wifiDbm, present] = await Promise.all([
    readers.cpuTempC(),
    options.skipCommands ? Promise.resolve(options.throttled) : readers.throttled(),
    readers.load1(),
    readers.memFreeMB(),
    readers.diskFreeMB(),
    readers.wifiDbm(),
    readers.cameraPresent(),
  ]);
  const faults: HealthFault[] = [];
  if (!present) faults.push('camera');
  if (snapshot.cameraControlsFault) faults.push('camera-controls');
  if (snapshot.ledFault) faults.push('led');
  if (!snapshot.clockTrusted) faults.push('clock');
  if (diskFreeMB !== undefined && diskFreeMB < options.diskLowMB) faults.push('disk');
  if (throttled !== undefined && throttled & underVoltageNow) faults.push('under-voltage');
  if (throttled !== undefined && throttled & throttledNow) faults.push('throttled');
  if (snapshot.outboxFull) faults.push('outbox-full');

  const refusals: Partial<Record<RefusalReason, number>> = {};
  for (const [reason, count] of Object.entries(snapshot.refusals)) {
    const known = RefusalReason.safeParse(reason);
    if (known.success && count > 0) refusals[known.data] = count;
  }
  const lastEnd = EndReason.safeParse(snapshot.lastEndReason);
  return {
    schemaVersion,
    uptimeS: Math.max(0, Math.floor(options.uptimeS)),
    ...(cpuTempC !== undefined ? { cpuTempC } : {}),
    ...(throttled ? { throttled } : {}),
    load1: load1 ?? 0,
    memFreeMB: memFreeMB ?? 0,
    diskFreeMB: diskFreeMB ?? 0,
    ...(wifiDbm !== undefined ? { wifiDbm } : {}),
    privacyOn: snapshot.privacyOn,
    ...(snapshot.scheduleVersion !== undefined ? { scheduleVersion: snapshot.scheduleVersion } : {}),
    ...(snapshot.nextWindowStartMs !== undefined
      ? { nextWindowAt: isoSeconds(snapshot.nextWindowStartMs) }
      : {}),
    ...(lastEnd.success ? { lastEndReason: lastEnd.data } : {}),
    ...(snapshot.reconnects > 0 ? { reconnects: snapshot.reconnects } : {}),
    ...(snapshot.outboxDepth > 0 ? { outboxDepth: snapshot.outboxDepth } : {}),
    ...(Object.keys(refusals).length > 0 ? { refusals } : {}),
    ...(snapshot.telemetryDropped > 0 ? { telemetryDropped: snapshot.telemetryDropped } : {}),
    ...(snapshot.inboundDropped ? { inboundDropped: snapshot.inboundDropped } : {}),
    ...(snapshot.cameraControlWarnings?.length
      ? { cameraControls: snapshot.cameraControlWarnings.slice(0, 12).map((text) => text.slice(0, 64)) }
      : {}),
    ...(faults.length > 0 ? { faults } : {}),
  };
}

export async function collectInfo(options: {
  readers: SystemReaders;
  cameraDevice: string | undefined;
  configHash: string;
  nodeVersion: string;
  nowMs: number;
}): Promise<InfoMessage> {
  const { readers } = options;
  const [firmware, hardware, os, model, formats] = await Promise.all([
    readers.firmware(),
    readers.model(),
    readers.os(),
    readers.cameraModel(),
    readers.cameraFormats(),
  ]);
  return {
    schemaVersion,
    firmware: firmware.slice(0, 64),
    node: options.nodeVersion.slice(0, 32),
    ...(hardware !== undefined ? { hardware } : {}),
    ...(os !== undefined ? { os } : {}),
    camera: {
      ...(options.cameraDevice !== undefined ? { device: options.cameraDevice } : {}),
      ...(model !== undefined ? { model } : {}),
      ...(formats !== undefined && formats.length > 0 ? { formats } : {}),
    },
    configHash: options.configHash,
    at: new Date(options.nowMs).toISOString(),
  };
}
