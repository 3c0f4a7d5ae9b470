// What the device service costs: its own CPU (percent of one core) and RSS while idle and while
// streaming 1280x720 at 15 fps to a werift viewer, with ffmpeg's CPU and RSS reported separately. The
// device runs in a process of its own (scripts/devstack/look-device.ts: service, simulated GPIO, test
// camera), mosquitto in another and the viewer in this one, so neither's cost is mixed into the device's.
// Figures come from /proc/<pid>/stat and /proc/<pid>/status. Prints figures; never fails on timing.
//   npx tsx scripts/bench/resources.ts [--idle S] [--stream S]
import { parseArgs } from 'node:util';
import { startBroker } from '../devstack/broker.js';
import { DeviceProcess } from '../devstack/device-process.js';
import { MqttViewer } from '../devstack/mqtt-console.js';
import { CpuMeter, children, memory } from '../devstack/proc-stats.js';

const { values } = parseArgs({
  options: { idle: { type: 'string', default: '30' }, stream: { type: 'string', default: '30' } },
});
const idleS = Number(values.idle);
const streamS = Number(values.stream);
const camera = { width: 1280, height: 720, fps: 15 };
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Phase {
  cpuPercent: number | undefined;
  rssMeanMiB: number;
  rssMaxMiB: number;
}

/** Samples a process's RSS once a second for `seconds` and its CPU over the whole span. */
async function measure(pid: number, seconds: number, alongside?: number): Promise<[Phase, Phase?]> {
  const meters = [pid, alongside].map((p) => (p === undefined ? undefined : new CpuMeter(p)));
  const rss: number[][] = [[], []];
  for (const meter of meters) meter?.start();
  for (let s = 0; s < seconds; s++) {
    await sleep(1000);
    [pid, alongside].forEach((p, i) => {
      const value = p === undefined ? undefined : memory(p)?.rssMiB;
      if (value !== undefined) rss[i]?.push(value);
    });
  }
  const phase = (i: number): Phase => {
    const samples = rss[i] ?? [];
    return {
      cpuPercent: meters[i]?.percent(),
      rssMeanMiB: samples.reduce((a, b) => a + b, 0) / Math.max(1, samples.length),
      rssMaxMiB: Math.max(0, ...samples),
    };
  };
  return alongside === undefined ? [phase(0)] : [phase(0), phase(1)];
}

function line(label: string, phase: Phase | undefined): string {
  if (phase === undefined) return `  ${label.padEnd(46)}(not measured)`;
  const cpu = phase.cpuPercent === undefined ? '   n/a' : phase.cpuPercent.toFixed(1).padStart(6);
  return `  ${label.padEnd(46)}${cpu} %   RSS mean ${phase.rssMeanMiB.toFixed(1).padStart(6)} MiB, max ${phase.rssMaxMiB.toFixed(1).padStart(6)} MiB`;
}

async function main(): Promise<void> {
  const broker = await startBroker({ plain: true });
  let device: DeviceProcess | undefined;
  let viewer: MqttViewer | undefined;
  try {
    device = await DeviceProcess.start(broker.plainUrl!, camera);
    await device.request('schedule');
    viewer = await MqttViewer.connect(broker.plainUrl!, broker.plainOptions('console-1'), device.deviceId);
    console.log(
      `device service in its own process (pid ${device.pid}); mosquitto and the werift viewer run elsewhere`,
    );
    console.log(`CPU as percent of one core (this machine has 2); ${camera.width}x${camera.height} testsrc`);
    console.log('RSS includes tsx compiling TypeScript in-process; the built service (dist/) needs less');

    await sleep(2000);
    const [idle] = await measure(device.pid, idleS);

    const decision = await viewer.request(await device.request('grant', viewer.holder));
    if (decision.decision !== 'granted') throw new Error(`refused: ${decision.reason}`);
    await viewer.nextFrame(10_000);
    const encoderPid = await device.request('encoder-pid');
    if (encoderPid === undefined) throw new Error('no encoder running during the view');
    const viewerCpu = new CpuMeter(process.pid);
    viewerCpu.start();
    const framesBefore = viewer.frames.length;
    const [service, ffmpeg] = await measure(device.pid, streamS, encoderPid);
    const frames = viewer.frames.length - framesBefore;
    const viewerPercent = viewerCpu.percent();
    // tsx's esbuild service is a child of anything started through tsx, not the device's doing.
    const others = children(device.pid).filter(
      (child) => child.pid !== encoderPid && child.command !== 'esbuild',
    );
    const ended = viewer.nextEnded(5000);
    await viewer.hangup();
    await ended;

    console.log(`\nidle, ${idleS} s (no view; no ffmpeg)`);
    console.log(line('device service', idle));
    console.log(
      `\nstreaming, ${streamS} s at ${camera.fps} fps to a werift viewer (${(frames / streamS).toFixed(1)} frames/s received)`,
    );
    console.log(line('device service (without ffmpeg)', service));
    console.log(line(`ffmpeg (libx264 ultrafast, pid ${encoderPid})`, ffmpeg));
    console.log(
      `  ${'(viewer, this process, for reference)'.padEnd(46)}${(viewerPercent ?? Number.NaN).toFixed(1).padStart(6)} %`,
    );
    if (others.length > 0) console.log(`  other children of the device: ${JSON.stringify(others)}`);
  } finally {
    await viewer?.close();
    await device?.stop();
    await broker.stop();
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error('bench failed:', error);
    process.exit(1);
  },
);
