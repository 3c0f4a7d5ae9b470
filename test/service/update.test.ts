// Updates through the running service, against a real mosquitto over TLS and a local HTTPS server
// whose certificate comes from the device's provisioned CA: a signed manifest retained on
// tk/<id>/update is downloaded, checked and handed to the root-side guard (the real runGuard, with a
// fake dpkg as the final install step), the new version proves itself and reports update-committed,
// a version that never proves itself is rolled back and the old one reports update-failed, nothing
// happens during a look or inside a window until it closes, and a bad signature, a wrong hash or an
// older version is refused with a reason event.
import { createHash } from 'node:crypto';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { schemaVersion, topic, UpdateEvent, updateTokenType } from '../../device/protocol/index.js';
import { type GuardDeps, provenSince, runGuard } from '../../device/update/index.js';
import { guardUnit } from '../../device/update/wiring.js';
import { type Broker, startBroker } from '../../scripts/devstack/broker.js';
import { fixedWallClock } from '../../scripts/devstack/manual-clock.js';
import {
  createSigner,
  grantClaims,
  inWindowMs,
  nightlySchedule,
  signClaims,
  signGrant,
  signSchedule,
  type TestSigner,
} from '../../scripts/devstack/tokens.js';
import { type StartedService, startDeviceService } from '../support/device-service.js';
import { fakeDeps, installed } from '../update/fake-dpkg.js';

// Wednesday 2026-11-25 12:00 in Stockholm: no check-in window (the nightly one is 22:00-07:00).
const middayMs = Date.UTC(2026, 10, 25, 11, 0);
// The wall clock starts where a test sets it and runs on in real time (the guard's trial counts it).
let wallBase = { atMs: middayMs, realMs: Date.now() };
const wallMs = () => wallBase.atMs + (Date.now() - wallBase.realMs);
const setWall = (atMs: number) => {
  wallBase = { atMs, realMs: Date.now() };
};
const clock = fixedWallClock(wallMs);

let broker: Broker;
let signer: TestSigner;
let impostor: TestSigner;
let central: MqttClient;
let server: Server;
let base: string;
const downloads: string[] = [];
const received: Array<{ topic: string; message: Record<string, unknown> }> = [];
const running: StartedService[] = [];
const dirs: string[] = [];

/** A fake dpkg's package (fake-dpkg.ts): its content names its version. */
const packageBody = (version: string) => Buffer.from(`version=${version}\n`);
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

beforeAll(async () => {
  broker = await startBroker();
  signer = await createSigner('central-1');
  impostor = await createSigner('central-1');
  central = await mqtt.connectAsync(await broker.clientOptions('central'));
  central.on('message', (name, payload) => {
    if (payload.length === 0) return;
    received.push({ topic: name, message: JSON.parse(payload.toString()) as Record<string, unknown> });
  });
  await central.subscribeAsync(['tk/+/event', 'tk/+/info'], { qos: 1 });
  server = createServer(
    { cert: readFileSync(broker.pki.server.cert), key: readFileSync(broker.pki.server.key) },
    (req, res) => {
      const match = /^\/tk_([0-9a-z.+-]+)_amd64\.deb$/.exec(req.url ?? '');
      downloads.push(req.url ?? '');
      if (match?.[1]) res.end(packageBody(match[1]));
      else res.writeHead(404).end();
    },
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `https://localhost:${(server.address() as AddressInfo).port}`;
});

afterEach(async () => {
  for (const { service } of running.splice(0)) await service.stop();
  setWall(middayMs);
});

afterAll(async () => {
  await central?.endAsync();
  await broker?.stop();
  await new Promise((resolve) => server?.close(resolve));
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function newStateDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'tk-service-update-'));
  dirs.push(dir);
  return dir;
}

/** Systemd unit directories holding the guard's path unit, as the Debian package installs it. */
function unitDirsWithGuard(): string[] {
  const dir = newStateDir();
  copyFileSync(new URL('../../systemd/trygghetskamera-update.path', import.meta.url), join(dir, guardUnit));
  return [dir];
}

