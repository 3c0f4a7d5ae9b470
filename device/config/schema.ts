// The device's configuration file, validated at start-up. A bad file stops the service; it never
// runs half-configured. Every field has a default that is safe, or is required.
import { z } from 'zod';
import { DeviceId } from '../protocol/tokens.js';
import { loadZone } from '../schedule/zoneinfo.js';

const loopbackHosts = new Set(['127.0.0.1', 'localhost', '[::1]', '::1']);

/** A zone from the system's tz database (tzdata), read without ICU: see schedule/zoneinfo.ts. */
const TimeZone = z.string().superRefine((name, context) => {
  const zone = loadZone(name);
  if (zone instanceof Error)
    context.addIssue({ code: 'custom', message: `not a known IANA time zone: ${zone.message}` });
});

const filePath = z.string().min(1).regex(/^\//, 'must be an absolute path');
const pin = z.number().int().min(0).max(63);

const Broker = z
  .object({
    url: z
      .url({
        protocol: /^mqtts?$/,
        error: 'must be an mqtts:// URL (mqtt:// only for a loopback demo broker)',
      })
      .refine(
        (url) => {
          // Zod runs this even when the URL check above failed; that issue is already reported.
          if (!URL.canParse(url)) return true;
          const parsed = new URL(url);
          return parsed.protocol === 'mqtts:' || loopbackHosts.has(parsed.hostname);
        },
        { message: 'plain mqtt:// is allowed only to a loopback broker; use mqtts://' },
      ),
    caFile: filePath.optional(),
    certFile: filePath.optional(),
    keyFile: filePath.optional(),
    keepaliveS: z.number().int().min(5).max(600).default(30),
    /** Exponential backoff with jitter between connect attempts. */
    reconnect: z
      .object({
        initialMs: z.number().int().min(100).max(60_000).default(500),
        maxMs: z.number().int().min(1000).max(600_000).default(30_000),
      })
      .strict()
      .default({ initialMs: 500, maxMs: 30_000 }),
    /** Health messages kept while offline (the oldest are dropped). */
    offlineQueueMax: z.number().int().min(0).max(10_000).default(20),
  })
  .strict()
  .refine((b) => !/^mqtts:/i.test(b.url) || (b.caFile && b.certFile && b.keyFile), {
    message:
      'an mqtts:// broker needs caFile, certFile and keyFile (the device authenticates with its certificate)',
    path: ['certFile'],
  });

const CentralKey = z
  .object({
    kid: z.string().min(1).max(128),
    publicKeyFile: filePath.optional(),
    publicKeyPem: z.string().includes('BEGIN PUBLIC KEY').optional(),
  })
  .strict()
  .refine((k) => (k.publicKeyFile === undefined) !== (k.publicKeyPem === undefined), {
    message: 'give exactly one of publicKeyFile or publicKeyPem',
  });

const Led = z.object({ pin, activeLow: z.boolean().default(false) }).strict();

const Gpio = z
  .object({
    kind: z.enum(['onoff', 'sim']).default('onoff'),
    chipLabel: z.string().min(1).optional(),
    viewingLed: Led,
    privacyLed: Led.optional(),
    button: z
      .object({
        pin,
        activeLow: z.boolean().default(true),
        debounceMs: z.number().int().min(0).max(1000).default(50),
        longPressMs: z.number().int().min(500).max(30_000).default(3000),
      })
      .strict(),
  })
  .strict()
  .refine(
    (g) => {
      const pins = [g.viewingLed.pin, g.button.pin, ...(g.privacyLed ? [g.privacyLed.pin] : [])];
      return new Set(pins).size === pins.length;
    },
    { message: 'viewingLed, privacyLed and button must use different pins' },
  );

/** Where the picture comes from: a V4L2 camera, or ffmpeg's synthetic test pattern (tests, demo). */
export const CameraSource = z.discriminatedUnion('kind', [
  z
    .object({
      kind: z.literal('v4l2'),
      device: z
        .string()
        .regex(/^\/dev\/video\d+$|^\/dev\/v4l\/by-(id|path)\/[\w.:-]+$/, 'a V4L2 device path'),
      inputFormat: z.enum(['h264', 'mjpeg', 'yuyv422']).optional(),
    })
    .strict(),
  /**
   * A Raspberry Pi camera module (CSI) through libcamera: `rpicam-vid` encodes H.264 (on a Pi 4 in the
   * hardware encoder) and the device forwards it unchanged in `full` mode.
   */
  z
    .object({
      kind: z.literal('libcamera'),
      rpicamPath: filePath.default('/usr/bin/rpicam-vid'),
      /** libcamera's camera index (`rpicam-vid --list-cameras`). */
      camera: z.number().int().min(0).max(7).default(0),
    })
    .strict(),
  z.object({ kind: z.literal('test') }).strict(),
]);
export type CameraSource = z.infer<typeof CameraSource>;

/** Camera controls the device sets by V4L2 id (device/camera/controls.ts); absent ones are left alone. */
export const ControlValues = z
  .object({
    /** Sweden's mains are 50 Hz: anything else makes lamps flicker in the picture. */
    powerLineFrequency: z.enum(['disabled', '50Hz', '60Hz', 'auto']).optional(),
    autoExposure: z.enum(['auto', 'manual', 'shutter-priority', 'aperture-priority']).optional(),
    /** May the camera lower its frame rate for longer exposures (V4L2_CID_EXPOSURE_AUTO_PRIORITY)? */
    exposureDynamicFramerate: z.boolean().optional(),
    backlightCompensation: z.number().int().optional(),
    brightness: z.number().int().optional(),
    gain: z.number().int().optional(),
  })
  .strict();
export type ControlValues = z.infer<typeof ControlValues>;
export const controlNames = [
  'powerLineFrequency',
  'autoExposure',
  'exposureDynamicFramerate',
  'backlightCompensation',
  'brightness',
  'gain',
] as const;
export type ControlName = (typeof controlNames)[number];

const clockTime = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'a local time HH:MM');

