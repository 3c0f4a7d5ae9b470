// V4L2 camera controls at the ioctl level: the numbers from linux/videodev2.h and linux/v4l2-controls.h,
// the structs as bytes, and small calls (query, menu, get, set, enumerate) over a `V4l2Port` — the one
// seam to the kernel: (fd, request, struct bytes) in, 0 or an errno name out. The real port is koffi's
// ioctl (koffi-port.ts); tests use a fake device that interprets the same bytes.
//
// Controls are always named by id, never by their text name: kernel 5.16 renamed several
// (`exposure_auto` became `auto_exposure`, `exposure_absolute` became `exposure_time_absolute`), while
// the ids are ABI and never change.

/** Control ids, as in linux/v4l2-controls.h (V4L2_CID_BASE = 0x00980900, CAMERA_CLASS_BASE = 0x009a0900). */
export const V4L2_CID = {
  BRIGHTNESS: 0x00980900,
  CONTRAST: 0x00980901,
  SATURATION: 0x00980902,
  AUTOGAIN: 0x00980912,
  GAIN: 0x00980913,
  POWER_LINE_FREQUENCY: 0x00980918,
  BACKLIGHT_COMPENSATION: 0x0098091c,
  EXPOSURE_AUTO: 0x009a0901,
  EXPOSURE_ABSOLUTE: 0x009a0902,
  EXPOSURE_AUTO_PRIORITY: 0x009a0903,
} as const;

/** enum v4l2_power_line_frequency. */
export const POWER_LINE = { disabled: 0, '50Hz': 1, '60Hz': 2, auto: 3 } as const;
/** enum v4l2_exposure_auto_type. */
export const EXPOSURE = { auto: 0, manual: 1, 'shutter-priority': 2, 'aperture-priority': 3 } as const;

/** enum v4l2_ctrl_type (the ones a camera has). */
export const CTRL_TYPE = {
  INTEGER: 1,
  BOOLEAN: 2,
  MENU: 3,
  BUTTON: 4,
  INTEGER64: 5,
  CTRL_CLASS: 6,
  STRING: 7,
  BITMASK: 8,
  INTEGER_MENU: 9,
} as const;

export const CTRL_FLAG = {
  DISABLED: 0x0001,
  GRABBED: 0x0002,
  READ_ONLY: 0x0004,
  UPDATE: 0x0008,
  INACTIVE: 0x0010,
  WRITE_ONLY: 0x0040,
  /** Or'ed into the id given to QUERYCTRL: "the next control after this id". */
  NEXT_CTRL: 0x80000000,
} as const;

// _IOWR('V', nr, struct): dir (read|write = 3) << 30 | size << 16 | 'V' << 8 | nr.
const iowr = (nr: number, size: number): number => ((3 << 30) | (size << 16) | (0x56 << 8) | nr) >>> 0;

/** struct v4l2_queryctrl: id, type, name[32], minimum, maximum, step, default_value, flags, reserved[2]. */
export const QUERYCTRL_SIZE = 68;
/** struct v4l2_control: id, value. */
export const CONTROL_SIZE = 8;
/** struct v4l2_querymenu: id, index, union { name[32]; __s64 value } (packed), reserved. */
export const QUERYMENU_SIZE = 44;

export const VIDIOC = {
  G_CTRL: iowr(27, CONTROL_SIZE),
  S_CTRL: iowr(28, CONTROL_SIZE),
  QUERYCTRL: iowr(36, QUERYCTRL_SIZE),
  QUERYMENU: iowr(37, QUERYMENU_SIZE),
} as const;

/** The seam to the kernel. `ioctl` fills `arg` in place, as the kernel does. */
export interface V4l2Port {
  /** Opens a device node read-write and non-blocking; an errno name on failure. */
  open(path: string): { ok: true; fd: number } | { ok: false; code: string };
  ioctl(fd: number, request: number, arg: Buffer): { ok: true } | { ok: false; code: string };
  close(fd: number): void;
}

export interface ControlInfo {
  id: number;
  type: number;
  name: string;
  minimum: number;
  maximum: number;
  step: number;
  defaultValue: number;
  flags: number;
}

