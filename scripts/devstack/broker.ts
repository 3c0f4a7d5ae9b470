// A real mosquitto (Debian's /usr/sbin/mosquitto, 2.0.11) for the tests, the demo and the benchmarks, on
// random loopback ports: a TLS listener where the client certificate's CN is the MQTT username and the
// protocol ACL decides, and optionally a WebSocket listener for browsers and a plain listener for the
// loopback demo path. It runs the set-up we ship (scripts/broker/config.ts, docs/mosquitto/): the same
// ACL with one block per console, the username as client id, and the same max_packet_size.
//
// mosquitto 2.0.11 quirks this works around or documents:
// - A WebSocket listener ignores its bind address and listens on every interface
//   (eclipse-mosquitto/mosquitto#3045), so it always requires a password; and a config with only a
//   WebSocket listener does not start (eclipse-mosquitto/mosquitto#2284), so the TLS listener comes first.
// - Started as root, mosquitto drops to the `mosquitto` user, which cannot read our 0700 temp dir:
//   `user root` keeps it as root (only when we are root; otherwise the option does nothing).
// - The acl_file is not consulted at SUBSCRIBE time, only when a message is delivered (read) or
//   accepted (write); a denied publish is still acknowledged. Tests must assert non-delivery.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { createConnection, createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { promisify } from 'node:util';
import type { IClientOptions } from 'mqtt';
import {
  type ConsoleIdentity,
  consoleIdentities,
  exampleConsoles,
  maxPacketSizeBytes,
  mosquittoAcl,
  type ServiceIdentity,
  serviceIdentities,
} from '../broker/config.js';
import { type Pki, removeTestTempDir, testPki, testTempDir } from './pki.js';

export type { ConsoleIdentity } from '../broker/config.js';

const run = promisify(execFile);

export const mosquittoPath = '/usr/sbin/mosquitto';
const mosquittoPasswdPath = '/usr/bin/mosquitto_passwd';
// setpriv --pdeathsig makes the kernel kill mosquitto if the test process dies without running 'exit' hooks.
const setprivPath = '/usr/bin/setpriv';
const loopback = '127.0.0.1';
const startTimeoutMs = 10_000;
const stopGraceMs = 3_000;
const logLimitChars = 2_000_000;

/** Identities that may log in with a password on the WebSocket listener: services and consoles. */
export type PasswordIdentity = ServiceIdentity | ConsoleIdentity;

// The plain listener is for the loopback demo path (device config with mqtt://): anonymous clients may
// use the whole tree, and a client that states a username gets that identity's ACL without a password.
function plainAcl(consoles: readonly ConsoleIdentity[]): string {
  return `# Anonymous clients (plain loopback listener only).\ntopic readwrite tk/#\n\n${mosquittoAcl(consoles)}`;
}

export interface BrokerOptions {
  /**
   * Operator consoles, each with its own identity and ACL block (the same rights for all); they log in
   * with `clientOptions(name)` (TLS) or `wsOptions(name)` (WebSocket). Default: `['console-1', 'console-2']`.
   */
  consoles?: readonly ConsoleIdentity[];
  /** Also open an MQTT-over-WebSocket listener (password login for `PasswordIdentity`). */
  websockets?: boolean;
  /** Also open a plain-TCP listener on loopback (no TLS; see `plainOptions`). */
  plain?: boolean;
  /** PKI to use; default: the test file's shared `testPki()`. */
  pki?: Pki;
  /**
   * Log no debug lines (mosquitto writes one per PUBLISH in and out). For floods: at thousands of
   * messages a second mosquitto blocks on its stderr pipe whenever the process reading it (the one the
   * device service runs in) is busy, and then holds every message for everyone, in bursts of about a
   * second. A device's real broker logs elsewhere. Default false (`log_type all`).
   */
  quietLog?: boolean;
  /**
   * Run inside this network namespace (the network lab, scripts/netlab), listening on `host` there; the
   * caller's own namespace cannot reach it, so readiness is read from mosquitto's log.
   */
  netns?: { name: string; host: string } | undefined;
}

