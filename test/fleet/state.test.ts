// The fleet's reducer: device messages folded into plain state, in any order, with history entries.
import { describe, expect, it } from 'vitest';
import { type FleetMessage, parseFleetMessage } from '../../fleet/protocol.js';
import { activeFaults, applyMessage, type DeviceState, emptyDevice } from '../../fleet/state/index.js';

const t0 = Date.parse('2026-03-10T20:00:00Z');

function message(topic: string, payload: object): FleetMessage {
  const parsed = parseFleetMessage(`tk/kam-0001/${topic}`, JSON.stringify(payload));
  if (!parsed.ok) throw new Error(`test message did not parse: ${parsed.reason}`);
  return parsed.message;
}

const status = (state: 'online' | 'offline', connection: number, at = '2026-03-10T19:00:00.000Z') =>
  message('status', { schemaVersion: 1, state, connection, at });
const health = (extra: object = {}) =>
  message('health', {
    schemaVersion: 1,
    uptimeS: 100,
    load1: 0.1,
    memFreeMB: 500,
    diskFreeMB: 9000,
    privacyOn: false,
    scheduleVersion: 7,
    nextWindowAt: '2026-03-10T21:00:00Z',
    ...extra,
  });
const fault = (active: boolean, at: string, id = `f-${at}-${active}`) =>
  message('event', { id, schemaVersion: 1, type: 'fault', fault: 'camera', active, at });

function fold(steps: [FleetMessage, number, boolean?][]): { state: DeviceState; kinds: string[] } {
  let state = emptyDevice('kam-0001');
  const kinds: string[] = [];
  for (const [msg, receivedAtMs, retained] of steps) {
    const applied = applyMessage(state, msg, { receivedAtMs, retained: retained ?? false });
    state = applied.state;
    kinds.push(...applied.history.map((entry) => entry.kind));
  }
  return { state, kinds };
}

