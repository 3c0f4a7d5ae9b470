// The camera controls in the media path: a look's media sets them on the camera (a fake UVC webcam at
// the ioctl seam) before ffmpeg opens it, with the time of day's and the view mode's values, and the
// report travels from the media process to the service's health status.
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { ControlsReport } from '../../device/camera/index.js';
import { applyControls, CameraControlsStatus, planControls } from '../../device/camera/index.js';
import { Config } from '../../device/config/index.js';
import type { MediaSink } from '../../device/supervisor/index.js';
import { mediaSettingsFromConfig, ProcessMedia, WebRtcMedia } from '../../device/view/index.js';
import { FakeV4l2Device, uvcWebcamControls } from '../camera/fake-v4l2.js';
import { waitUntil } from '../support/process.js';

const log = pino({ level: 'silent' });
const winterNight = Date.parse('2026-01-15T21:30:00Z');

function config(camera: Record<string, unknown>) {
  return Config.parse({
    deviceId: 'controls-0001',
    broker: { url: 'mqtt://127.0.0.1:1883' },
    centralKeys: [{ kid: 'k', publicKeyPem: '-----BEGIN PUBLIC KEY-----x' }],
    gpio: { kind: 'sim', viewingLed: { pin: 17 }, button: { pin: 27 } },
    camera,
  });
}

const sink = (failures: string[]): MediaSink => ({
  offer: () => undefined,
  candidate: () => undefined,
  streaming: () => undefined,
  failed: (reason, detail) => failures.push(`${reason}: ${detail}`),
});

const look = (sessionId: string, viewMode: 'full' | 'blurred') => ({
  sessionId,
  requestId: `req-${sessionId}`,
  viewMode,
  fingerprint: 'sha-256 00',
  allowFrames: () => false,
});

describe('camera controls in a look', () => {
  const stops: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const stop of stops.splice(0)) await stop();
  });

  it('are set before ffmpeg opens the camera, with the night and the view mode values', async () => {
    const camera = new FakeV4l2Device('/dev/video7', uvcWebcamControls());
    const settings = mediaSettingsFromConfig(
      config({
        source: { kind: 'v4l2', device: '/dev/video7' },
        controls: { viewModes: { blurred: { brightness: 150 } } },
      }),
    );
    const opensWhenSpawned: number[] = [];
    const media = new WebRtcMedia(
      {
        log,
        now: () => winterNight,
        v4l2: camera,
        // ffmpeg is not started: what matters is that the controls were set when it would be.
        spawn: () => {
          opensWhenSpawned.push(camera.opens);
          throw new Error('no camera here');
        },
      },
      settings,
    );
    const reports: ControlsReport[] = [];
    media.on('camera-controls', (_sessionId, report) => reports.push(report));
    const failures: string[] = [];
    media.start(look('s-1', 'blurred'), sink(failures));
    stops.push(() => media.stop('s-1'));
    await waitUntil(() => failures.length > 0, 10_000, 'the look to fail without a camera');
    expect(opensWhenSpawned).toEqual([1]);
    expect(reports).toHaveLength(1);
    expect(reports[0]).toMatchObject({
      profile: 'night',
      viewMode: 'blurred',
      failedRequired: [],
      warnings: [],
    });
    expect([camera.value(0x00980918), camera.value(0x009a0903), camera.value(0x00980900)]).toEqual([
      1, 1, 150,
    ]);
  });

  it('reach the service from the media process, and a failed required one is the fault', async () => {
    const table = uvcWebcamControls().map((c) => (c.id === 0x00980918 ? { ...c, ignoresWrites: true } : c));
    const controls = config({}).camera.controls;
    const report = applyControls(
      new FakeV4l2Device('/dev/video0', table),
      '/dev/video0',
      planControls(controls, 'full', winterNight, 'Europe/Stockholm'),
      winterNight,
    );
    process.env.TK_CONTROLS_REPORT = JSON.stringify(report);
    const media = new ProcessMedia({
      log,
      settings: mediaSettingsFromConfig(config({})),
      entry: new URL('./fixtures/controls-media-child.mjs', import.meta.url).pathname,
    });
    stops.push(() => media.close());
    const status = new CameraControlsStatus();
    media.on('camera-controls', (_sessionId, received) => status.update(received));
    try {
      media.start(look('s-2', 'full'), sink([]));
      await waitUntil(() => status.last !== undefined, 10_000, 'the report from the media process');
    } finally {
      delete process.env.TK_CONTROLS_REPORT;
    }
    expect(status.fault).toBe(true);
    expect(status.warnings).toEqual(['powerLineFrequency: mismatch']);
    await media.stop('s-2');
  });
});
