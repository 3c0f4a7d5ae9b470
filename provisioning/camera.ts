// The camera, as the technician sees it: which V4L2 devices exist and what they can deliver, whether
// the configured one gives a frame (one ffmpeg grab), and a JPEG snapshot to check the camera's aim.
//
// The snapshot goes through node-webcam, which builds a *shell command line* from its options
// (child_process.exec). So every option it gets is checked first against strict patterns that admit
// no shell metacharacters (no spaces, quotes, $, ;, |, &, backticks, newlines), numbers are checked
// to be integers in range, and the text options that reach the command line (title, subtitle,
// timestamp, control values) are forced off. Anything else is refused before node-webcam is called.
import { readdir, readFile, readlink, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { basename, join } from 'node:path';
import type { Config } from '../device/config/index.js';
import { lastLines, type Runner } from './run.js';

export type InputFormat = 'h264' | 'mjpeg' | 'yuyv422';

export interface CameraFormat {
  /** V4L2 pixel format code, e.g. `MJPG`. */
  fourcc: string;
  description: string;
  /** The config's `camera.source.inputFormat` for this code, when the service can use it. */
  inputFormat: InputFormat | undefined;
  /** Discrete sizes, e.g. `1280x720`. */
  sizes: string[];
}

export interface VideoDevice {
  /** `/dev/videoN`. */
  path: string;
  /** `/dev/v4l/by-id/...`: survives re-plugging and reboots, preferred in the config. */
  stablePath: string | undefined;
  name: string;
  /** Empty when v4l2-ctl is not installed or the node is not a capture node (USB cameras add a metadata node). */
  formats: CameraFormat[];
}

const fourccFormats: Record<string, InputFormat> = { H264: 'h264', MJPG: 'mjpeg', YUYV: 'yuyv422' };

/** Parses `v4l2-ctl --list-formats-ext`. */
export function parseV4l2Formats(text: string): CameraFormat[] {
  const formats: CameraFormat[] = [];
  let current: CameraFormat | undefined;
  for (const line of text.split('\n')) {
    const format = /^\s*\[\d+\]:\s*'([^']{1,8})'\s*\(([^)]*)\)/.exec(line);
    if (format) {
      const fourcc = format[1]!.trim();
      current = { fourcc, description: format[2]!, inputFormat: fourccFormats[fourcc], sizes: [] };
      formats.push(current);
      continue;
    }
    const size = /^\s*Size:\s*\w+\s+(\d+x\d+)/.exec(line);
    if (size && current && !current.sizes.includes(size[1]!)) current.sizes.push(size[1]!);
  }
  return formats;
}

export interface CameraListDeps {
  run: Runner;
  /** Prefix for /sys and /dev when reading (tests point it at a fake tree); default `/`. */
  root: string;
  v4l2ctl: string;
}

/** Lists V4L2 devices from /sys/class/video4linux, with formats when v4l2-ctl is installed. */
export async function listVideoDevices(
  deps: CameraListDeps,
): Promise<{ devices: VideoDevice[]; note?: string }> {
  const classDir = join(deps.root, 'sys/class/video4linux');
  let entries: string[];
  try {
    entries = (await readdir(classDir)).filter((entry) => /^video\d+$/.test(entry));
  } catch {
    return { devices: [], note: `no ${classDir}: no camera driver loaded (is the camera plugged in?)` };
  }
  entries.sort((a, b) => Number(a.slice(5)) - Number(b.slice(5)));
  const stable = new Map<string, string>();
  const byId = join(deps.root, 'dev/v4l/by-id');
  for (const link of await readdir(byId).catch(() => [] as string[])) {
    const target = await readlink(join(byId, link)).catch(() => undefined);
    if (target && /^[\w.:-]+$/.test(link)) stable.set(basename(target), `/dev/v4l/by-id/${link}`);
  }
  let note: string | undefined;
  const devices: VideoDevice[] = [];
  for (const entry of entries) {
    const name = (await readFile(join(classDir, entry, 'name'), 'utf8').catch(() => '?')).trim();
    const path = `/dev/${entry}`;
    let formats: CameraFormat[] = [];
    const result = await deps.run(deps.v4l2ctl, ['--list-formats-ext', '-d', path], { timeoutMs: 10_000 });
    if (result.failure === 'ENOENT')
      note = 'v4l2-ctl is not installed (apt install v4l-utils): formats not listed';
    else if (result.code === 0) formats = parseV4l2Formats(result.stdout);
    devices.push({ path, stablePath: stable.get(entry), name, formats });
  }
  return note === undefined ? { devices } : { devices, note };
}

