import { appendFile, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readAuditRecords } from '../../device/audit/index.js';
import { AuditRecord } from '../../device/protocol/index.js';
import { ManualClock } from '../../scripts/devstack/manual-clock.js';
import { createTrail, FakeOutbox, flushIo, readAll, tempDir } from './helpers.js';

const t0 = Date.UTC(2026, 2, 10, 22, 15, 2, 118);
/** The requestId of a request or session-end record. */
const requestIdOf = (record: AuditRecord) => ('requestId' in record ? record.requestId : undefined);
const refused = { kind: 'request', requestId: 'req-1', decision: 'refused', reason: 'privacy-on' } as const;

let dir: string;
let remove: () => Promise<void>;

beforeEach(async () => {
  ({ dir, remove } = await tempDir());
});

afterEach(async () => {
  await remove();
});

describe('AuditTrail', () => {
  it('appends one JSON line to the file of the UTC date before resolving', async () => {
    const clock = new ManualClock(t0);
    const { trail } = createTrail({ dir, clock });
    await trail.start();
    const record = await trail.record(refused);
    const text = await readFile(join(dir, 'audit-2026-03-10.jsonl'), 'utf8');
    expect(text).toBe(`${JSON.stringify(record)}\n`);
    expect(record).toMatchObject({
      schemaVersion: 2,
      deviceId: 'dev-test',
      at: '2026-03-10T22:15:02.118Z',
      ...refused,
    });
    await trail.stop();
  });

  it('hands every record to the outbox after writing it', async () => {
    const clock = new ManualClock(t0);
    const { trail, outbox } = createTrail({ dir, clock });
    await trail.start();
    const records = await Promise.all(
      [1, 2, 3].map((n) => trail.record({ ...refused, requestId: `req-${n}` })),
    );
    await flushIo();
    expect(outbox.taken).toEqual(records);
    await trail.stop();
  });

  it('writes concurrent records in the order they were made', async () => {
    const clock = new ManualClock(t0);
    const { trail } = createTrail({ dir, clock });
    await trail.start();
    const made = await Promise.all(
      Array.from({ length: 50 }, (_, n) => trail.record({ ...refused, requestId: `req-${n}` })),
    );
    const { records } = await readAll(dir);
    expect(records.map(requestIdOf)).toEqual(made.map(requestIdOf));
    await trail.stop();
  });

  it('gives every record a unique id that is the same when read back from disk', async () => {
    const clock = new ManualClock(t0);
    const { trail } = createTrail({ dir, clock });
    await trail.start();
    const made = [];
    for (let n = 0; n < 20; n += 1) made.push(await trail.record({ ...refused, requestId: `req-${n}` }));
    await trail.stop();
    const { records } = await readAll(dir);
    expect(records.map((r) => r.id)).toEqual(made.map((r) => r.id));
    expect(new Set(records.map((r) => r.id)).size).toBe(20);
  });

  it('uses the instant it is given for `at`', async () => {
    const clock = new ManualClock(t0);
    const { trail } = createTrail({ dir, clock });
    await trail.start();
    const record = await trail.record(refused, { atMs: t0 - 5000 });
    expect(record.at).toBe('2026-03-10T22:14:57.118Z');
    await trail.stop();
  });

  it('refuses a record that breaks the schema and writes nothing', async () => {
    const clock = new ManualClock(t0);
    const { trail, outbox } = createTrail({ dir, clock });
    await trail.start();
    await expect(trail.record({ ...refused, requestId: '' })).rejects.toThrow(/invalid audit record/);
    await flushIo();
    expect(outbox.taken).toEqual([]);
    expect((await readAll(dir)).records).toEqual([]);
    await trail.stop();
  });

  it('starts a new file at UTC midnight', async () => {
    const clock = new ManualClock(Date.UTC(2026, 2, 10, 23, 59, 59));
    const { trail } = createTrail({ dir, clock });
    await trail.start();
    await trail.record(refused);
    clock.advance(2000);
    await trail.record(refused);
    expect((await readdir(dir)).filter((name) => name.endsWith('.jsonl')).sort()).toEqual([
      'audit-2026-03-10.jsonl',
      'audit-2026-03-11.jsonl',
    ]);
    await trail.stop();
  });

  it('rejects records after stop, and stop is idempotent', async () => {
    const clock = new ManualClock(t0);
    const { trail } = createTrail({ dir, clock });
    await trail.start();
    await Promise.all([trail.stop(), trail.stop()]);
    await trail.stop();
    await expect(trail.record(refused)).rejects.toThrow(/stopped/);
    expect(clock.pendingCount).toBe(0);
  });

  it('waits in stop for records being written', async () => {
    const clock = new ManualClock(t0);
    const { trail } = createTrail({ dir, clock });
    await trail.start();
    const writing = trail.record(refused);
    await trail.stop();
    const record = await writing;
    expect((await readAll(dir)).records).toEqual([record]);
  });
});

