// The device's mutable state, one small file per concern in the state directory, each written atomically.
// Missing or corrupt files are reported and replaced by a safe default: privacy stays ON if its state
// cannot be read, an unreadable schedule means no windows, an unreadable replay cache refuses nothing
// it cannot prove (grants are short-lived, so the exposure is bounded by their lifetime).
//
// Saves are queued per file. Two atomic writes of one file running at once rename in whichever order
// they finish, so an older value could land last: three quick presses (on, off, on) could leave OFF on
// disk while ON is in memory, and a restart would lose the resident's choice. So one write per file
// runs at a time; saves made meanwhile are coalesced into one next write of the newest value (older
// pending values are never needed: the last value wins), and `save()` resolves once the value it was
// given, or a newer one, is durable.
import { mkdir, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import type { Logger } from '../log/index.js';
import { type ReadResult, readJsonFile, writeFileAtomic } from './atomic.js';

export const PrivacyState = z.object({ privacyOn: z.boolean(), changedAt: z.iso.datetime() }).strict();
export type PrivacyState = z.infer<typeof PrivacyState>;

export const StoredSchedule = z.object({ version: z.number().int().min(1), token: z.string() }).strict();
export type StoredSchedule = z.infer<typeof StoredSchedule>;

/** Used nonces with their grant's expiry (epoch seconds); pruned once expired. */
export const ReplayCache = z.object({ nonces: z.record(z.string(), z.number().int()) }).strict();
export type ReplayCache = z.infer<typeof ReplayCache>;

export const Counters = z
  .object({
    refusals: z.record(z.string(), z.number().int().nonnegative()),
    views: z.number().int().nonnegative(),
    lastEndReason: z.string().optional(),
  })
  .strict();
export type Counters = z.infer<typeof Counters>;

const files = {
  privacy: { name: 'privacy.json', schema: PrivacyState },
  schedule: { name: 'schedule.json', schema: StoredSchedule },
  replay: { name: 'replay.json', schema: ReplayCache },
  counters: { name: 'counters.json', schema: Counters },
} as const;
type FileKey = keyof typeof files;
type Value<K extends FileKey> = z.infer<(typeof files)[K]['schema']>;

export interface LoadedState {
  privacy: PrivacyState;
  schedule: StoredSchedule | undefined;
  replay: ReplayCache;
  counters: Counters;
  /** Files that were corrupt and replaced by defaults (the corrupt copy is kept beside, for support). */
  problems: Array<{ file: string; detail: string }>;
}

/** One file's write queue: the write on disk now, and the newest value waiting behind it. */
interface FileQueue {
  writing: boolean;
  next: { text: string; waiters: Array<{ resolve(): void; reject(error: Error): void }> } | undefined;
}

export class StateStore {
  readonly #dir: string;
  readonly #log: Logger;
  readonly #queues = new Map<FileKey, FileQueue>();
  #writes = 0;

  constructor(deps: { dir: string; log: Logger }) {
    this.#dir = deps.dir;
    this.#log = deps.log;
  }

  get dir(): string {
    return this.#dir;
  }

  /** Files written since construction (a burst of saves to one file costs at most two). */
  get writes(): number {
    return this.#writes;
  }

  async load(now: Date): Promise<LoadedState> {
    await mkdir(this.#dir, { recursive: true, mode: 0o700 });
    const problems: LoadedState['problems'] = [];
    const read = async <K extends FileKey>(key: K): Promise<Value<K> | undefined> => {
      const path = join(this.#dir, files[key].name);
      const schema = files[key].schema as unknown as z.ZodType<Value<K>>;
      const result: ReadResult<Value<K>> = await readJsonFile(path, schema);
      if (result.status === 'ok') return result.value;
      if (result.status === 'corrupt') {
        problems.push({ file: files[key].name, detail: result.detail });
        this.#log.error(
          { file: files[key].name, detail: result.detail },
          'state file corrupt; using safe default',
        );
        await rename(path, `${path}.corrupt-${now.getTime()}`).catch(() => undefined);
      }
      return undefined;
    };
    const privacy = await read('privacy');
    const counters = await read('counters');
    // A missing privacy file is a first start: privacy off. A corrupt one is doubt: privacy on.
    const privacyCorrupt = problems.some((p) => p.file === files.privacy.name);
    const safePrivacy = { privacyOn: privacyCorrupt, changedAt: now.toISOString() };
    if (privacyCorrupt) {
      // The corrupt file was moved aside: write privacy on, or the next start would read "missing" as off.
      await this.save('privacy', safePrivacy).catch((error: unknown) => {
        this.#log.error({ err: error }, 'cannot persist the safe privacy default');
      });
    }
    return {
      privacy: privacy ?? safePrivacy,
      schedule: await read('schedule'),
      replay: (await read('replay')) ?? { nonces: {} },
      counters: counters ?? { refusals: {}, views: 0 },
      problems,
    };
  }

  /**
   * Saves a value atomically. Resolves once this value, or one saved after it, is durable; rejects when
   * the write that was to carry it failed.
   */
  save<K extends FileKey>(key: K, value: Value<K>): Promise<void> {
    // Serialised now: the caller may change its object after the call.
    const text = `${JSON.stringify(value)}\n`;
    let queue = this.#queues.get(key);
    if (!queue) {
      queue = { writing: false, next: undefined };
      this.#queues.set(key, queue);
    }
    const durable = new Promise<void>((resolve, reject) => {
      const waiters = queue.next?.waiters ?? [];
      waiters.push({ resolve, reject });
      queue.next = { text, waiters };
    });
    if (!queue.writing) void this.#drain(key, queue);
    return durable;
  }

  async #drain(key: FileKey, queue: FileQueue): Promise<void> {
    queue.writing = true;
    while (queue.next) {
      const { text, waiters } = queue.next;
      queue.next = undefined;
      this.#writes += 1;
      try {
        await writeFileAtomic(join(this.#dir, files[key].name), text);
        for (const waiter of waiters) waiter.resolve();
      } catch (error) {
        for (const waiter of waiters) waiter.reject(error as Error);
      }
    }
    queue.writing = false;
  }
}