function start(
  deviceId: string,
  stateDir: string,
  runningVersion: string | undefined,
  options: { noWait?: boolean; config?: Record<string, unknown>; unitDirs?: string[] } = {},
) {
  const { unitDirs = unitDirsWithGuard(), ...rest } = options;
  return startDeviceService({
    broker,
    signer,
    deviceId,
    stateDir,
    nowMs: middayMs,
    clock,
    running,
    updates: {
      arch: 'amd64',
      ...(runningVersion ? { runningVersion } : {}),
      checkIntervalMs: 100,
      unitDirs,
    },
    ...rest,
  });
}

async function stop(started: StartedService): Promise<void> {
  running.splice(running.indexOf(started), 1);
  await started.service.stop();
}

async function manifest(
  deviceId: string,
  version: string,
  options: { signer?: TestSigner; sha256?: string } = {},
): Promise<string> {
  const claims = {
    aud: deviceId,
    version,
    packages: {
      amd64: {
        url: `${base}/tk_${version}_amd64.deb`,
        sha256: options.sha256 ?? sha256(packageBody(version)),
      },
    },
  };
  return signClaims(options.signer ?? signer, claims, updateTokenType);
}

async function publishManifest(deviceId: string, token: string): Promise<void> {
  await central.publishAsync(topic(deviceId, 'update'), JSON.stringify({ schemaVersion, token }), {
    qos: 1,
    retain: true,
  });
}

/** Update events of one device, in arrival order, each once (the outbox may re-send by id). */
function updateEvents(deviceId: string): Array<Record<string, unknown>> {
  const seen = new Set<unknown>();
  return received
    .filter((r) => r.topic === `tk/${deviceId}/event` && String(r.message.type).startsWith('update-'))
    .map((r) => r.message)
    .filter((m) => !seen.has(m.id) && seen.add(m.id) !== undefined);
}

