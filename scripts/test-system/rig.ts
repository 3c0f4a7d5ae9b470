// The system test's driver (started by scripts/test-system/run, which builds the image and the bundle):
// a real mosquitto on the host's loopback with a test PKI, a test central key, and one VM that is
// installed, provisioned and then checked from outside as a black box. Every wait is bounded; QEMU,
// the broker and temp files are cleaned up on every exit path. Figures go to stdout and summary.json.
import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { parseArgs, promisify } from 'node:util';
import mqtt from 'mqtt';
import { type TopicName, topic } from '../../device/protocol/index.js';
import { type Broker, startBroker } from '../devstack/broker.js';
import { createPki, type Pki } from '../devstack/pki.js';
import { createSigner, grantClaims, nightlySchedule, signGrant, signSchedule } from '../devstack/tokens.js';
import { Vm } from './vm.js';

const run = promisify(execFile);
const { values: args } = parseArgs({
  options: {
    image: { type: 'string' },
    bundle: { type: 'string' },
    cache: { type: 'string' },
    'image-seconds': { type: 'string', default: '0' },
    cuts: { type: 'string' },
    quick: { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
  },
});
const imageDir = args.image ?? '';
const bundle = args.bundle ?? '';
const cache = args.cache ?? '';
if (!imageDir || !bundle || !cache) throw new Error('rig.ts is started by scripts/test-system/run');
const cuts = Number(args.cuts ?? (args.quick ? 3 : 20));
const deviceId = 'vm-kamera-0001';
const unit = 'trygghetskamera.service';
const stateDir = '/var/lib/trygghetskamera';

// --- Results --------------------------------------------------------------------------------------

interface Check {
  name: string;
  ok: boolean;
  detail: string;
}
const checks: Check[] = [];
const figures: Record<string, string> = {};
const log = (text: string): void => console.log(`--> ${text}`);
const check = (name: string, ok: boolean, detail = ''): void => {
  checks.push({ name, ok, detail });
  console.log(`${ok ? 'PASS' : 'FAIL'} ${name}${detail ? `: ${detail}` : ''}`);
};
const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

async function within<T>(
  what: string,
  timeoutMs: number,
  probe: () => Promise<T | undefined>,
  everyMs = 500,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      lastError = err;
    }
    await delay(everyMs);
  }
  throw new Error(`${what}: not within ${timeoutMs} ms${lastError ? ` (${String(lastError)})` : ''}`);
}

// --- Host side: PKI, broker, central ---------------------------------------------------------------

async function openssl(argv: string[]): Promise<void> {
  await run('openssl', argv, { timeout: 30_000 });
}

/** A certificate from the test CA; `san` for the broker, which the guest dials as 10.0.2.2. */
async function issue(pki: Pki, name: string, csr: string, ext: string): Promise<string> {
  const extFile = join(pki.dir, `${name}.ext`);
  const cert = join(pki.dir, `${name}.crt`);
  await writeFile(extFile, ext);
  await openssl([
    'x509',
    '-req',
    '-in',
    csr,
    '-CA',
    pki.caCert,
    '-CAkey',
    join(pki.dir, 'ca.key'),
    '-CAcreateserial',
    '-days',
    '2',
    '-sha256',
    '-extfile',
    extFile,
    '-out',
    cert,
  ]);
  return cert;
}

async function brokerPki(): Promise<Pki> {
  const pki = await createPki('trygghetskamera VM rig CA');
  const key = join(pki.dir, 'vm-server.key');
  const csr = join(pki.dir, 'vm-server.csr');
  await openssl([
    'req',
    '-new',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    key,
    '-subj',
    '/CN=localhost',
    '-out',
    csr,
  ]);
  const cert = await issue(
    pki,
    'vm-server',
    csr,
    [
      'basicConstraints = critical,CA:FALSE',
      'keyUsage = critical,digitalSignature',
      'extendedKeyUsage = serverAuth',
      'subjectAltName = DNS:localhost,IP:127.0.0.1,IP:10.0.2.2',
      '',
    ].join('\n'),
  );
  return { ...pki, server: { cert, key } };
}

interface Heard {
  at: number;
  topic: string;
  payload: Record<string, unknown>;
}

// --- The run -------------------------------------------------------------------------------------

