// `provision`: asks for (or takes as flags) everything the device needs, generates the device key and
// CSR on the device, and writes the validated config atomically. Each answer is checked with the
// config's own zod schema, so an interactive answer is re-asked with exactly the error the service
// would give. Re-provisioning starts from the existing config's values and keeps the device key.
import { copyFile, mkdir, readFile } from 'node:fs/promises';
import { basename, extname, join, resolve } from 'node:path';
import type { z } from 'zod';
import { importKeys } from '../device/auth/index.js';
import type { V4l2Port } from '../device/camera/index.js';
import { Config, controlNames, dayControls, nightControls, parseConfig } from '../device/config/index.js';
import { writeFileAtomic } from '../device/state/index.js';
import { type CameraFormat, type InputFormat, listVideoDevices, type VideoDevice } from './camera.js';
import {
  applyMode,
  checkCaFile,
  checkCertificate,
  createCsr,
  deviceFiles,
  ensureDeviceKey,
  type Owner,
  publicFileMode,
} from './certs.js';
import { formatControls, readControls } from './night.js';
import type { Parsed, Prompter } from './prompt.js';
import type { Runner } from './run.js';

export const configMode = 0o640;
// Broker identities that are not devices (docs/mosquitto/acl.conf): a device certificate with one of
// these CNs would get their rights. `operator` was the shared console account; it stays refused.
const reservedIds = new Set(['central', 'ops', 'operator']);
const consolePrefix = 'console-';

export interface ProvisionFlags {
  deviceId?: string | undefined;
  brokerUrl?: string | undefined;
  caFile?: string | undefined;
  centralKeys?: string[] | undefined;
  ledPin?: string | undefined;
  privacyLedPin?: string | undefined;
  buttonPin?: string | undefined;
  ledActiveLow?: boolean | undefined;
  buttonActiveHigh?: boolean | undefined;
  gpioKind?: string | undefined;
  camera?: string | undefined;
  cameraFormat?: string | undefined;
  resolution?: string | undefined;
  fps?: string | undefined;
  timeZone?: string | undefined;
  stateDir?: string | undefined;
  clockMode?: string | undefined;
  newKey?: boolean | undefined;
  /** `HH:MM-HH:MM` night hours for the camera's night preset, or `none`. */
  night?: string | undefined;
}

export interface ProvisionDeps {
  run: Runner;
  say(text: string): void;
  /** undefined: non-interactive, every value comes from a flag, the existing config or a default. */
  prompter: Prompter | undefined;
  configPath: string;
  configDir: string;
  /** Service user and group that must read the key and config (set when running as root). */
  owner: Owner | undefined;
  cameraRoot: string;
  v4l2ctl: string;
  /** The camera's control ioctls, to list its controls; undefined: not listed. */
  v4l2?: V4l2Port | undefined;
  now(): number;
}

export class ProvisionError extends Error {}

/** Parses with a zod schema and reports the first issue's message, as the config check would. */
function withSchema<T>(schema: z.ZodType<T>, answer: unknown): Parsed<T> {
  const parsed = schema.safeParse(answer);
  return parsed.success
    ? { ok: true, value: parsed.data }
    : { ok: false, error: parsed.error.issues[0]?.message ?? 'invalid' };
}

const shape = Config.shape;
const brokerUrl = shape.broker.shape.url;
const gpioShape = shape.gpio.shape;
const cameraShape = shape.camera.unwrap().shape;

function integer(answer: string): Parsed<number> {
  return /^-?\d+$/.test(answer)
    ? { ok: true, value: Number(answer) }
    : { ok: false, error: 'a whole number' };
}

function pinParser(answer: string): Parsed<number> {
  const number = integer(answer);
  return number.ok ? withSchema(gpioShape.button.shape.pin, number.value) : number;
}

interface Existing {
  raw: Record<string, unknown>;
  config: Config | undefined;
}

async function readExisting(path: string): Promise<Existing> {
  try {
    const raw = JSON.parse(await readFile(path, 'utf8')) as unknown;
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return { raw: {}, config: undefined };
    const parsed = parseConfig(raw);
    return { raw: raw as Record<string, unknown>, config: parsed.ok ? parsed.config : undefined };
  } catch {
    return { raw: {}, config: undefined };
  }
}

interface Question<T> {
  flag: string;
  flagValue: string | undefined;
  question: string;
  defaultAnswer: string | undefined;
  parse(answer: string): Parsed<T> | Promise<Parsed<T>>;
}

