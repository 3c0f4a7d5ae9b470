// The camera-to-RTP encoder: pure builders of ffmpeg's (and rpicam-vid's) argument lists from settings,
// and the `Encoder` class that owns the child processes of a view. ffmpeg sends H.264 as RTP to a
// loopback port (owned by `RtpSource`) and never writes a file: nothing is ever recorded.
//
// A `libcamera` source (a Raspberry Pi camera module on CSI) is two processes: rpicam-vid encodes H.264
// (inline SPS/PPS before every keyframe, one keyframe a second) to its stdout, which is ffmpeg's stdin;
// ffmpeg only packetises it into RTP in `full` view (`-c:v copy`, the stream unchanged), and decodes,
// filters and re-encodes it for the blurred and low-resolution views.

import { type ChildProcess, execFile, spawn as nodeSpawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { openSync } from 'node:fs';
import { chmod } from 'node:fs/promises';
import { Socket } from 'node:net';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { promisify } from 'node:util';
import type { Logger } from 'pino';
import type { CameraSource } from '../config/schema.js';
import type { ViewMode } from '../protocol/tokens.js';

/** The camera source, as the config defines it (`testsrc` for tests and demos: every other argument is the same). */
export type VideoSource = CameraSource;

export type EncoderKind = 'copy' | 'h264_v4l2m2m' | 'libx264';

export type { ViewMode };

export interface EncoderSettings {
  source: VideoSource;
  width: number;
  height: number;
  fps: number;
  encoder: EncoderKind;
  /** Keyframe interval in frames; short (about 1 s) so a lost keyframe heals quickly. */
  gopFrames: number;
  viewMode: ViewMode;
  /** Loopback UDP port of the `RtpSource` that receives the RTP. */
  rtpPort: number;
  payloadType: number;
  ssrc: number;
  /** Target bitrate for the re-encoding encoders; ignored by `copy`. */
  bitrateKbps?: number | undefined;
}

/** Closed set of reasons a settings object cannot be turned into an ffmpeg command. */
export type EncoderSettingsProblem =
  | 'copy-needs-h264-camera'
  | 'copy-cannot-filter'
  | 'invalid-size'
  | 'invalid-fps'
  | 'invalid-gop'
  | 'invalid-rtp-port'
  | 'invalid-payload-type'
  | 'invalid-ssrc';

/** Width of the picture in `low-resolution` view mode. */
export const LOW_RESOLUTION_WIDTH = 320;

const isIntIn = (value: number, min: number, max: number): boolean =>
  Number.isInteger(value) && value >= min && value <= max;

/**
 * What ffmpeg does with the picture. A libcamera source already is H.264: copied unchanged in `full`
 * view, re-encoded otherwise (the Pi 4's hardware encoder when configured, else libx264).
 */
export function effectiveCodec(settings: EncoderSettings): EncoderKind {
  if (settings.source.kind !== 'libcamera') return settings.encoder;
  if (settings.viewMode === 'full') return 'copy';
  return settings.encoder === 'h264_v4l2m2m' ? 'h264_v4l2m2m' : 'libx264';
}

/** Returns why `settings` cannot be encoded, or undefined when they can. */
export function checkEncoderSettings(settings: EncoderSettings): EncoderSettingsProblem | undefined {
  if (settings.encoder === 'copy' && settings.source.kind !== 'libcamera') {
    // Copying passes the camera's own H.264 through untouched, so a blurred or reduced view would
    // silently become the full picture: refuse rather than leak.
    if (settings.viewMode !== 'full') return 'copy-cannot-filter';
    if (settings.source.kind !== 'v4l2' || settings.source.inputFormat !== 'h264') {
      return 'copy-needs-h264-camera';
    }
  }
  // Even sizes: yuv420p needs them. 1920x1088 bounds what level 3.1 (the SDP's 42e01f) can ever carry.
  if (!isIntIn(settings.width, 16, 1920) || !isIntIn(settings.height, 16, 1088)) return 'invalid-size';
  if (settings.width % 2 !== 0 || settings.height % 2 !== 0) return 'invalid-size';
  if (!isIntIn(settings.fps, 1, 60)) return 'invalid-fps';
  if (!isIntIn(settings.gopFrames, 1, 600)) return 'invalid-gop';
  if (!isIntIn(settings.rtpPort, 1, 65535)) return 'invalid-rtp-port';
  if (!isIntIn(settings.payloadType, 96, 127)) return 'invalid-payload-type';
  if (!isIntIn(settings.ssrc, 0, 0xffffffff)) return 'invalid-ssrc';
  return undefined;
}

/**
 * rpicam-vid's arguments: H.264 baseline to stdout, SPS/PPS inline before every keyframe and a keyframe
 * every `fps` frames (so a viewer can start within a second), flushed per frame, no preview, forever.
 */
export function rpicamArgs(settings: EncoderSettings): string[] {
  const { source, width, height, fps } = settings;
  const camera = source.kind === 'libcamera' ? source.camera : 0;
  return [
    '--camera',
    String(camera),
    '--nopreview',
    '--codec',
    'h264',
    '--profile',
    'baseline',
    '--inline',
    '--intra',
    String(fps),
    '--framerate',
    String(fps),
    '--width',
    String(width),
    '--height',
    String(height),
    '--low-latency',
    '--flush',
    '-t',
    '0',
    '-o',
    '-',
  ];
}

function inputArgs(settings: EncoderSettings): string[] {
  const { source, width, height, fps } = settings;
  if (source.kind === 'test') {
    // lavfi produces frames as fast as it can; -re paces them like a camera would.
    return ['-re', '-f', 'lavfi', '-i', `testsrc=size=${width}x${height}:rate=${fps}`];
  }
  if (source.kind === 'libcamera') {
    // Raw H.264 has no timestamps: -framerate gives them. The smallest probe (analyzeduration 0 would
    // mean the 5 s default), so the stream starts at the first keyframe rpicam-vid sends.
    return [
      '-probesize',
      '32',
      '-analyzeduration',
      '1',
      '-f',
      'h264',
      '-framerate',
      String(fps),
      '-i',
      'pipe:0',
    ];
  }
  return [
    '-f',
    'v4l2',
    ...(source.inputFormat === undefined ? [] : ['-input_format', source.inputFormat]),
    '-framerate',
    String(fps),
    '-video_size',
    `${width}x${height}`,
    '-i',
    source.device,
  ];
}

function filterArgs(settings: EncoderSettings): string[] {
  switch (settings.viewMode) {
    case 'full':
      return [];
    case 'blurred':
      // Radius scales with the picture so faces and text are unreadable at any size; 3 passes
      // approximate a Gaussian. format first so the blur runs on the planes that get encoded.
      return ['-vf', 'format=yuv420p,boxblur=luma_radius=min(w\\,h)/12:luma_power=3'];
    case 'low-resolution':
      return ['-vf', `scale=${LOW_RESOLUTION_WIDTH}:-2:flags=area,format=yuv420p`];
  }
}

/**
 * The most a look may send, by view mode, so that a look fits a weak 4G uplink: the device does not
 * adapt its rate to the link (no congestion control in werift 0.24.4), so the cap is what a look costs
 * at most. A configured `bitrateKbps` lower than the cap wins. `copy` sends the camera's own stream.
 */
export const viewModeMaxBitrateKbps: Record<ViewMode, number> = {
  full: 1000,
  blurred: 400,
  'low-resolution': 300,
};

/** The re-encoder's rate: the view mode's cap, or the configured bitrate if lower. */
export function encoderBitrateKbps(settings: Pick<EncoderSettings, 'bitrateKbps' | 'viewMode'>): number {
  return Math.min(
    settings.bitrateKbps ?? Number.POSITIVE_INFINITY,
    viewModeMaxBitrateKbps[settings.viewMode],
  );
}

function codecArgs(settings: EncoderSettings): string[] {
  const kbps = encoderBitrateKbps(settings);
  // A VBV buffer of half a second: a keyframe cannot burst far above the cap into a small uplink queue.
  const bitrate = [
    '-b:v',
    `${kbps}k`,
    '-maxrate',
    `${kbps}k`,
    '-bufsize',
    `${Math.max(1, Math.round(kbps / 2))}k`,
  ];
  const gop = String(settings.gopFrames);
  switch (effectiveCodec(settings)) {
    case 'copy':
      // rpicam-vid already puts SPS and PPS before every keyframe (--inline): forwarded unchanged.
      if (settings.source.kind === 'libcamera') return ['-c:v', 'copy'];
      // A camera's H.264 may carry SPS/PPS only once, out of band; repeat them before every
      // keyframe so a viewer that joins (or a PLI restart) can decode at once.
      return ['-c:v', 'copy', '-bsf:v', 'dump_extra=freq=keyframe'];
    case 'h264_v4l2m2m':
      // The Pi's hardware encoder. 578 is FF_PROFILE_H264_CONSTRAINED_BASELINE (66 | 1 << 9): ffmpeg 5.1
      // has no named constant for it. Headers are repeated for the same reason as with copy.
      return [
        '-c:v',
        'h264_v4l2m2m',
        '-pix_fmt',
        'yuv420p',
        '-profile:v',
        '578',
        '-g',
        gop,
        '-bf',
        '0',
        ...bitrate,
        '-bsf:v',
        'dump_extra=freq=keyframe',
      ];
    case 'libx264':
      return [
        '-c:v',
        'libx264',
        '-pix_fmt',
        'yuv420p',
        '-preset',
        'ultrafast',
        '-tune',
        'zerolatency',
        '-profile:v',
        'baseline',
        '-level:v',
        '3.1',
        '-bf',
        '0',
        '-g',
        gop,
        '-keyint_min',
        gop,
        '-sc_threshold',
        '0',
        ...bitrate,
      ];
  }
}

/**
 * ffmpeg's arguments for `settings`. Pure. Throws a RangeError naming the problem when
 * `checkEncoderSettings` refuses them (callers check first; this is the guard against a slip).
 */
export function buildEncoderArgs(settings: EncoderSettings, gate?: string): string[] {
  const problem = checkEncoderSettings(settings);
  if (problem !== undefined) throw new RangeError(`encoder settings refused: ${problem}`);
  const port = settings.rtpPort;
  // RTCP goes to the same loopback port (RtpSource drops it) instead of spraying port+1, and ffmpeg's
  // own sockets bind to loopback only: the device listens on no external port.
  const url = `rtp://127.0.0.1:${port}?pkt_size=1200&rtcpport=${port}&localaddr=127.0.0.1`;
  return [
    '-hide_banner',
    '-nostdin',
    '-nostats',
    '-loglevel',
    'error',
    // A prepared encoder's gate (see prepareEncoder): opened while ffmpeg parses its global options,
    // before any input.
    ...(gate === undefined ? [] : ['-progress', gate]),
    // Not for a pipe from rpicam-vid: there it drops what the probe read, the first keyframe with it.
    ...(settings.source.kind === 'libcamera' ? [] : ['-fflags', 'nobuffer']),
    ...inputArgs(settings),
    '-an',
    '-sn',
    '-dn',
    ...filterArgs(settings),
    ...codecArgs(settings),
    '-f',
    'rtp',
    '-payload_type',
    String(settings.payloadType),
    '-ssrc',
    // ffmpeg's option is a signed int; the wire carries the same 32 bits unsigned.
    String(settings.ssrc | 0),
    url,
  ];
}

export interface EncoderExit {
  /** Human-readable cause: exit code or signal, and ffmpeg's last error line. */
  reason: string;
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface EncoderEvents {
  /** ffmpeg died without being asked to: the view must end (`camera-failure`). Not emitted by stop(). */
  exit: [EncoderExit];
}

/** How a child's stdin and stdout are connected; default both ignored (stderr is always piped). */
export interface SpawnStdio {
  /** Another child's stdout, passed as this one's stdin (its descriptor, no copy through Node). */
  stdin?: 'ignore' | Readable | undefined;
  stdout?: 'ignore' | 'pipe' | undefined;
}

export type SpawnFunction = (command: string, args: readonly string[], stdio?: SpawnStdio) => ChildProcess;

export interface EncoderDeps {
  log: Logger;
  /** Default `ffmpeg` from PATH. */
  ffmpegPath?: string | undefined;
  /** Injected for tests; default node's spawn with stdin/stdout ignored and stderr piped. */
  spawn?: SpawnFunction | undefined;
  /** How long SIGTERM may take before SIGKILL. */
  stopTimeoutMs?: number | undefined;
  /**
   * Runs before every camera open (each start and restart), before the first frame: the camera's
   * controls are applied here. It must not throw.
   */
  beforeOpen?: (() => void) | undefined;
}

export const defaultSpawn: SpawnFunction = (command, args, stdio) =>
  nodeSpawn(command, args, { stdio: [stdio?.stdin ?? 'ignore', stdio?.stdout ?? 'ignore', 'pipe'] });

const STDERR_TAIL_CHARS = 2000;

/** One child process and what is known of its end. */
interface Owned {
  name: string;
  child: ChildProcess;
  exited: Promise<void>;
  stderrTail: () => string;
}

/** "name exited with code 1: last line of its stderr". */
function exitText(owned: Owned, code: number | null, signal: NodeJS.Signals | null): string {
  const lastLine = owned.stderrTail().trim().split('\n').at(-1) ?? '';
  const how = signal === null ? `code ${code}` : `signal ${signal}`;
  return `${owned.name} exited with ${how}${lastLine === '' ? '' : `: ${lastLine}`}`;
}

/** Resolves once `child` has spawned; rejects with its spawn error. */
function spawned(child: ChildProcess): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onSpawn = (): void => {
      child.off('error', onError);
      resolve();
    };
    const onError = (error: Error): void => {
      child.off('spawn', onSpawn);
      reject(error);
    };
    child.once('spawn', onSpawn);
    child.once('error', onError);
  });
}

