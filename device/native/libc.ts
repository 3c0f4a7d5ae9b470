// libc through koffi, loaded once on first use, for the few calls Node has no API for (sendto on an
// AF_UNIX datagram socket, the V4L2 ioctls), with errno as its name (`ENOENT`, `ENOTTY`).
import { createRequire } from 'node:module';

type Koffi = typeof import('koffi');
export type KoffiLib = ReturnType<Koffi['load']>;

export interface Libc {
  koffi: Koffi;
  lib: KoffiLib;
  /** The name of the calling thread's errno now, e.g. `EAGAIN`. */
  errnoName(): string;
}

let loaded: Libc | undefined;

/** Throws where koffi has no build for this machine; callers turn that into a reason. */
export function loadLibc(): Libc {
  if (loaded) return loaded;
  const koffi = createRequire(import.meta.url)('koffi') as Koffi;
  const lib = koffi.load('libc.so.6');
  const names = new Map<number, string>();
  for (const [name, value] of Object.entries(koffi.os.errno)) names.set(value, name);
  loaded = {
    koffi,
    lib,
    errnoName: () => {
      const errno = koffi.errno();
      return names.get(errno) ?? `errno ${errno}`;
    },
  };
  return loaded;
}
