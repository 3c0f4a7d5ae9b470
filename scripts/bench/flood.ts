// Floods, end to end through mosquitto and the device service (on loopback; the flooder runs in a
// process of its own, scripts/devstack/flood-process.ts, the device service in this one):
//   1. refused requests at 3,000 a second (a key the device does not hold, another device's grant)
//      for 20 s: the rate sent and the rate that reached the device, what the limits dropped, the
//      decision latency of legitimate requests sent during the flood, and the audit bytes written;
//      once with the shipped limits, once with the limits raised out of the way (10,000/s, burst
//      100,000) to show what the limits themselves buy;
//   2. a 250 MB message: through mosquitto (its max_packet_size refuses it) and from a broker that
//      forwards anything (the device's own packet guard), the device's RSS before and after; the
//      second once more with the guard off, which is what the device did before.
// Prints figures; never fails on timing.   npx tsx scripts/bench/flood.ts [--seconds N] [--rate N]
import { fork, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import mqtt from 'mqtt';
import mqttPacket from 'mqtt-packet';
import { silentLogger } from '../../device/log/index.js';
import { MqttLink } from '../../device/mqtt/index.js';
import { schemaVersion, topic } from '../../device/protocol/index.js';
import { startBroker } from '../devstack/broker.js';
import { startDeviceService } from '../devstack/device-service.js';
import { timedRequest } from '../devstack/flood.js';
import { createSigner, inWindowMs, nightlySchedule, signSchedule, testConsole } from '../devstack/tokens.js';

const { values } = parseArgs({
  options: { seconds: { type: 'string', default: '20' }, rate: { type: 'string', default: '3000' } },
});
const floodS = Number(values.seconds);
const rate = Number(values.rate);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const mib = (bytes: number) => (bytes / 1024 / 1024).toFixed(0);

function folderBytes(dir: string): number {
  try {
    return readdirSync(dir)
      .filter((name) => name.startsWith('audit-'))
      .reduce((sum, name) => sum + statSync(join(dir, name)).size, 0);
  } catch {
    return 0;
  }
}

// Quiet: mosquitto logging every PUBLISH to a pipe this process reads stalled the broker in bursts (broker.ts).
const broker = await startBroker({ quietLog: true });
const signer = await createSigner();
const central = await mqtt.connectAsync(await broker.clientOptions('central'));
const floodEntry = join(dirname(fileURLToPath(import.meta.url)), '../devstack/flood-process.ts');

/** Starts the flooder process; `stop()` resolves with what it sent. */
async function startFloodProcess(deviceId: string): Promise<{
  running: boolean;
  stop(): Promise<{ sent: number; elapsedMs: number; perS: number }>;
}> {
  const child = fork(floodEntry, [], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  // Not as `central`: the broker takes the client id from the certificate, so a second `central`
  // connection takes over the first, and the two would throw each other off every second (what the
  // figures before 2026-12-01 measured). An operator console may write view/request too.
  const { ca, cert, key, ...options } = await broker.clientOptions('console-2');
  child.send({
    options: { ...options, ca: String(ca), cert: String(cert), key: String(key) },
    deviceId,
    nowMs: inWindowMs,
    perS: rate,
    // A steady flood: a starved flooder skips what it missed rather than sending it in bursts.
    catchUpS: 0.05,
  });
  await once(child, 'message');
  const state = { running: true };
  return {
    get running() {
      return state.running;
    },
    stop: async () => {
      state.running = false;
      const figures = once(child, 'message');
      child.send('stop');
      const [message] = (await figures) as [{ sent: number; elapsedMs: number; perS: number }];
      return message;
    },
  };
}

async function floodRun(label: string, deviceId: string, config: Record<string, unknown>): Promise<void> {
  const stateDir = mkdtempSync(join(tmpdir(), 'tk-bench-flood-'));
  await central.subscribeAsync(topic(deviceId, 'viewAnswer'), { qos: 1 });
  const { service } = await startDeviceService({
    broker,
    signer,
    deviceId,
    stateDir,
    nowMs: inWindowMs,
    config,
  });
  try {
    const applied = new Promise<void>((resolve) => service.supervisor.once('schedule', () => resolve()));
    await central.publishAsync(
      topic(deviceId, 'schedule'),
      JSON.stringify({ schemaVersion, token: await signSchedule(signer, nightlySchedule(deviceId)) }),
      { qos: 1, retain: true },
    );
    await applied;
    let arrived = 0;
    // The device's own share of a legitimate request's time: from its arrival at the MQTT link to the
    // decision the supervisor hands to the link (the rest is the broker, the network and the console).
    const arrivedAtMs = new Map<string, number>();
    const deviceMs: number[] = [];
    service.link?.on('message', (_name, payload) => {
      arrived += 1;
      const legit = /"requestId":"(req-legit-\d+)"/.exec(payload.toString('latin1'));
      if (legit?.[1]) arrivedAtMs.set(legit[1], performance.now());
    });
    service.supervisor.on('decision', ({ requestId }) => {
      const atMs = arrivedAtMs.get(requestId);
      if (atMs !== undefined) deviceMs.push(performance.now() - atMs);
    });
    const auditDir = join(stateDir, 'audit');
    const bytesBefore = folderBytes(auditDir);
    const floodStartedMs = performance.now();
    const flood = await startFloodProcess(deviceId);
    const latencies: string[] = [];
    const latenciesMs: number[] = [];
    await sleep(2000);
    for (let i = 0; flood.running && i < Math.max(1, floodS - 4); i += 1) {
      const started = performance.now();
      try {
        const legit = await timedRequest(central, signer, deviceId, inWindowMs, `req-legit-${i}`, 5000);
        latenciesMs.push(legit.latencyMs);
        latencies.push(
          `${legit.latencyMs.toFixed(0)} ms ${legit.decision}${legit.reason ? ` (${legit.reason})` : ''}`,
        );
        // The look runs without media here; the grant holder hangs up so the next one can be granted.
        if (legit.sessionId) service.supervisor.hangup(legit.sessionId, testConsole.hangupSecret);
      } catch {
        latencies.push('none in 5 s');
      }
      await sleep(Math.max(0, 1000 - (performance.now() - started)));
    }
    await sleep(Math.max(0, floodS * 1000 - (performance.now() - floodStartedMs)));
    const figures = await flood.stop();
    await sleep(1000);
    const arrivedPerS = Math.round((arrived / figures.elapsedMs) * 1000);
    await service.stop();
    const bytes = folderBytes(auditDir) - bytesBefore;
    console.log(`\n${label}`);
    console.log(
      `  sent                     ${figures.perS}/s for ${(figures.elapsedMs / 1000).toFixed(1)} s (${figures.sent})`,
    );
    console.log(`  reached the device       ${arrivedPerS}/s (${arrived})`);
    console.log(`  dropped by the limits    ${service.inboundDropped}`);
    console.log(`  legit decisions          ${latencies.join(', ')}`);
    const sorted = [...latenciesMs].sort((a, b) => a - b);
    console.log(
      `  legit decision time      publish → decision at the console: median ${(sorted[Math.floor((sorted.length - 1) / 2)] ?? Number.NaN).toFixed(0)} ms, ` +
        `worst ${(sorted.at(-1) ?? Number.NaN).toFixed(0)} ms; ${sorted.filter((ms) => ms < 1000).length} of ${latencies.length} within 1 s`,
    );
    const device = [...deviceMs].sort((a, b) => a - b);
    console.log(
      `  legit, device's share    arrival at the link → decision: median ${(device[Math.floor((device.length - 1) / 2)] ?? Number.NaN).toFixed(0)} ms, worst ${(device.at(-1) ?? Number.NaN).toFixed(0)} ms`,
    );
    console.log(
      `  audit bytes written      ${bytes} in the flood (${Math.round((bytes / figures.elapsedMs) * 60_000)} per minute of flood)`,
    );
  } finally {
    await service.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }
}

await floodRun('shipped limits (requests 20/s burst 40, other 50/s burst 100)', 'dev-bench-flood', {});
await floodRun('limits raised out of the way (10,000/s, burst 100,000)', 'dev-bench-flood-open', {
  limits: {
    inbound: {
      requests: { perS: 10_000, burst: 100_000 },
      other: { perS: 10_000, burst: 100_000 },
      schedules: { perS: 10_000, burst: 100_000 },
    },
  },
});

// ── 250 MB message ────────────────────────────────────────────────────────────────────────────

const bigBytes = 250 * 1024 * 1024;

async function throughMosquitto(): Promise<void> {
  const deviceId = 'dev-bench-big';
  const stateDir = mkdtempSync(join(tmpdir(), 'tk-bench-big-'));
  const { service } = await startDeviceService({ broker, signer, deviceId, stateDir, nowMs: inWindowMs });
  const file = join(stateDir, 'big.bin');
  writeFileSync(file, Buffer.alloc(bigBytes, 0x61));
  const cert = await broker.pki.clientCert('central');
  global.gc?.();
  const rssBefore = process.memoryUsage().rss;
  let rssMax = rssBefore;
  const sampler = setInterval(() => {
    rssMax = Math.max(rssMax, process.memoryUsage().rss);
  }, 20);
  const pub = spawn('mosquitto_pub', [
    ...['-h', '127.0.0.1', '-p', String(broker.port), '--cafile', broker.pki.caCert],
    ...['--cert', cert.cert, '--key', cert.key, '-i', 'central', '-q', '1'],
    ...['-t', topic(deviceId, 'viewRequest'), '-f', file],
  ]);
  pub.stderr.resume();
  const [code] = (await once(pub, 'exit')) as [number | null];
  await sleep(500);
  clearInterval(sampler);
  console.log('\n250 MB message through mosquitto (max_packet_size 66560)');
  console.log(`  mosquitto_pub exit       ${code} (refused by the broker)`);
  console.log(`  device RSS               ${mib(rssBefore)} MiB before, ${mib(rssMax)} MiB at most`);
  console.log(
    `  device still connected   ${service.link?.connected}; inbound refused ${service.inboundRejected}`,
  );
  await service.stop();
  rmSync(stateDir, { recursive: true, force: true });
}

async function fromOpenBroker(maxPacketBytes: number | undefined): Promise<void> {
  let sent = 0;
  const server = createServer((socket: Socket) => {
    const parser = mqttPacket.parser();
    socket.on('error', () => undefined);
    parser.on('packet', (packet) => {
      if (packet.cmd === 'connect')
        socket.write(mqttPacket.generate({ cmd: 'connack', returnCode: 0, sessionPresent: false }));
      if (packet.cmd !== 'subscribe') return;
      socket.write(
        mqttPacket.generate({ cmd: 'suback', messageId: packet.messageId ?? 1, granted: [1, 1, 1] }),
      );
      const name = Buffer.from(topic('dev-bench-open', 'viewRequest'));
      let value = 2 + name.length + bigBytes;
      const length: number[] = [];
      do {
        let byte = value % 128;
        value = Math.floor(value / 128);
        if (value > 0) byte |= 0x80;
        length.push(byte);
      } while (value > 0);
      socket.write(
        Buffer.concat([Buffer.from([0x30, ...length, name.length >> 8, name.length & 0xff]), name]),
      );
      const chunk = Buffer.alloc(1024 * 1024, 0x61);
      const pump = () => {
        while (!socket.destroyed && sent < bigBytes) {
          sent += chunk.length;
          if (!socket.write(chunk)) {
            socket.once('drain', pump);
            return;
          }
        }
      };
      pump();
    });
    socket.on('data', (data) => parser.parse(data));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('no port');
  global.gc?.();
  const rssBefore = process.memoryUsage().rss;
  let rssMax = rssBefore;
  const sampler = setInterval(() => {
    rssMax = Math.max(rssMax, process.memoryUsage().rss);
  }, 20);
  const link = new MqttLink({
    deviceId: 'dev-bench-open',
    url: `mqtt://127.0.0.1:${address.port}`,
    tls: undefined,
    keepaliveS: 60,
    log: silentLogger(),
    reconnect: { initialMs: 600_000, maxMs: 600_000 },
    ...(maxPacketBytes !== undefined ? { maxPacketBytes } : {}),
  });
  let received = 0;
  link.on('message', (_name, payload) => {
    received = payload.length;
  });
  link.start();
  const startedMs = performance.now();
  while (received === 0 && link.stats.oversizedPackets === 0 && performance.now() - startedMs < 60_000)
    await sleep(20);
  clearInterval(sampler);
  await link.stop();
  server.close();
  console.log(
    `\n250 MB message from a broker without a limit, packet guard ${maxPacketBytes === undefined ? 'on (66560)' : 'off'}`,
  );
  console.log(
    `  outcome                  ${received > 0 ? `buffered whole and handed over (${mib(received)} MiB)` : `connection closed after ${mib(sent)} MiB sent (kernel buffers included)`}`,
  );
  console.log(`  RSS                      ${mib(rssBefore)} MiB before, ${mib(rssMax)} MiB at most`);
}

await throughMosquitto();
await fromOpenBroker(undefined);
await fromOpenBroker(Number.POSITIVE_INFINITY);

await central.endAsync();
await broker.stop();
