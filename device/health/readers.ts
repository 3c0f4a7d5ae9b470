// Small readers of the system, each a function of a root directory (or a command runner), so tests
// point them at fixture directories. Every reader returns undefined when its source is absent (not a
// Pi, no Wi-Fi, no throttling bits): health leaves the field out rather than guessing.
import { execFile } from 'node:child_process';
import { readFile, realpath, stat, statfs } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Runs a command; resolves with its stdout, or undefined if it is missing, fails or times out. */
export type RunCommand = (file: string, args: string[]) => Promise<string | undefined>;

export const runCommand: RunCommand = (file, args) =>
  new Promise((resolve) => {
    execFile(file, args, { timeout: 2000, maxBuffer: 65_536 }, (error, stdout) =>
      resolve(error ? undefined : stdout),
    );
  });

async function text(root: string, path: string): Promise<string | undefined> {
  try {
    return await readFile(join(root, path), 'utf8');
  } catch {
    return undefined;
  }
}

/** Hardware model, e.g. "Raspberry Pi 4 Model B Rev 1.5" (NUL-terminated in the device tree). */
export async function readModel(root: string): Promise<string | undefined> {
  const model = (await text(root, '/proc/device-tree/model'))?.replace(/\0/g, '').trim();
  return model ? model.slice(0, 128) : undefined;
}

/** PRETTY_NAME of /etc/os-release. */
export async function readOs(root: string): Promise<string | undefined> {
  const release = await text(root, '/etc/os-release');
  const match = release && /^PRETTY_NAME=(?:"([^"]*)"|(.*))$/m.exec(release);
  const name = match ? (match[1] ?? match[2] ?? '').trim() : '';
  return name ? name.slice(0, 128) : undefined;
}

/** CPU temperature in °C, one decimal, from the first thermal zone. */
export async function readCpuTempC(root: string): Promise<number | undefined> {
  const milli = Number.parseInt((await text(root, '/sys/class/thermal/thermal_zone0/temp')) ?? '', 10);
  return Number.isFinite(milli) ? Math.round(milli / 100) / 10 : undefined;
}

/** The 1-minute load average. */
export async function readLoad1(root: string): Promise<number | undefined> {
  const load = Number.parseFloat((await text(root, '/proc/loadavg')) ?? '');
  return Number.isFinite(load) && load >= 0 ? Math.round(load * 100) / 100 : undefined;
}

/** MemAvailable in MiB. */
export async function readMemFreeMB(root: string): Promise<number | undefined> {
  const match = /^MemAvailable:\s+(\d+) kB/m.exec((await text(root, '/proc/meminfo')) ?? '');
  return match?.[1] ? Math.floor(Number(match[1]) / 1024) : undefined;
}

/** Free space (for unprivileged users) of the file system holding `dir`, in MiB. */
export async function readDiskFreeMB(dir: string): Promise<number | undefined> {
  try {
    const fs = await statfs(dir);
    return Math.floor((fs.bavail * fs.bsize) / 1_048_576);
  } catch {
    return undefined;
  }
}

/** Signal level in dBm of the first interface in /proc/net/wireless. */
export async function readWifiDbm(root: string): Promise<number | undefined> {
  const lines = ((await text(root, '/proc/net/wireless')) ?? '').split('\n').slice(2);
  for (const line of lines) {
    // "wlan0: 0000   54.  -56.  -256        0      0      0      0     12        0"
    const match = /^\s*[\w.-]+:\s+\S+\s+\S+\s+(-?\d+)\.?/.exec(line);
    if (match?.[1]) return Number(match[1]);
  }
  return undefined;
}

/**
 * Where Raspberry Pi kernels publish the firmware's throttling bits (hex, no `0x`, e.g. "50005\n"):
 * the same value as `vcgencmd get_throttled`, read without /dev/vcio, which the hardened unit's
 * `DevicePolicy=closed` does not allow (systemd/trygghetskamera.service).
 */
export const throttledSysfsPath = '/sys/devices/platform/soc/soc:firmware/get_throttled';

/**
 * The firmware's throttling bits: from sysfs, else `vcgencmd get_throttled` ("throttled=0x50005") for a
 * kernel without the node (older firmware drivers, or run outside the unit).
 */
export async function readThrottled(root: string, run: RunCommand): Promise<number | undefined> {
  const node = (await text(root, throttledSysfsPath))?.trim();
  if (node !== undefined && /^(0x)?[0-9a-f]{1,8}$/i.test(node)) return Number.parseInt(node, 16);
  const match = /throttled=0x([0-9a-f]{1,8})\b/i.exec((await run('vcgencmd', ['get_throttled'])) ?? '');
  return match?.[1] ? Number.parseInt(match[1], 16) : undefined;
}

/** True when the camera's device node exists. */
export async function cameraPresent(root: string, device: string): Promise<boolean> {
  try {
    await stat(join(root, device));
    return true;
  } catch {
    return false;
  }
}

/** The V4L2 card name of a device node (/dev/video0 or a /dev/v4l/by-id link), from sysfs. */
export async function readCameraModel(root: string, device: string): Promise<string | undefined> {
  let node = basename(device);
  try {
    node = basename(await realpath(join(root, device)));
  } catch {
    // Not there now: try the name as given.
  }
  const name = (await text(root, `/sys/class/video4linux/${node}/name`))?.trim();
  return name ? name.slice(0, 128) : undefined;
}

/** Pixel formats from `v4l2-ctl --list-formats` ("[0]: 'MJPG' (Motion-JPEG, compressed)"). */
export async function readCameraFormats(run: RunCommand, device: string): Promise<string[] | undefined> {
  const output = await run('v4l2-ctl', ['--device', device, '--list-formats']);
  if (output === undefined) return undefined;
  const formats = [...output.matchAll(/\[\d+\]:\s*'([^']{1,16})'/g)].map((match) => match[1] ?? '');
  return [...new Set(formats)].slice(0, 32);
}

/** The version in the device software's package.json (found upwards from this file, src or dist). */
export async function readFirmwareVersion(): Promise<string> {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i += 1) {
    const raw = await text(dir, 'package.json');
    if (raw) {
      try {
        const parsed = JSON.parse(raw) as { name?: unknown; version?: unknown };
        if (parsed.name === 'trygghetskamera' && typeof parsed.version === 'string') return parsed.version;
      } catch {
        // Not ours; keep looking.
      }
    }
    dir = dirname(dir);
  }
  return 'unknown';
}
