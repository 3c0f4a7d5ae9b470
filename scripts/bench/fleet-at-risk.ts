// Fleet service at scale: N simulated devices (default 10,000) against one mosquitto 2.0 (TLS, the
// production ACL) and one fleet service (fleet/main.ts, a child process, SQLite). Prints:
// - start-up: the fleet service reading N devices' retained status, info and health;
// - steady state at the default health rate (every 60 s per device, spread over the minute): the
//   service's CPU and memory (RSS) from /proc;
// - unplug → at risk: a device's camera is unplugged (a `fault` event and health with `faults`), and
//   we time until the page's live stream (the SSE `devices` event the page renders) shows that device
//   at risk, and until /api/devices/<id>/history has the fault.
//
// The simulated devices are multiplexed: a few connections as `central` (which may publish on every
// device's topics) publish for many device ids each, so 10,000 devices do not need 10,000 TLS
// handshakes on a 2-CPU machine. The broker and the fleet service see the same messages either way;
// only wills (offline on a dropped connection) are not simulated per device (scripts/bench/fleet.ts
// measures those, with one connection and certificate per device).
//
//   npx tsx scripts/bench/fleet-at-risk.ts [N] [--connections K] [--unplugs M] [--steady-s S] [--postgres]
// --postgres runs the service on a throwaway PostgreSQL server instead of SQLite.
// Figures only; it never fails on timing.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import mqtt, { type MqttClient } from 'mqtt';
import { topic } from '../../device/protocol/index.js';
import { faultEvent, healthPayload, infoPayload, statusPayload } from '../../test/fleet/support/devices.js';
import { fleetArgs, spawnFleet } from '../../test/fleet/support/instance.js';
import { type Postgres, startPostgres } from '../../test/fleet/support/postgres.js';
import { startBroker } from '../devstack/broker.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    connections: { type: 'string', default: '10' },
    unplugs: { type: 'string', default: '20' },
    'steady-s': { type: 'string', default: '30' },
    postgres: { type: 'boolean', default: false },
  },
});
const deviceCount = Number(positionals[0] ?? 10_000);
const connectionCount = Number(values.connections);
const unplugCount = Number(values.unplugs);
const steadyS = Number(values['steady-s']);
const ticksPerS = Number(process.env.CLK_TCK ?? 100);
const pageSize = 4096;

function processUsage(pid: number): { cpuS: number; rssMB: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const cpuS = (Number(fields[11]) + Number(fields[12])) / ticksPerS;
  const rssMB = (Number(fields[21]) * pageSize) / 1e6;
  return { cpuS, rssMB };
}

const ids = Array.from({ length: deviceCount }, (_, i) => `sim-${String(i).padStart(5, '0')}`);
// Windows between 2 and 10 hours ahead: every device has a check-in within the 12 h horizon.
const windowOf = new Map(
  ids.map((id, i) => [id, new Date(Date.now() + (2 + (i % 9)) * 3600_000).toISOString()]),
);