export type V4l2Result<T> = { ok: true; value: T } | { ok: false; code: string };

function cString(buffer: Buffer, offset: number, length: number): string {
  const bytes = buffer.subarray(offset, offset + length);
  const end = bytes.indexOf(0);
  return bytes.subarray(0, end < 0 ? length : end).toString('latin1');
}

export function encodeQueryCtrl(id: number): Buffer {
  const buffer = Buffer.alloc(QUERYCTRL_SIZE);
  buffer.writeUInt32LE(id >>> 0, 0);
  return buffer;
}

export function decodeQueryCtrl(buffer: Buffer): ControlInfo {
  return {
    id: buffer.readUInt32LE(0),
    type: buffer.readUInt32LE(4),
    name: cString(buffer, 8, 32),
    minimum: buffer.readInt32LE(40),
    maximum: buffer.readInt32LE(44),
    step: buffer.readInt32LE(48),
    defaultValue: buffer.readInt32LE(52),
    flags: buffer.readUInt32LE(56),
  };
}

export function queryControl(port: V4l2Port, fd: number, id: number): V4l2Result<ControlInfo> {
  const buffer = encodeQueryCtrl(id);
  const result = port.ioctl(fd, VIDIOC.QUERYCTRL, buffer);
  return result.ok ? { ok: true, value: decodeQueryCtrl(buffer) } : result;
}

export function getControl(port: V4l2Port, fd: number, id: number): V4l2Result<number> {
  const buffer = Buffer.alloc(CONTROL_SIZE);
  buffer.writeUInt32LE(id >>> 0, 0);
  const result = port.ioctl(fd, VIDIOC.G_CTRL, buffer);
  return result.ok ? { ok: true, value: buffer.readInt32LE(4) } : result;
}

/** Sets a control; the value the driver stored (it may clamp or round) comes back in the struct. */
export function setControl(port: V4l2Port, fd: number, id: number, value: number): V4l2Result<number> {
  const buffer = Buffer.alloc(CONTROL_SIZE);
  buffer.writeUInt32LE(id >>> 0, 0);
  buffer.writeInt32LE(value | 0, 4);
  const result = port.ioctl(fd, VIDIOC.S_CTRL, buffer);
  return result.ok ? { ok: true, value: buffer.readInt32LE(4) } : result;
}

export interface MenuItem {
  index: number;
  /** The item's text (menu) or its number as text (integer menu). */
  name: string;
}

/** The items of a menu control; indexes the driver skips (EINVAL) are left out. */
export function queryMenu(port: V4l2Port, fd: number, control: ControlInfo): MenuItem[] {
  const items: MenuItem[] = [];
  if (control.type !== CTRL_TYPE.MENU && control.type !== CTRL_TYPE.INTEGER_MENU) return items;
  const last = Math.min(control.maximum, control.minimum + 63);
  for (let index = Math.max(0, control.minimum); index <= last; index++) {
    const buffer = Buffer.alloc(QUERYMENU_SIZE);
    buffer.writeUInt32LE(control.id >>> 0, 0);
    buffer.writeUInt32LE(index, 4);
    if (!port.ioctl(fd, VIDIOC.QUERYMENU, buffer).ok) continue;
    const name = control.type === CTRL_TYPE.MENU ? cString(buffer, 8, 32) : String(buffer.readBigInt64LE(8));
    items.push({ index, name });
  }
  return items;
}

/** Every control of the device, in the driver's order (QUERYCTRL with NEXT_CTRL); class headings left out. */
export function listControls(port: V4l2Port, fd: number): ControlInfo[] {
  const controls: ControlInfo[] = [];
  let id = 0;
  // Bounded: a driver that never ends the list (EINVAL) cannot keep us here.
  for (let guard = 0; guard < 1024; guard++) {
    const result = queryControl(port, fd, (id | CTRL_FLAG.NEXT_CTRL) >>> 0);
    if (!result.ok || result.value.id <= id) break;
    id = result.value.id;
    if (result.value.type === CTRL_TYPE.CTRL_CLASS) continue;
    if (result.value.flags & CTRL_FLAG.DISABLED) continue;
    controls.push(result.value);
  }
  return controls;
}
