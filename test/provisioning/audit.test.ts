// audit: the device's own audit log as a table a resident can read, with date filters and JSON.
import { randomUUID } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeTestTempDir, testTempDir } from '../../scripts/devstack/pki.js';
import { cliInProcess } from './support.js';

let dir: string;
let configPath: string;
const deviceId = 'gbg-audit';

const common = (at: string) => ({ schemaVersion: 2, id: randomUUID(), at, deviceId });
const records = {
  '2026-03-02': [
    {
      ...common('2026-03-02T22:15:03.000Z'),
      kind: 'request',
      requestId: 'r-1',
      sessionId: 's-1',
      operatorId: 'op-karin',
      decision: 'granted',
    },
    {
      ...common('2026-03-02T22:15:24.000Z'),
      kind: 'session-end',
      requestId: 'r-1',
      sessionId: 's-1',
      operatorId: 'op-karin',
      startedAt: '2026-03-02T22:15:03.000Z',
      durationMs: 21_000,
      endReason: 'operator-hangup',
    },
    {
      ...common('2026-03-02T23:40:00.000Z'),
      kind: 'request',
      requestId: 'r-2',
      decision: 'refused',
      reason: 'privacy-on',
    },
  ],
  '2026-03-04': [
    {
      ...common('2026-03-04T06:00:10.000Z'),
      kind: 'window-missed',
      windowStart: '2026-03-04T02:00:00.000Z',
      windowEnd: '2026-03-04T02:30:00.000Z',
    },
  ],
};

beforeAll(async () => {
  dir = testTempDir('audit');
  const auditDir = join(dir, 'state', 'audit');
  await mkdir(auditDir, { recursive: true });
  for (const [day, lines] of Object.entries(records)) {
    const text = lines.map((line) => JSON.stringify(line)).join('\n');
    // The last line of the second file is torn, as after a power cut.
    await writeFile(
      join(auditDir, `audit-${day}.jsonl`),
      day === '2026-03-04' ? `${text}\n{"schemaV` : `${text}\n`,
    );
  }
  configPath = join(dir, 'config.json');
  await writeFile(
    configPath,
    JSON.stringify({
      deviceId,
      stateDir: join(dir, 'state'),
      broker: { url: 'mqtt://127.0.0.1:1883' },
      centralKeys: [{ kid: 'k', publicKeyPem: '-----BEGIN PUBLIC KEY-----\nx\n-----END PUBLIC KEY-----' }],
      gpio: { kind: 'sim', viewingLed: { pin: 17 }, button: { pin: 27 } },
    }),
  );
});

afterAll(() => removeTestTempDir(dir));

describe('audit', () => {
  it('prints who looked, when, for how long, refusals and missed check-ins in local time', async () => {
    const result = await cliInProcess(['audit', '--config', configPath]);
    expect(result.code).toBe(0);
    const lines = result.stdout.split('\n');
    expect(lines.find((line) => line.includes('Looked in'))).toMatch(
      /2026-03-02 23:15:03\s+Looked in\s+op-karin\s+21 s\s+the operator ended it/,
    );
    expect(lines.find((line) => line.includes('Look-in refused'))).toContain(
      'the resident has turned privacy mode on',
    );
    expect(lines.find((line) => line.includes('No look-in'))).toContain('2026-03-04 03:00:00');
    // The granted request is shown through its session's end, not twice.
    expect(result.stdout).not.toContain('Look-in allowed');
    expect(result.stdout).toContain('1 damaged line(s)');
  });

  it('keeps to the days given with --from and --to', async () => {
    const result = await cliInProcess([
      'audit',
      '--config',
      configPath,
      '--from',
      '2026-03-03',
      '--to',
      '2026-03-04',
    ]);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('No look-in');
    expect(result.stdout).not.toContain('Looked in');
  });

  it('gives the records as JSON, a --to day ending at midnight in the home', async () => {
    // The refusal at 23:40 UTC on 2 March is 00:40 on 3 March in Stockholm: not part of the 2nd.
    const result = await cliInProcess(['audit', '--config', configPath, '--json', '--to', '2026-03-02']);
    const parsed = JSON.parse(result.stdout) as { records: Array<{ kind: string }> };
    expect(parsed.records.map((record) => record.kind)).toEqual(['request', 'session-end']);
  });

  it.each([
    // 22:15:03 UTC on 2 March is 23:15:03 in Stockholm; 23:40 UTC is 00:40 on 3 March.
    ['a local time in the home', '2026-03-02T23:15', '2026-03-03T00:39', ['request', 'session-end']],
    [
      'an instant with its offset',
      '2026-03-02T22:15:10Z',
      '2026-03-03T00:41:00+01:00',
      ['session-end', 'request'],
    ],
  ])('takes %s for --from and --to', async (_form, from, to, kinds) => {
    const result = await cliInProcess([
      'audit',
      '--config',
      configPath,
      '--json',
      '--from',
      from,
      '--to',
      to,
    ]);
    const parsed = JSON.parse(result.stdout) as { records: Array<{ kind: string }> };
    expect(parsed.records.map((record) => record.kind)).toEqual(kinds);
  });

  it('refuses a day that is not in the calendar', async () => {
    const result = await cliInProcess(['audit', '--config', configPath, '--from', '2026-02-30']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('--from 2026-02-30: not a date');
  });

  it('reads --audit-dir when the config is gone, as after install.sh --uninstall', async () => {
    const missing = join(dir, 'uninstalled', 'config.json');

    const refused = await cliInProcess(['audit', '--config', missing]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('give --audit-dir DIR');

    const result = await cliInProcess([
      'audit',
      '--config',
      missing,
      '--audit-dir',
      join(dir, 'state', 'audit'),
    ]);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('Looked in');
  });

  it('says what to check when the date is not a date', async () => {
    const result = await cliInProcess(['audit', '--config', configPath, '--from', 'yesterday']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('--from yesterday: not a date');
  });
});

describe('--help', () => {
  it.each([['--help'], ['provision', '--help'], ['self-test', '--help'], ['audit', '--help']])(
    '%s prints usage and exits 0',
    async (...argv) => {
      const result = await cliInProcess(argv);
      expect(result.code).toBe(0);
      expect(result.stdout).toMatch(/^Usage: trygghetskamera-provision/);
    },
  );

  it('an unknown option names itself and points at --help', async () => {
    const result = await cliInProcess(['self-test', '--bogus']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("'--bogus'");
    expect(result.stderr).toContain('self-test --help');
  });
});
