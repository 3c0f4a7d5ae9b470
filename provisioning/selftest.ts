// The self-test: every part of an installed camera, checked in the order a technician can fix them,
// each with a clear pass/fail and what to do about a failure. The technician leaves only when it passes.
// Hardware is reached through the same adapters the service uses (openGpio, PrivacyButton), so a
// test can pass simulated GPIO and press its button.
//
// The camera is treated as the service treats it (capture.ts): no frame while the stored privacy mode
// is on, the viewing LED lit while a frame is taken, the aim snapshot private and deleted after.
// The service is paused for the broker, camera, LED and button checks: the broker allows one login per
// certificate, the service holds the pins (and may hold the camera), and its privacy must not change.
import { chmod, readFile, statfs } from 'node:fs/promises';
import { importKeys } from '../device/auth/index.js';
import type { V4l2Port } from '../device/camera/index.js';
import { clockCheck, savedFloorGuard } from '../device/clock/index.js';
import { type Config, loadConfig } from '../device/config/index.js';
import { type Gpio, PrivacyButton } from '../device/hardware/index.js';
import { silentLogger } from '../device/log/index.js';
import { checkBroker } from './broker.js';
import {
  type CameraResult,
  cameraPresent,
  grabFrame,
  type SnapshotOptions,
  snapshotOptions,
  takeSnapshot,
} from './camera.js';
import { inPrivateDirectory, readStoredPrivacy, withViewingLed } from './capture.js';
import { checkCertificate } from './certs.js';
import { applyNightControls, meanBrightness } from './night.js';
import type { Prompter } from './prompt.js';
import type { Runner } from './run.js';
import { type ServiceControl, serviceName } from './service.js';

export const checkIds = [
  'config',
  'clock',
  'disk',
  'broker',
  'camera-present',
  'camera-frame',
  'snapshot',
  'led',
  'button',
  'service',
] as const;
export type CheckId = (typeof checkIds)[number];

export const checkTitles: Record<CheckId, string> = {
  config: 'Configuration valid',
  clock: 'Clock synchronised',
  disk: 'Disk space',
  broker: 'Broker reachable (TLS, device certificate)',
  'camera-present': 'Camera present',
  'camera-frame': 'Camera gives a frame',
  snapshot: 'Snapshot taken (check the aim)',
  led: 'Viewing LED blinks',
  button: 'Privacy button pressed',
  service: 'Service running',
};

/** `not-confirmed`: it was exercised but no person confirmed it (non-interactive or --yes). */
export type CheckStatus = 'pass' | 'fail' | 'skipped' | 'not-confirmed';

export interface CheckResult {
  id: CheckId;
  title: string;
  status: CheckStatus;
  detail: string;
  remedy?: string;
  durationMs: number;
}

export interface SelfTestReport {
  deviceId: string | undefined;
  at: string;
  technician: string | undefined;
  ok: boolean;
  checks: CheckResult[];
}

/** Progress for long steps: `update` rewrites one line on a terminal, `line` adds a line. */
export interface Progress {
  line(text: string): void;
  update(text: string): void;
  done(): void;
}

export interface SelfTestDeps {
  configPath: string;
  run: Runner;
  now(): number;
  progress: Progress;
  /** Asks the technician to confirm what they saw; undefined in non-interactive mode or with --yes. */
  prompter: Prompter | undefined;
  openGpio(config: Config): Promise<Gpio>;
  service: ServiceControl;
  /** Prefix for /dev paths (tests); default `/`. */
  root: string;
  /** Where the snapshot's private directory is made (and removed again); normally os.tmpdir(). */
  tmpDir: string;
  buttonTimeoutS: number;
  minFreeMb: number;
  brokerTimeoutMs: number;
  cameraTimeoutMs: number;
  ledBlinks: number;
  technician: string | undefined;
  /** The camera's control ioctls (the night preset before the aim snapshot); undefined: not set. */
  v4l2: V4l2Port | undefined;
  /** Mean brightness (0-255) below which the night snapshot fails: too dark to see anyone. */
  minBrightness: number;
  /** Takes the aim snapshot; default fswebcam through node-webcam (tests: a picture of their own). */
  takeSnapshot?: ((options: SnapshotOptions, timeoutMs: number) => Promise<CameraResult>) | undefined;
}

type Outcome = { status: CheckStatus; detail: string; remedy?: string | undefined };

