// The outbox with a simulated link: order, stable ids, records kept until the central service
// acknowledges them (a PUBACK frees nothing), re-sends after reconnects and after the re-send delay,
// restart from the file, a torn last line, the size bound and compaction.
import { EventEmitter } from 'node:events';
import { appendFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { silentLogger } from '../../device/log/index.js';
import { Outbox, type OutboxDeps, OutboxFullError, outboxFileName } from '../../device/outbox/index.js';
import type { TopicName } from '../../device/protocol/index.js';
import { ManualClock } from '../../scripts/devstack/manual-clock.js';

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
  vi.useRealTimers();
  for (const outbox of outboxes.splice(0)) await outbox.stop();
  await rm(dir, { recursive: true, force: true });
});

type Options = Partial<
  Pick<OutboxDeps, 'maxRecords' | 'maxBytes' | 'resendMs' | 'maxResendMs' | 'now' | 'random' | 'timers'>
>;

async function makeOutbox(link: FakeLink, options: Options = {}) {
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
  });

  it('keeps a record the broker acknowledged (PUBACK) until the central service acknowledges its id', async () => {
    const link = new FakeLink();
    const outbox = await makeOutbox(link);
    link.up();
    await outbox.enqueue('audit', { id: 'a-1' });
    await outbox.enqueue('audit', { id: 'a-2' });
    await settle();
    expect(outbox.stats.published).toBe(2);
    expect(outbox.pendingIds()).toEqual(['a-1', 'a-2']);
    expect(outbox.acknowledge(['a-2'])).toBe(1);
    expect(outbox.pendingIds()).toEqual(['a-1']);
    expect(outbox.stats.delivered).toBe(1);
  });

  it('removes a record acknowledged by the central service before its PUBACK came', async () => {
    const link = new FakeLink();
    link.hold = true;
    const outbox = await makeOutbox(link);
    link.up();
    await outbox.enqueue('audit', { id: 'quick' });
    await settle();
    expect(outbox.acknowledge(['quick'])).toBe(1);
    link.ackAll();
    await settle();
    expect(outbox.depth).toBe(0);
    await outbox.enqueue('audit', { id: 'next' });
    await settle();
    expect(link.sent.map((s) => s.payload.id)).toEqual(['quick', 'next']);
  });

  it('ignores acknowledgements of ids it does not hold', async () => {
    const link = new FakeLink();
    const outbox = await makeOutbox(link);
    await outbox.enqueue('audit', { id: 'mine' });
    expect(outbox.acknowledge(['other', 'mine', 'mine'])).toBe(1);
    expect(outbox.acknowledge(['mine'])).toBe(0);
    expect(outbox.stats.delivered).toBe(1);
  });

  it('emits delivered for each id the central service acknowledged', async () => {
    const outbox = await makeOutbox(new FakeLink());
    await outbox.enqueue('audit', { id: 'd-1' });
    const delivered: string[] = [];
    outbox.on('delivered', (id) => delivered.push(id));
    outbox.acknowledge(['d-1']);
    expect(delivered).toEqual(['d-1']);
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
    expect(outbox.depth).toBe(5);
  });

  it('re-sends after a reconnect the records the broker had acknowledged but the central service had not', async () => {
    const link = new FakeLink();
    const outbox = await makeOutbox(link);
    link.up();
    for (let i = 0; i < 3; i += 1) await outbox.enqueue('audit', { id: `p${i}` });
    await settle();
    outbox.acknowledge(['p1']);
    link.down();
    link.sent = [];
    link.up();
    await settle();
    expect(link.sent.map((s) => s.payload.id)).toEqual(['p0', 'p2']);
    expect(outbox.stats.resent).toBe(2);
  });

  it('keeps unacknowledged records across a restart, and forgets acknowledged ones', async () => {
    const link = new FakeLink();
    const first = await makeOutbox(link);
    link.up();
    await first.enqueue('audit', { id: 'delivered' });
    await settle();
    first.acknowledge(['delivered']);
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
    for (let i = 0; i < 400; i += 1) {
      await outbox.enqueue('audit', { id: `c${i}`, text: 'y'.repeat(200) });
      outbox.acknowledge([`c${i}`]);
    }
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

describe('Outbox re-sends while connected', () => {
  // Only timers and Date are faked: file writes and setImmediate stay real.
  const fake = () => vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
  // random 0.5: each delay is 3/4 of its ceiling (equal jitter), so 750, 1500, 3000, 3000 ms.
  const timing = { resendMs: 1000, maxResendMs: 4000, now: () => Date.now(), random: () => 0.5 };
  const ids = (link: FakeLink) => link.sent.map((s) => s.payload.id);

  it('re-sends an unacknowledged record after its delay, which doubles with each re-send up to the cap', async () => {
    fake();
    const link = new FakeLink();
    const outbox = await makeOutbox(link, timing);
    link.up();
    await outbox.enqueue('audit', { id: 'slow' });
    await settle();
    const sentAt: number[] = [];
    for (const stepMs of [749, 1, 1499, 1, 2999, 1, 2999, 1]) {
      const before = link.sent.length;
      await vi.advanceTimersByTimeAsync(stepMs);
      await settle();
      sentAt.push(link.sent.length - before);
    }
    expect(sentAt).toEqual([0, 1, 0, 1, 0, 1, 0, 1]);
    expect(outbox.stats.resent).toBe(4);
  });

  it('runs its re-sends on the injected clock: a manual clock moves them, the wall clock does not', async () => {
    const clock = new ManualClock(Date.UTC(2026, 10, 24, 22, 0));
    const link = new FakeLink();
    const outbox = await makeOutbox(link, { ...timing, now: clock.monotonicMs, timers: clock });
    link.up();
    await outbox.enqueue('audit', { id: 'slow' });
    await settle();
    const first = link.sent.length;
    clock.advance(749);
    await settle();
    expect(link.sent.length).toBe(first);
    clock.advance(1);
    await settle();
    expect(link.sent.length).toBe(first + 1);
  });

  it('stops re-sending a record once it is acknowledged', async () => {
    fake();
    const link = new FakeLink();
    const outbox = await makeOutbox(link, timing);
    link.up();
    await outbox.enqueue('audit', { id: 'a' });
    await outbox.enqueue('audit', { id: 'b' });
    await settle();
    outbox.acknowledge(['a']);
    await vi.advanceTimersByTimeAsync(10_000);
    await settle();
    expect(ids(link).filter((id) => id === 'a')).toEqual(['a']);
    expect(ids(link).filter((id) => id === 'b').length).toBeGreaterThan(1);
  });

  it('re-sends nothing while disconnected, and everything at once on reconnect', async () => {
    fake();
    const link = new FakeLink();
    const outbox = await makeOutbox(link, timing);
    link.up();
    await outbox.enqueue('audit', { id: 'x' });
    await settle();
    link.down();
    await vi.advanceTimersByTimeAsync(10_000);
    await settle();
    expect(ids(link)).toEqual(['x']);
    link.up();
    await settle();
    expect(ids(link)).toEqual(['x', 'x']);
  });

  it('re-sends records in the order they were written', async () => {
    fake();
    const link = new FakeLink();
    const outbox = await makeOutbox(link, timing);
    link.up();
    for (const id of ['o1', 'o2', 'o3']) await outbox.enqueue('audit', { id });
    await settle();
    link.sent = [];
    await vi.advanceTimersByTimeAsync(750);
    await settle();
    expect(ids(link)).toEqual(['o1', 'o2', 'o3']);
  });

  it('counts records waiting for the central service towards its bound', async () => {
    const link = new FakeLink();
    const outbox = await makeOutbox(link, { maxRecords: 2 });
    link.up();
    await outbox.enqueue('audit', { id: 'w1' });
    await outbox.enqueue('audit', { id: 'w2' });
    await settle();
    await expect(outbox.enqueue('audit', { id: 'w3' })).rejects.toBeInstanceOf(OutboxFullError);
    outbox.acknowledge(['w1']);
    await expect(outbox.enqueue('audit', { id: 'w3' })).resolves.toBe('w3');
  });
});
