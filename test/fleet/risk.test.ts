// The at-risk rule with fixed instants in Europe/Stockholm, daylight-saving changes included.
import { describe, expect, it } from 'vitest';
import {
  assessRisk,
  compareRisk,
  defaultRiskOptions,
  formatTimeLeft,
  nextWindow,
  problems,
} from '../../fleet/risk/index.js';
import { type DeviceState, emptyDevice } from '../../fleet/state/index.js';

const at = (iso: string) => Date.parse(iso);
// 21:00 UTC is 22:00 in Stockholm in winter (CET), 23:00 in summer (CEST).
const now = at('2026-03-10T15:00:00Z');

function healthy(overrides: Partial<DeviceState> = {}): DeviceState {
  return {
    ...emptyDevice('kam-0001'),
    state: 'online',
    sinceMs: now - 3600_000,
    connection: 3,
    healthAtMs: now - 30_000,
    privacyOn: false,
    scheduleVersion: 7,
    nextWindowAt: '2026-03-10T21:00:00.000Z',
    lastKnownWindowAt: '2026-03-10T21:00:00.000Z',
    ...overrides,
  };
}

describe('assessRisk', () => {
  it('finds a healthy device with a window coming up not at risk', () => {
    const risk = assessRisk(healthy(), now);
    expect(risk).toEqual({
      atRisk: false,
      reasons: [],
      windowAt: '2026-03-10T21:00:00.000Z',
      windowEstimated: false,
      timeLeftMs: 6 * 3600_000,
    });
  });

  it('puts an offline device with a window in 6 h at risk, with the time left', () => {
    const risk = assessRisk(healthy({ state: 'offline' }), now);
    expect(risk.atRisk).toBe(true);
    expect(risk.reasons).toEqual(['offline']);
    expect(risk.timeLeftMs).toBe(6 * 3600_000);
  });

  it('puts a device with privacy on at risk', () => {
    expect(assessRisk(healthy({ privacyOn: true }), now).reasons).toEqual(['privacy-on']);
  });

  it.each(['camera', 'clock', 'led'] as const)('puts a device with a %s fault at risk', (kind) => {
    const risk = assessRisk(healthy({ faults: { [kind]: { active: true, atMs: now } } }), now);
    expect(risk.atRisk).toBe(true);
    expect(risk.reasons).toEqual([kind]);
  });

  it('does not count faults that still allow look-ins (disk, throttled) or cleared ones', () => {
    const faults = {
      disk: { active: true, atMs: now },
      throttled: { active: true, atMs: now },
      camera: { active: false, atMs: now },
    };
    expect(assessRisk(healthy({ faults }), now).atRisk).toBe(false);
  });

  it('puts an online device without a schedule at risk, keeping the last window it knew', () => {
    const risk = assessRisk(healthy({ scheduleVersion: undefined, nextWindowAt: undefined }), now);
    expect(risk.reasons).toEqual(['no-schedule']);
    expect(risk.atRisk).toBe(true);
    expect(risk.windowAt).toBe('2026-03-10T21:00:00.000Z');
  });

  it('treats an online device silent for more than 3 minutes as unable to serve', () => {
    const risk = assessRisk(healthy({ healthAtMs: now - 181_000 }), now);
    expect(risk.reasons).toEqual(['silent']);
    expect(assessRisk(healthy({ healthAtMs: now - 180_000 }), now).atRisk).toBe(false);
  });

  it('is not at risk while the window is further away than the horizon', () => {
    const device = healthy({ state: 'offline', nextWindowAt: '2026-03-11T03:00:01.000Z' });
    expect(assessRisk(device, now).atRisk).toBe(false);
    expect(assessRisk(device, now + 1000).atRisk).toBe(true);
    expect(assessRisk(device, now, { ...defaultRiskOptions, horizonMs: 24 * 3600_000 }).atRisk).toBe(true);
  });

  it('reports an open window as 0 ms left', () => {
    const device = healthy({ privacyOn: true, nextWindowAt: '2026-03-10T14:00:00.000Z' });
    const risk = assessRisk(device, now);
    expect(risk.timeLeftMs).toBe(0);
    expect(risk.windowEstimated).toBe(false);
  });

  it('lists every reason in a fixed order', () => {
    const device = healthy({
      state: 'offline',
      privacyOn: true,
      scheduleVersion: undefined,
      nextWindowAt: undefined,
      faults: { led: { active: true, atMs: now }, camera: { active: true, atMs: now } },
    });
    expect(problems(device, now)).toEqual(['offline', 'privacy-on', 'camera', 'led', 'no-schedule']);
  });

  it('counts a device with a problem and no known window as at risk, without a time', () => {
    const risk = assessRisk({ ...emptyDevice('kam-0002'), state: 'offline' }, now);
    expect(risk).toMatchObject({
      atRisk: true,
      reasons: ['offline'],
      windowAt: undefined,
      timeLeftMs: undefined,
    });
  });

  it('does not call a device that never reported "no schedule"', () => {
    const device = { ...emptyDevice('kam-0002'), state: 'online' as const, sinceMs: now - 600_000 };
    expect(problems(device, now)).toEqual(['silent']);
  });

  it('gives a device that just came online time for its first health report', () => {
    const device = { ...emptyDevice('kam-0002'), state: 'online' as const, sinceMs: now - 10_000 };
    expect(problems(device, now)).toEqual([]);
  });
});

