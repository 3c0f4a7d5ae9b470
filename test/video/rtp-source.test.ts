// The loopback RTP hop: what it forwards, what it drops, and that stopping closes the socket.

import { createSocket, type Socket } from 'node:dgram';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { RtpHeader, RtpPacket } from 'werift';
import { continueStream, keyframeNals, RtpSource, type RtpSourceStats } from '../../device/video/index.js';
import { initialContinuity } from '../../device/video/rtp-source.js';

const log = pino({ level: 'silent' });

const rtp = (
  ssrc: number,
  sequenceNumber: number,
  timestamp: number,
  payloadType = 96,
  payload: Buffer = Buffer.from([0x65, 1, 2, 3]),
): Buffer =>
  new RtpPacket(
    new RtpHeader({ ssrc, sequenceNumber, timestamp, payloadType, marker: true }),
    payload,
  ).serialize();

/** Payloads as ffmpeg's RTP muxer packs H.264: SPS+PPS aggregated, a fragmented IDR, a delta slice. */
const SPS_PPS = Buffer.from([24, 0, 3, 0x67, 1, 2, 0, 2, 0x68, 1]);
const IDR_FIRST = Buffer.from([0x7c, 0x85, 9, 9]);
const IDR_REST = Buffer.from([0x7c, 0x45, 9, 9]);
const DELTA = Buffer.from([0x41, 9, 9]);

describe('keyframeNals', () => {
  it('finds an SPS inside a STAP-A and the first fragment of an IDR', () => {
    expect(keyframeNals(SPS_PPS)).toEqual({ sps: true, idrStart: false });
    expect(keyframeNals(IDR_FIRST)).toEqual({ sps: false, idrStart: true });
    expect(keyframeNals(Buffer.from([0x65, 1]))).toEqual({ sps: false, idrStart: true });
  });

  it('does not take a later IDR fragment, a delta slice or an empty payload for a keyframe start', () => {
    for (const payload of [IDR_REST, DELTA, Buffer.alloc(0), Buffer.from([24, 0, 9])]) {
      expect(keyframeNals(payload)).toEqual({ sps: false, idrStart: false });
    }
  });
});

describe('continueStream', () => {
  const accepting = (ssrc: number) => ({ ...initialContinuity(), acceptedSsrc: ssrc });

  it('passes the first run through unchanged', () => {
    const out = continueStream(accepting(1), { ssrc: 1, sequenceNumber: 500, timestamp: 9000 }, 0, 90_000);
    expect(out).toMatchObject({ sequenceNumber: 500, timestamp: 9000 });
  });

  it('drops packets of an SSRC that is not accepted', () => {
    expect(
      continueStream(accepting(1), { ssrc: 2, sequenceNumber: 1, timestamp: 1 }, 0, 90_000),
    ).toBeUndefined();
    expect(
      continueStream(initialContinuity(), { ssrc: 1, sequenceNumber: 1, timestamp: 1 }, 0, 90_000),
    ).toBeUndefined();
  });

  it('splices a restarted run on after the last packet sent, advancing time by the gap', () => {
    const first = continueStream(
      accepting(1),
      { ssrc: 1, sequenceNumber: 65535, timestamp: 0xfffffff0 },
      1000,
      90_000,
    );
    if (first === undefined) throw new Error('dropped');
    const restarted = { ...first.state, acceptedSsrc: 2 };
    const next = continueStream(restarted, { ssrc: 2, sequenceNumber: 12345, timestamp: 777 }, 1500, 90_000);
    expect(next).toMatchObject({ sequenceNumber: 0, timestamp: (0xfffffff0 + 45_000) >>> 0 });
    const after = continueStream(
      next!.state,
      { ssrc: 2, sequenceNumber: 12346, timestamp: 777 + 6000 },
      1566,
      90_000,
    );
    expect(after).toMatchObject({ sequenceNumber: 1, timestamp: (0xfffffff0 + 51_000) >>> 0 });
  });
});

