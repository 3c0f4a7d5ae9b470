// What a 30 s look costs on the device's uplink in each view mode: the bytes of IP packets the lab's
// link emulator forwarded from the device during a look through the TURN relay (video, RTCP, TURN and
// DTLS overhead), with the camera at 1280x720, 15 fps. The test source compresses better than a real
// room, so the figures are a floor; the encoder's cap per mode is the ceiling. Needs root.
//
//   sudo npx tsx scripts/bench/look-bytes.ts
import type { ScheduleKind } from '../devstack/look-stack.js';
import { clearLink } from '../netlab/link-profile.js';
import { relayOnly, startLookLab } from '../netlab/look-lab.js';

const lookS = 30;

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) {
    console.log('skipped: the network lab needs root');
    return;
  }
  const { link, device, viewer, stop } = await startLookLab({
    camera: { width: 1280, height: 720, fps: 15 },
  });
  try {
    await link.setProfile(clearLink);
    const modes: Array<[string, ScheduleKind]> = [
      ['full', 'open'],
      ['blurred', 'blurred'],
      ['low-resolution', 'low-resolution'],
    ];
    for (const [mode, kind] of modes) {
      await device.setSchedule(kind);
      const grant = await device.request('grant', await viewer.holder());
      const before = await link.stats();
      const decision = await viewer.look(grant, relayOnly(grant));
      if (decision.decision !== 'granted') throw new Error(`look refused: ${JSON.stringify(decision)}`);
      await new Promise((resolve) => setTimeout(resolve, lookS * 1000));
      const after = await link.stats();
      const report = await viewer.hangup();
      await viewer.ended(15_000);
      const upBytes = after.up.forwardedBytes - before.up.forwardedBytes;
      console.log(
        `${mode}: ${(upBytes / 1e6).toFixed(2)} MB up in ${lookS} s (${Math.round((upBytes * 8) / lookS / 1000)} kbit/s), ` +
          `${report.frames} whole frames at the console`,
      );
    }
  } finally {
    await stop();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
