// The loopback hop between ffmpeg and WebRTC: a UDP socket bound to 127.0.0.1 on an ephemeral port
// receives ffmpeg's RTP and writes it into the werift track that the peer connection sends. Every packet
// passes the `gate` first, a last line of defence for the privacy invariant (no video while the view
// is not allowed), and the first and last forwarded instants are kept so callers can prove that the
// viewing LED was lit for every packet that left.
//
// With `keyframeFirst`, nothing is forwarded before the start of a keyframe, and while the gate is still
// shut (ICE and DTLS not up yet) but `hold` allows, the packets since the latest keyframe are kept so
// they can leave the moment the gate opens (`release`). That lets the encoder start while the viewer is
// still connecting, without the viewer's first frame being anything but a keyframe.

import { createSocket, type Socket } from 'node:dgram';
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { type MediaStreamTrack, RtpPacket } from 'werift';
import { keyframeNals } from './h264.js';

/** The part of a werift track this module writes to. */
export type RtpSink = Pick<MediaStreamTrack, 'writeRtp'>;

export interface RtpSourceStats {
  packetsForwarded: number;
  packetsDropped: number;
  /** Clock reading (ms) when the first packet was forwarded, if any was. */
  firstForwardedAtMs: number | undefined;
  /** Clock reading (ms) when the last packet was forwarded, if any was. */
  lastForwardedAtMs: number | undefined;
  /** Clock reading (ms) when the first media packet of an accepted SSRC arrived from the encoder. */
  firstReceivedAtMs: number | undefined;
}

export interface RtpSourceEvents {
  /** The first packet was handed to the track, at this clock reading (ms). */
  'first-packet': [atMs: number];
  /** The socket is closed; no packet will be forwarded after this. */
  stopped: [RtpSourceStats];
}

export interface RtpSourceDeps {
  log: Logger;
  track: RtpSink;
  /** Checked for every packet; false drops it (or holds it, see `hold`). */
  gate: () => boolean;
  /**
   * With `keyframeFirst`: while the gate is shut, may packets be kept for when it opens? False drops them
   * and anything already kept. Default: never.
   */
  hold?: (() => boolean) | undefined;
  /** Injected clock in ms; default Date.now. */
  now?: (() => number) | undefined;
}

export interface RtpSourceOptions {
  /** Only packets of this payload type are media; anything else (ffmpeg's RTCP) is dropped. */
  payloadType: number;
  /** RTP clock rate, for keeping timestamps continuous across encoder restarts. */
  clockRate?: number | undefined;
  /** H.264 only: forward nothing before the start of a keyframe, and hold (see `hold`). Default false. */
  keyframeFirst?: boolean | undefined;
  /** Bounds on what is held: a keyframe and what follows it, at most this many packets... */
  holdMaxPackets?: number | undefined;
  /** ...received within this long of the keyframe; beyond either, the next keyframe is waited for. */
  holdMaxAgeMs?: number | undefined;
}

/** What `release` did: how many held packets it sent, and whether a keyframe ever went by. */
export interface RtpRelease {
  flushedPackets: number;
  /** True once the encoder has sent a keyframe start, forwarded, held or dropped. */
  keyframeSeen: boolean;
}

/** Where the outgoing sequence stands; plain data so the rewrite below is a pure function. */
export interface Continuity {
  /** SSRC of the encoder run being forwarded; packets of any other SSRC are dropped. */
  acceptedSsrc: number | undefined;
  /** SSRC whose first packet set the current offsets. */
  segmentSsrc: number | undefined;
  seqOffset: number;
  timestampOffset: number;
  last: { seq: number; timestamp: number; atMs: number } | undefined;
}

export const initialContinuity = (): Continuity => ({
  acceptedSsrc: undefined,
  segmentSsrc: undefined,
  seqOffset: 0,
  timestampOffset: 0,
  last: undefined,
});

/**
 * Maps one incoming packet onto the outgoing stream. Each encoder run (a PLI restart) starts with fresh,
 * random sequence numbers and timestamps; a receiver would see a jump of thousands of "lost" packets, so
 * a new run's packets are shifted to follow on from the last one sent: seq + 1, and the timestamp
 * advanced by the wall time that passed. Returns undefined for a packet that must be dropped.
 */
