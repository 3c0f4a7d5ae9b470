// Test helper: a pino logger whose records the test can read back.
import { type Logger, pino } from 'pino';

export interface CapturedLog {
  log: Logger;
  records: () => Array<{ level: number; msg: string; [key: string]: unknown }>;
}

export function captureLog(): CapturedLog {
  const lines: string[] = [];
  const log = pino({ level: 'debug' }, { write: (line: string) => lines.push(line) });
  return { log, records: () => lines.map((line) => JSON.parse(line)) };
}

export const quietLog: Logger = pino({ level: 'silent' });
