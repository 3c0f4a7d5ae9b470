// "Is a planned check-in at risk?" as a pure function of a device's state and the time: a window is
// coming up (within the horizon, 12 h by default) or open, and the device cannot serve it: it is
// offline (or silent: online but no health for a while), privacy is on, the camera, clock or LED has a
// fault, or it has no valid schedule. Operations then send a person; the earlier they know, the better.
//
// The next window comes from the device's last health report. A report can be old (the device is
// offline); schedules are daily, so a window that has passed is rolled forward one local day at a time
// (Europe/Stockholm by default), keeping its wall-clock time across daylight-saving changes. A device
// with a problem and no known window at all counts as at risk too, listed last: nobody can tell when it
// is needed.
import { DateTime } from 'luxon';
import { activeFaults, type DeviceState } from '../state/index.js';

export const riskReasons = [
  'offline',
  'silent',
  'privacy-on',
  'camera',
  'clock',
  'led',
  'no-schedule',
] as const;
export type RiskReason = (typeof riskReasons)[number];

export interface RiskOptions {
  /** How far ahead a window makes a problem urgent. */
  horizonMs: number;
  /** An online device without health for this long is treated as offline. */
  silentAfterMs: number;
  /** A window that began up to this long ago may still be open (night windows run about 22:00–07:00). */
  openGraceMs: number;
  timeZone: string;
}

export const defaultRiskOptions: RiskOptions = {
  horizonMs: 12 * 3600_000,
  silentAfterMs: 3 * 60_000,
  openGraceMs: 10 * 3600_000,
  timeZone: 'Europe/Stockholm',
};

export interface Risk {
  atRisk: boolean;
  /** What is wrong, in the order of `riskReasons`; empty when the device can serve its window. */
  reasons: RiskReason[];
  /** Start of the next (or current) window, ISO UTC; undefined when none is known. */
  windowAt: string | undefined;
  /** The window comes from an old report, rolled forward by whole days. */
  windowEstimated: boolean;
  /** Milliseconds until the window starts; 0 when it is open now. */
  timeLeftMs: number | undefined;
}

/** Online and reporting: health within `silentAfterMs` (a device that just came online gets as long for its first). */
const fresh = (device: DeviceState, nowMs: number, options: RiskOptions): boolean =>
  device.state === 'online' &&
  nowMs - (device.healthAtMs ?? device.sinceMs ?? nowMs) <= options.silentAfterMs;

/** What is wrong with the device for a check-in, whatever the time of the window. */
export function problems(
  device: DeviceState,
  nowMs: number,
  options: RiskOptions = defaultRiskOptions,
): RiskReason[] {
  const reasons = new Set<RiskReason>();
  if (device.state !== 'online') reasons.add('offline');
  else if (!fresh(device, nowMs, options)) reasons.add('silent');
  if (device.privacyOn === true) reasons.add('privacy-on');
  const faults = new Set(activeFaults(device));
  for (const kind of ['camera', 'clock', 'led'] as const) if (faults.has(kind)) reasons.add(kind);
  // Only a report says whether a schedule is held; without one we know nothing either way.
  if (
    device.healthAtMs !== undefined &&
    (device.scheduleVersion === undefined || device.nextWindowAt === undefined)
  ) {
    reasons.add('no-schedule');
  }
  return riskReasons.filter((reason) => reasons.has(reason));
}

/** The next (or current) window start, and whether it was rolled forward from an old report. */
export function nextWindow(
  device: DeviceState,
  nowMs: number,
  options: RiskOptions = defaultRiskOptions,
): { atMs: number; estimated: boolean } | undefined {
  const reported = device.nextWindowAt ?? device.lastKnownWindowAt;
  if (reported === undefined) return undefined;
  const reportedMs = Date.parse(reported);
  if (Number.isNaN(reportedMs)) return undefined;
  // A fresh report of the current window is the truth, however long ago (within a day) the window began.
  if (device.nextWindowAt !== undefined && fresh(device, nowMs, options) && reportedMs > nowMs - 86_400_000)
    return { atMs: reportedMs, estimated: false };
  if (reportedMs + options.openGraceMs >= nowMs) return { atMs: reportedMs, estimated: false };
  const start = DateTime.fromMillis(reportedMs, { zone: options.timeZone });
  const days = Math.ceil((nowMs - options.openGraceMs - reportedMs) / 86_400_000);
  // Whole local days keep the wall-clock time across DST; step back or on by one to land exactly.
  let candidate = start.plus({ days: Math.max(0, days - 1) });
  while (candidate.toMillis() + options.openGraceMs < nowMs) candidate = candidate.plus({ days: 1 });
  return { atMs: candidate.toMillis(), estimated: true };
}

/** Whether the device's next check-in is at risk now, why, and how long is left. */
export function assessRisk(
  device: DeviceState,
  nowMs: number,
  options: RiskOptions = defaultRiskOptions,
): Risk {
  const reasons = problems(device, nowMs, options);
  const window = nextWindow(device, nowMs, options);
  const timeLeftMs = window === undefined ? undefined : Math.max(0, window.atMs - nowMs);
  const atRisk = reasons.length > 0 && (timeLeftMs === undefined || timeLeftMs <= options.horizonMs);
  return {
    atRisk,
    reasons,
    windowAt: window === undefined ? undefined : new Date(window.atMs).toISOString(),
    windowEstimated: window?.estimated ?? false,
    timeLeftMs,
  };
}

/** At-risk devices first by time left (open windows first, unknown windows last), then by id. */
export function compareRisk(
  a: { deviceId: string; risk: Risk },
  b: { deviceId: string; risk: Risk },
): number {
  const left = (risk: Risk) => risk.timeLeftMs ?? Number.POSITIVE_INFINITY;
  return left(a.risk) - left(b.risk) || (a.deviceId < b.deviceId ? -1 : a.deviceId > b.deviceId ? 1 : 0);
}

/** "2 h 05 min", "12 min", "now": for the page, the webhook and the terminal. */
export function formatTimeLeft(ms: number | undefined): string {
  if (ms === undefined) return 'unknown';
  if (ms <= 0) return 'now';
  const minutes = Math.ceil(ms / 60_000);
  if (minutes < 60) return `${minutes} min`;
  return `${Math.floor(minutes / 60)} h ${String(minutes % 60).padStart(2, '0')} min`;
}
