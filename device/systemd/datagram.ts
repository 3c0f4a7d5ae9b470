// The one raw IO file of the systemd concern: sends a single AF_UNIX datagram through libc.
// Node has no unix datagram sockets, and the notification must come from the main PID (the unit
// sets NotifyAccess=main), so a `systemd-notify` child process cannot be used. koffi (a maintained
// FFI with prebuilt binaries for linux-arm and -arm64) calls socket/sendto/close directly, which
// also lets us pass the exact address length that abstract sockets need. Tests replace this file's
// sender with a fake, or use it for real against a socket bound in a temp dir.
import { loadLibc } from '../native/libc.js';

/** Result of one send: the errno name (for example `ENOENT`, `ECONNREFUSED`, `EAGAIN`) on failure. */
export type SendOutcome = { ok: true } | { ok: false; code: string };

export interface DatagramSender {
  /** Sends `payload` to the encoded `struct sockaddr_un` in `address`; never throws, never blocks. */
  send(address: Buffer, payload: Buffer): SendOutcome;
}

// Linux values, identical on arm, arm64 and x86-64 (they differ only on alpha, mips and sparc).
const AF_UNIX = 1;
const SOCK_DGRAM = 2;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const MSG_NOSIGNAL = 0x4000;

type LibcCall = (...args: unknown[]) => number;

interface Calls {
  socket: LibcCall;
  sendto: LibcCall;
  close: LibcCall;
  errnoName(): string;
}

let calls: Calls | undefined;

// Loaded on first send only, so a process without NOTIFY_SOCKET never loads native code.
function loadCalls(): Calls {
  if (calls) return calls;
  const { lib, errnoName } = loadLibc();
  calls = {
    socket: lib.func('int socket(int domain, int type, int protocol)') as LibcCall,
    sendto: lib.func(
      'intptr_t sendto(int fd, const void *buf, size_t len, int flags, const void *addr, uint32_t addrlen)',
    ) as LibcCall,
    close: lib.func('int close(int fd)') as LibcCall,
    errnoName,
  };
  return calls;
}

function failure(c: Calls): SendOutcome {
  return { ok: false, code: c.errnoName() };
}

/**
 * A sender that opens a socket per datagram and closes it before returning (as libsystemd's
 * sd_notify does): nothing stays open between the watchdog's pings. The socket is non-blocking, so
 * a stuck receiver turns into an `EAGAIN` failure instead of a blocked event loop.
 */
export function libcDatagramSender(): DatagramSender {
  return {
    send(address, payload) {
      let c: Calls;
      try {
        c = loadCalls();
      } catch (error) {
        return { ok: false, code: `libc unavailable: ${(error as Error).message}` };
      }
      const fd = c.socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (fd < 0) return failure(c);
      try {
        const sent = c.sendto(fd, payload, payload.length, MSG_NOSIGNAL, address, address.length);
        return sent < 0 ? failure(c) : { ok: true };
      } finally {
        c.close(fd);
      }
    },
  };
}
