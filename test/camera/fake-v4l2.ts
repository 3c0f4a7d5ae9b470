// A fake V4L2 device at the ioctl seam: it decodes the request numbers and struct bytes the way the
// kernel's v4l2-ctrls core does (its own constants, written from linux/videodev2.h, not imported from
// the code under test), keeps a control table with ranges, menus and flags, and clamps integers to their
// range as the kernel does. Some devices lie: `ignoresWrites` accepts a value and keeps its own (as some
// UVC firmware does), which only a read-back reveals. `replug()` forgets every value, as a UVC camera
// does when it is unplugged or re-opened.

// _IOWR('V', nr, size), spelled out: 0xc0000000 | size << 16 | 0x56 << 8 | nr.
export const REQUEST = {
  G_CTRL: 0xc008561b,
  S_CTRL: 0xc008561c,
  QUERYCTRL: 0xc0445624,
  QUERYMENU: 0xc02c5625,
} as const;
const NEXT_CTRL = 0x80000000;
export const TYPE = { INTEGER: 1, BOOLEAN: 2, MENU: 3, CTRL_CLASS: 6 } as const;
export const FLAG = { DISABLED: 0x1, READ_ONLY: 0x4, INACTIVE: 0x10, WRITE_ONLY: 0x40 } as const;

export interface FakeControl {
  id: number;
  type: number;
  name: string;
  minimum: number;
  maximum: number;
  step?: number;
  defaultValue: number;
  flags?: number;
  /** Menu items by index; indexes left out are ones the driver skips. */
  menu?: Record<number, string>;
  /** The device says yes to S_CTRL but keeps its value. */
  ignoresWrites?: boolean;
  /** The device silently clamps to this, below the maximum it advertises. */
  trueMaximum?: number;
}

type Result = { ok: true } | { ok: false; code: string };

interface Entry {
  control: FakeControl;
  value: number;
}

export class FakeV4l2Device {
  readonly path: string;
  readonly #entries = new Map<number, Entry>();
  #plugged = true;
  #nextFd = 100;
  readonly #open = new Set<number>();
  /** Every S_CTRL the device took: [id, value]. */
  readonly writes: Array<[number, number]> = [];
  opens = 0;
  /** Called after a value is stored, for controls that change others' flags. */
  onSet: ((device: FakeV4l2Device, id: number, value: number) => void) | undefined;

  constructor(path: string, controls: FakeControl[]) {
    this.path = path;
    for (const control of controls) this.#entries.set(control.id, { control, value: control.defaultValue });
  }

  value(id: number): number | undefined {
    return this.#entries.get(id)?.value;
  }

  /** The camera changes a value by itself (as some reset their controls when streaming starts). */
  poke(id: number, value: number, options: { ignoresWrites?: boolean } = {}): void {
    const entry = this.#entries.get(id);
    if (!entry) return;
    entry.value = value;
    if (options.ignoresWrites !== undefined)
      entry.control = { ...entry.control, ignoresWrites: options.ignoresWrites };
  }

  setFlags(id: number, flags: number): void {
    const entry = this.#entries.get(id);
    if (entry) entry.control = { ...entry.control, flags };
  }

