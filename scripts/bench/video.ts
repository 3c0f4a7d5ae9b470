// Video benchmark: how long from `startVideo` to the first frame at a werift viewer (20 runs, 1280x720
// testsrc), split into phases, then the cost of streaming 720p at 15 fps for 10 s: this process's CPU and
// RSS, and ffmpeg's CPU read from /proc. Prints figures; never fails on timing.
// Run: npx tsx scripts/bench/video.ts [runs] [streamSeconds]

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import pino from 'pino';
import { startVideo, type VideoSessionSettings } from '../../device/video/index.js';
import { LOOPBACK_ICE, Viewer } from '../devstack/werift-viewer.js';

const log = pino({ level: 'silent' });
const now = (): number => performance.now();
const runs = Number(process.argv[2] ?? 20);
const streamSeconds = Number(process.argv[3] ?? 10);

const settings: VideoSessionSettings = {
  encoder: {
    source: { kind: 'test' },
    width: 1280,
    height: 720,
    fps: 15,
    encoder: 'libx264',
    gopFrames: 15,
    viewMode: 'full',
  },
  peer: LOOPBACK_ICE,
};

interface Run {
  /** startVideo → offer/answer applied (socket bind, werift setup, candidate gathering; signalling is in-process). */
  negotiate: number;
  /** answer applied → ICE connected at the viewer. */
  ice: number;
  /** ICE connected → DTLS done (connectionState connected) at the viewer. */
  dtls: number;
  /** device connected → ffmpeg spawned. */
  spawn: number;
  /** ffmpeg spawned → first RTP packet forwarded (process start, lavfi, first x264 encode). */
  ffmpeg: number;
  /** first packet forwarded → first whole frame at the viewer. */
  deliver: number;
  total: number;
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index] ?? Number.NaN;
}

const ms = (value: number): string => `${value.toFixed(1).padStart(7)} ms`;

async function oneRun(): Promise<Run> {
  const started = now();
  const session = await startVideo({ log, now }, settings);
  const viewer = new Viewer(now);
  try {
    const firstFrame = viewer.nextFrame(() => true, 15_000);
    await viewer.connect(session);
    const answered = now();
    const frame = await firstFrame;
    if (!frame.keyframe) console.warn('  first frame was not a keyframe');
    const t = session.timings;
    const v = viewer.timings;
    const need = (value: number | undefined, name: string): number => {
      if (value === undefined) throw new Error(`missing timing ${name}`);
      return value;
    };
    const iceAt = need(v.iceConnectedAtMs, 'ice');
    const dtlsAt = need(v.connectedAtMs, 'dtls');
    const connectedAt = need(t.connectedAtMs, 'connected');
    const spawnedAt = need(t.encoderSpawnedAtMs, 'spawned');
    const packetAt = need(t.firstPacketAtMs, 'packet');
    return {
      negotiate: answered - started,
      ice: Math.max(0, iceAt - answered),
      dtls: dtlsAt - iceAt,
      spawn: spawnedAt - connectedAt,
      ffmpeg: packetAt - spawnedAt,
      deliver: frame.atMs - packetAt,
      total: frame.atMs - started,
    };
  } finally {
    await session.stop();
    await viewer.close();
  }
}

/** utime + stime of a process in seconds, from /proc/<pid>/stat. */
function processCpuSeconds(pid: number, ticksPerSecond: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond;
}

async function streaming(): Promise<void> {
  const ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  const session = await startVideo({ log, now }, settings);
  const viewer = new Viewer(now);
  try {
    await viewer.connect(session);
    await viewer.nextFrame(() => true, 15_000);
    const pid = session.encoderPid;
    if (pid === undefined) throw new Error('no ffmpeg');
    const framesBefore = viewer.frames.length;
    const cpuBefore = process.cpuUsage();
    const ffmpegBefore = processCpuSeconds(pid, ticksPerSecond);
    const wallBefore = now();
    let rssMax = 0;
    const rssSamples: number[] = [];
    const sampler = setInterval(() => {
      const rss = process.memoryUsage().rss;
      rssSamples.push(rss);
      rssMax = Math.max(rssMax, rss);
    }, 250);
    await new Promise((resolve) => setTimeout(resolve, streamSeconds * 1000));
    clearInterval(sampler);
    const wallS = (now() - wallBefore) / 1000;
    const cpu = process.cpuUsage(cpuBefore);
    const ffmpegS = processCpuSeconds(pid, ticksPerSecond) - ffmpegBefore;
    const frames = viewer.frames.length - framesBefore;
    const ffmpegRssKb = Number(
      /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? Number.NaN,
    );
    const mb = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MB`;
    console.log(`\nStreaming 1280x720 @ 15 fps for ${wallS.toFixed(1)} s (${frames} frames at the viewer)`);
    console.log(
      `  node (orchestrator + in-process werift viewer): ${((cpu.user + cpu.system) / 1e4 / wallS).toFixed(1)} % of one core` +
        ` (user ${(cpu.user / 1e6).toFixed(2)} s, system ${(cpu.system / 1e6).toFixed(2)} s)`,
    );
    console.log(
      `  node RSS: max ${mb(rssMax)}, median ${mb(percentile(rssSamples, 50))}` +
        ` (includes the viewer; a device-only process is smaller)`,
    );
    console.log(
      `  ffmpeg (pid ${pid}): ${((ffmpegS / wallS) * 100).toFixed(1)} % of one core, RSS ${(ffmpegRssKb / 1024).toFixed(1)} MB`,
    );
    console.log(
      `  packets forwarded: ${session.stats.packetsForwarded}, dropped: ${session.stats.packetsDropped}`,
    );
  } finally {
    await session.stop();
    await viewer.close();
  }
}

async function main(): Promise<void> {
  console.log(`Video bench: ${runs} runs, start → first frame at a werift viewer, 1280x720 testsrc, libx264`);
  // One unmeasured run warms up the module cache, x264 and the page cache.
  await oneRun();
  const results: Run[] = [];
  for (let i = 0; i < runs; i++) results.push(await oneRun());
  const phases: Array<keyof Run> = ['negotiate', 'ice', 'dtls', 'spawn', 'ffmpeg', 'deliver', 'total'];
  console.log(`${'phase'.padEnd(10)} ${'median'.padStart(10)} ${'p95'.padStart(10)}`);
  for (const phase of phases) {
    const values = results.map((run) => run[phase]);
    console.log(`${phase.padEnd(10)} ${ms(percentile(values, 50))} ${ms(percentile(values, 95))}`);
  }
  await streaming();
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error('bench failed to run:', error);
    process.exit(1);
  },
);
