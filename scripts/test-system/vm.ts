// The rig's virtual Pi: one QEMU process (TCG, Debian's kernel, a raw ext4 disk on virtio) and the
// QEMU guest agent over virtio-serial as the command channel (commands run in the guest, their output
// and exit code come back). A 9p share carries the built firmware into the guest read-only. A second
// virtio-serial port carries the simulated LEDs' levels out (guest/led-report); each line is stamped
// with the host's clock as it arrives, so it can be ordered against packets the host receives.
//
// Disk: cache=writeback,aio=threads. writeback exposes a volatile write cache to the guest and
// honours its flushes (QEMU fdatasyncs the image file on every FLUSH), so an fsync in the guest reaches
// the host file; `unsafe` would ignore flushes and prove nothing. A SIGKILL of QEMU drops the guest's
// page cache and everything in flight inside QEMU; data QEMU had already handed to the host kernel
// survives (it is in the host's page cache), which is kinder than a real disk losing its cache.
import { type ChildProcess, spawn } from 'node:child_process';
import { EventEmitter, once } from 'node:events';
import { closeSync, openSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';

export interface VmOptions {
  imageDir: string;
  disk: string;
  runDir: string;
  share: string;
  memoryMB?: number;
  cpus?: number;
}

export interface ExecResult {
  code: number;
  out: string;
  err: string;
}

interface Pending {
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
}

/** One connection to the guest agent; requests go one at a time (the agent answers in order). */
class Agent {
  readonly #path: string;
  #socket: Socket | undefined;
  #buffer = '';
  #pending: Pending | undefined;
  #queue: Promise<unknown> = Promise.resolve();

  constructor(path: string) {
    this.#path = path;
  }

  close(): void {
    this.#socket?.destroy();
    this.#socket = undefined;
    this.#pending?.reject(new Error('agent connection closed'));
    this.#pending = undefined;
  }

  async #connect(): Promise<Socket> {
    if (this.#socket && !this.#socket.destroyed) return this.#socket;
    const socket = createConnection(this.#path);
    await once(socket, 'connect');
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => this.#onData(chunk));
    socket.on('error', () => this.close());
    socket.on('close', () => {
      if (this.#socket === socket) this.close();
    });
    this.#socket = socket;
    this.#buffer = '';
    return socket;
  }

  #onData(chunk: string): void {
    this.#buffer += chunk;
    for (;;) {
      const newline = this.#buffer.indexOf('\n');
      if (newline < 0) return;
      const line = this.#buffer.slice(0, newline).replace(/^\xff/, '').trim();
      this.#buffer = this.#buffer.slice(newline + 1);
      if (!line) continue;
      let message: { return?: unknown; error?: { desc?: string } };
      try {
        message = JSON.parse(line) as typeof message;
      } catch {
        continue;
      }
      const pending = this.#pending;
      if (!pending) continue;
      this.#pending = undefined;
      if (message.error) pending.reject(new Error(`guest agent: ${message.error.desc ?? 'error'}`));
      else pending.resolve(message.return);
    }
  }

  /** Sends one command; a timeout drops the connection so a late answer cannot be mistaken for the next. */
  request(execute: string, args: unknown, timeoutMs: number): Promise<unknown> {
    const run = async (): Promise<unknown> => {
      const socket = await this.#connect();
      const answer = new Promise<unknown>((resolve, reject) => {
        this.#pending = { resolve, reject };
      });
      socket.write(`${JSON.stringify(args === undefined ? { execute } : { execute, arguments: args })}\n`);
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`guest agent: ${execute} timed out`)), timeoutMs);
      });
      try {
        return await Promise.race([answer, timeout]);
      } catch (err) {
        this.close();
        throw err;
      } finally {
        clearTimeout(timer);
      }
    };
    const result = this.#queue.then(run, run);
    this.#queue = result.catch(() => undefined);
    return result;
  }
}

/** One LED level reported by the guest, stamped on the host's clock when the line arrived. */
export interface LedChange {
  atMs: number;
  pin: number;
  value: 0 | 1;
}

