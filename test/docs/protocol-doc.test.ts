// Keeps docs/protocol.md and docs/schemas/ honest: examples parse with the real schemas, every reason
// and topic is documented as the code defines it, and the generated JSON Schemas are up to date.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import * as protocol from '../../device/protocol/index.js';
import { ScheduleClaims, topicSpecs } from '../../device/protocol/index.js';
import {
  endReasons,
  refusalReasons,
  refusalText,
  scheduleRejections,
} from '../../device/protocol/reasons.js';
import { nextWindowAfter } from '../../device/schedule/index.js';
import { checkSchemas, generateSchemas, protocolSchemas } from '../../scripts/gen-schemas.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const docPath = join(repoRoot, 'docs/protocol.md');
const doc = readFileSync(docPath, 'utf8');

/** Every schema an example may name: the zod schemas exported by device/protocol. */
const schemas: ReadonlyMap<string, z.ZodType> = protocolSchemas();

/** Examples the doc must contain: every message and both token claim sets. */
const requiredExamples = [
  'GrantClaims',
  'ScheduleClaims',
  'ScheduleMessage',
  'ViewInbound',
  'ViewDecision',
  'ViewEnded',
  'SignalOffer',
  'SignalCandidate',
  'DeviceEvent',
  'StatusMessage',
  'UpdateClaims',
  'UpdateMessage',
];

interface Example {
  schema: string;
  json: string;
  line: number;
}

function lineOf(offset: number): number {
  return doc.slice(0, offset).split('\n').length;
}

function taggedExamples(): Example[] {
  const pattern = /<!--\s*example:\s*(\S+?)\s*-->\s*\n```json\n([\s\S]*?)\n```/g;
  return [...doc.matchAll(pattern)].map((match) => ({
    schema: match[1] ?? '',
    json: match[2] ?? '',
    line: lineOf(match.index),
  }));
}

/** The section of the doc from a heading (exact line) to the next heading of the same or higher level. */
function section(heading: string): string {
  const lines = doc.split('\n');
  const start = lines.indexOf(heading);
  if (start === -1) throw new Error(`docs/protocol.md has no heading "${heading}"`);
  const level = heading.indexOf(' ');
  const next = new RegExp(`^#{1,${level}} `);
  const end = lines.findIndex((line, index) => index > start && next.test(line));
  return lines.slice(start, end === -1 ? undefined : end).join('\n');
}

/** Data rows of the markdown tables in a piece of text, as trimmed cells. */
function tableRows(text: string): string[][] {
  return text
    .split('\n')
    .filter((line) => line.startsWith('|') && !/^\|\s*-/.test(line))
    .map((line) =>
      line
        .slice(1, line.trimEnd().endsWith('|') ? line.trimEnd().length - 1 : undefined)
        .split('|')
        .map((cell) => cell.trim()),
    );
}

/** Rows whose cell at `column` is a single `code` span, keyed by that code. */
function rowsByCode(text: string, column: number): Array<{ code: string; cells: string[] }> {
  return tableRows(text).flatMap((cells) => {
    const match = /^`([^`]+)`$/.exec(cells[column] ?? '');
    return match?.[1] ? [{ code: match[1], cells }] : [];
  });
}

describe('docs/protocol.md examples', () => {
  const examples = taggedExamples();

  it('tags every json code block with the schema it shows', () => {
    const jsonBlocks = doc.match(/^```json$/gm) ?? [];
    expect(examples.length).toBe(jsonBlocks.length);
  });

  it('names only schemas that device/protocol exports', () => {
    const unknown = examples.filter((example) => !schemas.has(example.schema));
    expect(unknown.map((example) => `line ${example.line}: ${example.schema}`)).toEqual([]);
  });

  it('shows every message and both token claim sets', () => {
    const shown = new Set(examples.map((example) => example.schema));
    expect(requiredExamples.filter((name) => !shown.has(name))).toEqual([]);
  });

  it('shows every variant of the discriminated unions', () => {
    const typesOf = (name: string) =>
      new Set(
        examples
          .filter((example) => example.schema === name)
          .map((example) => JSON.parse(example.json).type as string),
      );
    expect([...typesOf('ViewInbound')].sort()).toEqual(['answer', 'candidate', 'hangup', 'request']);
    expect([...typesOf('DeviceEvent')].sort()).toEqual([
      'decommissioned',
      'fault',
      'privacy',
      'schedule',
      'update-committed',
      'update-downloaded',
      'update-failed',
      'update-installing',
      'update-refused',
      'update-waiting',
    ]);
  });

  for (const example of examples) {
    it(`validates the ${example.schema} example at line ${example.line}`, () => {
      const schema = schemas.get(example.schema);
      if (!schema) throw new Error(`unknown schema ${example.schema}`);
      const result = schema.safeParse(JSON.parse(example.json));
      expect(result.success ? [] : result.error.issues).toEqual([]);
    });
  }
});

