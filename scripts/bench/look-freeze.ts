// The freeze after a loss burst: during a look through the TURN relay in the lab (4G profile), the
// device's uplink drops every packet for 200 ms; the figure is the longest gap between two whole frames
// at the console around the burst, i.e. how long the picture stood still before NACK retransmissions
// and a PLI-triggered keyframe brought it back. Five bursts, one second of keyframe interval. Root.
//
//   sudo npx tsx scripts/bench/look-freeze.ts
import { link4g } from '../netlab/link-profile.js';
import { relayOnly, startLookLab } from '../netlab/look-lab.js';

const bursts = 5;
const burstMs = 200;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) {
    console.log('skipped: the network lab needs root');
    return;
  }
  const { link, device, viewer, stop } = await startLookLab();
  try {
    await link.setProfile(link4g);
    const grant = await device.request('grant', await viewer.holder());
    const decision = await viewer.look(grant, relayOnly(grant));
    if (decision.decision !== 'granted') throw new Error(`look refused: ${JSON.stringify(decision)}`);
    await viewer.frames(30, 1, 30_000);
    const freezes: number[] = [];
    for (let i = 0; i < bursts; i += 1) {
      const before = (await viewer.frames(0, 0, 1000)).frameTimesMs.length;
      await link.setDown(true);
      await sleep(burstMs);
      await link.setDown(false);
      await sleep(3000);
      const times = (await viewer.frames(0, 0, 1000)).frameTimesMs.slice(Math.max(0, before - 1));
      let longest = 0;
      for (let k = 1; k < times.length; k += 1)
        longest = Math.max(longest, (times[k] ?? 0) - (times[k - 1] ?? 0));
      freezes.push(longest);
    }
    await viewer.hangup();
    await viewer.ended(15_000);
    const sorted = [...freezes].sort((a, b) => a - b);
    console.log(
      `4g, ${burstMs} ms burst: longest gap between whole frames, median ${sorted[Math.floor(sorted.length / 2)]} ms ` +
        `(${freezes.join(', ')} ms; 15 fps is 67 ms a frame)`,
    );
  } finally {
    await stop();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
