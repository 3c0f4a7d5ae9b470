// The libcamera (CSI) source: rpicam-vid's arguments, the ffmpeg that forwards its H.264 unchanged in
// full view and re-encodes it for blurred and low-resolution, and the two processes owned together. A
// stand-in rpicam-vid (test/video/fixtures/rpicam-vid) checks its arguments and emits real H.264 from
// ffmpeg; the oracle for "unchanged" is the stand-in's own SPS, read straight from its output.
import { execFile } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import {
  buildEncoderArgs,
  defaultSpawn,
  Encoder,
  type EncoderExit,
  type EncoderSettings,
  rpicamArgs,
  type SpawnFunction,
} from '../../device/video/index.js';
import { isAlive, waitUntil } from '../support/process.js';

const log = pino({ level: 'silent' });
const standIn = join(import.meta.dirname, 'fixtures/rpicam-vid');

const base: EncoderSettings = {
  source: { kind: 'libcamera', rpicamPath: standIn, camera: 0 },
  width: 320,
  height: 240,
  fps: 15,
  encoder: 'libx264',
  gopFrames: 15,
  viewMode: 'full',
  rtpPort: 40000,
  payloadType: 96,
  ssrc: 1234,
};

const argAfter = (args: string[], flag: string): string | undefined => args[args.indexOf(flag) + 1];

/** NAL units of an Annex B byte stream. */
function annexBNals(data: Buffer): Buffer[] {
  const starts: number[] = [];
  for (let i = 0; i + 3 <= data.length; i++) {
    if (data[i] === 0 && data[i + 1] === 0 && data[i + 2] === 1) {
      starts.push(i + 3);
      i += 2;
    }
  }
  return starts.map((start, index) => {
    let end = index + 1 < starts.length ? starts[index + 1]! - 3 : data.length;
    while (end > start && data[end - 1] === 0) end--;
    return data.subarray(start, end);
  });
}

/** NAL units in one RTP packet's payload (single NAL or STAP-A; FU-A fragments give their first byte only). */
function rtpNals(packet: Buffer): Buffer[] {
  const payload = packet.subarray(12 + 4 * (packet[0]! & 0x0f));
  const type = payload[0]! & 0x1f;
  if (type === 24) {
    const nals: Buffer[] = [];
    for (let offset = 1; offset + 2 < payload.length; ) {
      const size = payload.readUInt16BE(offset);
      nals.push(payload.subarray(offset + 2, offset + 2 + size));
      offset += 2 + size;
    }
    return nals;
  }
  return [payload];
}

describe('rpicam-vid arguments', () => {
  it('asks for baseline H.264 with inline headers, a keyframe a second, low latency, forever, to stdout', () => {
    const args = rpicamArgs({ ...base, fps: 12, width: 1280, height: 720 });
    expect(argAfter(args, '--codec')).toBe('h264');
    expect(argAfter(args, '--profile')).toBe('baseline');
    expect(argAfter(args, '--intra')).toBe('12');
    expect(argAfter(args, '--framerate')).toBe('12');
    expect([argAfter(args, '--width'), argAfter(args, '--height')]).toEqual(['1280', '720']);
    expect(argAfter(args, '-t')).toBe('0');
    expect(argAfter(args, '-o')).toBe('-');
    expect(args).toEqual(expect.arrayContaining(['--inline', '--nopreview', '--flush', '--low-latency']));
  });
});

describe('ffmpeg for a libcamera source', () => {
  it('copies the H.264 from its stdin unchanged in full view: no filter, no encoder, no added headers', () => {
    const args = buildEncoderArgs(base);
    expect(argAfter(args, '-i')).toBe('pipe:0');
    expect(argAfter(args, '-f')).toBe('h264');
    expect(argAfter(args, '-c:v')).toBe('copy');
    expect(args).not.toContain('-vf');
    expect(args).not.toContain('-bsf:v');
  });

  it.each([
    ['blurred', 'libx264', 'libx264', /boxblur/],
    ['low-resolution', 'libx264', 'libx264', /scale=320/],
    ['blurred', 'h264_v4l2m2m', 'h264_v4l2m2m', /boxblur/],
    ['low-resolution', 'copy', 'libx264', /scale=320/],
  ] as const)('re-encodes a %s view (encoder %s) with %s', (viewMode, encoder, codec, filter) => {
    const args = buildEncoderArgs({ ...base, viewMode, encoder });
    expect(argAfter(args, '-vf')).toMatch(filter);
    expect(argAfter(args, '-c:v')).toBe(codec);
  });
});

