// Crash safety of writeFileAtomic: a child process rewrites one file as fast as it can and is
// SIGKILLed at pseudo-random moments; after every kill the file must hold a whole version, old or new,
// and never an older one than was already seen.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { random, useKillLoop, wholeLines } from '../support/kill-loop.js';

const writer = fileURLToPath(new URL('./fixtures/atomic-writer.ts', import.meta.url));
const lanes = 2;
const killsPerLane = 16;
const maxDelayMs = 100;

const loop = useKillLoop('tk-crash-');

/** Starts the writer, waits until it has written once, lets it run `delayMs`, then SIGKILLs it. */
async function writeThenKill(path: string, delayMs: number): Promise<NodeJS.Signals | null> {
  const { signal } = await loop.writeThenKill(writer, [path], {
    delayMs,
    ready: (soFar) => wholeLines(soFar).includes('ready'),
  });
  return signal;
}

interface Version {
  seq: number;
  count: number;
  items: string[];
}

describe('writeFileAtomic under SIGKILL', () => {
  it(`leaves a whole, parseable file after each of ${lanes * killsPerLane} kills at random moments`, async () => {
    const laneResults = await Promise.all(
      Array.from({ length: lanes }, async (_, lane) => {
        const path = join(loop.dir, `lane-${lane}.json`);
        const delay = random(0x5eed + lane);
        const seen: Array<{ signal: NodeJS.Signals | null; seq: number }> = [];
        let lastSeq = 0;
        for (let kill = 0; kill < killsPerLane; kill += 1) {
          const signal = await writeThenKill(path, Math.floor(delay() * maxDelayMs));
          const text = await readFile(path, 'utf8');
          const version = JSON.parse(text) as Version;
          // A whole version: its own length field matches, and every item belongs to it.
          expect(version.items).toHaveLength(version.count);
          expect(version.count).toBe(version.seq % 2000);
          expect(version.items.every((item) => item.startsWith(`item-${version.seq}-`))).toBe(true);
          // Never older than a version already seen on disk: completed writes survive the kill.
          expect(version.seq).toBeGreaterThanOrEqual(lastSeq);
          lastSeq = version.seq;
          seen.push({ signal, seq: version.seq });
        }
        return seen;
      }),
    );
    const all = laneResults.flat();
    expect(all).toHaveLength(lanes * killsPerLane);
    // Every child really died by the kill, not by finishing or crashing on its own.
    expect(all.every((result) => result.signal === 'SIGKILL')).toBe(true);
  }, 60_000);
});
