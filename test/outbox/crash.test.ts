// SIGKILL while writing: a child process enqueues outbox records and rewrites state files; after each
// kill at a pseudo-random moment, a restart finds every state file readable and every record whose
// enqueue had resolved still in the outbox, in order (a torn last line is dropped, never a whole one).
import { type ChildProcess, spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../device/log/index.js';
import { Outbox } from '../../device/outbox/index.js';
import { Counters, PrivacyState, readJsonFile } from '../../device/state/index.js';

const writer = fileURLToPath(new URL('./fixtures/outbox-writer.ts', import.meta.url));
const kills = 8;
const running = new Set<ChildProcess>();
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tk-outbox-crash-'));
});

afterAll(async () => {
  for (const child of running) child.kill('SIGKILL');
  await rm(dir, { recursive: true, force: true });
});

/** Runs the writer, SIGKILLs it `delayMs` after it is ready, returns the ids it reported durable. */
async function writeThenKill(delayMs: number): Promise<string[]> {
  const child = spawn(process.execPath, ['--import', 'tsx/esm', writer, dir], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  const acked: string[] = [];
  let buffered = '';
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const ready = new Promise<boolean>((resolve) => {
    child.stdout?.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const line of lines) {
        if (line === 'ready') resolve(true);
        else if (line.startsWith('ack ')) acked.push(line.slice(4));
      }
    });
    void exited.then(() => resolve(false));
  });
  if (!(await ready)) throw new Error(`writer exited early: ${stderr}`);
  await new Promise((resolve) => setTimeout(resolve, delayMs));
  child.kill('SIGKILL');
  await exited;
  running.delete(child);
  return acked;
}

describe('outbox and state files under SIGKILL', () => {
  it(`keeps every acknowledged record and readable state files over ${kills} kills`, async () => {
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
