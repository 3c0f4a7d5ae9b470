// The ffmpeg argument builder (pure) and the Encoder's ownership of the ffmpeg process (real processes).

import { type ChildProcess, spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import {
  buildEncoderArgs,
  checkEncoderSettings,
  Encoder,
  type EncoderExit,
  type EncoderKind,
  type EncoderSettings,
  type ViewMode,
} from '../../device/video/index.js';
import { isAlive } from '../support/process.js';

const log = pino({ level: 'silent' });

const base: EncoderSettings = {
  source: { kind: 'test' },
  width: 640,
  height: 360,
  fps: 15,
  encoder: 'libx264',
  gopFrames: 15,
  viewMode: 'full',
  rtpPort: 40000,
  payloadType: 96,
  ssrc: 1234,
};

const camera: EncoderSettings['source'] = { kind: 'v4l2', device: '/dev/video0', inputFormat: 'h264' };

/** Value following `flag` in `args`. */
const argAfter = (args: string[], flag: string): string | undefined => args[args.indexOf(flag) + 1];

/** ffmpeg's output URLs: arguments that are neither options, option values nor inputs. */
function outputsOf(args: string[]): string[] {
  const flagsWithoutValue = new Set(['-hide_banner', '-nostdin', '-nostats', '-re', '-an', '-sn', '-dn']);
  const outputs: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (flagsWithoutValue.has(arg)) continue;
    if (arg.startsWith('-')) i++;
    else outputs.push(arg);
  }
  return outputs;
}

const combinations: Array<[EncoderKind, ViewMode, EncoderSettings['source']]> = [
  ['libx264', 'full', { kind: 'test' }],
  ['libx264', 'blurred', { kind: 'test' }],
  ['libx264', 'low-resolution', { kind: 'test' }],
  ['h264_v4l2m2m', 'full', { kind: 'v4l2', device: '/dev/video0', inputFormat: 'yuyv422' }],
  ['h264_v4l2m2m', 'blurred', { kind: 'v4l2', device: '/dev/video0', inputFormat: 'mjpeg' }],
  ['h264_v4l2m2m', 'low-resolution', { kind: 'v4l2', device: '/dev/video0' }],
  ['copy', 'full', camera],
];

