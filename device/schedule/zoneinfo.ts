// Time zones from the system's compiled tz database (/usr/share/zoneinfo, Debian's tzdata), read
// without ICU: the first Intl.DateTimeFormat with a time zone costs the service ~7 MiB of resident ICU
// zone data, more than the rest of its idle growth. A TZif file (RFC 8536) lists the zone's UTC offset
// changes up to some year; its footer, a POSIX TZ rule such as `CET-1CEST,M3.5.0,M10.5.0/3`, gives
// those after the last one. Leap seconds are ignored (as Date and ICU do). Zones are read once and kept.
import { readFileSync } from 'node:fs';

export interface Zone {
  name: string;
  /** Local time minus UTC at the instant `atMs`, in milliseconds. */
  offsetMs(atMs: number): number;
}

/** A rule for the years after a zone's last listed change, from the TZif footer. */
interface PosixRule {
  stdOffsetS: number;
  dst?: { offsetS: number; start: RuleDate; end: RuleDate };
}

/** A day of the year and a local time (seconds after its midnight, may be negative or past 24 h). */
type RuleDate =
  | { kind: 'julian'; day: number; timeS: number } // Jn: 1..365, February 29 never counted
  | { kind: 'ordinal'; day: number; timeS: number } // n: 0..365, February 29 counted
  | { kind: 'month'; month: number; week: number; weekday: number; timeS: number }; // Mm.w.d

export const zoneinfoDir = '/usr/share/zoneinfo';

// Area/Location names as in the tz database, which also keeps the path inside the zoneinfo folder.
const zoneName = /^[A-Za-z0-9_+-]+(\/[A-Za-z0-9_+-]+)*$/;
const loaded = new Map<string, Zone | Error>();

/** The zone named `name` (e.g. `Europe/Stockholm`), or why it cannot be used. */
export function loadZone(name: string, dir = zoneinfoDir): Zone | Error {
  const key = `${dir}\0${name}`;
  let zone = loaded.get(key);
  if (zone === undefined) {
    zone = readZone(name, dir);
    loaded.set(key, zone);
  }
  return zone;
}

/**
 * The wall clock in `zone` at `atMs`, as a Date whose UTC fields are the local ones (getUTCHours() is
 * the local hour).
 */
export function wallClock(atMs: number, zone: Zone): Date {
  return new Date(atMs + zone.offsetMs(atMs));
}

function readZone(name: string, dir: string): Zone | Error {
  if (!zoneName.test(name) || name.split('/').includes('..')) return new Error(`${name}: not a zone name`);
  let bytes: Buffer;
  try {
    bytes = readFileSync(`${dir}/${name}`);
  } catch {
    return new Error(`no ${dir}/${name}`);
  }
  try {
    return parseTzif(name, bytes);
  } catch (error) {
    return new Error(`${dir}/${name}: ${(error as Error).message}`);
  }
}

/** Parses a TZif file: the 64-bit data of version 2 and later (else version 1's) and the footer. */
export function parseTzif(name: string, bytes: Buffer): Zone {
  const header = (at: number) => {
    if (bytes.length < at + 44) throw new Error(at === 0 ? 'not a TZif file' : 'truncated TZif file');
    if (bytes.toString('latin1', at, at + 4) !== 'TZif') throw new Error('not a TZif file');
    const count = (index: number) => bytes.readUInt32BE(at + 20 + 4 * index);
    return {
      version: bytes[at + 4] ?? 0,
      isUtCount: count(0),
      isStdCount: count(1),
      leapCount: count(2),
      timeCount: count(3),
      typeCount: count(4),
      charCount: count(5),
    };
  };
  const blockLength = (h: ReturnType<typeof header>, timeSize: number) =>
    h.timeCount * timeSize +
    h.timeCount +
    h.typeCount * 6 +
    h.charCount +
    h.leapCount * (timeSize + 4) +
    h.isStdCount +
    h.isUtCount;

  const first = header(0);
  let h = first;
  let at = 44;
  let timeSize = 4;
  if (first.version !== 0) {
    at = 44 + blockLength(first, 4);
    h = header(at);
    at += 44;
    timeSize = 8;
  }
  if (h.typeCount === 0 || bytes.length < at + blockLength(h, timeSize)) {
    throw new Error('truncated TZif file');
  }
  const transitionsS: number[] = [];
  for (let i = 0; i < h.timeCount; i++) {
    const offset = at + i * timeSize;
    transitionsS.push(timeSize === 8 ? Number(bytes.readBigInt64BE(offset)) : bytes.readInt32BE(offset));
  }
  at += h.timeCount * timeSize;
  const typeOfTransition = [...bytes.subarray(at, at + h.timeCount)];
  at += h.timeCount;
  const typeOffsetsS: number[] = [];
  for (let i = 0; i < h.typeCount; i++) typeOffsetsS.push(bytes.readInt32BE(at + i * 6));
  at += blockLength(h, timeSize) - h.timeCount * (timeSize + 1);
  if (typeOfTransition.some((type) => type >= h.typeCount)) throw new Error('bad time type index');

  let rule: PosixRule | undefined;
  if (first.version !== 0 && bytes[at] === 0x0a) {
    const end = bytes.indexOf(0x0a, at + 1);
    if (end < 0) throw new Error('footer without its closing newline');
    const footer = bytes.toString('latin1', at + 1, end);
    if (footer !== '') rule = parsePosixRule(footer);
  }
  const lastS = transitionsS.at(-1);
  const offsetS = (atS: number): number => {
    if (rule && (lastS === undefined || atS >= lastS)) return ruleOffsetS(rule, atS);
    let low = 0;
    let high = transitionsS.length; // the first transition after atS
    while (low < high) {
      const middle = (low + high) >> 1;
      if ((transitionsS[middle] ?? 0) <= atS) low = middle + 1;
      else high = middle;
    }
    // Before the first change: the first time type (RFC 8536 section 3.2).
    const type = low === 0 ? 0 : (typeOfTransition[low - 1] ?? 0);
    return typeOffsetsS[type] ?? 0;
  };
  return {
    name,
    offsetMs: (atMs) => (Number.isFinite(atMs) ? offsetS(Math.floor(atMs / 1000)) * 1000 : Number.NaN),
  };
}

