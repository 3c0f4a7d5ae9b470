// The technician's command line: `provision` (with `provision import-cert FILE`), `self-test` and
// `audit`. Options become one object per command that is handed to the command's module; the real
// adapters (programs, GPIO, systemd, clock) are built here and can be replaced through `CliDeps`.

import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { parseArgs } from 'node:util';
import { koffiV4l2Port, type V4l2Port } from '../device/camera/index.js';
import { type Config, loadConfig } from '../device/config/index.js';
import { type Gpio, openGpio } from '../device/hardware/index.js';
import { silentLogger } from '../device/log/index.js';
import { localStart } from '../device/schedule/windows.js';
import { writeFileAtomic } from '../device/state/index.js';
import { auditRows, collectAudit, formatAuditTable } from './audit.js';
import type { Owner } from './certs.js';
import { decommission } from './decommission.js';
import { defaultMinBrightness } from './night.js';
import { InputClosedError, Prompter } from './prompt.js';
import { importCert, ProvisionError, type ProvisionFlags, provision } from './provision.js';
import { formatMarkdownReport, formatSummary } from './report.js';
import { type Runner, runFile } from './run.js';
import { type Progress, runSelfTest, type SelfTestDeps } from './selftest.js';
import { type ServiceControl, serviceName, systemdService } from './service.js';

export const defaultConfigDir = '/etc/trygghetskamera';
const program = 'trygghetskamera-provision';

export interface CliIo {
  stdin: Readable;
  stdout: Writable;
  stderr: Writable;
  /** Whether stdout/stderr is a terminal (progress lines are rewritten in place). */
  terminal: boolean;
}

/** Replaceable adapters; tests pass simulated GPIO, a fake filesystem root or a fake service. */
export interface CliDeps {
  run?: Runner;
  now?: () => number;
  openGpio?: (config: Config) => Promise<Gpio>;
  service?: ServiceControl;
  /** Prefix for /sys, /dev and /run lookups; default `/`. */
  root?: string;
  /** Where the self-test's snapshot gets its private directory; default os.tmpdir(). */
  tmpDir?: string;
  /** Service user and group for key and config ownership; default looked up when running as root. */
  owner?: Owner | null;
  /** The camera's control ioctls; default koffi's. */
  v4l2?: V4l2Port;
  /** The self-test's aim snapshot; default fswebcam. */
  takeSnapshot?: SelfTestDeps['takeSnapshot'];
}