/**
 * An ffmpeg spawned ahead of a look and held before it opens the camera. Its `-progress` option names a
 * FIFO, which ffmpeg opens while it parses its global options, before it opens any input or socket, and
 * opening a FIFO for writing waits until a reader opens it. So the process has loaded its libraries
 * (Debian's ffmpeg links about 200: some 90 ms of a core before it does anything) but has not touched
 * the camera until an `Encoder` adopts it and opens the FIFO, after the LED is lit. Should this process
 * die first, the FIFO never gets a reader and ffmpeg stays held until it is killed (it dies with its
 * parent, see media-child.ts). Not for a libcamera source, whose rpicam-vid opens the camera itself.
 */
export interface PreparedEncoder {
  readonly settings: EncoderSettings;
  readonly child: ChildProcess;
  /** ffmpeg exited (or was killed) before it was adopted. */
  readonly exited: boolean;
  /**
   * Lets it go on to the camera: opens the FIFO for reading and writing (which never waits and never
   * reads an end of file) and returns that descriptor, whose reader must drain ffmpeg's progress lines.
   */
  release(): number;
  /** Kills it; it never opened the camera. */
  discard(): void;
}

const execFileAsync = promisify(execFile);

/**
 * Spawns ffmpeg for `settings`, held at a FIFO made in `dir` (a private directory that the caller
 * removes once this process has exited; it is left read-only: make it writable before removing it).
 * Resolves once ffmpeg has spawned.
 */
