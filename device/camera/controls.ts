// The camera controls of a look: which values the config asks for now (day or night, then the view
// mode's own), set by V4L2 id on the device node after every camera open and before the first frame,
// then read back. UVC cameras forget their controls when re-plugged or re-opened, so nothing is set
// once and trusted. What did not take is reported, not hidden: a required control (power-line frequency
// by default) that cannot be set is the `camera-controls` fault, anything else a warning.
import type { CameraControls, ControlName, ControlValues } from '../config/index.js';
import { controlNames } from '../config/index.js';
import type { ViewMode } from '../protocol/tokens.js';
import { loadZone, wallClock } from '../schedule/index.js';
import {
  type ControlInfo,
  CTRL_FLAG,
  CTRL_TYPE,
  EXPOSURE,
  getControl,
  POWER_LINE,
  queryControl,
  queryMenu,
  setControl,
  V4L2_CID,
  type V4l2Port,
} from './v4l2.js';

/** Each named control's V4L2 id. */
export const controlIds: Record<ControlName, number> = {
  powerLineFrequency: V4L2_CID.POWER_LINE_FREQUENCY,
  autoExposure: V4L2_CID.EXPOSURE_AUTO,
  exposureDynamicFramerate: V4L2_CID.EXPOSURE_AUTO_PRIORITY,
  backlightCompensation: V4L2_CID.BACKLIGHT_COMPENSATION,
  brightness: V4L2_CID.BRIGHTNESS,
  gain: V4L2_CID.GAIN,
};

export interface WantedControl {
  name: ControlName;
  id: number;
  value: number;
  required: boolean;
}

export type ControlProfile = 'day' | 'night';

export interface ControlPlan {
  profile: ControlProfile;
  viewMode: ViewMode;
  /** In the order they are set: the exposure mode before what depends on it. */
  wanted: WantedControl[];
}

const minutesOf = (clock: string): number => Number(clock.slice(0, 2)) * 60 + Number(clock.slice(3, 5));

/** Pure: is `nowMs` inside the night (local time in `timeZone`), which may run across midnight? */
export function isNight(nowMs: number, timeZone: string, nightFrom: string, nightTo: string): boolean {
  const zone = loadZone(timeZone);
  if (zone instanceof Error) return false;
  const local = wallClock(nowMs, zone);
  const minute = local.getUTCHours() * 60 + local.getUTCMinutes();
  const from = minutesOf(nightFrom);
  const to = minutesOf(nightTo);
  if (from === to) return false;
  return from < to ? minute >= from && minute < to : minute >= from || minute < to;
}

function encode(name: ControlName, values: ControlValues): number | undefined {
  switch (name) {
    case 'powerLineFrequency':
      return values.powerLineFrequency === undefined ? undefined : POWER_LINE[values.powerLineFrequency];
    case 'autoExposure':
      return values.autoExposure === undefined ? undefined : EXPOSURE[values.autoExposure];
    case 'exposureDynamicFramerate':
      return values.exposureDynamicFramerate === undefined
        ? undefined
        : values.exposureDynamicFramerate
          ? 1
          : 0;
    case 'backlightCompensation':
    case 'brightness':
    case 'gain':
      return values[name];
  }
}

/** Pure: the controls to set for a look in `viewMode` at `nowMs`. */
export function planControls(
  controls: CameraControls,
  viewMode: ViewMode,
  nowMs: number,
  timeZone: string,
  /** Force day or night (the technician's night check); default from the time of day. */
  forced?: ControlProfile,
): ControlPlan {
  const profile: ControlProfile =
    forced ?? (isNight(nowMs, timeZone, controls.nightFrom, controls.nightTo) ? 'night' : 'day');
  const values: ControlValues = { ...controls[profile], ...controls.viewModes[viewMode] };
  const wanted: WantedControl[] = [];
  for (const name of controlNames) {
    const value = encode(name, values);
    if (value === undefined) continue;
    wanted.push({ name, id: controlIds[name], value, required: controls.required.includes(name) });
  }
  return { profile, viewMode, wanted };
}