const pass = (detail: string): Outcome => ({ status: 'pass', detail });
const fail = (detail: string, remedy: string): Outcome => ({ status: 'fail', detail, remedy });
const skipped = (detail: string): Outcome => ({ status: 'skipped', detail });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function checkConfig(
  deps: SelfTestDeps,
): Promise<{ outcome: Outcome; config?: Config; tls?: TlsFiles }> {
  const loaded = await loadConfig(deps.configPath);
  if (!loaded.ok)
    return {
      outcome: fail(
        loaded.errors.join('; '),
        'run `trygghetskamera-provision provision` again, or fix the named field',
      ),
    };
  const { config } = loaded;
  const problems: string[] = [];
  try {
    await importKeys(
      await Promise.all(
        config.centralKeys.map(async (key) => ({
          kid: key.kid,
          pem: key.publicKeyPem ?? (await readFile(key.publicKeyFile as string, 'utf8')),
        })),
      ),
    );
  } catch (error) {
    problems.push(`central public key unusable: ${(error as Error).message}`);
  }
  let tls: TlsFiles | undefined;
  const { caFile, certFile, keyFile } = config.broker;
  if (caFile && certFile && keyFile) {
    const cert = await checkCertificate({
      run: deps.run,
      certFile,
      keyFile,
      caFile,
      deviceId: config.deviceId,
      nowMs: deps.now(),
    });
    if (cert.ok) {
      try {
        const [ca, certificate, key] = await Promise.all([
          readFile(caFile),
          readFile(certFile),
          readFile(keyFile),
        ]);
        tls = { ca, cert: certificate, key };
      } catch (error) {
        problems.push((error as Error).message);
      }
    } else problems.push(...cert.problems);
  }
  if (problems.length > 0)
    return {
      outcome: fail(
        problems.join('; '),
        'send the CSR to the central PKI and run `provision import-cert FILE`; check the files named in the config',
      ),
      config,
    };
  return { outcome: pass(`${deps.configPath}: device ${config.deviceId}`), config, ...(tls ? { tls } : {}) };
}

interface TlsFiles {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
}

async function checkClock(deps: SelfTestDeps, config: Config): Promise<Outcome> {
  // The service's time floor too, read only: a clock set back before it refuses every look.
  const floor = await savedFloorGuard({
    stateDir: config.stateDir,
    toleranceMs: config.clock.floorToleranceS * 1000,
  });
  const result = await clockCheck({ ...config.clock, now: deps.now, floor })();
  if (result.trusted) return pass(result.detail);
  return fail(
    result.detail,
    'the clock must be synchronised before any look-in is allowed: check the network, `timedatectl status` (NTP service active), and that NTP (UDP 123) is not blocked',
  );
}

