// self-test against a real mosquitto (TLS, client certificates, the protocol ACL), simulated GPIO
// whose button the test presses when the CLI asks for it, and ffmpeg's/fswebcam's test sources.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../device/config/index.js';
import { SimGpio } from '../../device/hardware/index.js';
import { checkIds, type SelfTestReport } from '../../provisioning/index.js';
import { type Broker, startBroker } from '../../scripts/devstack/broker.js';
import { removeTestTempDir, testPki, testTempDir } from '../../scripts/devstack/pki.js';
import { type Capture, centralKeyFile, cliInProcess, signCsr } from './support.js';

let broker: Broker;
let dir: string;

beforeAll(async () => {
  broker = await startBroker();
  dir = testTempDir('selftest');
});

afterAll(async () => {
  await broker.stop();
  removeTestTempDir(dir);
});

/** The install-day path: provision, sign the CSR with the central CA, import the certificate. */
async function provisionDevice(deviceId: string, brokerUrl: string): Promise<string> {
  const pki = await testPki();
  const configDir = join(dir, deviceId);
  const provisioned = await cliInProcess(
    [
      'provision',
      '--non-interactive',
      '--config-dir',
      configDir,
      '--device-id',
      deviceId,
      '--broker-url',
      brokerUrl,
      '--ca-file',
      pki.caCert,
      '--central-key',
      await centralKeyFile(dir, `central-${deviceId}`),
      '--camera',
      'test',
      '--resolution',
      '320x240',
      '--gpio-kind',
      'sim',
      '--clock-mode',
      'trusted',
      '--state-dir',
      dir,
    ],
    { owner: null },
  );
  expect(provisioned.code).toBe(0);
  const signed = await signCsr(pki, join(configDir, 'device.csr'), join(configDir, 'signed.crt'));
  const imported = await cliInProcess(['provision', 'import-cert', signed, '--config-dir', configDir], {
    owner: null,
  });
  expect(imported.code).toBe(0);
  return configDir;
}

/** Simulated GPIO; the button is pressed as soon as the self-test asks for it. */
function simulatedHardware() {
  const opened: SimGpio[] = [];
  return {
    opened,
    openGpio: async (config: Config) => {
      const gpio = new SimGpio({ pins: config.gpio });
      opened.push(gpio);
      return gpio;
    },
    pressWhenAsked: (capture: Capture) => {
      capture.wait('Press the privacy button now').then(
        () => {
          const gpio = opened.at(-1);
          gpio?.button.press();
          setTimeout(() => gpio?.button.release(), 100);
        },
        () => undefined,
      );
    },
  };
}

const noSystemd = {
  unavailable: async () => 'no systemd',
  state: async () => 'unknown',
  stop: async () => undefined,
  start: async () => undefined,
};

/**
 * A running service as systemd would report it, holding the device's broker connection (its
 * certificate, client id tk-<id>) while active. Counts the times the broker closed that connection
 * other than by stop().
 */
async function runningService(deviceId: string) {
  const options = {
    ...(await broker.clientOptions(deviceId)),
    clientId: `tk-${deviceId}`,
    reconnectPeriod: 0,
  };
  const calls: string[] = [];
  const taken = { count: 0 };
  let client: MqttClient | undefined;
  const connectDevice = async () => {
    const connected = await mqtt.connectAsync(options);
    connected.on('close', () => {
      if (client === connected) taken.count += 1;
    });
    client = connected;
  };
  await connectDevice();
  return {
    calls,
    taken,
    close: () => client?.endAsync(true),
    control: {
      unavailable: async () => undefined,
      state: async () => (client ? 'active' : 'inactive'),
      stop: async () => {
        calls.push('stop');
        const stopping = client;
        client = undefined;
        await stopping?.endAsync();
        return undefined;
      },
      start: async () => {
        calls.push('start');
        await connectDevice();
        return undefined;
      },
    },
  };
}

