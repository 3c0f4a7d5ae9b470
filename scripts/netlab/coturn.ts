// coturn (Debian's /usr/bin/turnserver) in the lab's public namespace, with the configuration we ship
// (docs/coturn/turnserver.conf) and only what a lab must change: its addresses, the secret, no TLS (the
// lab has no certificate for the relay; turns: is the consoles' fallback, not the device's) and the
// log on stdout. The production peer rules stay: private, loopback and CGNAT peers are denied, the
// relay's own address allowed, so the lab proves a relay-to-relay look works under them.
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { removeTestTempDir, testTempDir } from '../devstack/pki.js';
import { type Lab, labAddresses } from './lab.js';

const shippedConfig = fileURLToPath(new URL('../../docs/coturn/turnserver.conf', import.meta.url));
const startTimeoutMs = 15_000;

/** Lines of the shipped file a lab replaces or drops (by option name). */
const replaced = new Set([
  'listening-ip',
  'relay-ip',
  'allowed-peer-ip',
  'static-auth-secret',
  'tls-listening-port',
  'cert',
  'pkey',
  'syslog',
  'proc-user',
  'proc-group',
  'no-tlsv1',
  'no-tlsv1_1',
  'cipher-list',
]);

/** The shipped configuration with the lab's addresses and secret. */
export function labTurnConfig(secret: string): string {
  const kept = readFileSync(shippedConfig, 'utf8')
    .split('\n')
    .filter((line) => !replaced.has(line.split('=')[0]?.trim() ?? ''));
  return [
    ...kept,
    '# --- The lab (scripts/netlab/coturn.ts) ---',
    `listening-ip=${labAddresses.services}`,
    `relay-ip=${labAddresses.services}`,
    `allowed-peer-ip=${labAddresses.services}`,
    `static-auth-secret=${secret}`,
    'no-tls',
    'log-file=stdout',
    'verbose',
    '',
  ].join('\n');
}

export interface Coturn {
  readonly url: string;
  logs(): string;
  stop(): Promise<void>;
}

export async function startCoturn(lab: Lab, secret: string): Promise<Coturn> {
  const dir = testTempDir('coturn');
  const configFile = join(dir, 'turnserver.conf');
  writeFileSync(configFile, labTurnConfig(secret));
  const child: ChildProcess = spawn(
    '/usr/sbin/ip',
    [
      'netns',
      'exec',
      lab.ns('pub'),
      '/usr/bin/setpriv',
      '--pdeathsig',
      'KILL',
      '/usr/bin/turnserver',
      '-c',
      configFile,
      '--pidfile',
      join(dir, 'pid'),
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let log = '';
  const append = (chunk: Buffer) => {
    if (log.length < 2_000_000) log += chunk.toString('utf8');
  };
  child.stdout?.on('data', append);
  child.stderr?.on('data', append);
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(killer);
    }
    removeTestTempDir(dir);
  };
  const deadline = performance.now() + startTimeoutMs;
  const ready = `UDP listener opened on: ${labAddresses.services}:3478`;
  while (!log.includes(ready)) {
    if (child.exitCode !== null || performance.now() > deadline) {
      await stop();
      throw new Error(`coturn did not start:\n${log.slice(-4000)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return { url: `turn:${labAddresses.services}:3478?transport=udp`, logs: () => log, stop };
}
