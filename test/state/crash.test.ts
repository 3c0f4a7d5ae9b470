// Crash safety of writeFileAtomic: a child process rewrites one file as fast as it can and is
// SIGKILLed at pseudo-random moments; after every kill the file must hold a whole version, old or new,
// and never an older one than was already seen.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const writer = fileURLToPath(new URL('./fixtures/atomic-writer.ts', import.meta.url));
const lanes = 2;
const killsPerLane = 16;
const maxDelayMs = 100;

/** A fixed-seed generator (mulberry32), so a failing run can be repeated with the same kill delays. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

const running = new Set<ChildProcess>();
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tk-crash-'));
});

afterAll(async () => {
  for (const child of running) child.kill('SIGKILL');
  await rm(dir, { recursive: true, force: true });
});

/** Starts the writer, waits until it has written once, lets it run `delayMs`, then SIGKILLs it. */
async function writeThenKill(path: string, delayMs: number): Promise<NodeJS.Signals | null> {
  const child = spawn(process.execPath, ['--import', 'tsx/esm', writer, path], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<NodeJS.Signals | null>((resolve) => {
    child.once('exit', (_code, signal) => {
      running.delete(child);
      resolve(signal);
    });
  });
  const ready = await new Promise<boolean>((resolve) => {
    child.stdout?.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('ready')) resolve(true);
    });
    void exited.then(() => resolve(false));
  });
  if (!ready) throw new Error(`writer exited before its first write: ${stderr}`);
  await new Promise((resolve) => setTimeout(resolve, delayMs));
  child.kill('SIGKILL');
  return exited;
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
        const path = join(dir, `lane-${lane}.json`);
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
