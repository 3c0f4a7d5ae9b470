// Helpers for the provisioning tests: the CLI in-process with captured streams, the CLI as a real
// process with piped answers, a central Ed25519 key, and signing a device CSR with the test PKI's CA.
import { execFile, spawn } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { promisify } from 'node:util';
import { type CliDeps, runCli } from '../../provisioning/index.js';
import type { Pki } from '../../scripts/devstack/pki.js';

const run = promisify(execFile);
const repo = join(import.meta.dirname, '../..');

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Captures everything written to a stream; `wait` resolves once the text contains a string. */
export class Capture extends PassThrough {
  text = '';
  readonly #waiters: Array<{ needle: string; resolve: () => void }> = [];

  constructor() {
    super();
    this.on('data', (chunk: Buffer) => {
      this.text += chunk.toString('utf8');
      for (const waiter of [...this.#waiters]) {
        if (this.text.includes(waiter.needle)) {
          this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
          waiter.resolve();
        }
      }
    });
  }

  wait(needle: string): Promise<void> {
    if (this.text.includes(needle)) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push({ needle, resolve }));
  }
}

/** Runs the CLI in this process; `answers` are lines fed to stdin. */
export async function cliInProcess(
  argv: string[],
  deps: CliDeps = {},
  options: {
    answers?: string[];
    onStdout?: (capture: Capture) => void;
    onStderr?: (capture: Capture) => void;
  } = {},
): Promise<CliRun> {
  const stdin = new PassThrough();
  const stdout = new Capture();
  const stderr = new Capture();
  options.onStdout?.(stdout);
  options.onStderr?.(stderr);
  stdin.end((options.answers ?? []).map((line) => `${line}\n`).join(''));
  const code = await runCli(argv, { stdin, stdout, stderr, terminal: false }, deps);
  return { code, stdout: stdout.text, stderr: stderr.text };
}

/** Runs the CLI as its own process (through tsx), with `input` piped to stdin. */
export function cliProcess(argv: string[], input: string, timeoutMs = 20_000): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(repo, 'provisioning/cli.ts'), ...argv], {
      cwd: repo,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString('utf8');
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString('utf8');
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`CLI did not finish in ${timeoutMs} ms:\n${stdout}\n${stderr}`));
    }, timeoutMs);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
    child.stdin.end(input);
  });
}

/** A central service public key (Ed25519, SPKI PEM) written to `dir`. */
export async function centralKeyFile(dir: string, name = 'central-1'): Promise<string> {
  const { publicKey } = generateKeyPairSync('ed25519');
  const file = join(dir, `${name}.pem`);
  await writeFile(file, publicKey.export({ type: 'spki', format: 'pem' }));
  return file;
}

/**
 * Signs a CSR with the test PKI's CA, as the central PKI would. scripts/devstack/pki.ts keeps the CA key
 * and its openssl config (with the client_ext section) in its directory.
 */
export async function signCsr(pki: Pki, csrFile: string, outFile: string): Promise<string> {
  await run('openssl', [
    'x509',
    '-req',
    '-in',
    csrFile,
    '-CA',
    pki.caCert,
    '-CAkey',
    join(pki.dir, 'ca.key'),
    '-set_serial',
    `0x${randomBytes(16).toString('hex')}`,
    '-days',
    '2',
    '-sha256',
    '-extfile',
    join(pki.dir, 'openssl.cnf'),
    '-extensions',
    'client_ext',
    '-out',
    outFile,
  ]);
  return outFile;
}
