// A werift operator console as a process of its own, for the network lab: forked inside the console's
// namespace, it logs in to the broker over TLS with its own certificate, answers the device's offers with
// the look's ICE servers (relay only) and counts the frames it reassembles. The parent drives it over the
// IPC channel (ConsoleProcess below).
//   lab.fork('con', 'scripts/netlab/console-process.ts', [JSON.stringify(ConsoleOptions)])
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { ViewDecision, ViewEnded } from '../../device/protocol/index.js';
import type { LookTimings, MqttViewer, PeerIce } from '../devstack/mqtt-console.js';

export interface ConsoleOptions {
  brokerUrl: string;
  caFile: string;
  certFile: string;
  keyFile: string;
  deviceId: string;
}

export interface LookReport {
  frames: number;
  keyframes: number;
  firstFrameIsKeyframe: boolean;
  timings: LookTimings;
  /** When each whole frame was reassembled (ms, this process's clock), in order. */
  frameTimesMs: number[];
  /** The candidate types of the pair ICE nominated, as this console sees it. */
  selected: { local: string; remote: string } | undefined;
}

type Request =
  | { type: 'holder' }
  | { type: 'look'; grant: string; ice: PeerIce }
  | { type: 'frames'; atLeast: number; keyframes: number; timeoutMs: number }
  | { type: 'ended'; timeoutMs: number }
  | { type: 'hangup' }
  /** The device's status messages this console has seen (it may read them), with when they came. */
  | { type: 'status' }
  | { type: 'close' };

export interface SeenStatus {
  state: string;
  connection: number;
  atMs: number;
}

type Reply = { id: number; ok: true; value: unknown } | { id: number; ok: false; error: string };

function report(viewer: MqttViewer): LookReport {
  const frames = viewer.frames;
  const nominated = (
    viewer.pc?.iceTransports[0]?.connection as
      | { nominated?: { localCandidate: { type: string }; remoteCandidate: { type: string } } }
      | undefined
  )?.nominated;
  return {
    frames: frames.length,
    keyframes: frames.filter((frame) => frame.keyframe).length,
    firstFrameIsKeyframe: frames[0]?.keyframe === true,
    frameTimesMs: frames.map((frame) => Math.round(frame.atMs)),
    timings: viewer.timings,
    selected: nominated
      ? { local: nominated.localCandidate.type, remote: nominated.remoteCandidate.type }
      : undefined,
  };
}

