// The camera at night, as the technician checks it: the camera's controls listed (what the config can
// set, by V4L2 id), the night preset applied before the aim snapshot, and the snapshot's mean brightness
// measured from its decoded pixels (ffmpeg's signalstats: the mean of the luma plane), so a black
// picture is told from a working camera in a dark room.
import { join } from 'node:path';
import {
  applyControls,
  type ControlsReport,
  describeControls,
  type ListedControl,
  listControls,
  planControls,
  type V4l2Port,
} from '../device/camera/index.js';
import type { Config } from '../device/config/index.js';
import { lastLines, type Runner } from './run.js';

/** Below this mean luma (0-255) the aim snapshot is too dark to see a person in. */
export const defaultMinBrightness = 40;

const hex = (id: number): string => `0x${id.toString(16).padStart(8, '0')}`;

/** One line per control: id, name, range or menu, value now, and the config's name when it sets it. */
export function formatControls(controls: ListedControl[]): string[] {
  return controls.map((control) => {
    const range =
      control.menu.length > 0
        ? control.menu.map((item) => `${item.index} ${item.name}`).join(', ')
        : `${control.minimum}..${control.maximum}`;
    const value = control.value === undefined ? '' : ` = ${control.value}`;
    const named = control.configName ? `  (camera.controls: ${control.configName})` : '';
    return `  ${hex(control.id)} ${control.name}: ${range}${value}${named}`;
  });
}

/** The camera's controls, or why they cannot be read. */
export function readControls(
  port: V4l2Port,
  device: string,
): { ok: true; controls: ListedControl[] } | { ok: false; detail: string } {
  const described = describeControls(port, device, listControls);
  return described.ok ? described : { ok: false, detail: `${device}: ${described.code}` };
}

/** Sets the night values (as at a look at night, full view) on the configured V4L2 camera. */
export function applyNightControls(
  port: V4l2Port,
  config: Config,
  root: string,
  nowMs: number,
): ControlsReport | undefined {
  const { source, controls } = config.camera;
  if (source.kind !== 'v4l2') return undefined;
  const plan = planControls(controls, 'full', nowMs, config.timeZone, 'night');
  return applyControls(port, join(root, source.device), plan, nowMs);
}

export type BrightnessResult = { ok: true; mean: number } | { ok: false; detail: string };

/** The mean luma (0-255) of an image file's decoded pixels, by ffmpeg's signalstats. */
export async function meanBrightness(
  run: Runner,
  ffmpegPath: string,
  file: string,
): Promise<BrightnessResult> {
  const result = await run(
    ffmpegPath,
    [
      '-hide_banner',
      '-nostdin',
      '-loglevel',
      'error',
      '-i',
      file,
      '-frames:v',
      '1',
      '-vf',
      'signalstats,metadata=mode=print:key=lavfi.signalstats.YAVG:file=-',
      '-f',
      'null',
      '-',
    ],
    { timeoutMs: 15_000 },
  );
  const match = /lavfi\.signalstats\.YAVG=([\d.]+)/.exec(result.stdout);
  if (result.code !== 0 || !match?.[1])
    return {
      ok: false,
      detail: `ffmpeg could not measure ${file}: ${lastLines(result.stderr) || result.failure || `exit ${result.code}`}`,
    };
  return { ok: true, mean: Number(match[1]) };
}
