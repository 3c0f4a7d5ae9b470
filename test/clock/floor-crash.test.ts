// The time floor under SIGKILL: a floor that raise() said was saved is there after the kill, the
// file is never torn, and each run starts from where the last one got to.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { TimeFloor } from '../../device/clock/index.js';
import { ManualClock } from '../../scripts/devstack/manual-clock.js';
import { quietLog } from '../hardware/log-capture.js';
import { random, useKillLoop, wholeLines } from '../support/kill-loop.js';

const raiser = fileURLToPath(new URL('./fixtures/floor-raiser.ts', import.meta.url));
const kills = 10;
const loop = useKillLoop('tk-floor-crash-');

describe('TimeFloor under SIGKILL', () => {
  it(`keeps every floor raise() reported saved, across ${kills} kills at random moments`, async () => {
    const dir = join(loop.dir, 'state');
    await mkdir(dir);
    const delay = random(0xf100);
    let lastRaisedMs = 0;
    for (let kill = 0; kill < kills; kill += 1) {
      const { signal, stdout } = await loop.writeThenKill(raiser, [dir], {
        delayMs: Math.floor(delay() * 100),
        ready: (soFar) => wholeLines(soFar).some((line) => line.startsWith('ready ')),
      });
      expect(signal).toBe('SIGKILL');
      const lines = wholeLines(stdout);
      const startedFrom = Number(lines[0]?.slice('ready '.length));
      // Each run starts from at least the last floor the previous run reported saved.
      expect(startedFrom).toBeGreaterThanOrEqual(lastRaisedMs);
      const raised = lines.filter((line) => line.startsWith('raised ')).map((line) => Number(line.slice(7)));
      lastRaisedMs = Math.max(lastRaisedMs, raised.at(-1) ?? 0);
      const floor = new TimeFloor({
        stateDir: dir,
        log: quietLog,
        timers: new ManualClock(0),
        toleranceMs: 120_000,
      });
      await floor.start();
      expect(floor.floorMs).toBeGreaterThanOrEqual(lastRaisedMs);
      // At most the one raise in flight when the kill came is on disk beyond what was reported.
      expect(floor.floorMs).toBeLessThanOrEqual(Math.max(lastRaisedMs, startedFrom) + 1000);
      await floor.stop();
    }
    expect(lastRaisedMs).toBeGreaterThan(0);
  }, 60_000);
});