/** One value: from its flag (which must be valid), else asked, else its default in non-interactive mode. */
async function obtain<T>(deps: ProvisionDeps, q: Question<T>): Promise<T> {
  if (q.flagValue !== undefined) {
    const parsed = await q.parse(q.flagValue.trim());
    if (!parsed.ok) throw new ProvisionError(`--${q.flag} ${JSON.stringify(q.flagValue)}: ${parsed.error}`);
    return parsed.value;
  }
  if (deps.prompter) return deps.prompter.ask(q.question, { defaultAnswer: q.defaultAnswer, parse: q.parse });
  if (q.defaultAnswer === undefined)
    throw new ProvisionError(`--${q.flag} is required in non-interactive mode`);
  const parsed = await q.parse(q.defaultAnswer);
  if (!parsed.ok)
    throw new ProvisionError(
      `--${q.flag}: the default ${JSON.stringify(q.defaultAnswer)} is not valid: ${parsed.error}`,
    );
  return parsed.value;
}

type CentralKey = { kid: string; publicKeyPem: string };

async function parseCentralKeys(answer: string): Promise<Parsed<CentralKey[]>> {
  const items = answer
    .split(',')
    .map((item) => item.trim())
    .filter(Boolean);
  if (items.length === 0) return { ok: false, error: 'at least one central public key is needed' };
  const keys: CentralKey[] = [];
  for (const item of items) {
    const eq = item.indexOf('=');
    const file = eq >= 0 ? item.slice(eq + 1) : item;
    const kid = eq >= 0 ? item.slice(0, eq) : basename(file, extname(file));
    const kidCheck = withSchema(shape.centralKeys.element.shape.kid, kid);
    if (!kidCheck.ok) return { ok: false, error: `key id ${JSON.stringify(kid)}: ${kidCheck.error}` };
    let pem: string;
    try {
      pem = await readFile(resolve(file), 'utf8');
    } catch (error) {
      return {
        ok: false,
        error: `cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? 'error'})`,
      };
    }
    try {
      await importKeys([{ kid, pem }]);
    } catch (error) {
      return {
        ok: false,
        error: `${file} is not an Ed25519 public key in PEM (BEGIN PUBLIC KEY): ${(error as Error).message}`,
      };
    }
    if (keys.some((key) => key.kid === kid)) return { ok: false, error: `key id ${kid} given twice` };
    keys.push({ kid, publicKeyPem: pem.trim() });
  }
  return { ok: true, value: keys };
}

function describeDevice(device: VideoDevice, index: number): string {
  const formats = device.formats
    .map(
      (format) =>
        `${format.fourcc} ${format.sizes.slice(0, 4).join(' ')}${format.sizes.length > 4 ? ' …' : ''}`,
    )
    .join('; ');
  return `  ${index + 1}) ${device.stablePath ?? device.path}  ${device.name}${device.stablePath ? ` (${device.path})` : ''}${formats ? `\n       ${formats}` : ''}`;
}

type CameraSource =
  | { kind: 'test' }
  | { kind: 'libcamera'; rpicamPath?: string; camera?: number }
  | { kind: 'v4l2'; device: string; inputFormat?: InputFormat };

function cameraParser(devices: VideoDevice[], oldLibcamera: CameraSource | undefined) {
  return (answer: string): Parsed<{ source: CameraSource; device: VideoDevice | undefined }> => {
    if (/^(t|test)$/i.test(answer))
      return { ok: true, value: { source: { kind: 'test' }, device: undefined } };
    if (/^(l|libcamera)$/i.test(answer))
      return { ok: true, value: { source: oldLibcamera ?? { kind: 'libcamera' }, device: undefined } };
    if (/^\d+$/.test(answer)) {
      const device = devices[Number(answer) - 1];
      if (!device) return { ok: false, error: `choose 1-${devices.length}, l, t, or a device path` };
      return {
        ok: true,
        value: { source: { kind: 'v4l2', device: device.stablePath ?? device.path }, device },
      };
    }
    const source = withSchema(cameraShape.source.unwrap(), { kind: 'v4l2', device: answer });
    if (!source.ok) return source;
    const device = devices.find((d) => d.path === answer || d.stablePath === answer);
    return { ok: true, value: { source: { kind: 'v4l2', device: answer }, device } };
  };
}

function preferredFormat(formats: CameraFormat[]): CameraFormat | undefined {
  const usable = formats.filter((format) => format.inputFormat);
  return usable.find((f) => f.inputFormat === 'mjpeg') ?? usable[0];
}