/**
 * `ok`: set and read back as asked. `inactive`: set, but the driver says it has no effect now (gain
 * under auto gain). `missing`: the camera has no such control. `read-only`, `invalid` (out of its range
 * or not one of its menu items), `refused` (the driver said no): not set. `mismatch`: the driver took
 * it but reads back another value (it clamped or ignored it).
 */
export type ControlStatus = 'ok' | 'inactive' | 'missing' | 'read-only' | 'invalid' | 'refused' | 'mismatch';

export interface ControlOutcome {
  name: ControlName;
  id: number;
  required: boolean;
  wanted: number;
  /** The value read back, when it could be read. */
  actual?: number | undefined;
  status: ControlStatus;
  detail?: string | undefined;
}

export interface ControlsReport {
  device: string;
  profile: ControlProfile;
  viewMode: ViewMode;
  atMs: number;
  /** The node could not be opened (the camera fault covers a missing camera); nothing was set. */
  openError?: string | undefined;
  outcomes: ControlOutcome[];
  /** Required controls whose status is not `ok` or `inactive`: the `camera-controls` fault. */
  failedRequired: ControlName[];
  /** Short texts for health, one per control not as asked: `gain: missing`. */
  warnings: string[];
  /** Controls the camera reset when streaming began (found after the first frame, and set again). */
  resetAtStreamStart?: ControlName[] | undefined;
}

const hex = (id: number): string => `0x${id.toString(16).padStart(8, '0')}`;

function check(port: V4l2Port, fd: number, info: ControlInfo, value: number): string | undefined {
  switch (info.type) {
    case CTRL_TYPE.BOOLEAN:
      return value === 0 || value === 1 ? undefined : 'a boolean takes 0 or 1';
    case CTRL_TYPE.INTEGER:
      return value < info.minimum || value > info.maximum
        ? `outside ${info.minimum}..${info.maximum}`
        : undefined;
    case CTRL_TYPE.MENU:
    case CTRL_TYPE.INTEGER_MENU: {
      const items = queryMenu(port, fd, info);
      return items.some((item) => item.index === value)
        ? undefined
        : `not one of its items (${items.map((item) => `${item.index} ${item.name}`).join(', ')})`;
    }
    default:
      return `control type ${info.type} is not a value control`;
  }
}

function applyOne(port: V4l2Port, fd: number, wanted: WantedControl): ControlOutcome {
  const base = { name: wanted.name, id: wanted.id, required: wanted.required, wanted: wanted.value };
  // Queried right before it is set: flags change as earlier controls take (exposure mode first).
  const queried = queryControl(port, fd, wanted.id);
  if (!queried.ok || queried.value.id !== wanted.id || queried.value.flags & CTRL_FLAG.DISABLED)
    return { ...base, status: 'missing', detail: `no control ${hex(wanted.id)}` };
  const info = queried.value;
  if (info.flags & CTRL_FLAG.READ_ONLY) {
    const current = getControl(port, fd, wanted.id);
    const actual = current.ok ? current.value : undefined;
    return actual === wanted.value
      ? { ...base, actual, status: 'ok' }
      : { ...base, actual, status: 'read-only', detail: `${info.name} is read-only` };
  }
  const invalid = check(port, fd, info, wanted.value);
  if (invalid !== undefined) return { ...base, status: 'invalid', detail: `${info.name}: ${invalid}` };
  const set = setControl(port, fd, wanted.id, wanted.value);
  if (!set.ok) return { ...base, status: 'refused', detail: `${info.name}: VIDIOC_S_CTRL ${set.code}` };
  const read = getControl(port, fd, wanted.id);
  if (!read.ok) return { ...base, status: 'refused', detail: `${info.name}: VIDIOC_G_CTRL ${read.code}` };
  if (read.value !== wanted.value)
    return {
      ...base,
      actual: read.value,
      status: 'mismatch',
      detail: `${info.name}: set ${wanted.value}, reads back ${read.value}`,
    };
  // Inactive as it was before being set, or made so by what was set: say so, it may not help now.
  const after = queryControl(port, fd, wanted.id);
  const inactive = after.ok && (after.value.flags & CTRL_FLAG.INACTIVE) !== 0;
  return inactive
    ? { ...base, actual: read.value, status: 'inactive', detail: `${info.name} is inactive now` }
    : { ...base, actual: read.value, status: 'ok' };
}

