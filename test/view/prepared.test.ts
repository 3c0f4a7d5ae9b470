// The stand-by media process readies the next look's ffmpeg for the window's view mode, held before it
// opens the camera (issue 9, time to the first picture), and the look lets that ffmpeg go. Real mosquitto,
// ffmpeg and werift; the GPIO is simulated. Oracles: the processes in the stand-by process's group, their
// command lines, the look's encoder pid, and the prepared ffmpeg's private directory.
import { existsSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../device/log/index.js';
import { ProcessMedia, runningInGroup } from '../../device/view/index.js';
import { type Broker, startBroker } from '../../scripts/devstack/broker.js';
import { type LookStack, startLookStack } from '../../scripts/devstack/look-stack.js';
import { MqttViewer } from '../../scripts/devstack/mqtt-console.js';
import { isRunning, waitUntil } from '../support/process.js';

let broker: Broker;
let stack: LookStack;
let viewer: MqttViewer;

beforeAll(async () => {
  broker = await startBroker({ plain: true });
  stack = await startLookStack({
    brokerUrl: broker.plainUrl!,
    log: silentLogger(),
    loopbackOnly: true,
    camera: { width: 320, height: 240, fps: 15 },
  });
  viewer = await MqttViewer.connect(broker.plainUrl!, broker.plainOptions('console-1'), stack.deviceId);
});
afterAll(async () => {
  await viewer?.close();
  await stack?.stop();
  await broker?.stop();
});

function media(): ProcessMedia {
  if (!(stack.media instanceof ProcessMedia)) throw new Error('the look stack runs ProcessMedia');
  return stack.media;
}

/** The held ffmpeg in the stand-by process's group: its pid, its command line and its gate. */
async function held(): Promise<{ standByPid: number; pid: number; args: string[]; gate: string }> {
  await media().warmReady();
  const standByPid = media().warmPid;
  if (standByPid === undefined) throw new Error('no stand-by media process');
  for (const pid of runningInGroup(standByPid)) {
    const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    const at = args.indexOf('-progress');
    if (args.some((arg) => arg.endsWith('ffmpeg')) && at >= 0) {
      return { standByPid, pid, args, gate: args[at + 1]! };
    }
  }
  throw new Error(`no held ffmpeg in the group of ${standByPid}`);
}

async function look(): Promise<string> {
  const decision = await viewer.request(await stack.signGrant(viewer.holder));
  expect(decision.decision).toBe('granted');
  await viewer.nextFrame(10_000);
  return decision.sessionId!;
}

async function hangUp(): Promise<void> {
  const ended = viewer.nextEnded(5000);
  await viewer.hangup();
  await ended;
}

describe('the stand-by media process', () => {
  it("holds the next look's ffmpeg, which that look lets go; its directory goes with the look", async () => {
    await stack.setSchedule('open');
    const ready = await held();
    expect(ready.args.join(' ')).not.toContain('boxblur');
    const sessionId = await look();
    expect(stack.videos.get(sessionId)?.childPid).toBe(ready.standByPid);
    expect(stack.videos.get(sessionId)?.encoderPid).toBe(ready.pid);
    expect(existsSync(ready.gate)).toBe(true);
    await hangUp();
    await waitUntil(() => !isRunning(ready.pid), 5000, 'the look’s ffmpeg gone');
    await waitUntil(() => !existsSync(dirname(ready.gate)), 5000, 'the gate’s directory removed');
  });

  it('a look in another view mode gets an ffmpeg of its own; the next stand-by holds one for that mode', async () => {
    await stack.setSchedule('open');
    const forFull = await held();
    await stack.setSchedule('blurred');
    expect(media().warmPid).toBe(forFull.standByPid);
    const sessionId = await look();
    const encoderPid = stack.videos.get(sessionId)?.encoderPid;
    expect(encoderPid).toBeDefined();
    expect(encoderPid).not.toBe(forFull.pid);
    await waitUntil(() => !isRunning(forFull.pid), 5000, 'the ffmpeg held for the full view killed');
    expect(readFileSync(`/proc/${encoderPid}/cmdline`, 'utf8')).toContain('boxblur');
    await hangUp();
    const forBlurred = await held();
    expect(forBlurred.args.join(' ')).toContain('boxblur');
  });

  it('leaves no held ffmpeg and no directory when the window closes', async () => {
    await stack.setSchedule('open');
    const ready = await held();
    await stack.setSchedule('closed');
    await waitUntil(() => !isRunning(ready.pid) && !isRunning(ready.standByPid), 5000, 'stand-by over');
    await waitUntil(() => !existsSync(dirname(ready.gate)), 5000, 'the gate’s directory removed');
  });
});