export interface Broker {
  /** TLS listener port. */
  readonly port: number;
  readonly wsPort: number | undefined;
  readonly plainPort: number | undefined;
  /** `mqtts://127.0.0.1:<port>`; combine with `clientOptions()`. */
  readonly url: string;
  /** `ws://127.0.0.1:<wsPort>/mqtt`, when started with `websockets`. */
  readonly wsUrl: string | undefined;
  /** `mqtt://127.0.0.1:<plainPort>`, when started with `plain`. */
  readonly plainUrl: string | undefined;
  readonly pki: Pki;
  /** The console identities this broker knows (`BrokerOptions.consoles`). */
  readonly consoles: readonly ConsoleIdentity[];
  readonly running: boolean;
  /** mqtt.js options for the TLS listener as `identity` (certificate CN); the server is always verified. */
  clientOptions(identity: string): Promise<IClientOptions>;
  /** mqtt.js options for the WebSocket listener; throws unless started with `websockets` and `identity` is known. */
  wsOptions(identity: PasswordIdentity): IClientOptions;
  /** Username and password for the WebSocket listener (for a browser's MQTT client). */
  wsCredentials(identity: PasswordIdentity): { username: string; password: string };
  /** mqtt.js options for the plain listener: anonymous, or stating `identity` as username. */
  plainOptions(identity?: string): IClientOptions;
  /** Everything mosquitto logged so far, across restarts. */
  logs(): string;
  /** Stops mosquitto and waits for it to exit; safe to call any number of times. */
  stop(): Promise<void>;
  /** Kills mosquitto with SIGKILL (a crash: it saves nothing) and waits for it to exit. */
  crash(): Promise<void>;
  /**
   * Stops (when still running) and starts again on the same ports (simulated outage, or the return
   * after `crash()`); resolves when it accepts connections.
   */
  restart(): Promise<void>;
}

const liveProcesses = new Set<ChildProcess>();
let exitHooked = false;

function hookProcessExit(): void {
  if (exitHooked) return;
  exitHooked = true;
  // Last resort for a test that forgot stop(): 'exit' listeners run synchronously, kill() is synchronous.
  // When the worker is killed instead, setpriv's parent-death signal takes mosquitto down with it.
  process.once('exit', () => {
    for (const child of liveProcesses) child.kill('SIGKILL');
  });
}

/** Distinct ports free on every interface at this moment (the WebSocket listener binds all of them). */
async function freePorts(count: number): Promise<number[]> {
  // All held open together, so the kernel cannot hand out the same port twice.
  const servers = Array.from({ length: count }, () => createServer());
  try {
    return await Promise.all(
      servers.map(
        (server) =>
          new Promise<number>((resolve, reject) => {
            server.once('error', reject);
            server.listen(0, () => {
              const address = server.address();
              if (address === null || typeof address === 'string') reject(new Error('no TCP port assigned'));
              else resolve(address.port);
            });
          }),
      ),
    );
  } finally {
    await Promise.all(servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
  }
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: loopback, port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => {
      socket.destroy();
      resolve(false);
    });
  });
}

interface Ports {
  tls: number;
  ws: number | undefined;
  plain: number | undefined;
}

class StartError extends Error {
  constructor(
    message: string,
    readonly portInUse: boolean,
  ) {
    super(message);
  }
}

class MosquittoBroker implements Broker {
  readonly pki: Pki;
  readonly consoles: readonly ConsoleIdentity[];
  /** Config, ACL and password files of the running process; mosquitto reads them only at start. */
  #dir: string | undefined;
  readonly #passwords: Map<PasswordIdentity, string>;
  readonly #options: BrokerOptions;
  readonly #host: string;
  #ports: Ports = { tls: 0, ws: undefined, plain: undefined };
  #log: string[] = [];
  #logChars = 0;
  #child: ChildProcess | undefined;
  #alive = false;
  #exited: Promise<void> = Promise.resolve();
  #stopping: Promise<void> | undefined;