async function until<T>(check: () => T | undefined | false, what: string, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

const event = (deviceId: string, match: Record<string, unknown>) =>
  until(
    () => updateEvents(deviceId).find((m) => Object.entries(match).every(([k, v]) => m[k] === v)),
    `event ${JSON.stringify(match)}`,
  );

/**
 * The real guard on the service's hand-over, with a fake dpkg whose install "restarts the service"
 * into the installed version (what the package's postinst does), and the guard-main proof check
 * without systemctl.
 */
function guardDeps(deviceId: string, stateDir: string, onInstalled: (version: string) => Promise<void>) {
  const root = join(stateDir, 'fake-dpkg');
  mkdirSync(root);
  writeFileSync(join(root, 'installed'), '1.0.0\n');
  const fake = fakeDeps({ root, keys: signer.keys, deviceId });
  const deps: GuardDeps = {
    ...fake,
    updatesDir: join(stateDir, 'updates'),
    inboxDir: join(stateDir, 'update-inbox'),
    arch: 'amd64',
    async install(deb) {
      const result = await fake.install(deb);
      const now = await installed(root);
      if (result.ok && now) await onInstalled(now);
      return result;
    },
    proven: (version, sinceMs) => provenSince(join(stateDir, 'update-proof.json'), version, sinceMs),
    nowMs: wallMs,
    sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    pollMs: 50,
    trialMs: 4_000,
  };
  return { deps, root };
}

describe('updates through the running service', () => {
  it('downloads a signed manifest over HTTPS, hands it to the guard, and the new version commits itself', async () => {
    const deviceId = 'dev-upd-good';
    const stateDir = newStateDir();
    let current = await start(deviceId, stateDir, '1.0.0');
    const token = await manifest(deviceId, '1.1.0');
    await publishManifest(deviceId, token);

    await event(deviceId, { type: 'update-installing', version: '1.1.0', running: '1.0.0' });
    expect(updateEvents(deviceId).map((m) => m.type)).toEqual(['update-downloaded', 'update-installing']);
    expect(downloads).toContain('/tk_1.1.0_amd64.deb');
    const inbox = join(stateDir, 'update-inbox');
    expect(JSON.parse(readFileSync(join(inbox, 'request.json'), 'utf8'))).toEqual({ token });
    expect(readFileSync(join(inbox, 'package.deb'))).toEqual(packageBody('1.1.0'));

    const { deps } = guardDeps(deviceId, stateDir, async (version) => {
      await stop(current);
      current = await start(deviceId, stateDir, version);
    });
    const result = await runGuard(deps);

    expect(result).toEqual({ outcome: 'committed', version: '1.1.0' });
    await event(deviceId, { type: 'update-committed', version: '1.1.0', running: '1.1.0' });
    // The retained manifest comes again at every connect; it is not acted on twice, nor reported.
    await stop(current);
    current = await start(deviceId, stateDir, '1.1.0');
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(updateEvents(deviceId).map((m) => m.type)).toEqual([
      'update-downloaded',
      'update-installing',
      'update-committed',
    ]);
    expect(downloads.filter((d) => d === '/tk_1.1.0_amd64.deb')).toHaveLength(1);
  });

  it('rolls back a version that never proves itself, and the old version reports update-failed', async () => {
    const deviceId = 'dev-upd-rollback';
    const stateDir = newStateDir();
    let current = await start(deviceId, stateDir, '1.0.0');
    await publishManifest(deviceId, await manifest(deviceId, '1.2.0'));
    await event(deviceId, { type: 'update-installing', version: '1.2.0' });

    const cert = await broker.pki.clientCert(deviceId);
    const { deps, root } = guardDeps(deviceId, stateDir, async (version) => {
      await stop(current);
      // The new version cannot reach the broker: it never proves itself.
      const unreachable = {
        url: 'mqtts://127.0.0.1:9',
        caFile: broker.pki.caCert,
        certFile: cert.cert,
        keyFile: cert.key,
      };
      current =
        version === '1.2.0'
          ? await start(deviceId, stateDir, version, { noWait: true, config: { broker: unreachable } })
          : await start(deviceId, stateDir, version);
    });
    const result = await runGuard(deps);

    expect(result).toEqual({ outcome: 'rolled-back', version: '1.0.0', reason: 'health-timeout' });
    expect(readFileSync(join(root, 'dpkg.log'), 'utf8').trim().split('\n')).toEqual([
      'install 1.2.0',
      'install 1.0.0',
    ]);
    await event(deviceId, {
      type: 'update-failed',
      version: '1.2.0',
      running: '1.0.0',
      reason: 'health-timeout',
    });
    expect(existsSync(join(stateDir, 'update-proof.json'))).toBe(false);
    // The retained manifest comes again to the old version: handed over once, it is not tried again.
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(downloads.filter((d) => d === '/tk_1.2.0_amd64.deb')).toHaveLength(1);
    expect(existsSync(join(stateDir, 'update-inbox', 'request.json'))).toBe(false);
  });

  it('waits during a look and inside a check-in window, and installs once the window has closed', async () => {
    const deviceId = 'dev-upd-wait';
    const stateDir = newStateDir();
    setWall(inWindowMs);
    await central.publishAsync(
      topic(deviceId, 'schedule'),
      JSON.stringify({ schemaVersion, token: await signSchedule(signer, nightlySchedule(deviceId)) }),
      { qos: 1, retain: true },
    );
    const { service, gpio } = await start(deviceId, stateDir, '1.0.0');
    await until(() => service.supervisor.schedule !== undefined, 'schedule');
    const claims = grantClaims(deviceId, wallMs());
    await central.publishAsync(
      topic(deviceId, 'viewRequest'),
      JSON.stringify({
        schemaVersion,
        type: 'request',
        requestId: 'r-1',
        grant: await signGrant(signer, claims),
      }),
      { qos: 1 },
    );
    await until(() => gpio.viewingLed.value, 'a look (LED on)');

    await publishManifest(deviceId, await manifest(deviceId, '1.3.0'));
    await event(deviceId, { type: 'update-waiting', version: '1.3.0', reason: 'view-active' });
    gpio.button.press(); // privacy on: the look ends, the window is still open
    await event(deviceId, { type: 'update-waiting', reason: 'inside-window' });
    gpio.button.release();
    expect(downloads).not.toContain('/tk_1.3.0_amd64.deb');
    expect(existsSync(join(stateDir, 'update-inbox', 'request.json'))).toBe(false);

    // 07:30 in Stockholm: the window closed at 07:00, the next opens at 22:00.
    setWall(Date.UTC(2026, 10, 25, 6, 30));
    await event(deviceId, { type: 'update-installing', version: '1.3.0' });
    expect(downloads).toContain('/tk_1.3.0_amd64.deb');
    expect(existsSync(join(stateDir, 'update-inbox', 'request.json'))).toBe(true);
    await central.publishAsync(topic(deviceId, 'schedule'), '', { qos: 1, retain: true });
  });

  it('refuses a bad signature, an older version and a wrong hash with a reason, and hands over nothing', async () => {
    const deviceId = 'dev-upd-refuse';
    const stateDir = newStateDir();
    await start(deviceId, stateDir, '1.0.0');
    // The manifest of the version that runs is no news: no event.
    await publishManifest(deviceId, await manifest(deviceId, '1.0.0'));
    await publishManifest(deviceId, await manifest(deviceId, '1.1.0', { signer: impostor }));
    await event(deviceId, { type: 'update-refused', reason: 'bad-signature' });
    await publishManifest(deviceId, await manifest(deviceId, '0.9.0'));
    await event(deviceId, { type: 'update-refused', version: '0.9.0', reason: 'not-newer' });
    await publishManifest(deviceId, await manifest(deviceId, '1.1.0', { sha256: '0'.repeat(64) }));
    await event(deviceId, { type: 'update-failed', version: '1.1.0', reason: 'hash-mismatch' });

    expect(updateEvents(deviceId).map((m) => `${m.type} ${m.reason}`)).toEqual([
      'update-refused bad-signature',
      'update-refused not-newer',
      'update-failed hash-mismatch',
    ]);
    expect(updateEvents(deviceId)[0]).not.toHaveProperty('version');
    const inbox = join(stateDir, 'update-inbox');
    expect(existsSync(join(inbox, 'request.json'))).toBe(false);
    expect(existsSync(join(inbox, 'package.deb'))).toBe(false);
    expect(existsSync(join(inbox, 'package.deb.part'))).toBe(false);
  });

  it('decides on the version it runs, which is the firmware its info reports', async () => {
    const deviceId = 'dev-upd-info';
    await start(deviceId, newStateDir(), undefined);
    const info = await until(() => received.find((r) => r.topic === `tk/${deviceId}/info`)?.message, 'info');
    await publishManifest(deviceId, await manifest(deviceId, '0.0.1'));
    const refused = await event(deviceId, { type: 'update-refused', reason: 'not-newer' });
    expect(refused.running).toBe(info.firmware);
    expect(info.firmware).toBe(
      JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version,
    );
  });

  it('refuses every manifest when it cannot tell its own version, with an event that leaves running out', async () => {
    const deviceId = 'dev-upd-unknown';
    const stateDir = newStateDir();
    await start(deviceId, stateDir, 'a-dev-build');
    await publishManifest(deviceId, await manifest(deviceId, '9.0.0'));
    const refused = await event(deviceId, { type: 'update-refused', reason: 'running-version-unknown' });
    expect(refused).not.toHaveProperty('running');
    expect(UpdateEvent.safeParse(refused).success).toBe(true);
    expect(existsSync(join(stateDir, 'update-inbox', 'request.json'))).toBe(false);
  });

  it('refuses every manifest without an update guard (install.sh), also one handed over before, and clears that hand-over', async () => {
    const deviceId = 'dev-upd-noguard';
    const stateDir = newStateDir();
    // An earlier version handed an update over that no guard ever took.
    const inbox = join(stateDir, 'update-inbox');
    mkdirSync(inbox);
    writeFileSync(join(inbox, 'package.deb'), packageBody('1.0.5'));
    writeFileSync(
      join(inbox, 'request.json'),
      `${JSON.stringify({ token: await manifest(deviceId, '1.0.5') })}\n`,
    );
    await start(deviceId, stateDir, '1.0.0', { unitDirs: [newStateDir()] });
    await publishManifest(deviceId, await manifest(deviceId, '1.7.0'));
    const refused = await event(deviceId, { type: 'update-refused', reason: 'no-update-guard' });
    expect(refused).toMatchObject({ version: '1.7.0', running: '1.0.0' });
    expect(updateEvents(deviceId).map((m) => `${m.type} ${m.reason}`)).toEqual([
      'update-refused no-update-guard',
    ]);
    expect(existsSync(join(inbox, 'request.json'))).toBe(false);
    expect(existsSync(join(inbox, 'package.deb'))).toBe(false);
    expect(downloads.filter((url) => url.includes('1.7.0'))).toEqual([]);
  });
});
