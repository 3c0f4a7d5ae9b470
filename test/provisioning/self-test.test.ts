// self-test against a real mosquitto (TLS, client certificates, the protocol ACL), simulated GPIO
// whose button the test presses when the CLI asks for it, and ffmpeg's/fswebcam's test sources. The
// camera is used only with privacy off and the viewing LED lit, and the snapshot is not kept.
import { execFile } from 'node:child_process';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../device/config/index.js';
import { SimGpio } from '../../device/hardware/index.js';
import { checkIds, type SelfTestReport } from '../../provisioning/index.js';
import { type Runner, runFile } from '../../provisioning/run.js';
import { type Broker, startBroker } from '../../scripts/devstack/broker.js';
import { removeTestTempDir, testPki, testTempDir } from '../../scripts/devstack/pki.js';
import { type Capture, centralKeyFile, cliInProcess, signCsr } from './support.js';

const run = promisify(execFile);
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
async function provisionDevice(deviceId: string, brokerUrl: string, stateDir = dir): Promise<string> {
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
      stateDir,
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
    const tmpDir = join(dir, 'tmp-ok');
    await mkdir(tmpDir);
    const result = await cliInProcess(
      [
        'self-test',
        '--json',
        '--config-dir',
        configDir,
        '--report',
        join(dir, 'report.md'),
        '--technician',
        'Anna Test',
      ],
      { openGpio: hardware.openGpio, service: noSystemd, tmpDir },
      { answers: ['y', 'y'], onStderr: hardware.pressWhenAsked },
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

    // The viewing LED was lit for the frame and for the snapshot, then blinked 5 times, then
    // acknowledged the press; it is off again.
    const gpio = hardware.opened[0]!;
    const viewing = gpio.events.filter((event) => event.led === 'viewing');
    expect(viewing.filter((event) => event.on).length).toBe(2 + 5 + 1);
    expect(viewing.slice(0, 4).map((event) => event.on)).toEqual([true, false, true, false]);
    expect(gpio.viewingLed.value).toBe(false);

    // The snapshot was a JPEG, the technician was asked about it, and it is gone with its directory.
    const snapshot = report.checks.find((check) => check.id === 'snapshot');
    expect(snapshot?.detail).toMatch(
      /^a JPEG of \d+ KiB, no camera controls \(not a V4L2 camera\), mean brightness \d+\/255, aim checked by the technician, deleted$/,
    );
    expect(result.stderr).toMatch(/The snapshot is .*\/trygghetskamera-aim-\w+\/aim\.jpg/);
    expect(await readdir(tmpDir)).toEqual([]);

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
        ['self-test', '--json', '--config-dir', configDir],
        { openGpio: hardware.openGpio, service: service.control },
        { answers: ['y', 'y'], onStderr: hardware.pressWhenAsked },
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
      ['self-test', '--config-dir', configDir, '--yes'],
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
      ['self-test', '--json', '--yes', '--button-timeout', '1', '--config-dir', configDir],
      { openGpio: hardware.openGpio, service: noSystemd },
    );
    const report = JSON.parse(result.stdout) as SelfTestReport;
    const button = report.checks.find((check) => check.id === 'button');
    expect(button?.status).toBe('fail');
    expect(button?.remedy).toContain('gpio.button.pin');
    expect(result.code).toBe(1);
  });

  it.each([
    [
      'fails with a remedy when the night snapshot is too dark',
      '0x141414',
      'fail',
      /mean brightness 20\/255: too dark/,
    ],
    [
      'passes a night snapshot an IR camera lit',
      '0x787878',
      'not-confirmed',
      /mean brightness 120\/255, deleted unseen/,
    ],
  ])('%s (an ffmpeg picture as the snapshot)', async (_name, color, status, detail) => {
    const configDir = await provisionDevice(`selftest-night-${color}`, broker.url);
    const hardware = simulatedHardware();
    const takeSnapshot = async (options: { file: string }) => {
      await run('ffmpeg', [
        '-hide_banner',
        '-loglevel',
        'error',
        '-y',
        '-f',
        'lavfi',
        '-i',
        `color=c=${color}:s=320x240`,
        '-frames:v',
        '1',
        options.file,
      ]);
      return { ok: true as const, detail: 'a JPEG of 1 KiB' };
    };
    const result = await cliInProcess(
      ['self-test', '--json', '--yes', '--config-dir', configDir],
      { openGpio: hardware.openGpio, service: noSystemd, takeSnapshot },
      { onStderr: hardware.pressWhenAsked },
    );
    const report = JSON.parse(result.stdout) as SelfTestReport;
    const snapshot = report.checks.find((check) => check.id === 'snapshot');
    expect(snapshot?.status).toBe(status);
    expect(snapshot?.detail).toMatch(detail);
    if (status === 'fail') expect(snapshot?.remedy).toMatch(/IR camera .* night light/);
  });

  it('takes no frame and no snapshot while the stored privacy mode is on, and says why', async () => {
    const stateDir = join(dir, 'state-privacy');
    await mkdir(stateDir);
    await writeFile(
      join(stateDir, 'privacy.json'),
      '{"privacyOn":true,"changedAt":"2026-03-10T21:02:11.540Z"}\n',
    );
    const configDir = await provisionDevice('selftest-privacy', broker.url, stateDir);
    const hardware = simulatedHardware();
    const tmpDir = join(dir, 'tmp-privacy');
    await mkdir(tmpDir);
    const run: Runner = async (file, args, options) => {
      if (file.endsWith('ffmpeg')) throw new Error('ffmpeg must not be started while privacy is on');
      return runFile(file, args, options);
    };
    const result = await cliInProcess(
      ['self-test', '--json', '--yes', '--config-dir', configDir],
      { openGpio: hardware.openGpio, service: noSystemd, tmpDir, run },
      { onStderr: hardware.pressWhenAsked },
    );
    const report = JSON.parse(result.stdout) as SelfTestReport;
    const byId = Object.fromEntries(report.checks.map((check) => [check.id, check]));
    expect(byId['camera-present']?.status).toBe('pass');
    for (const id of ['camera-frame', 'snapshot'] as const) {
      expect(byId[id]?.status, id).toBe('skipped');
      expect(byId[id]?.detail, id).toMatch(
        /^privacy mode is on \(since 2026-03-10T21:02:11\.540Z\): no frame is taken while it is; ask the resident/,
      );
    }
    // The viewing LED lit only for the LED check and the button's acknowledgement, never for a capture.
    const gpio = hardware.opened[0]!;
    expect(gpio.events.filter((event) => event.led === 'viewing' && event.on).length).toBe(5 + 1);
    expect(await readdir(tmpDir)).toEqual([]);
    // Skipped is not failed: the technician is not sent back for the resident's choice.
    expect(report.ok).toBe(true);
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