/** The guest's LED reports: a line-per-change stream over a virtio-serial port (a unix socket here). */
class LedPort extends EventEmitter<{ change: [LedChange] }> {
  readonly #path: string;
  #socket: Socket | undefined;
  #closed = true;
  readonly changes: LedChange[] = [];

  constructor(path: string) {
    super();
    this.#path = path;
  }

  /** Connects (QEMU makes the socket a moment after it starts) and keeps reading until `close`. */
  async open(timeoutMs: number): Promise<void> {
    this.#closed = false;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        const socket = createConnection(this.#path);
        await once(socket, 'connect');
        this.#socket = socket;
        break;
      } catch (err) {
        if (this.#closed || Date.now() > deadline) throw err;
        await delay(100);
      }
    }
    let buffer = '';
    this.#socket.setEncoding('utf8');
    this.#socket.on('error', () => undefined);
    this.#socket.on('data', (chunk: string) => {
      const atMs = performance.timeOrigin + performance.now();
      buffer += chunk;
      for (let newline = buffer.indexOf('\n'); newline >= 0; newline = buffer.indexOf('\n')) {
        const match = /^led (\d+) ([01])$/.exec(buffer.slice(0, newline).trim());
        buffer = buffer.slice(newline + 1);
        if (!match) continue;
        const change: LedChange = { atMs, pin: Number(match[1]), value: match[2] === '1' ? 1 : 0 };
        this.changes.push(change);
        this.emit('change', change);
      }
    });
  }

  close(): void {
    this.#closed = true;
    this.#socket?.destroy();
    this.#socket = undefined;
  }
}

export class Vm {
  readonly #options: VmOptions;
  #qemu: ChildProcess | undefined;
  #agent: Agent;
  #exited: Promise<void> = Promise.resolve();
  readonly consoleLog: string;
  /** The LED levels the guest reported, across boots (see LedPort). */
  readonly leds: LedPort;

  constructor(options: VmOptions) {
    this.#options = options;
    this.#agent = new Agent(join(options.runDir, 'qga.sock'));
    this.leds = new LedPort(join(options.runDir, 'led.sock'));
    this.consoleLog = join(options.runDir, 'console.log');
  }

  get running(): boolean {
    return this.#qemu !== undefined && this.#qemu.exitCode === null && this.#qemu.signalCode === null;
  }

  start(): void {
    if (this.running) throw new Error('VM already running');
    const o = this.#options;
    const log = openSync(this.consoleLog, 'a');
    const args = [
      '-accel',
      'tcg',
      '-machine',
      'q35',
      '-cpu',
      'max',
      '-smp',
      String(o.cpus ?? 2),
      '-m',
      String(o.memoryMB ?? 1536),
      '-display',
      'none',
      '-no-reboot',
      '-serial',
      'stdio',
      '-kernel',
      join(o.imageDir, 'vmlinuz'),
      '-initrd',
      join(o.imageDir, 'initrd.img'),
      '-append',
      'root=/dev/vda rw console=ttyS0 net.ifnames=0 panic=-1 systemd.show_status=0 loglevel=4',
      '-drive',
      `file=${o.disk},format=raw,if=virtio,cache=writeback,aio=threads,discard=unmap`,
      '-device',
      'virtio-serial-pci',
      '-chardev',
      `socket,path=${join(o.runDir, 'qga.sock')},server=on,wait=off,id=qga0`,
      '-device',
      'virtserialport,chardev=qga0,name=org.qemu.guest_agent.0',
      '-chardev',
      `socket,path=${join(o.runDir, 'led.sock')},server=on,wait=off,id=led0`,
      '-device',
      'virtserialport,chardev=led0,name=org.trygghetskamera.led',
      '-netdev',
      'user,id=net0',
      '-device',
      'virtio-net-pci,netdev=net0',
      '-fsdev',
      `local,id=fs0,path=${o.share},security_model=none,readonly=on`,
      '-device',
      'virtio-9p-pci,fsdev=fs0,mount_tag=host',
    ];
    // setpriv: if the rig dies without cleaning up, the kernel takes QEMU down with it.
    const qemu = spawn(
      'setpriv',
      ['--pdeathsig', 'KILL', 'nice', '-n', '10', 'qemu-system-x86_64', ...args],
      {
        stdio: ['ignore', log, log],
      },
    );
    closeSync(log);
    this.#qemu = qemu;
    this.#exited = new Promise((resolve) => qemu.once('exit', () => resolve()));
    this.leds.open(30_000).catch(() => undefined);
  }