async function waitUntil(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!check()) {
    if (performance.now() > deadline) throw new Error(`console: no ${what} within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function main(): Promise<void> {
  const options = JSON.parse(process.argv[2] ?? '{}') as ConsoleOptions;
  const { MqttViewer } = await import('../devstack/mqtt-console.js');
  const viewer = await MqttViewer.connect(
    options.brokerUrl,
    {
      ca: readFileSync(options.caFile),
      cert: readFileSync(options.certFile),
      key: readFileSync(options.keyFile),
      rejectUnauthorized: true,
    },
    options.deviceId,
  );
  const statuses: SeenStatus[] = [];
  viewer.client.on('message', (topic, payload) => {
    if (!topic.endsWith('/status')) return;
    try {
      const { state, connection } = JSON.parse(payload.toString('utf8')) as SeenStatus;
      statuses.push({ state, connection, atMs: Date.now() });
    } catch {
      // Not ours to judge.
    }
  });
  await viewer.client.subscribeAsync(`tk/${options.deviceId}/status`, { qos: 1 });
  let ended: ViewEnded | undefined;
  viewer.on('ended', (message) => {
    ended = message;
  });
  const handle = async (request: Request): Promise<unknown> => {
    switch (request.type) {
      case 'holder':
        return viewer.holder;
      case 'look': {
        ended = undefined;
        viewer.ice = request.ice;
        const decision: ViewDecision = await viewer.request(request.grant);
        return decision;
      }
      case 'frames':
        await waitUntil(
          () =>
            viewer.frames.length >= request.atLeast &&
            viewer.frames.filter((frame) => frame.keyframe).length >= request.keyframes,
          request.timeoutMs,
          `${request.atLeast} frames`,
        );
        return report(viewer);
      case 'ended':
        await waitUntil(() => ended !== undefined, request.timeoutMs, 'ended message');
        return { ended, report: report(viewer) };
      case 'hangup':
        await viewer.hangup();
        return report(viewer);
      case 'status':
        return statuses;
      case 'close':
        await viewer.close();
        setImmediate(() => process.exit(0));
        return undefined;
    }
  };
  process.on('message', (message: { id: number } & Request) => {
    handle(message).then(
      (value) => process.send?.({ id: message.id, ok: true, value } satisfies Reply),
      (error: unknown) => process.send?.({ id: message.id, ok: false, error: String(error) } satisfies Reply),
    );
  });
  process.once('disconnect', () => process.exit(0));
  process.send?.({ id: 0, ok: true, value: 'ready' } satisfies Reply);
}

const isEntry = process.argv[1] === fileURLToPath(import.meta.url);
if (isEntry) {
  main().catch((error: unknown) => {
    console.error('console-process failed:', error);
    process.exit(1);
  });
}

/** The parent's handle on a console process. */
export class ConsoleProcess {
  static readonly entry = fileURLToPath(import.meta.url);
  readonly #child: ChildProcess;
  readonly #exited: Promise<void>;
  readonly #pending = new Map<number, (reply: Reply) => void>();
  #nextId = 1;

  private constructor(child: ChildProcess) {
    this.#child = child;
    this.#exited = new Promise((resolve) => child.once('exit', () => resolve()));
    child.on('message', (reply: Reply) => {
      this.#pending.get(reply.id)?.(reply);
      this.#pending.delete(reply.id);
    });
  }

  static async start(child: ChildProcess, timeoutMs = 30_000): Promise<ConsoleProcess> {
    const handle = new ConsoleProcess(child);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('console process did not start')), timeoutMs);
      handle.#pending.set(0, () => {
        clearTimeout(timer);
        resolve();
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`console process exited with ${code}`));
      });
    });
    return handle;
  }

  get pid(): number | undefined {
    return this.#child.pid;
  }

  #call(request: Request, timeoutMs = 60_000): Promise<unknown> {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`console did not answer ${request.type}`));
      }, timeoutMs);
      this.#pending.set(id, (reply) => {
        clearTimeout(timer);
        if (reply.ok) resolve(reply.value);
        else reject(new Error(reply.error));
      });
      this.#child.send({ id, ...request });
    });
  }

  holder(): Promise<{ fp: string; hup: string }> {
    return this.#call({ type: 'holder' }) as Promise<{ fp: string; hup: string }>;
  }

  look(grant: string, ice: PeerIce): Promise<ViewDecision> {
    return this.#call({ type: 'look', grant, ice }) as Promise<ViewDecision>;
  }

  frames(atLeast: number, keyframes: number, timeoutMs: number): Promise<LookReport> {
    return this.#call(
      { type: 'frames', atLeast, keyframes, timeoutMs },
      timeoutMs + 5000,
    ) as Promise<LookReport>;
  }

  ended(timeoutMs: number): Promise<{ ended: ViewEnded; report: LookReport }> {
    return this.#call({ type: 'ended', timeoutMs }, timeoutMs + 5000) as Promise<{
      ended: ViewEnded;
      report: LookReport;
    }>;
  }

  status(): Promise<SeenStatus[]> {
    return this.#call({ type: 'status' }) as Promise<SeenStatus[]>;
  }

  hangup(): Promise<LookReport> {
    return this.#call({ type: 'hangup' }) as Promise<LookReport>;
  }

  async close(): Promise<void> {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return;
    const killer = setTimeout(() => this.#child.kill('SIGKILL'), 5000);
    try {
      if (this.#child.connected) await this.#call({ type: 'close' }, 5000).catch(() => undefined);
      await this.#exited;
    } finally {
      clearTimeout(killer);
    }
  }
}
