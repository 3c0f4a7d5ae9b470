// Check-in windows in local time: weekdays, one-off dates, validity clipping and the two
// daylight-saving nights of 2026 in Europe/Stockholm (and one in America/New_York).
// Every instant is written with an explicit offset so the test never depends on the machine's zone.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { OneOffWindow, RecurringWindow, ScheduleClaims, Weekday } from '../../device/protocol/tokens.js';
import {
  localStart,
  nextWindowAfter,
  openWindowAt,
  windowsEndingBetween,
} from '../../device/schedule/index.js';
import { nightlySchedule } from '../../scripts/devstack/tokens.js';

const stockholm = 'Europe/Stockholm';
const newYork = 'America/New_York';
const minuteMs = 60_000;
const at = (iso: string): number => {
  const ms = Date.parse(iso);
  if (Number.isNaN(ms)) throw new Error(`bad instant ${iso}`);
  return ms;
};

const allDays: Weekday[] = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];

function recurring(days: Weekday[], start: string, durationMin: number): RecurringWindow {
  return { days, start, durationMin, viewMode: 'full' };
}

function oneOff(date: string, start: string, durationMin: number): OneOffWindow {
  return { date, start, durationMin, viewMode: 'full' };
}

function schedule(
  windows: RecurringWindow[],
  oneOffs: OneOffWindow[] = [],
  overrides: Partial<ScheduleClaims> = {},
): ScheduleClaims {
  return nightlySchedule('cam-test', 1, { windows, oneOff: oneOffs, ...overrides });
}

/** Every night 22:00 for 540 minutes (9 hours), valid 2026-2027. */
const nightly = nightlySchedule('cam-test');

describe('a nightly 22:00 + 540 min window in Europe/Stockholm (winter, CET = UTC+1)', () => {
  it('is open at 23:00 local', () => {
    expect(openWindowAt(at('2026-01-13T23:00:00+01:00'), nightly, stockholm)).toEqual({
      startMs: at('2026-01-13T22:00:00+01:00'),
      endMs: at('2026-01-14T07:00:00+01:00'),
      viewMode: 'full',
    });
  });

  it('is open at 06:59 local the next morning', () => {
    expect(openWindowAt(at('2026-01-14T06:59:00+01:00'), nightly, stockholm)?.startMs).toBe(
      at('2026-01-13T22:00:00+01:00'),
    );
  });

  it('is closed at 07:00 local, the end being exclusive', () => {
    expect(openWindowAt(at('2026-01-14T07:00:00+01:00'), nightly, stockholm)).toBeUndefined();
  });

  it('is closed at 21:59 local, a minute before it opens', () => {
    expect(openWindowAt(at('2026-01-14T21:59:00+01:00'), nightly, stockholm)).toBeUndefined();
  });

  it('opens at exactly 22:00 local, the start being inclusive', () => {
    expect(openWindowAt(at('2026-01-14T22:00:00+01:00'), nightly, stockholm)?.startMs).toBe(
      at('2026-01-14T22:00:00+01:00'),
    );
  });

  it('uses local summer time (CEST = UTC+2) in July, so it opens at 20:00Z', () => {
    expect(openWindowAt(at('2026-07-01T20:00:00Z'), nightly, stockholm)?.startMs).toBe(
      at('2026-07-01T20:00:00Z'),
    );
    expect(openWindowAt(at('2026-07-01T19:59:00Z'), nightly, stockholm)).toBeUndefined();
  });

  it('carries the window view mode into the open window', () => {
    const blurred = schedule([{ ...recurring(allDays, '22:00', 540), viewMode: 'blurred' }]);
    expect(openWindowAt(at('2026-01-13T23:00:00+01:00'), blurred, stockholm)?.viewMode).toBe('blurred');
  });
});

