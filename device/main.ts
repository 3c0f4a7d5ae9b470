#!/usr/bin/env node
// The composition root and entry point: reads the command line and the config file, builds the real
// adapters, starts the service, and handles signals with a hard exit deadline. Nothing else reads
// config files or process.env.
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { importKeys } from './auth/index.js';
// Not view/index.js: that loads werift, which only the media process needs.
import { CameraControlsStatus } from './camera/status.js';
import { systemClock } from './clock/index.js';
import { type Config, loadConfig } from './config/index.js';
import { openGpio } from './hardware/index.js';
import { createLogger, type Logger } from './log/index.js';
import { Service } from './service.js';
import { createNotifier, Watchdog } from './systemd/index.js';
import { ProcessMedia } from './view/process-media.js';
import { mediaSettingsFromConfig } from './view/settings.js';

export const defaultConfigPath = '/etc/trygghetskamera/config.json';
const shutdownDeadlineMs = 5000;

const usage = `Usage: trygghetskamera [--config FILE] [--check-config] [--pretty]

  --config FILE    config file (default: $TRYGGHETSKAMERA_CONFIG or ${defaultConfigPath})
  --check-config   validate the config file and the files it names, then exit (0 = valid)
  --pretty         human-readable logs instead of JSON
  --help           this text`;

async function readKeys(config: Config): Promise<Array<{ kid: string; pem: string }>> {
  return Promise.all(
    config.centralKeys.map(async (key) => ({
      kid: key.kid,
      pem: key.publicKeyPem ?? (await readFile(key.publicKeyFile as string, 'utf8')),
    })),
  );
}

async function readTls(config: Config): Promise<{ ca: Buffer; cert: Buffer; key: Buffer } | undefined> {
  const { caFile, certFile, keyFile } = config.broker;
  if (!caFile || !certFile || !keyFile) return undefined;
  const [ca, cert, key] = await Promise.all([readFile(caFile), readFile(certFile), readFile(keyFile)]);
  return { ca, cert, key };
}

/** Loads and checks everything the service needs before it touches hardware; returns errors to print. */
async function prepare(path: string): Promise<
  | {
      ok: true;
      config: Config;
      keys: Awaited<ReturnType<typeof importKeys>>;
      tls: Awaited<ReturnType<typeof readTls>>;
    }
  | { ok: false; errors: string[] }
> {
  const loaded = await loadConfig(path);
  if (!loaded.ok) return loaded;
  const { config } = loaded;
  try {
    const keys = await importKeys(await readKeys(config));
    const tls = await readTls(config);
    return { ok: true, config, keys, tls };
  } catch (error) {
    return {
      ok: false,
      errors: [`${path}: a file named in the config cannot be used: ${(error as Error).message}`],
    };
  }
}

async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  let values: { config?: string | undefined; 'check-config'?: boolean; pretty?: boolean; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        config: { type: 'string' },
        'check-config': { type: 'boolean' },
        pretty: { type: 'boolean' },
        help: { type: 'boolean' },
      },
    }));
  } catch (error) {
    console.error(`${(error as Error).message}\n\n${usage}`);
    return 2;
  }
  if (values.help) {
    console.log(usage);
    return 0;
  }
  const path = values.config ?? env.TRYGGHETSKAMERA_CONFIG ?? defaultConfigPath;
  const prepared = await prepare(path);
  if (!prepared.ok) {
    console.error(`trygghetskamera: invalid configuration, not starting:\n  ${prepared.errors.join('\n  ')}`);
    return 78; // EX_CONFIG
  }
  if (values['check-config']) {
    console.log(`${path}: valid`);
    return 0;
  }
  const { config, keys, tls } = prepared;
  const log: Logger = createLogger({ level: config.log.level, pretty: values.pretty ?? false });
  const gpio = await openGpio({
    kind: config.gpio.kind,
    pins: config.gpio,
    chipLabel: config.gpio.chipLabel,
    log: log.child({ mod: 'gpio' }),
  });
  const clock = systemClock;
  // The media of a look (werift, ffmpeg) runs in a process group of its own that is killed when the look
  // ends; the LED goes dark only once it is gone.
  const media = new ProcessMedia({
    log: log.child({ mod: 'view' }),
    settings: mediaSettingsFromConfig(config),
    ffmpegPath: config.camera.ffmpegPath,
  });
  // The media process sets the camera's controls at every camera open; health reports what did not take.
  const cameraControls = new CameraControlsStatus();
  media.on('camera-controls', (_sessionId, report) => cameraControls.update(report));
  const negotiationTimeoutS = config.webrtc.negotiationTimeoutS;
  const service = new Service({
    config,
    log,
    gpio,
    keys,
    tls,
    clock,
    media,
    cameraControls,
    ...(negotiationTimeoutS !== undefined ? { negotiationTimeoutMs: negotiationTimeoutS * 1000 } : {}),
  });
  const stopAll = async (): Promise<number> => {
    const code = await service.stop();
    try {
      await media.close();
      return code;
    } catch (error) {
      log.error({ err: error }, 'media processes not confirmed gone at stop');
      return code === 0 ? 1 : code;
    }
  };

  const notifier = createNotifier({ env, log });
  const startup = new AbortController();
  let exitCode: number | undefined;
  const stopped = new Promise<number>((resolve) => {
    const onSignal = (signal: NodeJS.Signals, number: number) => {
      if (exitCode !== undefined) return;
      exitCode = 128 + number;
      log.info({ signal }, 'stopping');
      notifier.stopping(`stopping on ${signal}`);
      startup.abort();
      setTimeout(() => {
        log.error('shutdown deadline passed; exiting hard');
        process.exit(128 + number);
      }, shutdownDeadlineMs).unref();
      stopAll().then(
        (code) => resolve(code === 0 ? 0 : code),
        () => resolve(1),
      );
    };
    process.once('SIGTERM', () => onSignal('SIGTERM', 15));
    process.once('SIGINT', () => onSignal('SIGINT', 2));
  });
  // The watchdog is fed only while the service's own checks pass: a hung event loop cannot feed it
  // at all, and an unwritable state directory withholds the ping so systemd restarts the service.
  const watchdog = new Watchdog({
    notifier,
    env,
    log: log.child({ mod: 'watchdog' }),
    healthy: () => service.healthy(),
  });
  try {
    await service.start(startup.signal);
    notifier.ready(`device ${config.deviceId} running`);
    watchdog.start();
  } catch (error) {
    if (!startup.signal.aborted) {
      log.fatal({ err: error }, 'start-up failed');
      await stopAll();
      return 1;
    }
  }
  const code = await stopped;
  watchdog.stop();
  return code;
}

main(process.argv.slice(2), process.env).then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error('trygghetskamera: fatal:', error);
    process.exit(1);
  },
);
