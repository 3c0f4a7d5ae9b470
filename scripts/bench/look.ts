// Look-in latency on loopback, end to end through mosquitto, the device service and the viewer:
//   1. request published → first decoded frame, for a werift viewer (test/view/mqtt-viewer.ts) and for
//      headless Chromium running the reference page (with mDNS host candidates, Chromium's default, and
//      with IP ones); median and p95 over 20 looks, 1280x720 testsrc,
//      with the parts where measurable (decision, offer, answer, ICE, DTLS, ffmpeg start, first packet).
//      ffmpeg starts with the offer, so its start-up overlaps ICE and DTLS; what it sends before the
//      viewer is connected is held from the latest keyframe and sent at connect;
//   2. privacy button press → viewing LED off, and → last RTP packet sent (p99 over 20 presses).
// Prints figures; never fails on timing.   npx tsx scripts/bench/look.ts [--looks N]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';
import { silentLogger } from '../../device/log/index.js';
import type { VideoTimings } from '../../device/video/index.js';
import { startBroker } from '../devstack/broker.js';
import { chromiumLaunchOptions } from '../devstack/chromium.js';
import { startLookStack } from '../devstack/look-stack.js';
import { MqttViewer } from '../devstack/mqtt-console.js';

const { values } = parseArgs({ options: { looks: { type: 'string', default: '20' } } });
const looks = Number(values.looks);
const noTimings: Partial<VideoTimings> = {};
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function quantile(samples: number[], q: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const index = Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1);
  return sorted[Math.max(0, index)]!;
}

function row(label: string, samples: number[]): string {
  const f = (value: number) => value.toFixed(1).padStart(8);
  return `  ${label.padEnd(44)}${f(quantile(samples, 0.5))}${f(quantile(samples, 0.95))}${f(quantile(samples, 0.99))}${f(Math.max(...samples))}   (n=${samples.length})`;
}

function table(title: string, parts: Map<string, number[]>): void {
  console.log(`\n${title}\n  ${''.padEnd(44)}  median     p95     p99     max   [ms]`);
  for (const [label, samples] of parts) if (samples.length > 0) console.log(row(label, samples));
}

function add(parts: Map<string, number[]>, label: string, from: number | undefined, to: number | undefined) {
  if (from === undefined || to === undefined) return;
  const list = parts.get(label) ?? [];
  list.push(to - from);
  parts.set(label, list);
}

type LookStack = Awaited<ReturnType<typeof startLookStack>>;
type BrowserContext = Awaited<ReturnType<typeof chromium.launchPersistentContext>>;

