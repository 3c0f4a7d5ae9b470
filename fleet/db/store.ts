// The fleet's data in the database: devices' current state, events and audit records exactly once,
// history for the timeline, and alerts. Each batch of messages is one transaction: the devices it
// touches are locked, folded with the pure reducer, and written back with their records, so whatever
// instance applies a message, and however often it arrives, its effect is stored once.
import { createHash } from 'node:crypto';
import type { FleetMessage } from '../protocol.js';
import { applyMessage, type DeviceState, emptyDevice, type HistoryEntry } from '../state/index.js';
import type { Database } from './database.js';

export interface Incoming {
  message: FleetMessage;
  receivedAtMs: number;
  retained: boolean;
}

export interface StoredDevice {
  state: DeviceState;
  updatedAtMs: number;
  alertKey: string | null;
}

export interface BatchResult {
  /** Devices whose state changed, as now stored. */
  changed: DeviceState[];
  /** Records stored for the first time (not re-deliveries). */
  newEvents: number;
  newAudit: Incoming[];
  duplicates: number;
}

export interface AlertRecord {
  id: string;
  deviceId: string;
  raisedAtMs: number;
  windowAt: string | null;
  timeLeftMs: number | null;
  reasons: string[];
  text: string;
}

interface DeviceRow {
  device_id: string;
  state: string;
  updated_at_ms: number;
  alert_key: string | null;
}

const chunk = <T>(items: T[], size: number): T[][] =>
  Array.from({ length: Math.ceil(items.length / size) }, (_, i) => items.slice(i * size, (i + 1) * size));

const digest = (text: string) => createHash('sha256').update(text).digest('base64url').slice(0, 22);

export class FleetStore {
  readonly #db: Database;

  constructor(db: Database) {
    this.#db = db;
  }

  get dialect(): string {
    return this.#db.dialect.name;
  }

