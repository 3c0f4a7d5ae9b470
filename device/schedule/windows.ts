// When is a check-in window open? Pure functions of (instant, schedule, time zone); the zone's rules come
// from the system's tz database (zoneinfo.ts), read once.
//
// Windows are agreed in local time. Rules at daylight-saving changes (documented in docs/protocol.md):
// - A start time that does not exist (spring forward, e.g. 02:30 on the last Sunday of March in
//   Europe/Stockholm) starts when the clock jumps, at the first local time after the gap (03:00).
// - A start time that occurs twice (fall back, 02:30 on the last Sunday of October) starts at its
//   first occurrence only; the window is open once, never twice.
// - Durations are real elapsed minutes: a window is never open longer than the resident agreed.
// - Windows are clipped to the schedule's validity (nbf..exp).
// - An unknown zone opens no window (its instants are NaN), as the zone check in the config refuses it.
import type { OneOffWindow, RecurringWindow, ScheduleClaims, ViewMode, Weekday } from '../protocol/tokens.js';
import { loadZone, wallClock, type Zone } from './zoneinfo.js';

export interface OpenWindow {
  startMs: number;
  endMs: number;
  viewMode: ViewMode;
}

const weekdays: readonly Weekday[] = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];
const minuteMs = 60_000;
const dayMs = 86_400_000;

function parseHm(hm: string): { hour: number; minute: number } {
  const [hour, minute] = hm.split(':').map(Number);
  return { hour: hour ?? 0, minute: minute ?? 0 };
}

function knownZone(name: string): Zone | undefined {
  const zone = loadZone(name);
  return zone instanceof Error ? undefined : zone;
}

/** The instant a local date and time begins, by the rules in the header. */
export function localStart(
  date: { year: number; month: number; day: number },
  hm: string,
  zoneName: string,
): number {
  const zone = knownZone(zoneName);
  if (!zone) return Number.NaN;
  const { hour, minute } = parseHm(hm);
  const wallMs = Date.UTC(date.year, date.month - 1, date.day, hour, minute);
  // The offsets either side of the wall time (a zone changes its offset at most once a day or so).
  const before = zone.offsetMs(wallMs - dayMs);
  const after = zone.offsetMs(wallMs + dayMs);
  const instants = [wallMs - before, wallMs - after].filter((atMs) => atMs + zone.offsetMs(atMs) === wallMs);
  // Shown twice (fall back): the first occurrence.
  if (instants.length > 0) return Math.min(...instants);
  // Not shown at all (spring forward): the instant the clock jumps past it, between these two.
  let low = wallMs - after;
  let high = wallMs - before;
  while (high - low > 1) {
    const middle = Math.floor((low + high) / 2);
    if (zone.offsetMs(middle) === after) high = middle;
    else low = middle;
  }
  return high;
}

function occurrence(
  date: { year: number; month: number; day: number },
  window: RecurringWindow | OneOffWindow,
  zone: string,
): OpenWindow {
  const startMs = localStart(date, window.start, zone);
  return { startMs, endMs: startMs + window.durationMin * minuteMs, viewMode: window.viewMode };
}

/** Every window occurrence that starts on the local dates from `fromDay` to `toDay` days after `at`. */
function occurrences(
  atMs: number,
  schedule: ScheduleClaims,
  zone: string,
  fromDay: number,
  toDay: number,
): OpenWindow[] {
  const known = knownZone(zone);
  if (!known) return [];
  const today = wallClock(atMs, known);
  const found: OpenWindow[] = [];
  for (let offset = fromDay; offset <= toDay; offset += 1) {
    const day = new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate() + offset));
    const date = { year: day.getUTCFullYear(), month: day.getUTCMonth() + 1, day: day.getUTCDate() };
    const weekday = weekdays[day.getUTCDay()];
    for (const window of schedule.windows) {
      if (weekday && window.days.includes(weekday)) found.push(occurrence(date, window, zone));
    }
    const iso = day.toISOString().slice(0, 10);
    for (const window of schedule.oneOff) {
      if (window.date === iso) found.push(occurrence(date, window, zone));
    }
  }
  const validFrom = schedule.nbf * 1000;
  const validUntil = schedule.exp * 1000;
  return found
    .map((w) => ({ ...w, startMs: Math.max(w.startMs, validFrom), endMs: Math.min(w.endMs, validUntil) }))
    .filter((w) => w.endMs > w.startMs)
    .sort((a, b) => a.startMs - b.startMs);
}

/** The window open at `atMs`, if any. Where windows overlap, the one that stays open longest wins. */
export function openWindowAt(atMs: number, schedule: ScheduleClaims, zone: string): OpenWindow | undefined {
  // Two days back: a 24 h window starting late on the night the clocks spring forward ends on the third date.
  const open = occurrences(atMs, schedule, zone, -2, 0).filter((w) => w.startMs <= atMs && atMs < w.endMs);
  return open.sort((a, b) => b.endMs - a.endMs)[0];
}

/** The next window that starts after `atMs`, looking at most 400 days ahead (one-off windows included). */
export function nextWindowAfter(
  atMs: number,
  schedule: ScheduleClaims,
  zone: string,
): OpenWindow | undefined {
  // From yesterday: a window begun yesterday but clipped to a later nbf has not opened yet.
  for (let from = -1; from <= 400; from += 8) {
    const next = occurrences(atMs, schedule, zone, from, from + 7).find((w) => w.startMs > atMs);
    if (next) return next;
    if (schedule.exp * 1000 < atMs + from * 86_400_000) return undefined;
  }
  return undefined;
}

/** Windows whose end falls in (fromMs, toMs]: the supervisor uses it to notice windows that closed. */
export function windowsEndingBetween(
  fromMs: number,
  toMs: number,
  schedule: ScheduleClaims,
  zone: string,
): OpenWindow[] {
  const days = Math.ceil((toMs - fromMs) / 86_400_000) + 1;
  return occurrences(toMs, schedule, zone, -days - 1, 0).filter((w) => w.endMs > fromMs && w.endMs <= toMs);
}