describe('nextWindow', () => {
  it('keeps a window that began less than the grace ago (it may still be open)', () => {
    const device = healthy({ state: 'offline', nextWindowAt: '2026-03-10T21:00:00.000Z' });
    expect(nextWindow(device, at('2026-03-11T06:59:00Z'))).toEqual({
      atMs: at('2026-03-10T21:00:00Z'),
      estimated: false,
    });
  });

  it('rolls a passed window of an offline device forward one local day', () => {
    const device = healthy({ state: 'offline', nextWindowAt: '2026-03-10T21:00:00.000Z' });
    expect(nextWindow(device, at('2026-03-11T12:00:00Z'))).toEqual({
      atMs: at('2026-03-11T21:00:00Z'),
      estimated: true,
    });
  });

  it('rolls over many days after a long outage (the camera off for three months)', () => {
    const device = healthy({ state: 'offline', nextWindowAt: '2026-01-10T21:00:00.000Z' });
    // The wall-clock time is kept: 22:00 CET in January, 22:00 CEST (20:00 UTC) in April.
    expect(nextWindow(device, at('2026-04-10T12:00:00Z'))?.atMs).toBe(at('2026-04-10T20:00:00Z'));
  });

  it('keeps 22:00 local across the spring change (29 March 2026, CET → CEST)', () => {
    const device = healthy({ state: 'offline', nextWindowAt: '2026-03-28T21:00:00.000Z' });
    const window = nextWindow(device, at('2026-03-29T12:00:00Z'));
    expect(window).toEqual({ atMs: at('2026-03-29T20:00:00Z'), estimated: true });
    expect(assessRisk(device, at('2026-03-29T12:00:00Z')).timeLeftMs).toBe(8 * 3600_000);
  });

  it('keeps 22:00 local across the autumn change (25 October 2026, CEST → CET)', () => {
    const device = healthy({ state: 'offline', nextWindowAt: '2026-10-24T20:00:00.000Z' });
    expect(nextWindow(device, at('2026-10-25T12:00:00Z'))?.atMs).toBe(at('2026-10-25T21:00:00Z'));
  });

  it('keeps an early-morning window at 02:30 local on the night the clocks go forward', () => {
    // 02:30 does not exist on 29 March; Luxon moves it to 03:30 CEST (01:30 UTC), the same instant as 02:30 CET.
    const device = healthy({ state: 'offline', nextWindowAt: '2026-03-28T01:30:00.000Z' });
    expect(nextWindow(device, at('2026-03-28T20:00:00Z'))?.atMs).toBe(at('2026-03-29T01:30:00Z'));
  });

  it('trusts a fresh report of an open window however long ago it began', () => {
    const device = healthy({ nextWindowAt: '2026-03-10T03:00:00.000Z' });
    expect(nextWindow(device, now)).toEqual({ atMs: at('2026-03-10T03:00:00Z'), estimated: false });
  });
});

describe('compareRisk and formatTimeLeft', () => {
  it('orders by time left, open windows first and unknown windows last', () => {
    const rows = [
      {
        deviceId: 'c',
        risk: assessRisk(
          healthy({ state: 'offline', nextWindowAt: undefined, lastKnownWindowAt: undefined }),
          now,
        ),
      },
      { deviceId: 'b', risk: assessRisk(healthy({ state: 'offline' }), now) },
      {
        deviceId: 'a',
        risk: assessRisk(healthy({ state: 'offline', nextWindowAt: '2026-03-10T14:30:00.000Z' }), now),
      },
    ];
    expect(rows.sort(compareRisk).map((row) => row.deviceId)).toEqual(['a', 'b', 'c']);
  });

  it('writes the time left for people', () => {
    expect(formatTimeLeft(0)).toBe('now');
    expect(formatTimeLeft(61_000)).toBe('2 min');
    expect(formatTimeLeft(3 * 3600_000 + 5 * 60_000)).toBe('3 h 05 min');
    expect(formatTimeLeft(undefined)).toBe('unknown');
  });
});
