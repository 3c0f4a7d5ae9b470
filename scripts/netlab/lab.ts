// A network lab made of network namespaces, as the lab test and the benchmarks build it (root only):
//
//   dev 10.10.0.2 ── dnat ──(100.64.1.0/30)── wire ──(100.64.1.4/30)── pub ──(100.64.2.0/30)── cnat ── con 10.20.0.2
//                    NAT                      link emulator            100.64.0.1: coturn,        NAT
//                    (symmetric or not)       (delay, loss, rate)      mosquitto; forwards nothing
//
// The device (dev) sits behind its router's NAT on an emulated 4G uplink, the console (con) behind the
// municipality's NAT. The public namespace holds the relay and the broker on 100.64.0.1 and forwards no
// packet between the two NATs, so no direct path exists: a look works only through the relay. Every
// address is inside the lab's namespaces; the host's own namespace gets nothing (the test talks to the
// lab's processes over IPC channels only).
//
// Names: `tklab-<pid>-<role>`, the owner's pid inside, so a later run removes what a killed run left
// (`removeStaleLabs`). `remove()` kills every process still inside and deletes the namespaces.
import { type ChildProcess, execFile, fork } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { promisify } from 'node:util';

const exec = promisify(execFile);
const ipPath = '/usr/sbin/ip';
const commandTimeoutMs = 10_000;

export type Role = 'dev' | 'dnat' | 'wire' | 'pub' | 'cnat' | 'con';
const roles: readonly Role[] = ['dev', 'dnat', 'wire', 'pub', 'cnat', 'con'];

export const labAddresses = {
  /** coturn and mosquitto. */
  services: '100.64.0.1',
  device: '10.10.0.2',
  console: '10.20.0.2',
  /** The device NAT's public address, and the one it moves to in a network change. */
  deviceNat: '100.64.1.2',
  deviceNatMoved: '100.64.1.3',
  consoleNat: '100.64.2.2',
} as const;

export interface LabOptions {
  /** MASQUERADE --random-fully on the device's NAT: a new source port per destination, as CGNAT does. */
  symmetricDeviceNat?: boolean;
}

export interface Lab {
  readonly prefix: string;
  ns(role: Role): string;
  /** Runs a command inside a namespace (bounded); rejects with its stderr. */
  run(role: Role, command: string, args: string[]): Promise<string>;
  /** Forks a TypeScript module (tsx) inside a namespace, with an IPC channel. */
  fork(role: Role, module: string, args: string[], options?: { env?: NodeJS.ProcessEnv }): ChildProcess;
  /** Pids of every process inside a namespace. */
  pids(role: Role): Promise<number[]>;
  /** The device NAT's public address moves (a 4G re-attach): old mappings are gone. */
  moveDeviceNat(): Promise<void>;
  /** Kills what still runs inside and deletes every namespace. Idempotent. */
  remove(): Promise<void>;
}