export const dayControls: ControlValues = {
  powerLineFrequency: '50Hz',
  autoExposure: 'aperture-priority',
  exposureDynamicFramerate: false,
};
/** The night preset: auto exposure may lengthen exposures, and so lower the frame rate, in a dark room. */
export const nightControls: ControlValues = {
  powerLineFrequency: '50Hz',
  autoExposure: 'aperture-priority',
  exposureDynamicFramerate: true,
};

const CameraControls = z
  .object({
    /** Night (local time, the config's timeZone): from `nightFrom` to `nightTo`, across midnight if need be. */
    nightFrom: clockTime.default('21:00'),
    nightTo: clockTime.default('07:00'),
    day: ControlValues.default(dayControls),
    night: ControlValues.default(nightControls),
    /** Per view mode, on top of the day or night values. */
    viewModes: z
      .object({
        full: ControlValues.optional(),
        blurred: ControlValues.optional(),
        'low-resolution': ControlValues.optional(),
      })
      .strict()
      .default({}),
    /** Controls that must take: one that cannot be set is the `camera-controls` fault; others are warnings. */
    required: z.array(z.enum(controlNames)).default(['powerLineFrequency']),
  })
  .strict();
export type CameraControls = z.infer<typeof CameraControls>;

const Camera = z
  .object({
    source: CameraSource.default({ kind: 'v4l2', device: '/dev/video0' }),
    width: z.number().int().min(160).max(1920).default(1280),
    height: z.number().int().min(120).max(1080).default(720),
    fps: z.number().int().min(1).max(30).default(15),
    /**
     * How the picture is encoded: `copy` passes a camera's own H.264 through (full view only);
     * `h264_v4l2m2m` is the Pi 4's hardware encoder (the Pi 5 has none); `libx264` is software. A
     * `libcamera` source always forwards rpicam-vid's H.264 in `full` mode; this picks the re-encoder
     * for its blurred and low-resolution modes (`copy` counts as libx264 there).
     */
    encoder: z.enum(['copy', 'h264_v4l2m2m', 'libx264']).default('libx264'),
    ffmpegPath: filePath.default('/usr/bin/ffmpeg'),
    /** Applied after every camera open, before the first frame (V4L2 sources only). */
    controls: CameraControls.default(CameraControls.parse({})),
  })
  .strict();

const Clock = z
  .object({
    /**
     * `kernel`: trusted while the kernel reports the clock synchronised (adjtimex), the flag file only
     * where that cannot be read. `timesyncd`/`file`: while systemd-timesyncd's flag file exists (it is
     * never removed). `trusted`: demo and tests only. The time floor applies in every mode.
     */
    mode: z.enum(['kernel', 'timesyncd', 'file', 'trusted']).default('kernel'),
    syncedFile: filePath.default('/run/systemd/timesync/synchronized'),
    checkIntervalS: z.number().int().min(1).max(300).default(10),
    /** How far below the persisted time floor the clock may read and still be trusted. */
    floorToleranceS: z.number().int().min(0).max(3600).default(120),
    /** How often a risen time floor is saved (it is also saved at every accepted grant). */
    floorSaveIntervalS: z.number().int().min(10).max(3600).default(600),
    /** A wall clock moving this much more or less than the monotonic clock between checks is a step. */
    stepThresholdMs: z.number().int().min(100).max(60_000).default(2000),
  })
  .strict();

/** A token bucket: `perS` sustained, `burst` at once after a quiet spell. */
const Bucket = z
  .object({
    perS: z.number().min(0.01).max(10_000),
    burst: z.number().int().min(1).max(100_000),
  })
  .strict();

