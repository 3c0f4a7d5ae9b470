// The outbox with a simulated link: order, stable ids, replay after reconnect, restart from the file,
// a torn last line, the size bound and compaction.
import { EventEmitter } from 'node:events';
import { appendFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../device/log/index.js';
import { Outbox, OutboxFullError, outboxFileName } from '../../device/outbox/index.js';
import type { TopicName } from '../../device/protocol/index.js';

class FakeLink extends EventEmitter<{ connected: []; disconnected: [] }> {
  connected = false;
  sent: Array<{ name: TopicName; payload: Record<string, unknown> }> = [];
  /** When set, publishes stay unacknowledged until `ackAll`. */
  hold = false;
  #held: Array<() => void> = [];
  #failHeld: Array<(error: Error) => void> = [];

  publish = (name: TopicName, payload: object): Promise<void> => {
    if (!this.connected) return Promise.reject(new Error('offline'));
    this.sent.push({ name, payload: payload as Record<string, unknown> });
    if (!this.hold) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.#held.push(resolve);
      this.#failHeld.push(reject);
    });
  };

  up(): void {
    this.connected = true;
    this.emit('connected');
  }

  down(): void {
    this.connected = false;
    for (const fail of this.#failHeld) fail(new Error('connection closed'));
    this.#held = [];
    this.#failHeld = [];
    this.emit('disconnected');
  }

  ackAll(): void {
    for (const ack of this.#held) ack();
    this.#held = [];
    this.#failHeld = [];
  }
}

let dir: string;
const outboxes: Outbox[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tk-outbox-'));
});

afterEach(async () => {
  for (const outbox of outboxes.splice(0)) await outbox.stop();
  await rm(dir, { recursive: true, force: true });
});

async function makeOutbox(link: FakeLink, options: { maxRecords?: number; maxBytes?: number } = {}) {
  let n = 0;
  const outbox = new Outbox({
    dir,
    log: silentLogger(),
    publish: link.publish,
    connection: link,
    newId: () => `gen-${++n}`,
    retryMs: 10,
    ...options,
  });
  outboxes.push(outbox);
  await outbox.start();
  return outbox;
}

async function settle(): Promise<void> {
  for (let i = 0; i < 20; i += 1) await new Promise<void>((resolve) => setImmediate(resolve));
}