  constructor(pki: Pki, options: BrokerOptions) {
    this.pki = pki;
    this.#options = options;
    this.#host = options.netns?.host ?? loopback;
    this.consoles = consoleIdentities(options.consoles ?? exampleConsoles);
    hookProcessExit();
    this.#passwords = new Map(
      [...serviceIdentities, ...this.consoles].map((identity) => [identity, randomHex()] as const),
    );
  }

  get port(): number {
    return this.#ports.tls;
  }

  get wsPort(): number | undefined {
    return this.#ports.ws;
  }

  get plainPort(): number | undefined {
    return this.#ports.plain;
  }

  get url(): string {
    return `mqtts://${this.#host}:${this.#ports.tls}`;
  }

  get wsUrl(): string | undefined {
    return this.#ports.ws === undefined ? undefined : `ws://${this.#host}:${this.#ports.ws}/mqtt`;
  }

  get plainUrl(): string | undefined {
    return this.#ports.plain === undefined ? undefined : `mqtt://${this.#host}:${this.#ports.plain}`;
  }

  get running(): boolean {
    return this.#alive;
  }

  async clientOptions(identity: string): Promise<IClientOptions> {
    const files = await this.pki.clientCert(identity);
    const [ca, cert, key] = await Promise.all([
      readFile(this.pki.caCert),
      readFile(files.cert),
      readFile(files.key),
    ]);
    return {
      protocol: 'mqtts',
      host: this.#host,
      port: this.#ports.tls,
      // The certificate names localhost; we dial the IP so an IPv6-first resolver cannot miss the listener.
      servername: 'localhost',
      ca,
      cert,
      key,
      rejectUnauthorized: true,
    };
  }

  wsCredentials(identity: PasswordIdentity): { username: string; password: string } {
    if (this.#ports.ws === undefined) throw new Error('broker started without websockets');
    const password = this.#passwords.get(identity);
    if (password === undefined) {
      throw new Error(`${identity} has no login here (consoles: ${this.consoles.join(', ')})`);
    }
    return { username: identity, password };
  }

  wsOptions(identity: PasswordIdentity): IClientOptions {
    const { username, password } = this.wsCredentials(identity);
    return { protocol: 'ws', host: this.#host, port: this.#ports.ws!, path: '/mqtt', username, password };
  }

  plainOptions(identity?: string): IClientOptions {
    if (this.#ports.plain === undefined) throw new Error('broker started without a plain listener');
    return {
      protocol: 'mqtt',
      host: this.#host,
      port: this.#ports.plain,
      ...(identity === undefined ? {} : { username: identity }),
    };
  }

  logs(): string {
    return this.#log.join('');
  }

  async start(): Promise<void> {
    for (let attempt = 1; ; attempt += 1) {
      const [tls, ws, plain] = await freePorts(3);
      this.#ports = {
        tls: tls!,
        ws: this.#options.websockets ? ws : undefined,
        plain: this.#options.plain ? plain : undefined,
      };
      try {
        await this.#launch();
        return;
      } catch (error) {
        // Another process may take a port between our probe and mosquitto's bind: pick new ones.
        if (!(error instanceof StartError && error.portInUse && attempt < 5)) throw error;
      }
    }
  }

  async restart(): Promise<void> {
    await this.stop();
    for (let attempt = 1; ; attempt += 1) {
      try {
        await this.#launch();
        return;
      } catch (error) {
        if (!(error instanceof StartError && error.portInUse && attempt < 30)) throw error;
        await delay(100);
      }
    }
  }

  async crash(): Promise<void> {
    if (this.#child && this.running) this.#child.kill('SIGKILL');
    await this.#exited;
  }

  stop(): Promise<void> {
    this.#stopping ??= this.#stop().finally(() => {
      this.#stopping = undefined;
    });
    return this.#stopping;
  }

  async #stop(): Promise<void> {
    const child = this.#child;
    if (child && this.running) {
      child.kill('SIGTERM');
      const exited = await Promise.race([this.#exited.then(() => true), delay(stopGraceMs, false)]);
      if (!exited) child.kill('SIGKILL');
    }
    await this.#exited;
    if (this.#dir !== undefined) removeTestTempDir(this.#dir);
    this.#dir = undefined;
  }

  async #writeFiles(dir: string): Promise<string> {
    await writeFile(join(dir, 'acl.conf'), mosquittoAcl(this.consoles));
    await writeFile(join(dir, 'acl-plain.conf'), plainAcl(this.consoles));
    if (this.#options.websockets) {
      const passwordFile = join(dir, 'passwd');
      await writeFile(passwordFile, '');
      for (const [identity, password] of this.#passwords) {
        await run(mosquittoPasswdPath, ['-b', passwordFile, identity, password]);
      }
    }
    const configFile = join(dir, 'mosquitto.conf');
    await writeFile(configFile, this.#config(dir));
    return configFile;
  }

  #config(dir: string): string {
    const lines = [
      '# Written by scripts/devstack/broker.ts for one test run.',
      'per_listener_settings true',
      'persistence false',
      // As in docs/mosquitto: a persistent subscriber that is away (a fleet instance restarting) keeps
      // more than mosquitto's default 1000 queued messages.
      'max_queued_messages 100000',
      'log_dest stderr',
      ...(this.#options.quietLog
        ? ['log_type error', 'log_type warning', 'log_type notice', 'log_type information']
        : ['log_type all']),
      'connection_messages true',
      // As in docs/mosquitto/mosquitto.conf: no Nagle delay on small messages (decisions, signalling).
      'set_tcp_nodelay true',
      `max_packet_size ${maxPacketSizeBytes}`,
      ...(process.getuid?.() === 0 ? ['user root'] : []),
      '',
      `listener ${this.#ports.tls} ${this.#host}`,
      `cafile ${this.pki.caCert}`,
      `certfile ${this.pki.server.cert}`,
      `keyfile ${this.pki.server.key}`,
      'require_certificate true',
      'use_identity_as_username true',
      'use_username_as_clientid true',
      'allow_anonymous false',
      `acl_file ${join(dir, 'acl.conf')}`,
    ];
    if (this.#ports.ws !== undefined) {
      lines.push(
        '',
        `listener ${this.#ports.ws} ${this.#host}`,
        'protocol websockets',
        'use_username_as_clientid true',
        'allow_anonymous false',
        `password_file ${join(dir, 'passwd')}`,
        `acl_file ${join(dir, 'acl.conf')}`,
      );
    }
    if (this.#ports.plain !== undefined) {
      // No use_username_as_clientid here: mosquitto would then refuse anonymous clients, which the demo
      // device and the look stack's central are; and on this listener anyone may state any username
      // without a password anyway, so tying the client id to it would protect nothing.
      lines.push(
        '',
        `listener ${this.#ports.plain} ${this.#host}`,
        'allow_anonymous true',
        `acl_file ${join(dir, 'acl-plain.conf')}`,
      );
    }
    return `${lines.join('\n')}\n`;
  }

  #append(chunk: Buffer): void {
    const text = chunk.toString('utf8');
    this.#log.push(text);
    this.#logChars += text.length;
    while (this.#logChars > logLimitChars && this.#log.length > 1) {
      this.#logChars -= this.#log.shift()!.length;
    }
  }

  async #launch(): Promise<void> {
    this.#dir = testTempDir('mosquitto');
    try {
      await this.#spawn(this.#dir);
    } catch (error) {
      await this.stop();
      throw error;
    }
  }

  async #spawn(dir: string): Promise<void> {
    const configFile = await this.#writeFiles(dir);
    const logStart = this.logs().length;
    const args = ['-c', configFile];
    let command = existsSync(setprivPath) ? setprivPath : mosquittoPath;
    let commandArgs = command === setprivPath ? ['--pdeathsig', 'KILL', mosquittoPath, ...args] : args;
    const netns = this.#options.netns;
    if (netns) {
      // `ip netns exec` execs what follows: the pid stays mosquitto's (setpriv execs it too).
      commandArgs = ['netns', 'exec', netns.name, command, ...commandArgs];
      command = '/usr/sbin/ip';
    }
    const child = spawn(command, commandArgs, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.#child = child;
    this.#alive = true;
    liveProcesses.add(child);
    let spawnError: Error | undefined;
    this.#exited = new Promise((resolve) => {
      // 'close' comes after 'exit' once the pipes are drained, so logs() then holds the last words.
      const done = (): void => {
        this.#alive = false;
        liveProcesses.delete(child);
        resolve();
      };
      child.once('close', done);
      child.once('error', (error) => {
        spawnError = error;
        done();
      });
    });
    child.stdout?.on('data', (chunk: Buffer) => this.#append(chunk));
    child.stderr?.on('data', (chunk: Buffer) => this.#append(chunk));

    const ports = [this.#ports.tls, this.#ports.ws, this.#ports.plain].filter(
      (p): p is number => p !== undefined,
    );
    const deadline = performance.now() + startTimeoutMs;
    while (performance.now() < deadline) {
      if (!this.#alive) {
        const log = this.logs().slice(logStart);
        throw new StartError(
          `mosquitto exited during start${spawnError ? ` (${spawnError.message})` : ''}:\n${log}`,
          /address already in use|unable to start any listening sockets/i.test(log),
        );
      }
      if (this.logs().slice(logStart).includes(' running')) {
        if (netns) return;
        const ready = await Promise.all(ports.map(accepts));
        if (ready.every(Boolean)) return;
      }
      await delay(20);
    }
    throw new StartError(
      `mosquitto did not accept connections within ${startTimeoutMs} ms:\n${this.logs().slice(logStart)}`,
      false,
    );
  }
}

function randomHex(): string {
  return randomBytes(16).toString('hex');
}

/**
 * Starts mosquitto on loopback with random ports and resolves once every listener accepts connections.
 * Call `stop()` in `afterAll`; a process left running is killed when the test process exits.
 */
export async function startBroker(options: BrokerOptions = {}): Promise<Broker> {
  const broker = new MosquittoBroker(options.pki ?? (await testPki()), options);
  try {
    await broker.start();
  } catch (error) {
    await broker.stop();
    throw error;
  }
  return broker;
}
