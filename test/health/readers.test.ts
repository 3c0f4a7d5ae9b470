// The system readers against a fixture root (what a Pi 4 with a USB camera and Wi-Fi shows in /proc,
// /sys, /etc and /dev), and against an empty root (nothing there: every optional field is absent).
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cameraPresent,
  collectHealth,
  collectInfo,
  type RunCommand,
  readCameraFormats,
  readCameraModel,
  readCpuTempC,
  readDiskFreeMB,
  readLoad1,
  readMemFreeMB,
  readModel,
  readOs,
  readThrottled,
  readWifiDbm,
  systemReaders,
} from '../../device/health/index.js';
import { HealthMessage, InfoMessage } from '../../device/protocol/index.js';

let pi: string;
let empty: string;

const files: Record<string, string> = {
  '/proc/device-tree/model': 'Raspberry Pi 4 Model B Rev 1.5\0',
  '/etc/os-release':
    'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\n',
  '/sys/class/thermal/thermal_zone0/temp': '48312\n',
  '/proc/loadavg': '0.42 0.30 0.25 1/123 4567\n',
  '/proc/meminfo': 'MemTotal:        3884096 kB\nMemFree:          912000 kB\nMemAvailable:    1548288 kB\n',
  '/proc/net/wireless':
    'Inter-| sta-|   Quality        |   Discarded packets               | Missed | WE\n' +
    ' face | tus | link level noise |  nwid  crypt   frag  retry   misc | beacon | 22\n' +
    'wlan0: 0000   54.  -56.  -256        0      0      0      0     12        0\n',
  '/sys/class/video4linux/video0/name': 'USB 2.0 Camera: IR Camera\n',
  // The firmware driver's node: hex without 0x (under-voltage now, throttled now, both since boot).
  '/sys/devices/platform/soc/soc:firmware/get_throttled': '50005\n',
  '/dev/video0': '',
};

const run: RunCommand = async (file) => {
  if (file === 'vcgencmd') return 'throttled=0x50005\n';
  if (file === 'v4l2-ctl')
    return "ioctl: VIDIOC_ENUM_FMT\n\tType: Video Capture\n\n\t[0]: 'MJPG' (Motion-JPEG, compressed)\n\t[1]: 'YUYV' (YUYV 4:2:2)\n";
  return undefined;
};
const nothing: RunCommand = async () => undefined;
/** As under the hardened unit: `DevicePolicy=closed` denies /dev/vcio, so vcgencmd fails. */
const noVcgencmd: RunCommand = async (file, args) => (file === 'vcgencmd' ? undefined : run(file, args));

beforeAll(async () => {
  pi = await mkdtemp(join(tmpdir(), 'tk-health-pi-'));
  empty = await mkdtemp(join(tmpdir(), 'tk-health-empty-'));
  for (const [path, content] of Object.entries(files)) {
    await mkdir(dirname(join(pi, path)), { recursive: true });
    await writeFile(join(pi, path), content);
  }
  await mkdir(join(pi, '/dev/v4l/by-id'), { recursive: true });
  await symlink(join(pi, '/dev/video0'), join(pi, '/dev/v4l/by-id/usb-cam-video-index0'));
});

afterAll(async () => {
  await rm(pi, { recursive: true, force: true });
  await rm(empty, { recursive: true, force: true });
});