describe('torn lines', () => {
  it('skips and counts a torn last line when reading', async () => {
    const clock = new ManualClock(t0);
    const { trail } = createTrail({ dir, clock });
    await trail.start();
    const record = await trail.record(refused);
    await trail.stop();
    await appendFile(join(dir, 'audit-2026-03-10.jsonl'), '{"schemaVersion":1,"id":"0f1e');
    const { records, skipped } = await readAll(dir);
    expect(records).toEqual([record]);
    expect(skipped).toBe(1);
  });

  it('starts the next record on its own line after a torn one', async () => {
    const clock = new ManualClock(t0);
    await writeFile(join(dir, 'audit-2026-03-10.jsonl'), '{"schemaVersion":1,"id":"0f1e');
    const { trail } = createTrail({ dir, clock });
    await trail.start();
    const record = await trail.record(refused);
    await trail.stop();
    const { records, skipped } = await readAll(dir);
    expect(records).toEqual([record]);
    expect(skipped).toBe(1);
  });

  it('skips a line that is JSON but not an audit record', async () => {
    await writeFile(join(dir, 'audit-2026-03-10.jsonl'), '{"hello":"world"}\n\n');
    const { records, skipped } = await readAll(dir);
    expect(records).toEqual([]);
    expect(skipped).toBe(1);
  });
});

describe('retention', () => {
  const names = ['2026-01-01', '2026-02-07', '2026-02-08', '2026-03-09', '2026-03-10'];

  async function seed(): Promise<void> {
    for (const date of names) await writeFile(join(dir, `audit-${date}.jsonl`), '');
    await writeFile(join(dir, 'notes.txt'), 'not an audit file');
  }

  async function present(): Promise<string[]> {
    return (await readdir(dir)).filter((name) => name.startsWith('audit-')).sort();
  }

  it('deletes at start the files whose every record is older than the retention period', async () => {
    await seed();
    // 30 days before 2026-03-10T12:00Z is 2026-02-08T12:00Z: the file of 02-07 ended before it.
    const clock = new ManualClock(Date.UTC(2026, 2, 10, 12));
    const { trail } = createTrail({ dir, clock, retentionDays: 30 });
    await trail.start();
    expect(await present()).toEqual([
      'audit-2026-02-08.jsonl',
      'audit-2026-03-09.jsonl',
      'audit-2026-03-10.jsonl',
    ]);
    expect(await readdir(dir)).toContain('notes.txt');
    await trail.stop();
  });

  it('deletes files again every day while running', async () => {
    await seed();
    const clock = new ManualClock(Date.UTC(2026, 2, 10, 12));
    const { trail } = createTrail({ dir, clock, retentionDays: 30 });
    await trail.start();
    clock.advance(86_400_000);
    await flushIo();
    expect(await present()).toEqual(['audit-2026-03-09.jsonl', 'audit-2026-03-10.jsonl']);
    await trail.stop();
  });
});

