// The tz database reader (device/schedule/zoneinfo.ts) against luxon, which reads ICU's own copy of the
// tz database through Intl: UTC offsets at instants from 2000 to 2040 (each offset change found by
// luxon to the second, and random instants), and local times turned into instants in daylight-saving
// gaps and overlaps, by the rules of device/schedule/windows.ts, against a minute-by-minute search.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { DateTime } from 'luxon';
import { afterAll, describe, expect, it } from 'vitest';
import { loadZone, localStart, type Zone } from '../../device/schedule/index.js';
import { parseTzif } from '../../device/schedule/zoneinfo.js';

const minuteMs = 60_000;
const hourMs = 60 * minuteMs;
const dayMs = 24 * hourMs;
const from = Date.UTC(2000, 0, 1);
const until = Date.UTC(2041, 0, 1);
// Southern-hemisphere daylight saving (Sydney), 30-minute daylight saving (Lord Howe), a half-hour zone
// without it (Kolkata), and one whose daylight saving ended in 2019 (São Paulo: its rule has none).
const zones = [
  'Europe/Stockholm',
  'America/New_York',
  'Australia/Lord_Howe',
  'Australia/Sydney',
  'America/Sao_Paulo',
  'Asia/Kolkata',
  'UTC',
];

const oracleOffsetMs = (atMs: number, zone: string): number =>
  DateTime.fromMillis(atMs, { zone }).offset * minuteMs;

function zoneNamed(name: string): Zone {
  const zone = loadZone(name);
  if (zone instanceof Error) throw zone;
  return zone;
}

/** The instants (to the second) at which luxon says the zone's offset changes, from 2000 to 2040. */
function oracleChanges(zone: string): number[] {
  const changes: number[] = [];
  for (let dayStart = from; dayStart < until; dayStart += dayMs) {
    if (oracleOffsetMs(dayStart, zone) === oracleOffsetMs(dayStart + dayMs, zone)) continue;
    let low = dayStart; // offset as before
    let high = dayStart + dayMs; // offset as after
    while (high - low > 1000) {
      const middle = low + Math.floor((high - low) / 2000) * 1000;
      if (oracleOffsetMs(middle, zone) === oracleOffsetMs(dayStart, zone)) low = middle;
      else high = middle;
    }
    changes.push(high);
  }
  return changes;
}

describe.each(zones)('offsets in %s, 2000-2040, against luxon', (name) => {
  const changes = oracleChanges(name);
  const zone = zoneNamed(name);

  it('has the same offset a second before, at and a second after every change luxon sees', () => {
    for (const change of changes) {
      for (const atMs of [change - 1000, change - 1, change, change + 1000]) {
        expect(zone.offsetMs(atMs), new Date(atMs).toISOString()).toBe(oracleOffsetMs(atMs, name));
      }
    }
  });

  it('has the same offset at random instants', () => {
    fc.assert(
      fc.property(fc.integer({ min: from, max: until }), (atMs) => {
        expect(zone.offsetMs(atMs)).toBe(oracleOffsetMs(atMs, name));
      }),
      { numRuns: 2000 },
    );
  });
});

it('sees the changes the zones are known for (the oracle search works)', () => {
  // Twice a year for 41 years; Brazil's daylight saving until 2019; none in Kolkata or UTC.
  expect(oracleChanges('Europe/Stockholm')).toHaveLength(82);
  expect(oracleChanges('Europe/Stockholm')).toContain(Date.parse('2026-03-29T01:00:00Z'));
  expect(oracleChanges('Australia/Lord_Howe')).toContain(Date.parse('2026-04-04T15:00:00Z'));
  expect(oracleChanges('America/Sao_Paulo').length).toBeGreaterThan(30);
  expect(oracleChanges('America/Sao_Paulo').every((change) => change < Date.UTC(2019, 3))).toBe(true);
  expect(oracleChanges('Asia/Kolkata')).toEqual([]);
  expect(oracleChanges('UTC')).toEqual([]);
});

/**
 * The oracle for localStart: the first minute showing the wanted wall time in luxon; if no minute
 * does (a gap), the first minute whose wall time on that date is past it.
 */
function oracleLocalStart(
  date: { year: number; month: number; day: number },
  hm: string,
  zone: string,
): number {
  const wall = DateTime.fromObject(
    { ...date, hour: Number(hm.slice(0, 2)), minute: Number(hm.slice(3, 5)) },
    { zone: 'UTC' },
  );
  const wanted = wall.toFormat('yyyy-MM-dd HH:mm');
  const shown = (atMs: number) => DateTime.fromMillis(atMs, { zone }).toFormat('yyyy-MM-dd HH:mm');
  let firstLater: number | undefined;
  for (let atMs = wall.toMillis() - 15 * hourMs; atMs <= wall.toMillis() + 13 * hourMs; atMs += minuteMs) {
    const text = shown(atMs);
    if (text === wanted) return atMs;
    if (firstLater === undefined && text > wanted && text.slice(0, 10) === wanted.slice(0, 10))
      firstLater = atMs;
  }
  if (firstLater === undefined) throw new Error(`no instant for ${wanted} in ${zone}`);
  return firstLater;
}

