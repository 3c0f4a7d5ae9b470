// What a Linux process costs, read from /proc for the resource and soak benches: CPU time, RSS, open file
// descriptors, UDP sockets and child processes. Linux only; every reader returns undefined (or an empty
// list) for a process that is gone instead of throwing.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

/** Clock ticks per second for /proc/<pid>/stat times (almost always 100). */
export const clockTicksPerSecond: number = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

const readText = (path: string): string | undefined => {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
};

/** Fields of /proc/<pid>/stat after the command name (which may contain spaces and parentheses). */
function statFields(pid: number): string[] | undefined {
  const text = readText(`/proc/${pid}/stat`);
  if (text === undefined) return undefined;
  return text.slice(text.lastIndexOf(')') + 2).split(' ');
}

/** User + system CPU time of the process itself, in seconds. */
export function cpuSeconds(pid: number): number | undefined {
  const fields = statFields(pid);
  // After the name: state(3) ppid(4) ... utime(14) stime(15), so utime is index 11 here.
  if (fields === undefined) return undefined;
  return (Number(fields[11]) + Number(fields[12])) / clockTicksPerSecond;
}

export function parentPid(pid: number): number | undefined {
  const fields = statFields(pid);
  return fields === undefined ? undefined : Number(fields[1]);
}

/** Resident set size in MiB (VmRSS), and its peak (VmHWM). */
export function memory(pid: number): { rssMiB: number; peakMiB: number } | undefined {
  const text = readText(`/proc/${pid}/status`);
  if (text === undefined) return undefined;
  const kib = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+)`, 'm').exec(text)?.[1] ?? 0);
  return { rssMiB: kib('VmRSS') / 1024, peakMiB: kib('VmHWM') / 1024 };
}

/** Socket inode numbers of this process's open descriptors, and the descriptor count. */
export function descriptors(pid: number): { count: number; socketInodes: Set<string> } | undefined {
  let names: string[];
  try {
    names = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return undefined;
  }
  const socketInodes = new Set<string>();
  for (const name of names) {
    try {
      const target = readlinkSync(`/proc/${pid}/fd/${name}`);
      const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
      if (inode !== undefined) socketInodes.add(inode);
    } catch {
      // Closed between readdir and readlink.
    }
  }
  return { count: names.length, socketInodes };
}

/** Inodes of every UDP socket on the machine (IPv4 and IPv6). */
function udpInodes(): Set<string> {
  const inodes = new Set<string>();
  for (const table of ['/proc/net/udp', '/proc/net/udp6']) {
    for (const line of (readText(table) ?? '').split('\n').slice(1)) {
      const inode = line.trim().split(/\s+/)[9];
      if (inode !== undefined && inode !== '0') inodes.add(inode);
    }
  }
  return inodes;
}

/** Open file descriptors and UDP sockets of a process. */
export function openFiles(pid: number): { fds: number; udpSockets: number } | undefined {
  const own = descriptors(pid);
  if (own === undefined) return undefined;
  const udp = udpInodes();
  let udpSockets = 0;
  for (const inode of own.socketInodes) if (udp.has(inode)) udpSockets += 1;
  return { fds: own.count, udpSockets };
}

/** Direct children of a process, with their command names. */
export function children(pid: number): Array<{ pid: number; command: string }> {
  const found: Array<{ pid: number; command: string }> = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const child = Number(name);
    if (parentPid(child) !== pid) continue;
    found.push({ pid: child, command: (readText(`/proc/${child}/comm`) ?? '?').trim() });
  }
  return found;
}

/** CPU use of a process over an interval, as a percentage of one core. */
export class CpuMeter {
  readonly #pid: number;
  #startCpuS: number | undefined;
  #startWallMs = 0;

  constructor(pid: number) {
    this.#pid = pid;
  }

  start(): void {
    this.#startCpuS = cpuSeconds(this.#pid);
    this.#startWallMs = performance.now();
  }

  /** Percent of one core since `start`, or undefined if the process is gone. */
  percent(): number | undefined {
    const nowCpuS = cpuSeconds(this.#pid);
    if (nowCpuS === undefined || this.#startCpuS === undefined) return undefined;
    const wallS = (performance.now() - this.#startWallMs) / 1000;
    return wallS > 0 ? ((nowCpuS - this.#startCpuS) / wallS) * 100 : undefined;
  }
}
