// The open-session journal: a look is on disk before the LED goes on, heartbeats are coalesced, a
// closed look leaves nothing, and a look cut short by SIGKILL is found at the next start with the best
// known end time, closed once, and not found again.
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  interruptedSessionEnd,
  nameUuid,
  OpenSessionJournal,
  openSessionFileName,
} from '../../device/audit/index.js';
import { captureLog, quietLog } from '../hardware/log-capture.js';
import { random, useKillLoop, wholeLines } from '../support/kill-loop.js';

const startedAtMs = Date.UTC(2026, 11, 1, 22, 0);
const look = { sessionId: 'sess-1', operatorId: 'op-7', requestId: 'req-1', startedAtMs };

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tk-open-session-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const journal = (log = quietLog) => new OpenSessionJournal({ dir, log, heartbeatIntervalMs: 5000 });
const onDisk = async (): Promise<Record<string, unknown>> =>
  JSON.parse(await readFile(join(dir, openSessionFileName), 'utf8'));

describe('OpenSessionJournal', () => {
  it('has the look on disk when open() resolves', async () => {
    const j = journal();
    await j.open(look);
    expect(await onDisk()).toEqual({ ...look, lastSeenMs: startedAtMs });
    expect(j.current).toEqual(look);
  });

  it('writes a heartbeat only once the interval has passed since the last write', async () => {
    const j = journal();
    await j.open(look);
    j.heartbeat(startedAtMs + 1000);
    j.heartbeat(startedAtMs + 4999);
    await j.settled();
    expect((await onDisk()).lastSeenMs).toBe(startedAtMs);
    j.heartbeat(startedAtMs + 5000);
    await j.settled();
    expect((await onDisk()).lastSeenMs).toBe(startedAtMs + 5000);
    j.heartbeat(startedAtMs + 9000);
    await j.settled();
    expect((await onDisk()).lastSeenMs).toBe(startedAtMs + 5000);
  });

  it('ignores a heartbeat that goes back in time or comes with no look open', async () => {
    const j = journal();
    j.heartbeat(startedAtMs);
    await j.open(look);
    j.heartbeat(startedAtMs + 6000);
    j.heartbeat(startedAtMs - 60_000);
    await j.settled();
    expect((await onDisk()).lastSeenMs).toBe(startedAtMs + 6000);
  });

  it('leaves nothing behind after close(), even with heartbeats still queued', async () => {
    const j = journal();
    await j.open(look);
    for (let i = 1; i <= 10; i += 1) j.heartbeat(startedAtMs + i * 5000);
    await j.close(look.sessionId);
    await j.settled();
    expect(await readdir(dir)).toEqual([]);
    expect(j.current).toBeUndefined();
    expect(await journal().recover()).toBeUndefined();
  });

  it('refuses to open a second look while one is open', async () => {
    const j = journal();
    await j.open(look);
    await expect(j.open({ ...look, sessionId: 'sess-2' })).rejects.toThrow(/sess-1 is still open/);
    expect((await onDisk()).sessionId).toBe('sess-1');
  });

  it('rejects open() when the look cannot be written, so the LED stays off', async () => {
    await writeFile(join(dir, 'not-a-dir'), '');
    const j = new OpenSessionJournal({ dir: join(dir, 'not-a-dir'), log: quietLog });
    await expect(j.open(look)).rejects.toThrow();
    expect(j.current).toBeUndefined();
  });

  it('rejects a look with a missing id', async () => {
    await expect(journal().open({ ...look, sessionId: '' })).rejects.toThrow();
  });

  it('finds nothing to recover on a first start', async () => {
    expect(await journal().recover()).toBeUndefined();
  });

  it('recovers a look left open, ending at its last written heartbeat, and logs it', async () => {
    const before = journal();
    await before.open(look);
    before.heartbeat(startedAtMs + 7000);
    // Not due for a write of its own, but the pending write takes the latest time known when it runs.
    before.heartbeat(startedAtMs + 8000);
    await before.settled();
    before.heartbeat(startedAtMs + 9000);
    await before.settled();
    const captured = captureLog();
    const after = journal(captured.log);
    expect(await after.recover()).toEqual({
      ...look,
      lastSeenMs: startedAtMs + 8000,
      endedAtMs: startedAtMs + 8000,
      endReason: 'interrupted',
    });
    expect(captured.records().some((r) => r.msg === 'a look was interrupted by a crash or power cut')).toBe(
      true,
    );
  });

  it('keeps a recovered look until close(), and refuses a new look until then', async () => {
    await journal().open(look);
    const after = journal();
    const recovered = await after.recover();
    expect(recovered?.sessionId).toBe('sess-1');
    // A crash before the session-end record was written finds it again.
    expect((await journal().recover())?.sessionId).toBe('sess-1');
    await expect(after.open({ ...look, sessionId: 'sess-2' })).rejects.toThrow(/sess-1 has not been closed/);
    await after.close('sess-1');
    expect(await after.recover()).toBeUndefined();
    await after.open({ ...look, sessionId: 'sess-2' });
    expect((await onDisk()).sessionId).toBe('sess-2');
  });

  it('does not remove the file when asked to close a session it does not hold', async () => {
    await journal().open(look);
    await journal().close('sess-1');
    expect((await onDisk()).sessionId).toBe('sess-1');
  });

  it('moves a corrupt journal aside and recovers nothing, with an error logged', async () => {
    await writeFile(join(dir, openSessionFileName), '{"sessionId": ');
    const captured = captureLog();
    expect(await journal(captured.log).recover()).toBeUndefined();
    expect(await readdir(dir)).toEqual([`${openSessionFileName}.corrupt`]);
    expect(captured.records().some((r) => r.level === 50)).toBe(true);
  });

  it('stops idempotently and leaves an open look on disk for the next start', async () => {
    const j = journal();
    await j.open(look);
    await j.stop();
    await j.stop();
    expect((await journal().recover())?.sessionId).toBe('sess-1');
  });
});

