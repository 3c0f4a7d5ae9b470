// Camera controls at the ioctl seam: the plan (day or night in Stockholm time, the view mode's own
// values), apply and read back on a fake UVC webcam that speaks the kernel's struct bytes, and every way
// a control can fail to take — missing, read-only, out of range, not in the menu, a device that silently
// keeps its own value — with the fault only for a required one. Also the real koffi ioctl on this kernel.
import { execFileSync } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  applyControls,
  CameraControlsStatus,
  describeControls,
  isNight,
  koffiV4l2Port,
  listControls,
  planControls,
  VIDIOC,
  verifyControls,
} from '../../device/camera/index.js';
import { Config } from '../../device/config/index.js';
import { collectHealth, type SystemReaders } from '../../device/health/index.js';
import { FakeV4l2Device, FLAG, REQUEST, TYPE, uvcWebcamControls } from './fake-v4l2.js';

const device = '/dev/v4l/by-id/usb-fake-video-index0';
const controls = Config.shape.camera.unwrap().shape.controls.unwrap().parse({});
// Fixed instants, Europe/Stockholm: 22:30 CET in winter, 12:00 CEST in summer, 06:59 and 07:00 CEST.
const winterNight = Date.parse('2026-01-15T21:30:00Z');
const summerNoon = Date.parse('2026-06-15T10:00:00Z');
const stockholm = 'Europe/Stockholm';

function webcam(): FakeV4l2Device {
  return new FakeV4l2Device(device, uvcWebcamControls());
}

describe('the ioctl numbers', () => {
  it('are the kernel ABI values of VIDIOC_QUERYCTRL, QUERYMENU, G_CTRL and S_CTRL', () => {
    expect(VIDIOC).toEqual({
      QUERYCTRL: REQUEST.QUERYCTRL,
      QUERYMENU: REQUEST.QUERYMENU,
      G_CTRL: REQUEST.G_CTRL,
      S_CTRL: REQUEST.S_CTRL,
    });
  });
});

describe('planControls', () => {
  it('uses the night preset at night in local time: 50 Hz, aperture priority, dynamic frame rate', () => {
    const plan = planControls(controls, 'full', winterNight, stockholm);
    expect(plan.profile).toBe('night');
    expect(plan.wanted.map((w) => [w.id, w.value, w.required])).toEqual([
      [0x00980918, 1, true],
      [0x009a0901, 3, false],
      [0x009a0903, 1, false],
    ]);
  });

  it('uses the day values by day: no dynamic frame rate', () => {
    const plan = planControls(controls, 'full', summerNoon, stockholm);
    expect(plan.profile).toBe('day');
    expect(plan.wanted.find((w) => w.name === 'exposureDynamicFramerate')?.value).toBe(0);
  });

  it('tells night from day across midnight and in summer time', () => {
    expect(isNight(Date.parse('2026-06-15T04:59:00Z'), stockholm, '21:00', '07:00')).toBe(true);
    expect(isNight(Date.parse('2026-06-15T05:00:00Z'), stockholm, '21:00', '07:00')).toBe(false);
    expect(isNight(Date.parse('2026-01-15T19:59:00Z'), stockholm, '21:00', '07:00')).toBe(false);
    expect(isNight(Date.parse('2026-01-15T20:00:00Z'), stockholm, '21:00', '07:00')).toBe(true);
    expect(isNight(Date.parse('2026-01-15T12:00:00Z'), stockholm, '09:00', '17:00')).toBe(true);
  });

  it("adds a view mode's own values over the time of day's", () => {
    const withMode = { ...controls, viewModes: { blurred: { brightness: 160, gain: 40 } } };
    const blurred = planControls(withMode, 'blurred', winterNight, stockholm);
    const full = planControls(withMode, 'full', winterNight, stockholm);
    expect(blurred.wanted.map((w) => w.name)).toEqual([
      'powerLineFrequency',
      'autoExposure',
      'exposureDynamicFramerate',
      'brightness',
      'gain',
    ]);
    expect(full.wanted.map((w) => w.name)).not.toContain('brightness');
  });

  it('refuses a config with a bad night time or an unknown required control', () => {
    const schema = Config.shape.camera.unwrap().shape.controls.unwrap();
    expect(schema.safeParse({ nightFrom: '25:00' }).success).toBe(false);
    expect(schema.safeParse({ required: ['exposure_auto'] }).success).toBe(false);
    expect(schema.safeParse({ night: { powerLineFrequency: '50' } }).success).toBe(false);
  });
});