const broker = await startBroker();
const dir = mkdtempSync(join(tmpdir(), 'tk-bench-fleet-'));
const publishers: MqttClient[] = [];
let postgres: Postgres | undefined;
let fleet: Awaited<ReturnType<typeof spawnFleet>> | undefined;
try {
  const central = await broker.clientOptions('central');
  for (let i = 0; i < connectionCount; i += 1) {
    publishers.push(
      await mqtt.connectAsync({ ...central, clientId: `bench-central-${i}`, reconnectPeriod: 0 }),
    );
  }
  const publisherOf = (index: number) => publishers[index % publishers.length]!;

  // Every device announces itself (retained), as at connect.
  const announceStarted = performance.now();
  await Promise.all(
    ids.map(async (id, index) => {
      const client = publisherOf(index);
      await client.publishAsync(topic(id, 'status'), statusPayload('online', 1), { qos: 1, retain: true });
      await client.publishAsync(topic(id, 'info'), infoPayload(), { qos: 1, retain: true });
      await client.publishAsync(topic(id, 'health'), healthPayload({ nextWindowAt: windowOf.get(id)! }), {
        qos: 0,
        retain: true,
      });
    }),
  );
  console.log(
    `${deviceCount} simulated devices over ${connectionCount} connections as central; retained status/info/health published in ${((performance.now() - announceStarted) / 1000).toFixed(1)} s`,
  );

  if (values.postgres) postgres = await startPostgres();
  const database = postgres ? await postgres.createDatabase('bench') : join(dir, 'fleet.db');
  const fleetStarted = performance.now();
  fleet = await spawnFleet(
    [...(await fleetArgs(broker)), '--db', database, '--instance', 'bench', '--retained-sync-ms', '1000'],
    120_000,
  );
  const pid = fleet.child.pid!;
  const fleetUrl = fleet.url;
  const known = async () =>
    ((await (await fetch(new URL('healthz', fleetUrl))).json()) as { devices: number }).devices;
  while ((await known()) < deviceCount && performance.now() - fleetStarted < 120_000) await delay(200);
  const startup = processUsage(pid);
  console.log(
    `fleet service (${postgres ? 'PostgreSQL' : 'SQLite'}) start-up with the retained state of ${await known()} devices: ${((performance.now() - fleetStarted) / 1000).toFixed(1)} s; ` +
      `CPU ${startup.cpuS.toFixed(1)} s, RSS ${startup.rssMB.toFixed(0)} MB`,
  );

  // Steady state: health every 60 s per device, spread evenly.
  let healthSent = 0;
  let stopHealth = false;
  const healthLoop = (async () => {
    const perTickMs = 50;
    const perTick = Math.max(1, Math.round((deviceCount / 60_000) * perTickMs));
    let next = 0;
    let uptimeS = 200;
    while (!stopHealth) {
      for (let i = 0; i < perTick; i += 1) {
        const index = next % deviceCount;
        const id = ids[index]!;
        publisherOf(index).publish(
          topic(id, 'health'),
          healthPayload({ nextWindowAt: windowOf.get(id)!, uptimeS: uptimeS++ }),
          {
            qos: 0,
            retain: true,
          },
        );
        next += 1;
        healthSent += 1;
      }
      await delay(perTickMs);
    }
  })();

  // The page's live stream, read as the page reads it.
  const seenAtRisk = new Map<string, number>();
  const sse = await fetch(new URL('events', fleetUrl));
  const reader = sse.body!.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  const sseLoop = (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let end = buffer.indexOf('\n\n');
      while (end >= 0) {
        const frame = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        end = buffer.indexOf('\n\n');
        if (!frame.startsWith('event: devices')) continue;
        const data = JSON.parse(frame.slice(frame.indexOf('data: ') + 6)) as {
          rows: { device: string; risk: { atRisk: boolean; reasons: string[] } }[];
        };
        const now = performance.now();
        for (const row of data.rows) {
          if (row.risk.atRisk && row.risk.reasons.includes('camera') && !seenAtRisk.has(row.device))
            seenAtRisk.set(row.device, now);
        }
      }
    }
  })();

  const steadyBefore = processUsage(pid);
  const steadyStarted = performance.now();
  await delay(steadyS * 1000);
  const steadyAfter = processUsage(pid);
  const steadySeconds = (performance.now() - steadyStarted) / 1000;
  console.log(
    `steady state, health every 60 s per device (${(healthSent / ((performance.now() - steadyStarted) / 1000)).toFixed(0)} msg/s): ` +
      `fleet service CPU ${(((steadyAfter.cpuS - steadyBefore.cpuS) / steadySeconds) * 100).toFixed(0)} % of one core, RSS ${steadyAfter.rssMB.toFixed(0)} MB`,
  );

  // Unplugs: one device a second, while the health traffic goes on.
  const pageDelays: number[] = [];
  const historyDelays: number[] = [];
  for (let u = 0; u < unplugCount; u += 1) {
    const index = Math.floor(((u + 0.5) / unplugCount) * deviceCount);
    const id = ids[index]!;
    const client = publisherOf(index);
    const unplugged = performance.now();
    client.publish(topic(id, 'event'), faultEvent('camera', true), { qos: 1 });
    client.publish(
      topic(id, 'health'),
      healthPayload({ nextWindowAt: windowOf.get(id)!, faults: ['camera'] }),
      { qos: 0, retain: true },
    );
    let historyAt: number | undefined;
    while (performance.now() - unplugged < 30_000 && (!seenAtRisk.has(id) || historyAt === undefined)) {
      if (historyAt === undefined) {
        const history = (await (await fetch(new URL(`api/devices/${id}/history`, fleetUrl))).json()) as {
          entries: { kind: string }[];
        };
        if (history.entries.some((entry) => entry.kind === 'fault-on')) historyAt = performance.now();
      }
      await delay(5);
    }
    const pageAt = seenAtRisk.get(id);
    if (pageAt !== undefined) pageDelays.push(pageAt - unplugged);
    if (historyAt !== undefined) historyDelays.push(historyAt - unplugged);
    await delay(1000);
  }
  const final = processUsage(pid);
  const percentile = (values: number[], p: number) => {
    const sorted = [...values].sort((a, b) => a - b);
    return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
  };
  console.log(
    `unplug → at risk on the page (SSE): ${pageDelays.length}/${unplugCount} seen, p50 ${percentile(pageDelays, 50).toFixed(0)} ms, ` +
      `p90 ${percentile(pageDelays, 90).toFixed(0)} ms, max ${Math.max(...pageDelays).toFixed(0)} ms; ` +
      `in the API's history: p50 ${percentile(historyDelays, 50).toFixed(0)} ms, max ${Math.max(...historyDelays).toFixed(0)} ms; fleet RSS ${final.rssMB.toFixed(0)} MB`,
  );
  stopHealth = true;
  await healthLoop;
  await reader.cancel();
  await sseLoop.catch(() => undefined);
} finally {
  await fleet?.stop();
  await Promise.all(publishers.map((client) => client.endAsync(true)));
  await broker.stop();
  await postgres?.stop();
  rmSync(dir, { recursive: true, force: true });
}
