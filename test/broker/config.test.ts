// The broker set-up we ship: docs/mosquitto/ is what scripts/broker/config.ts generates and describes,
// and the ACL generator gives every console its own block with the same rights. What the rules do
// with real clients is proven in test/devstack/broker-acl.test.ts.
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  consoleIdentities,
  exampleConsoles,
  maxPacketSizeBytes,
  mosquittoAcl,
} from '../../scripts/broker/config.js';
import { removeTestTempDir, testTempDir } from '../../scripts/devstack/pki.js';

const run = promisify(execFile);
const generator = new URL('../../scripts/broker/generate.ts', import.meta.url).pathname;

function shipped(name: string): Promise<string> {
  return readFile(new URL(`../../docs/mosquitto/${name}`, import.meta.url), 'utf8');
}

/** The ACL's `user` blocks, by user name: the lines up to the next blank line. */
function userBlocks(acl: string): Map<string, string[]> {
  const blocks = new Map<string, string[]>();
  for (const block of acl.split('\n\n')) {
    const lines = block.split('\n').filter((line) => line !== '' && !line.startsWith('#'));
    const user = /^user (\S+)$/.exec(lines[0] ?? '')?.[1];
    if (user !== undefined) blocks.set(user, lines.slice(1));
  }
  return blocks;
}

/** Listener blocks of a mosquitto.conf: the settings lines after each `listener` line. */
function listenerBlocks(conf: string): string[][] {
  const blocks: string[][] = [];
  for (const line of conf.split('\n')) {
    if (line.startsWith('listener ')) blocks.push([]);
    else if (line !== '' && !line.startsWith('#')) blocks.at(-1)?.push(line);
  }
  return blocks;
}

describe('shipped broker configuration', () => {
  it('ships the ACL that `npm run broker-config` generates in docs/mosquitto/acl.conf', async () => {
    expect(await shipped('acl.conf'), 'regenerate: npm run broker-config').toBe(
      mosquittoAcl(exampleConsoles),
    );
  });

  it('limits packets in mosquitto.conf to maxPacketSizeBytes, before the first listener', async () => {
    const conf = await shipped('mosquitto.conf');
    const limit = conf.indexOf(`\nmax_packet_size ${maxPacketSizeBytes}\n`);

    expect(limit).toBeGreaterThan(0);
    expect(limit).toBeLessThan(conf.indexOf('\nlistener '));
  });

  it('uses the username as client id on every listener of mosquitto.conf', async () => {
    const listeners = listenerBlocks(await shipped('mosquitto.conf'));

    expect(listeners.length).toBeGreaterThanOrEqual(2);
    for (const settings of listeners) {
      expect(settings).toContain('use_username_as_clientid true');
      expect(settings).toContain('allow_anonymous false');
    }
  });
});

describe('ACL for operator consoles', () => {
  it('gives each console its own block with the same rights and no shared operator account', () => {
    const blocks = userBlocks(mosquittoAcl(['console-natt', 'console-dag']));
    const rights = (name: string) => blocks.get(name)?.map((line) => line.replaceAll(name, '<self>'));

    expect([...blocks.keys()]).toEqual(['central', 'ops', 'console-natt', 'console-dag']);
    expect(rights('console-natt')).toEqual([
      'topic deny tk/<self>/#',
      'topic write tk/+/view/request',
      'topic read tk/+/view/answer',
      'topic read tk/+/status',
    ]);
    expect(rights('console-dag')).toEqual(rights('console-natt'));
  });

  it('refuses a console identity without the console- prefix', () => {
    expect(() => consoleIdentities(['operator'])).toThrow(/must match/);
  });

  it('refuses a console identity given twice', () => {
    expect(() => consoleIdentities(['console-a', 'console-a'])).toThrow(/twice/);
  });
});

describe('npm run broker-config', () => {
  let dir: string;

  beforeAll(() => {
    dir = testTempDir('broker-config');
  });

  afterAll(() => removeTestTempDir(dir));

  it('writes the ACL for the consoles it is given to --out', async () => {
    const out = join(dir, 'acl.conf');

    await run(process.execPath, ['--import', 'tsx', generator, '--out', out, 'console-natt', 'console-dag']);

    expect(await readFile(out, 'utf8')).toBe(mosquittoAcl(['console-natt', 'console-dag']));
  });

  it('exits 2 and writes nothing for a malformed console identity', async () => {
    const out = join(dir, 'bad.conf');

    const failed = await run(process.execPath, [
      '--import',
      'tsx',
      generator,
      '--out',
      out,
      'Console A',
    ]).catch((error: { code: number; stderr: string }) => error);

    expect(failed).toMatchObject({ code: 2, stderr: expect.stringContaining('must match') });
    await expect(readFile(out, 'utf8')).rejects.toThrow(/ENOENT/);
  });
});