async function checkDisk(deps: SelfTestDeps, config: Config): Promise<Outcome> {
  try {
    const info = await statfs(config.stateDir);
    const freeMb = Math.floor((Number(info.bavail) * Number(info.bsize)) / (1024 * 1024));
    if (freeMb < deps.minFreeMb)
      return fail(
        `${freeMb} MB free on ${config.stateDir} (need ${deps.minFreeMb} MB)`,
        'free space on the SD card (`sudo apt clean`, `journalctl --vacuum-size=50M`) or use a larger card',
      );
    return pass(`${freeMb} MB free on ${config.stateDir}`);
  } catch (error) {
    return fail(
      `${config.stateDir}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
      'the state directory is missing: run `sudo scripts/install.sh` again',
    );
  }
}

async function blinkLed(deps: SelfTestDeps, gpio: Gpio, config: Config): Promise<Outcome> {
  const leds = [gpio.viewingLed, ...(gpio.privacyLed ? [gpio.privacyLed] : [])];
  const pins = [config.gpio.viewingLed.pin, ...(config.gpio.privacyLed ? [config.gpio.privacyLed.pin] : [])];
  const what = gpio.privacyLed
    ? `viewing LED (GPIO ${pins[0]}) and privacy LED (GPIO ${pins[1]})`
    : `viewing LED (GPIO ${pins[0]})`;
  deps.progress.line(`  Watch the ${what}: it blinks ${deps.ledBlinks} times now.`);
  try {
    for (let i = 1; i <= deps.ledBlinks; i++) {
      deps.progress.update(`  blink ${i}/${deps.ledBlinks}`);
      for (const led of leds) await led.write(true);
      await sleep(300);
      for (const led of leds) await led.write(false);
      await sleep(300);
    }
  } catch (error) {
    deps.progress.done();
    return fail(
      `the LED could not be driven: ${(error as Error).message}`,
      'check that the service user is in group gpio and that gpio.viewingLed.pin is the pin the LED is wired to (BCM numbering)',
    );
  } finally {
    for (const led of leds) await led.write(false).catch(() => undefined);
  }
  deps.progress.done();
  if (!deps.prompter)
    return {
      status: 'not-confirmed',
      detail: `blinked ${deps.ledBlinks} times; nobody confirmed seeing it (--yes or non-interactive)`,
      remedy: 'run the self-test interactively and watch the LED',
    };
  const seen = await deps.prompter.confirm(`  Did the ${what} blink ${deps.ledBlinks} times? (y/n)`, true);
  if (seen) return pass(`blinked ${deps.ledBlinks} times, seen by the technician`);
  return fail(
    'the technician did not see the LED blink',
    'check the LED wiring: the pin in gpio.viewingLed.pin (BCM numbering, not the header pin number), its resistor and polarity (gpio.viewingLed.activeLow)',
  );
}

async function waitForButton(deps: SelfTestDeps, gpio: Gpio, config: Config): Promise<Outcome> {
  const button = new PrivacyButton({
    input: gpio.button,
    log: silentLogger(),
    debounceMs: config.gpio.button.debounceMs,
    longPressMs: config.gpio.button.longPressMs,
  });
  const started = performance.now();
  const timeoutMs = deps.buttonTimeoutS * 1000;
  deps.progress.line(
    `  Press the privacy button now (GPIO ${config.gpio.button.pin}); waiting ${deps.buttonTimeoutS} s.`,
  );
  let countdown: ReturnType<typeof setInterval> | undefined;
  try {
    const pressed = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      button.once('press', () => {
        clearTimeout(timer);
        resolve(true);
      });
      countdown = setInterval(() => {
        const leftS = Math.max(0, Math.ceil((timeoutMs - (performance.now() - started)) / 1000));
        deps.progress.update(`  waiting for the button: ${leftS} s left`);
      }, 1000);
      button.start();
    });
    deps.progress.done();
    if (pressed) {
      // Acknowledge on the LED, as the service does, so the technician can show the resident.
      await gpio.viewingLed.write(true).catch(() => undefined);
      await sleep(200);
      await gpio.viewingLed.write(false).catch(() => undefined);
      return pass(`pressed after ${((performance.now() - started) / 1000).toFixed(1)} s`);
    }
    return fail(
      `no press within ${deps.buttonTimeoutS} s`,
      `check the button wiring: gpio.button.pin ${config.gpio.button.pin} (BCM numbering), and gpio.button.activeLow (true when the button connects the pin to ground)`,
    );
  } finally {
    if (countdown) clearInterval(countdown);
    button.stop();
  }
}

/** What the night preset did, for the snapshot's detail. */
function nightText(report: ReturnType<typeof applyNightControls>): string {
  if (report === undefined) return 'no camera controls (not a V4L2 camera)';
  if (report.openError !== undefined) return `night settings not set (${report.openError})`;
  const set = report.outcomes.filter((o) => o.status === 'ok' || o.status === 'inactive').length;
  const missed = report.warnings.length > 0 ? `; not set: ${report.warnings.join(', ')}` : '';
  return `night settings (${set} of ${report.outcomes.length} controls set${missed})`;
}

/**
 * One JPEG with the viewing LED lit and the camera's night settings, in a private directory, measured
 * for brightness, shown to the technician and deleted: the camera keeps no pictures.
 */
async function aimSnapshot(deps: SelfTestDeps, config: Config, gpio: Gpio): Promise<Outcome> {
  if (config.camera.source.kind === 'libcamera')
    return skipped(
      'the aim snapshot is taken with fswebcam, which cannot read a CSI camera: check the aim with `rpicam-still -o aim.jpg` and delete the file',
    );
  return inPrivateDirectory(deps.tmpDir, async (file) => {
    deps.progress.line(
      '  the snapshot is taken with the night settings: make the room as dark as at night (lights off)',
    );
    const night = deps.v4l2 ? applyNightControls(deps.v4l2, config, deps.root, deps.now()) : undefined;
    const nightDetail = nightText(night);
    deps.progress.line(`  ${nightDetail}; taking a snapshot with fswebcam, viewing LED on …`);
    const snapshot = deps.takeSnapshot ?? takeSnapshot;
    const lit = await withViewingLed(gpio.viewingLed, () =>
      snapshot(snapshotOptions(config.camera, file), deps.cameraTimeoutMs),
    );
    if (!lit.ok) return skipped(`${lit.detail}; no picture is taken without it`);
    const taken = lit.value;
    if (!taken.ok) return fail(taken.detail, taken.remedy);
    // fswebcam writes with the umask; the directory already shuts others out, this says it twice.
    await chmod(file, 0o600);
    const brightness = await meanBrightness(deps.run, config.camera.ffmpegPath, file);
    if (!brightness.ok)
      return fail(brightness.detail, 'install ffmpeg (`sudo apt install ffmpeg`) or fix camera.ffmpegPath');
    const measured = `${taken.detail}, ${nightDetail}, mean brightness ${Math.round(brightness.mean)}/255`;
    if (brightness.mean < deps.minBrightness)
      return fail(
        `${measured}: too dark to see a person (at least ${deps.minBrightness} is needed)`,
        'the camera sees too little in the dark: fit an IR camera (with infrared LEDs, or an IR lamp) or leave a small night light on, not shining into the lens; then run the self-test again',
      );
    if (!deps.prompter)
      return {
        status: 'not-confirmed',
        detail: `${measured}, deleted unseen (--yes or non-interactive)`,
        remedy: 'run the self-test interactively and check the aim',
      };
    deps.progress.line(`  The snapshot is ${file} (only this user can read it).`);
    const aimed = await deps.prompter.confirm(
      '  Open it now and check the aim; it is deleted after this question. Is the aim right? (y/n)',
      true,
    );
    if (aimed) return pass(`${measured}, aim checked by the technician, deleted`);
    return fail(
      'the technician found the aim wrong',
      'adjust the camera (the IR lamp on for night-time looks) and run the self-test again',
    );
  });
}

async function checkService(state: string): Promise<Outcome> {
  if (state === 'active') return pass(`${serviceName} is active`);
  return fail(
    `${serviceName} is ${state}`,
    `start it: \`sudo systemctl enable --now ${serviceName}\`; if it does not stay up: \`journalctl -u ${serviceName} -e\``,
  );
}

/** Runs every check; a check that cannot run because an earlier one failed is `skipped` with the reason. */
export async function runSelfTest(deps: SelfTestDeps): Promise<SelfTestReport> {
  const results: CheckResult[] = [];
  const record = async (id: CheckId, body: () => Promise<Outcome>): Promise<Outcome> => {
    deps.progress.line(`… ${checkTitles[id]}`);
    const started = performance.now();
    let outcome: Outcome;
    try {
      outcome = await body();
    } catch (error) {
      outcome = fail(
        `unexpected error: ${(error as Error).message}`,
        'run the self-test again; if it repeats, report it with this text',
      );
    }
    const result: CheckResult = {
      id,
      title: checkTitles[id],
      status: outcome.status,
      detail: outcome.detail,
      ...(outcome.remedy !== undefined && outcome.status !== 'pass' ? { remedy: outcome.remedy } : {}),
      durationMs: Math.round(performance.now() - started),
    };
    results.push(result);
    deps.progress.line(`${symbol(result.status)} ${result.title}: ${result.detail}`);
    if (result.remedy && result.status !== 'skipped') deps.progress.line(`    → ${result.remedy}`);
    return outcome;
  };

  const loaded = await (async () => {
    let holder: Awaited<ReturnType<typeof checkConfig>> | undefined;
    await record('config', async () => {
      holder = await checkConfig(deps);
      return holder.outcome;
    });
    return holder;
  })();
  const config = loaded?.config;
  if (!config) {
    for (const id of checkIds.slice(1)) await record(id, async () => skipped('needs a valid configuration'));
    return finish(deps, undefined, results);
  }
  await record('clock', () => checkClock(deps, config));
  await record('disk', () => checkDisk(deps, config));
  // The service is paused for the checks that would share something with it: the broker login (the
  // broker names a connection after its certificate's CN, so the check's login and the service's would
  // replace each other), the camera, and the LED and button pins.
  const serviceUnavailable = await deps.service.unavailable();
  let paused = false;
  if (!serviceUnavailable && (await deps.service.state()) === 'active') {
    deps.progress.line(
      `  pausing ${serviceName} for the broker, camera, LED and button checks (it is started again afterwards) …`,
    );
    const problem = await deps.service.stop();
    paused = problem === undefined;
  }
  let gpio: Gpio | undefined;
  try {
    await record('broker', async () => {
      if (loaded?.outcome.status !== 'pass')
        return skipped('needs the certificate files the config check found unusable');
      deps.progress.line(`  connecting to ${config.broker.url} …`);
      const result = await checkBroker({
        config,
        tls: loaded.tls,
        timeoutMs: deps.brokerTimeoutMs,
        now: deps.now,
      });
      return result.ok ? pass(result.detail) : fail(result.detail, result.remedy);
    });
    const present = await record('camera-present', async () => {
      const result = await cameraPresent(config.camera, deps.root);
      return result.ok ? pass(result.detail) : fail(result.detail, result.remedy);
    });
    let openError: string | undefined;
    try {
      gpio = await deps.openGpio(config);
    } catch (error) {
      openError = (error as Error).message;
    }
    // Read once the service is paused, so a press it handled just before is on disk.
    const privacy = await readStoredPrivacy(config.stateDir);
    /** Why no frame may be taken now, if so. */
    const captureBlocked = (): string | undefined => {
      if (privacy.privacyOn)
        return `${privacy.detail}: no frame is taken while it is; ask the resident to press the privacy button, then run the self-test again`;
      if (!gpio)
        return `GPIO could not be opened (${openError}), and no frame is taken without the viewing LED`;
      return undefined;
    };
    const frame = await record('camera-frame', async () => {
      if (present.status !== 'pass') return skipped('no camera');
      const blocked = captureBlocked();
      if (blocked || !gpio) return skipped(blocked ?? 'no GPIO');
      deps.progress.line('  opening the camera with ffmpeg, viewing LED on …');
      const lit = await withViewingLed(gpio.viewingLed, () =>
        grabFrame({ run: deps.run, camera: config.camera, timeoutMs: deps.cameraTimeoutMs }),
      );
      if (!lit.ok) return skipped(`${lit.detail}; no frame is taken without it`);
      return lit.value.ok ? pass(lit.value.detail) : fail(lit.value.detail, lit.value.remedy);
    });
    await record('snapshot', async () => {
      const blocked = captureBlocked();
      if (blocked || !gpio) return skipped(blocked ?? 'no GPIO');
      if (frame.status !== 'pass') return skipped('the camera gave no frame');
      return aimSnapshot(deps, config, gpio);
    });
    const gpioRemedy =
      'check that this runs as root or in group gpio, that the pins in the config are free, and that nothing else (the service) holds them';
    await record('led', async () =>
      gpio ? blinkLed(deps, gpio, config) : fail(`GPIO could not be opened: ${openError}`, gpioRemedy),
    );
    await record('button', async () =>
      gpio ? waitForButton(deps, gpio, config) : fail(`GPIO could not be opened: ${openError}`, gpioRemedy),
    );
  } finally {
    await gpio?.close().catch(() => undefined);
    if (paused) {
      deps.progress.line(`  starting ${serviceName} again …`);
      await deps.service.start();
    }
  }
  await record('service', async () => {
    if (serviceUnavailable) return skipped(`${serviceUnavailable}: cannot check ${serviceName}.service here`);
    // A service just (re)started needs a moment before systemd calls it active (Type=notify).
    let state = await deps.service.state();
    for (let waited = 0; state === 'activating' && waited < 15; waited++) {
      deps.progress.update(`  ${serviceName} is starting …`);
      await sleep(1000);
      state = await deps.service.state();
    }
    deps.progress.done();
    return checkService(state);
  });
  return finish(deps, config, results);
}

function finish(deps: SelfTestDeps, config: Config | undefined, checks: CheckResult[]): SelfTestReport {
  return {
    deviceId: config?.deviceId,
    at: new Date(deps.now()).toISOString(),
    technician: deps.technician,
    ok: checks.every((check) => check.status !== 'fail'),
    checks,
  };
}

export function symbol(status: CheckStatus): string {
  switch (status) {
    case 'pass':
      return '✓ PASS';
    case 'fail':
      return '✗ FAIL';
    case 'skipped':
      return '- SKIP';
    case 'not-confirmed':
      return '? NOT CONFIRMED';
  }
}
