// provision and provision import-cert: the config the service will accept, the device key made on
// the device (0600) with its CSR, interactive answers re-asked when invalid, and the certificate checks.
import { X509Certificate } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../device/config/index.js';
import { createPki, type Pki, removeTestTempDir, testPki, testTempDir } from '../../scripts/devstack/pki.js';
import { centralKeyFile, cliInProcess, cliProcess, signCsr } from './support.js';

let pki: Pki;
let dir: string;
let centralKey: string;

beforeAll(async () => {
  pki = await testPki();
  dir = testTempDir('prov');
  centralKey = await centralKeyFile(dir);
});

afterAll(() => removeTestTempDir(dir));

function provisionArgs(configDir: string, deviceId: string): string[] {
  return [
    'provision',
    '--non-interactive',
    '--config-dir',
    configDir,
    '--device-id',
    deviceId,
    '--broker-url',
    'mqtts://127.0.0.1:8883',
    '--ca-file',
    pki.caCert,
    '--central-key',
    `central-1=${centralKey}`,
    '--camera',
    'test',
    '--gpio-kind',
    'sim',
    '--state-dir',
    join(dir, 'state'),
  ];
}

describe('provision --non-interactive', () => {
  it('writes a config parseConfig accepts, a 0600 key and a CSR for the device id', async () => {
    const configDir = join(dir, 'etc-flags');
    const result = await cliInProcess(provisionArgs(configDir, 'gbg-0001'), { owner: null });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);

    const parsed = parseConfig(JSON.parse(await readFile(join(configDir, 'config.json'), 'utf8')));
    expect(parsed.ok).toBe(true);
    if (!parsed.ok) return;
    expect(parsed.config.deviceId).toBe('gbg-0001');
    expect(parsed.config.broker.keyFile).toBe(join(configDir, 'device.key'));
    expect(parsed.config.camera.source).toEqual({ kind: 'test' });
    expect((await stat(join(configDir, 'config.json'))).mode & 0o777).toBe(0o640);
    expect((await stat(join(configDir, 'device.key'))).mode & 0o777).toBe(0o600);

    const csr = await readFile(join(configDir, 'device.csr'), 'utf8');
    expect(csr).toContain('BEGIN CERTIFICATE REQUEST');
    expect(result.stdout).toContain(csr.trim());
    const key = await readFile(join(configDir, 'device.key'), 'utf8');
    expect(key).toContain('PRIVATE KEY');
    expect(result.stdout).not.toContain(key.trim());
  });

  it('sets up a Raspberry Pi camera module (libcamera) and keeps it when provisioning again', async () => {
    const configDir = join(dir, 'etc-libcamera');
    const args = provisionArgs(configDir, 'gbg-0003').map((arg) => (arg === 'test' ? 'libcamera' : arg));
    expect((await cliInProcess(args, { owner: null })).code).toBe(0);
    const read = async () => parseConfig(JSON.parse(await readFile(join(configDir, 'config.json'), 'utf8')));
    const first = await read();
    expect(first.ok && first.config.camera.source).toEqual({
      kind: 'libcamera',
      rpicamPath: '/usr/bin/rpicam-vid',
      camera: 0,
    });
    const withoutCamera = provisionArgs(configDir, 'gbg-0003').filter(
      (arg, i, all) => arg !== '--camera' && all[i - 1] !== '--camera',
    );
    expect((await cliInProcess(withoutCamera, { owner: null })).code).toBe(0);
    const again = await read();
    expect(again.ok && again.config.camera.source.kind).toBe('libcamera');
  });

  it('keeps the device key when provisioning again', async () => {
    const configDir = join(dir, 'etc-again');
    expect((await cliInProcess(provisionArgs(configDir, 'gbg-0002'), { owner: null })).code).toBe(0);
    const key = await readFile(join(configDir, 'device.key'), 'utf8');
    const again = await cliInProcess(['provision', '--non-interactive', '--config-dir', configDir], {
      owner: null,
    });
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('Device key kept');
    expect(await readFile(join(configDir, 'device.key'), 'utf8')).toBe(key);
  });

  it('refuses a missing required value and names the flag', async () => {
    const configDir = join(dir, 'etc-missing');
    const result = await cliInProcess(
      ['provision', '--non-interactive', '--config-dir', configDir, '--device-id', 'gbg-0003'],
      { owner: null },
    );
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('--broker-url is required');
  });

  it('refuses an invalid flag value with the config schema error', async () => {
    const args = provisionArgs(join(dir, 'etc-bad'), 'gbg-0004');
    args[args.indexOf('--broker-url') + 1] = 'mqtt://broker.example.com';
    const result = await cliInProcess(args, { owner: null });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('plain mqtt:// is allowed only to a loopback broker');
  });

  it('refuses a device id that names an operator console in the broker ACL', async () => {
    const result = await cliInProcess(provisionArgs(join(dir, 'etc-console'), 'console-1'), { owner: null });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('names operator consoles, never a device');
  });
});