describe('self-test', () => {
  it('passes every check with a reachable broker, the test camera and a confirmed LED', async () => {
    const configDir = await provisionDevice('selftest-ok', broker.url);
    const hardware = simulatedHardware();
    const snapshot = join(dir, 'aim.jpg');
    const result = await cliInProcess(
      [
        'self-test',
        '--json',
        '--config-dir',
        configDir,
        '--snapshot',
        snapshot,
        '--report',
        join(dir, 'report.md'),
        '--technician',
        'Anna Test',
      ],
      { openGpio: hardware.openGpio, service: noSystemd },
      { answers: ['y'], onStderr: hardware.pressWhenAsked },
    );
    const report = JSON.parse(result.stdout) as SelfTestReport;
    expect(report.checks.map((check) => check.id)).toEqual([...checkIds]);
    const statuses = Object.fromEntries(report.checks.map((check) => [check.id, check.status]));
    expect(statuses).toEqual({
      config: 'pass',
      clock: 'pass',
      disk: 'pass',
      broker: 'pass',
      'camera-present': 'pass',
      'camera-frame': 'pass',
      snapshot: 'pass',
      led: 'pass',
      button: 'pass',
      service: 'skipped',
    });
    expect(report.ok).toBe(true);
    expect(result.code).toBe(0);
    expect(report.deviceId).toBe('selftest-ok');

    // The LED blinked on the simulated pin, and it is off again.
    const gpio = hardware.opened[0]!;
    expect(gpio.events.filter((event) => event.led === 'viewing' && event.on).length).toBeGreaterThanOrEqual(
      5,
    );
    expect(gpio.viewingLed.value).toBe(false);

    const jpeg = await readFile(snapshot);
    expect([jpeg[0], jpeg[1]]).toEqual([0xff, 0xd8]);

    const markdown = await readFile(join(dir, 'report.md'), 'utf8');
    expect(markdown).toContain('Device id: selftest-ok');
    expect(markdown).toContain('Technician: Anna Test');
    expect(markdown).toContain('| Broker reachable (TLS, device certificate) | pass |');
  });

  it('pauses a running service for the broker check, whose login would replace its connection', async () => {
    const configDir = await provisionDevice('selftest-paused', broker.url);
    const hardware = simulatedHardware();
    const service = await runningService('selftest-paused');
    try {
      const result = await cliInProcess(
        ['self-test', '--json', '--config-dir', configDir, '--snapshot', join(dir, 'paused.jpg')],
        { openGpio: hardware.openGpio, service: service.control },
        { answers: ['y'], onStderr: hardware.pressWhenAsked },
      );
      const report = JSON.parse(result.stdout) as SelfTestReport;
      const statuses = Object.fromEntries(report.checks.map((check) => [check.id, check.status]));

      expect(statuses).toMatchObject({ broker: 'pass', service: 'pass' });
      expect(service.calls).toEqual(['stop', 'start']);
      expect(service.taken.count).toBe(0);
    } finally {
      await service.close();
    }
  });

  it('fails the broker check with a remedy and exits 1 when the broker is down', async () => {
    // A listener that is not running: the port of a broker started and stopped for this test.
    const gone = await startBroker();
    const url = gone.url;
    await gone.stop();
    const configDir = await provisionDevice('selftest-down', url);
    const hardware = simulatedHardware();
    const result = await cliInProcess(
      ['self-test', '--config-dir', configDir, '--yes', '--snapshot', join(dir, 'down.jpg')],
      { openGpio: hardware.openGpio, service: noSystemd },
      { onStdout: hardware.pressWhenAsked },
    );
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/✗ FAIL\s+Broker reachable \(TLS, device certificate\)\s+cannot reach/);
    expect(result.stdout).toContain('→ check the home network');
    expect(result.stdout).toContain('? NOT CONFIRMED Viewing LED blinks');
    expect(result.stdout).toContain('FAILED: fix what is marked');
  });

  it('fails the button check when nobody presses within the time limit', async () => {
    const configDir = await provisionDevice('selftest-nobutton', broker.url);
    const hardware = simulatedHardware();
    const result = await cliInProcess(
      [
        'self-test',
        '--json',
        '--yes',
        '--button-timeout',
        '1',
        '--config-dir',
        configDir,
        '--snapshot',
        join(dir, 'nb.jpg'),
      ],
      { openGpio: hardware.openGpio, service: noSystemd },
    );
    const report = JSON.parse(result.stdout) as SelfTestReport;
    const button = report.checks.find((check) => check.id === 'button');
    expect(button?.status).toBe('fail');
    expect(button?.remedy).toContain('gpio.button.pin');
    expect(result.code).toBe(1);
  });

  it('reports an unreadable config and skips the rest', async () => {
    const result = await cliInProcess(
      ['self-test', '--json', '--yes', '--config', join(dir, 'missing.json')],
      {
        service: noSystemd,
      },
    );
    const report = JSON.parse(result.stdout) as SelfTestReport;
    expect(report.checks[0]).toMatchObject({ id: 'config', status: 'fail' });
    expect(report.checks[0]?.remedy).toContain('provision');
    expect(report.checks.slice(1).every((check) => check.status === 'skipped')).toBe(true);
    expect(result.code).toBe(1);
  });
});