describe('weekday filtering', () => {
  // 2026-01-12 is a Monday.
  const mondayNights = schedule([recurring(['mon'], '22:00', 540)]);

  it('a Monday 22:00 window is open at Tuesday 01:00 local, after midnight', () => {
    expect(openWindowAt(at('2026-01-13T01:00:00+01:00'), mondayNights, stockholm)?.startMs).toBe(
      at('2026-01-12T22:00:00+01:00'),
    );
  });

  it('a Monday 22:00 window is not open at Monday 01:00 local, which belongs to Sunday night', () => {
    expect(openWindowAt(at('2026-01-12T01:00:00+01:00'), mondayNights, stockholm)).toBeUndefined();
  });

  it('a Monday 22:00 window is not open on Tuesday at 23:00 local', () => {
    expect(openWindowAt(at('2026-01-13T23:00:00+01:00'), mondayNights, stockholm)).toBeUndefined();
  });

  it('uses the local weekday, not the UTC one: Monday 00:30 local is still Sunday in UTC', () => {
    const mondayMornings = schedule([recurring(['mon'], '00:00', 60)]);
    // 2026-01-12T00:30+01:00 is Sunday 23:30Z.
    expect(openWindowAt(at('2026-01-12T00:30:00+01:00'), mondayMornings, stockholm)?.startMs).toBe(
      at('2026-01-12T00:00:00+01:00'),
    );
  });
});

describe('one-off windows', () => {
  const valentines = schedule([], [oneOff('2026-02-14', '10:00', 30)]);

  it('is open on its date inside its local time span', () => {
    expect(openWindowAt(at('2026-02-14T10:15:00+01:00'), valentines, stockholm)).toEqual({
      startMs: at('2026-02-14T10:00:00+01:00'),
      endMs: at('2026-02-14T10:30:00+01:00'),
      viewMode: 'full',
    });
  });

  it('is closed at its end', () => {
    expect(openWindowAt(at('2026-02-14T10:30:00+01:00'), valentines, stockholm)).toBeUndefined();
  });

  it('does not recur on the same weekday a week later', () => {
    expect(openWindowAt(at('2026-02-21T10:15:00+01:00'), valentines, stockholm)).toBeUndefined();
  });

  it('does not recur on the next day', () => {
    expect(openWindowAt(at('2026-02-15T10:15:00+01:00'), valentines, stockholm)).toBeUndefined();
  });

  it('a one-off window that runs past midnight is open on the next date', () => {
    const lateNight = schedule([], [oneOff('2026-02-14', '23:30', 60)]);
    expect(openWindowAt(at('2026-02-15T00:15:00+01:00'), lateNight, stockholm)?.startMs).toBe(
      at('2026-02-14T23:30:00+01:00'),
    );
  });

  it('where a one-off and a recurring window overlap, the one that stays open longest wins', () => {
    const both = schedule(
      [recurring(allDays, '10:00', 20)],
      [{ ...oneOff('2026-02-14', '10:10', 60), viewMode: 'blurred' }],
    );
    expect(openWindowAt(at('2026-02-14T10:15:00+01:00'), both, stockholm)).toEqual({
      startMs: at('2026-02-14T10:10:00+01:00'),
      endMs: at('2026-02-14T11:10:00+01:00'),
      viewMode: 'blurred',
    });
  });
});

describe('clipping to the schedule validity (nbf..exp)', () => {
  const nbf = at('2026-01-14T00:00:00Z') / 1000; // 01:00 local, inside the night of 13-14 January
  const exp = at('2026-01-20T03:00:00Z') / 1000; // 04:00 local, inside the night of 19-20 January
  const clipped = nightlySchedule('cam-test', 1, { nbf, exp });

  it('is closed inside a window but before the schedule becomes valid', () => {
    expect(openWindowAt(at('2026-01-13T23:59:59Z'), clipped, stockholm)).toBeUndefined();
  });

  it('opens at nbf and reports nbf as the start', () => {
    expect(openWindowAt(nbf * 1000, clipped, stockholm)).toEqual({
      startMs: nbf * 1000,
      endMs: at('2026-01-14T07:00:00+01:00'),
      viewMode: 'full',
    });
  });

  it('reports exp as the end of the last window', () => {
    expect(openWindowAt(at('2026-01-20T02:00:00Z'), clipped, stockholm)?.endMs).toBe(exp * 1000);
  });

  it('is closed at exp even though the agreed window would still run', () => {
    expect(openWindowAt(exp * 1000, clipped, stockholm)).toBeUndefined();
  });

  it('has no windows at all after exp', () => {
    expect(openWindowAt(at('2026-01-20T23:00:00+01:00'), clipped, stockholm)).toBeUndefined();
  });
});