describe('applyControls', () => {
  it('sets every planned control by id and reads each back; the device ends as configured', () => {
    const camera = webcam();
    const report = applyControls(camera, device, planControls(controls, 'full', winterNight, stockholm), 1);
    expect(report.outcomes.map((o) => [o.name, o.status, o.actual])).toEqual([
      ['powerLineFrequency', 'ok', 1],
      ['autoExposure', 'ok', 3],
      ['exposureDynamicFramerate', 'ok', 1],
    ]);
    expect(report.failedRequired).toEqual([]);
    expect(report.warnings).toEqual([]);
    expect([camera.value(0x00980918), camera.value(0x009a0901), camera.value(0x009a0903)]).toEqual([1, 3, 1]);
    expect(camera.openDescriptors).toBe(0);
  });

  it('applies again after a replug, which made the camera forget everything', () => {
    const camera = webcam();
    const plan = planControls(controls, 'full', winterNight, stockholm);
    applyControls(camera, device, plan, 1);
    camera.replug();
    expect(camera.value(0x00980918)).toBe(2);
    const again = applyControls(camera, device, plan, 2);
    expect(again.failedRequired).toEqual([]);
    expect(camera.value(0x00980918)).toBe(1);
    expect(camera.opens).toBe(2);
  });

  it('finds a read-back mismatch on a device that says yes and keeps its own value', () => {
    const table = uvcWebcamControls().map((c) => (c.id === 0x00980918 ? { ...c, ignoresWrites: true } : c));
    const camera = new FakeV4l2Device(device, table);
    const report = applyControls(camera, device, planControls(controls, 'full', winterNight, stockholm), 1);
    const power = report.outcomes.find((o) => o.name === 'powerLineFrequency');
    expect(power).toMatchObject({ status: 'mismatch', wanted: 1, actual: 2 });
    expect(camera.writes).toContainEqual([0x00980918, 1]);
    expect(report.failedRequired).toEqual(['powerLineFrequency']);
  });

  it('refuses a value outside the advertised range before sending it', () => {
    const camera = webcam();
    const plan = planControls({ ...controls, night: { brightness: 300 } }, 'full', winterNight, stockholm);
    expect(applyControls(camera, device, plan, 1).outcomes[0]).toMatchObject({ status: 'invalid' });
    expect(camera.writes).toEqual([]);
  });

  it('finds a value the device silently clamped below the range it advertises', () => {
    const table = uvcWebcamControls().map((c) => (c.id === 0x00980900 ? { ...c, trueMaximum: 200 } : c));
    const camera = new FakeV4l2Device(device, table);
    const plan = planControls({ ...controls, night: { brightness: 240 } }, 'full', winterNight, stockholm);
    const report = applyControls(camera, device, plan, 1);
    expect(report.outcomes[0]).toMatchObject({
      name: 'brightness',
      status: 'mismatch',
      wanted: 240,
      actual: 200,
    });
    expect(report.warnings).toEqual(['brightness: mismatch']);
    expect(report.failedRequired).toEqual([]);
  });

  it('warns about a control the camera does not have, and faults only when it is required', () => {
    const table = uvcWebcamControls().filter((c) => c.id !== 0x009a0903 && c.id !== 0x00980918);
    const camera = new FakeV4l2Device(device, table);
    const report = applyControls(camera, device, planControls(controls, 'full', winterNight, stockholm), 1);
    expect(report.warnings).toEqual(['powerLineFrequency: missing', 'exposureDynamicFramerate: missing']);
    expect(report.failedRequired).toEqual(['powerLineFrequency']);
  });

  it('does not send a menu value the camera does not offer (UVC has no plain auto exposure)', () => {
    const camera = webcam();
    const plan = planControls(
      { ...controls, night: { autoExposure: 'auto' } },
      'full',
      winterNight,
      stockholm,
    );
    const [outcome] = applyControls(camera, device, plan, 1).outcomes;
    expect(outcome).toMatchObject({ name: 'autoExposure', status: 'invalid' });
    expect(outcome?.detail).toMatch(/1 Manual Mode, 3 Aperture Priority Mode/);
    expect(camera.writes).toEqual([]);
  });

  it('reports a read-only control as not set', () => {
    const table = uvcWebcamControls().map((c) => (c.id === 0x00980913 ? { ...c, flags: FLAG.READ_ONLY } : c));
    const camera = new FakeV4l2Device(device, table);
    const plan = planControls({ ...controls, night: { gain: 50 } }, 'full', winterNight, stockholm);
    expect(applyControls(camera, device, plan, 1).warnings).toEqual(['gain: read-only']);
    expect(camera.value(0x00980913)).toBe(0);
  });

  it('sets an inactive control but warns that it has no effect now, never a fault', () => {
    const camera = webcam();
    camera.setFlags(0x00980913, FLAG.INACTIVE);
    const plan = planControls(
      { ...controls, night: { gain: 50 }, required: ['gain'] },
      'full',
      winterNight,
      stockholm,
    );
    const report = applyControls(camera, device, plan, 1);
    expect(report.warnings).toEqual(['gain: inactive']);
    expect(report.failedRequired).toEqual([]);
    expect(camera.value(0x00980913)).toBe(50);
  });

  it('queries each control right before setting it, so a flag an earlier control changed counts', () => {
    const camera = webcam();
    camera.setFlags(0x009a0903, FLAG.INACTIVE);
    // Aperture priority makes the dynamic frame rate control active (as on a real UVC camera).
    camera.onSet = (dev, id, value) => {
      if (id === 0x009a0901) dev.setFlags(0x009a0903, value === 3 ? 0 : FLAG.INACTIVE);
    };
    const report = applyControls(camera, device, planControls(controls, 'full', winterNight, stockholm), 1);
    expect(report.warnings).toEqual([]);
  });

  it('reports a camera it cannot open and sets nothing', () => {
    const camera = webcam();
    camera.unplug();
    const report = applyControls(camera, device, planControls(controls, 'full', winterNight, stockholm), 1);
    expect(report).toMatchObject({ openError: 'ENOENT', outcomes: [], failedRequired: [] });
  });
});

