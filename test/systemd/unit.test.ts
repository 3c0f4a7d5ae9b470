// The unit file itself: systemd-analyze must accept it and rate its sandbox at exposure 2.0 or
// better. Both run offline on the unit file; no systemd needs to be running.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const UNIT = 'systemd/trygghetskamera.service';
const SYSTEMD_ANALYZE = '/usr/bin/systemd-analyze';
const MAX_EXPOSURE = 2.0;

function analyze(...args: string[]): { status: number | null; output: string } {
  const result = spawnSync(SYSTEMD_ANALYZE, args, {
    encoding: 'utf8',
    env: { ...process.env, SYSTEMD_COLORS: '0' },
  });
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

describe.skipIf(!existsSync(SYSTEMD_ANALYZE))('systemd/trygghetskamera.service', () => {
  it('has an overall exposure level of at most 2.0', () => {
    const { output } = analyze('security', '--offline=true', '--no-pager', UNIT);
    const match = /Overall exposure level for trygghetskamera\.service: ([0-9.]+)/.exec(output);
    expect(match, output).not.toBeNull();
    expect(Number(match?.[1])).toBeLessThanOrEqual(MAX_EXPOSURE);
  });

  it('passes the security threshold check of systemd-analyze', () => {
    // --threshold is on the 0-100 scale (exposure x 10); the exit status is non-zero above it.
    const { status, output } = analyze(
      'security',
      '--offline=true',
      '--no-pager',
      `--threshold=${MAX_EXPOSURE * 10}`,
      UNIT,
    );
    expect(status, output).toBe(0);
  });

  it('verifies without warnings', () => {
    const { output } = analyze('verify', UNIT);
    // A machine without Node at /usr/bin/node (a CI box with nvm, say) is not the unit's fault.
    const complaints = output
      .split('\n')
      .filter((line) => line.trim() !== '')
      .filter((line) => !/Command \/usr\/bin\/node is not executable/.test(line));
    expect(complaints).toEqual([]);
  });

  it('keeps the settings that would break Node or the device groups out', () => {
    const settings = readFileSync(UNIT, 'utf8')
      .split('\n')
      .filter((line) => !line.startsWith('#'));
    expect(settings.filter((line) => /^(MemoryDenyWriteExecute|PrivateUsers)=/.test(line))).toEqual([]);
    expect(settings).toContain('NotifyAccess=main');
    expect(settings).toContain('SupplementaryGroups=video gpio');
  });

  it('makes only the state directory writable: the audit log lives in it, not in /var/log', () => {
    const settings = readFileSync(UNIT, 'utf8')
      .split('\n')
      .filter((line) => !line.startsWith('#'));
    expect(settings).toContain('StateDirectory=trygghetskamera');
    expect(settings.filter((line) => /^LogsDirectory/.test(line))).toEqual([]);
  });
});
