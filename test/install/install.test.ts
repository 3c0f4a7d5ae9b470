// scripts/install.sh against a throwaway root (--root) and a fake built checkout (--from), with
// --no-deps so no npm ci runs: files, owners (resolved from the temp root's passwd/group), modes,
// idempotency, upgrade, uninstall and purge, the provisioning tool on PATH. Nothing on the host is touched.
import { type SpawnSyncReturns, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

const SCRIPT = join(import.meta.dirname, '../../scripts/install.sh');
const UNIT_SOURCE = join(import.meta.dirname, '../../systemd/trygghetskamera.service');
const AS_ROOT = process.getuid?.() === 0;

let work: string;
let root: string;
let from: string;

function write(path: string, content: string): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, content);
}

function install(...args: string[]): SpawnSyncReturns<string> {
  return spawnSync('bash', [SCRIPT, '--root', root, '--from', from, '--no-deps', ...args], {
    encoding: 'utf8',
  });
}

function installOk(...args: string[]): string {
  const result = install(...args);
  expect(result.status, `${result.stdout}\n${result.stderr}`).toBe(0);
  return result.stdout;
}

/** Numeric id of `name` in the temp root's passwd or group file. */
function idOf(file: 'passwd' | 'group', name: string): number {
  const line = readFileSync(join(root, 'etc', file), 'utf8')
    .split('\n')
    .find((entry) => entry.split(':')[0] === name);
  if (line === undefined) throw new Error(`${name} not in ${file}`);
  return Number(line.split(':')[2]);
}

function membersOf(group: string): string[] {
  const line = readFileSync(join(root, 'etc/group'), 'utf8')
    .split('\n')
    .find((entry) => entry.startsWith(`${group}:`));
  return line?.split(':')[3]?.split(',').filter(Boolean) ?? [];
}

function meta(path: string): { mode: string; uid: number; gid: number } {
  const stat = lstatSync(join(root, path));
  return { mode: (stat.mode & 0o7777).toString(8).padStart(4, '0'), uid: stat.uid, gid: stat.gid };
}

/** path, mode, owner, mtime and content hash of everything under the root. */
function manifest(): string[] {
  const lines: string[] = [];
  const walk = (relative: string): void => {
    const path = join(root, relative);
    const stat = lstatSync(path);
    let content = '';
    if (stat.isSymbolicLink()) content = `-> ${readlinkSync(path)}`;
    else if (stat.isFile()) content = createHash('sha256').update(readFileSync(path)).digest('hex');
    lines.push(`${relative} ${stat.mode.toString(8)} ${stat.uid}:${stat.gid} ${stat.mtimeMs} ${content}`);
    if (stat.isDirectory()) for (const entry of readdirSync(path).sort()) walk(join(relative, entry));
  };
  walk('.');
  return lines;
}

beforeEach(() => {
  work = mkdtempSync(join(tmpdir(), 'install-'));
  root = join(work, 'root');
  from = join(work, 'checkout');
  write(
    join(root, 'etc/passwd'),
    'root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534::/:/usr/sbin/nologin\n',
  );
  write(join(root, 'etc/group'), 'root:x:0:\nvideo:x:44:\nnogroup:x:65534:\n');
  write(join(from, 'dist/device/main.js'), 'console.log("main");\n');
  write(join(from, 'dist/device/systemd/notify.js'), 'export {};\n');
  write(join(from, 'dist/provisioning/cli.js'), 'console.log("provision");\n');
  write(join(from, 'dist/bin/trygghetskamera'), '#!/usr/bin/env node\n');
  chmodSync(join(from, 'dist/bin/trygghetskamera'), 0o700);
  symlinkSync('../device/main.js', join(from, 'dist/bin/main.js'));
  write(join(from, 'package.json'), '{ "name": "trygghetskamera" }\n');
  write(join(from, 'package-lock.json'), '{}\n');
  write(join(from, 'docs/install.md'), '# Install\n');
  mkdirSync(join(from, 'systemd'));
  copyFileSync(UNIT_SOURCE, join(from, 'systemd/trygghetskamera.service'));
});

afterEach(() => {
  rmSync(work, { recursive: true, force: true });
});

