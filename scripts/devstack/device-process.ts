// The parent's handle on scripts/devstack/look-device.ts: forks it, waits until its stack is up, and sends it
// requests over IPC (schedule, grant, encoder pid). `stop` asks for a clean stop and kills it if that
// takes more than a few seconds.
import { type ChildProcess, fork } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type {
  DeviceReady,
  DeviceReply,
  DeviceRequest,
  LinkState,
  LookDeviceOptions,
  MediaPids,
  ViewState,
} from './look-device.js';
import type { ScheduleKind } from './look-stack.js';
import type { GrantHolder } from './viewer-server.js';

const entry = join(dirname(fileURLToPath(import.meta.url)), 'look-device.ts');

export class DeviceProcess {
  readonly #child: ChildProcess;
  readonly deviceId: string;
  #nextId = 1;
  readonly #pending = new Map<number, (reply: DeviceReply) => void>();
  readonly #exited: Promise<void>;

  private constructor(child: ChildProcess, deviceId: string, exited: Promise<void>) {
    this.#child = child;
    this.deviceId = deviceId;
    this.#exited = exited;
    child.on('message', (message: DeviceReply) => {
      const resolve = this.#pending.get(message.id);
      this.#pending.delete(message.id);
      resolve?.(message);
    });
  }

  static start(
    brokerUrl: string,
    camera: { width: number; height: number; fps: number },
  ): Promise<DeviceProcess> {
    const child = fork(entry, [brokerUrl, String(camera.width), String(camera.height), String(camera.fps)], {
      // --expose-gc lets the soak separate a leak from the collector's sawtooth.
      execArgv: ['--import', 'tsx', '--expose-gc'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    return DeviceProcess.#started(child);
  }

  /**
   * The device process with `options` (TLS broker, TURN, config), forked by `forkIn` (the network lab
   * forks it inside the device's namespace).
   */
  static startWith(
    options: LookDeviceOptions,
    forkIn: (module: string, args: string[]) => ChildProcess,
  ): Promise<DeviceProcess> {
    return DeviceProcess.#started(forkIn(entry, [JSON.stringify(options)]));
  }

  static async #started(child: ChildProcess): Promise<DeviceProcess> {
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const deviceId = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('device process did not start in 30 s')), 30_000);
      child.once('message', (message: DeviceReady) => {
        clearTimeout(timer);
        resolve(message.deviceId);
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`device process exited with ${code}`));
      });
    });
    return new DeviceProcess(child, deviceId, exited);
  }

  get pid(): number {
    const pid = this.#child.pid;
    if (pid === undefined) throw new Error('device process has no pid');
    return pid;
  }

  request(type: 'schedule'): Promise<unknown>;
  request(type: 'grant', holder: GrantHolder): Promise<string>;
  request(type: 'encoder-pid'): Promise<number | undefined>;
  request(type: 'media-pids'): Promise<MediaPids>;
  request(type: 'memory'): Promise<NodeJS.MemoryUsage>;
  request(type: 'view-state'): Promise<ViewState>;
  request(type: 'link'): Promise<LinkState>;
  async request(type: DeviceRequest['type'], holder?: GrantHolder): Promise<unknown> {
    const id = this.#nextId++;
    const reply = await new Promise<DeviceReply>((resolve) => {
      this.#pending.set(id, resolve);
      this.#child.send((type === 'grant' ? { id, type, holder } : { id, type }) as DeviceRequest);
    });
    if (!reply.ok) throw new Error(`device: ${reply.error}`);
    return reply.value;
  }

  /** A schedule of this kind (a window open now in `blurred` or `low-resolution` view, …). */
  async setSchedule(kind: ScheduleKind): Promise<unknown> {
    const id = this.#nextId++;
    const reply = await new Promise<DeviceReply>((resolve) => {
      this.#pending.set(id, resolve);
      this.#child.send({ id, type: 'schedule', kind } satisfies DeviceRequest);
    });
    if (!reply.ok) throw new Error(`device: ${reply.error}`);
    return reply.value;
  }

  /** Sends a signal to the device process (a crash: SIGKILL). */
  kill(signal: NodeJS.Signals): void {
    this.#child.kill(signal);
  }

  /** Clean stop (the stack's own stop), SIGKILL after 5 s. Resolves once the process has exited. */
  async stop(): Promise<void> {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return;
    const killer = setTimeout(() => this.#child.kill('SIGKILL'), 5000);
    try {
      if (this.#child.connected) {
        const id = this.#nextId++;
        this.#child.send({ id, type: 'stop' } satisfies DeviceRequest);
      } else {
        this.#child.kill('SIGTERM');
      }
      await this.#exited;
    } finally {
      clearTimeout(killer);
    }
  }
}
