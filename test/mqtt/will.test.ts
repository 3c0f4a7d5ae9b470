// The last will with a real device process: `node --import tsx device/main.ts` against a real
// mosquitto over mTLS is SIGKILLed; the broker publishes `offline` with the same connection counter
// as the `online` it replaces, and the next start comes online with a higher counter (persisted).
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConfigInput } from '../../device/config/index.js';
import { type Broker, startBroker } from '../../scripts/devstack/broker.js';
import { createSigner } from '../../scripts/devstack/tokens.js';
import { waitForValue } from '../support/process.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const deviceId = 'dev-will';
let broker: Broker;
let dir: string;
let central: MqttClient;
const statuses: Array<{ state: string; connection: number; atMs: number }> = [];
const children = new Set<ChildProcess>();

beforeAll(async () => {
  broker = await startBroker();
  dir = await mkdtemp(join(tmpdir(), 'tk-will-'));
  central = mqtt.connect({ ...(await broker.clientOptions('central')), reconnectPeriod: 0 });
  central.on('message', (_topic, payload) => {
    const body = JSON.parse(payload.toString()) as { state: string; connection: number };
    statuses.push({ ...body, atMs: performance.now() });
  });
  await new Promise((resolve) => central.once('connect', resolve));
  await central.subscribeAsync(`tk/${deviceId}/status`, { qos: 1 });
});

afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  await central?.endAsync(true);
  await broker?.stop();
  await rm(dir, { recursive: true, force: true });
});

async function writeConfig(): Promise<string> {
  const files = await broker.pki.clientCert(deviceId);
  const config: ConfigInput = {
    deviceId,
    stateDir: join(dir, 'state'),
    broker: {
      url: broker.url,
      caFile: broker.pki.caCert,
      certFile: files.cert,
      keyFile: files.key,
      keepaliveS: 5,
      reconnect: { initialMs: 200, maxMs: 2000 },
    },
    centralKeys: [{ kid: 'central-1', publicKeyPem: (await createSigner('central-1')).publicKeyPem }],
    gpio: { kind: 'sim', viewingLed: { pin: 17 }, button: { pin: 27 } },
    camera: { source: { kind: 'test' } },
    clock: { mode: 'trusted' },
    log: { level: 'warn' },
  };
  const path = join(dir, 'config.json');
  await writeFile(path, JSON.stringify(config));
  return path;
}

function startDevice(configPath: string): ChildProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', 'device/main.ts', '--config', configPath], {
    cwd: root,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

describe('the last will of a device process', () => {
  it('is delivered as offline with the counter of the connection that died, and the next start counts on', async () => {
    const configPath = await writeConfig();
    const first = startDevice(configPath);
    const online = await waitForValue(() => statuses.find((s) => s.state === 'online'), 20_000);
    const exited = new Promise((resolve) => first.once('exit', resolve));
    const killedAt = performance.now();
    first.kill('SIGKILL');
    await exited;
    const will = await waitForValue(
      () => statuses.find((s) => s.state === 'offline' && s.atMs >= killedAt),
      15_000,
    );
    expect(will.connection).toBe(online.connection);
    console.log(
      `will delivered ${Math.round(will.atMs - killedAt)} ms after SIGKILL (socket closed by the kernel)`,
    );

    const second = startDevice(configPath);
    const again = await waitForValue(
      () => statuses.find((s) => s.state === 'online' && s.atMs > will.atMs),
      20_000,
    );
    expect(again.connection).toBeGreaterThan(online.connection);
    const stopped = new Promise<number | null>((resolve) => second.once('exit', resolve));
    second.kill('SIGTERM');
    expect(await stopped).toBe(0); // a clean stop on SIGTERM exits 0 (main.ts)
    const clean = await waitForValue(
      () => statuses.find((s) => s.state === 'offline' && s.atMs > again.atMs),
      5_000,
    );
    expect(clean.connection).toBe(again.connection);
  });
});