describe('RtpSource', () => {
  const owned: Array<{ stop(): Promise<void> } | Socket> = [];
  afterEach(async () => {
    for (const thing of owned.splice(0)) {
      if ('close' in thing) thing.close();
      else await thing.stop();
    }
  });

  async function setup(gate: () => boolean = () => true) {
    const written: RtpPacket[] = [];
    let clock = 1000;
    const source = new RtpSource(
      { log, track: { writeRtp: (packet) => written.push(packet as RtpPacket) }, gate, now: () => clock },
      { payloadType: 96 },
    );
    owned.push(source);
    const port = await source.start();
    const sender = createSocket('udp4');
    owned.push(sender);
    const send = async (packet: Buffer): Promise<void> => {
      await new Promise<void>((resolve) => sender.send(packet, port, '127.0.0.1', () => resolve()));
    };
    /** Waits until `count` packets were seen (forwarded or dropped). */
    const settle = async (count: number): Promise<void> => {
      for (let i = 0; i < 100; i++) {
        const { packetsForwarded, packetsDropped } = source.stats;
        if (packetsForwarded + packetsDropped >= count) return;
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    };
    return { source, port, written, send, settle, setClock: (ms: number) => (clock = ms) };
  }

  it('listens on loopback only, on an ephemeral port', async () => {
    const { source, port } = await setup();
    expect(port).toBeGreaterThan(0);
    expect(source.listening).toBe(true);
    // Not reachable on any other address: a second socket can take the same port on the wildcard-free
    // loopback alias 127.0.0.2, which it could not if the source had bound 0.0.0.0.
    const other = createSocket('udp4');
    owned.push(other);
    await new Promise<void>((resolve, reject) => {
      other.once('error', reject);
      other.bind(port, '127.0.0.2', () => resolve());
    });
  });

  it('forwards packets of the accepted SSRC and records the first and last instants', async () => {
    const { source, written, send, settle, setClock } = await setup();
    const firsts: number[] = [];
    source.on('first-packet', (atMs) => firsts.push(atMs));
    source.acceptSsrc(7);
    setClock(2000);
    await send(rtp(7, 1, 100));
    await settle(1);
    setClock(2500);
    await send(rtp(7, 2, 200));
    await settle(2);
    expect(written.map((packet) => packet.header.sequenceNumber)).toEqual([1, 2]);
    expect(firsts).toEqual([2000]);
    expect(source.stats).toMatchObject({
      packetsForwarded: 2,
      firstForwardedAtMs: 2000,
      lastForwardedAtMs: 2500,
    });
  });

  it('drops every packet while the gate is shut', async () => {
    let open = false;
    const { source, written, send, settle } = await setup(() => open);
    source.acceptSsrc(7);
    await send(rtp(7, 1, 100));
    await settle(1);
    open = true;
    await send(rtp(7, 2, 200));
    await settle(2);
    expect(written.map((packet) => packet.header.sequenceNumber)).toEqual([2]);
    expect(source.stats.packetsDropped).toBe(1);
  });

  it('drops other SSRCs, other payload types and RTCP', async () => {
    const { source, written, send, settle } = await setup();
    source.acceptSsrc(7);
    await send(rtp(8, 1, 100));
    await send(rtp(7, 1, 100, 97));
    await send(Buffer.from([0x80, 200, 0, 6, 0, 0, 0, 7, ...new Array(20).fill(0)]));
    await send(rtp(7, 2, 100));
    await settle(3);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(written).toHaveLength(1);
  });

  it('closes its socket on stop, reports final stats once, and forwards nothing after', async () => {
    const { source, port, written, send, settle } = await setup();
    source.acceptSsrc(7);
    await send(rtp(7, 1, 100));
    await settle(1);
    const stopped: RtpSourceStats[] = [];
    source.on('stopped', (stats) => stopped.push(stats));
    await source.stop();
    await source.stop();
    expect(source.listening).toBe(false);
    expect(stopped).toHaveLength(1);
    await send(rtp(7, 2, 200));
    // The port is free again: binding it exclusively succeeds only if the source's socket is closed.
    const probe = createSocket('udp4');
    owned.push(probe);
    await new Promise<void>((resolve, reject) => {
      probe.once('error', reject);
      probe.bind({ port, address: '127.0.0.1', exclusive: true }, () => resolve());
    });
    expect(written).toHaveLength(1);
  });

  describe('with keyframeFirst', () => {
    async function setupKeyed(state: { open: boolean; hold: boolean }) {
      const written: RtpPacket[] = [];
      const source = new RtpSource(
        {
          log,
          track: { writeRtp: (packet) => written.push(packet as RtpPacket) },
          gate: () => state.open,
          hold: () => state.hold,
          now: () => 1000,
        },
        { payloadType: 96, keyframeFirst: true, holdMaxPackets: 4 },
      );
      owned.push(source);
      const port = await source.start();
      const sender = createSocket('udp4');
      owned.push(sender);
      const send = async (seq: number, ts: number, payload: Buffer): Promise<void> => {
        await new Promise<void>((resolve) =>
          sender.send(rtp(7, seq, ts, 96, payload), port, '127.0.0.1', () => resolve()),
        );
        // Loopback delivery is quick; give the source's message handler its turn.
        await new Promise((resolve) => setTimeout(resolve, 10));
      };
      source.acceptSsrc(7);
      return { source, written, send };
    }

    it('forwards nothing before the start of a keyframe', async () => {
      const { written, send } = await setupKeyed({ open: true, hold: false });
      await send(1, 100, DELTA);
      await send(2, 200, IDR_REST);
      await send(3, 300, SPS_PPS);
      await send(4, 300, IDR_FIRST);
      await send(5, 400, DELTA);
      expect(written.map((packet) => packet.header.sequenceNumber)).toEqual([3, 4, 5]);
    });

    it('holds from the latest keyframe while shut, and release sends it ahead of anything newer', async () => {
      const state = { open: false, hold: true };
      const { source, written, send } = await setupKeyed(state);
      await send(1, 100, DELTA);
      await send(2, 200, SPS_PPS);
      await send(3, 200, IDR_FIRST);
      await send(4, 300, DELTA);
      expect(written).toEqual([]);
      expect(source.release()).toEqual({ flushedPackets: 0, keyframeSeen: true });
      state.open = true;
      expect(source.release()).toEqual({ flushedPackets: 3, keyframeSeen: true });
      await send(5, 400, DELTA);
      expect(written.map((packet) => packet.header.sequenceNumber)).toEqual([2, 3, 4, 5]);
    });

    it('gives up what it holds beyond its bound, or when holding is no longer allowed', async () => {
      const state = { open: false, hold: true };
      const { source, written, send } = await setupKeyed(state);
      await send(1, 100, SPS_PPS);
      for (let seq = 2; seq <= 5; seq++) await send(seq, 100 * seq, DELTA);
      state.open = true;
      expect(source.release().flushedPackets).toBe(0);
      state.open = false;
      await send(6, 600, SPS_PPS);
      state.hold = false;
      await send(7, 700, DELTA);
      state.open = true;
      expect(source.release().flushedPackets).toBe(0);
      expect(written).toEqual([]);
      expect(source.stats.packetsDropped).toBe(7);
    });
  });
});
