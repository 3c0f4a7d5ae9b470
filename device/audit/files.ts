// The audit trail's files: one JSON-lines file per UTC day of writing, `audit-YYYY-MM-DD.jsonl`, and
// the reader shared by the trail (re-handing records to the outbox after a restart) and the
// resident's `audit` command. A line cut short by a power cut is skipped and counted, never fatal.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { AuditRecord } from '../protocol/index.js';

export const dayMs = 86_400_000;
const filePattern = /^audit-(\d{4}-\d{2}-\d{2})\.jsonl$/;

/** The file name for records written at `atMs` (UTC date). */
export function auditFileName(atMs: number): string {
  return `audit-${new Date(atMs).toISOString().slice(0, 10)}.jsonl`;
}

/** Start of the UTC day a file name stands for, or undefined for other files. */
export function fileDayMs(name: string): number | undefined {
  const date = filePattern.exec(name)?.[1];
  if (!date) return undefined;
  const ms = Date.parse(`${date}T00:00:00.000Z`);
  return Number.isNaN(ms) ? undefined : ms;
}

/** The audit files in `dir`, oldest first; none when the folder does not exist. */
export async function listAuditFiles(dir: string): Promise<Array<{ name: string; dayMs: number }>> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  return names
    .flatMap((name) => {
      const day = fileDayMs(name);
      return day === undefined ? [] : [{ name, dayMs: day }];
    })
    .sort((a, b) => a.dayMs - b.dayMs);
}

export type ParsedLine =
  | { ok: true; record: AuditRecord; endOffset: number }
  | { ok: false; endOffset: number };

/** Each line of a file from byte `fromOffset`, parsed; `endOffset` is just past the line's newline. */
export async function readLines(path: string, fromOffset = 0): Promise<ParsedLine[]> {
  let data: Buffer;
  try {
    data = await readFile(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  const lines: ParsedLine[] = [];
  let start = fromOffset;
  while (start < data.length) {
    const newline = data.indexOf(0x0a, start);
    const end = newline === -1 ? data.length : newline + 1;
    const text = data.subarray(start, newline === -1 ? data.length : newline).toString('utf8');
    start = end;
    if (text.trim() === '') continue;
    lines.push(parseLine(text, end));
  }
  return lines;
}

function parseLine(text: string, endOffset: number): ParsedLine {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return { ok: false, endOffset };
  }
  const parsed = AuditRecord.safeParse(raw);
  return parsed.success ? { ok: true, record: parsed.data, endOffset } : { ok: false, endOffset };
}

export interface AuditRange {
  /** Records at or after this instant. */
  from?: Date | number;
  /** Records before this instant. */
  to?: Date | number;
}

/** The records of a folder, oldest file first; `skipped` counts lines that did not parse. */
export interface AuditRecords extends AsyncIterable<AuditRecord> {
  readonly skipped: number;
}

/**
 * Reads the audit records in `dir` whose `at` is in [from, to). Unparsable lines (a line torn by a
 * power cut, a damaged disk block) are skipped and counted in `skipped`.
 */
export function readAuditRecords(dir: string, range: AuditRange = {}): AuditRecords {
  const fromMs = range.from === undefined ? -Infinity : Number(range.from);
  const toMs = range.to === undefined ? Infinity : Number(range.to);
  const state = { skipped: 0 };
  async function* iterate(): AsyncGenerator<AuditRecord> {
    for (const file of await listAuditFiles(dir)) {
      // A file holds the records written on its day; `at` may lie a little before (a late session end).
      if (file.dayMs + dayMs < fromMs - dayMs || file.dayMs - dayMs >= toMs) continue;
      for (const line of await readLines(join(dir, file.name))) {
        if (!line.ok) {
          state.skipped += 1;
          continue;
        }
        const atMs = Date.parse(line.record.at);
        if (atMs >= fromMs && atMs < toMs) yield line.record;
      }
    }
  }
  return {
    get skipped() {
      return state.skipped;
    },
    [Symbol.asyncIterator]: () => iterate(),
  };
}
