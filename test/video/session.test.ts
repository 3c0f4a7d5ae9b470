// The whole media path for real: ffmpeg's testsrc → loopback RTP → werift sender → ICE/DTLS on loopback →
// a werift receiver in the same process that reassembles H.264 frames.

import { createSocket } from 'node:dgram';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import {
  H264_FMTP,
  startVideo,
  type VideoEnd,
  type VideoSession,
  type VideoSessionSettings,
} from '../../device/video/index.js';
import { LOOPBACK_ICE, Viewer } from '../../scripts/devstack/werift-viewer.js';
import { isAlive, sleep } from '../support/process.js';

const log = pino({ level: process.env.VIDEO_LOG ?? 'silent' });

const settings = (overrides: Partial<VideoSessionSettings> = {}): VideoSessionSettings => ({
  encoder: {
    source: { kind: 'test' },
    width: 320,
    height: 240,
    fps: 15,
    encoder: 'libx264',
    // A 20 s GOP: within a test, every keyframe after the first can only come from a PLI restart.
    gopFrames: 300,
    viewMode: 'full',
  },
  peer: LOOPBACK_ICE,
  pliMinIntervalMs: 200,
  ...overrides,
});

describe('VideoSession with real ffmpeg and werift', () => {
  const sessions: VideoSession[] = [];
  const viewers: Viewer[] = [];
  afterEach(async () => {
    await Promise.all(sessions.splice(0).map((session) => session.stop()));
    await Promise.all(viewers.splice(0).map((viewer) => viewer.close()));
  });

  async function open(overrides: Partial<VideoSessionSettings> = {}, mayStream?: () => boolean) {
    const session = await startVideo(
      { log, ...(mayStream === undefined ? {} : { mayStream }) },
      settings(overrides),
    );
    sessions.push(session);
    const viewer = new Viewer();
    viewers.push(viewer);
    return { session, viewer };
  }

  it('offers only H.264 constrained baseline, send-only, with NACK, PLI and REMB feedback', async () => {
    const { session } = await open();
    const sdp = await session.createOffer();
    expect(sdp).toMatch(/^m=video \d+ UDP\/TLS\/RTP\/SAVPF 96\r?$/m);
    expect(sdp).toContain('a=rtpmap:96 H264/90000');
    expect(sdp).toContain(`a=fmtp:96 ${H264_FMTP}`);
    expect(sdp).toContain('a=rtcp-fb:96 nack\r\n');
    expect(sdp).toContain('a=rtcp-fb:96 nack pli');
    expect(sdp).toContain('a=rtcp-fb:96 goog-remb');
    expect(sdp).toContain('a=sendonly');
    expect(sdp).not.toMatch(/VP8|VP9|AV1/);
    // No ICE server is configured by default, so only host candidates: nothing asked of a public server.
    const candidates = sdp.match(/^a=candidate:.*$/gm) ?? [];
    expect(candidates.some((line) => line.includes(' 127.0.0.1 '))).toBe(true);
    expect(candidates.every((line) => line.includes(' typ host'))).toBe(true);
  });

  it('sends nothing before the viewer connects, and the first frame received is a keyframe', async () => {
    const { session, viewer } = await open();
    const first = viewer.nextFrame(() => true, 8000);
    await viewer.connect(session);
    const frame = await first;
    expect(frame.keyframe).toBe(true);
    expect(frame.nalTypes.indexOf(7)).toBeGreaterThanOrEqual(0);
    expect(frame.nalTypes.indexOf(7)).toBeLessThan(frame.nalTypes.indexOf(5));
    const { offerAtMs, connectedAtMs, encoderSpawnedAtMs, firstPacketAtMs } = session.timings;
    // The encoder starts with the offer, so its start-up overlaps ICE and DTLS...
    expect(encoderSpawnedAtMs).toBeLessThanOrEqual(connectedAtMs!);
    expect(offerAtMs).toBeDefined();
    // ...but nothing leaves before the viewer is connected.
    expect(firstPacketAtMs).toBeGreaterThanOrEqual(connectedAtMs!);
  });

  it('a viewer that connects while a keyframe is held gets it first, at once', async () => {
    const { session, viewer } = await open();
    const first = viewer.nextFrame(() => true, 8000);
    // Long enough for ffmpeg's first keyframe to arrive and be held, well inside the hold limit.
    await viewer.connect(session, { answerDelayMs: 500 });
    const frame = await first;
    expect(frame.keyframe).toBe(true);
    expect(frame.nalTypes.indexOf(7)).toBeLessThan(frame.nalTypes.indexOf(5));
    const { connectedAtMs, firstReceivedAtMs, firstPacketAtMs } = session.timings;
    // The keyframe reached the hop before the viewer was connected, and left only once it was: held.
    expect(firstReceivedAtMs).toBeLessThan(connectedAtMs!);
    expect(firstPacketAtMs!).toBeGreaterThanOrEqual(connectedAtMs!);
  });

  it('a viewer that connects after the held keyframe went stale gets a fresh keyframe first', async () => {
    const { session, viewer } = await open();
    const firstPid = await (async () => {
      const offered = viewer.connect(session, { answerDelayMs: 1800 });
      await sleep(1000);
      const pid = session.encoderPid;
      await offered;
      return pid;
    })();
    const frame = await viewer.nextFrame(() => true, 8000);
    expect(frame.keyframe).toBe(true);
    expect(frame.nalTypes.indexOf(7)).toBeLessThan(frame.nalTypes.indexOf(5));
    // The GOP is 20 s, so that keyframe came from a restart.
    expect(session.encoderPid).not.toBe(firstPid);
  });

  it('answers a PLI from the viewer with a new keyframe long before the GOP would', async () => {
    const { session, viewer } = await open();
    await viewer.connect(session);
    await viewer.nextFrame((frame) => frame.keyframe, 8000);
    // Some delta frames first, so the next keyframe can only be the PLI's.
    await viewer.nextFrame((frame) => !frame.keyframe, 3000);
    const firstPid = session.encoderPid;
    const framesBefore = viewer.frames.length;
    await viewer.sendPli();
    const keyframe = await viewer.nextFrame((frame) => frame.keyframe, 4000);
    expect(keyframe.nalTypes.indexOf(7)).toBeLessThan(keyframe.nalTypes.indexOf(5));
    expect(session.encoderPid).not.toBe(firstPid);
    // The stream stays one continuous sequence across the restart (no gap for the receiver to NACK).
    const frames = viewer.frames.slice(framesBefore - 1);
    expect(frames.length).toBeGreaterThan(1);
    const delta = frames.at(-1)!.sequenceNumber - frames[0]!.sequenceNumber;
    expect(delta).toBeGreaterThan(0);
    expect(delta).toBeLessThan(200);
    expect(session.state).toBe('streaming');
  });

  it('restarts the encoder once for a burst of PLIs inside the rate limit', async () => {
    const { session, viewer } = await open({ pliMinIntervalMs: 1500 });
    await viewer.connect(session);
    await viewer.nextFrame((frame) => frame.keyframe, 8000);
    // Wait out the limit that counts from the first start.
    await sleep(1500);
    const framesBefore = viewer.frames.length;
    await viewer.sendPli();
    await viewer.sendPli();
    await sleep(100);
    await viewer.sendPli();
    await sleep(1000);
    expect(viewer.frames.slice(framesBefore).filter((frame) => frame.keyframe)).toHaveLength(1);
  });

  it('leaves no ffmpeg process and no open RTP socket after stop, and forwards only between start and stop', async () => {
    const events: Array<[string, number]> = [];
    let clock = 0;
    const now = (): number => ++clock;
    // This test's own record of when it started and stopped the session.
    events.push(['started', now()]);
    const session = await startVideo({ log, now }, settings());
    sessions.push(session);
    const viewer = new Viewer();
    viewers.push(viewer);
    await viewer.connect(session);
    await viewer.nextFrame((frame) => frame.keyframe, 8000);
    await sleep(300);
    const pid = session.encoderPid;
    expect(pid).toBeDefined();
    const stats = await session.stop();
    events.push(['stopped', now()]);
    await session.stop();

    expect(isAlive(pid!)).toBe(false);
    expect(session.encoderPid).toBeUndefined();
    expect(session.state).toBe('stopped');
    expect(stats.packetsForwarded).toBeGreaterThan(0);
    // The session's own clock stamps against the moments this test started and stopped it (the LED
    // order in a look is the supervisor's and is checked end to end in test/view and test/e2e).
    const startedAt = events[0]![1];
    const stoppedAt = events[1]![1];
    expect(stats.firstForwardedAtMs).toBeGreaterThan(startedAt);
    expect(stats.lastForwardedAtMs).toBeLessThan(stoppedAt);
    // No packet arrives at the viewer once stop() has resolved.
    const packets = viewer.packets;
    await sleep(300);
    expect(viewer.packets).toBe(packets);
  });

  it('frees its loopback RTP port on stop', async () => {
    const { session, viewer } = await open();
    await viewer.connect(session);
    await viewer.nextFrame(() => true, 8000);
    // The port is the one ffmpeg sends to; find it from ffmpeg's command line before stopping.
    const pid = session.encoderPid!;
    const { readFile } = await import('node:fs/promises');
    const cmdline = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
    const url = cmdline.find((arg) => arg.startsWith('rtp://'))!;
    const port = Number(new URL(url).port);
    await session.stop();
    const probe = createSocket('udp4');
    try {
      await new Promise<void>((resolve, reject) => {
        probe.once('error', reject);
        probe.bind({ port, address: '127.0.0.1', exclusive: true }, () => resolve());
      });
    } finally {
      probe.close();
    }
  });

  it('reports camera-failure when ffmpeg dies, and stops forwarding at once', async () => {
    const { session, viewer } = await open();
    const ended = new Promise<VideoEnd>((resolve) => session.once('end', resolve));
    await viewer.connect(session);
    await viewer.nextFrame(() => true, 8000);
    process.kill(session.encoderPid!, 'SIGKILL');
    const end = await ended;
    expect(end.reason).toBe('camera-failure');
    expect(end.detail).toMatch(/SIGKILL/);
    const forwarded = session.stats.packetsForwarded;
    await sleep(200);
    expect(session.stats.packetsForwarded).toBe(forwarded);
    await session.stop();
    expect(session.state).toBe('stopped');
  });

  it('forwards nothing while the core says the view may not stream', async () => {
    const { session, viewer } = await open({}, () => false);
    await viewer.connect(session);
    await sleep(1500);
    expect(session.encoderPid).toBeDefined();
    expect(session.stats.packetsForwarded).toBe(0);
    expect(session.stats.packetsDropped).toBeGreaterThan(0);
    expect(viewer.packets).toBe(0);
  });

  it('reports viewer-gone when the viewer stops sending receiver reports', async () => {
    const { session, viewer } = await open({
      peer: { ...LOOPBACK_ICE, receiverReportTimeoutMs: 1500, livenessCheckMs: 100 },
    });
    const ended = new Promise<VideoEnd>((resolve) => session.once('end', resolve));
    await viewer.connect(session);
    await viewer.nextFrame(() => true, 8000);
    await viewer.close();
    const end = await ended;
    expect(end.reason).toBe('viewer-gone');
  });
});
