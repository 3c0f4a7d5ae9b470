// Fleet simulator: N devices' MQTT clients (mTLS, each its own certificate) against a real mosquitto,
// each with a will, a retained `online`, health and audit records, while one operations view
// (FleetView, what scripts/fleet-status runs) reads the whole tree as `ops`. Health is sent every
// second here, 60 times the default rate, so N simulated devices load the broker and the view like
// 60·N real ones. Prints, per fleet size: connect time, messages per second through the broker, the
// publish-to-ops delay (p50/p99), and lost messages; then the delay from a device dropping to ops
// seeing it offline, for a socket that closes (the kernel sends FIN: immediate) and for a silent loss
// (power cut of a router: bounded by the keep-alive, 1.5 × keepaliveS).
//
//   npx tsx scripts/bench/fleet.ts [N ...]     default: 100 300 600
// Figures only; it never fails on timing.
import { readFile } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { type HealthMessage, type StatusMessage, schemaVersion, topic } from '../../device/protocol/index.js';
import { startBroker } from '../devstack/broker.js';
import { FleetView } from '../fleet-status.js';

const sizes = process.argv
  .slice(2)
  .map(Number)
  .filter((n) => n > 0);
const fleetSizes = sizes.length > 0 ? sizes : [100, 300, 600];
const keepaliveS = 5;
const measureS = 8;

const broker = await startBroker();
const ca = await readFile(broker.pki.caCert);

async function optionsFor(identity: string): Promise<IClientOptions> {
  const files = await broker.pki.clientCert(identity);
  const [cert, key] = await Promise.all([readFile(files.cert), readFile(files.key)]);
  return { protocol: 'mqtts', host: '127.0.0.1', port: broker.port, ca, cert, key, rejectUnauthorized: true };
}

/** Runs `work` over `items` with at most `limit` at once. */
async function pool<T, R>(items: T[], limit: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) {
        const index = next++;
        results[index] = await work(items[index] as T);
      }
    }),
  );
  return results;
}

const status = (state: StatusMessage['state'], connection: number) =>
  JSON.stringify({ schemaVersion, state, connection, at: new Date().toISOString() } satisfies StatusMessage);