describe('interruptedSessionEnd', () => {
  it('makes the session-end entry: end reason interrupted, the best known duration, a name-based id', () => {
    const made = interruptedSessionEnd({
      ...look,
      lastSeenMs: startedAtMs + 42_000,
      endedAtMs: startedAtMs + 42_000,
      endReason: 'interrupted',
    });
    expect(made).toEqual({
      entry: {
        kind: 'session-end',
        requestId: 'req-1',
        sessionId: 'sess-1',
        operatorId: 'op-7',
        startedAt: '2026-12-01T22:00:00.000Z',
        durationMs: 42_000,
        endReason: 'interrupted',
      },
      options: { atMs: startedAtMs + 42_000, id: nameUuid('session-end:sess-1') },
    });
  });
});

describe('a look cut short by SIGKILL', () => {
  const writer = fileURLToPath(new URL('./fixtures/open-session-writer.ts', import.meta.url));
  const loop = useKillLoop('tk-open-session-crash-');
  const kills = 8;
  const heartbeatMs = 50;

  it(`is found at the next start with its last heartbeat as end time, after each of ${kills} kills`, async () => {
    const delay = random(0x0be5);
    for (let kill = 0; kill < kills; kill += 1) {
      const runDir = join(loop.dir, `run-${kill}`);
      const sessionId = `sess-${kill}`;
      // The first kill comes right after open(): the look has only its start.
      const delayMs = kill === 0 ? 0 : Math.floor(delay() * 150);
      const { signal, stdout } = await loop.writeThenKill(writer, [runDir, sessionId], {
        delayMs,
        ready: (soFar) => wholeLines(soFar).includes('open'),
      });
      expect(signal).toBe('SIGKILL');
      const alive = wholeLines(stdout)
        .filter((line) => line.startsWith('alive '))
        .map((line) => Number(line.slice('alive '.length)));
      const lastAliveMs = alive.at(-1) ?? startedAtMs;

      // The restart: a new journal on the same folder.
      const restarted = new OpenSessionJournal({ dir: runDir, log: quietLog });
      const recovered = await restarted.recover();
      expect(recovered).toMatchObject({
        sessionId,
        operatorId: 'op-7',
        requestId: `req-${sessionId}`,
        startedAtMs,
        endReason: 'interrupted',
      });
      // Every heartbeat that was reported settled is on disk, to within one interval; none that was
      // not yet made can be (at most the one being made when the kill came).
      expect(recovered!.endedAtMs).toBeGreaterThanOrEqual(Math.max(startedAtMs, lastAliveMs - heartbeatMs));
      // At most the heartbeat being written when the kill came, whose `alive` line was not printed yet.
      expect(recovered!.endedAtMs).toBeLessThanOrEqual(lastAliveMs + heartbeatMs + 10);
      // Closed once, it is not found again, and no temp file is left behind.
      await restarted.close(sessionId);
      expect(await new OpenSessionJournal({ dir: runDir, log: quietLog }).recover()).toBeUndefined();
      expect((await readdir(runDir)).filter((name) => !name.startsWith('.'))).toEqual([]);
    }
  }, 180_000);
});
