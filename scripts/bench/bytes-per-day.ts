// The byte budget: how much a device sends over MQTT in a day at default settings. A simulated day
// (manual clock) of the real HealthMonitor and collectHealth with realistic readings: health every
// 60 s, the quick check every 5 s, a camera unplugged for cleaning and back, privacy on and off at
// night, two reconnects (each: status, info, health), and the keep-alive PINGREQs that mqtt.js sends
// when nothing else went out for `keepaliveS`. Sizes are encoded MQTT 3.1.1 packets (publishPacketBytes);
// the "on the wire" estimate adds a TLS 1.3 record (22 bytes) per packet and TCP/IP headers
// (52 bytes) per packet and per ACK.
//
//   npx tsx scripts/bench/bytes-per-day.ts
import { fileURLToPath } from 'node:url';
import { collectHealth, HealthMonitor, type SystemReaders } from '../../device/health/index.js';
import { silentLogger } from '../../device/log/index.js';
import { publishPacketBytes } from '../../device/mqtt/index.js';
import {
  type InfoMessage,
  type StatusMessage,
  schemaVersion,
  topic,
  topicSpecs,
} from '../../device/protocol/index.js';
import { ManualClock } from '../devstack/manual-clock.js';

export interface DayFigures {
  /** Bytes of MQTT packets the device sends (PUBLISH, PINGREQ, PUBACK for nothing: no inbound QoS 1). */
  uplinkBytes: number;
  /** Bytes of MQTT packets the device receives (PUBACK, PINGRESP). */
  downlinkBytes: number;
  healthMessages: number;
  healthBytes: number;
  largestHealthBytes: number;
  pings: number;
  /** Estimate at IP level, both directions, with TLS 1.3 records and TCP/IP headers. */
  wireBytesEstimate: number;
  packets: number;
}

const deviceId = 'kam-0042';
const dayMs = 86_400_000;

const realisticReaders = (state: { camera: boolean }): SystemReaders => ({
  firmware: async () => '0.1.0',
  model: async () => 'Raspberry Pi 4 Model B Rev 1.5',
  os: async () => 'Debian GNU/Linux 12 (bookworm)',
  cpuTempC: async () => 48.3,
  throttled: async () => 0,
  load1: async () => 0.42,
  memFreeMB: async () => 1512,
  diskFreeMB: async () => 11_890,
  wifiDbm: async () => -61,
  cameraPresent: async () => state.camera,
  cameraModel: async () => 'USB 2.0 Camera: IR Camera',
  cameraFormats: async () => ['MJPG', 'YUYV'],
});

