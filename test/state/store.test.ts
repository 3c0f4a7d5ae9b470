// The state directory: round trips, safe defaults for missing and corrupt files, corrupt files kept
// aside for support, no temp files left behind by atomic writes, and saves queued per file (the last
// value wins, whatever the interleaving).
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  type Counters,
  type PrivacyState,
  type ReplayCache,
  readJsonFile,
  StateStore,
  type StoredSchedule,
  writeFileAtomic,
} from '../../device/state/index.js';
import { captureLog, quietLog } from '../hardware/log-capture.js';

const now = new Date('2026-01-14T22:30:00.000Z');
const later = new Date('2026-01-15T08:00:00.000Z');

const privacy: PrivacyState = { privacyOn: false, changedAt: '2026-01-10T08:00:00.000Z' };
const schedule: StoredSchedule = { version: 7, token: 'header.payload.signature' };
const replay: ReplayCache = { nonces: { 'nonce-0000000000000001': 1_768_430_000 } };
const counters: Counters = { refusals: { 'outside-window': 3 }, views: 12, lastEndReason: 'window-end' };

let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tk-state-'));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const store = (log = quietLog) => new StateStore({ dir, log });
const entries = async (): Promise<string[]> => (await readdir(dir)).sort();

describe('StateStore round trip', () => {
  it('loads back every file it saved, with no problems', async () => {
    const s = store();
    await s.save('privacy', { privacyOn: true, changedAt: '2026-01-10T08:00:00.000Z' });
    await s.save('schedule', schedule);
    await s.save('replay', replay);
    await s.save('counters', counters);
    expect(await store().load(now)).toEqual({
      privacy: { privacyOn: true, changedAt: '2026-01-10T08:00:00.000Z' },
      schedule,
      replay,
      counters,
      problems: [],
    });
  });

  it('keeps the last value saved when a file is saved twice', async () => {
    const s = store();
    await s.save('counters', counters);
    await s.save('counters', { ...counters, views: 13 });
    expect((await s.load(now)).counters.views).toBe(13);
  });

  it('writes one JSON document per file, ending in a newline', async () => {
    await store().save('privacy', privacy);
    expect(await readFile(join(dir, 'privacy.json'), 'utf8')).toBe(`${JSON.stringify(privacy)}\n`);
  });

  it('writes state files readable by the owner only (0600)', async () => {
    await store().save('replay', replay);
    expect((await stat(join(dir, 'replay.json'))).mode & 0o777).toBe(0o600);
  });
});

describe('StateStore defaults for missing files', () => {
  it('starts with privacy OFF, no schedule, an empty replay cache and zero counters', async () => {
    expect(await store().load(now)).toEqual({
      privacy: { privacyOn: false, changedAt: now.toISOString() },
      schedule: undefined,
      replay: { nonces: {} },
      counters: { refusals: {}, views: 0 },
      problems: [],
    });
  });

  it('creates a missing state directory, private to the owner', async () => {
    const nested = join(dir, 'var', 'lib', 'tk');
    await new StateStore({ dir: nested, log: quietLog }).load(now);
    expect((await stat(nested)).mode & 0o777).toBe(0o700);
  });
});