describe('verifyControls, after the first frame', () => {
  const plan = planControls(controls, 'full', winterNight, stockholm);

  it('gives the same report back when the camera kept every value', () => {
    const camera = webcam();
    const report = applyControls(camera, device, plan, 1);
    expect(verifyControls(camera, report, 2)).toBe(report);
    expect(camera.writes).toHaveLength(3);
  });

  it('sets again what the camera reset when streaming began, and says so', () => {
    const camera = webcam();
    const report = applyControls(camera, device, plan, 1);
    camera.poke(0x00980918, 2);
    const verified = verifyControls(camera, report, 2);
    expect(verified.resetAtStreamStart).toEqual(['powerLineFrequency']);
    expect(verified.warnings).toEqual(['powerLineFrequency: reset at stream start']);
    expect(verified.failedRequired).toEqual([]);
    expect(camera.value(0x00980918)).toBe(1);
  });

  it('is the fault when a required control was reset and cannot be set again', () => {
    const camera = webcam();
    const report = applyControls(camera, device, plan, 1);
    camera.poke(0x00980918, 2, { ignoresWrites: true });
    const verified = verifyControls(camera, report, 2);
    expect(verified.outcomes[0]).toMatchObject({ status: 'mismatch', actual: 2 });
    expect(verified.failedRequired).toEqual(['powerLineFrequency']);
  });
});

