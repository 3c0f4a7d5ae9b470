// The outbox's file format: one JSON object per line, appended. A `put` line holds a record, an `ack`
// line says the central service acknowledged one. Whatever follows the last newline is a torn write
// from a crash (power cut or SIGKILL mid-append): it was never fsynced, so never acknowledged to the
// caller, and is dropped. A whole line that does not parse (bit rot) is skipped and counted.
import { z } from 'zod';
import { topicSpecs } from '../protocol/index.js';

const topicNames = Object.keys(topicSpecs) as [keyof typeof topicSpecs, ...Array<keyof typeof topicSpecs>];

export const RecordId = z.string().min(1).max(128);

export const PutLine = z
  .object({
    op: z.literal('put'),
    id: RecordId,
    name: z.enum(topicNames),
    payload: z.record(z.string(), z.unknown()),
  })
  .strict();
export type PutLine = z.infer<typeof PutLine>;

const AckLine = z.object({ op: z.literal('ack'), id: RecordId }).strict();
const Line = z.discriminatedUnion('op', [PutLine, AckLine]);

export interface ParsedLog {
  /** Records not acknowledged, in the order they were written. */
  pending: PutLine[];
  /** Bytes after the last newline, dropped. */
  tornBytes: number;
  /** Whole lines that could not be read. */
  corruptLines: number;
}

export function parseLog(text: string): ParsedLog {
  const end = text.lastIndexOf('\n') + 1;
  const tornBytes = Buffer.byteLength(text.slice(end));
  const pending = new Map<string, PutLine>();
  let corruptLines = 0;
  for (const line of text.slice(0, end).split('\n')) {
    if (line.length === 0) continue;
    let raw: unknown;
    try {
      raw = JSON.parse(line);
    } catch {
      corruptLines += 1;
      continue;
    }
    const parsed = Line.safeParse(raw);
    if (!parsed.success) {
      corruptLines += 1;
      continue;
    }
    if (parsed.data.op === 'put') {
      // A record is written once; a repeated id (cannot happen unless the file was edited) keeps the first.
      if (!pending.has(parsed.data.id)) pending.set(parsed.data.id, parsed.data);
    } else pending.delete(parsed.data.id);
  }
  return { pending: [...pending.values()], tornBytes, corruptLines };
}

export function putLine(record: PutLine): string {
  return `${JSON.stringify(record)}\n`;
}

export function ackLine(id: string): string {
  return `${JSON.stringify({ op: 'ack', id })}\n`;
}