describe('applyMessage', () => {
  it('takes a retained online with the time the device stamped', () => {
    const { state, kinds } = fold([[status('online', 3), t0, true]]);
    expect(state).toMatchObject({
      state: 'online',
      connection: 3,
      sinceMs: Date.parse('2026-03-10T19:00:00Z'),
    });
    expect(kinds).toEqual(['online']);
  });

  it('dates a live will by its arrival, not by its connection time', () => {
    const { state } = fold([
      [status('online', 3), t0, true],
      [status('offline', 3), t0 + 5000],
    ]);
    expect(state).toMatchObject({ state: 'offline', sinceMs: t0 + 5000 });
  });

  it('ignores a stale will from an older connection, in whichever order they arrive', () => {
    expect(
      fold([
        [status('online', 5), t0],
        [status('offline', 4), t0 + 1000],
      ]).state.state,
    ).toBe('online');
    expect(
      fold([
        [status('offline', 4), t0],
        [status('online', 5), t0 + 1000],
      ]).state.state,
    ).toBe('online');
  });

  it('takes an offline after the online of the same connection even when applied first elsewhere', () => {
    // Two instances: the will is applied, then the (older) online arrives late.
    const { state } = fold([
      [status('offline', 5), t0 + 1000],
      [status('online', 5), t0],
    ]);
    expect(state.state).toBe('offline');
  });

  it('accepts a fresh online from a device whose counter was reset', () => {
    const { state } = fold([
      [status('online', 40, '2026-03-10T19:00:00.000Z'), t0],
      [status('offline', 40), t0 + 1000],
      [status('online', 1, '2026-03-10T20:05:00.000Z'), t0 + 300_000],
    ]);
    expect(state).toMatchObject({ state: 'online', connection: 1 });
  });

  it('takes faults, privacy and the window from health, and records fault changes once', () => {
    const { state, kinds } = fold([
      [health(), t0],
      [health({ faults: ['camera'] }), t0 + 60_000],
      [health({ faults: ['camera'] }), t0 + 120_000],
      [health(), t0 + 180_000],
    ]);
    expect(activeFaults(state)).toEqual([]);
    expect(state).toMatchObject({
      privacyOn: false,
      scheduleVersion: 7,
      nextWindowAt: '2026-03-10T21:00:00Z',
    });
    expect(kinds).toEqual(['fault-on', 'fault-off']);
  });

  it('keeps the last known window when the schedule goes away', () => {
    const { state } = fold([
      [health(), t0],
      [health({ scheduleVersion: undefined, nextWindowAt: undefined }), t0 + 60_000],
    ]);
    expect(state.nextWindowAt).toBeUndefined();
    expect(state.lastKnownWindowAt).toBe('2026-03-10T21:00:00Z');
  });

  it('lets the newer of a fault event and a health report win, in either order', () => {
    const on = fault(true, '2026-03-10T20:00:10.000Z');
    const healthClear = health();
    const a = fold([
      [healthClear, t0],
      [on, t0 + 10_500],
    ]).state;
    const b = fold([
      [on, t0 + 10_500],
      [healthClear, t0],
    ]).state;
    expect(activeFaults(a)).toEqual(['camera']);
    expect(activeFaults(b)).toEqual(['camera']);
  });

  it('does not let a future-stamped event (unsynchronised clock) outrank later reports', () => {
    const { state } = fold([
      [fault(true, '2030-01-01T00:00:00.000Z'), t0],
      [health(), t0 + 60_000],
    ]);
    expect(activeFaults(state)).toEqual([]);
  });

  it('turns privacy on from an event and records it', () => {
    const { state, kinds } = fold([
      [health(), t0],
      [
        message('event', {
          id: 'p1',
          schemaVersion: 1,
          type: 'privacy',
          privacyOn: true,
          source: 'button',
          at: '2026-03-10T20:01:00.000Z',
        }),
        t0 + 60_500,
      ],
    ]);
    expect(state.privacyOn).toBe(true);
    expect(kinds).toEqual(['privacy-on']);
  });

  it('records looks and refusals from audit records, with the last look', () => {
    const granted = message('audit', {
      schemaVersion: 1,
      id: '3f6c2a1e-8b4d-4c7a-9e21-5d0f7b6a9c13',
      at: '2026-03-10T22:15:02.118Z',
      deviceId: 'kam-0001',
      kind: 'request',
      requestId: 'r1',
      sessionId: 's1',
      operatorId: 'op-anna',
      decision: 'granted',
    });
    const refused = message('audit', {
      schemaVersion: 1,
      id: 'b7e0d9c4-1f2a-4b3c-8d5e-6f708192a3b4',
      at: '2026-03-10T23:40:11.502Z',
      deviceId: 'kam-0001',
      kind: 'request',
      requestId: 'r2',
      decision: 'refused',
      reason: 'privacy-on',
    });
    const { state, kinds } = fold([
      [granted, t0],
      [refused, t0],
    ]);
    expect(state.lastLookAtMs).toBe(Date.parse('2026-03-10T22:15:02.118Z'));
    expect(kinds).toEqual(['look', 'refusal']);
  });

  it('gives the same history ids when a message is applied twice', () => {
    const on = fault(true, '2026-03-10T20:00:10.000Z', 'ev-1');
    const first = applyMessage(emptyDevice('kam-0001'), on, { receivedAtMs: t0 + 20_000, retained: false });
    const again = applyMessage(emptyDevice('kam-0001'), on, { receivedAtMs: t0 + 20_005, retained: false });
    expect(again.history.map((h) => h.id)).toEqual(first.history.map((h) => h.id));
    expect(applyMessage(first.state, on, { receivedAtMs: t0 + 20_005, retained: false }).changed).toBe(false);
  });

  it('does not refresh the health time for a retained report it already has', () => {
    const first = applyMessage(emptyDevice('kam-0001'), health(), {
      receivedAtMs: t0,
      retained: false,
      digest: 'd1',
    });
    const replay = applyMessage(first.state, health(), {
      receivedAtMs: t0 + 600_000,
      retained: true,
      digest: 'd1',
    });
    expect(replay.state.healthAtMs).toBe(t0);
  });
});