describe('Encoder with a libcamera source (stand-in rpicam-vid)', () => {
  const encoders: Encoder[] = [];
  const dirs: string[] = [];
  afterEach(async () => {
    await Promise.all(encoders.splice(0).map((encoder) => encoder.stop()));
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  const spsCount = (packets: Buffer[]): number =>
    packets.flatMap(rtpNals).filter((nal) => (nal[0]! & 0x1f) === 7).length;

  async function receive(
    settings: Partial<EncoderSettings>,
    enough: number | ((packets: Buffer[]) => boolean),
  ) {
    const done = typeof enough === 'number' ? (packets: Buffer[]) => packets.length >= enough : enough;
    const socket = createSocket('udp4');
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
    const packets: Buffer[] = [];
    socket.on('message', (packet) => {
      if ((packet[1]! & 0x7f) === 96) packets.push(packet);
    });
    const encoder = new Encoder({ log }, { ...base, ...settings, rtpPort: socket.address().port });
    encoders.push(encoder);
    try {
      await encoder.start();
      await waitUntil(() => done(packets), 15_000, 'RTP packets');
    } finally {
      socket.close();
    }
    return { encoder, packets };
  }

  it("forwards rpicam-vid's own SPS and PPS: the stream is not re-encoded", async () => {
    const direct = await new Promise<Buffer>((resolve, reject) => {
      const child = execFile(
        standIn,
        rpicamArgs(base),
        { encoding: 'buffer', maxBuffer: 1 << 24, timeout: 1500, killSignal: 'SIGTERM' },
        (_error, stdout) => (stdout.length > 0 ? resolve(stdout) : reject(new Error('no output'))),
      );
      child.stdin?.end();
    });
    const sps = annexBNals(direct).find((nal) => (nal[0]! & 0x1f) === 7);
    expect(sps).toBeDefined();
    // Two keyframes: the copy keeps the stand-in's keyframe every second, headers inline before each.
    const { packets } = await receive({}, (received) => spsCount(received) >= 2);
    const forwarded = packets.flatMap(rtpNals);
    const spsForwarded = forwarded.find((nal) => (nal[0]! & 0x1f) === 7);
    expect(spsForwarded?.toString('hex')).toBe(sps!.toString('hex'));
    // The first packet is the keyframe's SPS: nothing of the first GOP was lost to probing.
    expect(rtpNals(packets[0]!)[0]![0]! & 0x1f).toBe(7);
  });

  it('re-encodes a blurred view: the SPS is our encoder’s (level 3.1), not the camera’s', async () => {
    const { packets } = await receive({ viewMode: 'blurred' }, 10);
    const sps = packets.flatMap(rtpNals).find((nal) => (nal[0]! & 0x1f) === 7);
    // profile_idc 66 (baseline), level_idc 31: what buildEncoderArgs asks libx264 for.
    expect([sps?.[1], sps?.[3]]).toEqual([66, 31]);
  });

  it('stops both processes, and a second stop is harmless', async () => {
    const { encoder } = await receive({}, 5);
    const pids = [encoder.pid!, encoder.cameraPid!];
    const exits: EncoderExit[] = [];
    encoder.on('exit', (exit) => exits.push(exit));
    await encoder.stop();
    await encoder.stop();
    expect(pids.filter(isAlive)).toEqual([]);
    expect(exits).toEqual([]);
  });

  it('ends the view with rpicam-vid’s own error when the camera process dies', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tk-rpicam-'));
    dirs.push(dir);
    const broken = join(dir, 'rpicam-vid');
    writeFileSync(broken, '#!/bin/sh\necho "ERROR: *** no cameras available ***" >&2\nexit 1\n', {
      mode: 0o755,
    });
    const encoder = new Encoder(
      { log },
      { ...base, source: { kind: 'libcamera', rpicamPath: broken, camera: 0 } },
    );
    encoders.push(encoder);
    const exit = new Promise<EncoderExit>((resolve) => encoder.once('exit', resolve));
    await encoder.start();
    expect((await exit).reason).toBe('rpicam-vid exited with code 1: ERROR: *** no cameras available ***');
  });

  it('ends the view when rpicam-vid is killed, and leaves no ffmpeg behind', async () => {
    const { encoder } = await receive({}, 5);
    const ffmpegPid = encoder.pid!;
    const exit = new Promise<EncoderExit>((resolve) => encoder.once('exit', resolve));
    process.kill(encoder.cameraPid!, 'SIGKILL');
    expect((await exit).reason).toMatch(/^rpicam-vid exited with signal SIGKILL/);
    await waitUntil(() => !isAlive(ffmpegPid), 5000, 'ffmpeg gone');
  });

  it('runs the camera hook before every camera open: start and restart', async () => {
    const order: string[] = [];
    const spawn: SpawnFunction = (command, args, stdio) => {
      order.push(command.endsWith('rpicam-vid') ? 'rpicam-vid' : 'ffmpeg');
      return defaultSpawn(command, args, stdio);
    };
    const logFile = join(mkdtempSync(join(tmpdir(), 'tk-rpicam-')), 'args');
    dirs.push(join(logFile, '..'));
    process.env.RPICAM_STANDIN_ARGS = logFile;
    try {
      const encoder = new Encoder({ log, spawn, beforeOpen: () => order.push('controls') }, base);
      encoders.push(encoder);
      const runsLogged = () =>
        existsSync(logFile) ? readFileSync(logFile, 'utf8').split('\n').length - 1 : 0;
      await encoder.start();
      // The stand-in logs its arguments once its shell runs: a restart before that would kill it unlogged.
      await waitUntil(() => runsLogged() >= 1, 10_000, 'the first run logged');
      await encoder.restart({ ...base, ssrc: 5 });
      expect(order).toEqual(['controls', 'rpicam-vid', 'ffmpeg', 'controls', 'rpicam-vid', 'ffmpeg']);
      await waitUntil(() => runsLogged() >= 2, 10_000, 'two runs logged');
      expect(readFileSync(logFile, 'utf8')).toContain('--inline --intra 15 --framerate 15');
    } finally {
      delete process.env.RPICAM_STANDIN_ARGS;
    }
  });
});