describe('install.sh', () => {
  it('installs the program, the unit and the directories', () => {
    const output = installOk();

    expect(output).toContain('==> Creating groups and user trygghetskamera');
    expect(readFileSync(join(root, 'opt/trygghetskamera/dist/device/main.js'), 'utf8')).toContain('main');
    expect(existsSync(join(root, 'opt/trygghetskamera/package.json'))).toBe(true);
    expect(existsSync(join(root, 'opt/trygghetskamera/package-lock.json'))).toBe(true);
    expect(readFileSync(join(root, 'etc/systemd/system/trygghetskamera.service'), 'utf8')).toBe(
      readFileSync(UNIT_SOURCE, 'utf8'),
    );
    expect(meta('etc/trygghetskamera').mode).toBe('0750');
    expect(meta('var/lib/trygghetskamera').mode).toBe('0700');
    expect(existsSync(join(root, 'var/log/trygghetskamera'))).toBe(false);
    expect(meta('opt/trygghetskamera/dist/device/main.js').mode).toBe('0644');
    expect(meta('etc/systemd/system/trygghetskamera.service').mode).toBe('0644');
    expect(meta('opt/trygghetskamera/dist/bin/trygghetskamera').mode).toBe('0755');
    expect(readlinkSync(join(root, 'opt/trygghetskamera/dist/bin/main.js'))).toBe('../device/main.js');
  });

  it('creates the system user in the root only, with the gpio group it lacked and video', () => {
    installOk();

    const uid = idOf('passwd', 'trygghetskamera');
    expect(uid).toBeGreaterThanOrEqual(100);
    expect(uid).toBeLessThan(1000);
    expect(idOf('group', 'gpio')).toBeLessThan(1000);
    expect(membersOf('video')).toEqual(['trygghetskamera']);
    expect(membersOf('gpio')).toEqual(['trygghetskamera']);
    expect(readFileSync(join(root, 'etc/passwd'), 'utf8')).toContain(
      ':/var/lib/trygghetskamera:/usr/sbin/nologin',
    );
  });

  it.skipIf(!AS_ROOT)('gives the service user its state directory, and root the rest', () => {
    installOk();
    const uid = idOf('passwd', 'trygghetskamera');
    const gid = idOf('group', 'trygghetskamera');

    expect(meta('etc/trygghetskamera')).toEqual({ mode: '0750', uid: 0, gid });
    expect(meta('var/lib/trygghetskamera')).toEqual({ mode: '0700', uid, gid });
    expect(meta('opt/trygghetskamera')).toEqual({ mode: '0755', uid: 0, gid: 0 });
    expect(meta('opt/trygghetskamera/dist/device/main.js')).toEqual({ mode: '0644', uid: 0, gid: 0 });
    expect(meta('usr/local/bin/trygghetskamera-provision')).toEqual({ mode: '0755', uid: 0, gid: 0 });
  });

  it('puts the provisioning tool on PATH as a wrapper that runs the installed CLI with /usr/bin/node', () => {
    installOk();

    const tool = join(root, 'usr/local/bin/trygghetskamera-provision');
    expect(lstatSync(tool).isFile()).toBe(true);
    expect(meta('usr/local/bin/trygghetskamera-provision').mode).toBe('0755');
    const lines = readFileSync(tool, 'utf8').split('\n');
    expect(lines[0]).toBe('#!/bin/sh');
    // The path the program has on the device, not inside the --root tree.
    expect(lines).toContain('exec /usr/bin/node /opt/trygghetskamera/dist/provisioning/cli.js "$@"');
    expect(spawnSync('sh', ['-n', tool]).status).toBe(0);
  });

  it('removes an empty /var/log/trygghetskamera left by an earlier version', () => {
    mkdirSync(join(root, 'var/log/trygghetskamera'), { recursive: true });

    installOk();

    expect(existsSync(join(root, 'var/log/trygghetskamera'))).toBe(false);
    expect(existsSync(join(root, 'var/log'))).toBe(true);
  });

  it('changes nothing when run a second time', () => {
    installOk();
    const before = manifest();

    const output = installOk();

    expect(manifest()).toEqual(before);
    expect(output).toContain('==> Done: nothing to change');
  });

  it('upgrades the program, drops stale files and keeps config and state', () => {
    installOk();
    write(join(root, 'etc/trygghetskamera/config.json'), '{"deviceId":"kam-1"}\n');
    write(join(root, 'var/lib/trygghetskamera/privacy.json'), '{"on":true}\n');
    write(join(from, 'dist/device/main.js'), 'console.log("main v2");\n');
    rmSync(join(from, 'dist/device/systemd'), { recursive: true });
    rmSync(join(from, 'dist/bin/main.js'));
    write(join(from, 'dist/bin/main.js'), 'export {};\n');

    installOk();

    expect(readFileSync(join(root, 'opt/trygghetskamera/dist/device/main.js'), 'utf8')).toContain('v2');
    expect(existsSync(join(root, 'opt/trygghetskamera/dist/device/systemd'))).toBe(false);
    expect(lstatSync(join(root, 'opt/trygghetskamera/dist/bin/main.js')).isFile()).toBe(true);
    expect(readFileSync(join(root, 'etc/trygghetskamera/config.json'), 'utf8')).toContain('kam-1');
    expect(readFileSync(join(root, 'var/lib/trygghetskamera/privacy.json'), 'utf8')).toContain('true');
  });

  it('uninstalls everything but the audit log and the user', () => {
    installOk();
    write(join(root, 'etc/trygghetskamera/config.json'), '{}\n');
    write(join(root, 'var/lib/trygghetskamera/privacy.json'), '{}\n');
    write(join(root, 'var/lib/trygghetskamera/audit/audit-2025-01-31.jsonl'), '{"kind":"request"}\n');

    const output = installOk('--uninstall');

    expect(output).toContain('==> Done: uninstalled');
    expect(existsSync(join(root, 'opt/trygghetskamera'))).toBe(false);
    expect(existsSync(join(root, 'usr/local/bin/trygghetskamera-provision'))).toBe(false);
    expect(existsSync(join(root, 'etc/systemd/system/trygghetskamera.service'))).toBe(false);
    expect(existsSync(join(root, 'etc/trygghetskamera'))).toBe(false);
    expect(existsSync(join(root, 'var/lib/trygghetskamera/privacy.json'))).toBe(false);
    expect(existsSync(join(root, 'var/lib/trygghetskamera/audit/audit-2025-01-31.jsonl'))).toBe(true);
    expect(idOf('passwd', 'trygghetskamera')).toBeGreaterThan(0);
  });

  it('purges the audit log, the state and the user with --purge', () => {
    installOk();
    write(join(root, 'var/lib/trygghetskamera/audit/audit-2025-01-31.jsonl'), '{}\n');
    write(join(root, 'var/log/trygghetskamera/old.log'), 'left by an earlier version\n');

    installOk('--uninstall', '--purge');

    expect(existsSync(join(root, 'var/lib/trygghetskamera'))).toBe(false);
    expect(existsSync(join(root, 'var/log/trygghetskamera'))).toBe(false);
    expect(existsSync(join(root, 'usr/local/bin/trygghetskamera-provision'))).toBe(false);
    expect(readFileSync(join(root, 'etc/passwd'), 'utf8')).not.toContain('trygghetskamera');
    expect(readFileSync(join(root, 'etc/group'), 'utf8')).not.toContain('trygghetskamera');
    expect(membersOf('gpio')).toEqual([]);
  });

  it('refuses a checkout that has not been built, before changing anything', () => {
    rmSync(join(from, 'dist'), { recursive: true });

    const result = install();

    expect(result.status).not.toBe(0);
    expect(result.stderr).toContain('dist/device/main.js is missing');
    expect(existsSync(join(root, 'opt'))).toBe(false);
  });

  it('rejects unknown options and explains the known ones with --help', () => {
    const wrong = install('--frobnicate');
    expect(wrong.status).not.toBe(0);
    expect(wrong.stderr).toContain('unknown option: --frobnicate');

    const help = spawnSync('bash', [SCRIPT, '--help'], { encoding: 'utf8' });
    expect(help.status).toBe(0);
    for (const option of ['--from', '--root', '--no-apt', '--no-deps', '--uninstall', '--purge']) {
      expect(help.stdout).toContain(option);
    }
  });
});