function healthPayload(uptimeS: number): string {
  return JSON.stringify({
    schemaVersion,
    uptimeS,
    cpuTempC: 48.3,
    load1: 0.42,
    memFreeMB: 1512,
    diskFreeMB: 11_890,
    wifiDbm: -61,
    privacyOn: false,
    scheduleVersion: 7,
    nextWindowAt: '2026-03-10T21:00:00Z',
    lastEndReason: 'operator-hangup',
    refusals: { 'outside-window': 3 },
  } satisfies HealthMessage);
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

// The operations view: one client, every device's topics, FleetView doing the work fleet-status does.
const view = new FleetView();
const sentAt = new Map<string, number>();
const delays: number[] = [];
let received = 0;
const ops = await mqtt.connectAsync({ ...(await optionsFor('ops')), reconnectPeriod: 0 });
ops.on('message', (topicName, payload, packet) => {
  const now = performance.now();
  view.apply(topicName, payload, Date.now(), packet.retain);
  if (topicName.endsWith('/health')) {
    received += 1;
    const sent = sentAt.get(topicName);
    if (sent !== undefined) delays.push(now - sent);
  }
});
await ops.subscribeAsync(['tk/+/status', 'tk/+/health', 'tk/+/info', 'tk/+/event'], { qos: 1 });

console.log(
  `one mosquitto 2.0 (TLS, ACL) and one fleet view, ${keepaliveS} s keep-alive, health every 1 s per device:`,
);
let devices: MqttClient[] = [];
for (const size of fleetSizes) {
  const ids = Array.from({ length: size }, (_, i) => `sim-${String(i).padStart(5, '0')}`);
  const options = await pool(ids, 8, optionsFor);
  const connectStarted = performance.now();
  devices = await pool(ids, 32, async (id) => {
    const index = ids.indexOf(id);
    const client = await mqtt.connectAsync({
      ...options[index],
      clientId: `tk-${id}`,
      keepalive: keepaliveS,
      reconnectPeriod: 0,
      will: { topic: topic(id, 'status'), payload: Buffer.from(status('offline', 1)), qos: 1, retain: true },
    });
    await client.publishAsync(topic(id, 'status'), status('online', 1), { qos: 1, retain: true });
    return client;
  });
  const connectS = (performance.now() - connectStarted) / 1000;

  delays.length = 0;
  received = 0;
  let sent = 0;
  let audits = 0;
  const usage = process.cpuUsage();
  const started = performance.now();
  const timers = devices.map((client, index) => {
    const id = ids[index] as string;
    const healthTopic = topic(id, 'health');
    let tick = 0;
    // Spread the devices over the second, as real ones are.
    return setTimeout(
      function send() {
        tick += 1;
        sentAt.set(healthTopic, performance.now());
        client.publish(healthTopic, healthPayload(tick), { qos: 0, retain: true });
        sent += 1;
        if (tick % 5 === 0) {
          audits += 1;
          client.publish(topic(id, 'audit'), JSON.stringify({ id: `${id}-${tick}`, kind: 'look' }), {
            qos: 1,
          });
        }
        timers[index] = setTimeout(send, 1000);
      },
      (index * 1000) / size,
    );
  });
  await delay(measureS * 1000);
  for (const timer of timers) clearTimeout(timer);
  await delay(500);
  const seconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(usage);
  console.log(
    `  ${String(size).padStart(5)} devices (≈${size * 60} at the default 60 s): connect ${connectS.toFixed(1)} s; ` +
      `${Math.round(sent / seconds)} health/s + ${Math.round(audits / seconds)} audit/s; ` +
      `ops got ${received}/${sent} (${(100 * (1 - received / sent)).toFixed(2)} % lost); ` +
      `publish→ops p50 ${percentile(delays, 50).toFixed(1)} ms, p99 ${percentile(delays, 99).toFixed(1)} ms; ` +
      `simulator+view CPU ${(((cpu.user + cpu.system) / 1e6 / seconds) * 100).toFixed(0)} %`,
  );
  if (size !== fleetSizes.at(-1)) {
    await Promise.all(devices.map((client) => client.endAsync(true)));
    devices = [];
  }
}
const rows = view.rows(Date.now());
console.log(`  fleet view tracks ${rows.length} devices, ${view.malformed} malformed messages`);

// Offline detection: how long from a device dropping to ops seeing it offline.
async function offlineDelay(id: string, drop: () => void): Promise<number> {
  const dropped = performance.now();
  drop();
  for (;;) {
    const row = view.rows(Date.now()).find((candidate) => candidate.device === id);
    if (row?.state === 'offline') return performance.now() - dropped;
    if (performance.now() - dropped > 4 * keepaliveS * 1000) return Number.NaN;
    await delay(5);
  }
}
const [closing, silent] = devices.slice(0, 2);
const closingId = 'sim-00000';
const silentId = 'sim-00001';
if (closing && silent) {
  const closedMs = await offlineDelay(closingId, () => closing.stream.destroy());
  // A silent loss: nothing more reaches the broker (no FIN, no PINGREQ), as when a router loses power.
  // It sends one last packet first, so the broker's keep-alive clock starts at the drop.
  await silent.publishAsync(topic(silentId, 'health'), healthPayload(0), { qos: 1, retain: true });
  const silentMs = await offlineDelay(silentId, () => {
    silent.stream.write = () => true;
  });
  console.log(
    `offline seen by ops: socket closed ${closedMs.toFixed(0)} ms; silent loss ${(silentMs / 1000).toFixed(1)} s ` +
      `with keep-alive ${keepaliveS} s (bound 1.5 × keep-alive = ${1.5 * keepaliveS} s; ≈ 45 s at the default 30 s)`,
  );
}
await Promise.all(devices.map((client) => client.endAsync(true)));
await ops.endAsync(true);
await broker.stop();
