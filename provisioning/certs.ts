// The device's identity for the broker: an EC P-256 key generated ON the device (it never leaves it),
// a CSR for the central PKI, and the check of the signed certificate before it is installed.
// Key and CSR come from the openssl CLI (run without a shell); the key is written through
// writeFileAtomic, which creates it 0600 from the start, so it is never readable by anyone else.
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { chmod, chown, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../device/state/index.js';
import { lastLines, type Runner } from './run.js';

export const keyMode = 0o600;
export const publicFileMode = 0o644;

export interface DeviceFiles {
  key: string;
  csr: string;
  cert: string;
  ca: string;
}

/** Where provisioning keeps the device's TLS files, next to the config. */
export function deviceFiles(configDir: string): DeviceFiles {
  return {
    key: join(configDir, 'device.key'),
    csr: join(configDir, 'device.csr'),
    cert: join(configDir, 'device.crt'),
    ca: join(configDir, 'ca.crt'),
  };
}

/** The service user that must be able to read the key (the service runs as it, not as root). */
export interface Owner {
  uid: number;
  gid: number;
}

export async function applyMode(path: string, mode: number, owner: Owner | undefined, uidForFile?: number) {
  await chmod(path, mode);
  if (owner) await chown(path, uidForFile ?? owner.uid, owner.gid);
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

function isP256Key(pem: string): boolean {
  try {
    const key = createPrivateKey(pem);
    return key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1';
  } catch {
    return false;
  }
}

/**
 * Makes sure the device key exists: generates it if missing, otherwise keeps it (re-provisioning must
 * not invalidate a certificate already issued for it). Returns whether a new key was made.
 */
export async function ensureDeviceKey(deps: {
  run: Runner;
  keyFile: string;
  owner: Owner | undefined;
  renew?: boolean;
}): Promise<{ created: boolean }> {
  if (!deps.renew && (await exists(deps.keyFile))) {
    const pem = await readFile(deps.keyFile, 'utf8');
    if (!isP256Key(pem))
      throw new Error(`${deps.keyFile} exists but is not an EC P-256 private key; rerun with --new-key`);
    await applyMode(deps.keyFile, keyMode, deps.owner);
    return { created: false };
  }
  const result = await deps.run('openssl', [
    'genpkey',
    '-algorithm',
    'EC',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
  ]);
  if (result.code !== 0 || !result.stdout.includes('PRIVATE KEY')) {
    throw new Error(
      `openssl could not generate the device key (${result.failure ?? lastLines(result.stderr)}); is the openssl package installed?`,
    );
  }
  await writeFileAtomic(deps.keyFile, result.stdout);
  await applyMode(deps.keyFile, keyMode, deps.owner);
  return { created: true };
}

/** Writes a CSR with CN = device id (the broker's username for the device) and returns its PEM. */
export async function createCsr(deps: {
  run: Runner;
  keyFile: string;
  csrFile: string;
  deviceId: string;
}): Promise<string> {
  // The device id is already validated (a-z, 0-9, -), so it needs no escaping inside -subj.
  const result = await deps.run('openssl', [
    'req',
    '-new',
    '-key',
    deps.keyFile,
    '-subj',
    `/CN=${deps.deviceId}`,
    '-sha256',
  ]);
  if (result.code !== 0 || !result.stdout.includes('BEGIN CERTIFICATE REQUEST')) {
    throw new Error(`openssl could not create the CSR (${result.failure ?? lastLines(result.stderr)})`);
  }
  await writeFileAtomic(deps.csrFile, result.stdout);
  await chmod(deps.csrFile, publicFileMode);
  return result.stdout;
}

const pemCertificate = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

export type CertificateCheck =
  | { ok: true; subject: string; validTo: string; issuer: string; pem: string }
  | { ok: false; problems: string[] };

/**
 * Checks a certificate file (leaf first, optionally followed by intermediates) before it is used:
 * it matches the device key, names the device, is valid now and chains to the configured CA.
 */
export async function checkCertificate(deps: {
  run: Runner;
  certFile: string;
  keyFile: string;
  caFile: string;
  deviceId: string;
  nowMs: number;
}): Promise<CertificateCheck> {
  let text: string;
  try {
    text = await readFile(deps.certFile, 'utf8');
  } catch (error) {
    return {
      ok: false,
      problems: [`cannot read ${deps.certFile} (${(error as NodeJS.ErrnoException).code ?? 'error'})`],
    };
  }
  const blocks = text.match(pemCertificate) ?? [];
  let leaf: X509Certificate;
  try {
    if (blocks.length === 0) throw new Error('no PEM block');
    leaf = new X509Certificate(blocks[0]!);
  } catch {
    return {
      ok: false,
      problems: [`${deps.certFile} is not a PEM certificate (expected -----BEGIN CERTIFICATE-----)`],
    };
  }
  const problems: string[] = [];
  try {
    const key = createPrivateKey(await readFile(deps.keyFile, 'utf8'));
    if (!leaf.checkPrivateKey(key)) {
      problems.push(
        `the certificate does not match this device's key ${deps.keyFile}: it was issued for another CSR; send this device's CSR (device.csr) to the PKI again`,
      );
    }
  } catch (error) {
    problems.push(
      `cannot read the device key ${deps.keyFile}: ${(error as Error).message}; run provision first`,
    );
  }
  const commonNames = leaf.subject
    .split('\n')
    .filter((line) => line.startsWith('CN='))
    .map((line) => line.slice(3));
  if (!commonNames.includes(deps.deviceId)) {
    problems.push(
      `the certificate is for CN=${commonNames.join(',') || '(none)'}, not for this device (${deps.deviceId}); the broker would give it another device's topics`,
    );
  }
  const validFrom = Date.parse(leaf.validFrom);
  const validTo = Date.parse(leaf.validTo);
  if (deps.nowMs < validFrom)
    problems.push(`the certificate is not valid before ${leaf.validFrom}: check the clock (timedatectl)`);
  if (deps.nowMs > validTo)
    problems.push(`the certificate expired on ${leaf.validTo}: ask the PKI for a new one`);

  const verify = await deps.run('openssl', [
    'verify',
    '-CAfile',
    deps.caFile,
    '-untrusted',
    deps.certFile,
    '-purpose',
    'sslclient',
    deps.certFile,
  ]);
  if (verify.code !== 0) {
    const detail = verify.failure ?? lastLines(`${verify.stdout}\n${verify.stderr}`, 2);
    problems.push(
      `the certificate does not chain to the CA in ${deps.caFile} (${detail}): it was signed by another CA, or the CA file is wrong`,
    );
  }
  if (problems.length > 0) return { ok: false, problems };
  return {
    ok: true,
    subject: leaf.subject,
    issuer: leaf.issuer,
    validTo: leaf.validTo,
    pem: blocks.join('\n'),
  };
}

/** Reads a CA certificate file and says what is wrong with it, if anything. */
export async function checkCaFile(path: string): Promise<string | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    return `cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? 'error'})`;
  }
  const blocks = text.match(pemCertificate) ?? [];
  if (blocks.length === 0) return `${path} holds no PEM certificate`;
  try {
    for (const block of blocks) {
      if (!new X509Certificate(block).ca) return `${path} holds a certificate that is not a CA certificate`;
    }
  } catch (error) {
    return `${path} holds a certificate that cannot be parsed (${(error as Error).message})`;
  }
  return undefined;
}