type CameraConfig = Config['camera'];

/** ffmpeg arguments that read one frame from the configured source and throw it away. */
export function frameGrabArgs(camera: CameraConfig): string[] {
  const size = `${camera.width}x${camera.height}`;
  if (camera.source.kind === 'libcamera') throw new RangeError('a libcamera source is read by rpicam-vid');
  const input =
    camera.source.kind === 'test'
      ? ['-f', 'lavfi', '-i', `testsrc=size=${size}:rate=${camera.fps}`]
      : [
          '-f',
          'v4l2',
          ...(camera.source.inputFormat ? ['-input_format', camera.source.inputFormat] : []),
          '-video_size',
          size,
          '-i',
          camera.source.device,
        ];
  return ['-hide_banner', '-nostdin', '-loglevel', 'error', ...input, '-frames:v', '1', '-f', 'null', '-'];
}

export type CameraResult = { ok: true; detail: string } | { ok: false; detail: string; remedy: string };

/** The program and arguments that read one frame from the configured source and throw it away. */
export function frameGrabCommand(camera: CameraConfig): { file: string; args: string[] } {
  if (camera.source.kind !== 'libcamera') return { file: camera.ffmpegPath, args: frameGrabArgs(camera) };
  return {
    file: camera.source.rpicamPath,
    args: [
      '--camera',
      String(camera.source.camera),
      '--nopreview',
      '--codec',
      'h264',
      '--width',
      String(camera.width),
      '--height',
      String(camera.height),
      '--frames',
      '1',
      '-t',
      '5000',
      '-o',
      '/dev/null',
    ],
  };
}

/** Is the configured device there, as a character device? */
export async function cameraPresent(camera: CameraConfig, root = '/'): Promise<CameraResult> {
  if (camera.source.kind === 'test')
    return { ok: true, detail: 'test source (ffmpeg testsrc); no camera used' };
  if (camera.source.kind === 'libcamera')
    return { ok: true, detail: `libcamera camera ${camera.source.camera} (checked by reading a frame)` };
  const device = camera.source.device;
  try {
    const info = await stat(join(root, device));
    if (!info.isCharacterDevice())
      return {
        ok: false,
        detail: `${device} is not a device node`,
        remedy: 'run provision again and pick a camera',
      };
    return { ok: true, detail: `${device} present` };
  } catch {
    return {
      ok: false,
      detail: `${device} does not exist`,
      remedy:
        'check the camera cable and power (unplug and plug in again), then `ls /dev/video* /dev/v4l/by-id`; if it has another name now, run provision again',
    };
  }
}

/** Opens the camera with ffmpeg and reads one frame. */
export async function grabFrame(deps: {
  run: Runner;
  camera: CameraConfig;
  timeoutMs: number;
}): Promise<CameraResult> {
  const started = performance.now();
  const command = frameGrabCommand(deps.camera);
  const result = await deps.run(command.file, command.args, { timeoutMs: deps.timeoutMs });
  const elapsedMs = Math.round(performance.now() - started);
  if (result.code === 0) return { ok: true, detail: `one frame read in ${elapsedMs} ms` };
  if (result.failure === 'ENOENT')
    return {
      ok: false,
      detail: `${command.file} not found`,
      remedy:
        deps.camera.source.kind === 'libcamera'
          ? 'install rpicam-apps (`sudo apt install rpicam-apps`) or fix camera.source.rpicamPath'
          : 'install ffmpeg (`sudo apt install ffmpeg`) or fix camera.ffmpegPath',
    };
  if (result.failure === 'timeout')
    return {
      ok: false,
      detail: `no frame within ${deps.timeoutMs} ms`,
      remedy: 'the camera opens but sends nothing: replug it, try another USB port or power supply',
    };
  const stderr = lastLines(result.stderr);
  const busy = /busy/i.test(stderr);
  return {
    ok: false,
    detail: `ffmpeg could not read a frame: ${stderr || `exit ${result.code}`}`,
    remedy: busy
      ? 'another program holds the camera: a running view, or another self-test; wait and run again'
      : 'check the format and size the camera supports (`v4l2-ctl --list-formats-ext`) and run provision again to pick one',
  };
}

// --- snapshot through node-webcam (fswebcam) ------------------------------------------------------

/** Device arguments node-webcam may put on its command line; `TEST` is fswebcam's built-in test pattern. */
export const snapshotDevicePattern =
  /^\/dev\/video\d{1,3}$|^\/dev\/v4l\/by-(id|path)\/[\w.:-]{1,200}$|^TEST$/;