  /** The last level the guest reported for `pin` (undefined before any report). */
  led(pin: number): 0 | 1 | undefined {
    return this.leds.changes.findLast((c) => c.pin === pin)?.value;
  }

  /** Power cut: SIGKILL, nothing in the guest gets a chance to write. */
  async kill(): Promise<void> {
    this.#agent.close();
    this.leds.close();
    const qemu = this.#qemu;
    if (!qemu || !this.running) return;
    qemu.kill('SIGKILL');
    await this.#exited;
  }

  /** Clean shutdown through the agent; SIGKILL if the guest does not power off within `timeoutMs`. */
  async shutdown(timeoutMs = 60_000): Promise<boolean> {
    if (!this.running) return true;
    await this.#agent.request('guest-shutdown', { mode: 'powerdown' }, 5000).catch(() => undefined);
    this.#agent.close();
    this.leds.close();
    const clean = await Promise.race([this.#exited.then(() => true), delay(timeoutMs).then(() => false)]);
    if (!clean) await this.kill();
    return clean;
  }

  /** Waits until the agent answers (the guest has booted far enough); rejects after `timeoutMs`. */
  async waitForAgent(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (!this.running) throw new Error(`QEMU exited during boot; see ${this.consoleLog}`);
      try {
        const id = Math.floor(Math.random() * 1e9);
        const answer = await this.#agent.request('guest-sync', { id }, 3000);
        if (answer === id) return;
      } catch {
        await delay(1000);
      }
    }
    throw new Error(`guest agent not answering after ${timeoutMs} ms; see ${this.consoleLog}`);
  }

  /** Runs `sh -c command` in the guest as root; bounded by `timeoutMs` (the guest-side `timeout` too). */
  async exec(command: string, timeoutMs = 60_000): Promise<ExecResult> {
    const seconds = Math.max(1, Math.ceil(timeoutMs / 1000));
    const started = (await this.#agent.request(
      'guest-exec',
      {
        path: '/usr/bin/timeout',
        arg: ['-k', '5', String(seconds), '/bin/sh', '-c', command],
        'capture-output': true,
      },
      10_000,
    )) as { pid: number };
    const deadline = Date.now() + timeoutMs + 15_000;
    let wait = 50;
    while (Date.now() < deadline) {
      const status = (await this.#agent.request('guest-exec-status', { pid: started.pid }, 10_000)) as {
        exited: boolean;
        exitcode?: number;
        signal?: number;
        'out-data'?: string;
        'err-data'?: string;
      };
      if (status.exited) {
        const decode = (data: string | undefined): string =>
          Buffer.from(data ?? '', 'base64').toString('utf8');
        return {
          code: status.exitcode ?? 128 + (status.signal ?? 0),
          out: decode(status['out-data']),
          err: decode(status['err-data']),
        };
      }
      await delay(wait);
      wait = Math.min(wait * 2, 500);
    }
    throw new Error(`guest command timed out: ${command}`);
  }

  /** Like exec, but a non-zero exit code rejects with the command's output. */
  async sh(command: string, timeoutMs = 60_000): Promise<string> {
    const result = await this.exec(command, timeoutMs);
    if (result.code !== 0) {
      throw new Error(
        `guest: \`${command}\` exited ${result.code}\n${result.out}${result.err}`.slice(0, 4000),
      );
    }
    return result.out;
  }
}