const Limits = z
  .object({
    maxViewDurationS: z.number().int().min(5).max(600).default(120),
    maxGrantLifetimeS: z.number().int().min(10).max(3600).default(600),
    nbfLeewayS: z.number().int().min(0).max(60).default(5),
    maxMessageBytes: z.number().int().min(1024).max(1_048_576).default(16_384),
    /**
     * Token buckets taken before any signature check (docs/protocol.md §3). `requests`: look requests
     * whose grant claims to be a live grant for this device from a known key (checked in full only
     * once admitted). `other`: every other message on view/request (requests that could never be
     * granted, malformed messages, signalling that names no running look). `schedules`: schedule
     * messages. Signalling for the running look is not limited: the device bounds it per look.
     */
    inbound: z
      .object({
        requests: Bucket.default({ perS: 20, burst: 40 }),
        other: Bucket.default({ perS: 50, burst: 100 }),
        schedules: Bucket.default({ perS: 1, burst: 5 }),
      })
      .strict()
      .default({
        requests: { perS: 20, burst: 40 },
        other: { perS: 50, burst: 100 },
        schedules: { perS: 1, burst: 5 },
      }),
  })
  .strict();

export const Config = z
  .object({
    deviceId: DeviceId,
    timeZone: TimeZone.default('Europe/Stockholm'),
    stateDir: filePath.default('/var/lib/trygghetskamera'),
    broker: Broker,
    centralKeys: z.array(CentralKey).min(1, 'at least one central public key is needed'),
    gpio: Gpio,
    camera: Camera.default(Camera.parse({})),
    clock: Clock.default(Clock.parse({})),
    limits: Limits.default(Limits.parse({})),
    webrtc: z
      .object({
        iceServers: z
          .array(
            z
              .object({
                urls: z.string().regex(/^(stun|turns?):/, 'a stun:, turn: or turns: URL'),
                username: z.string().optional(),
                credential: z.string().optional(),
              })
              .strict(),
          )
          .default([]),
        icePortRange: z.tuple([z.number().int().min(1024), z.number().int().max(65535)]).optional(),
        /**
         * From the decision to the look's first video packet leaving the device; longer only for
         * slow hardware (the VM rig under emulation). Default 10 s.
         */
        negotiationTimeoutS: z.number().int().min(5).max(120).optional(),
      })
      .strict()
      .default({ iceServers: [] }),
    health: z
      .object({
        intervalS: z.number().int().min(5).max(3600).default(60),
        /** Cheap check for changes that are reported at once (camera, privacy, clock, disk). */
        checkIntervalS: z.number().int().min(1).max(600).default(5),
        /** Free space of the state directory below which the `disk` fault is raised. */
        diskLowMB: z.number().int().min(1).max(100_000).default(100),
      })
      .strict()
      .default({ intervalS: 60, checkIntervalS: 5, diskLowMB: 100 }),
    /**
     * Persisted QoS 1 records (audit, events) waiting for the central service's acknowledgement; new
     * ones are refused when full.
     */
    outbox: z
      .object({
        maxRecords: z.number().int().min(10).max(1_000_000).default(10_000),
        maxBytes: z.number().int().min(65_536).max(1_073_741_824).default(8_388_608),
        /** A record not acknowledged this long after the broker took it is sent again (while connected). */
        resendS: z.number().int().min(5).max(3600).default(60),
        /** The re-send delay doubles with each re-send of a record, up to this. */
        maxResendS: z.number().int().min(5).max(86_400).default(1800),
      })
      .strict()
      .refine((outbox) => outbox.maxResendS >= outbox.resendS, {
        message: 'maxResendS must be at least resendS',
        path: ['maxResendS'],
      })
      .default({ maxRecords: 10_000, maxBytes: 8_388_608, resendS: 60, maxResendS: 1800 }),
    audit: z
      .object({
        retentionDays: z.number().int().min(1).max(3650).default(365),
        /**
         * Cap on the audit folder's bytes, on top of the retention: refusal records in old files go
         * first, then the oldest files (docs/protocol.md, Audit records).
         */
        maxBytes: z.number().int().min(1_048_576).max(17_179_869_184).default(52_428_800),
        /** Refusals of one reason after the first in this many seconds are counted in one record. */
        refusalIntervalS: z.number().int().min(1).max(86_400).default(60),
      })
      .strict()
      .default({ retentionDays: 365, maxBytes: 52_428_800, refusalIntervalS: 60 }),
    log: z
      .object({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info') })
      .strict()
      .default({ level: 'info' }),
  })
  .strict();
export type Config = z.infer<typeof Config>;
export type ConfigInput = z.input<typeof Config>;
