// Durability of the audit trail: a child process appends records as fast as it can and is SIGKILLed at
// pseudo-random moments; every record whose `record()` had resolved before the kill must be readable
// afterwards, and the lines torn by a kill must not hide the records written after a restart.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readAuditRecords } from '../../device/audit/index.js';

const writer = fileURLToPath(new URL('./fixtures/audit-writer.ts', import.meta.url));
const kills = 8;

/** A fixed-seed generator (mulberry32), so a failing run repeats with the same kill delays. */
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
  dir = await mkdtemp(join(tmpdir(), 'tk-audit-crash-'));
});

afterAll(async () => {
  for (const child of running) child.kill('SIGKILL');
  await rm(dir, { recursive: true, force: true });
});

/** Runs the writer until it has acknowledged some records, a little longer, then SIGKILLs it. */
async function writeThenKill(delayMs: number): Promise<{ acked: string[]; signal: NodeJS.Signals | null }> {
  const child = spawn(process.execPath, ['--import', 'tsx/esm', writer, dir], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  let stdout = '';
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
      stdout += chunk.toString();
      if (stdout.includes('\n')) resolve(true);
    });
    void exited.then(() => resolve(false));
  });
  if (!ready) throw new Error(`writer exited before its first record: ${stderr}`);
  await new Promise((resolve) => setTimeout(resolve, delayMs));
  child.kill('SIGKILL');
  const signal = await exited;
  // Only whole lines were acknowledged; a partly received id is not.
  const acked = stdout.split('\n').slice(0, -1);
  return { acked, signal };
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
      for await (const record of readAuditRecords(dir)) onDisk.add(record.id);
      expect(acked.filter((id) => !onDisk.has(id))).toEqual([]);
    }
    expect(acked.length).toBeGreaterThan(kills);
    expect(new Set(acked).size).toBe(acked.length);
  }, 120_000);
});
