// The health monitor on a manual clock: info and health at connect, health every interval, and at once
// (within the check interval, not at the next tick) when something that matters changes.
import { EventEmitter } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { HealthMonitor } from '../../device/health/index.js';
import { silentLogger } from '../../device/log/index.js';
import { type HealthFault, type HealthMessage, schemaVersion } from '../../device/protocol/index.js';
import { ManualClock } from '../../scripts/devstack/manual-clock.js';

const startMs = Date.parse('2026-03-10T20:00:00Z');

function setup() {
  const clock = new ManualClock(startMs);
  const connection = Object.assign(new EventEmitter<{ connected: [] }>(), { connected: false });
  const state = { camera: true, privacyOn: false };
  const sent: Array<{ name: string; atMs: number; payload: HealthMessage | object }> = [];
  const faultChanges: Array<[HealthFault, boolean]> = [];
  const monitor = new HealthMonitor({
    log: silentLogger(),
    timers: clock,
    now: clock.now,
    intervalS: 60,
    checkIntervalS: 5,
    publish: async (name, payload) => {
      sent.push({ name, atMs: clock.now(), payload });
    },
    connection,
    collectHealth: async () => ({
      schemaVersion,
      uptimeS: (clock.now() - startMs) / 1000,
      load1: 0.1,
      memFreeMB: 500,
      diskFreeMB: 9000,
      privacyOn: state.privacyOn,
      ...(state.camera ? {} : { faults: ['camera' as const] }),
    }),
    collectInfo: async () => ({
      schemaVersion,
      firmware: '0.1.0',
      node: 'v20',
      camera: {},
      configHash: '0123456789abcdef',
      at: new Date(clock.now()).toISOString(),
    }),
    onFaultChange: (fault, active) => faultChanges.push([fault, active]),
  });
  monitors.push(monitor);
  const connect = () => {
    connection.connected = true;
    connection.emit('connected');
  };
  return { clock, connect, state, sent, faultChanges, monitor };
}

const monitors: HealthMonitor[] = [];
afterEach(async () => {
  for (const monitor of monitors.splice(0)) await monitor.stop();
});

async function settle(): Promise<void> {
  for (let i = 0; i < 20; i += 1) await new Promise<void>((resolve) => setImmediate(resolve));
}

async function advance(clock: ManualClock, ms: number): Promise<void> {
  for (let elapsed = 0; elapsed < ms; elapsed += 1000) {
    clock.advance(Math.min(1000, ms - elapsed));
    await settle();
  }
}

describe('HealthMonitor', () => {
  it('publishes info and health at every connect', async () => {
    const { connect, sent, monitor } = setup();
    monitor.start();
    connect();
    await settle();
    expect(sent.map((s) => s.name).sort()).toEqual(['health', 'info']);
    connect();
    await settle();
    expect(sent.filter((s) => s.name === 'info')).toHaveLength(2);
  });

  it('publishes health every interval and nothing in between while nothing changes', async () => {
    const { clock, connect, sent, monitor } = setup();
    monitor.start();
    connect();
    await settle();
    sent.length = 0;
    await advance(clock, 180_000);
    expect(sent.map((s) => [s.name, s.atMs - startMs])).toEqual([
      ['health', 60_000],
      ['health', 120_000],
      ['health', 180_000],
    ]);
  });

  it('reports a lost camera within the check interval and says the fault changed', async () => {
    const { clock, connect, sent, state, faultChanges, monitor } = setup();
    monitor.start();
    connect();
    await advance(clock, 11_000);
    sent.length = 0;
    state.camera = false;
    await advance(clock, 5_000);
    expect(sent).toHaveLength(1);
    expect(sent[0]?.atMs).toBeLessThanOrEqual(startMs + 16_000);
    expect((sent[0]?.payload as HealthMessage | undefined)?.faults).toEqual(['camera']);
    state.camera = true;
    await advance(clock, 5_000);
    expect(faultChanges).toEqual([
      ['camera', true],
      ['camera', false],
    ]);
  });

  it('reports a privacy toggle at once when notified', async () => {
    const { clock, connect, sent, state, monitor } = setup();
    monitor.start();
    connect();
    await advance(clock, 2_000);
    sent.length = 0;
    state.privacyOn = true;
    monitor.notify();
    await settle();
    expect(sent.map((s) => (s.payload as HealthMessage).privacyOn)).toEqual([true]);
  });

  it('coalesces a burst of changes into reports at least a second apart', async () => {
    const { clock, connect, sent, state, monitor } = setup();
    monitor.start();
    connect();
    await advance(clock, 2_000);
    sent.length = 0;
    for (let press = 0; press < 5; press += 1) {
      state.privacyOn = !state.privacyOn;
      monitor.notify();
      await settle();
      clock.advance(100);
    }
    await advance(clock, 2_000);
    const gaps = sent.slice(1).map((s, i) => s.atMs - (sent[i]?.atMs ?? 0));
    expect(sent.length).toBeLessThanOrEqual(2);
    expect(gaps.every((gap) => gap >= 1000)).toBe(true);
    expect((sent.at(-1)?.payload as HealthMessage | undefined)?.privacyOn).toBe(state.privacyOn);
  });

  it('leaves no timer behind when stopped', async () => {
    const { clock, connect, monitor } = setup();
    monitor.start();
    connect();
    await settle();
    await monitor.stop();
    await monitor.stop();
    expect(clock.pendingCount).toBe(0);
  });
});
