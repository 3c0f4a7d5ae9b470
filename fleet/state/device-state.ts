// A device as the fleet knows it, as plain JSON-able data, and the pure reducer that folds one message
// into it. Messages for one device may reach different fleet instances and be applied out of order, so
// every part is last-writer-wins on a time or counter carried with it: status on (connection, offline
// after online), faults and privacy per kind on the event's `at` or the health's arrival time.
// The reducer also says which changes belong in the history (online/offline, faults, privacy, looks).
import { healthFaults } from '../../device/protocol/index.js';
import type { FleetMessage } from '../protocol.js';

export interface FaultState {
  active: boolean;
  /** When this was last set: the event's `at`, or when the health report arrived. */
  atMs: number;
}

export interface DeviceState {
  deviceId: string;
  state: 'online' | 'offline' | 'unknown';
  /** When the state began, as well as known. */
  sinceMs: number | undefined;
  connection: number | undefined;
  /** When the last health report arrived (for a retained one: when it was first seen). */
  healthAtMs: number | undefined;
  uptimeS: number | undefined;
  privacyOn: boolean | undefined;
  privacyAtMs: number | undefined;
  scheduleVersion: number | undefined;
  /** From the last health report: start of the next (or current) window; absent without a schedule. */
  nextWindowAt: string | undefined;
  /** The last window the device ever reported, kept when the schedule or the device goes away. */
  lastKnownWindowAt: string | undefined;
  faults: Record<string, FaultState>;
  /** Refusals by reason, cumulative as the device counts them (since its service started). */
  refusals: Record<string, number>;
  firmware: string | undefined;
  hardware: string | undefined;
  lastLookAtMs: number | undefined;
  /** Digest of the last health payload, to tell a repeated retained report from a new one. */
  healthDigest: string | undefined;
}

export type HistoryKind =
  | 'online'
  | 'offline'
  | 'fault-on'
  | 'fault-off'
  | 'privacy-on'
  | 'privacy-off'
  | 'look'
  | 'refusal'
  | 'window-missed'
  | 'schedule-rejected';

export interface HistoryEntry {
  /** Stable id: applying the same message twice yields the same entry, stored once. */
  id: string;
  deviceId: string;
  atMs: number;
  kind: HistoryKind;
  detail: string | undefined;
}

export interface Applied {
  state: DeviceState;
  history: HistoryEntry[];
  /** Whether anything shown changed. */
  changed: boolean;
}

export function emptyDevice(deviceId: string): DeviceState {
  return {
    deviceId,
    state: 'unknown',
    sinceMs: undefined,
    connection: undefined,
    healthAtMs: undefined,
    uptimeS: undefined,
    privacyOn: undefined,
    privacyAtMs: undefined,
    scheduleVersion: undefined,
    nextWindowAt: undefined,
    lastKnownWindowAt: undefined,
    faults: {},
    refusals: {},
    firmware: undefined,
    hardware: undefined,
    lastLookAtMs: undefined,
    healthDigest: undefined,
  };
}

/** Faults active now, sorted. */
export function activeFaults(device: DeviceState): string[] {
  return Object.entries(device.faults)
    .filter(([, fault]) => fault.active)
    .map(([kind]) => kind)
    .sort();
}

export interface ApplyContext {
  receivedAtMs: number;
  /** A retained message replayed by the broker: its time is not now. */
  retained: boolean;
  /** Digest of the payload (health only), to keep a repeated report's original arrival time. */
  digest?: string;
}

const statusOrder = (connection: number, state: 'online' | 'offline') =>
  connection * 2 + (state === 'offline' ? 1 : 0);

function parseMs(at: string | undefined): number | undefined {
  if (at === undefined) return undefined;
  const ms = Date.parse(at);
  return Number.isNaN(ms) ? undefined : ms;
}

