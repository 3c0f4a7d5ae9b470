// A throwaway PostgreSQL server for tests: initdb in a temp dir, `postgres` on a random loopback port,
// trust authentication, fsync off, removed on stop. As root it runs as the `postgres` user (setpriv),
// and with --pdeathsig so it dies with the test process. Without the server binaries it throws, loudly:
// install the Debian package `postgresql` (scripts/test does).
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { promisify } from 'node:util';
import pg from 'pg';

const run = promisify(execFile);
const setprivPath = '/usr/bin/setpriv';

export interface Postgres {
  /** postgres://fleet@127.0.0.1:<port>/<database> of a fresh database. */
  createDatabase(name: string): Promise<string>;
  stop(): Promise<void>;
}

function binDir(): string {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root)
    ? readdirSync(root)
        .filter((name) => existsSync(join(root, name, 'bin', 'initdb')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  if (versions.length === 0) {
    throw new Error(
      'PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin: install the Debian package `postgresql` (scripts/test installs it)',
    );
  }
  return join(root, versions[0]!, 'bin');
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

async function asServerUser(): Promise<{ prefix: string[]; uid: number; gid: number } | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const [{ stdout: uid }, { stdout: gid }] = await Promise.all([
    run('id', ['-u', 'postgres']),
    run('id', ['-g', 'postgres']),
  ]);
  return {
    prefix: [
      setprivPath,
      '--reuid',
      'postgres',
      '--regid',
      'postgres',
      '--init-groups',
      '--pdeathsig',
      'KILL',
    ],
    uid: Number(uid.trim()),
    gid: Number(gid.trim()),
  };
}

export async function startPostgres(): Promise<Postgres> {
  const bin = binDir();
  const dir = mkdtempSync(join(tmpdir(), 'tk-postgres-'));
  const data = join(dir, 'data');
  const user = await asServerUser();
  if (user) chownSync(dir, user.uid, user.gid);
  const command = (program: string, args: string[]): [string, string[]] =>
    user
      ? [user.prefix[0]!, [...user.prefix.slice(1), join(bin, program), ...args]]
      : [join(bin, program), args];
  const [initCommand, initArgs] = command('initdb', [
    '-D',
    data,
    '-U',
    'fleet',
    '-A',
    'trust',
    '-E',
    'UTF8',
    '--no-sync',
    '--no-instructions',
  ]);
  await run(initCommand, initArgs);
  let child: ChildProcess | undefined;
  let port = 0;
  let log = '';
  for (let attempt = 1; attempt <= 5 && child === undefined; attempt += 1) {
    port = await freePort();
    const [serverCommand, serverArgs] = command('postgres', [
      '-D',
      data,
      '-p',
      String(port),
      '-k',
      dir,
      '-c',
      'listen_addresses=127.0.0.1',
      '-c',
      'fsync=off',
      '-c',
      'synchronous_commit=off',
      '-c',
      'full_page_writes=off',
    ]);
    const started = spawn(serverCommand, serverArgs, { stdio: ['ignore', 'pipe', 'pipe'] });
    started.stderr?.on('data', (chunk: Buffer) => {
      log += chunk.toString();
    });
    const deadline = performance.now() + 15_000;
    while (performance.now() < deadline && started.exitCode === null) {
      const client = new pg.Client({ host: '127.0.0.1', port, user: 'fleet', database: 'postgres' });
      try {
        await client.connect();
        await client.end();
        child = started;
        break;
      } catch {
        await client.end().catch(() => undefined);
        await delay(100);
      }
    }
    if (child === undefined) started.kill('SIGKILL');
  }
  if (child === undefined) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`postgres did not start:\n${log}`);
  }
  const server = child;
  const exited = new Promise<void>((resolve) => server.once('exit', () => resolve()));
  let stopped: Promise<void> | undefined;
  return {
    async createDatabase(name) {
      const client = new pg.Client({ host: '127.0.0.1', port, user: 'fleet', database: 'postgres' });
      await client.connect();
      try {
        await client.query(`CREATE DATABASE ${name}`);
      } finally {
        await client.end();
      }
      return `postgres://fleet@127.0.0.1:${port}/${name}`;
    },
    stop() {
      stopped ??= (async () => {
        server.kill('SIGINT');
        await Promise.race([exited, delay(5000)]);
        if (server.exitCode === null) server.kill('SIGKILL');
        await exited;
        rmSync(dir, { recursive: true, force: true });
      })();
      return stopped;
    },
  };
}
