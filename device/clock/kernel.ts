// The kernel's view of time synchronisation: adjtimex(2) with modes 0 (read only, unprivileged).
// The kernel keeps STA_UNSYNC set until an NTP daemon clears it, sets it again when its estimated
// maximum error grows past 16 s without an update, and answers TIME_ERROR while it is set. Reading
// it directly is what timedated's NTPSynchronized does; timesyncd's flag file is created once and
// never removed, so it cannot say that synchronisation was lost. The raw call is the one IO in this
// file (through koffi, as device/systemd/datagram.ts does); the interpretation is a pure function.
import { createRequire } from 'node:module';

/** `timex.status` bit: the clock is not synchronised (include/uapi/linux/timex.h). */
export const STA_UNSYNC = 0x0040;
/** adjtimex's return value while the clock is not synchronised. */
export const TIME_ERROR = 5;
/** The kernel's NTP_PHASE_LIMIT: a maximum error at or beyond it (16 s, in µs) means unsynchronised. */
export const maxErrorLimitUs = 16_000_000;

/** The fields of one adjtimex read that decide synchronisation. */
export interface KernelTimeState {
  /** adjtimex's return value: TIME_OK (0) … TIME_ERROR (5). */
  state: number;
  /** `timex.status`, a bit set of STA_* flags. */
  status: number;
  /** `timex.maxerror`, µs. */
  maxErrorUs: number;
  /** `timex.esterror`, µs. */
  estErrorUs: number;
}

export type KernelReadResult = { ok: true; value: KernelTimeState } | { ok: false; detail: string };

/** Reads the kernel's time state once; never throws. Replaced by a fake in tests. */
export type KernelTimeReader = () => KernelReadResult;

export interface SyncVerdict {
  synchronised: boolean;
  detail: string;
}

/** Pure: is the kernel clock synchronised, going by one adjtimex read? Any doubt means no. */
export function interpretKernelTime(read: KernelTimeState): SyncVerdict {
  const facts = `adjtimex state ${read.state}, status 0x${read.status.toString(16).padStart(4, '0')}, maxerror ${Math.round(read.maxErrorUs / 1000)} ms`;
  if (read.state === TIME_ERROR)
    return { synchronised: false, detail: `kernel clock not synchronised (${facts})` };
  if ((read.status & STA_UNSYNC) !== 0)
    return { synchronised: false, detail: `kernel clock not synchronised: STA_UNSYNC set (${facts})` };
  if (!Number.isInteger(read.state) || read.state < 0 || read.state > TIME_ERROR)
    return { synchronised: false, detail: `unexpected adjtimex answer (${facts})` };
  if (read.maxErrorUs >= maxErrorLimitUs)
    return { synchronised: false, detail: `kernel clock error too large (${facts})` };
  return { synchronised: true, detail: `kernel clock synchronised (${facts})` };
}

type Koffi = typeof import('koffi');
type AdjtimexCall = (buffer: Record<string, unknown>) => number;

interface Libc {
  koffi: Koffi;
  adjtimex: AdjtimexCall;
}

let libc: Libc | undefined;

// Loaded on first read only. The layout is glibc's `struct timex` behind the plain `adjtimex` symbol
// (`long` fields, a `struct timeval` of two longs, 11 padding ints): the same on arm64 and x86-64,
// and on 32-bit arm, where that symbol keeps the 32-bit time layout (`__adjtimex64` is the other one).
function loadLibc(): Libc {
  if (libc) return libc;
  const koffi = createRequire(import.meta.url)('koffi') as Koffi;
  const lib = koffi.load('libc.so.6');
  const timeval = koffi.struct('tk_clock_timeval', { tv_sec: 'long', tv_usec: 'long' });
  koffi.struct('tk_clock_timex', {
    modes: 'uint',
    offset: 'long',
    freq: 'long',
    maxerror: 'long',
    esterror: 'long',
    status: 'int',
    constant: 'long',
    precision: 'long',
    tolerance: 'long',
    time: timeval,
    tick: 'long',
    ppsfreq: 'long',
    jitter: 'long',
    shift: 'int',
    stabil: 'long',
    jitcnt: 'long',
    calcnt: 'long',
    errcnt: 'long',
    stbcnt: 'long',
    tai: 'int',
    padding: koffi.array('int', 11),
  });
  libc = { koffi, adjtimex: lib.func('int adjtimex(_Inout_ tk_clock_timex *buf)') as AdjtimexCall };
  return libc;
}

/** The real reader: adjtimex with modes 0 through libc. An unavailable libc or koffi is a failed read. */
export const adjtimexReader: KernelTimeReader = () => {
  let c: Libc;
  try {
    c = loadLibc();
  } catch (error) {
    return { ok: false, detail: `adjtimex unavailable: ${(error as Error).message}` };
  }
  const buffer: Record<string, unknown> = { modes: 0 };
  let state: number;
  try {
    state = c.adjtimex(buffer);
  } catch (error) {
    return { ok: false, detail: `adjtimex failed: ${(error as Error).message}` };
  }
  if (state < 0) {
    const errno = c.koffi.errno();
    const name =
      Object.entries(c.koffi.os.errno).find(([, value]) => value === errno)?.[0] ?? `errno ${errno}`;
    // EPERM for a read means a seccomp filter (systemd's ProtectClock=, a container profile).
    const hint = name === 'EPERM' ? ' (a system call filter blocks it: ProtectClock=?)' : '';
    return { ok: false, detail: `adjtimex failed: ${name}${hint}` };
  }
  const status = Number(buffer.status);
  const maxErrorUs = Number(buffer.maxerror);
  const estErrorUs = Number(buffer.esterror);
  if (![status, maxErrorUs, estErrorUs].every(Number.isFinite))
    return { ok: false, detail: 'adjtimex returned no status' };
  return { ok: true, value: { state, status, maxErrorUs, estErrorUs } };
};
