// The built service's idle memory: `node dist/device/main.js` as on the device (no tsx, the unit's Node
// flags), simulated GPIO, a test camera and a loopback broker, over TLS with a client certificate as on
// a device, with no window (nothing but the service) and then with a window open (the service stands a
// media process by for the next look: werift is loaded there, not in the service). RSS from
// /proc/<pid>/status, sampled once a second. Run `npm run build` first (the bench does it when dist/ is
// missing). Prints figures; never fails on them.
//   npx tsx scripts/bench/built-service.ts [--dist DIR] [--seconds S] [--node-flags "..."] [--plain]
//     [--clock kernel]
// --node-flags: default the flags of ExecStart in systemd/trygghetskamera.service. --plain: the plain
// loopback listener instead of TLS (as the figures before 2026-12-01 were taken). --clock kernel: the
// device's default clock check (adjtimex through koffi); needs a synchronised clock for the window.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { exportSPKI, generateKeyPair, SignJWT } from 'jose';
import mqtt from 'mqtt';
import { scheduleTokenType, schemaVersion, topic } from '../../device/protocol/index.js';
import { startBroker } from '../devstack/broker.js';
import { children, memory } from '../devstack/proc-stats.js';

const { values } = parseArgs({
  options: {
    dist: { type: 'string', default: 'dist' },
    seconds: { type: 'string', default: '15' },
    /** Node flags for the service; default those of the unit (systemd/trygghetskamera.service). */
    'node-flags': { type: 'string' },
    plain: { type: 'boolean', default: false },
    clock: { type: 'string', default: 'trusted' },
  },
});

/** The Node flags of the unit's ExecStart: what stands between the node binary and main.js. */
function unitNodeFlags(): string {
  const unit = join(dirname(fileURLToPath(import.meta.url)), '../../systemd/trygghetskamera.service');
  const execStart = /^ExecStart=\S+\/node (.*?)\s*\S+\/dist\/device\/main\.js/m.exec(
    readFileSync(unit, 'utf8'),
  );
  if (!execStart) throw new Error(`no node ExecStart in ${unit}`);
  return execStart[1] ?? '';
}
const dist = resolve(values.dist);
const seconds = Number(values.seconds);
const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));
const kid = 'bench-central';
/** Issue 9's target for the idle service over TLS (no window, the unit's flags). */
const idleTargetMiB = 70;
const deviceId = 'kam-bench';

function sampleRss(pids: () => number[], count: number): Promise<{ mean: number; max: number }> {
  return (async () => {
    const samples: number[] = [];
    for (let i = 0; i < count; i++) {
      await sleep(1000);
      const total = pids().reduce((sum, pid) => sum + (memory(pid)?.rssMiB ?? 0), 0);
      samples.push(total);
    }
    return { mean: samples.reduce((a, b) => a + b, 0) / samples.length, max: Math.max(...samples) };
  })();
}

const mediaChildren = (pid: number) =>
  children(pid)
    .filter((child) => child.command === 'node' || child.command.startsWith('node'))
    .map((child) => child.pid);

