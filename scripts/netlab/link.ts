// The parent's handle on the link emulator (link-emulator.ts) in the lab's wire namespace: starts it,
// routes each direction through its TUN device, and sets profiles, outages and reads byte counters.
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Lab } from './lab.js';
import type { FromEmulator, LinkProfile, LinkStats, ToEmulator } from './link-profile.js';

const entry = fileURLToPath(new URL('./link-emulator.ts', import.meta.url));
const startTimeoutMs = 20_000;
const replyTimeoutMs = 10_000;

type Request =
  | { type: 'profile'; profile: LinkProfile }
  | { type: 'down'; down: boolean }
  | { type: 'stats' };

export class EmulatedLink {
  readonly #child: ChildProcess;
  readonly #exited: Promise<void>;
  #nextId = 1;
  readonly #pending = new Map<number, (stats: LinkStats) => void>();

  private constructor(child: ChildProcess, exited: Promise<void>) {
    this.#child = child;
    this.#exited = exited;
    child.on('message', (message: FromEmulator) => {
      if (message.type !== 'ok') return;
      this.#pending.get(message.id)?.(message.stats);
      this.#pending.delete(message.id);
    });
  }

  /**
   * Starts the emulator in the wire namespace and sends both directions through it. `seed` picks the
   * losses: the same seed, the same packets lost (counted per direction).
   */
  static async start(lab: Lab, seed = 0): Promise<EmulatedLink> {
    const child = lab.fork('wire', entry, ['tunup', 'tundown', String(seed)]);
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const link = new EmulatedLink(child, exited);
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('link emulator did not start')), startTimeoutMs);
        child.once('message', () => {
          clearTimeout(timer);
          resolve();
        });
        child.once('exit', (code) => {
          clearTimeout(timer);
          reject(new Error(`link emulator exited with ${code}`));
        });
      });
      const ip = (args: string[]) => lab.run('wire', '/usr/sbin/ip', args);
      await ip(['link', 'set', 'tunup', 'up']);
      await ip(['link', 'set', 'tundown', 'up']);
      await ip(['route', 'add', 'default', 'dev', 'tunup', 'table', '101']);
      await ip(['route', 'add', 'default', 'dev', 'tundown', 'table', '102']);
      await ip(['rule', 'add', 'iif', 'nat', 'lookup', '101', 'pref', '100']);
      await ip(['rule', 'add', 'iif', 'pub', 'lookup', '102', 'pref', '101']);
    } catch (error) {
      await link.stop();
      throw error;
    }
    return link;
  }

  #request(request: Request): Promise<LinkStats> {
    const id = this.#nextId++;
    return new Promise<LinkStats>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`link emulator did not answer ${request.type}`));
      }, replyTimeoutMs);
      this.#pending.set(id, (stats) => {
        clearTimeout(timer);
        resolve(stats);
      });
      this.#child.send({ id, ...request } as ToEmulator);
    });
  }

  setProfile(profile: LinkProfile): Promise<LinkStats> {
    return this.#request({ type: 'profile', profile });
  }

  /** The link drops every packet (and what was in flight) until `setDown(false)`. */
  setDown(down: boolean): Promise<LinkStats> {
    return this.#request({ type: 'down', down });
  }

  stats(): Promise<LinkStats> {
    return this.#request({ type: 'stats' });
  }

  async stop(): Promise<void> {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return;
    if (this.#child.connected) this.#child.disconnect();
    const killer = setTimeout(() => this.#child.kill('SIGKILL'), 3000);
    await this.#exited;
    clearTimeout(killer);
  }
}