describe('provision, interactive', () => {
  it('asks each question, re-asks an invalid answer with the reason, and writes the config', async () => {
    const configDir = join(dir, 'etc-interactive');
    const answers = [
      'Not A Valid Id!', // re-asked
      'gbg-0010',
      'mqtts://127.0.0.1:8883',
      pki.caCert,
      `central-1=${centralKey}`,
      'sim',
      '', // viewing LED: default 17
      '', // privacy LED: default none
      '17', // clashes with the LED: re-asked
      '22',
      't',
      '', // night preset: default 21:00-07:00
      '640x480',
      '',
      'Mars/Olympus', // not a time zone: re-asked
      'Europe/Stockholm',
    ];
    const result = await cliProcess(['provision', '--config-dir', configDir], `${answers.join('\n')}\n`);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('Device id (as registered centrally, e.g. gbg-0042): ');
    expect(result.stdout).toContain('✗ a device id is 3-63 characters');
    expect(result.stdout).toContain('Viewing LED GPIO pin (BCM number) [17]');
    expect(result.stdout).toContain('✗ viewingLed, privacyLed and button must use different pins');
    expect(result.stdout).toContain('✗ not a known IANA time zone');

    const parsed = parseConfig(JSON.parse(await readFile(join(configDir, 'config.json'), 'utf8')));
    expect(parsed.ok && parsed.config.deviceId).toBe('gbg-0010');
    expect(parsed.ok && parsed.config.gpio.button.pin).toBe(22);
    expect(parsed.ok && [parsed.config.camera.width, parsed.config.camera.height]).toEqual([640, 480]);
  });

  it('writes nothing when the answers run out', async () => {
    const configDir = join(dir, 'etc-short');
    const result = await cliProcess(['provision', '--config-dir', configDir], 'gbg-0011\n');
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('nothing was written');
    await expect(stat(join(configDir, 'config.json'))).rejects.toThrow();
  });
});

describe('provision import-cert', () => {
  it('installs a certificate signed for this device by the CA', async () => {
    const configDir = join(dir, 'etc-import');
    expect((await cliInProcess(provisionArgs(configDir, 'gbg-0020'), { owner: null })).code).toBe(0);
    const signed = await signCsr(pki, join(configDir, 'device.csr'), join(dir, 'gbg-0020.crt'));

    const result = await cliInProcess(['provision', 'import-cert', signed, '--config-dir', configDir], {
      owner: null,
    });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const installed = new X509Certificate(await readFile(join(configDir, 'device.crt')));
    expect(installed.subject).toBe('CN=gbg-0020');
  });

  it('refuses a certificate for another key and installs nothing', async () => {
    const configDir = join(dir, 'etc-mismatch');
    expect((await cliInProcess(provisionArgs(configDir, 'gbg-0021'), { owner: null })).code).toBe(0);
    // Same CA and CN, but issued for a key made elsewhere.
    const other = await pki.clientCert('gbg-0021');

    const result = await cliInProcess(['provision', 'import-cert', other.cert, '--config-dir', configDir], {
      owner: null,
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("does not match this device's key");
    await expect(stat(join(configDir, 'device.crt'))).rejects.toThrow();
  });

  it('refuses a certificate from another CA', async () => {
    const configDir = join(dir, 'etc-foreign');
    expect((await cliInProcess(provisionArgs(configDir, 'gbg-0022'), { owner: null })).code).toBe(0);
    const foreign = await createPki('foreign CA');
    const signed = await signCsr(foreign, join(configDir, 'device.csr'), join(dir, 'foreign.crt'));

    const result = await cliInProcess(['provision', 'import-cert', signed, '--config-dir', configDir], {
      owner: null,
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('does not chain to the CA');
    expect(result.stderr).not.toContain("does not match this device's key");
  });
});
