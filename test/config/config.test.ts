// The config file: a minimal demo-like config gets safe defaults, every bad input is an error line
// naming its field, and the entry point refuses a bad file with exit code 78 (EX_CONFIG).
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ConfigInput, loadConfig, parseConfig } from '../../device/config/index.js';
import { createSigner } from '../../scripts/devstack/tokens.js';

let publicKeyPem: string;
let dir: string;

beforeAll(async () => {
  publicKeyPem = (await createSigner('central-1')).publicKeyPem;
  dir = await mkdtemp(join(tmpdir(), 'tk-config-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The smallest config the demo runs with: loopback broker, one inline key, simulated GPIO. */
function minimal(): ConfigInput {
  return {
    deviceId: 'cam-demo-1',
    broker: { url: 'mqtt://127.0.0.1:1883' },
    centralKeys: [{ kid: 'central-1', publicKeyPem }],
    gpio: { kind: 'sim', viewingLed: { pin: 17 }, privacyLed: { pin: 22 }, button: { pin: 27 } },
  };
}

function errorsOf(raw: unknown): string[] {
  const result = parseConfig(raw);
  if (result.ok) throw new Error('expected the config to be refused');
  return result.errors;
}

describe('a minimal valid config', () => {
  it('parses', () => {
    expect(parseConfig(minimal()).ok).toBe(true);
  });

  it('defaults the time zone to Europe/Stockholm', () => {
    const result = parseConfig(minimal());
    expect(result.ok && result.config.timeZone).toBe('Europe/Stockholm');
  });

  it('fills every default section with its safe values', () => {
    const result = parseConfig(minimal());
    if (!result.ok) throw new Error(result.errors.join('\n'));
    expect(result.config).toMatchObject({
      stateDir: '/var/lib/trygghetskamera',
      broker: { url: 'mqtt://127.0.0.1:1883', keepaliveS: 30 },
      camera: { source: { kind: 'v4l2', device: '/dev/video0' }, width: 1280, height: 720, fps: 15 },
      clock: {
        mode: 'kernel',
        syncedFile: '/run/systemd/timesync/synchronized',
        checkIntervalS: 10,
        floorToleranceS: 120,
        floorSaveIntervalS: 600,
        stepThresholdMs: 2000,
      },
      limits: {
        maxViewDurationS: 120,
        maxGrantLifetimeS: 600,
        nbfLeewayS: 5,
        inbound: {
          requests: { perS: 20, burst: 40 },
          other: { perS: 50, burst: 100 },
          schedules: { perS: 1, burst: 5 },
        },
      },
      webrtc: { iceServers: [] },
      health: { intervalS: 60 },
      outbox: { maxRecords: 10_000, maxBytes: 8_388_608, resendS: 60, maxResendS: 1800 },
      audit: { retentionDays: 365, maxBytes: 52_428_800, refusalIntervalS: 60 },
      log: { level: 'info' },
    });
  });

  it('fills the GPIO defaults: LEDs active high, button active low with 50 ms debounce and 3 s long press', () => {
    const result = parseConfig(minimal());
    expect(result.ok && result.config.gpio).toEqual({
      kind: 'sim',
      viewingLed: { pin: 17, activeLow: false },
      privacyLed: { pin: 22, activeLow: false },
      button: { pin: 27, activeLow: true, debounceMs: 50, longPressMs: 3000 },
    });
  });

  it('defaults the GPIO kind to real onoff pins when not given', () => {
    const { kind: _kind, ...gpio } = minimal().gpio;
    const result = parseConfig({ ...minimal(), gpio });
    expect(result.ok && result.config.gpio.kind).toBe('onoff');
  });

  it('accepts plain mqtt:// to localhost and to [::1]', () => {
    expect(parseConfig({ ...minimal(), broker: { url: 'mqtt://localhost:1883' } }).ok).toBe(true);
    expect(parseConfig({ ...minimal(), broker: { url: 'mqtt://[::1]:1883' } }).ok).toBe(true);
  });

  it('accepts mqtts:// to a remote broker with caFile, certFile and keyFile', () => {
    const broker = {
      url: 'mqtts://broker.example.com:8883',
      caFile: '/etc/trygghetskamera/ca.pem',
      certFile: '/etc/trygghetskamera/device.pem',
      keyFile: '/etc/trygghetskamera/device.key',
    };
    expect(parseConfig({ ...minimal(), broker }).ok).toBe(true);
  });

  it('accepts another IANA time zone', () => {
    const result = parseConfig({ ...minimal(), timeZone: 'America/New_York' });
    expect(result.ok && result.config.timeZone).toBe('America/New_York');
  });

  it('takes a longer negotiation timeout for slow hardware, and none by default', () => {
    const slow = parseConfig({ ...minimal(), webrtc: { negotiationTimeoutS: 60 } });
    expect(slow.ok && slow.config.webrtc.negotiationTimeoutS).toBe(60);
    const plain = parseConfig(minimal());
    expect(plain.ok && plain.config.webrtc.negotiationTimeoutS).toBeUndefined();
  });
});

describe('a bad config gives an error line naming the field', () => {
  it('refuses a device id with capitals and underscores', () => {
    expect(errorsOf({ ...minimal(), deviceId: 'Cam_1' })).toEqual([
      expect.stringMatching(/^deviceId: a device id is/),
    ]);
  });

  it('refuses a negotiation timeout under 5 s or over 120 s', () => {
    expect(errorsOf({ ...minimal(), webrtc: { negotiationTimeoutS: 2 } })).toEqual([
      expect.stringMatching(/^webrtc\.negotiationTimeoutS: /),
    ]);
    expect(errorsOf({ ...minimal(), webrtc: { negotiationTimeoutS: 600 } })).toEqual([
      expect.stringMatching(/^webrtc\.negotiationTimeoutS: /),
    ]);
  });

  it('refuses a device id starting with -', () => {
    expect(errorsOf({ ...minimal(), deviceId: '-cam-1' })).toEqual([expect.stringMatching(/^deviceId: /)]);
  });

  it('refuses plain mqtt:// to a non-loopback host', () => {
    expect(errorsOf({ ...minimal(), broker: { url: 'mqtt://broker.example.com:1883' } })).toEqual([
      'broker.url: plain mqtt:// is allowed only to a loopback broker; use mqtts://',
    ]);
  });

  it('refuses plain mqtt:// to a host that merely starts like a loopback address', () => {
    expect(errorsOf({ ...minimal(), broker: { url: 'mqtt://127.0.0.1.example.com' } })).toEqual([
      expect.stringMatching(/^broker\.url: plain mqtt:\/\//),
    ]);
  });

  it('refuses a broker URL that is not MQTT', () => {
    expect(errorsOf({ ...minimal(), broker: { url: 'http://127.0.0.1:1883' } })).toEqual([
      expect.stringMatching(/^broker\.url: must be an mqtts:\/\/ URL/),
    ]);
  });

  it('refuses a broker URL that is not a URL at all, with an error line rather than an exception', () => {
    expect(errorsOf({ ...minimal(), broker: { url: 'broker on the LAN' } })).toEqual([
      expect.stringMatching(/^broker\.url: /),
    ]);
  });

  it('refuses mqtts:// without certFile, naming certFile', () => {
    const broker = {
      url: 'mqtts://broker.example.com:8883',
      caFile: '/etc/tk/ca.pem',
      keyFile: '/etc/tk/device.key',
    };
    expect(errorsOf({ ...minimal(), broker })).toEqual([
      expect.stringMatching(/^broker\.certFile: an mqtts:\/\//),
    ]);
  });

  it('refuses MQTTS:// in capitals without certificate files, naming certFile', () => {
    expect(errorsOf({ ...minimal(), broker: { url: 'MQTTS://broker.example.com:8883' } })).toEqual([
      expect.stringMatching(/^broker\.certFile: /),
    ]);
  });

  it('refuses an unknown time zone', () => {
    expect(errorsOf({ ...minimal(), timeZone: 'Europe/Gothenburg' })).toEqual([
      'timeZone: not a known IANA time zone: no /usr/share/zoneinfo/Europe/Gothenburg',
    ]);
  });

  it('refuses two GPIO functions on the same pin, naming gpio', () => {
    const gpio = { kind: 'sim' as const, viewingLed: { pin: 17 }, button: { pin: 17 } };
    expect(errorsOf({ ...minimal(), gpio })).toEqual([
      'gpio: viewingLed, privacyLed and button must use different pins',
    ]);
  });

  it('refuses the privacy LED on the button pin', () => {
    const gpio = {
      kind: 'sim' as const,
      viewingLed: { pin: 17 },
      privacyLed: { pin: 27 },
      button: { pin: 27 },
    };
    expect(errorsOf({ ...minimal(), gpio })).toEqual([expect.stringMatching(/^gpio: /)]);
  });

  it('refuses a pin above 63, naming the pin', () => {
    const gpio = { kind: 'sim' as const, viewingLed: { pin: 17 }, button: { pin: 64 } };
    expect(errorsOf({ ...minimal(), gpio })).toEqual([expect.stringMatching(/^gpio\.button\.pin: /)]);
  });

  it('refuses a negative pin, naming the pin', () => {
    const gpio = { kind: 'sim' as const, viewingLed: { pin: -1 }, button: { pin: 27 } };
    expect(errorsOf({ ...minimal(), gpio })).toEqual([expect.stringMatching(/^gpio\.viewingLed\.pin: /)]);
  });

  it('refuses an unknown top-level key, naming it', () => {
    expect(errorsOf({ ...minimal(), colour: 'blue' })).toEqual([
      expect.stringMatching(/^\(top level\): .*"colour"/),
    ]);
  });

  it('refuses an outbox re-send cap below the re-send delay, naming maxResendS', () => {
    expect(errorsOf({ ...minimal(), outbox: { resendS: 120, maxResendS: 60 } })).toEqual([
      expect.stringMatching(/^outbox\.maxResendS: /),
    ]);
  });

  it('refuses an unknown nested key, naming its section', () => {
    expect(errorsOf({ ...minimal(), broker: { url: 'mqtt://127.0.0.1:1883', password: 'x' } })).toEqual([
      expect.stringMatching(/^broker: .*"password"/),
    ]);
  });

  it('refuses a key with both publicKeyFile and publicKeyPem, naming the key', () => {
    const centralKeys = [{ kid: 'central-1', publicKeyPem, publicKeyFile: '/etc/tk/central.pem' }];
    expect(errorsOf({ ...minimal(), centralKeys })).toEqual([
      'centralKeys.0: give exactly one of publicKeyFile or publicKeyPem',
    ]);
  });

  it('refuses a key with neither publicKeyFile nor publicKeyPem, naming the key', () => {
    expect(errorsOf({ ...minimal(), centralKeys: [{ kid: 'central-1' }] })).toEqual([
      'centralKeys.0: give exactly one of publicKeyFile or publicKeyPem',
    ]);
  });

  it('refuses an empty list of central keys', () => {
    expect(errorsOf({ ...minimal(), centralKeys: [] })).toEqual([
      'centralKeys: at least one central public key is needed',
    ]);
  });

  it('refuses a relative state directory', () => {
    expect(errorsOf({ ...minimal(), stateDir: 'var/lib/tk' })).toEqual([
      'stateDir: must be an absolute path',
    ]);
  });

  it('refuses a relative key file path, naming the key field', () => {
    const centralKeys = [{ kid: 'central-1', publicKeyFile: 'keys/central.pem' }];
    expect(errorsOf({ ...minimal(), centralKeys })).toEqual([
      'centralKeys.0.publicKeyFile: must be an absolute path',
    ]);
  });

  it('refuses a config without gpio, naming gpio', () => {
    const { gpio: _gpio, ...rest } = minimal();
    expect(errorsOf(rest)).toEqual([expect.stringMatching(/^gpio: /)]);
  });

  it('gives one line per problem when several fields are wrong', () => {
    expect(errorsOf({ ...minimal(), deviceId: 'X', timeZone: 'Nowhere/Town', stateDir: 'rel' })).toHaveLength(
      3,
    );
  });

  it('refuses a JSON array at the top level', () => {
    expect(errorsOf([])).toEqual([expect.stringMatching(/^\(top level\): /)]);
  });
});

describe('loadConfig', () => {
  it('loads and parses a valid file', async () => {
    const path = join(dir, 'load-valid.json');
    await writeFile(path, JSON.stringify(minimal()));
    expect(await loadConfig(path)).toMatchObject({ ok: true, config: { deviceId: 'cam-demo-1' } });
  });

  it('reports a missing file with its path and ENOENT', async () => {
    const path = join(dir, 'does-not-exist.json');
    expect(await loadConfig(path)).toEqual({
      ok: false,
      errors: [`${path}: cannot read the config file (ENOENT)`],
    });
  });

  it('reports a file that is not JSON with its path', async () => {
    const path = join(dir, 'not-json.json');
    await writeFile(path, 'deviceId = "cam-1"\n');
    expect(await loadConfig(path)).toEqual({
      ok: false,
      errors: [
        expect.stringMatching(new RegExp(`^${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: not valid JSON`)),
      ],
    });
  });

  it('reports the field of a file that is JSON but invalid', async () => {
    const path = join(dir, 'load-bad.json');
    await writeFile(path, JSON.stringify({ ...minimal(), timeZone: 'Europe/Gothenburg' }));
    expect(await loadConfig(path)).toEqual({
      ok: false,
      errors: ['timeZone: not a known IANA time zone: no /usr/share/zoneinfo/Europe/Gothenburg'],
    });
  });
});

describe('the entry point (device/main.ts as a process)', () => {
  const root = fileURLToPath(new URL('../../', import.meta.url));

  function run(
    args: string[],
    env: NodeJS.ProcessEnv = {},
  ): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, ['--import', 'tsx/esm', 'device/main.ts', ...args], {
        cwd: root,
        env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk: Buffer) => {
        stdout += chunk.toString();
      });
      child.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
      });
      const deadline = setTimeout(() => child.kill('SIGKILL'), 20_000);
      child.once('error', reject);
      child.once('exit', (code) => {
        clearTimeout(deadline);
        resolve({ code, stdout, stderr });
      });
    });
  }

  it('exits 78 for a config with a bad field, naming the field on stderr', async () => {
    const path = join(dir, 'main-bad.json');
    await writeFile(
      path,
      JSON.stringify({ ...minimal(), broker: { url: 'mqtt://broker.example.com:1883' } }),
    );
    const { code, stderr } = await run(['--config', path]);
    expect(code).toBe(78);
    expect(stderr).toContain('broker.url: plain mqtt:// is allowed only to a loopback broker');
  });

  it('exits 78 for a missing config file named by TRYGGHETSKAMERA_CONFIG', async () => {
    const path = join(dir, 'main-missing.json');
    const { code, stderr } = await run([], { TRYGGHETSKAMERA_CONFIG: path });
    expect(code).toBe(78);
    expect(stderr).toContain(`${path}: cannot read the config file (ENOENT)`);
  });

  it('exits 78 with --check-config when a key file named in the config is missing', async () => {
    const path = join(dir, 'main-key-missing.json');
    const centralKeys = [{ kid: 'central-1', publicKeyFile: join(dir, 'no-such-key.pem') }];
    await writeFile(path, JSON.stringify({ ...minimal(), centralKeys }));
    const { code, stderr } = await run(['--config', path, '--check-config']);
    expect(code).toBe(78);
    expect(stderr).toContain('a file named in the config cannot be used');
  });

  it('exits 0 with --check-config on a valid file and says it is valid', async () => {
    const path = join(dir, 'main-valid.json');
    await writeFile(path, JSON.stringify(minimal()));
    const { code, stdout } = await run(['--config', path, '--check-config']);
    expect(code).toBe(0);
    expect(stdout).toContain(`${path}: valid`);
  });

  it('exits 0 with --help and prints the usage', async () => {
    const { code, stdout } = await run(['--help']);
    expect(code).toBe(0);
    expect(stdout).toContain('Usage: trygghetskamera');
  });

  it('exits 2 for an unknown option', async () => {
    const { code, stderr } = await run(['--colour']);
    expect(code).toBe(2);
    expect(stderr).toContain('Usage: trygghetskamera');
  });
});
