// One device on simulated hardware with the real WebRTC view, plus what stands in for the central
// service (a demo signing key, schedules and grants, a central MQTT client) and the viewer's web server.
// Shared by the demo (scripts/demo.ts), the end-to-end tests (test/e2e, test/view) and the look bench.
// The broker is the caller's: it must have a plain loopback listener (device and central) and, for the
// browser, a WebSocket listener.
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportSPKI, generateKeyPair, SignJWT } from 'jose';
import mqtt, { type MqttClient } from 'mqtt';
import { importKeys } from '../../device/auth/index.js';
import { clockCheck, systemClock } from '../../device/clock/index.js';
import { type CameraSource, Config } from '../../device/config/index.js';
import { openGpio, type SimGpio } from '../../device/hardware/index.js';
import type { Logger } from '../../device/log/index.js';
import {
  type GrantClaims,
  grantTokenType,
  type ScheduleClaims,
  scheduleTokenType,
  schemaVersion,
  topic,
  type ViewMode,
} from '../../device/protocol/index.js';
import { Service } from '../../device/service.js';
import type { RtpSourceStats } from '../../device/video/index.js';
import {
  type MediaView,
  mediaSettingsFromConfig,
  ProcessMedia,
  type ProcessMediaDeps,
  WebRtcMedia,
} from '../../device/view/index.js';
import {
  type GrantHolder,
  startViewerServer,
  type ViewerPageConfig,
  type ViewerServer,
} from './viewer-server.js';

/** ICE on loopback only (tests): nothing reaches the machine's other interfaces. */
export const loopbackIce = {
  iceInterfaceAddresses: { udp4: '127.0.0.1' },
  iceAdditionalHostAddresses: ['127.0.0.1'],
  iceUseIpv6: false,
};

export type ScheduleKind = 'open' | 'closing' | 'closed' | 'blurred' | 'low-resolution';
export const scheduleKinds: readonly ScheduleKind[] = [
  'open',
  'closing',
  'closed',
  'blurred',
  'low-resolution',
];

export interface LookStackOptions {
  /** Plain loopback MQTT listener: `mqtt://127.0.0.1:<port>`. */
  brokerUrl: string;
  /** What the viewer page needs to reach the broker over WebSocket; without it no web server starts. */
  page?: Omit<ViewerPageConfig, 'deviceId'> | undefined;
  log: Logger;
  deviceId?: string | undefined;
  camera?: { width: number; height: number; fps: number } | undefined;
  /** Where the picture comes from; default ffmpeg's test pattern. */
  source?: CameraSource | undefined;
  /** Restrict the device's ICE to loopback (tests); the demo uses every interface so a browser finds it. */
  loopbackOnly?: boolean | undefined;
  /** Port for the viewer's web server; default a free one. */
  httpPort?: number | undefined;
  negotiationTimeoutMs?: number | undefined;
  /**
   * Where the media runs: 'process' (default, as in the service: ProcessMedia, a killable process group
   * per look) or 'in-process' (WebRtcMedia in this process).
   */
  media?: 'process' | 'in-process' | undefined;
  /** For ProcessMedia: another child entry, signal sender or deadlines (the teardown tests). */
  processMedia?: Partial<Pick<ProcessMediaDeps, 'entry' | 'kill' | 'stopTimeoutMs' | 'confirmTimeoutMs'>>;
  /** The camera's ffmpeg (config camera.ffmpegPath); default the config's. */
  ffmpegPath?: string | undefined;
  /** Keep every look's media view and final stats (tests); false forgets them once stopped (long runs). */
  keepSessions?: boolean | undefined;
}

export interface LookStack {
  deviceId: string;
  service: Service;
  gpio: SimGpio;
  media: ProcessMedia | WebRtcMedia;
  /** The clock of the LED log, the decisions and the packet time stamps (ms). */
  now: () => number;
  /** Media sessions by sessionId (pids, timings, stats), and their final stats once stopped. */
  videos: Map<string, MediaView>;
  finalStats: Map<string, RtpSourceStats>;
  /** The viewer's web server, when `page` was given. */
  server: ViewerServer | undefined;
  /** An MQTT client with the central service's rights (plain listener). */
  central: MqttClient;
  /** A grant for the console that holds `holder`'s certificate and hang-up secret. */
  signGrant(holder: GrantHolder, overrides?: Partial<GrantClaims>): Promise<string>;
  setSchedule(kind: ScheduleKind): Promise<{ version: number; kind: ScheduleKind }>;
  pressPrivacy(): Promise<{ privacyOn: boolean }>;
  stop(): Promise<void>;
}

