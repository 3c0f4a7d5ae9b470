// Crash tests: run a writer fixture in a child process, SIGKILL it at a pseudo-random moment, and check
// what it left on disk. One temporary directory per test file; no child outlives the file's tests.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';

/** A fixed-seed generator (mulberry32), so a failing run repeats with the same kill delays. */
export function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** The whole lines of `text`; a line still being written when the child died is not one. */
export function wholeLines(text: string): string[] {
  return text.split('\n').slice(0, -1);
}

export interface KilledRun {
  /** The signal the child died of; `SIGKILL` unless it finished or crashed on its own first. */
  signal: NodeJS.Signals | null;
  /** Everything the child wrote to stdout before it died. */
  stdout: string;
}

export interface KillLoop {
  /** A temporary directory made before the file's tests and removed after them. */
  readonly dir: string;
  /**
   * Runs `script` (TypeScript, through tsx) with `args` until `ready(stdout so far)`, lets it run
   * `delayMs` more, then SIGKILLs it. Throws if the child exits before it is ready.
   */
  writeThenKill(
    script: string,
    args: string[],
    options: { delayMs: number; ready: (stdout: string) => boolean },
  ): Promise<KilledRun>;
}

/** Registers the file's `beforeAll`/`afterAll`: a temporary directory named `prefix…`, and the children. */
export function useKillLoop(prefix: string): KillLoop {
  const running = new Set<ChildProcess>();
  let dir: string | undefined;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), prefix));
  });

  afterAll(async () => {
    for (const child of running) child.kill('SIGKILL');
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  return {
    get dir(): string {
      if (!dir) throw new Error('the kill-loop directory exists only while the tests run');
      return dir;
    },

    async writeThenKill(script, args, { delayMs, ready }) {
      const child = spawn(process.execPath, ['--import', 'tsx/esm', script, ...args], {
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
      const isReady = await new Promise<boolean>((resolve) => {
        child.stdout?.on('data', (chunk: Buffer) => {
          stdout += chunk.toString();
          if (ready(stdout)) resolve(true);
        });
        void exited.then(() => resolve(false));
      });
      if (!isReady) throw new Error(`${script} exited before it was ready: ${stderr}`);
      await new Promise((resolve) => setTimeout(resolve, delayMs));
      child.kill('SIGKILL');
      const signal = await exited;
      return { signal, stdout };
    },
  };
}
