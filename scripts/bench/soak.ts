// Soak: repeated looks against one device service for a while (10 minutes by default), watching the
// device process for what a long-running service must not accumulate: RSS growth, open file descriptors,
// UDP sockets and child processes (a leaked ffmpeg would keep the camera open). The device runs in its
// own process (scripts/devstack/look-device.ts), the viewer here, mosquitto in a third. Every sample follows a
// full collection in the device (--expose-gc), so growth is not the collector's sawtooth.
// A leaked process or socket prints a FAIL line; the exit code stays 0 (benches never fail on figures).
// Not part of a plain `npm run bench`: run it by name, `npm run bench -- soak`.
//   npx tsx scripts/bench/soak.ts [--minutes N]
import { parseArgs } from 'node:util';
import { startBroker } from '../devstack/broker.js';
import { DeviceProcess } from '../devstack/device-process.js';
import { MqttViewer } from '../devstack/mqtt-console.js';
import { children, memory, openFiles } from '../devstack/proc-stats.js';

const { values } = parseArgs({ options: { minutes: { type: 'string', default: '10' } } });
const minutes = Number(values.minutes);
const camera = { width: 1280, height: 720, fps: 15 };
/** How long each look streams before the operator hangs up. */
const lookMs = 1500;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Sample {
  atS: number;
  rssMiB: number;
  /** JS heap in use right after a full collection: what a leak in the service's own code would grow. */
  heapAfterGcMiB: number;
  fds: number;
  udpSockets: number;
  children: number;
}

/** tsx's esbuild service is a child of any process started through tsx; it is not the device's doing. */
const deviceChildren = (pid: number) => children(pid).filter((child) => child.command !== 'esbuild');

const MiB = 1024 * 1024;

/** Figures of the device process; its memory right after a full collection (taken first). */
async function sample(device: DeviceProcess, startMs: number): Promise<Sample> {
  const pid = device.pid;
  const usage = await device.request('memory');
  const files = openFiles(pid);
  return {
    atS: (performance.now() - startMs) / 1000,
    rssMiB: memory(pid)?.rssMiB ?? Number.NaN,
    heapAfterGcMiB: usage.heapUsed / MiB,
    fds: files?.fds ?? Number.NaN,
    udpSockets: files?.udpSockets ?? Number.NaN,
    children: deviceChildren(pid).length,
  };
}

/** Least-squares slope of a figure over time, in MiB per hour. */
function slopeMiBPerHour(samples: Sample[], value: (s: Sample) => number): number {
  const n = samples.length;
  if (n < 2) return Number.NaN;
  const mx = samples.reduce((a, s) => a + s.atS, 0) / n;
  const my = samples.reduce((a, s) => a + value(s), 0) / n;
  let num = 0;
  let den = 0;
  for (const s of samples) {
    num += (s.atS - mx) * (value(s) - my);
    den += (s.atS - mx) ** 2;
  }
  return den === 0 ? Number.NaN : (num / den) * 3600;
}

const show = (s: Sample) =>
  `RSS ${s.rssMiB.toFixed(1)} MiB (JS heap ${s.heapAfterGcMiB.toFixed(1)} MiB), ${s.fds} fds, ${s.udpSockets} UDP sockets, ${s.children} children`;

/** Waits until the device has no child process left (ffmpeg stopped), up to `timeoutMs`. */
async function childrenGone(pid: number, timeoutMs: number): Promise<boolean> {
  for (let waited = 0; waited < timeoutMs; waited += 20) {
    if (deviceChildren(pid).length === 0) return true;
    await sleep(20);
  }
  return deviceChildren(pid).length === 0;
}

