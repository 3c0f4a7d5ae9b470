// Alerts at fixed instants: the text, the episode key, and one alert per episode across restarts.
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { type Alert, Alerter, alertKey, alertText } from '../../fleet/alerts/index.js';
import { type Database, FleetStore, type Incoming, migrate, openDatabase } from '../../fleet/db/index.js';
import { parseFleetMessage } from '../../fleet/protocol.js';
import { defaultRiskOptions, type Risk } from '../../fleet/risk/index.js';
import { FleetCache } from '../../fleet/view/index.js';

const risk = (overrides: Partial<Risk>): Risk => ({
  atRisk: true,
  reasons: ['camera'],
  windowAt: '2026-03-10T21:00:00.000Z',
  windowEstimated: false,
  timeLeftMs: 6 * 3600_000 + 58 * 60_000,
  ...overrides,
});

describe('alertText', () => {
  it('says what is wrong, when the check-in is in local time, the time left, and to send a person', () => {
    expect(alertText('kam-0042', risk({}), 'Europe/Stockholm')).toBe(
      'kam-0042: camera fault; check-in at 2026-03-10 22:00 in 6 h 58 min. Send a person.',
    );
  });

  it('uses summer time in summer', () => {
    const summer = risk({
      reasons: ['offline', 'privacy-on'],
      windowAt: '2026-07-10T20:00:00.000Z',
      timeLeftMs: 5 * 60_000,
    });
    expect(alertText('kam-0042', summer, 'Europe/Stockholm')).toBe(
      'kam-0042: offline, privacy on; check-in at 2026-07-10 22:00 in 5 min. Send a person.',
    );
  });

  it('says when the window is open now or unknown', () => {
    expect(alertText('kam-0001', risk({ timeLeftMs: 0 }), 'Europe/Stockholm')).toContain(
      'check-in window open now',
    );
    expect(
      alertText('kam-0001', risk({ windowAt: undefined, timeLeftMs: undefined }), 'Europe/Stockholm'),
    ).toContain('next check-in time unknown');
  });
});

describe('alertKey', () => {
  it('is one key per window and set of reasons', () => {
    expect(alertKey(risk({}))).toBe(alertKey(risk({ timeLeftMs: 1000 })));
    expect(alertKey(risk({}))).not.toBe(alertKey(risk({ reasons: ['camera', 'clock'] })));
    expect(alertKey(risk({}))).not.toBe(alertKey(risk({ windowAt: '2026-03-11T21:00:00.000Z' })));
  });
});

describe('Alerter', () => {
  const t0 = Date.parse('2026-03-10T15:00:00Z');
  const log = pino({ level: 'silent' });
  const msg = (topicName: string, payload: object): Incoming => {
    const parsed = parseFleetMessage(`tk/kam-0042/${topicName}`, JSON.stringify(payload));
    if (!parsed.ok) throw new Error(parsed.reason);
    return { message: parsed.message, receivedAtMs: t0, retained: false };
  };
  const health = (faults: string[]) =>
    msg('health', {
      schemaVersion: 1,
      uptimeS: 5,
      load1: 0,
      memFreeMB: 1,
      diskFreeMB: 1,
      privacyOn: false,
      scheduleVersion: 7,
      nextWindowAt: '2026-03-10T21:00:00.000Z',
      ...(faults.length ? { faults } : {}),
    });
  const online = msg('status', {
    schemaVersion: 1,
    state: 'online',
    connection: 1,
    at: '2026-03-10T14:00:00.000Z',
  });

  async function setup(db: Database) {
    const store = new FleetStore(db);
    const cache = new FleetCache(
      { store, clock: () => t0, log },
      { pollIntervalMs: 60_000, pollOverlapMs: 0 },
    );
    await cache.start();
    const alerter = new Alerter(
      {
        webhookUrl: undefined,
        evaluateIntervalMs: 60_000,
        webhookTimeoutMs: 100,
        webhookAttempts: 1,
        risk: defaultRiskOptions,
      },
      { store, cache, clock: () => t0, log },
    );
    const alerts: Alert[] = [];
    alerter.on('alert', (alert) => alerts.push(alert));
    const apply = async (item: Incoming) => cache.update((await store.applyBatch([item], t0)).changed);
    const settle = async () => {
      alerter.evaluate();
      await alerter.stop();
    };
    return { store, cache, alerter, alerts, apply, settle };
  }

  it('alerts once per episode, and again for the same episode after a restart in between', async () => {
    const db = openDatabase(':memory:');
    await migrate(db);
    try {
      const first = await setup(db);
      await first.apply(online);
      await first.apply(health(['camera']));
      await first.alerter.start();
      await first.settle();
      expect(first.alerts.map((alert) => alert.text)).toEqual([
        'kam-0042: camera fault; check-in at 2026-03-10 22:00 in 6 h 00 min. Send a person.',
      ]);
      first.cache.stop();

      // Restarted; the camera comes back, then is unplugged again before the same window.
      const second = await setup(db);
      await second.alerter.start();
      await second.apply(health([]));
      await second.settle();
      await second.apply(health(['camera']));
      await second.alerter.start();
      await second.settle();
      expect(second.alerts).toHaveLength(1);
      expect((await second.store.recentAlerts(10)).length).toBe(2);
      second.cache.stop();
    } finally {
      await db.close();
    }
  });
});
