// Running external programs (openssl, ffmpeg, v4l2-ctl, systemctl) without a shell: every argument
// is passed as one argv entry, so nothing a technician types can become a shell command. Never throws:
// a missing program or a timeout comes back as a result the caller turns into a remedy.
import { execFile } from 'node:child_process';

export interface RunResult {
  /** Exit code; null when the program could not be started or was killed. */
  code: number | null;
  stdout: string;
  stderr: string;
  /** Why it did not run to completion: `ENOENT` (not installed), `timeout`, or another error text. */
  failure?: string;
}

export interface RunOptions {
  timeoutMs?: number;
  /** Written to the program's stdin, which is then closed. */
  input?: string;
}

export type Runner = (file: string, args: readonly string[], options?: RunOptions) => Promise<RunResult>;

const defaultTimeoutMs = 30_000;

export const runFile: Runner = (file, args, options = {}) =>
  new Promise((resolve) => {
    const child = execFile(
      file,
      [...args],
      {
        timeout: options.timeoutMs ?? defaultTimeoutMs,
        killSignal: 'SIGKILL',
        maxBuffer: 16 * 1024 * 1024,
        encoding: 'utf8',
      },
      (error, stdout, stderr) => {
        if (!error) {
          resolve({ code: 0, stdout, stderr });
          return;
        }
        const errno = error as NodeJS.ErrnoException & { killed?: boolean; code?: unknown };
        if (errno.code === 'ENOENT') {
          resolve({ code: null, stdout, stderr, failure: 'ENOENT' });
        } else if (errno.killed) {
          resolve({ code: null, stdout, stderr, failure: 'timeout' });
        } else if (typeof errno.code === 'number') {
          resolve({ code: errno.code, stdout, stderr });
        } else {
          resolve({ code: null, stdout, stderr, failure: error.message });
        }
      },
    );
    // A program that exits before reading its input makes the pipe fail with EPIPE; its result says why.
    child.stdin?.on('error', () => undefined);
    if (options.input !== undefined) child.stdin?.end(options.input);
    else child.stdin?.end();
  });

/** The last non-empty lines of a program's error output, for a failure message. */
export function lastLines(text: string, count = 3): string {
  return text
    .split('\n')
    .map((line) => line.trim())
    .filter(Boolean)
    .slice(-count)
    .join(' | ');
}
