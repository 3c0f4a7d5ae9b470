// The operations page in headless Chromium: a device goes at risk while the page is open, and the page
// shows it (at-risk list, alert banner) without reloading; its history shows the fault.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { pino } from 'pino';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { topic } from '../../device/protocol/index.js';
import { type Fleet, startFleet } from '../../fleet/index.js';
import { type Broker, startBroker } from '../../scripts/devstack/broker.js';
import { chromiumLaunchOptions } from '../../scripts/devstack/chromium.js';
import { announce, connectDevice, faultEvent, healthPayload } from './support/devices.js';

let broker: Broker;
let fleet: Fleet;
let device: MqttClient;
let context: BrowserContext;
let page: Page;
const dir = mkdtempSync(join(tmpdir(), 'tk-fleet-page-'));
const windowAt = new Date(Date.now() + 3 * 3600_000).toISOString();

beforeAll(async () => {
  broker = await startBroker();
  device = await connectDevice('kam-0101', await broker.clientOptions('kam-0101'));
  await announce(device, 'kam-0101', healthPayload({ nextWindowAt: windowAt }));
  fleet = await startFleet(
    {
      instance: 'page',
      mqtt: await broker.clientOptions('ops'),
      database: join(dir, 'fleet.db'),
      http: { host: '127.0.0.1', port: 0 },
      retainedSyncMs: 500,
    },
    { log: pino({ level: 'silent' }) },
  );
  context = await chromium.launchPersistentContext(join(dir, 'profile'), chromiumLaunchOptions());
  page = await context.newPage();
  await page.goto(fleet.url);
});

afterAll(async () => {
  await context?.close();
  await fleet?.stop();
  await device?.endAsync(true);
  await broker?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('fleet page', () => {
  it('lists every device with its state, next window and firmware', async () => {
    const row = page.locator('#devices-body tr[data-device="kam-0101"]');
    await row.waitFor({ timeout: 10_000 });
    const cells = await row.locator('td').allTextContents();
    expect(cells[0]).toBe('kam-0101');
    expect(cells[1]).toBe('online');
    expect(cells[6]).not.toBe('-');
    expect(cells[7]).toBe('0.1.0');
    expect(await page.locator('#no-risk').isVisible()).toBe(true);
  });

  it('shows a device going at risk live, with the alert and the time left, without reloading', async () => {
    const marker = await page.evaluate(() => {
      (window as unknown as { loadedOnce: number }).loadedOnce = 42;
      return 42;
    });
    await device.publishAsync(topic('kam-0101', 'event'), faultEvent('camera', true), { qos: 1 });
    const risky = page.locator('#at-risk-body tr[data-device="kam-0101"]');
    await risky.waitFor({ timeout: 10_000 });
    const cells = await risky.locator('td').allTextContents();
    expect(cells[1]).toBe('camera');
    expect(cells[3]).toMatch(/^(2 h 5\d|3 h 00) min$/);
    await page.locator('#banner').waitFor({ state: 'visible', timeout: 10_000 });
    expect(await page.locator('#banner').textContent()).toMatch(
      /^kam-0101: camera fault; check-in at .* Send a person\.$/,
    );
    expect(await page.locator('#alerts li[data-device="kam-0101"]').count()).toBe(1);
    expect(await page.evaluate(() => (window as unknown as { loadedOnce?: number }).loadedOnce)).toBe(marker);
  });

  it('shows the device history as a timeline', async () => {
    await page.locator('#at-risk-body a', { hasText: 'kam-0101' }).click();
    await page.locator('#history-list li[data-kind="fault-on"]').waitFor({ timeout: 10_000 });
    expect(await page.locator('#timeline rect.online').count()).toBeGreaterThan(0);
    expect(await page.locator('#timeline circle.fault-on').count()).toBe(1);
  });
});
