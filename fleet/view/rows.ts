// One device as a row for people: the page, the API, metrics and scripts/fleet-status all show this.
import { DateTime } from 'luxon';
import { assessRisk, defaultRiskOptions, type Risk, type RiskOptions } from '../risk/index.js';
import { activeFaults, type DeviceState, type HistoryEntry } from '../state/index.js';

export interface DeviceRow {
  device: string;
  state: DeviceState['state'];
  /** ISO time the state began, as well as known. */
  since: string | undefined;
  connection: number | undefined;
  /** Seconds since the last health report arrived. */
  healthAgeS: number | undefined;
  faults: string[];
  privacyOn: boolean | undefined;
  /** The window the device last reported (absent: no schedule). */
  nextWindowAt: string | undefined;
  lastLookAt: string | undefined;
  firmware: string | undefined;
  risk: Risk;
}

const iso = (ms: number | undefined) =>
  ms === undefined || Number.isNaN(ms) ? undefined : new Date(ms).toISOString();

export function deviceRow(
  state: DeviceState,
  nowMs: number,
  options: RiskOptions = defaultRiskOptions,
): DeviceRow {
  return {
    device: state.deviceId,
    state: state.state,
    since: iso(state.sinceMs),
    connection: state.connection,
    healthAgeS:
      state.healthAtMs === undefined ? undefined : Math.max(0, Math.round((nowMs - state.healthAtMs) / 1000)),
    faults: activeFaults(state),
    privacyOn: state.privacyOn,
    nextWindowAt: state.nextWindowAt,
    lastLookAt: iso(state.lastLookAtMs),
    firmware: state.firmware,
    risk: assessRisk(state, nowMs, options),
  };
}

/**
 * Looks per night, for the timeline. A night is named by the local date of its evening: a look at
 * 02:00 on the 11th belongs to the night of the 10th (the day turns at 12:00 local time).
 */
export function looksPerNight(history: HistoryEntry[], timeZone: string): { night: string; looks: number }[] {
  const counts = new Map<string, number>();
  for (const entry of history) {
    if (entry.kind !== 'look') continue;
    const night = DateTime.fromMillis(entry.atMs, { zone: timeZone }).minus({ hours: 12 }).toISODate() ?? '';
    counts.set(night, (counts.get(night) ?? 0) + 1);
  }
  return [...counts.entries()]
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([night, looks]) => ({ night, looks }));
}