describe('spring forward: Sunday 2026-03-29 in Europe/Stockholm, 02:00 CET jumps to 03:00 CEST (01:00Z)', () => {
  const halfPastTwo = schedule([recurring(['sun'], '02:30', 60)]);

  it('localStart puts the missing local time 02:30 at the jump, 03:00 CEST (01:00Z)', () => {
    expect(localStart({ year: 2026, month: 3, day: 29 }, '02:30', stockholm)).toBe(
      at('2026-03-29T01:00:00Z'),
    );
  });

  it('a window at 02:30 starts at 03:00 CEST (01:00Z) and lasts 60 real minutes, until 04:00 CEST', () => {
    expect(openWindowAt(at('2026-03-29T01:00:00Z'), halfPastTwo, stockholm)).toEqual({
      startMs: at('2026-03-29T01:00:00Z'),
      endMs: at('2026-03-29T02:00:00Z'),
      viewMode: 'full',
    });
  });

  it('a window at 02:30 is closed just before the jump, at 01:59 CET (00:59Z)', () => {
    expect(openWindowAt(at('2026-03-29T00:59:00Z'), halfPastTwo, stockholm)).toBeUndefined();
  });

  it('a window at 02:30 is closed at 04:00 CEST (02:00Z), after 60 real minutes', () => {
    expect(openWindowAt(at('2026-03-29T02:00:00Z'), halfPastTwo, stockholm)).toBeUndefined();
  });

  it('a window at 02:00, the first missing minute, also starts at 03:00 CEST', () => {
    expect(localStart({ year: 2026, month: 3, day: 29 }, '02:00', stockholm)).toBe(
      at('2026-03-29T01:00:00Z'),
    );
  });

  it('a window at 03:00, just after the gap, starts at 03:00 CEST as usual', () => {
    expect(localStart({ year: 2026, month: 3, day: 29 }, '03:00', stockholm)).toBe(
      at('2026-03-29T01:00:00Z'),
    );
  });

  it('a window at 01:59, just before the gap, starts at 01:59 CET (00:59Z)', () => {
    expect(localStart({ year: 2026, month: 3, day: 29 }, '01:59', stockholm)).toBe(
      at('2026-03-29T00:59:00Z'),
    );
  });

  it('a 22:00 + 540 min window on Saturday night lasts 540 real minutes and ends at 08:00 CEST local', () => {
    const window = openWindowAt(at('2026-03-29T03:00:00Z'), nightly, stockholm);
    expect(window).toEqual({
      startMs: at('2026-03-28T22:00:00+01:00'),
      endMs: at('2026-03-29T08:00:00+02:00'),
      viewMode: 'full',
    });
    expect(window && (window.endMs - window.startMs) / minuteMs).toBe(540);
  });

  it('a 22:00 + 540 min window on Saturday night is still open at 07:30 CEST local', () => {
    expect(openWindowAt(at('2026-03-29T07:30:00+02:00'), nightly, stockholm)).toBeDefined();
  });

  it('a 22:00 + 540 min window on Saturday night is closed at 08:00 CEST local', () => {
    expect(openWindowAt(at('2026-03-29T08:00:00+02:00'), nightly, stockholm)).toBeUndefined();
  });

  it('a 24-hour window from Saturday 23:59 CET stays open until Monday 00:59 CEST local, its full 1440 real minutes', () => {
    // The lost hour pushes the local end onto the third local date.
    const long = schedule([recurring(['sat'], '23:59', 1440)]);
    expect(openWindowAt(at('2026-03-30T00:30:00+02:00'), long, stockholm)).toEqual({
      startMs: at('2026-03-28T23:59:00+01:00'),
      endMs: at('2026-03-30T00:59:00+02:00'),
      viewMode: 'full',
    });
  });
});