const usage = {
  main: `Usage: ${program} <command> [options]

Commands:
  provision               set the device up (asks, or takes flags), make its key and CSR, write the config
  provision import-cert FILE   install the certificate the central PKI signed for this device
  self-test               check every part and print pass/fail with what to do
  audit                   show who looked in, when, for how long, and refusals
  decommission            deliver or export the audit log, clear the device's topics, wipe it

Common options:
  --config FILE           config file (default: <config-dir>/config.json)
  --config-dir DIR        where config, key, CSR and certificates live (default: ${defaultConfigDir})
  -h, --help              help for a command: ${program} <command> --help

Run as root (sudo) on the camera: the key and config are readable only by root and the service.`,
  provision: `Usage: ${program} provision [options]
       ${program} provision import-cert FILE [--config FILE]

Asks for each setting (defaults in brackets; an invalid answer is explained and asked again),
generates the device's EC P-256 key and a CSR on the device, and writes the validated config
atomically (mode 0640). The key (device.key, 0600) never leaves the device: send device.csr to
the central PKI, then install the signed certificate with \`provision import-cert FILE\`, which
checks that it matches the key, names this device and chains to the CA.
Running it again starts from the current config and keeps the key.

Options (each one skips its question; all required ones with --non-interactive):
  --non-interactive       never ask; missing values come from the current config or defaults
  --device-id ID          device id, as registered centrally (CN of its certificate)
  --broker-url URL        mqtts://host:port (mqtt:// only for a loopback demo broker)
  --ca-file FILE          CA certificate of the central PKI (copied to <config-dir>/ca.crt)
  --central-key [KID=]FILE  Ed25519 public key (PEM) of the central service; repeat for more
  --led-pin N             viewing LED, BCM GPIO number (default 17)
  --privacy-led-pin N|none  privacy LED (default none)
  --button-pin N          privacy button (default 27)
  --led-active-low        the LED lights when the pin is low
  --button-active-high    the button pulls the pin high when pressed (default: to ground)
  --gpio-kind onoff|sim   onoff on a Pi (default); sim only for tests and demos
  --camera DEV|libcamera|test  /dev/videoN or /dev/v4l/by-id/... (listed when asked), libcamera for a
                          Raspberry Pi camera module (CSI, rpicam-vid), or test
  --camera-format F       h264, mjpeg, yuyv422 or auto (the camera's controls are listed too)
  --night HH:MM-HH:MM|none  night hours for the camera's night preset (default 21:00-07:00)
  --resolution WxH        e.g. 1280x720
  --fps N                 frames per second (default 15)
  --time-zone ZONE        IANA time zone of the home (default Europe/Stockholm)
  --state-dir DIR         state directory (default /var/lib/trygghetskamera)
  --clock-mode M          kernel (default), timesyncd, file, or trusted (tests only)
  --new-key               replace the device key (a certificate issued for the old one stops working)
  --config FILE, --config-dir DIR`,
  selfTest: `Usage: ${program} self-test [options]

Checks, in order: config valid (and its key, certificate and central keys usable); clock
synchronised; disk space; broker reachable over TLS with the device's certificate (publishes and
reads back tk/<id>/status); camera present; camera gives a frame (ffmpeg); a JPEG snapshot to
check the aim, taken with the camera's night settings and measured for brightness (fswebcam via
node-webcam; fails when too dark to see anyone; you look at it, then it is deleted); LED blinks (you
confirm); privacy button pressed within the time limit; service running (skipped without systemd).
No frame is taken while the resident's privacy mode is on, and the viewing LED is lit while one is.
If the service is running it is paused for the camera, LED and button checks and started again.
Exit code 0 when nothing failed, 1 otherwise.

Options:
  --json                  print the results as JSON on stdout (progress and questions go to stderr)
  --report FILE           write an install report (Markdown) to file with the results
  --technician NAME       your name, for the report
  --yes, --non-interactive  do not ask; the LED and the snapshot are then reported "not confirmed"
  --button-timeout S      seconds to wait for the button (default 30)
  --min-free-mb N         free space needed on the state directory (default 100)
  --min-brightness N      mean brightness (1-255) the night snapshot needs (default ${defaultMinBrightness})
  --config FILE, --config-dir DIR`,
  audit: `Usage: ${program} audit [options]

Prints the device's own audit log as a table a resident can read: each look-in (who, when, for how
long, why it ended), each refused request and why, and agreed times nobody looked in. Times are in
the home's time zone.

Options:
  --from DATE             from this day (YYYY-MM-DD, the home's time zone) or instant (ISO 8601)
  --to DATE               up to and including this day, or up to this instant
  --json                  the records as JSON
  --audit-dir DIR         audit folder (default <stateDir>/audit from the config)
  --config FILE, --config-dir DIR`,
  decommission: `Usage: ${program} decommission [options]

Takes the device out of service when the resident leaves. Stops the service, delivers every audit
record still in the outbox to the broker (with the device's own certificate), sends a last
\`decommissioned\` event, clears the retained tk/<id>/status, info and health, and then wipes the
device key, certificates, config, state and audit trail and disables the service. Nothing is wiped
unless everything before it succeeded. Remove the package afterwards: apt purge trygghetskamera.

Options:
  --export FILE           write undelivered records and the whole audit trail to FILE (0600) and go
                          on even if some could not be delivered; hand the file in with the work order
  --offline               the broker is unreachable: wipe anyway after --export (central must clear
                          the retained topics itself)
  --technician NAME       your name, sent in the decommissioned event
  --yes                   do not ask for the device id as confirmation
  --config FILE, --config-dir DIR`,
};

class UsageError extends Error {}

function lineProgress(stream: Writable, terminal: boolean): Progress {
  let pending = false;
  let lastPrintMs = 0;
  return {
    line(text) {
      if (pending && terminal) stream.write('\n');
      pending = false;
      stream.write(`${text}\n`);
    },
    update(text) {
      if (terminal) {
        stream.write(`\r\x1b[2K${text}`);
        pending = true;
        return;
      }
      // Not a terminal (a log, a pipe): one line every 5 s is enough.
      const now = performance.now();
      if (now - lastPrintMs >= 5000) {
        lastPrintMs = now;
        stream.write(`${text}\n`);
      }
    },
    done() {
      if (pending && terminal) stream.write('\n');
      pending = false;
      lastPrintMs = 0;
    },
  };
}

