// The whole look in headless Chromium: the reference viewer page (viewer/) over MQTT-over-WebSocket to a
// real mosquitto, the device service on simulated GPIO with real ffmpeg (testsrc) and werift, and the
// browser decoding the H.264. Checks what the operator and the resident see: a picture inside a window,
// a refusal with its reason outside it, the picture gone within a second of the privacy button, and the
// viewing LED lit for the whole time packets flow.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { refusalText } from '../../device/protocol/reasons.js';
import { silentLogger } from '../../device/log/index.js';
import { type Broker, startBroker } from '../../scripts/devstack/broker.js';
import { chromiumLaunchOptions } from '../../scripts/devstack/chromium.js';
import { type LookStack, startLookStack } from '../../scripts/devstack/look-stack.js';
import { endText } from '../../scripts/devstack/viewer-server.js';
import { isAlive, sleep } from '../support/process.js';

const width = 640;
const height = 360;

interface InboundVideo {
  framesDecoded: number;
  frameWidth: number | undefined;
  frameHeight: number | undefined;
}

function inboundVideo(page: Page): Promise<InboundVideo | undefined> {
  return page.evaluate(async () => {
    const pc = (window as unknown as { tkViewer: { pc?: RTCPeerConnection } }).tkViewer.pc;
    if (!pc) return undefined;
    const stats = await pc.getStats();
    let found: InboundVideo | undefined;
    stats.forEach((report) => {
      if (report.type === 'inbound-rtp' && report.kind === 'video') {
        found = {
          framesDecoded: report.framesDecoded ?? 0,
          frameWidth: report.frameWidth,
          frameHeight: report.frameHeight,
        };
      }
    });
    return found;
  });
}

describe('reference viewer in headless Chromium', () => {
  let broker: Broker;
  let stack: LookStack;
  let context: BrowserContext;
  let page: Page;
  let profileDir: string;
  const encoderPids: number[] = [];

  beforeAll(async () => {
    broker = await startBroker({ websockets: true, plain: true });
    stack = await startLookStack({
      brokerUrl: broker.plainUrl!,
      page: { brokerUrl: broker.wsUrl!, ...broker.wsCredentials('console-1') },
      log: silentLogger(),
      loopbackOnly: true,
      camera: { width, height, fps: 15 },
    });
    stack.port.on('video', (_sessionId, video) => {
      video.on('streaming', () => {
        if (video.encoderPid !== undefined) encoderPids.push(video.encoderPid);
      });
    });
    profileDir = mkdtempSync(join(tmpdir(), 'tk-chromium-'));
    context = await chromium.launchPersistentContext(profileDir, chromiumLaunchOptions());
    page = await context.newPage();
    await page.goto(stack.server!.url);
    await page.waitForSelector('body[data-ready="true"]', { timeout: 10_000 });
  });

  afterAll(async () => {
    await context?.close();
    await stack?.stop();
    await broker?.stop();
    if (profileDir) rmSync(profileDir, { recursive: true, force: true });
    expect(encoderPids.filter(isAlive)).toEqual([]);
    expect(stack?.port.activeSessions ?? []).toEqual([]);
  });

  it('refuses a look outside the agreed window and says why in plain words', async () => {
    await stack.setSchedule('closed');
    await page.click('#look');
    await page.waitForSelector('#state[data-state="refused"]', { timeout: 10_000 });
    expect(await page.textContent('#reason')).toBe(refusalText['outside-window']);
    expect(stack.gpio.events.filter((event) => event.led === 'viewing')).toEqual([]);
  });

  it('shows decoded video of the camera size inside a window, with the LED lit before the first packet', async () => {
    await stack.setSchedule('open');
    await page.click('#look');
    await page.waitForSelector('#state[data-state="streaming"]', { timeout: 10_000 });
    let video: InboundVideo | undefined;
    for (let waited = 0; waited < 8000; waited += 100) {
      video = await inboundVideo(page);
      if ((video?.framesDecoded ?? 0) > 0 && video?.frameWidth !== undefined) break;
      await sleep(100);
    }
    expect(video?.framesDecoded).toBeGreaterThan(0);
    expect([video?.frameWidth, video?.frameHeight]).toEqual([width, height]);
    const size = await page.evaluate(() => {
      const element = document.getElementById('video') as HTMLVideoElement;
      return [element.videoWidth, element.videoHeight];
    });
    expect(size).toEqual([width, height]);

    const sessionId = stack.service.supervisor.activeSessionId!;
    const firstPacketAtMs = stack.videos.get(sessionId)?.stats.firstForwardedAtMs;
    const ledOn = stack.gpio.events.find((event) => event.led === 'viewing' && event.on);
    expect(firstPacketAtMs).toBeDefined();
    expect(ledOn!.atMs).toBeLessThanOrEqual(firstPacketAtMs!);
  });

  it('loses the picture within a second of the privacy button, and the LED goes off no earlier than the last packet', async () => {
    const sessionId = stack.service.supervisor.activeSessionId!;
    expect(sessionId).toBeDefined();
    const before = (await inboundVideo(page))!.framesDecoded;
    const pressedAtMs = stack.now();
    await page.click('#privacy');
    await page.waitForSelector('#state[data-state="ended"]', { timeout: 1000 });
    const endedAfterMs = stack.now() - pressedAtMs;
    expect(await page.textContent('#reason')).toBe(endText['privacy-on']);
    expect(endedAfterMs).toBeLessThan(1000);
    // The page closed its connection: the video element has no stream left.
    expect(await page.evaluate(() => (document.getElementById('video') as HTMLVideoElement).srcObject)).toBe(
      null,
    );

    for (let waited = 0; !stack.finalStats.has(sessionId) && waited < 5000; waited += 20) await sleep(20);
    const stats = stack.finalStats.get(sessionId)!;
    const ledOff = stack.gpio.events.filter((event) => event.led === 'viewing' && !event.on).at(-1)!;
    expect(stats.packetsForwarded).toBeGreaterThan(0);
    expect(stats.lastForwardedAtMs!).toBeLessThanOrEqual(ledOff.atMs);
    expect(ledOff.atMs - pressedAtMs).toBeLessThan(1000);
    expect(stats.lastForwardedAtMs! - pressedAtMs).toBeLessThan(1000);
    expect(before).toBeGreaterThan(0);
    expect(stack.gpio.viewingLed.value).toBe(false);

    // Privacy stays on: a new look is refused with the reason the resident chose.
    await page.click('#look');
    await page.waitForSelector('#state[data-state="refused"]', { timeout: 10_000 });
    expect(await page.textContent('#reason')).toBe(refusalText['privacy-on']);
  });
});