describe('fall back: Sunday 2026-10-25 in Europe/Stockholm, 03:00 CEST goes back to 02:00 CET (01:00Z)', () => {
  const halfPastTwo = schedule([recurring(['sun'], '02:30', 30)]);

  it('localStart puts the twice-occurring local time 02:30 at its first occurrence, 02:30 CEST (00:30Z)', () => {
    expect(localStart({ year: 2026, month: 10, day: 25 }, '02:30', stockholm)).toBe(
      at('2026-10-25T00:30:00Z'),
    );
  });

  it('a 30-minute window at 02:30 is open at the first 02:45 (00:45Z)', () => {
    expect(openWindowAt(at('2026-10-25T00:45:00Z'), halfPastTwo, stockholm)).toEqual({
      startMs: at('2026-10-25T00:30:00Z'),
      endMs: at('2026-10-25T01:00:00Z'),
      viewMode: 'full',
    });
  });

  it('a 30-minute window at 02:30 is closed at the second 02:15 (01:15Z), once ended', () => {
    expect(openWindowAt(at('2026-10-25T01:15:00Z'), halfPastTwo, stockholm)).toBeUndefined();
  });

  it('a 30-minute window at 02:30 is not opened a second time at the second 02:30 (01:30Z)', () => {
    expect(openWindowAt(at('2026-10-25T01:30:00Z'), halfPastTwo, stockholm)).toBeUndefined();
  });

  it('a 30-minute window at 02:30 is closed at the second 02:45 (01:45Z)', () => {
    expect(openWindowAt(at('2026-10-25T01:45:00Z'), halfPastTwo, stockholm)).toBeUndefined();
  });

  it('a 90-minute window at 02:30 CEST lasts 90 real minutes and ends at 03:00 CET local (02:00Z)', () => {
    const long = schedule([recurring(['sun'], '02:30', 90)]);
    expect(openWindowAt(at('2026-10-25T01:45:00Z'), long, stockholm)).toEqual({
      startMs: at('2026-10-25T00:30:00Z'),
      endMs: at('2026-10-25T02:00:00Z'),
      viewMode: 'full',
    });
  });

  it('reports exactly one 02:30 window ending that night', () => {
    const ended = windowsEndingBetween(
      at('2026-10-24T12:00:00Z'),
      at('2026-10-25T12:00:00Z'),
      halfPastTwo,
      stockholm,
    );
    expect(ended).toEqual([
      { startMs: at('2026-10-25T00:30:00Z'), endMs: at('2026-10-25T01:00:00Z'), viewMode: 'full' },
    ]);
  });

  it('a 22:00 + 540 min window on Saturday night lasts 540 real minutes and ends at 06:00 CET local', () => {
    const window = openWindowAt(at('2026-10-25T03:00:00Z'), nightly, stockholm);
    expect(window).toEqual({
      startMs: at('2026-10-24T22:00:00+02:00'),
      endMs: at('2026-10-25T06:00:00+01:00'),
      viewMode: 'full',
    });
    expect(window && (window.endMs - window.startMs) / minuteMs).toBe(540);
  });

  it('a 22:00 + 540 min window on Saturday night is closed at 06:00 CET local, not 07:00', () => {
    expect(openWindowAt(at('2026-10-25T06:00:00+01:00'), nightly, stockholm)).toBeUndefined();
  });
});

