// The whole device service on simulated GPIO against the test broker, over TLS with its own client
// certificate, with time standing still at `nowMs` and the clock trusted.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import type { Clock } from '../../device/clock/index.js';
import { parseConfig } from '../../device/config/index.js';
import { openGpio, type SimGpio } from '../../device/hardware/index.js';
import { silentLogger } from '../../device/log/index.js';
import { schemaVersion, topic } from '../../device/protocol/index.js';
import { Service, type ServiceDeps } from '../../device/service.js';
import type { Broker } from './broker.js';
import { fixedWallClock } from './manual-clock.js';
import { nightlySchedule, signSchedule, type TestSigner } from './tokens.js';

export interface StartedService {
  service: Service;
  gpio: SimGpio;
  stateDir: string;
  /** The state directory was made for this service: `stopDeviceServices` removes it. */
  ownsStateDir: boolean;
}

/**
 * Starts a device service and resolves once it is connected and subscribed. The service is pushed on
 * `running` (when given) as soon as it has started, so the caller stops it even if connecting fails.
 */
export async function startDeviceService(options: {
  broker: Broker;
  signer: TestSigner;
  deviceId: string;
  /** Default a new temporary directory, removed by `stopDeviceServices`. */
  stateDir?: string;
  nowMs: number;
  /** Overrides the standing wall clock at `nowMs`, e.g. with a manual clock. */
  clock?: Clock;
  /** Config sections merged over the defaults (shallow, by top-level key), e.g. `{ limits: {...} }`. */
  config?: Record<string, unknown>;
  running?: StartedService[];
  /** Update agent overrides (architecture, running version, tick). */
  updates?: ServiceDeps['updates'];
  /** Resolve once started, without waiting for the broker (a device that cannot reach it). */
  noWait?: boolean;
}): Promise<StartedService> {
  const { broker, signer, deviceId, nowMs } = options;
  const ownsStateDir = options.stateDir === undefined;
  const stateDir = options.stateDir ?? mkdtempSync(join(tmpdir(), `tk-${deviceId}-`));
  const deviceCert = await broker.pki.clientCert(deviceId);
  const parsed = parseConfig({
    deviceId,
    stateDir,
    broker: {
      url: broker.url,
      caFile: broker.pki.caCert,
      certFile: deviceCert.cert,
      keyFile: deviceCert.key,
    },
    centralKeys: [{ kid: signer.kid, publicKeyPem: signer.publicKeyPem }],
    gpio: { kind: 'sim', viewingLed: { pin: 17 }, button: { pin: 27 } },
    clock: { mode: 'trusted' },
    ...options.config,
  });
  if (!parsed.ok) throw new Error(parsed.errors.join('\n'));
  const log = silentLogger();
  const gpio = await openGpio({ kind: 'sim', pins: parsed.config.gpio, log });
  const service = new Service({
    config: parsed.config,
    log,
    gpio,
    keys: signer.keys,
    tls: {
      ca: readFileSync(broker.pki.caCert),
      cert: readFileSync(deviceCert.cert),
      key: readFileSync(deviceCert.key),
    },
    clock: options.clock ?? fixedWallClock(nowMs),
    clockCheck: async () => ({ trusted: true, detail: 'test' }),
    ...(options.updates ? { updates: options.updates } : {}),
  });
  try {
    await service.start();
  } catch (error) {
    if (ownsStateDir) rmSync(stateDir, { recursive: true, force: true });
    throw error;
  }
  const started = { service, gpio, stateDir, ownsStateDir };
  options.running?.push(started);
  if (options.noWait) return started;
  // start() returns right after the link starts connecting, so `connected` cannot have fired yet.
  await new Promise<void>((resolve) => service.link?.once('connected', () => resolve()));
  return started;
}

/** Stops the services on `running` (emptying it) and removes the state directories made for them. */
export async function stopDeviceServices(running: StartedService[]): Promise<void> {
  for (const { service, stateDir, ownsStateDir } of running.splice(0)) {
    await service.stop();
    if (ownsStateDir) rmSync(stateDir, { recursive: true, force: true });
  }
}

/**
 * Publishes the signed nightly schedule (`nightlySchedule`, version `version`) to the device as the
 * central service does: QoS 1, retained unless `retain` is false.
 */
export async function publishSchedule(
  central: MqttClient,
  signer: TestSigner,
  deviceId: string,
  { version = 1, retain = true }: { version?: number; retain?: boolean } = {},
): Promise<void> {
  const token = await signSchedule(signer, nightlySchedule(deviceId, version));
  await central.publishAsync(topic(deviceId, 'schedule'), JSON.stringify({ schemaVersion, token }), {
    qos: 1,
    retain,
  });
}

/** Clears the retained schedule that `publishSchedule` left on the broker. */
export async function clearSchedule(central: MqttClient, deviceId: string): Promise<void> {
  await central.publishAsync(topic(deviceId, 'schedule'), '', { qos: 1, retain: true });
}
