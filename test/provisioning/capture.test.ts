// The self-test's camera rules on their own: the stored privacy mode as the service reads it, the
// viewing LED lit exactly while a frame is taken, and the snapshot's private, short-lived directory.
import { mkdir, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SimGpio } from '../../device/hardware/index.js';
import { inPrivateDirectory, readStoredPrivacy, withViewingLed } from '../../provisioning/capture.js';
import { removeTestTempDir, testTempDir } from '../../scripts/devstack/pki.js';

let dir: string;
let cases = 0;

beforeAll(() => {
  dir = testTempDir('capture');
});

afterAll(() => {
  removeTestTempDir(dir);
});

async function stateDir(privacyFile?: string): Promise<string> {
  cases += 1;
  const path = join(dir, `state-${cases}`);
  await mkdir(path);
  if (privacyFile !== undefined) await writeFile(join(path, 'privacy.json'), privacyFile);
  return path;
}

const gpio = () => new SimGpio();

describe('readStoredPrivacy', () => {
  it('reads privacy on from the service’s file', async () => {
    const stored = await readStoredPrivacy(
      await stateDir('{"privacyOn":true,"changedAt":"2026-03-10T21:02:11.540Z"}\n'),
    );
    expect(stored).toEqual({
      privacyOn: true,
      detail: 'privacy mode is on (since 2026-03-10T21:02:11.540Z)',
    });
  });

  it('reads privacy off', async () => {
    const stored = await readStoredPrivacy(
      await stateDir('{"privacyOn":false,"changedAt":"2026-03-10T21:02:11.540Z"}\n'),
    );
    expect(stored.privacyOn).toBe(false);
  });

  it('takes a missing file as off, as the service does on its first start', async () => {
    expect((await readStoredPrivacy(await stateDir())).privacyOn).toBe(false);
  });

  it('takes a file it cannot read as on, as the service does', async () => {
    const stored = await readStoredPrivacy(await stateDir('{"privacyOn": fal'));
    expect(stored.privacyOn).toBe(true);
    expect(stored.detail).toMatch(/cannot be read .* so privacy counts as on/);
  });
});

describe('withViewingLed', () => {
  it('lights the viewing LED for the capture and puts it out after', async () => {
    const pins = gpio();
    let litDuring: boolean | undefined;
    const result = await withViewingLed(pins.viewingLed, async () => {
      litDuring = pins.viewingLed.value;
      return 'frame';
    });
    expect(result).toEqual({ ok: true, value: 'frame' });
    expect(litDuring).toBe(true);
    expect(pins.viewingLed.value).toBe(false);
  });

  it('puts the LED out when the capture throws', async () => {
    const pins = gpio();
    await expect(
      withViewingLed(pins.viewingLed, async () => {
        throw new Error('camera gone');
      }),
    ).rejects.toThrow('camera gone');
    expect(pins.viewingLed.value).toBe(false);
  });

  it('does not capture when the LED cannot be lit', async () => {
    const pins = gpio();
    pins.viewingLed.injectFault('all');
    let captured = false;
    const result = await withViewingLed(pins.viewingLed, async () => {
      captured = true;
    });
    expect(captured).toBe(false);
    expect(result).toEqual({
      ok: false,
      detail: expect.stringMatching(/^the viewing LED could not be lit: /),
    });
  });
});

describe('inPrivateDirectory', () => {
  it('gives a path in a new directory that only its owner may enter', async () => {
    const tmp = join(dir, 'tmp-mode');
    await mkdir(tmp);
    await inPrivateDirectory(tmp, async (file) => {
      expect(file).toMatch(/\/trygghetskamera-aim-\w{6}\/aim\.jpg$/);
      expect((await stat(join(file, '..'))).mode & 0o777).toBe(0o700);
    });
  });

  it('removes the directory and the picture afterwards', async () => {
    const tmp = join(dir, 'tmp-gone');
    await mkdir(tmp);
    await inPrivateDirectory(tmp, (file) => writeFile(file, 'jpeg'));
    expect(await readdir(tmp)).toEqual([]);
  });

  it('removes them also when the body throws', async () => {
    const tmp = join(dir, 'tmp-throw');
    await mkdir(tmp);
    await expect(
      inPrivateDirectory(tmp, async (file) => {
        await writeFile(file, 'jpeg');
        throw new Error('fswebcam crashed');
      }),
    ).rejects.toThrow('fswebcam crashed');
    expect(await readdir(tmp)).toEqual([]);
  });
});
