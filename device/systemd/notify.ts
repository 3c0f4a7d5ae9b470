// sd_notify for the service: tells systemd READY=1, WATCHDOG=1, STOPPING=1 and STATUS=... over the
// datagram socket named by $NOTIFY_SOCKET (protocol: sd_notify(3)). The unit is Type=notify with
// NotifyAccess=main, so the datagrams must come from the Node process itself: datagram.ts sends
// them through libc via koffi (why koffi and not unix-dgram or systemd-notify: see there).
// Without NOTIFY_SOCKET (tests, the demo, a shell) every call is a no-op that returns 'disabled'.
// The composition root passes `process.env`; nothing here reads it.
import { endianness } from 'node:os';
import type { Logger } from '../log/index.js';
import { type DatagramSender, libcDatagramSender } from './datagram.js';

export type Env = Readonly<Record<string, string | undefined>>;

/** Where $NOTIFY_SOCKET points: a file system path, or a Linux abstract socket (`@name`). */
export type NotifyAddress = { kind: 'path'; path: string } | { kind: 'abstract'; name: string };

/** Why $NOTIFY_SOCKET cannot be used. `unset` is the normal case outside systemd. */
export type NotifyAddressProblem = 'unset' | 'not-absolute' | 'too-long' | 'unsupported-vsock';

export type ParsedNotifyAddress =
  | { ok: true; address: NotifyAddress }
  | { ok: false; reason: NotifyAddressProblem };

/** 'disabled': no usable NOTIFY_SOCKET; 'failed': the datagram could not be sent (logged). */
export type NotifyResult = 'sent' | 'disabled' | 'failed';

export interface SystemdNotifier {
  /** False when NOTIFY_SOCKET is unset or unusable; every method is then a no-op. */
  readonly enabled: boolean;
  /** Start-up is complete. Sent once the service is really serving (MQTT connected or retrying). */
  ready(status?: string): NotifyResult;
  /** Keep-alive for WatchdogSec=; send through `Watchdog`, which checks health first. */
  watchdog(): NotifyResult;
  /** Shutdown has begun; systemd then waits up to TimeoutStopSec= for the process to exit. */
  stopping(status?: string): NotifyResult;
  /** Free text shown by `systemctl status`. */
  status(text: string): NotifyResult;
}

export interface NotifierDeps {
  env: Env;
  log: Logger;
  /** The raw socket; defaults to libc through koffi. */
  sender?: DatagramSender | undefined;
}

// sizeof(sockaddr_un.sun_path) on Linux.
const SUN_PATH_BYTES = 108;

export function parseNotifySocket(value: string | undefined): ParsedNotifyAddress {
  if (value === undefined || value === '') return { ok: false, reason: 'unset' };
  // systemd >= 254 can hand out AF_VSOCK addresses (to VMs); the unit only allows AF_UNIX anyway.
  if (value.startsWith('vsock:')) return { ok: false, reason: 'unsupported-vsock' };
  if (value.startsWith('@')) {
    const name = value.slice(1);
    // Abstract names take the leading NUL in place of '@' and have no terminating NUL.
    if (Buffer.byteLength(name) + 1 > SUN_PATH_BYTES) return { ok: false, reason: 'too-long' };
    return { ok: true, address: { kind: 'abstract', name } };
  }
  if (!value.startsWith('/')) return { ok: false, reason: 'not-absolute' };
  if (Buffer.byteLength(value) + 1 > SUN_PATH_BYTES) return { ok: false, reason: 'too-long' };
  return { ok: true, address: { kind: 'path', path: value } };
}

/**
 * Encodes a `struct sockaddr_un` with the exact length that connect/sendto must be given: for a
 * path, family + path + NUL; for an abstract socket, family + NUL + name (a longer length would
 * name a different abstract socket, padded with NULs).
 */
export function encodeSockaddr(address: NotifyAddress): Buffer {
  const name =
    address.kind === 'path'
      ? Buffer.concat([Buffer.from(address.path), Buffer.alloc(1)])
      : Buffer.concat([Buffer.alloc(1), Buffer.from(address.name)]);
  const family = Buffer.alloc(2);
  // sa_family_t is host-endian; AF_UNIX = 1.
  if (endianness() === 'BE') family.writeUInt16BE(1);
  else family.writeUInt16LE(1);
  return Buffer.concat([family, name]);
}

/** STATUS= is one line of free text; newlines would start a new (unintended) assignment. */
function statusLine(text: string): string {
  return `STATUS=${text.replace(/[\r\n]+/g, ' ')}`;
}

export function createNotifier(deps: NotifierDeps): SystemdNotifier {
  const log = deps.log.child({ mod: 'systemd' });
  const parsed = parseNotifySocket(deps.env.NOTIFY_SOCKET);
  if (!parsed.ok) {
    if (parsed.reason === 'unset') log.debug('NOTIFY_SOCKET not set: systemd notifications disabled');
    else log.warn({ reason: parsed.reason }, 'NOTIFY_SOCKET unusable: systemd notifications disabled');
    const disabled = (): NotifyResult => 'disabled';
    return { enabled: false, ready: disabled, watchdog: disabled, stopping: disabled, status: disabled };
  }

  const address = encodeSockaddr(parsed.address);
  const sender = deps.sender ?? libcDatagramSender();
  const send = (lines: string[]): NotifyResult => {
    const outcome = sender.send(address, Buffer.from(lines.join('\n')));
    if (outcome.ok) {
      log.debug({ fields: lines.map((line) => line.split('=', 1)[0]) }, 'notified systemd');
      return 'sent';
    }
    log.warn({ code: outcome.code, fields: lines.map((line) => line.split('=', 1)[0]) }, 'sd_notify failed');
    return 'failed';
  };
  const withStatus = (line: string, status: string | undefined): string[] =>
    status === undefined ? [line] : [line, statusLine(status)];

  return {
    enabled: true,
    ready: (status) => send(withStatus('READY=1', status)),
    watchdog: () => send(['WATCHDOG=1']),
    stopping: (status) => send(withStatus('STOPPING=1', status)),
    status: (text) => send([statusLine(text)]),
  };
}