describe('nextWindowAfter', () => {
  it('from the afternoon, returns tonight at 22:00 local', () => {
    expect(nextWindowAfter(at('2026-01-14T15:00:00+01:00'), nightly, stockholm)).toEqual({
      startMs: at('2026-01-14T22:00:00+01:00'),
      endMs: at('2026-01-15T07:00:00+01:00'),
      viewMode: 'full',
    });
  });

  it('from inside a window, returns the next one, not the open one', () => {
    expect(nextWindowAfter(at('2026-01-14T23:00:00+01:00'), nightly, stockholm)?.startMs).toBe(
      at('2026-01-15T22:00:00+01:00'),
    );
  });

  it('at the exact start of a window, returns the one after it (strictly later)', () => {
    expect(nextWindowAfter(at('2026-01-14T22:00:00+01:00'), nightly, stockholm)?.startMs).toBe(
      at('2026-01-15T22:00:00+01:00'),
    );
  });

  it('for a weekly window, returns the next matching weekday', () => {
    const mondays = schedule([recurring(['mon'], '22:00', 60)]);
    // 2026-01-13 is a Tuesday; the next Monday is 2026-01-19.
    expect(nextWindowAfter(at('2026-01-13T12:00:00+01:00'), mondays, stockholm)?.startMs).toBe(
      at('2026-01-19T22:00:00+01:00'),
    );
  });

  it('finds a one-off window months ahead', () => {
    const far = schedule([], [oneOff('2026-12-24', '15:00', 30)]);
    expect(nextWindowAfter(at('2026-02-01T12:00:00+01:00'), far, stockholm)?.startMs).toBe(
      at('2026-12-24T15:00:00+01:00'),
    );
  });

  it('returns the earlier of a recurring and a one-off window', () => {
    const mixed = schedule([recurring(['mon'], '22:00', 60)], [oneOff('2026-01-15', '09:00', 30)]);
    expect(nextWindowAfter(at('2026-01-13T12:00:00+01:00'), mixed, stockholm)?.startMs).toBe(
      at('2026-01-15T09:00:00+01:00'),
    );
  });

  it('returns nothing once the schedule has expired', () => {
    const expired = nightlySchedule('cam-test', 1, { exp: at('2026-02-01T00:00:00Z') / 1000 });
    expect(nextWindowAfter(at('2026-02-01T12:00:00+01:00'), expired, stockholm)).toBeUndefined();
  });

  it('returns nothing for a schedule without windows', () => {
    expect(nextWindowAfter(at('2026-02-01T12:00:00+01:00'), schedule([]), stockholm)).toBeUndefined();
  });

  it('before nbf, returns the first window clipped to start at nbf', () => {
    const nbf = at('2026-01-14T22:30:00+01:00') / 1000;
    const later = nightlySchedule('cam-test', 1, { nbf });
    expect(nextWindowAfter(at('2026-01-14T12:00:00+01:00'), later, stockholm)?.startMs).toBe(nbf * 1000);
  });

  it('after midnight and before nbf, returns the window begun yesterday that opens at nbf', () => {
    // The night of 13-14 January runs 22:00-07:00; the schedule becomes valid at 01:00 local on the 14th.
    const nbf = at('2026-01-14T01:00:00+01:00') / 1000;
    const later = nightlySchedule('cam-test', 1, { nbf });
    expect(nextWindowAfter(at('2026-01-14T00:00:00+01:00'), later, stockholm)?.startMs).toBe(nbf * 1000);
  });

  it('on the spring-forward night, returns the 02:30 window at 03:00 CEST (01:00Z)', () => {
    const halfPastTwo = schedule([recurring(['sun'], '02:30', 60)]);
    expect(nextWindowAfter(at('2026-03-28T12:00:00Z'), halfPastTwo, stockholm)?.startMs).toBe(
      at('2026-03-29T01:00:00Z'),
    );
  });
});