function preferredSize(format: CameraFormat | undefined, current: string): string {
  if (!format || format.sizes.length === 0 || format.sizes.includes(current)) return current;
  const fits = format.sizes
    .map((size) => size.split('x').map(Number) as [number, number])
    .filter(([w, h]) => w <= 1280 && h <= 720)
    .sort((a, b) => b[0] * b[1] - a[0] * a[1]);
  return fits[0] ? `${fits[0][0]}x${fits[0][1]}` : current;
}

function sizeParser(answer: string): Parsed<{ width: number; height: number }> {
  const match = /^(\d+)x(\d+)$/.exec(answer);
  if (!match) return { ok: false, error: 'write it as WIDTHxHEIGHT, e.g. 1280x720' };
  const width = withSchema(cameraShape.width.unwrap(), Number(match[1]));
  if (!width.ok) return { ok: false, error: `width: ${width.error}` };
  const height = withSchema(cameraShape.height.unwrap(), Number(match[2]));
  if (!height.ok) return { ok: false, error: `height: ${height.error}` };
  return { ok: true, value: { width: width.value, height: height.value } };
}

type NightHours = { from: string; to: string } | 'none';

function nightParser(answer: string): Parsed<NightHours> {
  if (answer === 'none') return { ok: true, value: 'none' };
  const match = /^(\d\d:\d\d)-(\d\d:\d\d)$/.exec(answer);
  const controlsShape = cameraShape.controls.unwrap().shape;
  const from = withSchema(controlsShape.nightFrom.unwrap(), match?.[1]);
  const to = withSchema(controlsShape.nightTo.unwrap(), match?.[2]);
  if (!match || !from.ok || !to.ok)
    return { ok: false, error: 'write it as HH:MM-HH:MM (local time), or none' };
  if (from.value === to.value)
    return { ok: false, error: 'the night must not start and end at the same time' };
  return { ok: true, value: { from: from.value, to: to.value } };
}

/** Lists the camera's controls and says which of the night preset's it lacks. */
function sayControls(deps: ProvisionDeps, device: string): void {
  if (!deps.v4l2) return;
  const listed = readControls(deps.v4l2, join(deps.cameraRoot, device));
  if (!listed.ok) {
    deps.say(`  (the camera's controls could not be read: ${listed.detail})`);
    return;
  }
  deps.say(`Camera controls of ${device} (the device sets them by id at every look):`);
  for (const line of formatControls(listed.controls)) deps.say(line);
  const has = new Set(listed.controls.flatMap((control) => (control.configName ? [control.configName] : [])));
  const lacking = controlNames.filter((name) => nightControls[name] !== undefined && !has.has(name));
  if (lacking.length > 0)
    deps.say(
      `  This camera has no ${lacking.join(', ')}: the night preset sets the rest (health will say so).`,
    );
}

function record(value: unknown): Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : {};
}