describe('system readers on a Pi-like root', () => {
  it('reads the hardware model without the trailing NUL', async () => {
    expect(await readModel(pi)).toBe('Raspberry Pi 4 Model B Rev 1.5');
  });
  it('reads the OS pretty name', async () => {
    expect(await readOs(pi)).toBe('Debian GNU/Linux 12 (bookworm)');
  });
  it('reads the CPU temperature to a tenth of a degree', async () => {
    expect(await readCpuTempC(pi)).toBe(48.3);
  });
  it('reads load, available memory and the Wi-Fi level', async () => {
    expect([await readLoad1(pi), await readMemFreeMB(pi), await readWifiDbm(pi)]).toEqual([0.42, 1512, -56]);
  });
  it('reads the throttling bits from the firmware node in sysfs, without vcgencmd', async () => {
    expect(await readThrottled(pi, noVcgencmd)).toBe(0x50005);
  });
  it('prefers the sysfs node to vcgencmd', async () => {
    expect(await readThrottled(pi, async () => 'throttled=0x0\n')).toBe(0x50005);
  });
  it('falls back to vcgencmd get_throttled where the node is missing', async () => {
    expect(await readThrottled(empty, run)).toBe(0x50005);
  });
  it('falls back to vcgencmd when the node holds something that is not hex', async () => {
    const odd = await mkdtemp(join(tmpdir(), 'tk-health-odd-'));
    try {
      const node = join(odd, '/sys/devices/platform/soc/soc:firmware/get_throttled');
      await mkdir(dirname(node), { recursive: true });
      await writeFile(node, 'permission denied\n');
      expect(await readThrottled(odd, async () => 'throttled=0x8\n')).toBe(0x8);
      expect(await readThrottled(odd, nothing)).toBeUndefined();
    } finally {
      await rm(odd, { recursive: true, force: true });
    }
  });
  it('finds the camera, its card name (also through a by-id link) and its formats', async () => {
    expect(await cameraPresent(pi, '/dev/video0')).toBe(true);
    expect(await readCameraModel(pi, '/dev/v4l/by-id/usb-cam-video-index0')).toBe(
      'USB 2.0 Camera: IR Camera',
    );
    expect(await readCameraFormats(run, '/dev/video0')).toEqual(['MJPG', 'YUYV']);
  });
  it('reads free disk space of a real directory', async () => {
    expect(await readDiskFreeMB(pi)).toBeGreaterThan(0);
  });
});

describe('system readers on an empty root', () => {
  it('returns nothing rather than guessing', async () => {
    expect([
      await readModel(empty),
      await readOs(empty),
      await readCpuTempC(empty),
      await readWifiDbm(empty),
      await readThrottled(empty, nothing),
      await readCameraFormats(nothing, '/dev/video0'),
    ]).toEqual([undefined, undefined, undefined, undefined, undefined, undefined]);
    expect(await cameraPresent(empty, '/dev/video0')).toBe(false);
  });
});

const snapshot = {
  privacyOn: false,
  clockTrusted: true,
  ledFault: false,
  scheduleVersion: 7,
  nextWindowStartMs: Date.parse('2026-03-10T21:00:00.500Z'),
  lastEndReason: 'operator-hangup',
  refusals: { 'outside-window': 3, 'not-a-reason': 9, 'privacy-on': 0 },
  reconnects: 0,
  outboxDepth: 0,
  outboxFull: false,
  telemetryDropped: 0,
};

describe('health and info from the readers', () => {
  it('reports a Pi under-voltage as a fault under the hardened unit (no vcgencmd) and leaves zero counters out', async () => {
    const readers = systemReaders({ root: pi, stateDir: pi, cameraDevice: '/dev/video0', run: noVcgencmd });
    const health = await collectHealth({ readers, snapshot, uptimeS: 61.7, diskLowMB: 1 });
    expect(HealthMessage.parse(health)).toEqual(health);
    expect(health).toMatchObject({
      uptimeS: 61,
      throttled: 0x50005,
      wifiDbm: -56,
      nextWindowAt: '2026-03-10T21:00:00Z',
      refusals: { 'outside-window': 3 },
      faults: ['under-voltage', 'throttled'],
    });
    expect(health).not.toHaveProperty('reconnects');
    expect(health).not.toHaveProperty('outboxDepth');
  });

  it('reports a missing camera, an untrusted clock and a nearly full disk', async () => {
    const readers = systemReaders({
      root: empty,
      stateDir: empty,
      cameraDevice: '/dev/video0',
      run: nothing,
    });
    const health = await collectHealth({
      readers,
      snapshot: { ...snapshot, clockTrusted: false },
      uptimeS: 5,
      diskLowMB: 100_000_000,
    });
    expect(health.faults).toEqual(['camera', 'clock', 'disk']);
    expect(health).not.toHaveProperty('wifiDbm');
  });

  it('builds a valid info message', async () => {
    const readers = systemReaders({ root: pi, stateDir: pi, cameraDevice: '/dev/video0', run });
    const info = await collectInfo({
      readers,
      cameraDevice: '/dev/video0',
      configHash: '0123456789abcdef',
      nodeVersion: 'v20.19.5',
      nowMs: Date.parse('2026-03-10T20:58:13.102Z'),
    });
    expect(InfoMessage.parse(info)).toEqual(info);
    expect(info).toMatchObject({
      hardware: 'Raspberry Pi 4 Model B Rev 1.5',
      camera: { device: '/dev/video0', model: 'USB 2.0 Camera: IR Camera', formats: ['MJPG', 'YUYV'] },
    });
    expect(info.firmware).toMatch(/^\d+\.\d+\.\d+/);
  });
});
