// Shared pieces of the audit tests: a temporary folder, a recording outbox, and a trail on a manual clock.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuditTrail, readAuditRecords } from '../../device/audit/index.js';
import { silentLogger } from '../../device/log/index.js';
import type { AuditRecord } from '../../device/protocol/index.js';
import type { ManualClock } from '../../scripts/devstack/manual-clock.js';

export async function tempDir(): Promise<{ dir: string; remove(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'tk-audit-'));
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}

/** An outbox that keeps what it is given; `fail` makes the next enqueues reject. */
export class FakeOutbox {
  taken: AuditRecord[] = [];
  fail = false;
  hold = false;
  #held: Array<() => void> = [];

  enqueue = async (_name: 'audit', payload: AuditRecord): Promise<void> => {
    if (this.fail) throw new Error('outbox full');
    if (this.hold) await new Promise<void>((resolve) => this.#held.push(resolve));
    this.taken.push(payload);
  };

  release(): void {
    for (const resolve of this.#held.splice(0)) resolve();
  }
}

export function createTrail(options: {
  dir: string;
  clock: ManualClock;
  outbox?: FakeOutbox;
  retentionDays?: number;
  maxBytes?: number;
}): { trail: AuditTrail; outbox: FakeOutbox } {
  const outbox = options.outbox ?? new FakeOutbox();
  const trail = new AuditTrail({
    dir: options.dir,
    deviceId: 'dev-test',
    now: options.clock.now,
    log: silentLogger(),
    retentionDays: options.retentionDays ?? 30,
    ...(options.maxBytes !== undefined ? { maxBytes: options.maxBytes } : {}),
    outbox,
    timers: options.clock,
    retryMs: 60_000,
  });
  return { trail, outbox };
}

export async function readAll(dir: string): Promise<{ records: AuditRecord[]; skipped: number }> {
  const reader = readAuditRecords(dir);
  const records: AuditRecord[] = [];
  for await (const record of reader) records.push(record);
  return { records, skipped: reader.skipped };
}

/** Lets queued promise callbacks and file operations run. */
export async function flushIo(): Promise<void> {
  for (let i = 0; i < 10; i += 1) await new Promise<void>((resolve) => setTimeout(resolve, 5));
}
