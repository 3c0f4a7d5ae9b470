// SIGKILL while writing: a child process enqueues outbox records and rewrites state files; after each
// kill at a pseudo-random moment, a restart finds every state file readable and every record whose
// enqueue had resolved still in the outbox, in order (a torn last line is dropped, never a whole one).
import { EventEmitter } from 'node:events';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../device/log/index.js';
import { Outbox } from '../../device/outbox/index.js';
import { Counters, PrivacyState, readJsonFile } from '../../device/state/index.js';
import { useKillLoop, wholeLines } from '../support/kill-loop.js';

const writer = fileURLToPath(new URL('./fixtures/outbox-writer.ts', import.meta.url));
const kills = 8;
const loop = useKillLoop('tk-outbox-crash-');

/** Runs the writer, SIGKILLs it `delayMs` after it is ready, returns the ids it reported durable. */
async function writeThenKill(delayMs: number): Promise<string[]> {
  const { stdout } = await loop.writeThenKill(writer, [loop.dir], {
    delayMs,
    ready: (soFar) => wholeLines(soFar).includes('ready'),
  });
  // A torn last line was not reported.
  return wholeLines(stdout)
    .filter((line) => line.startsWith('ack '))
    .map((line) => line.slice(4));
}

describe('outbox and state files under SIGKILL', () => {
  it(`keeps every acknowledged record and readable state files over ${kills} kills`, async () => {
    const { dir } = loop;
    const durable: string[] = [];
    let torn = 0;
    for (let kill = 0; kill < kills; kill += 1) {
      durable.push(...(await writeThenKill(30 + ((kill * 37) % 120))));
      expect((await readJsonFile(join(dir, 'counters.json'), Counters)).status).toMatch(/ok|missing/);
      expect((await readJsonFile(join(dir, 'privacy.json'), PrivacyState)).status).toMatch(/ok|missing/);
      const outbox = new Outbox({
        dir,
        log: silentLogger(),
        publish: async () => undefined,
        connection: Object.assign(new EventEmitter(), { connected: false }),
      });
      await outbox.start();
      const pending = outbox.pendingIds();
      expect(outbox.stats.corruptLines).toBe(0);
      if (outbox.stats.tornBytes > 0) torn += 1;
      // Every record reported durable is there, in the order it was written.
      const present = new Set(pending);
      expect(durable.filter((id) => !present.has(id))).toEqual([]);
      expect(pending.filter((id) => durable.includes(id))).toEqual(durable);
      await outbox.stop();
    }
    expect(durable.length).toBeGreaterThan(kills);
    console.log(
      `${durable.length} durable records kept over ${kills} kills; ${torn} restarts found a torn last line`,
    );
  });
});
