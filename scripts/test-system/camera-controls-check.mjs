#!/usr/bin/env node
// Guest-side check of the camera-control ioctls against a real kernel driver (vivid in the system-test
// VM): the installed service's own code (dist/device/camera, koffi's ioctl) lists the controls, sets and
// reads back brightness, sees the kernel clamp an out-of-range value and write it back into the struct,
// reads a menu's item names, and applies the night preset, reporting what vivid lacks. Leaves brightness
// at its default. Prints `PASS|FAIL name: detail` lines and, last, one JSON line with every result;
// exits 1 if anything failed.
//
//   node camera-controls-check.mjs [--app /opt/trygghetskamera] [--device /dev/video0]
//   (--module FILE: the camera module to load instead of <app>/dist/device/camera/index.js)
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    app: { type: 'string', default: '/opt/trygghetskamera' },
    device: { type: 'string', default: '/dev/video0' },
    module: { type: 'string' },
  },
});
const modulePath = resolve(values.module ?? `${values.app}/dist/device/camera/index.js`);
const camera = await import(pathToFileURL(modulePath).href);
const { V4L2_CID, CTRL_TYPE } = camera;
const device = values.device;

const results = [];
function check(name, ok, detail = '') {
  results.push({ name, ok, detail });
  console.log(`${ok ? 'PASS' : 'FAIL'} ${name}${detail ? `: ${detail}` : ''}`);
}

function finish() {
  console.log(JSON.stringify({ ok: results.every((r) => r.ok), device, results }));
  process.exit(results.every((r) => r.ok) ? 0 : 1);
}

const port = camera.koffiV4l2Port();
const opened = port.open(device);
check('open the device node', opened.ok, opened.ok ? `fd ${opened.fd}` : opened.code);
if (!opened.ok) finish();
const fd = opened.fd;

try {
  const controls = camera.listControls(port, fd);
  const brightness = controls.find((c) => c.id === V4L2_CID.BRIGHTNESS);
  check(
    'VIDIOC_QUERYCTRL with NEXT_CTRL lists the controls, brightness by its id',
    controls.length >= 3 && brightness?.name === 'Brightness',
    `${controls.length} controls: ${controls.map((c) => `0x${c.id.toString(16)} ${c.name}`).join(', ')}`,
  );
  if (!brightness) finish();

  const set = camera.setControl(port, fd, V4L2_CID.BRIGHTNESS, brightness.minimum + 7);
  const read = camera.getControl(port, fd, V4L2_CID.BRIGHTNESS);
  check(
    'VIDIOC_S_CTRL then VIDIOC_G_CTRL reads the value back',
    set.ok && read.ok && read.value === brightness.minimum + 7,
    JSON.stringify({ set, read }),
  );

  // The kernel clamps an integer to its range and writes the stored value back into the struct.
  const over = camera.setControl(port, fd, V4L2_CID.BRIGHTNESS, brightness.maximum + 45);
  const clamped = camera.getControl(port, fd, V4L2_CID.BRIGHTNESS);
  check(
    'the kernel clamps an out-of-range value and writes it back in place',
    over.ok && over.value === brightness.maximum && clamped.ok && clamped.value === brightness.maximum,
    JSON.stringify({ over, clamped, maximum: brightness.maximum }),
  );

  const menu = controls.find((c) => c.type === CTRL_TYPE.MENU);
  const items = menu ? camera.queryMenu(port, fd, menu) : [];
  check(
    'VIDIOC_QUERYMENU gives the item names of a menu control',
    menu === undefined || (items.length > 0 && items.every((item) => item.name.length > 0)),
    menu
      ? `${menu.name}: ${items.map((i) => `${i.index} ${i.name}`).join(', ')}`
      : 'no menu control on this device',
  );

  const unknown = camera.queryControl(port, fd, 0x0098fff0);
  check(
    'an id the device does not have is EINVAL',
    !unknown.ok && unknown.code === 'EINVAL',
    JSON.stringify(unknown),
  );
} finally {
  port.close(fd);
}

// The whole path as a look runs it: plan, apply (its own open and close), read back.
const controls = {
  nightFrom: '21:00',
  nightTo: '07:00',
  day: {},
  night: {
    powerLineFrequency: '50Hz',
    autoExposure: 'aperture-priority',
    exposureDynamicFramerate: true,
    brightness: 100,
  },
  viewModes: {},
  required: ['brightness'],
};
const plan = camera.planControls(controls, 'full', Date.now(), 'Europe/Stockholm', 'night');
const report = camera.applyControls(port, device, plan, Date.now());
const brightnessOutcome = report.outcomes.find((o) => o.name === 'brightness');
check(
  'applyControls sets and reads back a planned control; what the driver lacks is a warning',
  brightnessOutcome?.status === 'ok' &&
    brightnessOutcome.actual === 100 &&
    report.failedRequired.length === 0,
  `warnings: ${report.warnings.join(', ') || 'none'}`,
);

// Leave the camera as the driver made it.
const again = port.open(device);
if (again.ok) {
  const info = camera.queryControl(port, again.fd, V4L2_CID.BRIGHTNESS);
  if (info.ok) camera.setControl(port, again.fd, V4L2_CID.BRIGHTNESS, info.value.defaultValue);
  port.close(again.fd);
}
finish();