async function lookupOwner(run: Runner): Promise<Owner | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const [uid, gid] = await Promise.all([run('id', ['-u', serviceName]), run('id', ['-g', serviceName])]);
  if (uid.code !== 0 || gid.code !== 0) return undefined;
  return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

function paths(values: { config?: string | undefined; 'config-dir'?: string | undefined }) {
  const configDir = resolve(values['config-dir'] ?? defaultConfigDir);
  const configPath = resolve(values.config ?? join(configDir, 'config.json'));
  return { configDir, configPath };
}

const common = {
  config: { type: 'string' },
  'config-dir': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

function positiveInt(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value) || Number(value) < 1)
    throw new UsageError(`--${name} must be a whole number above 0`);
  return Number(value);
}

async function provisionCommand(args: string[], io: CliIo, deps: CliDeps): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      ...common,
      'non-interactive': { type: 'boolean' },
      'device-id': { type: 'string' },
      'broker-url': { type: 'string' },
      'ca-file': { type: 'string' },
      'central-key': { type: 'string', multiple: true },
      'led-pin': { type: 'string' },
      'privacy-led-pin': { type: 'string' },
      'button-pin': { type: 'string' },
      'led-active-low': { type: 'boolean' },
      'button-active-high': { type: 'boolean' },
      'gpio-kind': { type: 'string' },
      camera: { type: 'string' },
      'camera-format': { type: 'string' },
      night: { type: 'string' },
      resolution: { type: 'string' },
      fps: { type: 'string' },
      'time-zone': { type: 'string' },
      'state-dir': { type: 'string' },
      'clock-mode': { type: 'string' },
      'new-key': { type: 'boolean' },
    },
  });
  if (values.help) {
    io.stdout.write(`${usage.provision}\n`);
    return 0;
  }
  const run = deps.run ?? runFile;
  const now = deps.now ?? Date.now;
  const { configDir, configPath } = paths(values);
  const owner = deps.owner === null ? undefined : (deps.owner ?? (await lookupOwner(run)));
  const say = (text: string) => io.stdout.write(`${text}\n`);
  if (positionals[0] === 'import-cert') {
    const file = positionals[1];
    if (!file || positionals.length > 2) throw new UsageError('import-cert needs exactly one FILE');
    await importCert(file, { run, say, configPath, owner, now });
    return 0;
  }
  if (positionals.length > 0) throw new UsageError(`unknown argument ${positionals[0]}`);
  if (
    values['clock-mode'] !== undefined &&
    !['kernel', 'timesyncd', 'file', 'trusted'].includes(values['clock-mode'])
  )
    throw new UsageError('--clock-mode must be kernel, timesyncd, file or trusted');
  const flags: ProvisionFlags = {
    deviceId: values['device-id'],
    brokerUrl: values['broker-url'],
    caFile: values['ca-file'],
    centralKeys: values['central-key'],
    ledPin: values['led-pin'],
    privacyLedPin: values['privacy-led-pin'],
    buttonPin: values['button-pin'],
    ledActiveLow: values['led-active-low'],
    buttonActiveHigh: values['button-active-high'],
    gpioKind: values['gpio-kind'],
    camera: values.camera,
    cameraFormat: values['camera-format'],
    night: values.night,
    resolution: values.resolution,
    fps: values.fps,
    timeZone: values['time-zone'],
    stateDir: values['state-dir'],
    clockMode: values['clock-mode'],
    newKey: values['new-key'],
  };
  const prompter = values['non-interactive'] ? undefined : new Prompter(io.stdin, io.stdout);
  try {
    await provision(flags, {
      run,
      say,
      prompter,
      configPath,
      configDir,
      owner,
      cameraRoot: deps.root ?? '/',
      v4l2ctl: 'v4l2-ctl',
      v4l2: deps.v4l2 ?? koffiV4l2Port(),
      now,
    });
  } finally {
    prompter?.close();
  }
  return 0;
}