/** Runs the whole provisioning; returns the written config. Throws ProvisionError with what to fix. */
export async function provision(flags: ProvisionFlags, deps: ProvisionDeps): Promise<Config> {
  const existing = await readExisting(deps.configPath);
  const old = existing.config;
  if (old) deps.say(`Existing configuration ${deps.configPath} found: its values are the defaults.`);

  const deviceId = await obtain(deps, {
    flag: 'device-id',
    flagValue: flags.deviceId,
    question: 'Device id (as registered centrally, e.g. gbg-0042)',
    defaultAnswer: old?.deviceId,
    parse: (answer) =>
      reservedIds.has(answer)
        ? { ok: false, error: `${answer} is a service identity, never a device id` }
        : answer.startsWith(consolePrefix)
          ? { ok: false, error: `${consolePrefix}… names operator consoles, never a device` }
          : withSchema(shape.deviceId, answer),
  });
  const url = await obtain(deps, {
    flag: 'broker-url',
    flagValue: flags.brokerUrl,
    question: 'Broker URL (mqtts://host:8883)',
    defaultAnswer: old?.broker.url,
    parse: (answer) => withSchema(brokerUrl, answer),
  });
  const tls = /^mqtts:/i.test(url);
  const files = deviceFiles(deps.configDir);
  let caSource: string | undefined;
  if (tls) {
    caSource = await obtain(deps, {
      flag: 'ca-file',
      flagValue: flags.caFile,
      question: 'CA certificate file of the central PKI (PEM)',
      defaultAnswer: old?.broker.caFile,
      parse: async (answer) => {
        const path = resolve(answer);
        const problem = await checkCaFile(path);
        return problem ? { ok: false, error: problem } : { ok: true, value: path };
      },
    });
  }
  // Keys already in the config (inline PEM) can be kept as they are.
  const oldKeys: CentralKey[] = (old?.centralKeys ?? []).flatMap((key) =>
    key.publicKeyPem !== undefined ? [{ kid: key.kid, publicKeyPem: key.publicKeyPem }] : [],
  );
  const keepKeys = oldKeys.length > 0 && oldKeys.length === old?.centralKeys.length;
  const centralKeys = await obtain<CentralKey[]>(deps, {
    flag: 'central-key',
    flagValue: flags.centralKeys && flags.centralKeys.length > 0 ? flags.centralKeys.join(',') : undefined,
    question: 'Central public key file(s), PEM; KID=FILE or FILE, comma separated',
    defaultAnswer: keepKeys ? 'keep' : undefined,
    parse: (answer) =>
      answer === 'keep' && keepKeys ? { ok: true, value: oldKeys } : parseCentralKeys(answer),
  });

  const gpioKind = await obtain(deps, {
    flag: 'gpio-kind',
    flagValue: flags.gpioKind,
    question: 'GPIO adapter (onoff on a Pi; sim only for tests and demos)',
    defaultAnswer: old?.gpio.kind ?? 'onoff',
    parse: (answer) => withSchema(gpioShape.kind.unwrap(), answer),
  });
  const ledPin = await obtain(deps, {
    flag: 'led-pin',
    flagValue: flags.ledPin,
    question: 'Viewing LED GPIO pin (BCM number)',
    defaultAnswer: String(old?.gpio.viewingLed.pin ?? 17),
    parse: pinParser,
  });
  const privacyLedPin = await obtain<number | undefined>(deps, {
    flag: 'privacy-led-pin',
    flagValue: flags.privacyLedPin,
    question: 'Privacy LED GPIO pin (BCM number, or none)',
    defaultAnswer: old?.gpio.privacyLed ? String(old.gpio.privacyLed.pin) : 'none',
    parse: (answer) => (answer === 'none' ? { ok: true, value: undefined } : pinParser(answer)),
  });
  const buttonPin = await obtain(deps, {
    flag: 'button-pin',
    flagValue: flags.buttonPin,
    question: 'Privacy button GPIO pin (BCM number)',
    defaultAnswer: String(old?.gpio.button.pin ?? 27),
    parse: (answer) => {
      const pin = pinParser(answer);
      if (pin.ok && (pin.value === ledPin || pin.value === privacyLedPin))
        return { ok: false, error: 'viewingLed, privacyLed and button must use different pins' };
      return pin;
    },
  });
  if (privacyLedPin !== undefined && privacyLedPin === ledPin)
    throw new ProvisionError('--privacy-led-pin: viewingLed, privacyLed and button must use different pins');

  const listed =
    flags.camera === 'test' || flags.camera === 'libcamera'
      ? { devices: [] }
      : await listVideoDevices({ run: deps.run, root: deps.cameraRoot, v4l2ctl: deps.v4l2ctl });
  if (deps.prompter) {
    deps.prompter.say(listed.devices.length > 0 ? 'Cameras found:' : 'No camera found.');
    for (const [index, device] of listed.devices.entries()) deps.prompter.say(describeDevice(device, index));
    deps.prompter.say(
      '  l) Raspberry Pi camera module on the ribbon cable (CSI, through libcamera: rpicam-vid)',
    );
    deps.prompter.say('  t) test pattern (no camera: demos and tests only)');
    if (listed.note) deps.prompter.say(`  (${listed.note})`);
  }
  const oldSource = old?.camera.source;
  const defaultCamera =
    oldSource?.kind === 'test' || oldSource?.kind === 'libcamera'
      ? oldSource.kind
      : oldSource?.kind === 'v4l2'
        ? oldSource.device
        : listed.devices.length > 0
          ? '1'
          : undefined;
  const camera = await obtain(deps, {
    flag: 'camera',
    flagValue: flags.camera,
    question: 'Camera (number, device path, l, or t)',
    defaultAnswer: defaultCamera,
    parse: cameraParser(
      listed.devices,
      oldSource?.kind === 'libcamera'
        ? { kind: 'libcamera', rpicamPath: oldSource.rpicamPath, camera: oldSource.camera }
        : undefined,
    ),
  });
  let source: CameraSource = camera.source;
  let format: CameraFormat | undefined;
  if (source.kind === 'v4l2') {
    const usable = camera.device?.formats.filter((f) => f.inputFormat) ?? [];
    format = preferredFormat(usable);
    const choices = usable.length > 0 ? usable.map((f) => f.inputFormat).join(', ') : 'h264, mjpeg, yuyv422';
    const oldFormat = oldSource?.kind === 'v4l2' ? oldSource.inputFormat : undefined;
    const inputFormat = await obtain<InputFormat | undefined>(deps, {
      flag: 'camera-format',
      flagValue: flags.cameraFormat,
      question: `Camera input format (${choices}, or auto)`,
      defaultAnswer: oldFormat ?? format?.inputFormat ?? 'auto',
      parse: (answer) => {
        if (answer === 'auto') return { ok: true, value: undefined };
        const parsed = withSchema(cameraShape.source.unwrap().options[0].shape.inputFormat.unwrap(), answer);
        if (parsed.ok && usable.length > 0 && !usable.some((f) => f.inputFormat === parsed.value))
          return { ok: false, error: `this camera offers ${choices}` };
        return parsed;
      },
    });
    format = usable.find((f) => f.inputFormat === inputFormat) ?? format;
    source = { kind: 'v4l2', device: source.device, ...(inputFormat ? { inputFormat } : {}) };
  }
  if (source.kind === 'v4l2') sayControls(deps, source.device);
  const oldControls = old?.camera.controls;
  const night = await obtain(deps, {
    flag: 'night',
    flagValue: flags.night,
    question:
      'Night preset (50 Hz, auto exposure that may lower the frame rate in the dark): night hours HH:MM-HH:MM, or none',
    defaultAnswer:
      oldControls === undefined
        ? '21:00-07:00'
        : JSON.stringify(oldControls.night) === JSON.stringify(oldControls.day)
          ? 'none'
          : `${oldControls.nightFrom}-${oldControls.nightTo}`,
    parse: nightParser,
  });
  const currentSize = old ? `${old.camera.width}x${old.camera.height}` : '1280x720';
  const size = await obtain(deps, {
    flag: 'resolution',
    flagValue: flags.resolution,
    question: 'Resolution',
    defaultAnswer: preferredSize(format, currentSize),
    parse: sizeParser,
  });
  const fps = await obtain(deps, {
    flag: 'fps',
    flagValue: flags.fps,
    question: 'Frames per second',
    defaultAnswer: String(old?.camera.fps ?? 15),
    parse: (answer) => {
      const number = integer(answer);
      return number.ok ? withSchema(cameraShape.fps.unwrap(), number.value) : number;
    },
  });
  const timeZone = await obtain(deps, {
    flag: 'time-zone',
    flagValue: flags.timeZone,
    question: 'Time zone of the home (IANA name)',
    defaultAnswer: old?.timeZone ?? 'Europe/Stockholm',
    parse: (answer) => withSchema(shape.timeZone.unwrap(), answer),
  });

  const raw = existing.raw;
  const oldGpio = record(raw.gpio);
  const candidate = {
    ...raw,
    deviceId,
    timeZone,
    ...(flags.stateDir !== undefined ? { stateDir: flags.stateDir } : {}),
    broker: {
      ...record(raw.broker),
      url,
      ...(tls ? { caFile: files.ca, certFile: files.cert, keyFile: files.key } : {}),
    },
    centralKeys,
    gpio: {
      ...oldGpio,
      kind: gpioKind,
      viewingLed: {
        ...record(oldGpio.viewingLed),
        pin: ledPin,
        ...(flags.ledActiveLow ? { activeLow: true } : {}),
      },
      ...(privacyLedPin !== undefined
        ? { privacyLed: { ...record(oldGpio.privacyLed), pin: privacyLedPin } }
        : {}),
      button: {
        ...record(oldGpio.button),
        pin: buttonPin,
        ...(flags.buttonActiveHigh ? { activeLow: false } : {}),
      },
    },
    camera: {
      ...record(raw.camera),
      source,
      width: size.width,
      height: size.height,
      fps,
      controls: nightPreset(record(record(raw.camera).controls), night),
    },
    ...(flags.clockMode !== undefined ? { clock: { ...record(raw.clock), mode: flags.clockMode } } : {}),
  };
  if (privacyLedPin === undefined) delete (candidate.gpio as Record<string, unknown>).privacyLed;
  if (!tls) {
    const broker = candidate.broker as Record<string, unknown>;
    delete broker.caFile;
    delete broker.certFile;
    delete broker.keyFile;
  }
  const parsed = parseConfig(candidate);
  if (!parsed.ok)
    throw new ProvisionError(`the configuration is not valid:\n  ${parsed.errors.join('\n  ')}`);

  await mkdir(deps.configDir, { recursive: true, mode: 0o750 });
  if (tls && caSource) {
    if (resolve(caSource) !== files.ca) await copyFile(caSource, files.ca);
    await applyMode(files.ca, publicFileMode, deps.owner, 0);
    const key = await ensureDeviceKey({
      run: deps.run,
      keyFile: files.key,
      owner: deps.owner,
      renew: flags.newKey ?? false,
    });
    deps.say(
      key.created
        ? `Device key generated: ${files.key} (mode 0600, never leaves this device)`
        : `Device key kept: ${files.key}`,
    );
    const csr = await createCsr({ run: deps.run, keyFile: files.key, csrFile: files.csr, deviceId });
    const cert = await checkCertificate({
      run: deps.run,
      certFile: files.cert,
      keyFile: files.key,
      caFile: files.ca,
      deviceId,
      nowMs: deps.now(),
    });
    await writeConfig(deps, parsed.config, candidate);
    if (cert.ok) {
      deps.say(`The installed certificate ${files.cert} still matches the key (valid to ${cert.validTo}).`);
    } else {
      deps.say(
        [
          '',
          `Certificate signing request (CN=${deviceId}), also in ${files.csr}:`,
          '',
          csr.trim(),
          '',
          'Next: send this CSR to the central PKI; when the signed certificate comes back, run',
          '  trygghetskamera-provision provision import-cert FILE',
        ].join('\n'),
      );
    }
  } else {
    await writeConfig(deps, parsed.config, candidate);
  }
  return parsed.config;
}