/** Folds one message into a device's state. Pure: same inputs, same output. */
export function applyMessage(previous: DeviceState, message: FleetMessage, context: ApplyContext): Applied {
  const state: DeviceState = {
    ...previous,
    faults: { ...previous.faults },
    refusals: { ...previous.refusals },
  };
  const history: HistoryEntry[] = [];
  const { receivedAtMs } = context;
  const id = state.deviceId;
  const entry = (entryId: string, atMs: number, kind: HistoryKind, detail?: string) =>
    history.push({ id: entryId, deviceId: id, atMs, kind, detail });

  // `entryId` names the history entry a change makes: an event's own id, or the health report's time.
  const setFault = (kind: string, active: boolean, atMs: number, entryId: string) => {
    const current = state.faults[kind];
    if (current && current.atMs > atMs) return;
    const was = current?.active ?? false;
    state.faults[kind] = { active, atMs };
    if (was !== active) entry(entryId, atMs, active ? 'fault-on' : 'fault-off', kind);
  };
  const setPrivacy = (on: boolean, atMs: number, entryId: string) => {
    if (state.privacyAtMs !== undefined && state.privacyAtMs > atMs) return;
    const was = state.privacyOn;
    state.privacyOn = on;
    state.privacyAtMs = atMs;
    if (was !== undefined && was !== on) entry(entryId, atMs, on ? 'privacy-on' : 'privacy-off');
  };

  switch (message.topic) {
    case 'status': {
      const { state: next, connection, at } = message.status;
      const stamped = parseMs(at);
      const known =
        state.connection === undefined || state.state === 'unknown'
          ? undefined
          : statusOrder(state.connection, state.state);
      const order = statusOrder(connection, next);
      // A device whose stored counter was wiped starts again from 1: its fresh `online` is newer by time.
      const restartedCounter =
        next === 'online' &&
        stamped !== undefined &&
        state.sinceMs !== undefined &&
        stamped > state.sinceMs &&
        !context.retained;
      if (known !== undefined && order < known && !restartedCounter) break;
      if (known === order && state.state === next) break;
      const sinceMs = context.retained
        ? (stamped ?? receivedAtMs)
        : next === 'online'
          ? (stamped ?? receivedAtMs)
          : receivedAtMs;
      state.state = next;
      state.connection = connection;
      // A live will's `at` is when that connection began; the device went away now.
      state.sinceMs = Math.min(sinceMs, receivedAtMs);
      entry(`status:${id}:${connection}:${next}`, state.sinceMs, next);
      break;
    }
    case 'health': {
      const { health } = message;
      const repeated = context.digest !== undefined && context.digest === state.healthDigest;
      if (repeated && context.retained) break;
      // A retained report is the latest the broker holds, but older than anything that arrives live.
      const atMs = receivedAtMs;
      if (!context.retained && state.healthAtMs !== undefined && state.healthAtMs > atMs) break;
      state.healthAtMs = atMs;
      state.healthDigest = context.digest;
      state.uptimeS = health.uptimeS;
      state.scheduleVersion = health.scheduleVersion;
      state.nextWindowAt = health.nextWindowAt;
      if (health.nextWindowAt !== undefined) state.lastKnownWindowAt = health.nextWindowAt;
      state.refusals = { ...health.refusals };
      setPrivacy(health.privacyOn, atMs, `health:${id}:privacy:${atMs}`);
      const listed = new Set(health.faults);
      // Health reports its faults as a complete list (device/protocol's healthFaults): absent means cleared.
      for (const kind of new Set<string>([...healthFaults, ...health.faults]))
        setFault(kind, listed.has(kind), atMs, `health:${id}:${kind}:${atMs}`);
      break;
    }
    case 'info': {
      state.firmware = message.info.firmware;
      state.hardware = message.info.hardware;
      break;
    }
    case 'event': {
      const { event } = message;
      // A device without a synchronised clock may stamp the future; never let that outrank what comes next.
      const atMs = Math.min(parseMs(event.at) ?? receivedAtMs, receivedAtMs);
      if (event.type === 'privacy') setPrivacy(event.privacyOn, atMs, `event:${event.id}`);
      else if (event.type === 'fault') setFault(event.fault, event.active, atMs, `event:${event.id}`);
      else if (event.type === 'schedule' && !event.accepted)
        entry(
          `event:${event.id}`,
          atMs,
          'schedule-rejected',
          event.version === undefined ? undefined : `version ${event.version}`,
        );
      break;
    }
    case 'audit': {
      const { audit } = message;
      const atMs = parseMs(audit.at) ?? receivedAtMs;
      if (audit.kind === 'request' && audit.decision === 'granted') {
        state.lastLookAtMs = Math.max(state.lastLookAtMs ?? 0, atMs);
        entry(`audit:${audit.id}`, atMs, 'look');
      } else if (audit.kind === 'request' && audit.decision === 'refused') {
        entry(`audit:${audit.id}`, atMs, 'refusal', audit.reason);
      } else if (audit.kind === 'window-missed') {
        entry(`audit:${audit.id}`, atMs, 'window-missed');
      }
      break;
    }
  }
  const changed = JSON.stringify(state) !== JSON.stringify(previous);
  return { state, history, changed };
}