async function main(): Promise<void> {
  const broker = await startBroker({ plain: true });
  let device: DeviceProcess | undefined;
  let viewer: MqttViewer | undefined;
  try {
    device = await DeviceProcess.start(broker.plainUrl!, camera);
    const pid = device.pid;
    await device.request('schedule');
    viewer = await MqttViewer.connect(broker.plainUrl!, broker.plainOptions('console-1'), device.deviceId);
    const look = async (): Promise<void> => {
      const decision = await viewer!.request(await device!.request('grant', viewer!.holder));
      if (decision.decision !== 'granted') throw new Error(`refused: ${decision.reason}`);
      const first = await viewer!.nextFrame(10_000);
      if (!first.keyframe) throw new Error('the first frame was not a keyframe');
      await sleep(lookMs);
      const ended = viewer!.nextEnded(5000);
      await viewer!.hangup();
      await ended;
    };

    console.log(
      `soak: ${minutes} min of looks (${camera.width}x${camera.height} testsrc, ${lookMs} ms each, then hang-up); device in its own process (pid ${pid})`,
    );
    // Two warm-up looks: werift's certificate, JIT and pools settle before the baseline is taken.
    for (let i = 0; i < 2; i++) await look();
    await childrenGone(pid, 3000);
    const startMs = performance.now();
    const baseline = await sample(device, startMs);
    console.log(`  baseline after 2 looks: ${show(baseline)}`);
    const samples: Sample[] = [baseline];
    let looks = 0;
    let leakedAfterLook = 0;
    let notKeyframeFirst = 0;
    let failures = 0;
    let nextReportS = 60;
    while (performance.now() - startMs < minutes * 60_000) {
      try {
        await look();
        looks += 1;
      } catch (error) {
        if (String(error).includes('keyframe')) notKeyframeFirst += 1;
        failures += 1;
        console.log(`  look failed: ${String(error)}`);
        await viewer.closePeer();
        await sleep(1000);
      }
      if (!(await childrenGone(pid, 3000))) {
        leakedAfterLook += 1;
        console.log(`  a child outlived its look: ${JSON.stringify(deviceChildren(pid))}`);
      }
      const current = await sample(device, startMs);
      samples.push(current);
      if (current.atS >= nextReportS) {
        console.log(`  ${(current.atS / 60).toFixed(0).padStart(3)} min, ${looks} looks: ${show(current)}`);
        nextReportS += 60;
      }
    }
    // Let timers and sockets of the last look settle before the final count.
    await sleep(2000);
    const end = await sample(device, startMs);
    const leftChildren = deviceChildren(pid);

    console.log(`\n  looks: ${looks} (${failures} failed) in ${(end.atS / 60).toFixed(1)} min`);
    console.log(`  end:    ${show(end)}`);
    const trend = (value: (s: Sample) => number) => slopeMiBPerHour(samples, value).toFixed(1);
    console.log(
      `  RSS after GC: ${baseline.rssMiB.toFixed(1)} → ${end.rssMiB.toFixed(1)} MiB (max ${Math.max(...samples.map((s) => s.rssMiB)).toFixed(1)}; trend ${trend((s) => s.rssMiB)} MiB/h)`,
    );
    console.log(
      `  JS heap after GC: ${baseline.heapAfterGcMiB.toFixed(1)} → ${end.heapAfterGcMiB.toFixed(1)} MiB (trend ${trend((s) => s.heapAfterGcMiB)} MiB/h; over a short run the trend is mostly noise)`,
    );
    console.log(
      `  open fds: ${baseline.fds} → ${end.fds} (${end.fds - baseline.fds >= 0 ? '+' : ''}${end.fds - baseline.fds})`,
    );
    console.log(`  UDP sockets: ${baseline.udpSockets} → ${end.udpSockets}`);
    console.log(`  child processes at the end: ${leftChildren.length}; outlived a look: ${leakedAfterLook}`);
    const verdicts = [
      leftChildren.length > 0 || leakedAfterLook > 0
        ? `FAIL: leaked child processes (${leftChildren.length} at the end, ${leakedAfterLook} looks left one behind)`
        : 'ok: no leaked child processes',
      end.udpSockets > baseline.udpSockets
        ? `FAIL: leaked UDP sockets (${baseline.udpSockets} → ${end.udpSockets})`
        : 'ok: no leaked UDP sockets',
      end.fds > baseline.fds
        ? `FAIL: open file descriptors grew (${baseline.fds} → ${end.fds})`
        : 'ok: no growth in open file descriptors',
      notKeyframeFirst > 0
        ? `FAIL: ${notKeyframeFirst} looks began without a keyframe`
        : 'ok: every look began with a keyframe',
    ];
    for (const verdict of verdicts) console.log(`  ${verdict}`);
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
