// sd_notify against a fake systemd: a real AF_UNIX datagram socket bound by a python3 child (path in
// a temp dir, or abstract), which reports each datagram with the sender's PID from SCM_CREDENTIALS,
// the same check systemd makes for NotifyAccess=main.
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { silentLogger } from '../../device/log/index.js';
import {
  createNotifier,
  type DatagramSender,
  encodeSockaddr,
  parseNotifySocket,
  Watchdog,
  watchdogPingIntervalMs,
} from '../../device/systemd/index.js';

const RECEIVER = String.raw`
import json, socket, struct, sys
address = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind('\0' + address[1:] if address.startswith('@') else address)
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
print('bound', flush=True)
while True:
    data, ancillary, _flags, _addr = s.recvmsg(4096, socket.CMSG_SPACE(12))
    pid = None
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            pid = struct.unpack('iII', payload[:12])[0]
    print(json.dumps({'data': data.decode(), 'pid': pid}), flush=True)
`;

interface Datagram {
  data: string;
  pid: number | null;
}

/** The fake systemd end: receives datagrams until closed. */
class FakeNotifySocket {
  readonly received: Datagram[] = [];
  readonly #child: ChildProcessWithoutNullStreams;
  readonly #waiters: Array<() => void> = [];

  private constructor(child: ChildProcessWithoutNullStreams) {
    this.#child = child;
  }

  static async bind(address: string): Promise<FakeNotifySocket> {
    const child = spawn('python3', ['-c', RECEIVER, address]);
    const fake = new FakeNotifySocket(child);
    const lines = createInterface({ input: child.stdout });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    await new Promise<void>((resolve, reject) => {
      child.once('exit', (code) => reject(new Error(`receiver exited ${code}: ${stderr}`)));
      lines.on('line', (line) => {
        if (line === 'bound') {
          resolve();
          return;
        }
        fake.received.push(JSON.parse(line) as Datagram);
        for (const wake of fake.#waiters.splice(0)) wake();
      });
    });
    return fake;
  }

  async waitFor(count: number): Promise<Datagram[]> {
    const deadline = Date.now() + 5_000;
    while (this.received.length < count) {
      if (Date.now() > deadline) throw new Error(`got ${this.received.length} of ${count} datagrams`);
      await new Promise<void>((resolve) => {
        this.#waiters.push(resolve);
        setTimeout(resolve, 50);
      });
    }
    return this.received;
  }

  async close(): Promise<void> {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return;
    const exited = new Promise((resolve) => this.#child.once('exit', resolve));
    this.#child.kill('SIGTERM');
    await exited;
  }
}

const log = silentLogger();
let dir: string;
let fake: FakeNotifySocket | undefined;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'notify-'));
});

afterEach(async () => {
  vi.useRealTimers();
  await fake?.close();
  fake = undefined;
  rmSync(dir, { recursive: true, force: true });
});

describe('parseNotifySocket', () => {
  it('treats an unset or empty NOTIFY_SOCKET as disabled', () => {
    expect(parseNotifySocket(undefined)).toEqual({ ok: false, reason: 'unset' });
    expect(parseNotifySocket('')).toEqual({ ok: false, reason: 'unset' });
  });

  it('reads an @ prefix as an abstract socket name', () => {
    expect(parseNotifySocket('@sd/notify')).toEqual({
      ok: true,
      address: { kind: 'abstract', name: 'sd/notify' },
    });
  });

  it('refuses relative paths, vsock addresses and names longer than sun_path', () => {
    expect(parseNotifySocket('run/notify')).toEqual({ ok: false, reason: 'not-absolute' });
    expect(parseNotifySocket('vsock:2:1234')).toEqual({ ok: false, reason: 'unsupported-vsock' });
    expect(parseNotifySocket(`/${'x'.repeat(107)}`)).toEqual({ ok: false, reason: 'too-long' });
    expect(parseNotifySocket(`@${'x'.repeat(107)}`)).toEqual({ ok: true, address: expect.anything() });
    expect(parseNotifySocket(`@${'x'.repeat(108)}`)).toEqual({ ok: false, reason: 'too-long' });
  });
});

describe('encodeSockaddr', () => {
  it('gives a path its terminating NUL and an abstract name a leading NUL and no padding', () => {
    expect(encodeSockaddr({ kind: 'path', path: '/run/n' }).subarray(2)).toEqual(Buffer.from('/run/n\0'));
    expect(encodeSockaddr({ kind: 'abstract', name: 'n' }).subarray(2)).toEqual(Buffer.from('\0n'));
    expect(encodeSockaddr({ kind: 'abstract', name: 'n' })).toHaveLength(4);
  });
});

describe('createNotifier', () => {
  it('does nothing and sends nothing when NOTIFY_SOCKET is unset', () => {
    const send = vi.fn<DatagramSender['send']>(() => ({ ok: true }));
    const notifier = createNotifier({ env: {}, log, sender: { send } });
    expect(notifier.enabled).toBe(false);
    expect([notifier.ready(), notifier.watchdog(), notifier.stopping(), notifier.status('x')]).toEqual([
      'disabled',
      'disabled',
      'disabled',
      'disabled',
    ]);
    expect(send).not.toHaveBeenCalled();
  });

  it('sends READY=1, STATUS and STOPPING=1 to a path socket from this very process', async () => {
    const socketPath = join(dir, 'notify');
    fake = await FakeNotifySocket.bind(socketPath);
    const notifier = createNotifier({ env: { NOTIFY_SOCKET: socketPath }, log });

    expect(notifier.ready('connected to broker')).toBe('sent');
    expect(notifier.status('viewing\nnow')).toBe('sent');
    expect(notifier.stopping()).toBe('sent');

    const received = await fake.waitFor(3);
    expect(received.map((datagram) => datagram.data)).toEqual([
      'READY=1\nSTATUS=connected to broker',
      'STATUS=viewing now',
      'STOPPING=1',
    ]);
    expect(received.every((datagram) => datagram.pid === process.pid)).toBe(true);
  });

  it('sends to an abstract socket named with @', async () => {
    const name = `@trygghetskamera-test-${process.pid}-${Date.now()}`;
    fake = await FakeNotifySocket.bind(name);
    const notifier = createNotifier({ env: { NOTIFY_SOCKET: name }, log });

    expect(notifier.ready()).toBe('sent');
    expect((await fake.waitFor(1))[0]).toEqual({ data: 'READY=1', pid: process.pid });
  });

  it('reports failed, without throwing, when nobody listens on the socket', () => {
    const notifier = createNotifier({ env: { NOTIFY_SOCKET: join(dir, 'absent') }, log });
    expect(notifier.ready()).toBe('failed');
  });
});