async function ip(args: string[]): Promise<string> {
  try {
    const { stdout } = await exec(ipPath, args, { timeout: commandTimeoutMs });
    return stdout;
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr ?? '';
    throw new Error(`ip ${args.join(' ')} failed: ${stderr.trim() || String(error)}`);
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function labNamespaces(): string[] {
  try {
    return readdirSync('/run/netns').filter((name) => name.startsWith('tklab-'));
  } catch {
    return [];
  }
}

async function deleteNamespace(name: string): Promise<void> {
  const pids = (await ip(['netns', 'pids', name]).catch(() => ''))
    .split('\n')
    .filter((line) => /^\d+$/.test(line))
    .map(Number);
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  await ip(['netns', 'delete', name]).catch(() => undefined);
}

/** Deletes the namespaces of labs whose owner process is gone (a run that was killed). */
export async function removeStaleLabs(): Promise<string[]> {
  const stale = labNamespaces().filter((name) => {
    const owner = Number(/^tklab-(\d+)-/.exec(name)?.[1]);
    return Number.isInteger(owner) && owner !== process.pid && !isAlive(owner);
  });
  for (const name of stale) await deleteNamespace(name);
  return stale;
}

/** Namespaces of labs this process made that still exist. */
export function ownLabNamespaces(): string[] {
  return labNamespaces().filter((name) => name.startsWith(`tklab-${process.pid}-`));
}

let labCounter = 0;

export async function createLab(options: LabOptions = {}): Promise<Lab> {
  labCounter += 1;
  const prefix = `tklab-${process.pid}-${labCounter}`;
  const ns = (role: Role) => `${prefix}-${role}`;
  const inNs = (role: Role, args: string[]) => ip(['-n', ns(role), ...args]);
  const run = async (role: Role, command: string, args: string[]) => {
    try {
      const { stdout } = await exec(ipPath, ['netns', 'exec', ns(role), command, ...args], {
        timeout: commandTimeoutMs,
      });
      return stdout;
    } catch (error) {
      const stderr = (error as { stderr?: string }).stderr ?? '';
      throw new Error(`${role}: ${command} ${args.join(' ')} failed: ${stderr.trim() || String(error)}`);
    }
  };
  let removed: Promise<void> | undefined;
  let natMoved = false;
  const remove = () => {
    removed ??= (async () => {
      for (const role of roles) await deleteNamespace(ns(role));
    })();
    return removed;
  };
  const link = async (a: Role, aName: string, b: Role, bName: string) => {
    await inNs(a, ['link', 'add', aName, 'type', 'veth', 'peer', 'name', bName, 'netns', ns(b)]);
    await inNs(a, ['link', 'set', aName, 'up']);
    await inNs(b, ['link', 'set', bName, 'up']);
  };
  const sysctl = (role: Role, key: string, value: string) => run(role, 'sysctl', ['-qw', `${key}=${value}`]);
  try {
    for (const role of roles) {
      await ip(['netns', 'add', ns(role)]);
      await inNs(role, ['link', 'set', 'lo', 'up']);
      // Reverse-path filtering would drop packets the emulator writes back on its TUN devices.
      await sysctl(role, 'net.ipv4.conf.all.rp_filter', '0');
      await sysctl(role, 'net.ipv4.conf.default.rp_filter', '0');
    }
    // moveDeviceNat adds the new address and then deletes the old one: keep the new one when it does.
    await sysctl('dnat', 'net.ipv4.conf.default.promote_secondaries', '1');
    await link('dev', 'eth0', 'dnat', 'lan');
    await link('dnat', 'wan', 'wire', 'nat');
    await link('wire', 'pub', 'pub', 'wire');
    await link('pub', 'cnat', 'cnat', 'wan');
    await link('cnat', 'lan', 'con', 'eth0');

    await inNs('dev', ['addr', 'add', `${labAddresses.device}/24`, 'dev', 'eth0']);
    await inNs('dev', ['route', 'add', 'default', 'via', '10.10.0.1']);
    await inNs('dnat', ['addr', 'add', '10.10.0.1/24', 'dev', 'lan']);
    await inNs('dnat', ['addr', 'add', `${labAddresses.deviceNat}/29`, 'dev', 'wan']);
    await inNs('dnat', ['route', 'add', 'default', 'via', '100.64.1.1']);
    await inNs('wire', ['addr', 'add', '100.64.1.1/29', 'dev', 'nat']);
    await inNs('wire', ['addr', 'add', '100.64.1.9/30', 'dev', 'pub']);
    await inNs('wire', ['route', 'add', '100.64.0.0/16', 'via', '100.64.1.10']);
    await inNs('pub', ['addr', 'add', '100.64.1.10/30', 'dev', 'wire']);
    await inNs('pub', ['addr', 'add', `${labAddresses.services}/32`, 'dev', 'lo']);
    await inNs('pub', ['route', 'add', '100.64.1.0/29', 'via', '100.64.1.9']);
    await inNs('pub', ['addr', 'add', '100.64.2.1/30', 'dev', 'cnat']);
    await inNs('cnat', ['addr', 'add', `${labAddresses.consoleNat}/30`, 'dev', 'wan']);
    await inNs('cnat', ['route', 'add', 'default', 'via', '100.64.2.1']);
    await inNs('cnat', ['addr', 'add', '10.20.0.1/24', 'dev', 'lan']);
    await inNs('con', ['addr', 'add', `${labAddresses.console}/24`, 'dev', 'eth0']);
    await inNs('con', ['route', 'add', 'default', 'via', '10.20.0.1']);

    for (const role of ['dnat', 'wire', 'cnat'] as const) await sysctl(role, 'net.ipv4.ip_forward', '1');
    // The public network forwards nothing between the two NATs: only its own services answer.
    await sysctl('pub', 'net.ipv4.ip_forward', '0');
    await run('pub', 'iptables', ['-P', 'FORWARD', 'DROP']);
    const masquerade = ['-t', 'nat', '-A', 'POSTROUTING', '-o', 'wan', '-j', 'MASQUERADE'];
    await run(
      'dnat',
      'iptables',
      options.symmetricDeviceNat ? [...masquerade, '--random-fully'] : masquerade,
    );
    await run('cnat', 'iptables', masquerade);
    // Nothing from outside reaches the LANs except replies (a home router, a municipal firewall).
    for (const role of ['dnat', 'cnat'] as const) {
      await run(role, 'iptables', [
        '-A',
        'FORWARD',
        '-i',
        'wan',
        '-m',
        'conntrack',
        '--ctstate',
        'ESTABLISHED,RELATED',
        '-j',
        'ACCEPT',
      ]);
      await run(role, 'iptables', ['-A', 'FORWARD', '-i', 'wan', '-j', 'DROP']);
    }
  } catch (error) {
    await remove();
    throw error;
  }

  return {
    prefix,
    ns,
    run,
    fork(role, module, args, forkOptions = {}) {
      // `ip netns exec` execs node in the namespace, keeping our IPC descriptor and environment.
      return fork(module, args, {
        execPath: ipPath,
        execArgv: ['netns', 'exec', ns(role), process.execPath, '--import', 'tsx'],
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
        ...(forkOptions.env ? { env: forkOptions.env } : {}),
      });
    },
    async pids(role) {
      return (await ip(['netns', 'pids', ns(role)]))
        .split('\n')
        .filter((line) => /^\d+$/.test(line))
        .map(Number);
    },
    async moveDeviceNat() {
      // Between the two addresses, so a lab can move more than once. Deleting the old address drops
      // the NAT's mappings that used it (the kernel flushes MASQUERADE entries of a removed address).
      const [from, to] = natMoved
        ? [labAddresses.deviceNatMoved, labAddresses.deviceNat]
        : [labAddresses.deviceNat, labAddresses.deviceNatMoved];
      await inNs('dnat', ['addr', 'add', `${to}/29`, 'dev', 'wan']);
      await inNs('dnat', ['addr', 'del', `${from}/29`, 'dev', 'wan']);
      await inNs('dnat', ['route', 'replace', 'default', 'via', '100.64.1.1', 'src', to]);
      natMoved = !natMoved;
    },
    remove,
  };
}