describe('windowsEndingBetween', () => {
  it('reports a window whose end falls inside the interval', () => {
    expect(
      windowsEndingBetween(
        at('2026-01-14T06:59:00+01:00'),
        at('2026-01-14T07:01:00+01:00'),
        nightly,
        stockholm,
      ),
    ).toEqual([
      { startMs: at('2026-01-13T22:00:00+01:00'), endMs: at('2026-01-14T07:00:00+01:00'), viewMode: 'full' },
    ]);
  });

  it('includes a window ending exactly at the end of the interval', () => {
    const ended = windowsEndingBetween(
      at('2026-01-14T06:00:00+01:00'),
      at('2026-01-14T07:00:00+01:00'),
      nightly,
      stockholm,
    );
    expect(ended.map((w) => w.endMs)).toEqual([at('2026-01-14T07:00:00+01:00')]);
  });

  it('excludes a window ending exactly at the start of the interval', () => {
    expect(
      windowsEndingBetween(
        at('2026-01-14T07:00:00+01:00'),
        at('2026-01-14T08:00:00+01:00'),
        nightly,
        stockholm,
      ),
    ).toEqual([]);
  });

  it('reports nothing for an interval in which no window ends', () => {
    expect(
      windowsEndingBetween(
        at('2026-01-14T08:00:00+01:00'),
        at('2026-01-14T23:00:00+01:00'),
        nightly,
        stockholm,
      ),
    ).toEqual([]);
  });

  it('reports every window ending over several days, in order', () => {
    const ended = windowsEndingBetween(
      at('2026-01-14T00:00:00+01:00'),
      at('2026-01-17T00:00:00+01:00'),
      nightly,
      stockholm,
    );
    expect(ended.map((w) => w.endMs)).toEqual([
      at('2026-01-14T07:00:00+01:00'),
      at('2026-01-15T07:00:00+01:00'),
      at('2026-01-16T07:00:00+01:00'),
    ]);
  });

  it('reports a window cut short by exp as ending at exp', () => {
    const exp = at('2026-01-14T03:00:00+01:00') / 1000;
    const clipped = nightlySchedule('cam-test', 1, { exp });
    expect(
      windowsEndingBetween(
        at('2026-01-14T02:00:00+01:00'),
        at('2026-01-14T04:00:00+01:00'),
        clipped,
        stockholm,
      ),
    ).toEqual([{ startMs: at('2026-01-13T22:00:00+01:00'), endMs: exp * 1000, viewMode: 'full' }]);
  });

  it('reports the spring-forward night window ending at 08:00 CEST local', () => {
    expect(
      windowsEndingBetween(
        at('2026-03-29T07:00:00+02:00'),
        at('2026-03-29T09:00:00+02:00'),
        nightly,
        stockholm,
      ).map((w) => w.endMs),
    ).toEqual([at('2026-03-29T08:00:00+02:00')]);
  });
});

describe('another time zone: America/New_York', () => {
  it('a nightly 22:00 window opens at 22:00 EST (03:00Z), not at 22:00 in Stockholm', () => {
    expect(openWindowAt(at('2026-01-14T03:00:00Z'), nightly, newYork)?.startMs).toBe(
      at('2026-01-13T22:00:00-05:00'),
    );
    expect(openWindowAt(at('2026-01-13T21:30:00Z'), nightly, newYork)).toBeUndefined();
  });

  it('the same instant is inside the Stockholm window and outside the New York one', () => {
    const instant = at('2026-01-14T05:00:00Z'); // 06:00 in Stockholm, 00:00 in New York
    expect(openWindowAt(instant, schedule([recurring(allDays, '05:00', 120)]), stockholm)).toBeDefined();
    expect(openWindowAt(instant, schedule([recurring(allDays, '05:00', 120)]), newYork)).toBeUndefined();
  });

  it('follows New York DST (2026-03-08), not Stockholm: 02:30 starts at 03:00 EDT (07:00Z)', () => {
    expect(localStart({ year: 2026, month: 3, day: 8 }, '02:30', newYork)).toBe(at('2026-03-08T07:00:00Z'));
  });

  it('follows New York fall back (2026-11-01): 01:30 starts at its first occurrence, 01:30 EDT (05:30Z)', () => {
    const early = schedule([recurring(['sun'], '01:30', 30)]);
    expect(openWindowAt(at('2026-11-01T05:45:00Z'), early, newYork)?.startMs).toBe(
      at('2026-11-01T05:30:00Z'),
    );
    expect(openWindowAt(at('2026-11-01T06:45:00Z'), early, newYork)).toBeUndefined();
  });
});