describe('StateStore with a corrupt privacy file', () => {
  const corruptions: Array<[string, string]> = [
    ['garbage', 'ÿþ not json at all'],
    ['truncated JSON', '{"privacyOn": fal'],
    ['an empty file', ''],
    ['the wrong schema', '{"privacyOn": "no", "changedAt": "2026-01-10T08:00:00.000Z"}'],
    ['an extra key', '{"privacyOn": false, "changedAt": "2026-01-10T08:00:00.000Z", "by": "x"}'],
    ['a date that is not ISO', '{"privacyOn": false, "changedAt": "yesterday"}'],
  ];

  for (const [what, content] of corruptions) {
    it(`turns privacy ON when the file holds ${what}`, async () => {
      await writeFile(join(dir, 'privacy.json'), content);
      const loaded = await store().load(now);
      expect(loaded.privacy).toEqual({ privacyOn: true, changedAt: now.toISOString() });
    });
  }

  it('reports garbage as not JSON in problems', async () => {
    await writeFile(join(dir, 'privacy.json'), 'ÿþ not json at all');
    expect((await store().load(now)).problems).toEqual([
      { file: 'privacy.json', detail: expect.stringMatching(/^not JSON: /) },
    ]);
  });

  it('reports a wrong schema in problems, naming the field', async () => {
    await writeFile(
      join(dir, 'privacy.json'),
      '{"privacyOn": "no", "changedAt": "2026-01-10T08:00:00.000Z"}',
    );
    expect((await store().load(now)).problems).toEqual([
      { file: 'privacy.json', detail: expect.stringMatching(/^privacyOn: /) },
    ]);
  });

  it('keeps the bad file aside as privacy.json.corrupt-<ms>, content unchanged', async () => {
    await writeFile(join(dir, 'privacy.json'), '{"privacyOn": fal');
    await store().load(now);
    expect(await readFile(join(dir, `privacy.json.corrupt-${now.getTime()}`), 'utf8')).toBe(
      '{"privacyOn": fal',
    );
  });

  it('logs the corrupt file at error level', async () => {
    await writeFile(join(dir, 'privacy.json'), '{"privacyOn": fal');
    const captured = captureLog();
    await store(captured.log).load(now);
    expect(captured.records()).toContainEqual(expect.objectContaining({ level: 50, file: 'privacy.json' }));
  });

  it('keeps privacy ON on the next start too, when nothing changed it in between', async () => {
    await writeFile(join(dir, 'privacy.json'), '{"privacyOn": fal');
    await store().load(now);
    const next = await store().load(later);
    expect(next.privacy.privacyOn).toBe(true);
  });

  it('reports no problem on the next start, the doubt having been resolved to privacy ON', async () => {
    await writeFile(join(dir, 'privacy.json'), '{"privacyOn": fal');
    await store().load(now);
    expect((await store().load(later)).problems).toEqual([]);
  });

  it('treats a directory in place of the file as corrupt: privacy ON', async () => {
    await mkdir(join(dir, 'privacy.json'));
    const loaded = await store().load(now);
    expect(loaded.privacy.privacyOn).toBe(true);
    expect(loaded.problems).toEqual([
      { file: 'privacy.json', detail: expect.stringMatching(/^cannot read: /) },
    ]);
  });

  it('does not turn privacy ON because another file is corrupt', async () => {
    await store().save('privacy', privacy);
    await writeFile(join(dir, 'counters.json'), 'nope');
    expect((await store().load(now)).privacy).toEqual(privacy);
  });
});

describe('StateStore with other corrupt files', () => {
  it('gives no schedule when the schedule file is corrupt, and reports it', async () => {
    await writeFile(join(dir, 'schedule.json'), '{"version": 0, "token": "x"}');
    const loaded = await store().load(now);
    expect(loaded.schedule).toBeUndefined();
    expect(loaded.problems).toEqual([{ file: 'schedule.json', detail: expect.stringMatching(/^version: /) }]);
  });

  it('keeps a corrupt schedule aside as schedule.json.corrupt-<ms>', async () => {
    await writeFile(join(dir, 'schedule.json'), '{"version": 3, "tok');
    await store().load(now);
    expect(await entries()).toContain(`schedule.json.corrupt-${now.getTime()}`);
    expect(await entries()).not.toContain('schedule.json');
  });

  it('gives an empty replay cache when the replay file is corrupt', async () => {
    await writeFile(join(dir, 'replay.json'), '{"nonces": {"a": "soon"}}');
    const loaded = await store().load(now);
    expect(loaded.replay).toEqual({ nonces: {} });
    expect(loaded.problems.map((p) => p.file)).toEqual(['replay.json']);
  });

  it('gives zero counters when the counters file is corrupt', async () => {
    await writeFile(join(dir, 'counters.json'), '{"refusals": {}, "views": -1}');
    const loaded = await store().load(now);
    expect(loaded.counters).toEqual({ refusals: {}, views: 0 });
    expect(loaded.problems.map((p) => p.file)).toEqual(['counters.json']);
  });

  it('reports every corrupt file, one problem each', async () => {
    for (const name of ['privacy.json', 'schedule.json', 'replay.json', 'counters.json']) {
      await writeFile(join(dir, name), '[');
    }
    const files = (await store().load(now)).problems.map((p) => p.file).sort();
    expect(files).toEqual(['counters.json', 'privacy.json', 'replay.json', 'schedule.json']);
  });
});

describe('writeFileAtomic', () => {
  it('leaves no temp files after many writes', async () => {
    const s = store();
    for (let i = 0; i < 20; i += 1) {
      await s.save('counters', { refusals: {}, views: i });
      await s.save('privacy', { privacyOn: i % 2 === 0, changedAt: now.toISOString() });
    }
    expect(await entries()).toEqual(['counters.json', 'privacy.json']);
  });

  it('leaves no temp files after concurrent writes to the same file', async () => {
    const path = join(dir, 'x.json');
    await Promise.all(Array.from({ length: 20 }, (_, i) => writeFileAtomic(path, JSON.stringify({ i }))));
    expect(await entries()).toEqual(['x.json']);
    expect(JSON.parse(await readFile(path, 'utf8'))).toEqual({ i: expect.any(Number) });
  });

  it('replaces the whole content, even with a shorter one', async () => {
    const path = join(dir, 'x.json');
    await writeFileAtomic(path, JSON.stringify({ long: 'x'.repeat(10_000) }));
    await writeFileAtomic(path, '{}');
    expect(await readFile(path, 'utf8')).toBe('{}');
  });

  it('removes its temp file and rejects when the rename fails', async () => {
    const path = join(dir, 'occupied');
    await mkdir(path);
    await writeFile(join(path, 'inside'), 'x');
    await expect(writeFileAtomic(path, '{}')).rejects.toThrow();
    expect(await entries()).toEqual(['occupied']);
  });

  it('rejects when the directory does not exist, creating nothing', async () => {
    await expect(writeFileAtomic(join(dir, 'missing', 'x.json'), '{}')).rejects.toMatchObject({
      code: 'ENOENT',
    });
    expect(await entries()).toEqual([]);
  });
});

