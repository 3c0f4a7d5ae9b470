// The one raw IO file of the camera concern: ioctl(2) on a V4L2 device node through koffi (already used
// for prctl and sendto), so no v4l2-ctl process is needed and the exact struct bytes are ours. The node
// is opened by Node itself (non-blocking, close-on-exec by default); koffi passes the Buffer's memory as
// the ioctl argument and the kernel fills it in place. Tests use a fake port; the guest-side check
// (scripts/test-system/camera-controls-check.mjs) runs this one against the kernel's vivid driver.
import { closeSync, constants, openSync } from 'node:fs';
import { loadLibc } from '../native/libc.js';
import type { V4l2Port } from './v4l2.js';

type Ioctl = (fd: number, request: number, arg: Buffer) => number;

let ioctl: { call: Ioctl; errnoName(): string } | undefined;

function loadIoctl(): { call: Ioctl; errnoName(): string } {
  if (ioctl) return ioctl;
  const { lib, errnoName } = loadLibc();
  // glibc declares it variadic; the third argument is always a pointer here, which every Linux ABI we
  // run on (x86-64, arm64, armhf) passes the same way in a variadic and a fixed call.
  ioctl = { call: lib.func('int ioctl(int fd, unsigned long request, void *arg)') as Ioctl, errnoName };
  return ioctl;
}

/** The real V4L2 port. Loading koffi fails only where it has no build; then every call reports it. */
export function koffiV4l2Port(): V4l2Port {
  return {
    open(path) {
      try {
        return { ok: true, fd: openSync(path, constants.O_RDWR | constants.O_NONBLOCK) };
      } catch (error) {
        return { ok: false, code: (error as NodeJS.ErrnoException).code ?? String(error) };
      }
    },
    ioctl(fd, request, arg) {
      let c: { call: Ioctl; errnoName(): string };
      try {
        c = loadIoctl();
      } catch (error) {
        return { ok: false, code: `libc unavailable: ${(error as Error).message}` };
      }
      return c.call(fd, request, arg) === 0 ? { ok: true } : { ok: false, code: c.errnoName() };
    },
    close(fd) {
      try {
        closeSync(fd);
      } catch {
        // Already closed: nothing is held.
      }
    },
  };
}
