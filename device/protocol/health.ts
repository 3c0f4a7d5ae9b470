// Fleet health messages: the retained `info` sent at every connect, and the periodic `health`.
// Health is sent every minute over what may be a paid cellular link, so it is lean (the byte budget is
// in docs/operations.md): fields that do not apply (no Wi-Fi, no vcgencmd) are left out, counters are
// left out while 0, what is wrong is one list (`faults`: a lost camera is `camera`, an untrusted clock
// is `clock`) rather than a boolean per condition, and the slow-changing camera formats live in `info`
// (re-sent when the camera comes back).
import { z } from 'zod';
import { isoAt, version } from './common.js';
import { EndReason, RefusalReason } from './reasons.js';

const count = z.number().int().nonnegative();

/** Conditions that may stop a look-in or need a visit; see docs/operations.md for what to do. */
export const healthFaults = [
  'camera',
  'camera-controls',
  'led',
  'clock',
  'disk',
  'under-voltage',
  'throttled',
  'outbox-full',
] as const;
export const HealthFault = z.enum(healthFaults);
export type HealthFault = z.infer<typeof HealthFault>;

/** tk/<id>/info (device → central, retained, QoS 1): what this device is; sent at every connect. */
export const InfoMessage = z
  .object({
    schemaVersion: version,
    firmware: z.string().max(64).describe('package.json version of the device software'),
    node: z.string().max(32).describe('Node.js version, e.g. v20.19.5'),
    hardware: z.string().max(128).optional().describe('/proc/device-tree/model'),
    os: z.string().max(128).optional().describe('PRETTY_NAME of /etc/os-release'),
    camera: z
      .object({
        device: z.string().max(256).optional(),
        model: z.string().max(128).optional().describe('V4L2 card name from sysfs'),
        formats: z.array(z.string().max(16)).max(32).optional().describe('V4L2 pixel formats (v4l2-ctl)'),
      })
      .strict(),
    configHash: z
      .string()
      .regex(/^[0-9a-f]{12,64}$/)
      .describe('SHA-256 prefix of the effective config'),
    at: isoAt,
  })
  .strict();
export type InfoMessage = z.infer<typeof InfoMessage>;

/** tk/<id>/health (device → central, QoS 0): periodic, and at once when something that matters changes. */
export const HealthMessage = z
  .object({
    schemaVersion: version,
    uptimeS: count.describe('seconds since the device service started'),
    cpuTempC: z.number().optional(),
    throttled: count.optional().describe('bits of `vcgencmd get_throttled`; absent: 0 or no vcgencmd'),
    load1: z.number().nonnegative().describe('1-minute load average'),
    memFreeMB: count.describe('MemAvailable'),
    diskFreeMB: count.describe('free space of the state directory'),
    wifiDbm: z.number().int().optional().describe('signal level from /proc/net/wireless'),
    privacyOn: z.boolean(),
    scheduleVersion: z.number().int().optional(),
    nextWindowAt: isoAt.optional().describe('start of the next (or current) window'),
    lastEndReason: EndReason.optional().describe('why the last view ended'),
    reconnects: count.optional().describe('broker connections after the first since start; absent: 0'),
    outboxDepth: count
      .optional()
      .describe('audit records and events not yet acknowledged on tk/<id>/ack; absent: 0'),
    refusals: z
      .partialRecord(RefusalReason, count)
      .optional()
      .describe('refused requests by reason, cumulative'),
    telemetryDropped: count.optional().describe('health messages dropped while offline'),
    inboundDropped: count
      .optional()
      .describe('inbound messages dropped by the rate limits since start (not verified, not audited)'),
    cameraControls: z
      .array(z.string().max(64))
      .max(12)
      .optional()
      .describe(
        'camera controls not as configured at the latest camera open ("gain: missing"); a required one is also the camera-controls fault',
      ),
    faults: z.array(HealthFault).optional().describe('what is wrong now; absent when nothing'),
  })
  .strict();
export type HealthMessage = z.infer<typeof HealthMessage>;
