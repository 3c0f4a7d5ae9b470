// Durability of the audit trail: a child process appends records as fast as it can and is SIGKILLed at
// pseudo-random moments; every record whose `record()` had resolved before the kill must be readable
// afterwards, and the lines torn by a kill must not hide the records written after a restart.
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { readAuditRecords } from '../../device/audit/index.js';
import { random, useKillLoop, wholeLines } from '../support/kill-loop.js';

const writer = fileURLToPath(new URL('./fixtures/audit-writer.ts', import.meta.url));
const kills = 8;

const loop = useKillLoop('tk-audit-crash-');

/** Runs the writer until it has acknowledged some records, a little longer, then SIGKILLs it. */
async function writeThenKill(delayMs: number): Promise<{ acked: string[]; signal: NodeJS.Signals | null }> {
  const { signal, stdout } = await loop.writeThenKill(writer, [loop.dir], {
    delayMs,
    ready: (soFar) => soFar.includes('\n'),
  });
  // Only whole lines were acknowledged; a partly received id is not.
  return { acked: wholeLines(stdout), signal };
}

describe('audit trail under SIGKILL', () => {
  it(`keeps every acknowledged record across ${kills} kills at random moments`, async () => {
    const delay = random(0xa0d17);
    const acked: string[] = [];
    for (let kill = 0; kill < kills; kill += 1) {
      const result = await writeThenKill(Math.floor(delay() * 150));
      expect(result.signal).toBe('SIGKILL');
      acked.push(...result.acked);
      const onDisk = new Set<string>();
      for await (const record of readAuditRecords(loop.dir)) onDisk.add(record.id);
      expect(acked.filter((id) => !onDisk.has(id))).toEqual([]);
    }
    expect(acked.length).toBeGreaterThan(kills);
    expect(new Set(acked).size).toBe(acked.length);
  }, 120_000);
});