  /** Unplug and plug in again: every control back to its default, open descriptors dead. */
  replug(): void {
    for (const entry of this.#entries.values()) entry.value = entry.control.defaultValue;
    this.#open.clear();
  }

  unplug(): void {
    this.#plugged = false;
    this.#open.clear();
  }

  get openDescriptors(): number {
    return this.#open.size;
  }

  open(path: string): { ok: true; fd: number } | { ok: false; code: string } {
    if (path !== this.path || !this.#plugged) return { ok: false, code: 'ENOENT' };
    const fd = this.#nextFd++;
    this.#open.add(fd);
    this.opens += 1;
    return { ok: true, fd };
  }

  close(fd: number): void {
    this.#open.delete(fd);
  }

  ioctl(fd: number, request: number, arg: Buffer): Result {
    if (!this.#open.has(fd)) return { ok: false, code: 'EBADF' };
    switch (request) {
      case REQUEST.QUERYCTRL:
        return arg.length === 68 ? this.#query(arg) : { ok: false, code: 'EFAULT' };
      case REQUEST.QUERYMENU:
        return arg.length === 44 ? this.#menu(arg) : { ok: false, code: 'EFAULT' };
      case REQUEST.G_CTRL:
        return arg.length === 8 ? this.#get(arg) : { ok: false, code: 'EFAULT' };
      case REQUEST.S_CTRL:
        return arg.length === 8 ? this.#set(arg) : { ok: false, code: 'EFAULT' };
      default:
        return { ok: false, code: 'ENOTTY' };
    }
  }

  #query(arg: Buffer): Result {
    const asked = arg.readUInt32LE(0);
    let entry: Entry | undefined;
    if (asked & NEXT_CTRL) {
      const after = (asked & ~NEXT_CTRL) >>> 0;
      const ids = [...this.#entries.keys()].filter((id) => id > after).sort((a, b) => a - b);
      entry = ids[0] === undefined ? undefined : this.#entries.get(ids[0]);
    } else entry = this.#entries.get(asked);
    if (!entry) return { ok: false, code: 'EINVAL' };
    const c = entry.control;
    arg.fill(0);
    arg.writeUInt32LE(c.id, 0);
    arg.writeUInt32LE(c.type, 4);
    arg.write(c.name.slice(0, 31), 8, 'latin1');
    arg.writeInt32LE(c.minimum, 40);
    arg.writeInt32LE(c.maximum, 44);
    arg.writeInt32LE(c.step ?? 1, 48);
    arg.writeInt32LE(c.defaultValue, 52);
    arg.writeUInt32LE(c.flags ?? 0, 56);
    return { ok: true };
  }

  #menu(arg: Buffer): Result {
    const entry = this.#entries.get(arg.readUInt32LE(0));
    const index = arg.readUInt32LE(4);
    const name = entry?.control.menu?.[index];
    if (!entry || entry.control.type !== TYPE.MENU || name === undefined)
      return { ok: false, code: 'EINVAL' };
    arg.fill(0, 8, 40);
    arg.write(name.slice(0, 31), 8, 'latin1');
    return { ok: true };
  }

  #get(arg: Buffer): Result {
    const entry = this.#entries.get(arg.readUInt32LE(0));
    if (!entry) return { ok: false, code: 'EINVAL' };
    if ((entry.control.flags ?? 0) & FLAG.WRITE_ONLY) return { ok: false, code: 'EACCES' };
    arg.writeInt32LE(entry.value, 4);
    return { ok: true };
  }

  #set(arg: Buffer): Result {
    const id = arg.readUInt32LE(0);
    const entry = this.#entries.get(id);
    if (!entry || entry.control.type === TYPE.CTRL_CLASS) return { ok: false, code: 'EINVAL' };
    const c = entry.control;
    if ((c.flags ?? 0) & FLAG.READ_ONLY) return { ok: false, code: 'EACCES' };
    let value = arg.readInt32LE(4);
    if (c.type === TYPE.MENU) {
      if (value < c.minimum || value > c.maximum || c.menu?.[value] === undefined)
        return { ok: false, code: 'EINVAL' };
    } else {
      // v4l2-ctrls rounds integers to the step and clamps them to the range; booleans to 0..1.
      const step = c.step ?? 1;
      value = Math.min(
        c.maximum,
        Math.max(c.minimum, c.minimum + Math.round((value - c.minimum) / step) * step),
      );
      if (c.trueMaximum !== undefined) value = Math.min(value, c.trueMaximum);
    }
    if (!c.ignoresWrites) entry.value = value;
    this.writes.push([id, value]);
    arg.writeInt32LE(entry.value, 4);
    this.onSet?.(this, id, entry.value);
    return { ok: true };
  }
}

/** The controls of a typical UVC webcam (a Logitech C920-like table), ids from linux/v4l2-controls.h. */
export function uvcWebcamControls(): FakeControl[] {
  return [
    { id: 0x00980001, type: TYPE.CTRL_CLASS, name: 'User Controls', minimum: 0, maximum: 0, defaultValue: 0 },
    { id: 0x00980900, type: TYPE.INTEGER, name: 'Brightness', minimum: 0, maximum: 255, defaultValue: 128 },
    { id: 0x00980901, type: TYPE.INTEGER, name: 'Contrast', minimum: 0, maximum: 255, defaultValue: 128 },
    { id: 0x00980913, type: TYPE.INTEGER, name: 'Gain', minimum: 0, maximum: 255, defaultValue: 0 },
    {
      id: 0x00980918,
      type: TYPE.MENU,
      name: 'Power Line Frequency',
      minimum: 0,
      maximum: 2,
      defaultValue: 2,
      menu: { 0: 'Disabled', 1: '50 Hz', 2: '60 Hz' },
    },
    {
      id: 0x0098091c,
      type: TYPE.INTEGER,
      name: 'Backlight Compensation',
      minimum: 0,
      maximum: 1,
      defaultValue: 0,
    },
    {
      id: 0x009a0001,
      type: TYPE.CTRL_CLASS,
      name: 'Camera Controls',
      minimum: 0,
      maximum: 0,
      defaultValue: 0,
    },
    {
      id: 0x009a0901,
      type: TYPE.MENU,
      name: 'Auto Exposure',
      minimum: 0,
      maximum: 3,
      defaultValue: 3,
      // UVC offers manual and aperture priority only: indexes 0 and 2 are skipped.
      menu: { 1: 'Manual Mode', 3: 'Aperture Priority Mode' },
    },
    {
      id: 0x009a0902,
      type: TYPE.INTEGER,
      name: 'Exposure Time, Absolute',
      minimum: 3,
      maximum: 2047,
      defaultValue: 250,
      flags: FLAG.INACTIVE,
    },
    {
      id: 0x009a0903,
      type: TYPE.BOOLEAN,
      name: 'Exposure, Dynamic Framerate',
      minimum: 0,
      maximum: 1,
      defaultValue: 0,
    },
  ];
}
