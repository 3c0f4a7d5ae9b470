// Signalling over a real mosquitto between the device service (werift + ffmpeg testsrc, simulated GPIO)
// and a werift viewer in Node: the fast path to the same flow the Chromium test drives through a page.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../device/log/index.js';
import {
  SignalAnswer,
  SignalCandidate,
  SignalOffer,
  schemaVersion,
  topic,
  ViewInbound,
} from '../../device/protocol/index.js';
import { type Broker, startBroker } from '../../scripts/devstack/broker.js';
import { type LookStack, startLookStack } from '../../scripts/devstack/look-stack.js';
import { isAlive, sleep } from '../support/process.js';
import { MqttViewer } from './mqtt-viewer.js';

describe('signalling messages', () => {
  it('carry the same schema version as every other message', () => {
    for (const schema of [SignalOffer, SignalAnswer, SignalCandidate]) {
      expect(schema.shape.schemaVersion.value).toBe(schemaVersion);
    }
  });

  it('accepts answers and candidates on view/request and refuses an oversized SDP', () => {
    const answer = { schemaVersion, type: 'answer', sessionId: 'ses-1', sdp: 'v=0\r\n'.repeat(100) };
    expect(ViewInbound.safeParse(answer).success).toBe(true);
    expect(ViewInbound.safeParse({ ...answer, sdp: 'x'.repeat(12_001) }).success).toBe(false);
    const candidate = {
      schemaVersion,
      type: 'candidate',
      sessionId: 'ses-1',
      candidate: { candidate: '', sdpMid: '0', sdpMLineIndex: 0, usernameFragment: null },
    };
    expect(ViewInbound.safeParse(candidate).success).toBe(true);
    expect(ViewInbound.safeParse({ ...candidate, extra: 1 }).success).toBe(false);
  });
});

describe('look-in over MQTT signalling with a werift viewer', () => {
  let broker: Broker;
  let stack: LookStack;
  let viewer: MqttViewer;
  const encoderPids: number[] = [];

  beforeAll(async () => {
    broker = await startBroker({ plain: true });
    stack = await startLookStack({
      brokerUrl: broker.plainUrl!,
      log: silentLogger(),
      loopbackOnly: true,
      camera: { width: 320, height: 240, fps: 15 },
      negotiationTimeoutMs: 2000,
    });
    stack.port.on('video', (_sessionId, video) => {
      video.on('streaming', () => {
        if (video.encoderPid !== undefined) encoderPids.push(video.encoderPid);
      });
    });
    await stack.setSchedule('open');
    viewer = await MqttViewer.connect(broker.plainUrl!, broker.plainOptions('console-1'), stack.deviceId);
  });

  afterAll(async () => {
    await viewer?.close();
    await stack?.stop();
    await broker?.stop();
    expect(encoderPids.filter(isAlive)).toEqual([]);
  });

  it('gets a keyframe first, and a hang-up ends the view with the LED off and ffmpeg gone', async () => {
    const decision = await viewer.request(await stack.signGrant());
    expect(decision.decision).toBe('granted');
    const first = await viewer.nextFrame(8000);
    expect(first.keyframe).toBe(true);
    expect(stack.gpio.viewingLed.value).toBe(true);
    const sessionId = decision.sessionId!;
    const pid = stack.videos.get(sessionId)?.encoderPid;
    expect(pid).toBeDefined();

    const ended = viewer.nextEnded(5000);
    await viewer.hangup();
    expect((await ended).reason).toBe('operator-hangup');
    expect(stack.gpio.viewingLed.value).toBe(false);
    expect(isAlive(pid!)).toBe(false);
    expect(stack.port.activeSessions).toEqual([]);
    const stats = stack.finalStats.get(sessionId)!;
    const viewing = stack.gpio.events.filter((event) => event.led === 'viewing');
    expect(viewing.at(-2)!.atMs).toBeLessThanOrEqual(stats.firstForwardedAtMs!);
    expect(viewing.at(-1)!.atMs).toBeGreaterThanOrEqual(stats.lastForwardedAtMs!);
  });

  it('ends a granted view whose console never answers as peer-gone after the negotiation deadline', async () => {
    viewer.answerOffers = false;
    try {
      const decision = await viewer.request(await stack.signGrant());
      expect(decision.decision).toBe('granted');
      const ended = viewer.nextEnded(5000);
      // The encoder starts with the offer; it must not outlive the view that nobody answered.
      let pid: number | undefined;
      for (let waited = 0; pid === undefined && waited < 2000; waited += 10) {
        pid = stack.videos.get(decision.sessionId!)?.encoderPid;
        await sleep(10);
      }
      expect((await ended).reason).toBe('peer-gone');
      expect(stack.gpio.viewingLed.value).toBe(false);
      expect(stack.finalStats.get(decision.sessionId!)?.packetsForwarded).toBe(0);
      expect(pid).toBeDefined();
      expect(isAlive(pid!)).toBe(false);
    } finally {
      viewer.answerOffers = true;
    }
  });

  it('ignores signalling for a session that is not running', async () => {
    const rejectedBefore = stack.service.inboundRejected;
    await stack.central.publishAsync(
      topic(stack.deviceId, 'viewRequest'),
      JSON.stringify({
        schemaVersion,
        type: 'answer',
        sessionId: 'ses-none',
        sdp: 'v=0\r\no=- 0 0 IN IP4 0\r\n',
      }),
      { qos: 1 },
    );
    await sleep(200);
    expect(stack.service.inboundRejected).toBe(rejectedBefore);
    expect(stack.service.supervisor.phase).toBe('idle');
    expect(stack.gpio.viewingLed.value).toBe(false);
  });

  it('opens a new view after the previous one ended, each with its own ffmpeg', async () => {
    const decision = await viewer.request(await stack.signGrant());
    expect(decision.decision).toBe('granted');
    expect((await viewer.nextFrame(8000)).keyframe).toBe(true);
    const ended = viewer.nextEnded(5000);
    await viewer.hangup();
    expect((await ended).reason).toBe('operator-hangup');
    expect(new Set(encoderPids).size).toBe(encoderPids.length);
  });
});