export function continueStream(
  state: Continuity,
  header: { ssrc: number; sequenceNumber: number; timestamp: number },
  nowMs: number,
  clockRate: number,
): { state: Continuity; sequenceNumber: number; timestamp: number } | undefined {
  if (state.acceptedSsrc === undefined || header.ssrc !== state.acceptedSsrc) return undefined;
  let next = state;
  if (state.segmentSsrc !== header.ssrc) {
    const last = state.last;
    next =
      last === undefined
        ? { ...state, segmentSsrc: header.ssrc, seqOffset: 0, timestampOffset: 0 }
        : {
            ...state,
            segmentSsrc: header.ssrc,
            seqOffset: (last.seq + 1 - header.sequenceNumber) & 0xffff,
            timestampOffset:
              (last.timestamp +
                Math.max(1, Math.round(((nowMs - last.atMs) * clockRate) / 1000)) -
                header.timestamp) >>>
              0,
          };
  }
  const sequenceNumber = (header.sequenceNumber + next.seqOffset) & 0xffff;
  const timestamp = (header.timestamp + next.timestampOffset) >>> 0;
  return {
    state: { ...next, last: { seq: sequenceNumber, timestamp, atMs: nowMs } },
    sequenceNumber,
    timestamp,
  };
}

/** RTP version 2 and the payload type in the second byte; RTCP (200-206) never matches a dynamic type. */
const payloadTypeOf = (packet: Buffer): number | undefined =>
  packet.length >= 12 && packet[0] !== undefined && packet[0] >> 6 === 2
    ? (packet[1] ?? 0) & 0x7f
    : undefined;

const isRtcp = (packet: Buffer): boolean => {
  const type = packet[1];
  return type !== undefined && type >= 192 && type <= 223;
};

/** A UDP socket bound to 127.0.0.1 on an ephemeral port, for ffmpeg's RTP. */
export async function bindLoopbackUdp(): Promise<Socket> {
  const socket = createSocket({ type: 'udp4', reuseAddr: false });
  await new Promise<void>((resolve, reject) => {
    socket.once('error', (error) => {
      socket.close();
      reject(error);
    });
    socket.bind({ address: '127.0.0.1', port: 0, exclusive: true }, () => {
      socket.removeAllListeners('error');
      resolve();
    });
  });
  return socket;
}