describe('local times in gaps and overlaps, against a search with luxon', () => {
  const dstZones = [
    'Europe/Stockholm',
    'America/New_York',
    'Australia/Lord_Howe',
    'Australia/Sydney',
    'America/Sao_Paulo',
  ];
  for (const zone of dstZones) {
    const changes = oracleChanges(zone).filter((change) =>
      [2000, 2018, 2026, 2039].includes(new Date(change).getUTCFullYear()),
    );

    it(`starts every quarter hour around each change in ${zone} as the search does`, () => {
      expect(changes.length).toBeGreaterThan(0);
      for (const change of changes) {
        // Wall times from an hour before the change (on the old offset) to an hour after (on the new).
        const firstWall = change + oracleOffsetMs(change - 1000, zone) - hourMs;
        const lastWall = change + oracleOffsetMs(change, zone) + hourMs;
        for (let wallMs = firstWall; wallMs <= lastWall; wallMs += 15 * minuteMs) {
          const wall = new Date(wallMs);
          const date = { year: wall.getUTCFullYear(), month: wall.getUTCMonth() + 1, day: wall.getUTCDate() };
          const hm = wall.toISOString().slice(11, 16);
          expect(localStart(date, hm, zone), `${wall.toISOString().slice(0, 16)} in ${zone}`).toBe(
            oracleLocalStart(date, hm, zone),
          );
        }
      }
    });
  }

  it('starts random local times as the search does', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...zones),
        fc.date({ min: new Date(from), max: new Date(until), noInvalidDate: true }),
        (zone, wall) => {
          const date = { year: wall.getUTCFullYear(), month: wall.getUTCMonth() + 1, day: wall.getUTCDate() };
          const hm = wall.toISOString().slice(11, 16);
          expect(localStart(date, hm, zone)).toBe(oracleLocalStart(date, hm, zone));
        },
      ),
      { numRuns: 100 },
    );
  });
});

describe('zones that cannot be used', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tk-zoneinfo-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('names the missing file of an unknown zone', () => {
    expect(loadZone('Europe/Gothenburg')).toEqual(new Error('no /usr/share/zoneinfo/Europe/Gothenburg'));
  });

  it('refuses a name that would leave the zoneinfo folder, or is empty', () => {
    expect(loadZone('../etc/passwd')).toEqual(new Error('../etc/passwd: not a zone name'));
    expect(loadZone('/etc/passwd')).toEqual(new Error('/etc/passwd: not a zone name'));
    expect(loadZone('')).toEqual(new Error(': not a zone name'));
  });

  it('refuses a file that is not TZif, or is cut short, or has a bad footer rule', () => {
    const good = readFileSync('/usr/share/zoneinfo/Europe/Stockholm');
    writeFileSync(join(dir, 'Text'), 'Europe/Stockholm\n');
    writeFileSync(join(dir, 'Short'), good.subarray(0, 300));
    const footer = good.lastIndexOf(0x0a, good.length - 2);
    writeFileSync(
      join(dir, 'Rule'),
      Buffer.concat([good.subarray(0, footer + 1), Buffer.from('CET-1CEST,M13.5.0\n')]),
    );
    expect(loadZone('Text', dir)).toEqual(new Error(`${dir}/Text: not a TZif file`));
    expect(loadZone('Short', dir)).toEqual(new Error(`${dir}/Short: truncated TZif file`));
    expect(loadZone('Rule', dir)).toEqual(new Error(`${dir}/Rule: bad TZ rule "CET-1CEST,M13.5.0"`));
  });

  it('gives no offset for an invalid instant (not the first time type, local mean time)', () => {
    expect(zoneNamed('Europe/Stockholm').offsetMs(Number.NaN)).toBeNaN();
  });

  it('gives windows no instant in an unknown zone', () => {
    expect(localStart({ year: 2026, month: 3, day: 29 }, '22:00', 'Europe/Gothenburg')).toBeNaN();
  });
});

it('reads a version 1 file (32-bit times, no footer) as well', () => {
  const good = readFileSync('/usr/share/zoneinfo/Europe/Stockholm');
  const v1 = Buffer.from(good);
  v1[4] = 0; // version 1: only the first data block is read
  const zone = parseTzif('v1', v1);
  const atMs = Date.parse('2026-07-01T12:00:00Z');
  expect(zone.offsetMs(atMs)).toBe(oracleOffsetMs(atMs, 'Europe/Stockholm'));
});