async function selfTestCommand(args: string[], io: CliIo, deps: CliDeps): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      ...common,
      json: { type: 'boolean' },
      report: { type: 'string' },
      technician: { type: 'string' },
      yes: { type: 'boolean', short: 'y' },
      'non-interactive': { type: 'boolean' },
      'button-timeout': { type: 'string' },
      'min-free-mb': { type: 'string' },
      'min-brightness': { type: 'string' },
    },
  });
  if (values.help) {
    io.stdout.write(`${usage.selfTest}\n`);
    return 0;
  }
  const run = deps.run ?? runFile;
  const root = deps.root ?? '/';
  const human = values.json ? io.stderr : io.stdout;
  const interactive = !values.yes && !values['non-interactive'];
  const prompter = interactive ? new Prompter(io.stdin, human) : undefined;
  const { configPath } = paths(values);
  try {
    const report = await runSelfTest({
      configPath,
      run,
      now: deps.now ?? Date.now,
      progress: lineProgress(human, io.terminal),
      prompter,
      openGpio:
        deps.openGpio ??
        ((config) =>
          openGpio({
            kind: config.gpio.kind,
            pins: config.gpio,
            chipLabel: config.gpio.chipLabel,
            log: silentLogger(),
          })),
      service: deps.service ?? systemdService({ run, root, systemctl: 'systemctl' }),
      root,
      tmpDir: deps.tmpDir ?? tmpdir(),
      buttonTimeoutS: positiveInt('button-timeout', values['button-timeout'], 30),
      minFreeMb: positiveInt('min-free-mb', values['min-free-mb'], 100),
      brokerTimeoutMs: 10_000,
      cameraTimeoutMs: 15_000,
      ledBlinks: 5,
      technician: values.technician,
      v4l2: deps.v4l2 ?? koffiV4l2Port(),
      minBrightness: positiveInt('min-brightness', values['min-brightness'], defaultMinBrightness),
      takeSnapshot: deps.takeSnapshot,
    });
    if (values.json) io.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    else io.stdout.write(formatSummary(report));
    if (values.report) {
      await writeFileAtomic(resolve(values.report), formatMarkdownReport(report));
      human.write(`Install report written to ${resolve(values.report)}\n`);
    }
    return report.ok ? 0 : 1;
  } finally {
    prompter?.close();
  }
}

// A day (YYYY-MM-DD, local midnight in the device's zone; the next midnight for an end), a local
// time on a day (YYYY-MM-DDTHH:MM[:SS]) or an instant with its offset (…Z, …+01:00).
const localForm = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}:\d{2})(?::(\d{2}))?)?$/;
const instantForm = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/;

function parseDate(
  name: string,
  text: string | undefined,
  zone: string,
  endOfDay: boolean,
): Date | undefined {
  if (text === undefined) return undefined;
  const local = localForm.exec(text);
  let atMs = Number.NaN;
  if (local) {
    const [, year, month, day, hm, seconds] = local;
    const date = { year: Number(year), month: Number(month), day: Number(day) };
    const calendar = new Date(Date.UTC(date.year, date.month - 1, date.day));
    if (calendar.getUTCMonth() === date.month - 1 && calendar.getUTCDate() === date.day) {
      if (hm === undefined && endOfDay) {
        calendar.setUTCDate(calendar.getUTCDate() + 1);
        const next = {
          year: calendar.getUTCFullYear(),
          month: calendar.getUTCMonth() + 1,
          day: calendar.getUTCDate(),
        };
        atMs = localStart(next, '00:00', zone);
      } else {
        atMs = localStart(date, hm ?? '00:00', zone) + Number(seconds ?? 0) * 1000;
      }
    }
  } else if (instantForm.test(text)) {
    atMs = Date.parse(text);
  }
  if (!Number.isFinite(atMs)) {
    throw new UsageError(
      `--${name} ${text}: not a date (YYYY-MM-DD), local time (YYYY-MM-DDTHH:MM) or ISO 8601 instant`,
    );
  }
  return new Date(atMs);
}

async function auditCommand(args: string[], io: CliIo): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      ...common,
      from: { type: 'string' },
      to: { type: 'string' },
      json: { type: 'boolean' },
      'audit-dir': { type: 'string' },
    },
  });
  if (values.help) {
    io.stdout.write(`${usage.audit}\n`);
    return 0;
  }
  const { configPath } = paths(values);
  const loaded = await loadConfig(configPath);
  let timeZone = 'Europe/Stockholm';
  let dir = values['audit-dir'];
  if (loaded.ok) {
    timeZone = loaded.config.timeZone;
    dir ??= join(loaded.config.stateDir, 'audit');
  } else if (dir === undefined) {
    io.stderr.write(`audit: cannot read the config (${loaded.errors.join('; ')}); give --audit-dir DIR\n`);
    return 1;
  }
  const from = parseDate('from', values.from, timeZone, false);
  const to = parseDate('to', values.to, timeZone, true);
  const { records, skipped } = await collectAudit({ dir: resolve(dir), from, to });
  if (values.json) {
    io.stdout.write(`${JSON.stringify({ records, skipped }, null, 2)}\n`);
    return 0;
  }
  const range = `${values.from ?? 'the beginning'} to ${values.to ?? 'now'}`;
  io.stdout.write(
    `Audit log of ${loaded.ok ? loaded.config.deviceId : dir}, ${range} (times in ${timeZone}):\n\n`,
  );
  io.stdout.write(
    records.length > 0 ? `${formatAuditTable(auditRows(records, timeZone))}\n` : 'No entries.\n',
  );
  if (skipped > 0)
    io.stdout.write(`\n${skipped} damaged line(s) could not be read (for example after a power cut).\n`);
  return 0;
}