describe('properties', () => {
  const hm = fc
    .tuple(fc.integer({ min: 0, max: 23 }), fc.integer({ min: 0, max: 59 }))
    .map(([h, m]) => `${String(h).padStart(2, '0')}:${String(m).padStart(2, '0')}`);
  const weekdaysArb = fc.uniqueArray(fc.constantFrom(...allDays), { minLength: 1, maxLength: 7 });
  const viewMode = fc.constantFrom('full' as const, 'blurred' as const, 'low-resolution' as const);
  const durationMin = fc.integer({ min: 1, max: 1440 });
  // 2025-12-01 .. 2028-01-31: covers every 2026-2027 DST change in both zones.
  const instantArb = fc.integer({ min: Date.UTC(2025, 11, 1), max: Date.UTC(2028, 0, 31) });
  // Far enough inside the validity of nightlySchedule (2026-2027) that the next window is never clipped.
  const unclippedInstant = fc.integer({ min: Date.UTC(2026, 0, 2), max: Date.UTC(2027, 11, 1) });
  const dayMs = 86_400_000;
  const date = fc
    .integer({ min: Date.UTC(2025, 11, 1) / dayMs, max: Date.UTC(2028, 0, 31) / dayMs })
    .map((day) => new Date(day * dayMs).toISOString().slice(0, 10));
  const recurringArb = fc.record({ days: weekdaysArb, start: hm, durationMin, viewMode });
  const oneOffArb = fc.record({ date, start: hm, durationMin, viewMode });
  const scheduleArb = fc
    .record({
      windows: fc.array(recurringArb, { maxLength: 4 }),
      oneOff: fc.array(oneOffArb, { maxLength: 4 }),
      nbf: fc.integer({ min: Date.UTC(2025, 11, 1) / 1000, max: Date.UTC(2027, 0, 1) / 1000 }),
      validS: fc.integer({ min: 1, max: 400 * 86_400 }),
    })
    .map(
      ({ windows, oneOff: oneOffs, nbf, validS }): ScheduleClaims => ({
        aud: 'cam-test',
        version: 1,
        nbf,
        exp: nbf + validS,
        windows,
        oneOff: oneOffs,
      }),
    );
  const zone = fc.constantFrom(stockholm, newYork, 'UTC', 'Australia/Lord_Howe');

  it('openWindowAt returns only windows that contain the instant, within validity, never longer than agreed', () => {
    fc.assert(
      fc.property(instantArb, scheduleArb, zone, (t, claims, tz) => {
        const window = openWindowAt(t, claims, tz);
        if (!window) return;
        expect(window.startMs).toBeLessThanOrEqual(t);
        expect(t).toBeLessThan(window.endMs);
        expect(window.startMs).toBeGreaterThanOrEqual(claims.nbf * 1000);
        expect(window.endMs).toBeLessThanOrEqual(claims.exp * 1000);
        const longestMin = Math.max(
          ...claims.windows.map((w) => w.durationMin),
          ...claims.oneOff.map((w) => w.durationMin),
        );
        expect(window.endMs - window.startMs).toBeLessThanOrEqual(longestMin * minuteMs);
      }),
      { numRuns: 500 },
    );
  });

  it('a single window is never open longer than its durationMin, whatever the zone and date', () => {
    fc.assert(
      fc.property(instantArb, recurringArb, zone, (t, window, tz) => {
        const open = openWindowAt(t, schedule([window]), tz);
        if (!open) return;
        expect(open.startMs).toBeLessThanOrEqual(t);
        expect(t).toBeLessThan(open.endMs);
        expect(open.endMs - open.startMs).toBeLessThanOrEqual(window.durationMin * minuteMs);
      }),
      { numRuns: 500 },
    );
  });

  it('openWindowAt agrees with windowsEndingBetween: open exactly when a window ending within a day has begun', () => {
    fc.assert(
      fc.property(instantArb, scheduleArb, zone, (t, claims, tz) => {
        const open = openWindowAt(t, claims, tz);
        const begun = windowsEndingBetween(t, t + 1440 * minuteMs, claims, tz).filter((w) => w.startMs <= t);
        expect(open === undefined).toBe(begun.length === 0);
        if (open) expect(open.endMs).toBe(Math.max(...begun.map((w) => w.endMs)));
      }),
      { numRuns: 300 },
    );
  });

  it('an unclipped recurring window is open a minute after it starts, for exactly durationMin real minutes', () => {
    fc.assert(
      fc.property(unclippedInstant, recurringArb, zone, (t, window, tz) => {
        const claims = schedule([window]);
        const next = nextWindowAfter(t, claims, tz);
        if (!next) return;
        expect(next.endMs - next.startMs).toBe(window.durationMin * minuteMs);
        expect(openWindowAt(next.startMs, claims, tz)?.endMs).toBeGreaterThanOrEqual(next.endMs);
        expect(openWindowAt(next.endMs - 1, claims, tz)).toBeDefined();
      }),
      { numRuns: 300 },
    );
  });
});