describe('Outbox', () => {
  it('publishes records in order once connected, each with its id', async () => {
    const link = new FakeLink();
    const outbox = await makeOutbox(link);
    await outbox.enqueue('audit', { id: 'a-1', what: 'one' });
    await outbox.enqueue('event', { type: 'x' });
    expect(link.sent).toEqual([]);
    link.up();
    await settle();
    expect(link.sent.map((s) => [s.name, s.payload.id])).toEqual([
      ['audit', 'a-1'],
      ['event', 'gen-1'],
    ]);
    expect(outbox.depth).toBe(0);
  });

  it('uses the record’s own id and puts a generated one first', async () => {
    const link = new FakeLink();
    const outbox = await makeOutbox(link);
    expect(await outbox.enqueue('audit', { id: 'mine', x: 1 })).toBe('mine');
    expect(await outbox.enqueue('event', { x: 2 })).toBe('gen-1');
    link.up();
    await settle();
    expect(Object.keys(link.sent[1]?.payload ?? {})).toEqual(['id', 'x']);
  });

  it('refuses a record whose id is not a short string', async () => {
    const outbox = await makeOutbox(new FakeLink());
    await expect(outbox.enqueue('audit', { id: 42 })).rejects.toThrow(/record id/);
    await expect(outbox.enqueue('audit', { id: 'x'.repeat(200) })).rejects.toThrow(/record id/);
  });

  it('does not store the same id twice', async () => {
    const link = new FakeLink();
    const outbox = await makeOutbox(link);
    await Promise.all([outbox.enqueue('audit', { id: 'same' }), outbox.enqueue('audit', { id: 'same' })]);
    await outbox.enqueue('audit', { id: 'same' });
    expect(outbox.depth).toBe(1);
  });

  it('replays unacknowledged records from the oldest after a reconnect, under the same ids', async () => {
    const link = new FakeLink();
    link.hold = true;
    const outbox = await makeOutbox(link);
    link.up();
    for (let i = 0; i < 5; i += 1) await outbox.enqueue('audit', { id: `r${i}` });
    await settle();
    link.down();
    link.hold = false;
    link.sent = [];
    link.up();
    await settle();
    expect(link.sent.map((s) => s.payload.id)).toEqual(['r0', 'r1', 'r2', 'r3', 'r4']);
    expect(outbox.depth).toBe(0);
  });

  it('keeps unacknowledged records across a restart, and forgets acknowledged ones', async () => {
    const link = new FakeLink();
    const first = await makeOutbox(link);
    link.up();
    await first.enqueue('audit', { id: 'delivered' });
    await settle();
    link.down();
    await first.enqueue('audit', { id: 'kept-1' });
    await first.enqueue('event', { id: 'kept-2', type: 'privacy' });
    await first.stop();

    const second = await makeOutbox(new FakeLink());
    expect(second.pendingIds()).toEqual(['kept-1', 'kept-2']);
  });

  it('drops a torn last line (a crash mid-append) and keeps every whole record', async () => {
    const link = new FakeLink();
    const first = await makeOutbox(link);
    await first.enqueue('audit', { id: 'whole' });
    await first.stop();
    await appendFile(join(dir, outboxFileName), '{"op":"put","id":"torn","name":"audit","payl');

    const second = await makeOutbox(new FakeLink());
    expect(second.pendingIds()).toEqual(['whole']);
    expect(second.stats.tornBytes).toBeGreaterThan(0);
    expect(await readFile(join(dir, outboxFileName), 'utf8')).not.toContain('torn');
  });

  it('refuses new records when full, keeps the oldest and counts the refusals', async () => {
    const outbox = await makeOutbox(new FakeLink(), { maxRecords: 3 });
    for (let i = 0; i < 3; i += 1) await outbox.enqueue('audit', { id: `k${i}` });
    await expect(outbox.enqueue('audit', { id: 'k3' })).rejects.toBeInstanceOf(OutboxFullError);
    await expect(outbox.enqueue('audit', { id: 'k4' })).rejects.toBeInstanceOf(OutboxFullError);
    expect(outbox.pendingIds()).toEqual(['k0', 'k1', 'k2']);
    expect(outbox.stats.refusedFull).toBe(2);
    expect(outbox.full).toBe(true);
  });

  it('refuses by bytes as well as by count', async () => {
    const outbox = await makeOutbox(new FakeLink(), { maxBytes: 300 });
    await outbox.enqueue('audit', { id: 'a', text: 'x'.repeat(150) });
    await expect(outbox.enqueue('audit', { id: 'b', text: 'x'.repeat(150) })).rejects.toBeInstanceOf(
      OutboxFullError,
    );
  });

  it('compacts the file once acknowledged lines outweigh pending ones', async () => {
    const link = new FakeLink();
    const outbox = await makeOutbox(link);
    link.up();
    for (let i = 0; i < 400; i += 1) await outbox.enqueue('audit', { id: `c${i}`, text: 'y'.repeat(200) });
    await settle();
    await outbox.stop();
    expect(outbox.stats.compactions).toBeGreaterThan(1);
    expect((await readFile(join(dir, outboxFileName), 'utf8')).length).toBeLessThan(65_536 + 1000);
  });

  it('shares one fsync between concurrent enqueues and keeps their order', async () => {
    const link = new FakeLink();
    const outbox = await makeOutbox(link);
    const ids = await Promise.all(
      Array.from({ length: 50 }, (_, i) => outbox.enqueue('audit', { id: `g${i}` })),
    );
    expect(outbox.pendingIds()).toEqual(ids);
  });
});
