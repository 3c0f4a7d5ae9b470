// The camera at night, for the technician: `provision` lists the camera's controls (a fake UVC webcam
// at the ioctl seam) and writes the night preset; the self-test's brightness measure on pictures made by
// ffmpeg, dark and bright, checked against the mean of their pixels decoded another way (gray raw).
import { execFileSync } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Config, parseConfig } from '../../device/config/index.js';
import { applyNightControls, defaultMinBrightness, meanBrightness } from '../../provisioning/night.js';
import { runFile } from '../../provisioning/run.js';
import { removeTestTempDir, testPki, testTempDir } from '../../scripts/devstack/pki.js';
import { FakeV4l2Device, uvcWebcamControls } from '../camera/fake-v4l2.js';
import { centralKeyFile, cliInProcess } from './support.js';

let dir: string;

beforeAll(() => {
  dir = testTempDir('night');
});

afterAll(() => removeTestTempDir(dir));

/** A JPEG of ffmpeg's lavfi `source`, like a camera's snapshot. */
function picture(name: string, source: string): string {
  const file = join(dir, `${name}.jpg`);
  execFileSync('ffmpeg', [
    '-hide_banner',
    '-loglevel',
    'error',
    '-y',
    '-f',
    'lavfi',
    '-i',
    source,
    '-frames:v',
    '1',
    file,
  ]);
  return file;
}

/** The oracle: every decoded pixel's gray value, averaged here. */
function pixelMean(file: string): number {
  const gray = execFileSync(
    'ffmpeg',
    ['-hide_banner', '-loglevel', 'error', '-i', file, '-vf', 'format=gray', '-f', 'rawvideo', '-'],
    {
      maxBuffer: 1 << 24,
    },
  );
  return gray.reduce((sum, value) => sum + value, 0) / gray.length;
}

describe('meanBrightness', () => {
  it.each([
    ['a black room', 'color=c=black:s=320x240', 0],
    ['a dim room without IR', 'color=c=0x161616:s=320x240', 22],
    ['an IR-lit room', 'color=c=0x707070:s=320x240', 112],
    ['the test pattern', 'testsrc=size=320x240', undefined],
  ])('measures %s as the mean of its pixels', async (_what, source, expected) => {
    const file = picture(source.replace(/\W/g, ''), source);
    const measured = await meanBrightness(runFile, 'ffmpeg', file);
    if (!measured.ok) throw new Error(measured.detail);
    expect(Math.abs(measured.mean - pixelMean(file))).toBeLessThan(1.5);
    if (expected !== undefined) expect(Math.abs(measured.mean - expected)).toBeLessThan(2);
  });

  it('puts a dark room without IR below the threshold and an IR-lit room above it', async () => {
    const dark = await meanBrightness(runFile, 'ffmpeg', picture('dark', 'color=c=0x161616:s=320x240'));
    const lit = await meanBrightness(runFile, 'ffmpeg', picture('lit', 'color=c=0x707070:s=320x240'));
    expect(dark.ok && dark.mean < defaultMinBrightness).toBe(true);
    expect(lit.ok && lit.mean >= defaultMinBrightness).toBe(true);
  });

  it('says why when the file is not a picture', async () => {
    const file = join(dir, 'not.jpg');
    await writeFile(file, 'not a picture');
    const measured = await meanBrightness(runFile, 'ffmpeg', file);
    expect(measured.ok).toBe(false);
  });
});

describe('provision and the camera controls', () => {
  it('lists the camera controls by id, names the ones it sets, and writes the night preset', async () => {
    const root = join(dir, 'root');
    await mkdir(join(root, 'sys/class/video4linux/video0'), { recursive: true });
    await writeFile(join(root, 'sys/class/video4linux/video0/name'), 'Fake Webcam C920\n');
    const camera = new FakeV4l2Device(
      join(root, '/dev/video0'),
      uvcWebcamControls().filter((control) => control.id !== 0x009a0903),
    );
    const pki = await testPki();
    const configDir = join(dir, 'etc');
    const result = await cliInProcess(
      [
        'provision',
        '--non-interactive',
        '--config-dir',
        configDir,
        '--device-id',
        'night-0001',
        '--broker-url',
        'mqtts://127.0.0.1:8883',
        '--ca-file',
        pki.caCert,
        '--central-key',
        `central-1=${await centralKeyFile(dir)}`,
        '--camera',
        '/dev/video0',
        '--camera-format',
        'mjpeg',
        '--night',
        '22:00-06:30',
        '--gpio-kind',
        'sim',
        '--state-dir',
        join(dir, 'state'),
      ],
      { owner: null, root, v4l2: camera },
    );
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(
      '  0x00980918 Power Line Frequency: 0 Disabled, 1 50 Hz, 2 60 Hz = 2  (camera.controls: powerLineFrequency)',
    );
    expect(result.stdout).toContain(
      '  0x009a0901 Auto Exposure: 1 Manual Mode, 3 Aperture Priority Mode = 3',
    );
    expect(result.stdout).toContain('  0x00980901 Contrast: 0..255 = 128\n');
    expect(result.stdout).toContain('This camera has no exposureDynamicFramerate');
    // Listing sets nothing.
    expect(camera.writes).toEqual([]);
    const parsed = parseConfig(JSON.parse(await readFile(join(configDir, 'config.json'), 'utf8')));
    if (!parsed.ok) throw new Error(parsed.errors.join('; '));
    expect(parsed.config.camera.controls).toMatchObject({
      nightFrom: '22:00',
      nightTo: '06:30',
      night: {
        powerLineFrequency: '50Hz',
        autoExposure: 'aperture-priority',
        exposureDynamicFramerate: true,
      },
      day: { powerLineFrequency: '50Hz', exposureDynamicFramerate: false },
    });
  });
});

describe('the night settings for the aim snapshot', () => {
  it('sets the night values on the camera even by day, when the technician installs it', () => {
    const config = Config.parse({
      deviceId: 'night-0002',
      broker: { url: 'mqtt://127.0.0.1:1883' },
      centralKeys: [{ kid: 'k', publicKeyPem: '-----BEGIN PUBLIC KEY-----x' }],
      gpio: { kind: 'sim', viewingLed: { pin: 17 }, button: { pin: 27 } },
      camera: { source: { kind: 'v4l2', device: '/dev/video0' } },
    });
    const camera = new FakeV4l2Device('/fake-root/dev/video0', uvcWebcamControls());
    const noon = Date.parse('2026-06-15T10:00:00Z');
    const report = applyNightControls(camera, config, '/fake-root', noon);
    expect(report?.profile).toBe('night');
    expect(report?.failedRequired).toEqual([]);
    expect([camera.value(0x00980918), camera.value(0x009a0901), camera.value(0x009a0903)]).toEqual([1, 3, 1]);
  });
});