async function decommissionCommand(args: string[], io: CliIo, deps: CliDeps): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      ...common,
      export: { type: 'string' },
      offline: { type: 'boolean' },
      technician: { type: 'string' },
      yes: { type: 'boolean', short: 'y' },
    },
  });
  if (values.help) {
    io.stdout.write(`${usage.decommission}\n`);
    return 0;
  }
  if (values.offline && !values.export) throw new UsageError('--offline needs --export FILE');
  const { configDir, configPath } = paths(values);
  const loaded = await loadConfig(configPath);
  if (!loaded.ok) {
    io.stderr.write(`decommission: cannot read the config (${loaded.errors.join('; ')})\n`);
    return 1;
  }
  const config = loaded.config;
  if (!values.yes) {
    const prompter = new Prompter(io.stdin, io.stdout);
    try {
      const answer = await prompter.ask(
        `This wipes ${config.deviceId} for good. Type the device id to go on`,
        {
          parse: (text) =>
            text === config.deviceId
              ? { ok: true, value: text }
              : { ok: false, error: `type ${config.deviceId} exactly (Ctrl-C to stop)` },
        },
      );
      if (answer !== config.deviceId) return 1;
    } finally {
      prompter.close();
    }
  }
  const run = deps.run ?? runFile;
  const service = deps.service ?? systemdService({ run, root: deps.root ?? '/', systemctl: 'systemctl' });
  const result = await decommission({
    config,
    configDir,
    say: (text) => io.stdout.write(`${text}\n`),
    service,
    now: deps.now ?? Date.now,
    exportFile: values.export === undefined ? undefined : resolve(values.export),
    offline: values.offline === true,
    technician: values.technician,
    timeoutMs: 10_000,
    async disableService() {
      if ((await service.unavailable()) !== undefined) return undefined;
      const r = await run('systemctl', ['disable', `${serviceName}.service`], { timeoutMs: 30_000 });
      return r.code === 0 ? undefined : (r.failure ?? r.stderr.trim());
    },
  });
  if (!result.ok) {
    io.stderr.write(`decommission: ${result.reason}\n`);
    return 1;
  }
  io.stdout.write('Decommissioned. Remove the software with: sudo apt purge trygghetskamera\n');
  return 0;
}

/** Runs one command line; resolves with the exit code (0 ok, 1 failed, 2 usage). Never throws. */
export async function runCli(argv: string[], io: CliIo, deps: CliDeps = {}): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'provision':
        return await provisionCommand(rest, io, deps);
      case 'self-test':
        return await selfTestCommand(rest, io, deps);
      case 'audit':
        return await auditCommand(rest, io);
      case 'decommission':
        return await decommissionCommand(rest, io, deps);
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        io.stdout.write(`${usage.main}\n`);
        return command === undefined ? 2 : 0;
      default:
        throw new UsageError(`unknown command ${command}`);
    }
  } catch (error) {
    if (error instanceof UsageError || (error as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS')) {
      io.stderr.write(`${program}: ${(error as Error).message}\nSee: ${program} ${command ?? ''} --help\n`);
      return 2;
    }
    if (error instanceof ProvisionError) {
      io.stderr.write(`${program}: ${error.message}\n`);
      return 1;
    }
    if (error instanceof InputClosedError) {
      io.stderr.write(`${program}: ${error.message}; nothing was written\n`);
      return 1;
    }
    const code = (error as NodeJS.ErrnoException).code;
    const hint =
      code === 'EACCES' || code === 'EPERM'
        ? ' (permission denied: run with sudo)'
        : code === 'ENOENT'
          ? ' (a file or directory is missing: check the paths given)'
          : '';
    io.stderr.write(`${program}: ${(error as Error).message}${hint}\n`);
    return 1;
  }
}