/** Output file: absolute, a plain path of word characters, dots, slashes and dashes, ending in .jpg. */
export const snapshotPathPattern = /^\/[\w./-]{1,250}\.jpg$/;

export interface SnapshotOptions {
  device: string;
  width: number;
  height: number;
  quality: number;
  /** Frames fswebcam throws away first, so auto exposure settles (a dark first frame is common). */
  skipFrames: number;
  file: string;
}

function isIntIn(value: number, min: number, max: number): boolean {
  return Number.isInteger(value) && value >= min && value <= max;
}

/** Refuses options that are not exactly what we expect; returns the reason, or undefined when safe. */
export function checkSnapshotOptions(options: SnapshotOptions): string | undefined {
  if (!snapshotDevicePattern.test(options.device))
    return `unsafe or unknown camera device ${JSON.stringify(options.device)}`;
  if (!snapshotPathPattern.test(options.file))
    return `snapshot file ${JSON.stringify(options.file)} must be an absolute .jpg path of letters, digits, . _ / -`;
  if (!isIntIn(options.width, 16, 4096) || !isIntIn(options.height, 16, 4096)) return 'invalid snapshot size';
  if (!isIntIn(options.quality, 1, 95)) return 'JPEG quality must be 1-95';
  if (!isIntIn(options.skipFrames, 0, 100)) return 'skip frames must be 0-100';
  return undefined;
}

/** The snapshot options for a V4L2 or test camera (fswebcam's TEST pattern for the test source). */
export function snapshotOptions(camera: CameraConfig, file: string): SnapshotOptions {
  return {
    device: camera.source.kind === 'v4l2' ? camera.source.device : 'TEST',
    width: camera.width,
    height: camera.height,
    quality: 85,
    skipFrames: camera.source.kind === 'test' ? 0 : 10,
    file,
  };
}

interface NodeWebcamInstance {
  capture(location: string, callback: (error: Error | null, data: unknown) => void): void;
}
interface NodeWebcamModule {
  create(options: Record<string, unknown>): NodeWebcamInstance;
}

/** Takes one JPEG with node-webcam after checking every option; resolves with the file's size. */
export async function takeSnapshot(options: SnapshotOptions, timeoutMs: number): Promise<CameraResult> {
  const problem = checkSnapshotOptions(options);
  if (problem)
    return {
      ok: false,
      detail: problem,
      remedy:
        'fix the camera device in the config; the snapshot goes to a private directory under TMPDIR, whose path must be plain letters, digits, . _ / -',
    };
  const webcam = createRequire(import.meta.url)('node-webcam') as NodeWebcamModule;
  // Only these keys; text options node-webcam would paste into the command line are forced off.
  const camera = webcam.create({
    device: options.device,
    width: options.width,
    height: options.height,
    quality: options.quality,
    skip: options.skipFrames,
    output: 'jpeg',
    delay: 0,
    title: false,
    subtitle: false,
    timestamp: false,
    setValues: {},
    saturation: false,
    topBanner: false,
    bottomBanner: false,
    greyscale: false,
    rotation: false,
    saveShots: false,
    callbackReturn: 'location',
    verbose: false,
  });
  const captured = await new Promise<Error | null>((resolve) => {
    const timer = setTimeout(() => resolve(new Error(`no picture within ${timeoutMs} ms`)), timeoutMs);
    camera.capture(options.file, (error) => {
      clearTimeout(timer);
      resolve(error);
    });
  });
  if (captured) {
    const missing = /not found|ENOENT/i.test(captured.message);
    return {
      ok: false,
      detail: `fswebcam failed: ${lastLines(captured.message, 2)}`,
      remedy: missing
        ? 'install fswebcam (`sudo apt install fswebcam`)'
        : 'check that the camera is plugged in and not in use',
    };
  }
  return checkJpeg(options.file);
}

/** A JPEG starts with FF D8 (start of image). */
export async function checkJpeg(file: string): Promise<CameraResult> {
  let data: Buffer;
  try {
    data = await readFile(file);
  } catch {
    return {
      ok: false,
      detail: `${file} was not written`,
      remedy: 'check that the camera is plugged in and the directory is writable',
    };
  }
  if (data.length < 4 || data[0] !== 0xff || data[1] !== 0xd8)
    return {
      ok: false,
      detail: `${file} is not a JPEG`,
      remedy: 'check the camera with `fswebcam -d DEVICE aim.jpg`',
    };
  return {
    ok: true,
    detail: `a JPEG of ${Math.round(data.length / 1024)} KiB`,
  };
}