export async function prepareEncoder(
  deps: Pick<EncoderDeps, 'log' | 'ffmpegPath' | 'spawn'>,
  settings: EncoderSettings,
  dir: string,
): Promise<PreparedEncoder> {
  if (settings.source.kind === 'libcamera') throw new Error('a libcamera source cannot be prepared');
  const gate = join(dir, `encoder-${settings.ssrc}.fifo`);
  await execFileAsync('mkfifo', ['-m', '600', gate]);
  // ffmpeg opens its -progress path with O_CREAT: were the FIFO gone before it got there, it would make
  // a plain file and go on to the camera. In a directory it cannot write to, it fails instead.
  await chmod(dir, 0o500);
  const args = buildEncoderArgs(settings, gate);
  const child = (deps.spawn ?? defaultSpawn)(deps.ffmpegPath ?? 'ffmpeg', args);
  let held = true;
  child.once('close', (code, signal) => {
    if (held) deps.log.warn({ pid: child.pid, code, signal }, 'prepared ffmpeg exited while held');
  });
  child.on('error', (error) => deps.log.warn({ err: error }, 'prepared ffmpeg process error'));
  await spawned(child);
  deps.log.debug({ pid: child.pid, gate }, 'ffmpeg prepared, held before the camera opens');
  const exited = () => child.exitCode !== null || child.signalCode !== null;
  return {
    settings,
    child,
    get exited() {
      return exited();
    },
    release: () => {
      held = false;
      return openSync(gate, 'r+');
    },
    discard: () => {
      held = false;
      if (!exited()) child.kill('SIGKILL');
    },
  };
}