describe('readJsonFile', () => {
  const Shape = z.object({ n: z.number() }).strict();

  it('returns ok with the parsed value', async () => {
    await writeFile(join(dir, 'a.json'), '{"n": 1}');
    expect(await readJsonFile(join(dir, 'a.json'), Shape)).toEqual({ status: 'ok', value: { n: 1 } });
  });

  it('returns missing for a file that does not exist', async () => {
    expect(await readJsonFile(join(dir, 'none.json'), Shape)).toEqual({ status: 'missing' });
  });

  it('names the top level when the whole value has the wrong type', async () => {
    await writeFile(join(dir, 'a.json'), '42');
    expect(await readJsonFile(join(dir, 'a.json'), Shape)).toEqual({
      status: 'corrupt',
      detail: expect.stringMatching(/^\(top level\): /),
    });
  });
});

describe('StateStore saves to one file in quick succession', () => {
  // Quick privacy presses (on, off, on, ...) whose saves overlap: the file must end with the last
  // value, and each save resolves only once its value, or a newer one, is on disk.
  const stamp = (n: number): string => new Date(now.getTime() + n * 1000).toISOString();
  const indexOf = (value: PrivacyState): number => (Date.parse(value.changedAt) - now.getTime()) / 1000;
  const readPrivacy = async (): Promise<PrivacyState> =>
    JSON.parse(await readFile(join(dir, 'privacy.json'), 'utf8')) as PrivacyState;
  const ticks = async (count: number): Promise<void> => {
    for (let i = 0; i < count; i += 1) await new Promise<void>((resolve) => setImmediate(resolve));
  };

  it('keeps the last value on disk in 200 trials of overlapping on/off/on presses', async () => {
    let seed = 42;
    const random = (): number => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const wrong: string[] = [];
    for (let trial = 0; trial < 200; trial += 1) {
      const s = store();
      const presses = 3 + Math.floor(random() * 4);
      const saves: Array<Promise<void>> = [];
      const early: string[] = [];
      for (let n = 0; n < presses; n += 1) {
        const value = { privacyOn: n % 2 === 0, changedAt: stamp(trial * 10 + n) };
        saves.push(
          s.save('privacy', value).then(async () => {
            const onDisk = indexOf(await readPrivacy());
            if (onDisk < trial * 10 + n) early.push(`save ${n} resolved with ${onDisk - trial * 10} on disk`);
          }),
        );
        await ticks(Math.floor(random() * 4));
      }
      await Promise.all(saves);
      const last = presses - 1;
      const onDisk = await readPrivacy();
      if (indexOf(onDisk) !== trial * 10 + last) {
        wrong.push(`trial ${trial}: press ${indexOf(onDisk) - trial * 10} of ${last} on disk`);
      }
      if (early.length > 0) wrong.push(`trial ${trial}: ${early.join(', ')}`);
    }
    expect(wrong).toEqual([]);
    expect(await entries()).toEqual(['privacy.json']);
  });

  it('writes at most two times for a burst of saves: the one in flight and the newest', async () => {
    const s = store();
    const saves = Array.from({ length: 20 }, (_, n) =>
      s.save('privacy', { privacyOn: n % 2 === 0, changedAt: stamp(n) }),
    );
    await Promise.all(saves);
    expect(indexOf(await readPrivacy())).toBe(19);
    expect(s.writes).toBe(2);
  });

  it('rejects a save whose write failed, and writes the next save again', async () => {
    const s = new StateStore({ dir: join(dir, 'gone'), log: quietLog });
    await expect(s.save('counters', counters)).rejects.toMatchObject({ code: 'ENOENT' });
    await mkdir(join(dir, 'gone'));
    await s.save('counters', { ...counters, views: 99 });
    expect(JSON.parse(await readFile(join(dir, 'gone', 'counters.json'), 'utf8')).views).toBe(99);
  });

  it('queues each file on its own: a slow file does not hold back another', async () => {
    const s = store();
    await Promise.all([
      s.save('privacy', privacy),
      s.save('counters', counters),
      s.save('privacy', { ...privacy, privacyOn: true }),
      s.save('counters', { ...counters, views: 1 }),
    ]);
    const loaded = await store().load(now);
    expect([loaded.privacy.privacyOn, loaded.counters.views]).toEqual([true, 1]);
  });
});