/** `looks` looks from the reference page in `context`; the parts of each, by label. */
async function chromiumLooks(context: BrowserContext, stack: LookStack): Promise<Map<string, number[]>> {
  const page = await context.newPage();
  await page.goto(stack.server!.url);
  await page.waitForSelector('body[data-ready="true"]');
  const browser = new Map<string, number[]>();
  for (let i = 0; i < looks; i++) {
    const holder = await page.evaluate(
      () => (window as unknown as { tkViewer: { holder: { fp: string; hup: string } } }).tkViewer.holder,
    );
    await page.fill('#grant', await stack.signGrant(holder));
    const startedAtMs = stack.now();
    // Clicked and timed inside the page, so the page's own clock measures request → first decoded frame.
    const { pageMs, decodedAtMs } = await page.evaluate(async () => {
      const t0 = performance.now();
      document.getElementById('look')!.click();
      for (;;) {
        const pc = (window as unknown as { tkViewer: { pc?: RTCPeerConnection } }).tkViewer.pc;
        if (pc) {
          const stats = await pc.getStats();
          let decoded = 0;
          stats.forEach((report) => {
            if (report.type === 'inbound-rtp' && report.kind === 'video') decoded = report.framesDecoded ?? 0;
          });
          if (decoded > 0) return { pageMs: performance.now() - t0, decodedAtMs: Date.now() };
        }
        if (performance.now() - t0 > 10_000) throw new Error('no decoded frame within 10 s');
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    });
    const sessionId = stack.service.supervisor.activeSessionId!;
    const device = stack.videos.get(sessionId)!.timings ?? noTimings;
    const list = browser.get('request → first decoded frame (page clock)') ?? [];
    list.push(pageMs);
    browser.set('request → first decoded frame (page clock)', list);
    add(browser, '  click → offer made (device)', startedAtMs, device.offerAtMs);
    add(browser, '  offer made → ICE+DTLS connected (device)', device.offerAtMs, device.connectedAtMs);
    add(browser, '  offer made → ffmpeg spawned', device.offerAtMs, device.encoderSpawnedAtMs);
    add(
      browser,
      '  ffmpeg spawned → first RTP received',
      device.encoderSpawnedAtMs,
      device.firstReceivedAtMs,
    );
    add(browser, '  connected → first RTP packet sent', device.connectedAtMs, device.firstPacketAtMs);
    add(browser, '  first RTP packet sent → frame decoded (page)', device.firstPacketAtMs, decodedAtMs);
    await page.click('#hangup');
    await page.waitForSelector('#state[data-state="ended"]', { timeout: 5000 });
    for (let w = 0; !stack.finalStats.has(sessionId) && w < 3000; w += 5) await sleep(5);
  }
  return browser;
}

async function main(): Promise<void> {
  const broker = await startBroker({ websockets: true, plain: true });
  const stack = await startLookStack({
    brokerUrl: broker.plainUrl!,
    page: { brokerUrl: broker.wsUrl!, ...broker.wsCredentials('console-1') },
    log: silentLogger(),
    loopbackOnly: true,
    camera: { width: 1280, height: 720, fps: 15 },
  });
  const profileDir = mkdtempSync(join(tmpdir(), 'tk-bench-chromium-'));
  let viewer: MqttViewer | undefined;
  let context: BrowserContext | undefined;
  try {
    await stack.setSchedule('open');
    viewer = await MqttViewer.connect(broker.plainUrl!, broker.plainOptions('console-1'), stack.deviceId);

    // ── werift viewer ─────────────────────────────────────────────────────────────────────────
    const werift = new Map<string, number[]>();
    const privacy = new Map<string, number[]>();
    for (let i = 0; i < looks; i++) {
      const grant = await stack.signGrant(viewer.holder);
      const decision = await viewer.request(grant);
      if (decision.decision !== 'granted') throw new Error(`refused: ${decision.reason}`);
      await viewer.nextFrame(10_000);
      const t = viewer.timings;
      const device = stack.videos.get(decision.sessionId!)!.timings ?? noTimings;
      add(werift, 'request → first frame (total)', t.requestedAtMs, t.firstFrameAtMs);
      add(werift, '  request → decision received', t.requestedAtMs, t.decisionAtMs);
      add(werift, '  decision → offer received (LED, werift)', t.decisionAtMs, t.offerAtMs);
      add(werift, '  offer → answer acknowledged by broker', t.offerAtMs, t.answerSentAtMs);
      add(werift, '  offer → ICE connected (viewer)', t.offerAtMs, t.iceConnectedAtMs);
      add(werift, '  ICE → DTLS connected (viewer)', t.iceConnectedAtMs, t.connectedAtMs);
      add(werift, '  offer made → ffmpeg spawned (device)', device.offerAtMs, device.encoderSpawnedAtMs);
      add(
        werift,
        '  ffmpeg spawned → first RTP received',
        device.encoderSpawnedAtMs,
        device.firstReceivedAtMs,
      );
      add(werift, '  device connected → first RTP packet sent', device.connectedAtMs, device.firstPacketAtMs);
      add(werift, '  first packet → first frame assembled', device.firstPacketAtMs, t.firstFrameAtMs);

      // Half the looks end with a hang-up, half with the privacy button (then privacy goes off again).
      const ended = viewer.nextEnded(5000);
      if (i % 2 === 0) {
        await viewer.hangup();
        await ended;
      } else {
        await sleep(200);
        const pressedAtMs = stack.now();
        stack.gpio.button.press();
        await ended;
        for (let w = 0; !stack.finalStats.has(decision.sessionId!) && w < 3000; w += 5) await sleep(5);
        const stats = stack.finalStats.get(decision.sessionId!)!;
        const ledOff = stack.gpio.events.filter((e) => e.led === 'viewing' && !e.on).at(-1)!;
        add(privacy, 'press → viewing LED off', pressedAtMs, ledOff.atMs);
        add(privacy, 'press → last RTP packet sent (≤0: before)', pressedAtMs, stats.lastForwardedAtMs);
        add(privacy, 'press → media stopped (ffmpeg, socket, peer)', pressedAtMs, stack.now());
        stack.gpio.button.release();
        await sleep(100);
        stack.gpio.button.press();
        await sleep(100);
        stack.gpio.button.release();
      }
    }
    table(`werift viewer: ${looks} looks, 1280x720 testsrc at 15 fps, loopback`, werift);
    table(
      `privacy press during a look (${privacy.get('press → viewing LED off')?.length ?? 0} presses)`,
      privacy,
    );

    // ── Chromium ───────────────────────────────────────────────────────────────────────────────
    // Chromium hides its host addresses behind mDNS names by default; the device takes IP candidates
    // only (it would need a multicast DNS socket to resolve them), so ICE then waits for Chromium's own
    // checks. With IP candidates (as relay candidates always are) the device checks the console itself.
    for (const candidates of ['mDNS', 'IP'] as const) {
      const launch = chromiumLaunchOptions();
      if (candidates === 'IP') launch.args.push('--disable-features=WebRtcHideLocalIpsWithMdns');
      context = await chromium.launchPersistentContext(profileDir, launch);
      const browser = await chromiumLooks(context, stack);
      await context.close();
      context = undefined;
      table(`Chromium (reference page), ${candidates} host candidates: ${looks} looks, 1280x720`, browser);
    }
    console.log('\n  (Page timings poll getStats every 5 ms; device parts use the device clock.)');
  } finally {
    await context?.close();
    rmSync(profileDir, { recursive: true, force: true });
    await viewer?.close();
    await stack.stop();
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