const kid = 'demo-central';

/** A one-off window (UTC) starting at the minute of `startMs`. */
function oneOff(startMs: number, durationMin: number, viewMode: ViewMode) {
  const iso = new Date(Math.floor(startMs / 60_000) * 60_000).toISOString();
  return { date: iso.slice(0, 10), start: iso.slice(11, 16), durationMin, viewMode };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function startLookStack(options: LookStackOptions): Promise<LookStack> {
  const { log } = options;
  const deviceId = options.deviceId ?? 'kam-demo';
  const clock = systemClock;
  const now = clock.now;
  const stateDir = await mkdtemp(join(tmpdir(), 'tk-look-'));
  const { publicKey, privateKey } = await generateKeyPair('EdDSA', { extractable: true });
  const publicKeyPem = await exportSPKI(publicKey);
  const sign = (claims: object, typ: string) =>
    new SignJWT({ ...claims }).setProtectedHeader({ alg: 'EdDSA', kid, typ }).sign(privateKey);

  const config = Config.parse({
    deviceId,
    timeZone: 'UTC',
    stateDir,
    broker: { url: options.brokerUrl },
    centralKeys: [{ kid, publicKeyPem }],
    gpio: { kind: 'sim', viewingLed: { pin: 17 }, privacyLed: { pin: 22 }, button: { pin: 27 } },
    camera: {
      ...(options.ffmpegPath === undefined ? {} : { ffmpegPath: options.ffmpegPath }),
      source: options.source ?? { kind: 'test' },
      width: options.camera?.width ?? 1280,
      height: options.camera?.height ?? 720,
      fps: options.camera?.fps ?? 15,
      encoder: 'libx264',
    },
    clock: { mode: 'trusted' },
  } satisfies Config | Record<string, unknown>);
  const gpio = await openGpio({ kind: 'sim', pins: config.gpio, now, log: log.child({ mod: 'gpio' }) });
  const videos = new Map<string, MediaView>();
  const finalStats = new Map<string, RtpSourceStats>();
  const keep = options.keepSessions ?? true;
  const settings = mediaSettingsFromConfig(config);
  const mediaSettings = {
    ...settings,
    peer: { ...settings.peer, ...(options.loopbackOnly ? loopbackIce : { iceUseIpv6: false }) },
  };
  const onStopped = (sessionId: string, stats: RtpSourceStats | undefined) => {
    if (!keep) videos.delete(sessionId);
    else if (stats) finalStats.set(sessionId, stats);
  };
  let media: ProcessMedia | WebRtcMedia;
  if ((options.media ?? 'process') === 'process') {
    const processMedia = new ProcessMedia({
      log: log.child({ mod: 'view' }),
      settings: mediaSettings,
      ffmpegPath: config.camera.ffmpegPath,
      ...options.processMedia,
    });
    processMedia.on('video', (sessionId, view) => videos.set(sessionId, view));
    processMedia.on('stopped', (sessionId, view) => onStopped(sessionId, view.stats));
    media = processMedia;
  } else {
    const webRtcMedia = new WebRtcMedia(
      { log: log.child({ mod: 'view' }), now, ffmpegPath: config.camera.ffmpegPath },
      mediaSettings,
    );
    webRtcMedia.on('video', (sessionId, video) =>
      videos.set(sessionId, {
        childPid: process.pid,
        get encoderPid() {
          return video.encoderPid;
        },
        get timings() {
          return video.timings;
        },
        get stats() {
          return video.stats;
        },
      }),
    );
    webRtcMedia.on('stopped', onStopped);
    media = webRtcMedia;
  }
  const service = new Service({
    config,
    log,
    gpio,
    keys: await importKeys([{ kid, pem: publicKeyPem }]),
    tls: undefined,
    clock,
    clockCheck: clockCheck({ ...config.clock, now }),
    media,
    ...(options.negotiationTimeoutMs !== undefined
      ? { negotiationTimeoutMs: options.negotiationTimeoutMs }
      : {}),
  });
  await service.start();

  const central = await mqtt.connectAsync(options.brokerUrl, { clientId: `central-${randomUUID()}` });
  let version = Math.floor(now() / 1000);

  const setSchedule = async (kind: ScheduleKind) => {
    const nowMs = now();
    const nowS = Math.floor(nowMs / 1000);
    const windows = {
      open: [oneOff(nowMs - 60_000, 120, 'full')],
      closing: [oneOff(nowMs - 60_000, 4, 'full')],
      closed: [oneOff(nowMs + 2 * 3_600_000, 30, 'full')],
      blurred: [oneOff(nowMs - 60_000, 120, 'blurred')],
      'low-resolution': [oneOff(nowMs - 60_000, 120, 'low-resolution')],
    }[kind];
    version += 1;
    const claims: ScheduleClaims = {
      aud: deviceId,
      version,
      nbf: nowS - 3600,
      exp: nowS + 86_400,
      windows: [],
      oneOff: windows,
    };
    const token = await sign(claims, scheduleTokenType);
    await central.publishAsync(topic(deviceId, 'schedule'), JSON.stringify({ schemaVersion, token }), {
      qos: 1,
      retain: true,
    });
    for (let waited = 0; service.supervisor.schedule?.version !== version; waited += 20) {
      if (waited > 5000) throw new Error(`the device did not take schedule version ${version}`);
      await sleep(20);
    }
    // A window is open: the service forks a media process to stand by; the first look should not pay
    // for loading werift (that is what the service's stand-by is for).
    if (media instanceof ProcessMedia) await media.warmReady();
    return { version, kind };
  };

  const signGrant = async (holder: GrantHolder, overrides: Partial<GrantClaims> = {}) => {
    // A grant is for a look about to start. On a device looks come minutes apart and the stand-by media
    // process has long loaded werift; tests and benches start looks back to back on a busy machine, so
    // they wait here for it rather than count its loading in a look's negotiation time.
    if (media instanceof ProcessMedia) await media.warmReady();
    const nowS = Math.floor(now() / 1000);
    const claims: GrantClaims = {
      aud: deviceId,
      sid: `ses-${randomUUID().slice(0, 8)}`,
      op: 'op-demo',
      nbf: nowS - 5,
      exp: nowS + 120,
      jti: randomUUID(),
      maxDurS: 60,
      ...holder,
      ...overrides,
    };
    return sign(claims, grantTokenType);
  };

  const pressPrivacy = async () => {
    gpio.button.press();
    const privacyOn = service.supervisor.conditions.privacyOn;
    await sleep(80);
    gpio.button.release();
    return { privacyOn };
  };

  const server = options.page
    ? await startViewerServer(
        {
          page: { ...options.page, deviceId },
          signGrant: (holder) => signGrant(holder),
          pressPrivacy,
          setSchedule: (kind) =>
            setSchedule(
              (scheduleKinds as readonly string[]).includes(kind) ? (kind as ScheduleKind) : 'open',
            ),
        },
        options.httpPort,
      )
    : undefined;

  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      const steps: Array<() => Promise<unknown>> = [
        async () => server?.close(),
        async () => service.stop(),
        async () => (media instanceof ProcessMedia ? media.close() : undefined),
        async () => central.endAsync(true),
        async () => rm(stateDir, { recursive: true, force: true }),
      ];
      for (const step of steps) {
        try {
          await step();
        } catch (error) {
          log.error({ err: error }, 'look stack: stop step failed');
        }
      }
    })();
    return stopping;
  };

  return {
    deviceId,
    service,
    gpio,
    media,
    now,
    videos,
    finalStats,
    server,
    central,
    signGrant,
    setSchedule,
    pressPrivacy,
    stop,
  };
}
