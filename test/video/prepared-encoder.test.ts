// A prepared encoder (issue 9, time to the first picture): ffmpeg spawned ahead of a look and held at a
// FIFO before it opens the camera, let go by the look's Encoder. Real ffmpeg. Oracles: a "camera" that
// is a regular file, which ffmpeg gives up on at once once it opens it (an unprepared control shows
// that), /proc/<pid>/fd, and the RTP that reaches the prepared socket.
import {
  chmodSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  Encoder,
  type EncoderExit,
  type EncoderSettings,
  type PreparedVideo,
  prepareVideo,
  type VideoEncoderSettings,
} from '../../device/video/index.js';
import { isRunning, sleep, waitUntil } from '../support/process.js';

const log = pino({ level: 'silent' });

const testsrc: VideoEncoderSettings = {
  source: { kind: 'test' },
  width: 320,
  height: 240,
  fps: 15,
  encoder: 'libx264',
  gopFrames: 15,
  viewMode: 'full',
};

let dir: string;
let prepared: PreparedVideo[] = [];
let encoders: Encoder[] = [];
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'tk-prepared-test-'));
});
afterEach(async () => {
  await Promise.all(encoders.map((encoder) => encoder.stop()));
  for (const video of prepared) {
    video.encoder.discard();
    await waitUntil(() => !isRunning(video.encoder.child.pid!), 5000, 'the prepared ffmpeg gone');
  }
  prepared = [];
  encoders = [];
  chmodSync(dir, 0o700);
  rmSync(dir, { recursive: true, force: true });
});

async function prepare(settings: VideoEncoderSettings): Promise<PreparedVideo> {
  const video = await prepareVideo({ log, dir }, settings);
  prepared.push(video);
  return video;
}

function encoderFor(settings: EncoderSettings, video?: PreparedVideo, beforeOpen?: () => void): Encoder {
  const encoder = new Encoder({ log, beforeOpen }, settings, video?.encoder);
  encoders.push(encoder);
  return encoder;
}

/** What the process's descriptors point at. */
function openFiles(pid: number): string[] {
  return readdirSync(`/proc/${pid}/fd`).map((fd) => {
    try {
      return readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      return '';
    }
  });
}

/** Inodes of every IP socket on this machine (the stderr pipe Node gives a child is a UNIX socket). */
function ipSocketInodes(): Set<string> {
  const inodes = new Set<string>();
  for (const table of ['tcp', 'tcp6', 'udp', 'udp6']) {
    for (const line of readFileSync(`/proc/net/${table}`, 'utf8').split('\n').slice(1)) {
      const inode = line.trim().split(/\s+/)[9];
      if (inode !== undefined) inodes.add(inode);
    }
  }
  return inodes;
}

/** Counts the datagrams that reach `video`'s socket. */
function countPackets(video: PreparedVideo): { count: number } {
  const counter = { count: 0 };
  video.socket.on('message', () => counter.count++);
  return counter;
}

const nextExit = (encoder: Encoder) => new Promise<EncoderExit>((resolve) => encoder.once('exit', resolve));

describe('a prepared encoder', () => {
  it('does not open the camera until the look starts it, and then opens it after beforeOpen', async () => {
    const camera = join(dir, 'not-a-camera');
    writeFileSync(camera, '');
    const settings: VideoEncoderSettings = { ...testsrc, source: { kind: 'v4l2', device: camera } };

    // Control: started at once, ffmpeg opens the "camera" and gives up on it.
    const controlVideo = await prepare(settings);
    const control = encoderFor({ ...controlVideo.encoder.settings, ssrc: 1 });
    const controlExit = nextExit(control);
    await control.start();
    expect((await controlExit).reason).toContain(camera);

    const video = await prepare(settings);
    const pid = video.encoder.child.pid!;
    await sleep(1500);
    expect(isRunning(pid)).toBe(true);
    expect(openFiles(pid)).not.toContain(camera);
    const ip = ipSocketInodes();
    expect(openFiles(pid).filter((target) => ip.has(target.replace(/^socket:\[(\d+)\]$/, '$1')))).toEqual([]);

    const calls: string[] = [];
    const encoder = encoderFor(video.encoder.settings, video, () => calls.push('beforeOpen'));
    const exit = nextExit(encoder);
    await encoder.start();
    expect(encoder.pid).toBe(pid);
    expect(calls).toEqual(['beforeOpen']);
    expect((await exit).reason).toContain(camera);
  });

  it('sends nothing while held, and RTP to its socket once started', async () => {
    const video = await prepare(testsrc);
    const received = countPackets(video);
    await sleep(1000);
    expect(received.count).toBe(0);

    const encoder = encoderFor(video.encoder.settings, video);
    await encoder.start();
    expect(encoder.pid).toBe(video.encoder.child.pid);
    await waitUntil(() => received.count > 0, 10_000, 'RTP from the prepared ffmpeg');
    // Its progress lines are drained: it keeps sending well past what would fill the FIFO's first write.
    const seen = received.count;
    await waitUntil(() => received.count > seen + 15, 10_000, 'more RTP');
  });

  it('is replaced by a fresh ffmpeg when the look needs other settings, and killed', async () => {
    const video = await prepare(testsrc);
    const heldPid = video.encoder.child.pid!;
    const received = countPackets(video);
    const encoder = encoderFor({ ...video.encoder.settings, viewMode: 'blurred' }, video);
    await encoder.start();
    expect(encoder.pid).toBeDefined();
    expect(encoder.pid).not.toBe(heldPid);
    await waitUntil(() => !isRunning(heldPid), 5000, 'the held ffmpeg killed');
    await waitUntil(() => received.count > 0, 10_000, 'RTP from the fresh ffmpeg');
  });

  it('is killed when the camera controls before the open fail, and never let go', async () => {
    const video = await prepare(testsrc);
    const heldPid = video.encoder.child.pid!;
    const received = countPackets(video);
    const encoder = encoderFor(video.encoder.settings, video, () => {
      throw new Error('controls failed');
    });
    await expect(encoder.start()).rejects.toThrow('controls failed');
    await waitUntil(() => !isRunning(heldPid), 5000, 'the held ffmpeg killed');
    expect(encoder.pid).toBeUndefined();
    expect(received.count).toBe(0);
  });

  it('is killed by stop() when no look started it', async () => {
    const video = await prepare(testsrc);
    const heldPid = video.encoder.child.pid!;
    const encoder = encoderFor(video.encoder.settings, video);
    await encoder.stop();
    await waitUntil(() => !isRunning(heldPid), 5000, 'the held ffmpeg killed');
    expect(encoder.pid).toBeUndefined();
  });

  it('that died while held is not adopted: the look spawns its own', async () => {
    const video = await prepare(testsrc);
    const heldPid = video.encoder.child.pid!;
    process.kill(heldPid, 'SIGKILL');
    await waitUntil(() => video.encoder.exited, 5000, 'the held ffmpeg reaped');
    const received = countPackets(video);
    const encoder = encoderFor(video.encoder.settings, video);
    await encoder.start();
    expect(encoder.pid).not.toBe(heldPid);
    await waitUntil(() => received.count > 0, 10_000, 'RTP from the fresh ffmpeg');
  });
});