describe('byte cap', () => {
  const dayMs = 86_400_000;
  const look = (day: number) =>
    ({
      kind: 'request',
      requestId: `req-look-${day}`,
      sessionId: `ses-${day}`,
      operatorId: 'op-anna',
      decision: 'granted',
    }) as const;

  /** Five days of one look and 200 refusals each, all taken by the outbox. */
  async function fiveDays(clock: ManualClock): Promise<void> {
    const { trail } = createTrail({ dir, clock });
    await trail.start();
    for (let day = 0; day < 5; day += 1) {
      await trail.record(look(day));
      await Promise.all(
        Array.from({ length: 200 }, (_, i) => trail.record({ ...refused, requestId: `req-${day}-${i}` })),
      );
      await flushIo();
      clock.advance(dayMs);
    }
    await trail.record(look(5));
    await flushIo();
    await trail.stop();
  }

  async function folderBytes(): Promise<number> {
    let total = 0;
    for (const name of await readdir(dir))
      if (name.startsWith('audit-')) total += (await readFile(join(dir, name))).length;
    return total;
  }

  it('removes refusal records from the oldest files before any look record', async () => {
    const clock = new ManualClock(t0);
    await fiveDays(clock);
    const before = await folderBytes();
    const { trail } = createTrail({ dir, clock, maxBytes: Math.floor(before * 0.6) });
    await trail.start();
    await trail.stop();
    const { records } = await readAll(dir);
    // Every look is still there; only refusals were removed, oldest files first.
    expect(
      records.filter((record) => record.kind === 'request' && record.decision === 'granted'),
    ).toHaveLength(6);
    expect(await folderBytes()).toBeLessThanOrEqual(Math.floor(before * 0.6));
    const refusedByDay = (day: number) =>
      records.filter((record) => requestIdOf(record)?.startsWith(`req-${day}-`)).length;
    expect(refusedByDay(0)).toBe(0);
    expect(refusedByDay(4)).toBe(200);
  });

  it('deletes the oldest files whole when the looks alone are over the cap, never the newest file', async () => {
    const clock = new ManualClock(t0);
    await fiveDays(clock);
    const { trail } = createTrail({ dir, clock, maxBytes: 1 });
    await trail.start();
    await trail.stop();
    const names = (await readdir(dir)).filter((name) => name.startsWith('audit-'));
    expect(names).toEqual(['audit-2026-03-15.jsonl']);
    expect((await readAll(dir)).records.map(requestIdOf)).toEqual(['req-look-5']);
  });

  it('checks the cap while a flood is being written, not only daily', async () => {
    const clock = new ManualClock(t0);
    await fiveDays(clock);
    const before = await folderBytes();
    const { trail } = createTrail({ dir, clock, maxBytes: before + 10_000 });
    await trail.start();
    for (let i = 0; i < 20; i += 1) {
      await Promise.all(
        Array.from({ length: 20 }, (_, j) => trail.record({ ...refused, requestId: `req-flood-${i}-${j}` })),
      );
    }
    await flushIo();
    await trail.stop();
    expect(await folderBytes()).toBeLessThanOrEqual(before + 10_000 + 20 * 150);
    const { records } = await readAll(dir);
    expect(
      records.filter((record) => record.kind === 'request' && record.decision === 'granted'),
    ).toHaveLength(6);
  });
});

describe('hand-off to the outbox', () => {
  it('hands over again after a restart what the outbox had not taken, under the same ids', async () => {
    const clock = new ManualClock(t0);
    const outbox = new FakeOutbox();
    const first = createTrail({ dir, clock, outbox });
    await first.trail.start();
    const taken = await first.trail.record({ ...refused, requestId: 'req-taken' });
    await flushIo();
    outbox.hold = true;
    const notTaken = await first.trail.record({ ...refused, requestId: 'req-not-taken' });
    await first.trail.stop();
    expect(outbox.taken).toEqual([taken]);

    const next = new FakeOutbox();
    const second = createTrail({ dir, clock, outbox: next });
    await second.trail.start();
    await flushIo();
    expect(next.taken).toEqual([notTaken]);
    await second.trail.stop();
  });

  it('hands over nothing again when the outbox took everything', async () => {
    const clock = new ManualClock(t0);
    const first = createTrail({ dir, clock });
    await first.trail.start();
    await first.trail.record(refused);
    await first.trail.record(refused);
    await flushIo();
    await first.trail.stop();
    const second = createTrail({ dir, clock });
    await second.trail.start();
    await flushIo();
    expect(second.outbox.taken).toEqual([]);
    await second.trail.stop();
  });

  it('tries again later when the outbox refuses a record', async () => {
    const clock = new ManualClock(t0);
    const { trail, outbox } = createTrail({ dir, clock });
    await trail.start();
    outbox.fail = true;
    const record = await trail.record(refused);
    await flushIo();
    expect(trail.pendingHandoffs).toBe(1);
    outbox.fail = false;
    clock.advance(60_000);
    await flushIo();
    expect(outbox.taken).toEqual([record]);
    expect(trail.pendingHandoffs).toBe(0);
    await trail.stop();
  });
});

describe('readAuditRecords', () => {
  it('returns the records in [from, to) across files', async () => {
    const clock = new ManualClock(Date.UTC(2026, 2, 9, 12));
    const { trail } = createTrail({ dir, clock });
    await trail.start();
    const made = [];
    for (let day = 0; day < 4; day += 1) {
      made.push(await trail.record({ ...refused, requestId: `req-${day}` }));
      clock.advance(86_400_000);
    }
    await trail.stop();
    const reader = readAuditRecords(dir, {
      from: new Date(Date.UTC(2026, 2, 10, 12)),
      to: Date.UTC(2026, 2, 12, 12),
    });
    const found = [];
    for await (const record of reader) found.push(requestIdOf(record));
    expect(found).toEqual(['req-1', 'req-2']);
    expect(made.every((record) => AuditRecord.safeParse(record).success)).toBe(true);
  });

  it('yields nothing for a folder that does not exist', async () => {
    const { records, skipped } = await readAll(join(dir, 'missing'));
    expect(records).toEqual([]);
    expect(skipped).toBe(0);
  });
});