describe('listing controls', () => {
  it('enumerates every control with NEXT_CTRL, without class headings, with values and menus', () => {
    const camera = webcam();
    const opened = camera.open(device);
    if (!opened.ok) throw new Error('not opened');
    expect(listControls(camera, opened.fd).map((c) => c.id)).toEqual([
      0x00980900, 0x00980901, 0x00980913, 0x00980918, 0x0098091c, 0x009a0901, 0x009a0902, 0x009a0903,
    ]);
    camera.close(opened.fd);
    const described = describeControls(camera, device, listControls);
    if (!described.ok) throw new Error(described.code);
    const power = described.controls.find((c) => c.id === 0x00980918);
    expect(power).toMatchObject({ configName: 'powerLineFrequency', value: 2, type: TYPE.MENU });
    expect(power?.menu).toEqual([
      { index: 0, name: 'Disabled' },
      { index: 1, name: '50 Hz' },
      { index: 2, name: '60 Hz' },
    ]);
    expect(described.controls.find((c) => c.id === 0x00980901)?.configName).toBeUndefined();
  });
});

describe('health', () => {
  const readers: SystemReaders = {
    firmware: async () => '0.1.0',
    model: async () => undefined,
    os: async () => undefined,
    cpuTempC: async () => undefined,
    throttled: async () => undefined,
    load1: async () => 0.5,
    memFreeMB: async () => 500,
    diskFreeMB: async () => 1000,
    wifiDbm: async () => undefined,
    cameraPresent: async () => true,
    cameraModel: async () => undefined,
    cameraFormats: async () => undefined,
  };
  const snapshot = {
    privacyOn: false,
    clockTrusted: true,
    ledFault: false,
    scheduleVersion: undefined,
    nextWindowStartMs: undefined,
    lastEndReason: undefined,
    refusals: {},
    reconnects: 0,
    outboxDepth: 0,
    outboxFull: false,
    telemetryDropped: 0,
  };

  it('raises camera-controls when a required control did not take, and lists what did not', async () => {
    const status = new CameraControlsStatus();
    const changes: number[] = [];
    status.on('change', () => changes.push(1));
    const table = uvcWebcamControls().map((c) => (c.id === 0x00980918 ? { ...c, ignoresWrites: true } : c));
    status.update(
      applyControls(
        new FakeV4l2Device(device, table),
        device,
        planControls(controls, 'full', winterNight, stockholm),
        1,
      ),
    );
    const health = await collectHealth({
      readers,
      uptimeS: 10,
      diskLowMB: 100,
      snapshot: { ...snapshot, cameraControlsFault: status.fault, cameraControlWarnings: status.warnings },
    });
    expect(health.faults).toEqual(['camera-controls']);
    expect(health.cameraControls).toEqual(['powerLineFrequency: mismatch']);
    expect(changes).toHaveLength(1);
    // A good apply at the next camera open clears both.
    status.update(applyControls(webcam(), device, planControls(controls, 'full', winterNight, stockholm), 2));
    expect([status.fault, status.warnings, changes.length]).toEqual([false, [], 2]);
  });

  it('reports warnings without the fault when only optional controls did not take', async () => {
    const health = await collectHealth({
      readers,
      uptimeS: 10,
      diskLowMB: 100,
      snapshot: { ...snapshot, cameraControlsFault: false, cameraControlWarnings: ['gain: missing'] },
    });
    expect(health.faults).toBeUndefined();
    expect(health.cameraControls).toEqual(['gain: missing']);
  });
});

describe('the koffi port on this kernel', () => {
  const port = koffiV4l2Port();

  it('passes the struct to the kernel and sees it filled in place (FIONREAD on a FIFO)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tk-ioctl-'));
    try {
      const fifo = join(dir, 'fifo');
      execFileSync('mkfifo', [fifo]);
      const fd = openSync(fifo, constants.O_RDWR | constants.O_NONBLOCK);
      try {
        writeSync(fd, Buffer.from('hello'));
        const arg = Buffer.alloc(4, 0xff);
        expect(port.ioctl(fd, 0x541b, arg)).toEqual({ ok: true });
        expect(arg.readInt32LE(0)).toBe(5);
        // Not a V4L2 node: the kernel says so, and that is what a caller sees.
        expect(port.ioctl(fd, VIDIOC.QUERYCTRL, Buffer.alloc(68))).toEqual({ ok: false, code: 'ENOTTY' });
      } finally {
        closeSync(fd);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reports a device node that is not there by its errno', () => {
    expect(port.open('/dev/video-not-here')).toEqual({ ok: false, code: 'ENOENT' });
  });
});