export class RtpSource extends EventEmitter<RtpSourceEvents> {
  readonly #log: Logger;
  readonly #track: RtpSink;
  readonly #gate: () => boolean;
  readonly #now: () => number;
  readonly #payloadType: number;
  readonly #clockRate: number;
  readonly #hold: () => boolean;
  readonly #keyframeFirst: boolean;
  readonly #holdMaxPackets: number;
  readonly #holdMaxAgeMs: number;
  /** A keyframe start has been forwarded: from here on every accepted packet may go. */
  #keyed = false;
  #keyframeSeen = false;
  #held: RtpPacket[] = [];
  #heldSinceMs = 0;
  /** RTP timestamp of the latest SPS, so the IDR that follows it is not taken for a new keyframe. */
  #spsTimestamp: number | undefined;
  #socket: Socket | undefined;
  #closed: Promise<void> | undefined;
  #port: number | undefined;
  #continuity = initialContinuity();
  #stats: RtpSourceStats = {
    packetsForwarded: 0,
    packetsDropped: 0,
    firstForwardedAtMs: undefined,
    lastForwardedAtMs: undefined,
    firstReceivedAtMs: undefined,
  };

  constructor(deps: RtpSourceDeps, options: RtpSourceOptions) {
    super();
    this.#log = deps.log;
    this.#track = deps.track;
    this.#gate = deps.gate;
    this.#now = deps.now ?? Date.now;
    this.#payloadType = options.payloadType;
    this.#clockRate = options.clockRate ?? 90_000;
    this.#hold = deps.hold ?? (() => false);
    this.#keyframeFirst = options.keyframeFirst ?? false;
    this.#holdMaxPackets = options.holdMaxPackets ?? 1024;
    this.#holdMaxAgeMs = options.holdMaxAgeMs ?? 1000;
  }

  /** The bound loopback port, once started. */
  get port(): number | undefined {
    return this.#port;
  }

  /** True while the socket is open. */
  get listening(): boolean {
    return this.#socket !== undefined;
  }

  get stats(): RtpSourceStats {
    return { ...this.#stats };
  }

  /**
   * Accept packets of this SSRC from now on (the encoder run just started), dropping any other,
   * including late packets of a run that was stopped.
   */
  acceptSsrc(ssrc: number): void {
    this.#continuity = { ...this.#continuity, acceptedSsrc: ssrc >>> 0 };
  }

  /**
   * Binds 127.0.0.1 on an ephemeral port (or takes `bound`, a socket from `bindLoopbackUdp` that a
   * prepared encoder already sends to) and returns the port. No-op (same port) if started.
   */
  async start(bound?: Socket): Promise<number> {
    if (this.#socket !== undefined && this.#port !== undefined) return this.#port;
    const socket = bound ?? (await bindLoopbackUdp());
    this.#socket = socket;
    this.#closed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('message', (packet) => this.#onPacket(packet));
    socket.on('error', (error) => this.#log.warn({ err: error }, 'rtp socket error'));
    this.#port = socket.address().port;
    this.#log.debug({ port: this.#port }, 'rtp source listening on loopback');
    return this.#port;
  }

  /** Closes the socket; idempotent. Emits `stopped` with the final stats on the first call. */
  async stop(): Promise<void> {
    const socket = this.#socket;
    const closed = this.#closed;
    if (socket === undefined || closed === undefined) return;
    this.#socket = undefined;
    this.#discardHeld();
    socket.removeAllListeners('message');
    socket.close();
    await closed;
    this.#log.debug({ ...this.#stats }, 'rtp source stopped');
    this.emit('stopped', this.stats);
  }

  /**
   * The gate has just opened: sends what is held (a keyframe and what followed it) at once instead of
   * waiting for the encoder's next packet. A no-op while the gate is shut.
   */
  release(): RtpRelease {
    const flushedPackets = this.#socket !== undefined && this.#gate() ? this.#flushHeld(this.#now()) : 0;
    return { flushedPackets, keyframeSeen: this.#keyframeSeen };
  }

  #onPacket(packet: Buffer): void {
    if (this.#socket === undefined) return;
    if (isRtcp(packet)) return;
    if (payloadTypeOf(packet) !== this.#payloadType) {
      this.#stats.packetsDropped += 1;
      return;
    }
    let rtp: RtpPacket;
    try {
      rtp = RtpPacket.deSerialize(packet);
    } catch {
      this.#stats.packetsDropped += 1;
      return;
    }
    if (rtp.header.ssrc !== this.#continuity.acceptedSsrc) {
      this.#stats.packetsDropped += 1;
      return;
    }
    const now = this.#now();
    this.#stats.firstReceivedAtMs ??= now;
    const keyframeStart = this.#keyframeFirst && this.#isKeyframeStart(rtp);
    if (keyframeStart) this.#keyframeSeen = true;
    if (this.#gate()) {
      this.#flushHeld(now);
      this.#forward(rtp, keyframeStart, now);
      return;
    }
    if (!this.#keyframeFirst || !this.#hold()) {
      this.#discardHeld();
      this.#stats.packetsDropped += 1;
      return;
    }
    if (keyframeStart) {
      this.#discardHeld();
      this.#held = [rtp];
      this.#heldSinceMs = now;
      return;
    }
    const full = this.#held.length >= this.#holdMaxPackets || now - this.#heldSinceMs > this.#holdMaxAgeMs;
    if (this.#held.length === 0 || full) {
      this.#discardHeld();
      this.#stats.packetsDropped += 1;
      return;
    }
    this.#held.push(rtp);
  }

  #isKeyframeStart(rtp: RtpPacket): boolean {
    const { sps, idrStart } = keyframeNals(rtp.payload);
    if (sps) {
      this.#spsTimestamp = rtp.header.timestamp;
      return true;
    }
    return idrStart && rtp.header.timestamp !== this.#spsTimestamp;
  }

  #discardHeld(): void {
    this.#stats.packetsDropped += this.#held.length;
    this.#held = [];
  }

  #flushHeld(now: number): number {
    const held = this.#held;
    if (held.length === 0) return 0;
    this.#held = [];
    // Held packets are of the run accepted when they came; a PLI restart since then makes them stale.
    let sent = 0;
    for (const [index, rtp] of held.entries()) {
      if (rtp.header.ssrc !== this.#continuity.acceptedSsrc) {
        this.#stats.packetsDropped += 1;
        continue;
      }
      if (this.#forward(rtp, index === 0, now)) sent += 1;
    }
    return sent;
  }

  /** Sends one packet that passed the gate; returns whether it went out. */
  #forward(rtp: RtpPacket, keyframeStart: boolean, now: number): boolean {
    if (this.#keyframeFirst && !this.#keyed) {
      if (!keyframeStart) {
        this.#stats.packetsDropped += 1;
        return false;
      }
      this.#keyed = true;
    }
    const mapped = continueStream(this.#continuity, rtp.header, now, this.#clockRate);
    if (mapped === undefined) {
      this.#stats.packetsDropped += 1;
      return false;
    }
    this.#continuity = mapped.state;
    rtp.header.sequenceNumber = mapped.sequenceNumber;
    rtp.header.timestamp = mapped.timestamp;
    try {
      this.#track.writeRtp(rtp);
    } catch (error) {
      this.#stats.packetsDropped += 1;
      this.#log.warn({ err: error }, 'track refused rtp');
      return false;
    }
    this.#stats.packetsForwarded += 1;
    this.#stats.lastForwardedAtMs = now;
    if (this.#stats.firstForwardedAtMs === undefined) {
      this.#stats.firstForwardedAtMs = now;
      this.emit('first-packet', now);
    }
    return true;
  }
}