export async function simulateDay(
  options: { intervalS?: number; keepaliveS?: number } = {},
): Promise<DayFigures> {
  const intervalS = options.intervalS ?? 60;
  const keepaliveS = options.keepaliveS ?? 30;
  const start = Date.parse('2026-03-10T12:00:00Z');
  const clock = new ManualClock(start);
  const state = { camera: true, privacyOn: false, connected: true };
  const listeners: Array<() => void> = [];
  const figures: DayFigures = {
    uplinkBytes: 0,
    downlinkBytes: 0,
    healthMessages: 0,
    healthBytes: 0,
    largestHealthBytes: 0,
    pings: 0,
    wireBytesEstimate: 0,
    packets: 0,
  };
  let lastSentMs = start;
  const send = (bytes: number, acked: boolean) => {
    figures.uplinkBytes += bytes;
    figures.packets += 1;
    figures.wireBytesEstimate += bytes + 22 + 52 + 52; // record, segment, and the broker's ACK
    if (acked) {
      figures.downlinkBytes += 4;
      figures.wireBytesEstimate += 4 + 22 + 52 + 52;
    }
    lastSentMs = clock.now();
  };
  const publish = async (name: 'health' | 'info' | 'status', payload: object) => {
    const text = JSON.stringify(payload);
    const bytes = publishPacketBytes(topic(deviceId, name), text, topicSpecs[name].qos);
    if (name === 'health') {
      figures.healthMessages += 1;
      figures.healthBytes += bytes;
      figures.largestHealthBytes = Math.max(figures.largestHealthBytes, bytes);
    }
    send(bytes, topicSpecs[name].qos === 1);
  };
  const readers = realisticReaders(state);
  const monitor = new HealthMonitor({
    log: silentLogger(),
    timers: clock,
    now: clock.now,
    intervalS,
    checkIntervalS: 5,
    publish,
    connection: {
      get connected() {
        return state.connected;
      },
      on: (_event, listener) => listeners.push(listener),
      off: () => undefined,
    },
    collectHealth: (quick) =>
      collectHealth({
        readers,
        uptimeS: (clock.now() - start) / 1000,
        diskLowMB: 100,
        throttled: 0,
        skipCommands: quick,
        snapshot: {
          privacyOn: state.privacyOn,
          clockTrusted: true,
          ledFault: false,
          scheduleVersion: 7,
          nextWindowStartMs: Date.parse('2026-03-10T21:00:00Z'),
          lastEndReason: 'operator-hangup',
          refusals: { 'outside-window': 3, 'privacy-on': 1 },
          reconnects: 2,
          outboxDepth: 0,
          outboxFull: false,
          telemetryDropped: 0,
        },
      }),
    collectInfo: async (): Promise<InfoMessage> => ({
      schemaVersion,
      firmware: '0.1.0',
      node: 'v20.19.5',
      hardware: 'Raspberry Pi 4 Model B Rev 1.5',
      os: 'Debian GNU/Linux 12 (bookworm)',
      camera: { device: '/dev/video0', model: 'USB 2.0 Camera: IR Camera', formats: ['MJPG', 'YUYV'] },
      configHash: '5d1f0c8e2b7a9c34',
      at: new Date(clock.now()).toISOString(),
    }),
  });
  const connect = async (connection: number) => {
    const status: StatusMessage = {
      schemaVersion,
      state: 'online',
      connection,
      at: new Date(clock.now()).toISOString(),
    };
    await publish('status', status);
    for (const listener of listeners) listener();
  };
  monitor.start();
  await connect(1);
  const settle = async () => {
    for (let i = 0; i < 10; i += 1) await new Promise<void>((resolve) => setImmediate(resolve));
  };
  // Timeline of the day, in seconds from noon: [at, what happens].
  const happenings: Array<[number, () => Promise<void> | void]> = [
    [
      3 * 3600,
      () => {
        state.camera = false;
      },
    ], // unplugged for cleaning
    [
      3 * 3600 + 600,
      () => {
        state.camera = true;
      },
    ],
    [
      10 * 3600,
      () => {
        state.privacyOn = true;
      },
    ], // resident presses the button at 22:00
    [
      11 * 3600,
      () => {
        state.privacyOn = false;
      },
    ],
    [6 * 3600, () => connect(2)],
    [18 * 3600, () => connect(3)],
  ];
  happenings.sort((a, b) => a[0] - b[0]);
  const stepMs = 1000;
  let next = 0;
  for (let elapsedMs = 0; elapsedMs < dayMs; elapsedMs += stepMs) {
    clock.advance(stepMs);
    while (next < happenings.length && (happenings[next]?.[0] ?? Infinity) * 1000 <= elapsedMs) {
      await happenings[next]?.[1]();
      monitor.notify();
      next += 1;
    }
    await settle();
    // mqtt.js sends PINGREQ when nothing went out for keepaliveS (it reschedules pings on every send).
    if (clock.now() - lastSentMs >= keepaliveS * 1000) {
      figures.pings += 1;
      figures.uplinkBytes += 2;
      figures.downlinkBytes += 2;
      figures.wireBytesEstimate += 2 * (2 + 22 + 52) + 2 * 52;
      figures.packets += 1;
      lastSentMs = clock.now();
    }
  }
  await monitor.stop();
  return figures;
}

function kb(bytes: number): string {
  return `${(bytes / 1000).toFixed(1)} KB`;
}

async function main(): Promise<void> {
  const day = await simulateDay();
  console.log('bytes per day at default settings (health 60 s, keep-alive 30 s), simulated day:');
  console.log(`  MQTT uplink   ${kb(day.uplinkBytes)}  (target < 500 KB)`);
  console.log(`  MQTT downlink ${kb(day.downlinkBytes)}`);
  console.log(
    `  health: ${day.healthMessages} messages, ${kb(day.healthBytes)}, largest ${day.largestHealthBytes} B per packet`,
  );
  console.log(`  keep-alive pings: ${day.pings}`);
  console.log(`  on the wire, both directions, TLS 1.3 + TCP/IP estimate: ${kb(day.wireBytesEstimate)}`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await main();
}