describe('buildEncoderArgs', () => {
  it.each(combinations)(
    'sends %s / %s only as RTP to loopback, never to a file',
    (encoder, viewMode, source) => {
      const args = buildEncoderArgs({ ...base, encoder, viewMode, source });
      const formats = args.flatMap((arg, i) => (arg === '-f' ? [args[i + 1]] : []));
      // Inputs are lavfi or v4l2; the single output format is rtp.
      expect(formats.filter((format) => format !== 'lavfi' && format !== 'v4l2')).toEqual(['rtp']);
      expect(outputsOf(args)).toEqual([
        'rtp://127.0.0.1:40000?pkt_size=1200&rtcpport=40000&localaddr=127.0.0.1',
      ]);
      expect(args).not.toContain('-y');
      expect(
        args.some((arg) => /\.(mp4|mkv|h264|ts|sdp|flv|avi)$|^file:|^\//.test(arg) && arg !== '/dev/video0'),
      ).toBe(false);
      expect(args).toContain('-an');
      expect(argAfter(args, '-payload_type')).toBe('96');
      expect(argAfter(args, '-ssrc')).toBe('1234');
    },
  );

  it('uses libx264 tuned for latency with a fixed short GOP and no B-frames', () => {
    const args = buildEncoderArgs({ ...base, gopFrames: 15 });
    expect(argAfter(args, '-c:v')).toBe('libx264');
    expect(argAfter(args, '-preset')).toBe('ultrafast');
    expect(argAfter(args, '-tune')).toBe('zerolatency');
    expect(argAfter(args, '-profile:v')).toBe('baseline');
    expect(argAfter(args, '-bf')).toBe('0');
    expect(argAfter(args, '-g')).toBe('15');
    expect(argAfter(args, '-keyint_min')).toBe('15');
    expect(argAfter(args, '-pix_fmt')).toBe('yuv420p');
  });

  it('reads the test pattern at the configured size and rate, paced in real time', () => {
    const args = buildEncoderArgs({ ...base, width: 320, height: 240, fps: 10 });
    expect(argAfter(args, '-i')).toBe('testsrc=size=320x240:rate=10');
    expect(args.indexOf('-re')).toBeLessThan(args.indexOf('-i'));
  });

  it('reads a v4l2 camera with its input format, size and rate', () => {
    const args = buildEncoderArgs({
      ...base,
      source: { kind: 'v4l2', device: '/dev/video0', inputFormat: 'mjpeg' },
    });
    expect(argAfter(args, '-f')).toBe('v4l2');
    expect(argAfter(args, '-input_format')).toBe('mjpeg');
    expect(argAfter(args, '-video_size')).toBe('640x360');
    expect(argAfter(args, '-framerate')).toBe('15');
    expect(argAfter(args, '-i')).toBe('/dev/video0');
    expect(args).not.toContain('-re');
  });

  it('uses the Pi hardware encoder in constrained baseline with the configured GOP', () => {
    const args = buildEncoderArgs({ ...base, encoder: 'h264_v4l2m2m', source: camera, gopFrames: 30 });
    expect(argAfter(args, '-c:v')).toBe('h264_v4l2m2m');
    expect(argAfter(args, '-profile:v')).toBe('578');
    expect(argAfter(args, '-g')).toBe('30');
    expect(argAfter(args, '-bsf:v')).toBe('dump_extra=freq=keyframe');
  });

  it('copies the camera stream without filters and repeats its headers before keyframes', () => {
    const args = buildEncoderArgs({ ...base, encoder: 'copy', source: camera });
    expect(argAfter(args, '-c:v')).toBe('copy');
    expect(args).not.toContain('-vf');
    expect(argAfter(args, '-bsf:v')).toBe('dump_extra=freq=keyframe');
  });

  it('has no filter in full view', () => {
    expect(buildEncoderArgs(base)).not.toContain('-vf');
  });

  it('blurs the picture in blurred view', () => {
    expect(argAfter(buildEncoderArgs({ ...base, viewMode: 'blurred' }), '-vf')).toMatch(/boxblur=/);
  });

  it('scales to 320 wide in low-resolution view', () => {
    expect(argAfter(buildEncoderArgs({ ...base, viewMode: 'low-resolution' }), '-vf')).toMatch(
      /^scale=320:-2/,
    );
  });

  it('passes an SSRC above 2^31 in the signed form ffmpeg accepts', () => {
    expect(argAfter(buildEncoderArgs({ ...base, ssrc: 0xfffffffe }), '-ssrc')).toBe('-2');
  });

  it('caps the bitrate by view mode, and a lower configured bitrate wins', () => {
    expect(argAfter(buildEncoderArgs({ ...base, viewMode: 'full' }), '-maxrate')).toBe('1000k');
    expect(argAfter(buildEncoderArgs({ ...base, viewMode: 'blurred' }), '-maxrate')).toBe('400k');
    expect(argAfter(buildEncoderArgs({ ...base, viewMode: 'low-resolution' }), '-maxrate')).toBe('300k');
    expect(argAfter(buildEncoderArgs({ ...base, viewMode: 'full', bitrateKbps: 5000 }), '-b:v')).toBe(
      '1000k',
    );
    const args = buildEncoderArgs({ ...base, viewMode: 'full', bitrateKbps: 800 });
    expect(argAfter(args, '-b:v')).toBe('800k');
    expect(argAfter(args, '-maxrate')).toBe('800k');
  });

  it('refuses to copy the camera stream in a blurred view, which would show the full picture', () => {
    expect(checkEncoderSettings({ ...base, encoder: 'copy', source: camera, viewMode: 'blurred' })).toBe(
      'copy-cannot-filter',
    );
    expect(() => buildEncoderArgs({ ...base, encoder: 'copy', source: camera, viewMode: 'blurred' })).toThrow(
      /copy-cannot-filter/,
    );
  });

  it('refuses to copy from a camera that does not deliver H.264', () => {
    expect(checkEncoderSettings({ ...base, encoder: 'copy' })).toBe('copy-needs-h264-camera');
  });

  it('refuses odd sizes, zero rates and out-of-range RTP parameters', () => {
    expect(checkEncoderSettings({ ...base, width: 641 })).toBe('invalid-size');
    expect(checkEncoderSettings({ ...base, fps: 0 })).toBe('invalid-fps');
    expect(checkEncoderSettings({ ...base, gopFrames: 0 })).toBe('invalid-gop');
    expect(checkEncoderSettings({ ...base, rtpPort: 70000 })).toBe('invalid-rtp-port');
    expect(checkEncoderSettings({ ...base, payloadType: 8 })).toBe('invalid-payload-type');
    expect(checkEncoderSettings({ ...base, ssrc: -1 })).toBe('invalid-ssrc');
    expect(checkEncoderSettings(base)).toBeUndefined();
  });
});

describe('Encoder', () => {
  const encoders: Encoder[] = [];
  afterEach(async () => {
    await Promise.all(encoders.splice(0).map((encoder) => encoder.stop()));
  });

  async function started(
    settings: Partial<EncoderSettings> = {},
    deps: Partial<ConstructorParameters<typeof Encoder>[0]> = {},
  ): Promise<{ encoder: Encoder; pid: number }> {
    // A port nobody listens on: ffmpeg sends into the void, which is all these tests need.
    const encoder = new Encoder({ log, ...deps }, { ...base, width: 320, height: 240, ...settings });
    encoders.push(encoder);
    await encoder.start();
    const pid = encoder.pid;
    if (pid === undefined) throw new Error('no pid');
    return { encoder, pid };
  }

  it.each<ViewMode>(['full', 'blurred', 'low-resolution'])(
    'sends RTP to the loopback port in %s view',
    async (viewMode) => {
      const socket = createSocket('udp4');
      await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
      // ffmpeg's RTCP goes to the same port; wait for media.
      const first = new Promise<Buffer>((resolve) =>
        socket.on('message', (packet) => {
          if ((packet[1]! & 0x7f) === 96) resolve(packet);
        }),
      );
      try {
        await started({ rtpPort: socket.address().port, ssrc: 0xfffffffe, viewMode });
        const packet = await first;
        expect(packet[0]! >> 6).toBe(2);
        expect(packet.readUInt32BE(8)).toBe(0xfffffffe);
      } finally {
        socket.close();
      }
    },
  );

  it('leaves no ffmpeg process after stop, and a second stop is harmless', async () => {
    const { encoder, pid } = await started();
    const exits: EncoderExit[] = [];
    encoder.on('exit', (exit) => exits.push(exit));
    await encoder.stop();
    await encoder.stop();
    expect(isAlive(pid)).toBe(false);
    expect(encoder.running).toBe(false);
    expect(exits).toEqual([]);
  });

  it('emits exit with a reason when ffmpeg dies on its own', async () => {
    const { encoder, pid } = await started();
    const exit = new Promise<EncoderExit>((resolve) => encoder.once('exit', resolve));
    process.kill(pid, 'SIGKILL');
    await expect(exit).resolves.toMatchObject({
      signal: 'SIGKILL',
      reason: expect.stringMatching(/SIGKILL/),
    });
    expect(encoder.running).toBe(false);
  });

  it('reports ffmpeg failing at once with its own error line', async () => {
    const { encoder } = await started({ source: { kind: 'v4l2', device: '/dev/no-such-camera' } });
    const exit = await new Promise<EncoderExit>((resolve) => encoder.once('exit', resolve));
    expect(exit.code).not.toBe(0);
    expect(exit.reason).toMatch(/no-such-camera|No such file/);
  });

  it('rejects start when the ffmpeg binary is missing', async () => {
    const encoder = new Encoder({ log, ffmpegPath: '/nonexistent/ffmpeg' }, base);
    encoders.push(encoder);
    await expect(encoder.start()).rejects.toThrow(/ENOENT/);
    expect(encoder.running).toBe(false);
  });

  it('kills a process that ignores SIGTERM once the deadline passes', async () => {
    const stubborn = `process.on('SIGTERM', () => {}); setInterval(() => {}, 1000); process.stderr.write('up\\n');`;
    let child: ChildProcess | undefined;
    let ready: () => void = () => undefined;
    // The stub writes `up` once its handler is installed; the listener is there from the spawn on.
    const up = new Promise<void>((resolve) => {
      ready = resolve;
    });
    const { encoder, pid } = await started(
      {},
      {
        stopTimeoutMs: 300,
        spawn: () => {
          child = spawn(process.execPath, ['-e', stubborn], { stdio: ['ignore', 'ignore', 'pipe'] });
          child.stderr?.on('data', (chunk) => {
            if (String(chunk).includes('up')) ready();
          });
          return child;
        },
      },
    );
    // Wait until the stub has installed its handler, or SIGTERM would kill it before the test means anything.
    await up;
    await encoder.stop();
    // It ignored SIGTERM, so only the SIGKILL after the deadline can have ended it.
    expect(child?.signalCode).toBe('SIGKILL');
    expect(isAlive(pid)).toBe(false);
  });

  it('restarts with a new process', async () => {
    const { encoder, pid } = await started();
    await encoder.restart({ ...base, width: 320, height: 240, ssrc: 99 });
    expect(encoder.pid).toBeDefined();
    expect(encoder.pid).not.toBe(pid);
    expect(isAlive(pid)).toBe(false);
  });
});
