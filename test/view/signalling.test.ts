// Signalling over a real mosquitto between the device service (werift + ffmpeg testsrc, simulated GPIO)
// and werift consoles in Node: the fast path to the same flow the Chromium test drives through a page.
// A second console with the same broker rights tries to take a look over, hang it up and flood it with
// candidates: it must get no picture and change nothing.
import { readFileSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RTCCertificate } from 'werift';
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
import { MqttViewer } from '../../scripts/devstack/mqtt-console.js';
import { isAlive, sleep, waitUntil } from '../support/process.js';

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
    await stack.setSchedule('open');
    viewer = await MqttViewer.connect(broker.plainUrl!, broker.plainOptions('console-1'), stack.deviceId);
  });

  afterAll(async () => {
    for (const view of stack?.videos.values() ?? []) {
      if (view.encoderPid !== undefined) encoderPids.push(view.encoderPid);
      if (view.childPid !== process.pid) encoderPids.push(view.childPid);
    }
    await viewer?.close();
    await stack?.stop();
    await broker?.stop();
    expect(encoderPids.filter(isAlive)).toEqual([]);
  });

  it('gets a keyframe first, and a hang-up ends the view with the LED off and ffmpeg gone', async () => {
    const decision = await viewer.request(await stack.signGrant(viewer.holder));
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
    expect(stack.media.activeSessions).toEqual([]);
    const stats = stack.finalStats.get(sessionId)!;
    const viewing = stack.gpio.events.filter((event) => event.led === 'viewing');
    expect(viewing.at(-2)!.atMs).toBeLessThanOrEqual(stats.firstForwardedAtMs!);
    expect(viewing.at(-1)!.atMs).toBeGreaterThanOrEqual(stats.lastForwardedAtMs!);
  });

  it('ends a granted view whose console never answers as peer-gone after the negotiation deadline', async () => {
    viewer.answerOffers = false;
    try {
      const decision = await viewer.request(await stack.signGrant(viewer.holder));
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

  it('ignores signalling for a session that is not running, and counts it', async () => {
    const rejectedBefore = stack.service.inboundRejected;
    const strayBefore = stack.service.supervisor.strayMessages;
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
    // The oracle is the count of stray messages: it proves the answer arrived, and was ignored.
    await waitUntil(() => stack.service.supervisor.strayMessages > strayBefore, 5000, 'the stray answer');
    expect(stack.service.inboundRejected).toBe(rejectedBefore);
    expect(stack.service.supervisor.phase).toBe('idle');
    expect(stack.gpio.viewingLed.value).toBe(false);
  });

  it('opens a new view after the previous one ended, each with its own ffmpeg', async () => {
    const decision = await viewer.request(await stack.signGrant(viewer.holder));
    expect(decision.decision).toBe('granted');
    expect((await viewer.nextFrame(8000)).keyframe).toBe(true);
    const ended = viewer.nextEnded(5000);
    await viewer.hangup();
    expect((await ended).reason).toBe('operator-hangup');
    expect(new Set(encoderPids).size).toBe(encoderPids.length);
  });
});

/** Local UDP ports with a socket open on this machine (from /proc/net/udp and udp6). */
function udpPortsInUse(): number[] {
  return ['/proc/net/udp', '/proc/net/udp6'].flatMap((file) =>
    readFileSync(file, 'utf8')
      .split('\n')
      .slice(1)
      .flatMap((line) => {
        const local = line.trim().split(/\s+/)[1];
        const port = local?.split(':')[1];
        return port ? [Number.parseInt(port, 16)] : [];
      }),
  );
}

describe('a second console with the same broker rights', () => {
  let broker: Broker;
  let stack: LookStack;
  let holder: MqttViewer;
  let intruder: MqttViewer;

  beforeAll(async () => {
    broker = await startBroker({ plain: true });
    stack = await startLookStack({
      brokerUrl: broker.plainUrl!,
      log: silentLogger(),
      loopbackOnly: true,
      camera: { width: 320, height: 240, fps: 15 },
      negotiationTimeoutMs: 4000,
    });
    await stack.setSchedule('open');
    holder = await MqttViewer.connect(broker.plainUrl!, broker.plainOptions('console-1'), stack.deviceId);
    intruder = await MqttViewer.connect(broker.plainUrl!, broker.plainOptions('console-2'), stack.deviceId);
    // The intruder answers every offer it sees, at once; the grant holder is slow.
    intruder.answerAnyOffer = true;
  });

  afterAll(async () => {
    await holder?.close();
    await intruder?.close();
    await stack?.stop();
    await broker?.stop();
  });

  afterEach(async () => {
    intruder.rewriteAnswer = undefined;
    holder.answerDelayMs = 0;
    holder.answerAfter = undefined;
    await holder.closePeer();
    await intruder.closePeer();
    if (stack.service.supervisor.phase !== 'idle') {
      const ended = holder.nextEnded(5000);
      await holder.hangup();
      await ended;
    }
  });

  it('answers first and gets no picture: its answer does not carry the fingerprint the grant names', async () => {
    const refused: string[] = [];
    // The holder answers only once the intruder's answer has been refused: the intruder is first.
    holder.answerAfter = new Promise<void>((resolve) =>
      stack.service.supervisor.on('signalRefused', ({ signal, reason }) => {
        refused.push(`${signal}:${reason}`);
        if (signal === 'answer' && reason === 'fingerprint-mismatch') resolve();
      }),
    );
    const decision = await holder.request(await stack.signGrant(holder.holder));
    expect(decision.decision).toBe('granted');
    await waitUntil(
      () => refused.includes('answer:fingerprint-mismatch'),
      5000,
      'the intruder answer refused',
    );
    const first = await holder.nextFrame(8000);
    expect(first.keyframe).toBe(true);
    expect(intruder.frames).toEqual([]);
    expect(intruder.pc?.connectionState).not.toBe('connected');
  });

  /** The holder asks (and stays silent); the look ends peer-gone and no packet left for anyone. */
  async function expectNoPictureForIntruder(): Promise<void> {
    const ended = holder.nextEnded(20_000);
    const decision = await holder.request(await stack.signGrant(holder.holder));
    expect(decision.decision).toBe('granted');
    expect((await ended).reason).toBe('peer-gone');
    expect(intruder.frames).toEqual([]);
    expect(stack.finalStats.get(decision.sessionId!)?.packetsForwarded).toBe(0);
  }

  it('gets no picture by copying the grant holder fingerprint into its answer: DTLS fails for it', async () => {
    // The holder stays silent, so the intruder's answer is the one taken whatever the timing.
    holder.answerOffers = false;
    // The intruder's answer claims the holder's certificate; its DTLS handshake cannot prove it.
    intruder.rewriteAnswer = (sdp) =>
      sdp.replace(/a=fingerprint:sha-256 \S+/g, `a=fingerprint:sha-256 ${holder.identity.fingerprint}`);
    try {
      await expectNoPictureForIntruder();
    } finally {
      holder.answerOffers = true;
    }
  });

  it.each([
    ['client', false],
    ['server', true],
  ])(
    "gets no picture with the holder's certificate but not its key, as the DTLS %s",
    async (_role, asServer) => {
      // The certificate is public (every DTLS 1.2 handshake carries it in the clear), so the intruder's
      // answer names the grant's fingerprint; only the handshake's signatures need the private key.
      holder.answerOffers = false;
      const own = intruder.identity.certificate;
      intruder.identity.certificate = new RTCCertificate(
        own.privateKey,
        holder.identity.certificate.certPem,
        own.signatureHash,
      );
      intruder.dtlsServer = asServer;
      try {
        await expectNoPictureForIntruder();
      } finally {
        intruder.identity.certificate = own;
        intruder.dtlsServer = false;
        holder.answerOffers = true;
      }
    },
  );

  it('cannot hang up a look it does not hold; the holder can, and the audit says on whose word', async () => {
    const refused: string[] = [];
    stack.service.supervisor.on('signalRefused', ({ signal, reason }) => refused.push(`${signal}:${reason}`));
    intruder.answerOffers = false;
    try {
      const decision = await holder.request(await stack.signGrant(holder.holder));
      expect(decision.decision).toBe('granted');
      await holder.nextFrame(8000);
      const sessionId = decision.sessionId!;
      await intruder.hangup(sessionId, 'a-secret-the-intruder-made-up-itself');
      await waitUntil(() => refused.includes('hangup:bad-hangup-secret'), 5000, 'the forged hang-up refused');
      const framesBefore = holder.frames.length;
      await holder.nextFrame(5000);
      expect(holder.frames.length).toBeGreaterThan(framesBefore);
      const ended = holder.nextEnded(5000);
      await holder.hangup();
      expect(await ended).toMatchObject({ reason: 'operator-hangup', endedBy: 'grant-holder' });
    } finally {
      intruder.answerOffers = true;
    }
  });

  it('floods the look with candidates and changes nothing: host names, wrong ufrags and excess are refused', async () => {
    intruder.answerOffers = false;
    const ended: Array<{ reason: string; refused: Record<string, number> }> = [];
    stack.service.supervisor.on('viewEnded', ({ reason, refusedSignals }) =>
      ended.push({ reason, refused: refusedSignals }),
    );
    try {
      const decision = await holder.request(await stack.signGrant(holder.holder));
      const sessionId = decision.sessionId!;
      await holder.nextFrame(8000);
      const ufrag = /a=ice-ufrag:(\S+)/.exec(holder.pc?.localDescription?.sdp ?? '')?.[1];
      expect(ufrag).toBeDefined();
      const flood = [];
      for (let i = 0; i < 600; i += 1) {
        const kind = i % 3;
        const candidate =
          kind === 0
            ? `candidate:${i} 1 udp 2122260223 host-${i}.local 5353 typ host`
            : `candidate:${i} 1 udp 2122260223 127.0.0.${1 + (i % 200)} ${20_000 + i} typ host`;
        flood.push(
          intruder.sendRaw({
            type: 'candidate',
            sessionId,
            // A third with the holder's ufrag (copied from the holder's trickle), the rest with none.
            candidate: {
              candidate,
              sdpMid: '0',
              sdpMLineIndex: 0,
              ...(kind === 2 ? { usernameFragment: ufrag } : {}),
            },
          }),
        );
      }
      await Promise.all(flood);
      const framesBefore = holder.frames.length;
      await holder.nextFrame(5000);
      expect(holder.frames.length).toBeGreaterThan(framesBefore);
      const done = holder.nextEnded(5000);
      await holder.hangup();
      await done;
      const refused = ended.at(-1)!.refused;
      // 200 host names and 200 without a ufrag refused; of the 200 with the ufrag, all past 32 remote
      // candidates (the answer's and the holder's trickle count too) are refused as too many.
      expect(refused['not-an-ip-address']).toBe(200);
      expect(refused['ufrag-mismatch']).toBe(200);
      expect(refused['too-many-candidates']).toBeGreaterThanOrEqual(200 - 32);
      // No host name was resolved: nothing in this process listens on mDNS's port.
      expect(udpPortsInUse()).not.toContain(5353);
    } finally {
      intruder.answerOffers = true;
    }
  });
});
