// Camera listing from a fake /sys tree, v4l2-ctl output parsing, and the shell-safety gate in front of
// node-webcam (which builds a shell command line from its options).
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkSnapshotOptions, listVideoDevices, parseV4l2Formats } from '../../provisioning/camera.js';
import type { Runner } from '../../provisioning/run.js';
import { removeTestTempDir, testTempDir } from '../../scripts/devstack/pki.js';

const v4l2Output = `ioctl: VIDIOC_ENUM_FMT
	Type: Video Capture

	[0]: 'MJPG' (Motion-JPEG, compressed)
		Size: Discrete 1280x720
			Interval: Discrete 0.033s (30.000 fps)
		Size: Discrete 640x480
			Interval: Discrete 0.033s (30.000 fps)
	[1]: 'YUYV' (YUYV 4:2:2)
		Size: Discrete 640x480
			Interval: Discrete 0.033s (30.000 fps)
`;

let root: string;

beforeAll(async () => {
  root = testTempDir('cam');
  for (const [node, name] of [
    ['video0', 'USB Camera: USB Camera'],
    ['video1', 'USB Camera: USB Camera'],
  ] as const) {
    await mkdir(join(root, 'sys/class/video4linux', node), { recursive: true });
    await writeFile(join(root, 'sys/class/video4linux', node, 'name'), `${name}\n`);
  }
  await mkdir(join(root, 'dev/v4l/by-id'), { recursive: true });
  await symlink('../../video0', join(root, 'dev/v4l/by-id/usb-Cam_123-video-index0'));
});

afterAll(() => removeTestTempDir(root));

describe('camera listing', () => {
  it('parses formats and sizes from v4l2-ctl --list-formats-ext', () => {
    expect(parseV4l2Formats(v4l2Output)).toEqual([
      {
        fourcc: 'MJPG',
        description: 'Motion-JPEG, compressed',
        inputFormat: 'mjpeg',
        sizes: ['1280x720', '640x480'],
      },
      { fourcc: 'YUYV', description: 'YUYV 4:2:2', inputFormat: 'yuyv422', sizes: ['640x480'] },
    ]);
  });

  it('lists V4L2 nodes from /sys with their stable by-id path and formats', async () => {
    const calls: string[][] = [];
    const run: Runner = async (_file, args) => {
      calls.push([...args]);
      // The metadata node of a USB camera lists no capture formats.
      return { code: 0, stdout: args.includes('/dev/video0') ? v4l2Output : '', stderr: '' };
    };
    const { devices } = await listVideoDevices({ run, root, v4l2ctl: 'v4l2-ctl' });
    expect(devices.map((device) => [device.path, device.stablePath, device.formats.length])).toEqual([
      ['/dev/video0', '/dev/v4l/by-id/usb-Cam_123-video-index0', 2],
      ['/dev/video1', undefined, 0],
    ]);
    expect(calls[0]).toEqual(['--list-formats-ext', '-d', '/dev/video0']);
  });

  it('says so when v4l2-ctl is not installed', async () => {
    const run: Runner = async () => ({ code: null, stdout: '', stderr: '', failure: 'ENOENT' });
    const listed = await listVideoDevices({ run, root, v4l2ctl: 'v4l2-ctl' });
    expect(listed.devices).toHaveLength(2);
    expect(listed.note).toContain('apt install v4l-utils');
  });
});

describe('snapshot options', () => {
  const safe = {
    device: '/dev/video0',
    width: 1280,
    height: 720,
    quality: 85,
    skipFrames: 10,
    file: '/tmp/aim.jpg',
  };

  it('accepts a plain device path, size and output file', () => {
    expect(checkSnapshotOptions(safe)).toBeUndefined();
    expect(
      checkSnapshotOptions({ ...safe, device: '/dev/v4l/by-id/usb-Cam_123-video-index0' }),
    ).toBeUndefined();
  });

  it.each([
    '/dev/video0; rm -rf /',
    '/dev/video0 $(reboot)',
    '/dev/v4l/by-id/a`id`',
    '/dev/video0\n',
    '-d /dev/video0',
  ])('refuses the device %j before any shell sees it', (device) => {
    expect(checkSnapshotOptions({ ...safe, device })).toMatch(/unsafe or unknown camera device/);
  });

  it.each(['/tmp/aim.jpg; reboot', '/tmp/my aim.jpg', 'aim.jpg', '/tmp/aim.png', '/tmp/$HOME.jpg'])(
    'refuses the output file %j',
    (file) => {
      expect(checkSnapshotOptions({ ...safe, file })).toMatch(/snapshot file/);
    },
  );

  it('refuses sizes and quality that are not whole numbers in range', () => {
    expect(checkSnapshotOptions({ ...safe, width: 1280.5 })).toBe('invalid snapshot size');
    expect(checkSnapshotOptions({ ...safe, quality: 100 })).toBe('JPEG quality must be 1-95');
  });
});