const runDir = join(cache, `run-${process.pid}`);
let vm: Vm | undefined;
let broker: Broker | undefined;
let central: mqtt.MqttClient | undefined;
const heard: Heard[] = [];

async function cleanup(): Promise<void> {
  await vm?.kill().catch(() => undefined);
  central?.end(true);
  await broker?.stop().catch(() => undefined);
  if (!args.keep) rmSync(runDir, { recursive: true, force: true });
  rmSync(join(bundle, 'pki'), { recursive: true, force: true });
}
const started = Date.now();
let summarised = false;
/** Prints the figures and checks so far; also on a signal, so an interrupted run still reports. */
function summarise(): boolean {
  const failures = checks.filter((c) => !c.ok);
  if (summarised) return failures.length === 0;
  summarised = true;
  figures['whole rig'] = seconds(Date.now() - started);
  console.log('\n== summary ==');
  for (const [name, value] of Object.entries(figures)) console.log(`${name.padEnd(44)} ${value}`);
  console.log(
    `${checks.length - failures.length}/${checks.length} checks passed${failures.length ? `; failed: ${failures.map((c) => c.name).join('; ')}` : ''}`,
  );
  writeFileSync(
    join(cache, 'summary.json'),
    `${JSON.stringify({ at: new Date().toISOString(), figures, checks }, null, 2)}\n`,
  );
  return failures.length === 0;
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    console.log(`\n${signal}: stopping`);
    summarise();
    void cleanup().finally(() => process.exit(128 + (signal === 'SIGINT' ? 2 : 15)));
  });
}

/** A message heard after `since`; one that carries `at` must also have been made after it (the outbox
 * re-delivers records from before a power cut, and those must not count as new). */
function heardSince(
  since: number,
  name: TopicName,
  match: (p: Record<string, unknown>) => boolean,
): Heard | undefined {
  const made = (p: Record<string, unknown>): boolean =>
    typeof p.at !== 'string' || Date.parse(p.at) >= since - 2000;
  return heard.find(
    (h) => h.at >= since && h.topic === topic(deviceId, name) && made(h.payload) && match(h.payload),
  );
}

async function e2fsck(
  disk: string,
): Promise<{ replay: number; journal: boolean; check: number; output: string }> {
  // -p replays the journal and fixes only what is safe, as the boot-time check would; -fn then must
  // find nothing at all.
  const preen = await run('e2fsck', ['-p', disk], { timeout: 120_000 }).then(
    (r) => ({ code: 0, output: r.stdout }),
    (e: { code?: number; stdout?: string }) => ({ code: e.code ?? 99, output: e.stdout ?? '' }),
  );
  const replay = preen.code;
  const journal = /recovering journal/.test(preen.output);
  const full = await run('e2fsck', ['-fn', disk], { timeout: 180_000 }).then(
    (r) => ({ code: 0, output: r.stdout }),
    (e: { code?: number; stdout?: string }) => ({ code: e.code ?? 99, output: e.stdout ?? '' }),
  );
  return { replay, journal, check: full.code, output: `${preen.output}${full.output}` };
}

/** Files of the state directory as the disk holds them (read with debugfs, the VM stopped). */
async function stateFiles(disk: string): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  const list = async (dir: string): Promise<void> => {
    const { stdout } = await run('debugfs', ['-R', `ls -p ${dir}`, disk], { timeout: 30_000 });
    for (const line of stdout.split('\n')) {
      // /inode/mode/uid/gid/name/size/
      const parts = line.split('/');
      const [mode, name] = [parts[2] ?? '', parts[5] ?? ''];
      if (!name || name === '.' || name === '..') continue;
      if (mode.startsWith('4')) await list(`${dir}/${name}`);
      else if (mode.startsWith('10')) {
        const { stdout: text } = await run('debugfs', ['-R', `cat ${dir}/${name}`, disk], {
          timeout: 30_000,
          maxBuffer: 64 << 20,
        });
        files.set(`${dir}/${name}`, text);
      }
    }
  };
  await list(stateDir);
  return files;
}