/** Summarises outcomes into the fault and the warnings. Pure. */
export function summarise(outcomes: ControlOutcome[]): Pick<ControlsReport, 'failedRequired' | 'warnings'> {
  const failedRequired: ControlName[] = [];
  const warnings: string[] = [];
  for (const outcome of outcomes) {
    if (outcome.status === 'ok') continue;
    warnings.push(`${outcome.name}: ${outcome.status}`);
    if (outcome.status !== 'inactive' && outcome.required) failedRequired.push(outcome.name);
  }
  return { failedRequired, warnings };
}

/** Opens `device`, sets every planned control in order, reads each back, closes it. Never throws. */
export function applyControls(
  port: V4l2Port,
  device: string,
  plan: ControlPlan,
  nowMs: number,
): ControlsReport {
  const head = { device, profile: plan.profile, viewMode: plan.viewMode, atMs: nowMs };
  const opened = port.open(device);
  if (!opened.ok) return { ...head, openError: opened.code, outcomes: [], failedRequired: [], warnings: [] };
  try {
    const outcomes = plan.wanted.map((wanted) => applyOne(port, opened.fd, wanted));
    return { ...head, outcomes, ...summarise(outcomes) };
  } finally {
    port.close(opened.fd);
  }
}

/**
 * After the first frame: reads back what `report` set. Some cameras reset controls when streaming
 * starts; those are set again and named in `resetAtStreamStart` (a warning: it happens at every look).
 * Never throws; an unchanged camera gives the same report back.
 */
export function verifyControls(port: V4l2Port, report: ControlsReport, nowMs: number): ControlsReport {
  const set = report.outcomes.filter((o) => o.status === 'ok' || o.status === 'inactive');
  if (report.openError !== undefined || set.length === 0) return report;
  const opened = port.open(report.device);
  if (!opened.ok) return report;
  try {
    const reset: ControlName[] = [];
    const outcomes = report.outcomes.map((outcome): ControlOutcome => {
      if (!set.includes(outcome)) return outcome;
      const now = getControl(port, opened.fd, outcome.id);
      if (!now.ok || now.value === outcome.wanted) return outcome;
      reset.push(outcome.name);
      const again = setControl(port, opened.fd, outcome.id, outcome.wanted);
      const read = getControl(port, opened.fd, outcome.id);
      return again.ok && read.ok && read.value === outcome.wanted
        ? outcome
        : {
            ...outcome,
            actual: read.ok ? read.value : now.value,
            status: 'mismatch',
            detail: `reset to ${now.value} when streaming began, and not set again`,
          };
    });
    if (reset.length === 0) return report;
    const summary = summarise(outcomes);
    return {
      ...report,
      atMs: nowMs,
      outcomes,
      failedRequired: summary.failedRequired,
      warnings: [...summary.warnings, ...reset.map((name) => `${name}: reset at stream start`)],
      resetAtStreamStart: reset,
    };
  } finally {
    port.close(opened.fd);
  }
}

export interface ListedControl extends ControlInfo {
  /** The value now, when it can be read. */
  value: number | undefined;
  menu: { index: number; name: string }[];
  /** Our name for it, when the config can set it. */
  configName: ControlName | undefined;
}

/** Every control of the device with its value and menu (for the technician). */
export function describeControls(
  port: V4l2Port,
  device: string,
  list: (port: V4l2Port, fd: number) => ControlInfo[],
): { ok: true; controls: ListedControl[] } | { ok: false; code: string } {
  const opened = port.open(device);
  if (!opened.ok) return opened;
  try {
    const names = new Map(Object.entries(controlIds).map(([name, id]) => [id, name as ControlName]));
    const controls = list(port, opened.fd).map((info) => {
      const value = info.flags & CTRL_FLAG.WRITE_ONLY ? undefined : getControl(port, opened.fd, info.id);
      return {
        ...info,
        value: value?.ok ? value.value : undefined,
        menu: queryMenu(port, opened.fd, info),
        configName: names.get(info.id),
      };
    });
    return { ok: true, controls };
  } finally {
    port.close(opened.fd);
  }
}