/**
 * Owns the processes of one encoder run at a time: ffmpeg, and for a libcamera source rpicam-vid that
 * feeds it. `start()` resolves when they have been spawned; `stop()` is idempotent and resolves once
 * all have exited (SIGTERM, then SIGKILL after the deadline).
 *
 * `restart()` is how a keyframe is forced when the viewer sends a PLI: the ffmpeg CLI has no runtime
 * "encode an IDR now" request (`-force_key_frames` is fixed at start, and its command interface
 * reaches filters, not encoders), while a fresh encoder always begins with SPS, PPS and an IDR.
 * With a ~1 s GOP a restart (~100-300 ms) is rarely faster than waiting, so the caller rate-limits it;
 * it matters most for a camera in `copy` mode, whose GOP we do not control.
 */
export class Encoder extends EventEmitter<EncoderEvents> {
  readonly #log: Logger;
  readonly #ffmpegPath: string;
  readonly #spawn: SpawnFunction;
  readonly #stopTimeoutMs: number;
  readonly #beforeOpen: (() => void) | undefined;
  #settings: EncoderSettings;
  #ffmpeg: Owned | undefined;
  #camera: Owned | undefined;
  #stopping = false;
  /** Why the camera process ended first, if it did: that, not ffmpeg's end of input, is the cause. */
  #cameraExit: string | undefined;
  /** Taken by the first start() if it would run the same command; discarded otherwise. */
  #prepared: PreparedEncoder | undefined;
  /** The reader end of an adopted encoder's gate: it drains ffmpeg's progress lines. */
  #gate: Socket | undefined;

