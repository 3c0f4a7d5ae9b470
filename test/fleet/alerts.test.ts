// The alert's text and episode key, at fixed instants.
import { describe, expect, it } from 'vitest';
import { alertKey, alertText } from '../../fleet/alerts/index.js';
import type { Risk } from '../../fleet/risk/index.js';

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