describe('docs/protocol.md reasons', () => {
  it('lists every refusal reason in check order with its sentence from reasons.ts', () => {
    const rows = rowsByCode(section('### Refusal reasons'), 1);
    expect(rows.map((row) => row.code)).toEqual([...refusalReasons]);
    for (const { code, cells } of rows) {
      expect(cells[2], code).toBe(refusalText[code as keyof typeof refusalText]);
    }
  });

  it('lists every end reason', () => {
    const rows = rowsByCode(section('### End reasons'), 0);
    expect(rows.map((row) => row.code)).toEqual([...endReasons]);
  });

  it('lists every schedule rejection', () => {
    const rows = rowsByCode(section('### Schedule rejections'), 0);
    expect(rows.map((row) => row.code)).toEqual([...scheduleRejections]);
  });

  it('says what to do for every reason', () => {
    for (const heading of ['### Refusal reasons', '### End reasons', '### Schedule rejections']) {
      for (const { code, cells } of rowsByCode(section(heading), heading === '### Refusal reasons' ? 1 : 0)) {
        expect(cells.at(-1), `${heading}: ${code}`).toMatch(/\w/);
      }
    }
  });
});

describe('docs/protocol.md daylight-saving examples', () => {
  // The table in "Daylight-saving rules", as UTC instants: [label, window, opens at, closes at].
  const cases: Array<
    [string, { days?: ['sat']; date?: string; start: string; durationMin: number }, string, string]
  > = [
    [
      '2026-03-29 02:30 (gap)',
      { date: '2026-03-29', start: '02:30', durationMin: 60 },
      '2026-03-29T01:00:00Z',
      '2026-03-29T02:00:00Z',
    ],
    [
      '2026-10-25 02:30 (twice)',
      { date: '2026-10-25', start: '02:30', durationMin: 60 },
      '2026-10-25T00:30:00Z',
      '2026-10-25T01:30:00Z',
    ],
    [
      '2026-03-28 22:00 for 540',
      { days: ['sat'], start: '22:00', durationMin: 540 },
      '2026-03-28T21:00:00Z',
      '2026-03-29T06:00:00Z',
    ],
    [
      '2026-10-24 22:00 for 540',
      { days: ['sat'], start: '22:00', durationMin: 540 },
      '2026-10-24T20:00:00Z',
      '2026-10-25T05:00:00Z',
    ],
    [
      '2026-03-29 01:30 (into the gap)',
      { date: '2026-03-29', start: '01:30', durationMin: 60 },
      '2026-03-29T00:30:00Z',
      '2026-03-29T01:30:00Z',
    ],
  ];
  for (const [label, window, startIso, endIso] of cases) {
    it(`opens the ${label} window as the doc says`, () => {
      const schedule = ScheduleClaims.parse({
        aud: 'kam-0042',
        version: 1,
        nbf: Date.UTC(2026, 0, 1) / 1000,
        exp: Date.UTC(2027, 0, 1) / 1000,
        windows: window.days ? [window] : [],
        oneOff: window.date ? [window] : [],
      });
      const found = nextWindowAfter(Date.parse(startIso) - 86_400_000, schedule, 'Europe/Stockholm');
      expect(found && [new Date(found.startMs).toISOString(), new Date(found.endMs).toISOString()]).toEqual([
        new Date(startIso).toISOString(),
        new Date(endIso).toISOString(),
      ]);
    });
  }
});

describe('docs/protocol.md topic table', () => {
  const rows = rowsByCode(section('## 2. Topic tree'), 0).filter((row) => row.code.startsWith('tk/'));

  it('has one row per topic in topics.ts and no others', () => {
    const documented = rows.map((row) => row.code).sort();
    const defined = Object.values(topicSpecs)
      .map((spec) => `tk/<deviceId>/${spec.suffix}`)
      .sort();
    expect(documented).toEqual(defined);
  });

  for (const [name, spec] of Object.entries(topicSpecs)) {
    it(`documents ${name} with the direction, QoS, retain flag and purpose of topics.ts`, () => {
      const row = rows.find((candidate) => candidate.code === `tk/<deviceId>/${spec.suffix}`);
      if (!row) throw new Error(`no row for ${spec.suffix}`);
      const [, direction, qos, retain, , purpose] = row.cells;
      expect(direction?.replace(/\s+/g, '')).toBe(spec.direction);
      expect(qos).toBe(String(spec.qos));
      expect(retain).toBe(spec.retain ? 'yes' : 'no');
      expect(purpose).toBe(spec.purpose);
    });
  }

  it('links only schema files that the generator produces', () => {
    const generated = generateSchemas();
    const links = [...doc.matchAll(/\]\((schemas\/[^)]+)\)/g)].map((match) => `docs/${match[1]}`);
    expect(links.length).toBeGreaterThan(0);
    expect(links.filter((link) => !generated.has(link) || !existsSync(join(repoRoot, link)))).toEqual([]);
  });
});

describe('docs/schemas', () => {
  it('are up to date with the zod schemas (run: npx tsx scripts/gen-schemas.ts)', () => {
    expect(checkSchemas()).toEqual([]);
  });

  it('has a file for every schema exported by device/protocol', () => {
    const exported = Object.entries(protocol)
      .filter(([, value]) => value instanceof z.ZodType)
      .map(([name]) => `docs/schemas/${name}.schema.json`)
      .sort();
    expect([...generateSchemas().keys()].sort()).toEqual(exported);
  });

  it('generates the same output twice, ending with a newline', () => {
    const first = generateSchemas();
    const second = generateSchemas();
    expect([...second]).toEqual([...first]);
    for (const content of first.values()) expect(content.endsWith('}\n')).toBe(true);
  });
});
