// A Raspberry Pi camera module (CSI, libcamera) end to end in headless Chromium: the device service with
// a `libcamera` source runs the stand-in rpicam-vid (test/video/fixtures/rpicam-vid: it checks its
// arguments and emits real H.264 from ffmpeg), forwards that H.264 unchanged in a full view and
// re-encodes it for a low-resolution one, and the browser decodes frames of the expected size.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../device/log/index.js';
import { type Broker, startBroker } from '../../scripts/devstack/broker.js';
import { chromiumLaunchOptions } from '../../scripts/devstack/chromium.js';
import { type LookStack, startLookStack } from '../../scripts/devstack/look-stack.js';
import { endText } from '../../scripts/devstack/viewer-server.js';
import { isAlive, sleep } from '../support/process.js';

const width = 640;
const height = 360;
const standIn = join(import.meta.dirname, '../video/fixtures/rpicam-vid');

async function decoded(
  page: Page,
): Promise<{ frames: number; width: number | undefined; height: number | undefined }> {
  for (let waited = 0; ; waited += 100) {
    const video = await page.evaluate(async () => {
      const pc = (window as unknown as { tkViewer: { pc?: RTCPeerConnection } }).tkViewer.pc;
      if (!pc) return undefined;
      let found: { frames: number; width: number | undefined; height: number | undefined } | undefined;
      (await pc.getStats()).forEach((report) => {
        if (report.type === 'inbound-rtp' && report.kind === 'video')
          found = { frames: report.framesDecoded ?? 0, width: report.frameWidth, height: report.frameHeight };
      });
      return found;
    });
    if ((video && video.frames > 0 && video.width !== undefined) || waited > 8000)
      return video ?? { frames: 0, width: undefined, height: undefined };
    await sleep(100);
  }
}

describe('a libcamera camera in headless Chromium', () => {
  let broker: Broker;
  let stack: LookStack;
  let context: BrowserContext;
  let page: Page;
  let dir: string;
  let argsLog: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tk-libcamera-'));
    argsLog = join(dir, 'rpicam-args');
    // The media process inherits the environment: the stand-in logs how it was started.
    process.env.RPICAM_STANDIN_ARGS = argsLog;
    broker = await startBroker({ websockets: true, plain: true });
    stack = await startLookStack({
      brokerUrl: broker.plainUrl!,
      page: { brokerUrl: broker.wsUrl!, ...broker.wsCredentials('console-1') },
      log: silentLogger(),
      loopbackOnly: true,
      camera: { width, height, fps: 15 },
      source: { kind: 'libcamera', rpicamPath: standIn, camera: 0 },
    });
    context = await chromium.launchPersistentContext(join(dir, 'profile'), chromiumLaunchOptions());
    page = await context.newPage();
    await page.goto(stack.server!.url);
    await page.waitForSelector('body[data-ready="true"]', { timeout: 10_000 });
  });

  afterAll(async () => {
    delete process.env.RPICAM_STANDIN_ARGS;
    const pids = [...(stack?.videos.values() ?? [])].flatMap((view) => [view.childPid, view.encoderPid ?? 0]);
    await context?.close();
    await stack?.stop();
    await broker?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
    expect(pids.filter((pid) => pid > 0 && isAlive(pid))).toEqual([]);
  });

  async function look(): Promise<void> {
    await page.click('#look');
    await page.waitForSelector('#state[data-state="streaming"]', { timeout: 15_000 });
  }

  async function hangUp(): Promise<void> {
    await page.click('#hangup');
    await page.waitForSelector('#state[data-state="ended"]', { timeout: 10_000 });
    expect(await page.textContent('#reason')).toBe(endText['operator-hangup']);
  }

  it("decodes the camera's own H.264 in a full view, started by rpicam-vid with the right arguments", async () => {
    await stack.setSchedule('open');
    await look();
    const video = await decoded(page);
    expect(video.frames).toBeGreaterThan(0);
    expect([video.width, video.height]).toEqual([width, height]);
    const args = readFileSync(argsLog, 'utf8');
    expect(args).toContain('--codec h264 --profile baseline --inline --intra 15 --framerate 15');
    expect(args).toContain(`--width ${width} --height ${height}`);
    await hangUp();
  });

  it('decodes a low-resolution view, re-encoded from the camera stream at 320 wide', async () => {
    await stack.setSchedule('low-resolution');
    await look();
    const video = await decoded(page);
    expect(video.frames).toBeGreaterThan(0);
    expect([video.width, video.height]).toEqual([320, 180]);
    await hangUp();
  });
});