  /** Applies messages in one transaction; `nowMs` stamps the rows it writes. */
  async applyBatch(batch: Incoming[], nowMs: number): Promise<BatchResult> {
    const result: BatchResult = { changed: [], newEvents: 0, newAudit: [], duplicates: 0 };
    if (batch.length === 0) return result;
    const ids = [...new Set(batch.map((item) => item.message.deviceId))].sort();
    await this.#db.transaction(async (tx) => {
      // Insert missing devices first so every row can be locked (the sorted order avoids deadlocks).
      for (const part of chunk(ids, 200)) {
        await tx.run(
          `INSERT INTO devices (device_id, state, updated_at_ms) VALUES ${part.map(() => '(?, ?, ?)').join(', ')} ON CONFLICT (device_id) DO NOTHING`,
          part.flatMap((id) => [id, JSON.stringify(emptyDevice(id)), nowMs]),
        );
      }
      const states = new Map<string, DeviceState>();
      for (const part of chunk(ids, 500)) {
        const rows = await tx.query<DeviceRow>(
          `SELECT device_id, state FROM devices WHERE device_id IN (${part.map(() => '?').join(', ')}) ORDER BY device_id${this.#db.dialect.forUpdate}`,
          part,
        );
        for (const row of rows)
          states.set(row.device_id, { ...emptyDevice(row.device_id), ...JSON.parse(row.state) });
      }
      const changed = new Set<string>();
      const history: HistoryEntry[] = [];
      for (const item of batch) {
        const { message } = item;
        if (message.topic === 'event' || message.topic === 'audit') {
          const record = message.topic === 'event' ? message.event : message.audit;
          const table = message.topic === 'event' ? 'events' : 'audit';
          const type = message.topic === 'event' ? message.event.type : message.audit.kind;
          const atMs = Date.parse(record.at);
          const column = message.topic === 'event' ? 'type' : 'kind';
          const inserted = await tx.run(
            `INSERT INTO ${table} (id, device_id, at_ms, ${column}, payload, received_at_ms) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
            [
              record.id,
              message.deviceId,
              Number.isNaN(atMs) ? item.receivedAtMs : atMs,
              type,
              message.raw,
              item.receivedAtMs,
            ],
          );
          if (inserted === 0) {
            // Delivered before (at least once): its effect is already stored.
            result.duplicates += 1;
            continue;
          }
          if (message.topic === 'event') result.newEvents += 1;
          else result.newAudit.push(item);
        }
        const previous = states.get(message.deviceId) ?? emptyDevice(message.deviceId);
        const applied = applyMessage(previous, message, {
          receivedAtMs: item.receivedAtMs,
          retained: item.retained,
          ...(message.topic === 'health' ? { digest: digest(message.raw) } : {}),
        });
        history.push(...applied.history);
        if (applied.changed) {
          states.set(message.deviceId, applied.state);
          changed.add(message.deviceId);
        }
      }
      for (const id of changed) {
        await tx.run('UPDATE devices SET state = ?, updated_at_ms = ? WHERE device_id = ?', [
          JSON.stringify(states.get(id)),
          nowMs,
          id,
        ]);
      }
      for (const part of chunk(history, 200)) {
        await tx.run(
          `INSERT INTO history (id, device_id, at_ms, kind, detail) VALUES ${part.map(() => '(?, ?, ?, ?, ?)').join(', ')} ON CONFLICT (id) DO NOTHING`,
          part.flatMap((entry) => [entry.id, entry.deviceId, entry.atMs, entry.kind, entry.detail ?? null]),
        );
      }
      result.changed = [...changed].map((id) => states.get(id)!);
    });
    return result;
  }

  /** Every device, or those written at or after `sinceMs`. */
  async devices(sinceMs?: number): Promise<StoredDevice[]> {
    const rows =
      sinceMs === undefined
        ? await this.#db.query<DeviceRow>('SELECT device_id, state, updated_at_ms, alert_key FROM devices')
        : await this.#db.query<DeviceRow>(
            'SELECT device_id, state, updated_at_ms, alert_key FROM devices WHERE updated_at_ms >= ?',
            [sinceMs],
          );
    return rows.map((row) => ({
      state: { ...emptyDevice(row.device_id), ...JSON.parse(row.state) },
      updatedAtMs: Number(row.updated_at_ms),
      alertKey: row.alert_key,
    }));
  }

  async history(deviceId: string, sinceMs: number): Promise<HistoryEntry[]> {
    const rows = await this.#db.query<{
      id: string;
      at_ms: number;
      kind: HistoryEntry['kind'];
      detail: string | null;
    }>('SELECT id, at_ms, kind, detail FROM history WHERE device_id = ? AND at_ms >= ? ORDER BY at_ms, id', [
      deviceId,
      sinceMs,
    ]);
    return rows.map((row) => ({
      id: row.id,
      deviceId,
      atMs: Number(row.at_ms),
      kind: row.kind,
      detail: row.detail ?? undefined,
    }));
  }

  /**
   * Claims the alert for an at-risk episode: true for exactly one caller across all instances; false
   * when this episode was already claimed.
   */
  async claimAlert(deviceId: string, key: string): Promise<boolean> {
    const changed = await this.#db.run(
      "UPDATE devices SET alert_key = ? WHERE device_id = ? AND coalesce(alert_key, '') <> ?",
      [key, deviceId, key],
    );
    return changed === 1;
  }

  /** The device is no longer at risk: a later episode alerts again. */
  async clearAlert(deviceId: string): Promise<void> {
    await this.#db.run('UPDATE devices SET alert_key = NULL WHERE device_id = ? AND alert_key IS NOT NULL', [
      deviceId,
    ]);
  }

  async recordAlert(alert: AlertRecord): Promise<void> {
    await this.#db.run(
      'INSERT INTO alerts (id, device_id, raised_at_ms, window_at, time_left_ms, reasons, text) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING',
      [
        alert.id,
        alert.deviceId,
        alert.raisedAtMs,
        alert.windowAt,
        alert.timeLeftMs,
        alert.reasons.join(','),
        alert.text,
      ],
    );
  }

  async recentAlerts(limit: number): Promise<AlertRecord[]> {
    const rows = await this.#db.query<{
      id: string;
      device_id: string;
      raised_at_ms: number;
      window_at: string | null;
      time_left_ms: number | null;
      reasons: string;
      text: string;
    }>(
      'SELECT id, device_id, raised_at_ms, window_at, time_left_ms, reasons, text FROM alerts ORDER BY raised_at_ms DESC, id LIMIT ?',
      [limit],
    );
    return rows.map((row) => ({
      id: row.id,
      deviceId: row.device_id,
      raisedAtMs: Number(row.raised_at_ms),
      windowAt: row.window_at,
      timeLeftMs: row.time_left_ms === null ? null : Number(row.time_left_ms),
      reasons: row.reasons.split(',').filter(Boolean),
      text: row.text,
    }));
  }

  /** Stored event ids (for tests and the technician: every event exactly once). */
  async eventIds(): Promise<string[]> {
    return (await this.#db.query<{ id: string }>('SELECT id FROM events ORDER BY id')).map((row) => row.id);
  }

  async auditIds(): Promise<string[]> {
    return (await this.#db.query<{ id: string }>('SELECT id FROM audit ORDER BY id')).map((row) => row.id);
  }
}
