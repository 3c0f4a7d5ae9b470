// A throwaway PKI for tests, made with the openssl CLI: a CA, a broker certificate for localhost/127.0.0.1
// and client certificates whose CN is the MQTT identity (device id, `central`, `ops`). EC P-256 keys so a
// whole PKI takes a few tens of milliseconds. Files live in a temp dir removed when the test process exits.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface CertFiles {
  /** PEM certificate path. */
  cert: string;
  /** PEM private key path (unencrypted PKCS#8). */
  key: string;
}

export interface Pki {
  /** Directory holding every file of this PKI. */
  dir: string;
  /** PEM path of the CA certificate: the broker's `cafile` and the clients' `ca`. */
  caCert: string;
  /** Broker certificate with SAN DNS:localhost, IP:127.0.0.1 and IP:100.64.0.1 (the network lab's services). */
  server: CertFiles;
  /** A client certificate with this CN, issued on first request and reused afterwards. */
  clientCert(cn: string): Promise<CertFiles>;
}

// Anything outside this set would need escaping in `-subj` and cannot be an MQTT identity of ours anyway.
const commonName = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

// Our own config keeps results independent of the system's openssl.cnf (whose default extensions clash
// with -addext on OpenSSL 3.0).
const opensslConfig = `[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca_ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[server_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost,IP:127.0.0.1,IP:100.64.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[client_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
`;

const ecKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
const validityDays = '2';

const tempDirs = new Set<string>();
let cleanupHooked = false;

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

// vitest ends its workers with a signal, so 'exit' hooks do not always run: each new process removes
// what earlier, now dead, test processes left behind (the owner's pid is part of the directory name).
function sweepStaleDirs(): void {
  for (const entry of readdirSync(tmpdir())) {
    const owner = /^tk-[a-z]+-(\d+)-/.exec(entry)?.[1];
    if (owner !== undefined && Number(owner) !== process.pid && !isAlive(Number(owner))) {
      rmSync(join(tmpdir(), entry), { recursive: true, force: true });
    }
  }
}

/**
 * A private temp dir for test files (`tk-<kind>-<pid>-…`), removed by `removeTestTempDir`, at process
 * exit, or by the next test process if this one was killed.
 */
export function testTempDir(kind: string): string {
  if (!cleanupHooked) {
    cleanupHooked = true;
    sweepStaleDirs();
    // Synchronous on purpose: 'exit' listeners cannot await.
    process.once('exit', () => {
      for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
    });
  }
  const dir = mkdtempSync(join(tmpdir(), `tk-${kind}-${process.pid}-`));
  tempDirs.add(dir);
  return dir;
}

export function removeTestTempDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
}

async function openssl(args: string[]): Promise<void> {
  try {
    await run('openssl', args);
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr ?? '';
    throw new Error(`openssl ${args[0]} failed: ${stderr.trim() || String(error)}`);
  }
}

async function issue(
  dir: string,
  config: string,
  ca: CertFiles,
  name: string,
  cn: string,
  extensions: 'server_ext' | 'client_ext',
): Promise<CertFiles> {
  const files = { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
  const request = join(dir, `${name}.csr`);
  await openssl([
    'req',
    '-config',
    config,
    '-new',
    ...ecKey,
    '-keyout',
    files.key,
    '-out',
    request,
    '-subj',
    `/CN=${cn}`,
  ]);
  await openssl([
    'x509',
    '-req',
    '-in',
    request,
    '-CA',
    ca.cert,
    '-CAkey',
    ca.key,
    // A random serial avoids a shared serial file, so certificates can be issued concurrently.
    '-set_serial',
    `0x${randomBytes(16).toString('hex')}`,
    '-days',
    validityDays,
    '-sha256',
    '-extfile',
    config,
    '-extensions',
    extensions,
    '-out',
    files.cert,
  ]);
  return files;
}

/** A fresh, independent PKI (its own CA). Use `testPki()` unless you need a second, foreign CA. */
export async function createPki(label = 'trygghetskamera test CA'): Promise<Pki> {
  const dir = testTempDir('pki');
  const config = join(dir, 'openssl.cnf');
  await writeFile(config, opensslConfig);
  const ca = { cert: join(dir, 'ca.crt'), key: join(dir, 'ca.key') };
  await openssl([
    'req',
    '-config',
    config,
    '-x509',
    '-new',
    ...ecKey,
    '-keyout',
    ca.key,
    '-out',
    ca.cert,
    '-days',
    validityDays,
    '-sha256',
    '-subj',
    `/CN=${label} ${randomBytes(4).toString('hex')}`,
    '-extensions',
    'ca_ext',
  ]);
  const server = await issue(dir, config, ca, 'server', 'localhost', 'server_ext');
  const clients = new Map<string, Promise<CertFiles>>();
  return {
    dir,
    caCert: ca.cert,
    server,
    clientCert(cn: string): Promise<CertFiles> {
      if (!commonName.test(cn))
        return Promise.reject(new Error(`unsupported certificate CN: ${JSON.stringify(cn)}`));
      let files = clients.get(cn);
      if (!files) {
        files = issue(dir, config, ca, `client-${cn}`, cn, 'client_ext');
        clients.set(cn, files);
      }
      return files;
    },
  };
}

let cached: Promise<Pki> | undefined;

/** The PKI shared by everything in one test file (vitest runs each file in its own module graph). */
export function testPki(): Promise<Pki> {
  cached ??= createPki();
  return cached;
}