function parseState(files: Map<string, string>): {
  parsed: number;
  bad: string[];
  privacyOn: boolean | undefined;
  auditLines: number;
} {
  let parsed = 0;
  let auditLines = 0;
  const bad: string[] = [];
  let privacyOn: boolean | undefined;
  for (const [path, text] of files) {
    if (path.endsWith('.json')) {
      try {
        const value = JSON.parse(text) as { privacyOn?: unknown };
        parsed += 1;
        if (path === `${stateDir}/privacy.json` && typeof value.privacyOn === 'boolean')
          privacyOn = value.privacyOn;
      } catch {
        bad.push(path);
      }
    } else if (path.endsWith('.jsonl')) {
      const lines = text.split('\n');
      // A record is only complete with its newline; a torn last line is what an append-only log may show.
      for (const line of lines.slice(0, -1)) {
        try {
          JSON.parse(line);
          auditLines += 1;
        } catch {
          bad.push(`${path}: ${line.slice(0, 60)}`);
        }
      }
      parsed += 1;
    }
  }
  return { parsed, bad, privacyOn, auditLines };
}

async function main(): Promise<void> {
  mkdirSync(runDir, { recursive: true });
  const disk = join(runDir, 'disk.raw');
  const imageFile = (name: string): Promise<string> =>
    readFile(join(imageDir, name), 'utf8').then(
      (t) => t.trim(),
      () => '?',
    );
  figures['image build'] =
    `${args['image-seconds']} s this run; from scratch: debootstrap+apt ${await imageFile('debootstrap-seconds')} s, ` +
    `module+configure+mke2fs ${await imageFile('build-seconds')} s`;
  await run('cp', ['--sparse=always', join(imageDir, 'rootfs.raw'), disk], { timeout: 120_000 });

  log('broker on the host loopback (TLS, client certificates, ACL)');
  const pki = await brokerPki();
  broker = await startBroker({ pki });
  const signer = await createSigner('central-vm');
  const share = join(bundle, 'pki');
  mkdirSync(share, { recursive: true });
  copyFileSync(pki.caCert, join(share, 'ca.crt'));
  writeFileSync(join(share, 'central-vm.pem'), signer.publicKeyPem);
  central = mqtt.connect({ ...(await broker.clientOptions('central')), reconnectPeriod: 500 });
  central.on('message', (t, payload) => {
    try {
      heard.push({
        at: Date.now(),
        topic: t,
        payload: JSON.parse(payload.toString('utf8')) as Record<string, unknown>,
      });
    } catch {
      // Empty retained clears and the like.
    }
  });
  await within('central connects', 15_000, async () => (central?.connected ? true : undefined));
  await central.subscribeAsync(`tk/${deviceId}/#`, { qos: 1 });

  vm = new Vm({ imageDir, disk, runDir, share: bundle });
  const boot = async (): Promise<number> => {
    const started = Date.now();
    vm?.start();
    await vm?.waitForAgent(240_000);
    await vm?.sh('systemctl start pi-sim.service', 60_000);
    return Date.now() - started;
  };

  log('booting the VM (TCG)');
  const firstBootMs = await boot();
  figures['boot to guest agent'] = seconds(firstBootMs);
  log(
    `guest up in ${seconds(firstBootMs)}: ${(await vm.sh('uname -r; node --version')).replace(/\n/g, ' ')}`,
  );
  check(
    'gpio-sim chip and vivid camera present',
    true,
    (await vm.sh('pi-sim info; ls /dev/gpiochip* /dev/video0 | tr "\\n" " "')).trim(),
  );

  log('install.sh as a technician runs it (real useradd, systemctl)');
  // The checkout as the technician has it on the Pi after `npm ci && npm run build`; its node_modules
  // are the production ones built for Node 22, put in place as `install.sh --no-deps` expects (the
  // guest has no npm and no route to the registry).
  await vm.sh(
    'mkdir -p /root/trygghetskamera && tar -xf /mnt/host/checkout.tar -C /root/trygghetskamera',
    300_000,
  );
  const installStart = Date.now();
  const installOut = await vm.sh(
    'set -e; mkdir -p /opt/trygghetskamera; cp -a /root/trygghetskamera/node_modules /opt/trygghetskamera/; ' +
      '/root/trygghetskamera/scripts/install.sh --no-apt --no-deps 2>&1',
    300_000,
  );
  const installMs = Date.now() - installStart;
  figures['install (install.sh)'] = seconds(installMs);
  check(
    'install.sh finished',
    /Done: installed or updated/.test(installOut),
    installOut.trim().split('\n').at(-1) ?? '',
  );
  check(
    'service user is in video and gpio',
    /video/.test(await vm.sh('id trygghetskamera')) && /gpio/.test(await vm.sh('id trygghetskamera')),
  );

  log('provisioning (non-interactive), the CSR signed by the test CA, import-cert');
  const provisionStart = Date.now();
  await vm.sh(
    `trygghetskamera-provision provision --non-interactive --device-id ${deviceId} ` +
      `--broker-url mqtts://10.0.2.2:${broker.port} --ca-file /mnt/host/pki/ca.crt ` +
      '--central-key central-vm=/mnt/host/pki/central-vm.pem --led-pin 17 --privacy-led-pin 22 --button-pin 27 ' +
      '--camera /dev/video0 --camera-format yuyv422 --resolution 640x360 --fps 15 --time-zone Europe/Stockholm 2>&1',
    120_000,
  );
  const csrPath = join(pki.dir, 'device.csr');
  await writeFile(csrPath, await vm.sh('cat /etc/trygghetskamera/device.csr'));
  const deviceCert = await issue(
    pki,
    'device',
    csrPath,
    [
      'basicConstraints = critical,CA:FALSE',
      'keyUsage = critical,digitalSignature',
      'extendedKeyUsage = clientAuth',
      '',
    ].join('\n'),
  );
  copyFileSync(deviceCert, join(share, 'device.crt'));
  await vm.sh('trygghetskamera-provision provision import-cert /mnt/host/pki/device.crt 2>&1', 60_000);
  figures['provision + import-cert'] = seconds(Date.now() - provisionStart);

  // A schedule with a window open all day, so the device has one (retained, as central sends it).
  let scheduleVersion = 1;
  const publishSchedule = async (): Promise<void> => {
    const token = await signSchedule(
      signer,
      nightlySchedule(deviceId, scheduleVersion, {
        windows: [
          {
            days: ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'],
            start: '00:00',
            durationMin: 1440,
            viewMode: 'full',
          },
        ],
      }),
    );
    await central?.publishAsync(topic(deviceId, 'schedule'), JSON.stringify({ schemaVersion: 2, token }), {
      qos: 1,
      retain: true,
    });
    scheduleVersion += 1;
  };
  await publishSchedule();

  log('starting the shipped unit');
  const readyStart = Date.now();
  await vm.sh(`systemctl start --no-block ${unit}`);
  const waitActive = (timeoutMs: number): Promise<string> =>
    within('service active', timeoutMs, async () => {
      const out = await vm?.exec(`systemctl is-active ${unit}`, 10_000);
      return out?.out.trim() === 'active' ? 'active' : undefined;
    });
  await waitActive(120_000).catch((err: unknown) => {
    check('READY=1 reaches systemd', false, String(err));
    throw err;
  });
  const readyMs = Date.now() - readyStart;
  figures['start to READY=1'] = seconds(readyMs);
  const statusText = (await vm.sh(`systemctl show -p StatusText --value ${unit}`)).trim();
  check('READY=1 reaches systemd', true, `${seconds(readyMs)}; StatusText "${statusText}"`);
  const online = await within('status online on the broker', 60_000, async () =>
    heardSince(readyStart, 'status', (p) => p.state === 'online'),
  ).then(
    () => true,
    () => false,
  );
  check('device online on the host broker (10.0.2.2 via slirp)', online);

  const security = (await vm.sh(`systemd-analyze security --no-pager ${unit} 2>&1 | tail -1`)).trim();
  const exposure = Number(/exposure level for \S+: ([\d.]+)/.exec(security)?.[1] ?? 'NaN');
  figures['systemd-analyze security (in VM)'] = Number.isFinite(exposure) ? String(exposure) : security;
  check('systemd-analyze security <= 2.0 inside the VM', exposure <= 2.0, security);

  // The sandbox lets the health readers work: info carries the V4L2 card and formats (sysfs, v4l2-ctl).
  const info = await within('info with the camera', 60_000, async () =>
    heardSince(readyStart, 'info', (p) => Array.isArray((p.camera as { formats?: unknown })?.formats)),
  ).catch(() => undefined);
  check(
    'health readers under the sandbox (camera model and formats in info)',
    info !== undefined,
    info ? JSON.stringify(info.payload.camera) : 'no info with camera formats',
  );
  const health = await within('a health message', 90_000, async () =>
    heardSince(readyStart, 'health', () => true),
  ).catch(() => undefined);
  check(
    'health message with load, memory and disk',
    health !== undefined &&
      typeof health.payload.load1 === 'number' &&
      typeof health.payload.diskFreeMB === 'number',
    health ? JSON.stringify(health.payload) : 'none heard',
  );

  // ffmpeg on the camera inside the unit's own sandbox: the [Service] hardening lines of the
  // installed unit, applied to a transient unit by systemd-run.
  const sandboxed = await vm.exec(
    "props=$(sed -n '/^\\[Service\\]/,/^\\[/p' /etc/systemd/system/trygghetskamera.service | grep -E '^[A-Z]' | " +
      "grep -vE '^(Type|NotifyAccess|WatchdogSec|ExecStart|WorkingDirectory|Restart|RestartSec|TimeoutStopSec|Environment)=' | " +
      'sed "s/.*/-p \'&\'/"); ' +
      'eval systemd-run --quiet --wait --pipe --collect $props -- /usr/bin/ffmpeg -hide_banner -loglevel error -f v4l2 -i /dev/video0 -frames:v 3 -f null - 2>&1',
    120_000,
  );
  check(
    "ffmpeg reads the camera under the unit's sandbox",
    sandboxed.code === 0,
    (sandboxed.out + sandboxed.err).trim().slice(0, 300),
  );
  const journalErrors = await vm.sh(
    `journalctl -u ${unit} -b --no-pager -o cat | grep -ciE 'EPERM|EACCES|permission denied' || true`,
  );
  check(
    'no permission errors in the service journal',
    journalErrors.trim() === '0',
    `${journalErrors.trim()} lines`,
  );

  // --- Button through gpio-sim -------------------------------------------------------------------
  const press = async (): Promise<{ ms: number; privacyOn: boolean }> => {
    const before = (await vm?.sh('pi-sim value 22'))?.trim();
    // Timed inside the guest: the press and the polling of the LED line are one shell loop.
    const out = await vm?.sh(
      `s=$(date +%s%N); pi-sim press; i=0; while [ "$(pi-sim value 22)" = "${before}" ] && [ $i -lt 2000 ]; do i=$((i+1)); done; ` +
        'e=$(date +%s%N); pi-sim release; echo $(( (e - s) / 1000000 )) $(pi-sim value 22)',
      60_000,
    );
    const [ms, value] = (out ?? '').trim().split(' ');
    return { ms: Number(ms), privacyOn: value === '1' };
  };
  const pressStart = Date.now();
  const on = await press();
  figures['button press to privacy LED (gpio-sim)'] = `${on.ms} ms`;
  const privacyEvent = await within('privacy event', 30_000, async () =>
    heardSince(pressStart, 'event', (p) => p.type === 'privacy' && p.privacyOn === true),
  ).catch(() => undefined);
  check(
    'button press via gpio-sim turns privacy on (LED 22 lit, event on the broker)',
    on.privacyOn && privacyEvent !== undefined,
    `${on.ms} ms to LED`,
  );
  const persisted = await vm.sh(`cat ${stateDir}/privacy.json`).catch((e: unknown) => String(e));
  check('privacy persisted in privacy.json', /"privacyOn":\s*true/.test(persisted), persisted.trim());
  const refusalStart = Date.now();
  await central.publishAsync(
    topic(deviceId, 'viewRequest'),
    JSON.stringify({
      schemaVersion: 2,
      type: 'request',
      requestId: 'rig-privacy-1',
      grant: await signGrant(signer, grantClaims(deviceId, Date.now())),
    }),
    { qos: 1 },
  );
  const refused = await within('refusal', 30_000, async () =>
    heardSince(refusalStart, 'viewAnswer', (p) => p.requestId === 'rig-privacy-1'),
  ).catch(() => undefined);
  check(
    'a grant while privacy is on is refused with privacy-on',
    refused?.payload.reason === 'privacy-on',
    JSON.stringify(refused?.payload ?? 'no answer'),
  );
  await vm.sh(`systemctl restart ${unit}`, 60_000);
  await waitActive(120_000);
  check('privacy still on after a restart', (await vm.sh('pi-sim value 22')).trim() === '1');
  const off = await press();
  check('second press turns privacy off (LED 22 dark)', !off.privacyOn, `${off.ms} ms`);

  // --- Watchdog -----------------------------------------------------------------------------------
  const restartsBefore = Number((await vm.sh(`systemctl show -p NRestarts --value ${unit}`)).trim());
  const pid = (await vm.sh(`systemctl show -p MainPID --value ${unit}`)).trim();
  const stopStart = Date.now();
  await vm.sh(`kill -STOP ${pid}`);
  const restarted = await within(
    'watchdog restart',
    180_000,
    async () => {
      const out = await vm?.sh(`systemctl show -p NRestarts -p MainPID -p ActiveState ${unit}`);
      const restarts = Number(/NRestarts=(\d+)/.exec(out ?? '')?.[1]);
      const active = /ActiveState=active/.test(out ?? '');
      const newPid = /MainPID=(\d+)/.exec(out ?? '')?.[1];
      return restarts > restartsBefore && active && newPid !== pid ? restarts : undefined;
    },
    1000,
  ).catch(() => undefined);
  const watchdogMs = Date.now() - stopStart;
  const reason = await vm.sh(
    `journalctl -u ${unit} -b --no-pager -o cat | grep -c 'Watchdog timeout' || true`,
  );
  figures['SIGSTOP to restarted and ready (watchdog)'] = seconds(watchdogMs);
  check(
    'SIGSTOP of the main PID: systemd restarts it via the watchdog',
    restarted !== undefined && Number(reason.trim()) > 0,
    `NRestarts ${restartsBefore} -> ${restarted ?? '?'} in ${seconds(watchdogMs)}; "Watchdog timeout" lines: ${reason.trim()}`,
  );

  // --- Camera unplug ----------------------------------------------------------------------------
  const unplugStart = Date.now();
  await vm.sh('pi-sim camera-off');
  const fault = await within(
    'camera fault',
    60_000,
    async () =>
      heardSince(
        unplugStart,
        'event',
        (p) => p.type === 'fault' && p.fault === 'camera' && p.active === true,
      ) ?? heardSince(unplugStart, 'health', (p) => Array.isArray(p.faults) && p.faults.includes('camera')),
  ).catch(() => undefined);
  figures['camera unplug to fault'] = fault ? seconds(fault.at - unplugStart) : 'not seen';
  check(
    'rmmod vivid raises the camera fault on the broker',
    fault !== undefined,
    fault ? `${fault.topic} after ${seconds(fault.at - unplugStart)}` : '',
  );
  const replugStart = Date.now();
  await vm.sh('pi-sim camera-on');
  const cleared = await within('camera fault cleared', 60_000, async () =>
    heardSince(replugStart, 'event', (p) => p.type === 'fault' && p.fault === 'camera' && p.active === false),
  ).catch(() => undefined);
  figures['camera replug to fault cleared'] = cleared ? seconds(cleared.at - replugStart) : 'not seen';
  check('modprobe vivid clears it', cleared !== undefined);

  // --- Power cuts -------------------------------------------------------------------------------
  await vm.shutdown(60_000);
  const first = await e2fsck(disk);
  check(
    'file system clean after the first clean shutdown',
    first.replay <= 1 && first.check === 0,
    `e2fsck -p ${first.replay}, -fn ${first.check}`,
  );

  const actions = ['privacy', 'schedule', 'refusal', 'idle'] as const;
  const tally = {
    cuts: 0,
    boots: 0,
    stateFiles: 0,
    auditRecords: 0,
    badFiles: 0,
    privacyMismatch: 0,
    fsckDirty: 0,
    notReady: 0,
    journalReplays: 0,
  };
  // The privacy choice the service last reported on the broker (or, if a press was cut before its
  // event went out, either value is allowed for that one cut).
  let reportedPrivacy = false;
  const tallyText = (): void => {
    figures['power cuts'] =
      `${tally.cuts} cuts, ${tally.boots} boots, ${tally.notReady} not ready, ${tally.stateFiles} state files checked, ` +
      `${tally.auditRecords} audit lines read, ${tally.badFiles} unparsable, ${tally.privacyMismatch} privacy mismatches, ` +
      `${tally.journalReplays} journal replays, ${tally.fsckDirty} file systems with errors after replay`;
  };
  for (let i = 0; i < cuts; i += 1) {
    const action = actions[i % actions.length] ?? 'idle';
    const bootStart = Date.now();
    await boot();
    tally.boots += 1;
    const ready = await waitActive(180_000).then(
      () => true,
      () => false,
    );
    if (!ready) tally.notReady += 1;
    const bootToReady = Date.now() - bootStart;
    if (i === 0) figures['power-on to READY=1 (boot)'] = seconds(bootToReady);
    let pending: boolean | undefined;
    const since = Date.now();
    // Under TCG a press takes 1.5-2 s to reach the LED and the state file: a privacy cut falls anywhere
    // in 0-6 s, so some land before the press is handled, some during, some after it was reported.
    const jitter = Math.floor(Math.random() * (action === 'privacy' ? 6000 : 1500));
    if (ready && action === 'privacy') {
      pending = !reportedPrivacy;
      await vm.sh('pi-sim press; sleep 0.2; pi-sim release');
    } else if (ready && action === 'schedule') {
      await publishSchedule();
    } else if (ready && action === 'refusal') {
      await central.publishAsync(
        topic(deviceId, 'viewRequest'),
        JSON.stringify({
          schemaVersion: 2,
          type: 'request',
          requestId: `rig-cut-${i}`,
          grant: await signGrant(signer, grantClaims(deviceId, Date.now() - 3_600_000)),
        }),
        { qos: 1 },
      );
    } else {
      await delay(Math.floor(Math.random() * 4000));
    }
    await delay(jitter);
    await vm.kill();
    tally.cuts += 1;
    if (pending !== undefined) {
      const reported = heardSince(since, 'event', (p) => p.type === 'privacy' && p.source === 'button');
      if (reported) reportedPrivacy = reported.payload.privacyOn === true;
    }
    const fsck = await e2fsck(disk);
    if (fsck.replay > 1 || fsck.check !== 0) {
      tally.fsckDirty += 1;
      console.log(fsck.output.slice(0, 2000));
    }
    if (fsck.journal) tally.journalReplays += 1;
    const state = parseState(await stateFiles(disk));
    tally.stateFiles += state.parsed;
    tally.auditRecords += state.auditLines;
    tally.badFiles += state.bad.length;
    const privacyOk =
      state.privacyOn === reportedPrivacy || (pending !== undefined && state.privacyOn === pending);
    if (!privacyOk) tally.privacyMismatch += 1;
    if (state.privacyOn !== undefined && pending !== undefined) reportedPrivacy = state.privacyOn;
    console.log(
      `cut ${i + 1}/${cuts} (${action}, +${jitter} ms): ready ${ready ? seconds(bootToReady) : 'NO'}; ` +
        `e2fsck -p ${fsck.replay}${fsck.journal ? ' (journal replayed)' : ''} -fn ${fsck.check}; ` +
        `${state.parsed} state files, ${state.auditLines} audit lines, ${state.bad.length} bad; ` +
        `privacy ${state.privacyOn} (reported ${reportedPrivacy})${state.bad.length ? ` bad: ${state.bad.join(', ')}` : ''}`,
    );
    tallyText();
  }
  tallyText();
  check(
    'power cuts: every state file parses, privacy holds, the file system is clean',
    tally.cuts === cuts &&
      tally.badFiles === 0 &&
      tally.privacyMismatch === 0 &&
      tally.fsckDirty === 0 &&
      tally.notReady === 0,
    figures['power cuts'],
  );
}

let failed = false;
try {
  await main();
} catch (err) {
  failed = true;
  console.error(`rig aborted: ${err instanceof Error ? err.stack : String(err)}`);
  if (vm) console.error(`console log: ${vm.consoleLog}`);
  if (vm?.running) {
    const journal = await vm
      .exec(`journalctl -u ${unit} -b --no-pager -n 40 -o cat`, 20_000)
      .catch(() => undefined);
    if (journal) console.error(journal.out);
  }
} finally {
  const passed = summarise();
  await cleanup();
  if (failed || !passed) process.exitCode = 1;
}