/** The config's camera controls with the night preset for these hours (or none: the day values all day). */
function nightPreset(old: Record<string, unknown>, night: NightHours): Record<string, unknown> {
  const day = old.day ?? dayControls;
  if (night === 'none') return { ...old, day, night: day };
  return { ...old, nightFrom: night.from, nightTo: night.to, day, night: nightControls };
}

async function writeConfig(deps: ProvisionDeps, config: Config, candidate: object): Promise<void> {
  // The input (not the parsed output) is written, so defaults stay defaults and a later version's
  // defaults apply; parseConfig above has proven it valid.
  await writeFileAtomic(deps.configPath, `${JSON.stringify(candidate, null, 2)}\n`);
  await applyMode(deps.configPath, configMode, deps.owner, 0);
  deps.say(`Configuration for ${config.deviceId} written to ${deps.configPath} (mode 0640).`);
}

/** `provision import-cert FILE`: checks the signed certificate and installs it. */
export async function importCert(
  file: string,
  deps: Pick<ProvisionDeps, 'run' | 'say' | 'configPath' | 'owner' | 'now'>,
): Promise<void> {
  const loaded = parseConfig(JSON.parse(await readFile(deps.configPath, 'utf8').catch(() => 'null')));
  if (!loaded.ok)
    throw new ProvisionError(
      `cannot use ${deps.configPath} (${loaded.errors.join('; ')}): run provision first`,
    );
  const { broker, deviceId } = loaded.config;
  if (!broker.caFile || !broker.certFile || !broker.keyFile)
    throw new ProvisionError('the broker URL is not mqtts://, so no certificate is used');
  const check = await checkCertificate({
    run: deps.run,
    certFile: resolve(file),
    keyFile: broker.keyFile,
    caFile: broker.caFile,
    deviceId,
    nowMs: deps.now(),
  });
  if (!check.ok) throw new ProvisionError(`${file} was NOT installed:\n  ${check.problems.join('\n  ')}`);
  await writeFileAtomic(broker.certFile, `${check.pem}\n`);
  await applyMode(broker.certFile, publicFileMode, deps.owner, 0);
  deps.say(
    `Certificate installed: ${broker.certFile}\n  subject ${check.subject.replace(/\n/g, ', ')}\n  issuer ${check.issuer.replace(/\n/g, ', ')}\n  valid to ${check.validTo}`,
  );
  deps.say('Next: run `trygghetskamera-provision self-test`.');
}