  /** With `prepared`, the first start() adopts that held ffmpeg instead of spawning one. */
  constructor(deps: EncoderDeps, settings: EncoderSettings, prepared?: PreparedEncoder) {
    super();
    this.#prepared = prepared;
    this.#log = deps.log;
    this.#ffmpegPath = deps.ffmpegPath ?? 'ffmpeg';
    this.#spawn = deps.spawn ?? defaultSpawn;
    this.#stopTimeoutMs = deps.stopTimeoutMs ?? 2000;
    this.#beforeOpen = deps.beforeOpen;
    this.#settings = settings;
  }

  /** Process id of the running ffmpeg, if any. */
  get pid(): number | undefined {
    return this.#ffmpeg?.child.pid;
  }

  /** Process id of the running rpicam-vid (libcamera source), if any. */
  get cameraPid(): number | undefined {
    return this.#camera?.child.pid;
  }

  get running(): boolean {
    return this.#ffmpeg !== undefined;
  }

  #own(
    name: string,
    child: ChildProcess,
    onUnexpected: (code: number | null, signal: NodeJS.Signals | null) => void,
  ): Owned {
    let tail = '';
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      tail = (tail + chunk).slice(-STDERR_TAIL_CHARS);
    });
    const owned: Owned = { name, child, exited: Promise.resolve(), stderrTail: () => tail };
    owned.exited = new Promise<void>((resolve) => {
      child.once('close', (code, signal) => {
        if (this.#stopping) this.#log.debug({ name, pid: child.pid, code, signal }, `${name} stopped`);
        else onUnexpected(code, signal);
        resolve();
      });
    });
    return owned;
  }

  #ownFfmpeg(child: ChildProcess): Owned {
    const ffmpeg = this.#own('ffmpeg', child, (code, signal) => {
      if (this.#ffmpeg === ffmpeg) this.#ffmpeg = undefined;
      const reason = this.#cameraExit ?? exitText(ffmpeg, code, signal);
      this.#log.warn({ pid: child.pid, code, signal, reason }, 'encoder exited unexpectedly');
      this.emit('exit', { reason, code, signal });
    });
    this.#ffmpeg = ffmpeg;
    return ffmpeg;
  }

  /**
   * Lets a prepared ffmpeg go on to the camera, and reads and drops its progress lines for as long as it
   * runs (a full FIFO would stall it).
   */
  #adopt(prepared: PreparedEncoder): void {
    const { child } = prepared;
    this.#ownFfmpeg(child);
    let fd: number;
    try {
      fd = prepared.release();
    } catch (error) {
      prepared.discard();
      throw error;
    }
    const gate = new Socket({ fd, readable: true, writable: false });
    gate.on('error', (error) => this.#log.warn({ err: error }, 'encoder gate error'));
    gate.resume();
    this.#gate = gate;
    this.#log.debug({ pid: child.pid }, 'prepared ffmpeg let go: opening the camera');
  }

  /** Spawns the processes; rejects if the settings are refused or one cannot be spawned. No-op if running. */
  async start(): Promise<void> {
    if (this.#ffmpeg !== undefined) return;
    const settings = this.#settings;
    const args = buildEncoderArgs(settings);
    this.#stopping = false;
    this.#cameraExit = undefined;
    const prepared = this.#prepared;
    this.#prepared = undefined;
    if (prepared !== undefined) {
      if (!prepared.exited && buildEncoderArgs(prepared.settings).join('\0') === args.join('\0')) {
        try {
          this.#beforeOpen?.();
        } catch (error) {
          prepared.discard();
          throw error;
        }
        this.#adopt(prepared);
        return;
      }
      this.#log.debug({ pid: prepared.child.pid }, 'prepared ffmpeg not usable for this run: spawning one');
      prepared.discard();
    }
    this.#beforeOpen?.();
    let camera: Owned | undefined;
    let stdin: SpawnStdio['stdin'] = 'ignore';
    if (settings.source.kind === 'libcamera') {
      const cameraArgs = rpicamArgs(settings);
      const child = this.#spawn(settings.source.rpicamPath, cameraArgs, { stdout: 'pipe' });
      camera = this.#own('rpicam-vid', child, (code, signal) => {
        if (this.#camera === camera) this.#camera = undefined;
        this.#cameraExit = camera ? exitText(camera, code, signal) : undefined;
        this.#log.warn({ pid: child.pid, code, signal }, 'rpicam-vid exited unexpectedly');
        // ffmpeg ends at the end of its input; should it not, the view must end anyway.
        this.#ffmpeg?.child.kill('SIGTERM');
      });
      this.#camera = camera;
      this.#log.debug({ pid: child.pid, args: cameraArgs }, 'rpicam-vid started');
      stdin = child.stdout ?? 'ignore';
    }
    // In the same tick as rpicam-vid: its first bytes (SPS, PPS, the first keyframe) cannot have been
    // read by this process before ffmpeg holds the pipe.
    const child = this.#spawn(this.#ffmpegPath, args, { stdin });
    if (typeof stdin !== 'string') stdin.destroy();
    const ffmpeg = this.#ownFfmpeg(child);
    try {
      await Promise.all([camera ? spawned(camera.child) : undefined, spawned(child)]);
    } catch (error) {
      await this.stop();
      throw error;
    }
    // A later 'error' (failed kill) must not become an uncaught exception.
    for (const owned of [camera, ffmpeg]) {
      owned?.child.on('error', (error) => this.#log.warn({ err: error }, `${owned.name} process error`));
    }
    this.#log.debug({ pid: child.pid, args }, 'ffmpeg started');
  }

  /** Stops the processes: SIGTERM, SIGKILL after the deadline. Idempotent; resolves once all have exited. */
  async stop(): Promise<void> {
    const running = [this.#camera, this.#ffmpeg].filter((owned): owned is Owned => owned !== undefined);
    const gate = this.#gate;
    this.#stopping = true;
    this.#camera = undefined;
    this.#ffmpeg = undefined;
    this.#gate = undefined;
    this.#prepared?.discard();
    this.#prepared = undefined;
    if (running.length === 0) {
      gate?.destroy();
      return;
    }
    for (const { child } of running) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    }
    const deadline = setTimeout(() => {
      for (const { name, child } of running) {
        if (child.exitCode !== null || child.signalCode !== null) continue;
        this.#log.warn({ pid: child.pid }, `${name} ignored SIGTERM; killing`);
        child.kill('SIGKILL');
      }
    }, this.#stopTimeoutMs);
    try {
      await Promise.all(running.map((owned) => owned.exited));
    } finally {
      clearTimeout(deadline);
      // After ffmpeg has gone: its last progress line then finds a reader.
      gate?.destroy();
    }
  }

  /** Stops and starts again, optionally with new settings (e.g. another SSRC); the new run opens with an IDR. */
  async restart(settings?: EncoderSettings): Promise<void> {
    await this.stop();
    if (settings !== undefined) this.#settings = settings;
    await this.start();
  }
}
