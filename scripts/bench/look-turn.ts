// Request → first whole frame at the console, through the TURN relay, in the network lab (device behind
// a symmetric NAT on the emulated 4G or bad uplink, console behind its own NAT, relay only). Needs root
// (network namespaces); prints that it skipped otherwise. Goal on 4G: median under 1 s.
//
//   sudo npx tsx scripts/bench/look-turn.ts
import { clearLink, link4g, linkBad } from '../netlab/link-profile.js';
import { relayOnly, startLookLab } from '../netlab/look-lab.js';

const looksPerProfile = 8;

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
};

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) {
    console.log('skipped: the network lab needs root');
    return;
  }
  const { link, device, viewer, stop } = await startLookLab({ logLevel: process.env.LAB_LOG });
  try {
    for (const profile of process.env.LAB_ONLY_4G ? [link4g] : [link4g, linkBad]) {
      await link.setProfile(profile);
      const firstFrameMs: number[] = [];
      const connectedMs: number[] = [];
      const endedOtherwise: string[] = [];
      let failed = 0;
      for (let i = 0; i < looksPerProfile; i += 1) {
        const grant = await device.request('grant', await viewer.holder());
        const decision = await viewer.look(grant, relayOnly(grant));
        if (decision.decision !== 'granted') throw new Error(`look refused: ${JSON.stringify(decision)}`);
        try {
          const { timings } = await viewer.frames(1, 0, 15_000);
          firstFrameMs.push((timings.firstFrameAtMs ?? Number.NaN) - timings.requestedAtMs);
          connectedMs.push((timings.connectedAtMs ?? Number.NaN) - timings.requestedAtMs);
          await viewer.hangup();
        } catch {
          // No picture: the device ends the look itself (peer-gone); the operator would ask again.
          failed += 1;
        }
        const { ended } = await viewer.ended(30_000);
        if (ended.reason !== 'operator-hangup') endedOtherwise.push(ended.reason);
        // Looks come minutes apart on a device; here the stand-by media process gets a moment to load.
        await new Promise((resolve) => setTimeout(resolve, 1500));
      }
      const round = (values: number[]) => values.map((value) => Math.round(value)).join(', ');
      console.log(
        `${profile.name}: request → first frame through TURN, median ${Math.round(median(firstFrameMs))} ms ` +
          `(${round(firstFrameMs)}); DTLS connected median ${Math.round(median(connectedMs))} ms; ` +
          `no picture in ${failed}/${looksPerProfile}${endedOtherwise.length > 0 ? ` (ended ${endedOtherwise.join(', ')})` : ''}`,
      );
    }
    await link.setProfile(clearLink);
  } finally {
    await stop();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