async function main(): Promise<void> {
  if (!existsSync(join(dist, 'device', 'main.js'))) {
    if (values.dist !== 'dist') throw new Error(`${dist}/device/main.js not found`);
    const built = spawnSync('npm', ['run', 'build'], { stdio: 'inherit' });
    if (built.status !== 0) throw new Error('npm run build failed');
  }
  const broker = await startBroker({ plain: true });
  const cert = await broker.pki.clientCert(deviceId);
  const dir = await mkdtemp(join(tmpdir(), 'tk-built-'));
  const { publicKey, privateKey } = await generateKeyPair('EdDSA', { extractable: true });
  const config = {
    deviceId,
    timeZone: 'UTC',
    stateDir: join(dir, 'state'),
    broker: values.plain
      ? { url: broker.plainUrl }
      : { url: broker.url, caFile: broker.pki.caCert, certFile: cert.cert, keyFile: cert.key },
    centralKeys: [{ kid, publicKeyPem: await exportSPKI(publicKey) }],
    gpio: { kind: 'sim', viewingLed: { pin: 17 }, privacyLed: { pin: 22 }, button: { pin: 27 } },
    camera: { source: { kind: 'test' }, width: 1280, height: 720, fps: 15, encoder: 'libx264' },
    clock: { mode: values.clock },
    log: { level: 'warn' },
  };
  const configPath = join(dir, 'config.json');
  await writeFile(configPath, JSON.stringify(config));
  const nodeFlags = (values['node-flags'] ?? unitNodeFlags()).split(' ').filter((flag) => flag !== '');
  const service = spawn(
    process.execPath,
    [...nodeFlags, join(dist, 'device', 'main.js'), '--config', configPath],
    {
      stdio: ['ignore', 'ignore', 'inherit'],
    },
  );
  const central = await mqtt.connectAsync(broker.plainUrl!, { clientId: 'central-bench' });
  try {
    const pid = service.pid!;
    await sleep(3000);
    console.log(
      `built service: node ${[...nodeFlags, join(values.dist, 'device', 'main.js')].join(' ')} (pid ${pid}), ${process.version}; ` +
        `${values.plain ? 'plain MQTT' : 'MQTT over TLS'}, clock ${values.clock}`,
    );
    const idle = await sampleRss(() => [pid], seconds);
    console.log(
      `  no window, ${seconds} s: service RSS mean ${idle.mean.toFixed(1)} MiB, max ${idle.max.toFixed(1)} MiB; children: ${children(pid).length}` +
        `; target (issue 9): mean under ${idleTargetMiB} MiB over TLS${values.plain ? '' : idle.mean < idleTargetMiB ? ', met' : ', NOT met'}`,
    );

    const nowMs = Date.now();
    const iso = new Date(Math.floor((nowMs - 60_000) / 60_000) * 60_000).toISOString();
    const token = await new SignJWT({
      aud: deviceId,
      version: 1,
      nbf: Math.floor(nowMs / 1000) - 3600,
      exp: Math.floor(nowMs / 1000) + 86_400,
      windows: [],
      oneOff: [{ date: iso.slice(0, 10), start: iso.slice(11, 16), durationMin: 120, viewMode: 'full' }],
    })
      .setProtectedHeader({ alg: 'EdDSA', kid, typ: scheduleTokenType })
      .sign(privateKey);
    await central.publishAsync(topic(deviceId, 'schedule'), JSON.stringify({ schemaVersion, token }), {
      qos: 1,
      retain: true,
    });
    await sleep(4000);
    const warm = mediaChildren(pid);
    const open = await sampleRss(() => [pid], seconds);
    const openChild = await sampleRss(() => mediaChildren(pid), Math.min(5, seconds));
    console.log(
      `  window open, ${seconds} s: service RSS mean ${open.mean.toFixed(1)} MiB, max ${open.max.toFixed(1)} MiB; ` +
        (warm.length > 0
          ? `stand-by media process (pid ${warm.join(', ')}) ${openChild.mean.toFixed(1)} MiB`
          : 'no stand-by media process'),
    );
    // The ffmpeg the stand-by process holds for the next look: most of its RSS is its libraries' pages
    // (file-backed, shared, reclaimable); RssAnon is what it costs on its own.
    for (const held of warm.flatMap((media) => children(media).filter((c) => c.command === 'ffmpeg'))) {
      const status = readFileSync(`/proc/${held.pid}/status`, 'utf8');
      const anonMiB = Number(/^RssAnon:\s+(\d+)/m.exec(status)?.[1] ?? 0) / 1024;
      console.log(
        `  held ffmpeg (pid ${held.pid}): RSS ${(memory(held.pid)?.rssMiB ?? 0).toFixed(1)} MiB, of it anonymous ${anonMiB.toFixed(1)} MiB`,
      );
    }
  } finally {
    await central
      .publishAsync(topic(deviceId, 'schedule'), '', { qos: 1, retain: true })
      .catch(() => undefined);
    await central.endAsync(true);
    service.kill('SIGTERM');
    await new Promise((done) => service.once('exit', done));
    await broker.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error('bench failed:', error);
    process.exit(1);
  },
);