/** Parses a POSIX TZ rule as in a TZif footer (RFC 8536 section 3.3: hours may reach 167). */
export function parsePosixRule(text: string): PosixRule {
  let at = 0;
  const fail = (): never => {
    throw new Error(`bad TZ rule ${JSON.stringify(text)}`);
  };
  const abbreviation = () => {
    const match = /^(<[A-Za-z0-9+-]+>|[A-Za-z]{3,})/.exec(text.slice(at)) ?? fail();
    at += match[0].length;
  };
  const time = (): number => {
    const match = /^([+-]?)(\d{1,3})(?::(\d{2}))?(?::(\d{2}))?/.exec(text.slice(at)) ?? fail();
    at += match[0].length;
    const seconds = Number(match[2]) * 3600 + Number(match[3] ?? 0) * 60 + Number(match[4] ?? 0);
    return match[1] === '-' ? -seconds : seconds;
  };
  const date = (): RuleDate => {
    const rest = text.slice(at);
    let parsed: RuleDate;
    const month = /^M(\d{1,2})\.(\d)\.(\d)/.exec(rest);
    const julian = /^J(\d{1,3})/.exec(rest);
    const ordinal = /^(\d{1,3})/.exec(rest);
    if (month) {
      parsed = {
        kind: 'month',
        month: Number(month[1]),
        week: Number(month[2]),
        weekday: Number(month[3]),
        timeS: 7200,
      };
      if (parsed.month < 1 || parsed.month > 12 || parsed.week < 1 || parsed.week > 5 || parsed.weekday > 6)
        fail();
      at += month[0].length;
    } else if (julian) {
      parsed = { kind: 'julian', day: Number(julian[1]), timeS: 7200 };
      if (parsed.day < 1 || parsed.day > 365) fail();
      at += julian[0].length;
    } else if (ordinal) {
      parsed = { kind: 'ordinal', day: Number(ordinal[1]), timeS: 7200 };
      if (parsed.day > 365) fail();
      at += ordinal[0].length;
    } else {
      return fail();
    }
    if (text[at] === '/') {
      at += 1;
      parsed.timeS = time();
    }
    return parsed;
  };

  abbreviation();
  // POSIX offsets are west of Greenwich: `CET-1` is one hour ahead of UTC.
  const east = (westS: number) => (westS === 0 ? 0 : -westS);
  const stdOffsetS = east(time());
  if (at === text.length) return { stdOffsetS };
  abbreviation();
  let dstOffsetS = stdOffsetS + 3600;
  if (text[at] !== ',') dstOffsetS = east(time());
  // Every TZif footer with daylight saving time says when it starts and ends.
  if (text[at] !== ',') fail();
  at += 1;
  const start = date();
  if (text[at] !== ',') fail();
  at += 1;
  const end = date();
  if (at !== text.length) fail();
  return { stdOffsetS, dst: { offsetS: dstOffsetS, start, end } };
}

const dayS = 86_400;

function isLeapYear(year: number): boolean {
  return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
}

/** Seconds from 1970-01-01 to the local midnight starting the rule's day in `year`, plus its time. */
function ruleLocalS(date: RuleDate, year: number): number {
  const yearStartS = Date.UTC(year, 0, 1) / 1000;
  switch (date.kind) {
    case 'julian': {
      const leapDay = isLeapYear(year) && date.day >= 60 ? 1 : 0;
      return yearStartS + (date.day - 1 + leapDay) * dayS + date.timeS;
    }
    case 'ordinal':
      return yearStartS + date.day * dayS + date.timeS;
    case 'month': {
      const firstWeekday = new Date(Date.UTC(year, date.month - 1, 1)).getUTCDay();
      const daysInMonth = new Date(Date.UTC(year, date.month, 0)).getUTCDate();
      let day = 1 + ((date.weekday - firstWeekday + 7) % 7) + (date.week - 1) * 7;
      while (day > daysInMonth) day -= 7;
      return Date.UTC(year, date.month - 1, day) / 1000 + date.timeS;
    }
  }
}

function ruleOffsetS(rule: PosixRule, atS: number): number {
  const { dst } = rule;
  if (!dst) return rule.stdOffsetS;
  const year = new Date((atS + rule.stdOffsetS) * 1000).getUTCFullYear();
  // The start is given in standard time, the end in daylight saving time.
  const startS = ruleLocalS(dst.start, year) - rule.stdOffsetS;
  const endS = ruleLocalS(dst.end, year) - dst.offsetS;
  const inDst = startS < endS ? atS >= startS && atS < endS : !(atS >= endS && atS < startS);
  return inDst ? dst.offsetS : rule.stdOffsetS;
}