describe('watchdogPingIntervalMs', () => {
  it('pings at half of WATCHDOG_USEC', () => {
    expect(watchdogPingIntervalMs({ WATCHDOG_USEC: '30000000' }, 42)).toBe(15_000);
  });

  it('is off without WATCHDOG_USEC, with a malformed one, or when WATCHDOG_PID names another process', () => {
    expect(watchdogPingIntervalMs({}, 42)).toBeUndefined();
    expect(watchdogPingIntervalMs({ WATCHDOG_USEC: '30s' }, 42)).toBeUndefined();
    expect(watchdogPingIntervalMs({ WATCHDOG_USEC: '0' }, 42)).toBeUndefined();
    expect(watchdogPingIntervalMs({ WATCHDOG_USEC: '30000000', WATCHDOG_PID: '7' }, 42)).toBeUndefined();
    expect(watchdogPingIntervalMs({ WATCHDOG_USEC: '30000000', WATCHDOG_PID: '42' }, 42)).toBe(15_000);
  });
});

describe('Watchdog', () => {
  it('sends WATCHDOG=1 only while the health check passes', async () => {
    const socketPath = join(dir, 'notify');
    fake = await FakeNotifySocket.bind(socketPath);
    const env = { NOTIFY_SOCKET: socketPath, WATCHDOG_USEC: '30000000' };
    const notifier = createNotifier({ env, log });
    let healthy = true;
    const ping = vi.spyOn(notifier, 'watchdog');
    vi.useFakeTimers();
    const watchdog = new Watchdog({ notifier, healthy: async () => healthy, env, log });
    watchdog.start();

    await vi.advanceTimersByTimeAsync(15_000);
    await vi.advanceTimersByTimeAsync(15_000);
    expect(ping).toHaveBeenCalledTimes(2);
    healthy = false;
    await vi.advanceTimersByTimeAsync(30_000);
    expect(ping).toHaveBeenCalledTimes(2);
    healthy = true;
    await vi.advanceTimersByTimeAsync(15_000);
    expect(ping).toHaveBeenCalledTimes(3);
    watchdog.stop();
    vi.useRealTimers();

    const received = await fake.waitFor(3);
    expect(received.map((datagram) => datagram.data)).toEqual(['WATCHDOG=1', 'WATCHDOG=1', 'WATCHDOG=1']);
  });

  it('skips the ping when the health check throws', async () => {
    vi.useFakeTimers();
    const notifier = { watchdog: vi.fn(() => 'sent' as const) };
    const watchdog = new Watchdog({
      notifier,
      healthy: () => Promise.reject(new Error('state dir read-only')),
      env: { WATCHDOG_USEC: '2000000' },
      log,
    });
    watchdog.start();
    await vi.advanceTimersByTimeAsync(5_000);
    expect(notifier.watchdog).not.toHaveBeenCalled();
    watchdog.stop();
  });

  it('stops pinging after stop(), leaves no timer behind, and tolerates a second stop()', async () => {
    vi.useFakeTimers();
    const notifier = { watchdog: vi.fn(() => 'sent' as const) };
    const watchdog = new Watchdog({
      notifier,
      healthy: async () => true,
      env: { WATCHDOG_USEC: '2000000' },
      log,
    });
    watchdog.start();
    watchdog.start();
    await vi.advanceTimersByTimeAsync(1_000);
    expect(notifier.watchdog).toHaveBeenCalledTimes(1);
    watchdog.stop();
    watchdog.stop();
    expect(vi.getTimerCount()).toBe(0);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(notifier.watchdog).toHaveBeenCalledTimes(1);
    expect(watchdog.running).toBe(false);
  });

  it('does not ping for a check that settles after stop()', async () => {
    vi.useFakeTimers();
    const notifier = { watchdog: vi.fn(() => 'sent' as const) };
    let pass: (value: boolean) => void = () => {};
    const healthy = () =>
      new Promise<boolean>((resolve) => {
        pass = resolve;
      });
    const watchdog = new Watchdog({ notifier, healthy, env: { WATCHDOG_USEC: '2000000' }, log });
    watchdog.start();
    await vi.advanceTimersByTimeAsync(1_000);
    watchdog.stop();
    pass(true);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(notifier.watchdog).not.toHaveBeenCalled();
    expect(vi.getTimerCount()).toBe(0);
  });

  it('does not start when systemd asked for no watchdog', () => {
    const watchdog = new Watchdog({
      notifier: { watchdog: vi.fn() },
      healthy: async () => true,
      env: {},
      log,
    });
    watchdog.start();
    expect(watchdog.pingIntervalMs).toBeUndefined();
    expect(watchdog.running).toBe(false);
  });
});
