// The connection counter (like Sparkplug's bdSeq): persisted in the state directory and incremented
// before every connect attempt, so the will registered with an attempt and the `online` published on
// it carry the same number, and a late will of an older connection can be told from the current state,
// also across restarts of the device. Written atomically; an unreadable file restarts from the
// largest safe guess (0) and says so.
import { join } from 'node:path';
import { z } from 'zod';
import type { Logger } from '../log/index.js';
import { readJsonFile, writeFileAtomic } from '../state/index.js';

const Stored = z.object({ connection: z.number().int().nonnegative() }).strict();

export const connectionCounterFile = 'connection.json';

export interface ConnectionCounter {
  /** The number of the last attempt (0 before the first). */
  readonly value: number;
  /** Increments, persists and returns the new number. */
  next(): Promise<number>;
}

/** A counter that lives only in memory: for tests and the demo. */
export function memoryCounter(start = 0): ConnectionCounter {
  let value = start;
  return {
    get value() {
      return value;
    },
    next: async () => {
      value += 1;
      return value;
    },
  };
}

/** Loads the counter from `<dir>/connection.json`. */
export async function fileCounter(deps: { dir: string; log: Logger }): Promise<ConnectionCounter> {
  const path = join(deps.dir, connectionCounterFile);
  const read = await readJsonFile(path, Stored);
  if (read.status === 'corrupt')
    deps.log.warn({ detail: read.detail }, 'connection counter unreadable; restarting it');
  let value = read.status === 'ok' ? read.value.connection : 0;
  return {
    get value() {
      return value;
    },
    next: async () => {
      value += 1;
      try {
        await writeFileAtomic(path, `${JSON.stringify({ connection: value })}\n`);
      } catch (error) {
        // Still usable for this run: the number only has to differ from the previous connection's.
        deps.log.warn({ err: (error as Error).message }, 'cannot persist the connection counter');
      }
      return value;
    },
  };
}
