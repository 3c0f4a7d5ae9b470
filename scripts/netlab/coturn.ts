// coturn (Debian's /usr/bin/turnserver) in the lab's public namespace, with the configuration we ship
// (docs/coturn/turnserver.conf) and only what a lab must change: its addresses, the secret, the TLS
// certificate for the 443 listener (the test PKI's server certificate, SAN IP:100.64.0.1; turns: is the
// consoles' fallback through strict firewalls, not the device's) and the log on stdout. The production peer rules stay: private, loopback and CGNAT peers are denied, the
// relay's own address allowed, so the lab proves a relay-to-relay look works under them.
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type CertFiles, removeTestTempDir, testTempDir } from '../devstack/pki.js';
import { type Lab, labAddresses } from './lab.js';

const shippedConfig = fileURLToPath(new URL('../../docs/coturn/turnserver.conf', import.meta.url));
const startTimeoutMs = 15_000;

/** Lines of the shipped file a lab replaces or drops (by option name). */
const replaced = new Set([
  'listening-ip',
  'relay-ip',
  'allowed-peer-ip',
  'static-auth-secret',
  'cert',
  'pkey',
  'syslog',
  'proc-user',
  'proc-group',
]);

/** The shipped configuration (TURN over UDP/TCP on 3478, over TLS on 443) with the lab's addresses, secret and certificate. */
export function labTurnConfig(secret: string, tls: CertFiles): string {
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
    `cert=${tls.cert}`,
    `pkey=${tls.key}`,
    'log-file=stdout',
    'verbose',
    '',
  ].join('\n');
}

export interface Coturn {
  /** TURN over UDP on 3478: the device's. */
  readonly url: string;
  /** TURN over TLS on 443: the consoles' fallback through firewalls that let only HTTPS out. */
  readonly tlsUrl: string;
  logs(): string;
  stop(): Promise<void>;
}

export async function startCoturn(lab: Lab, secret: string, tls: CertFiles): Promise<Coturn> {
  const dir = testTempDir('coturn');
  const configFile = join(dir, 'turnserver.conf');
  writeFileSync(configFile, labTurnConfig(secret, tls));
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
  const ready = [
    new RegExp(`UDP listener opened on\\s*:\\s*${labAddresses.services}:3478`),
    new RegExp(`TLS/TCP listener opened on\\s*:\\s*${labAddresses.services}:443`),
  ];
  while (!ready.every((line) => line.test(log))) {
    if (child.exitCode !== null || performance.now() > deadline) {
      await stop();
      throw new Error(`coturn did not start:\n${log.slice(-4000)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    url: `turn:${labAddresses.services}:3478?transport=udp`,
    tlsUrl: `turns:${labAddresses.services}:443?transport=tcp`,
    logs: () => log,
    stop,
  };
}
