// Camera bench: CPU of the media path for each source kind and view mode at 720p15 — the processes
// that turn the camera into RTP (ffmpeg, and for a libcamera source the rpicam-vid stand-in that feeds
// it), as user+system CPU seconds per second of video, from /proc/<pid>/stat. RTP goes to a loopback
// socket here: WebRTC (werift) costs the same for every mode and is in the `video` and `resources`
// benches. Prints figures; never fails on timing.
// Run: npx tsx scripts/bench/camera.ts [seconds per case]

import { execFileSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import type { CameraSource } from '../../device/config/index.js';
import { Encoder, type EncoderSettings, type ViewMode } from '../../device/video/index.js';

const log = pino({ level: 'silent' });
const seconds = Number(process.argv[2] ?? 6);
const here = dirname(fileURLToPath(import.meta.url));
const standIn = join(here, '../../test/video/fixtures/rpicam-vid');
const ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

/** utime + stime in seconds; undefined once the process is gone. */
function cpuSeconds(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond;
  } catch {
    return undefined;
  }
}

interface Case {
  label: string;
  source: CameraSource;
  viewMode: ViewMode;
}

const sources: Array<[string, CameraSource]> = [
  ['test (lavfi testsrc → libx264)', { kind: 'test' }],
  ['libcamera (stand-in rpicam-vid → ffmpeg)', { kind: 'libcamera', rpicamPath: standIn, camera: 0 }],
];
const modes: ViewMode[] = ['full', 'blurred', 'low-resolution'];
const cases: Case[] = sources.flatMap(([label, source]) =>
  modes.map((viewMode) => ({ label, source, viewMode })),
);

async function measure(c: Case): Promise<{ ffmpeg: number; camera: number | undefined; packets: number }> {
  const socket = createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  let packets = 0;
  socket.on('message', (packet) => {
    if (((packet[1] ?? 0) & 0x7f) === 96) packets += 1;
  });
  const settings: EncoderSettings = {
    source: c.source,
    width: 1280,
    height: 720,
    fps: 15,
    encoder: 'libx264',
    gopFrames: 15,
    viewMode: c.viewMode,
    rtpPort: socket.address().port,
    payloadType: 96,
    ssrc: 1,
  };
  const encoder = new Encoder({ log }, settings);
  try {
    await encoder.start();
    // Start-up (x264 init, the probe) is not the steady state.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const ffmpegBefore = cpuSeconds(encoder.pid) ?? Number.NaN;
    const cameraBefore = cpuSeconds(encoder.cameraPid);
    const packetsBefore = packets;
    const started = performance.now();
    await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
    const wallS = (performance.now() - started) / 1000;
    const ffmpegAfter = cpuSeconds(encoder.pid) ?? Number.NaN;
    const cameraAfter = cpuSeconds(encoder.cameraPid);
    return {
      ffmpeg: (ffmpegAfter - ffmpegBefore) / wallS,
      camera:
        cameraBefore === undefined || cameraAfter === undefined
          ? undefined
          : (cameraAfter - cameraBefore) / wallS,
      packets: (packets - packetsBefore) / wallS,
    };
  } finally {
    await encoder.stop();
    socket.close();
  }
}

async function main(): Promise<void> {
  console.log(`Camera bench: 1280x720 at 15 fps, ${seconds} s per case after 1.5 s of start-up`);
  console.log('CPU as seconds of CPU (user + system) per second of video; 1.00 = one core busy.\n');
  console.log(
    `${'source'.padEnd(42)} ${'view mode'.padEnd(15)} ${'ffmpeg'.padStart(7)} ${'camera'.padStart(7)} ${'RTP pkt/s'.padStart(10)}`,
  );
  for (const c of cases) {
    const result = await measure(c);
    const camera = result.camera === undefined ? '—' : result.camera.toFixed(3);
    console.log(
      `${c.label.padEnd(42)} ${c.viewMode.padEnd(15)} ${result.ffmpeg.toFixed(3).padStart(7)} ${camera.padStart(7)} ${result.packets.toFixed(0).padStart(10)}`,
    );
  }
  console.log(
    '\n"camera" is the stand-in rpicam-vid: here an ffmpeg making and x264-encoding the test pattern. On a Pi',
  );
  console.log('the real rpicam-vid encodes in the ISP and hardware encoder; its CPU is not this figure.');
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error('bench failed to run:', error);
    process.exit(1);
  },
);
