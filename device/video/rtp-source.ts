// The loopback hop between ffmpeg and WebRTC: a UDP socket bound to 127.0.0.1 on an ephemeral port
// receives ffmpeg's RTP and writes it into the werift track that the peer connection sends. Every packet
// passes the `gate` first, a last line of defence for the privacy invariant (no video while the view
// is not allowed), and the first and last forwarded instants are kept so callers can prove that the
// viewing LED was lit for every packet that left.

import { createSocket, type Socket } from 'node:dgram';
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { type MediaStreamTrack, RtpPacket } from 'werift';

/** The part of a werift track this module writes to. */
export type RtpSink = Pick<MediaStreamTrack, 'writeRtp'>;

export interface RtpSourceStats {
  packetsForwarded: number;
  packetsDropped: number;
  /** Clock reading (ms) when the first packet was forwarded, if any was. */
  firstForwardedAtMs: number | undefined;
  /** Clock reading (ms) when the last packet was forwarded, if any was. */
  lastForwardedAtMs: number | undefined;
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
  /** Checked for every packet; false drops it. */
  gate: () => boolean;
  /** Injected clock in ms; default Date.now. */
  now?: (() => number) | undefined;
}

export interface RtpSourceOptions {
  /** Only packets of this payload type are media; anything else (ffmpeg's RTCP) is dropped. */
  payloadType: number;
  /** RTP clock rate, for keeping timestamps continuous across encoder restarts. */
  clockRate?: number | undefined;
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

export class RtpSource extends EventEmitter<RtpSourceEvents> {
  readonly #log: Logger;
  readonly #track: RtpSink;
  readonly #gate: () => boolean;
  readonly #now: () => number;
  readonly #payloadType: number;
  readonly #clockRate: number;
  #socket: Socket | undefined;
  #closed: Promise<void> | undefined;
  #port: number | undefined;
  #continuity = initialContinuity();
  #stats: RtpSourceStats = {
    packetsForwarded: 0,
    packetsDropped: 0,
    firstForwardedAtMs: undefined,
    lastForwardedAtMs: undefined,
  };

  constructor(deps: RtpSourceDeps, options: RtpSourceOptions) {
    super();
    this.#log = deps.log;
    this.#track = deps.track;
    this.#gate = deps.gate;
    this.#now = deps.now ?? Date.now;
    this.#payloadType = options.payloadType;
    this.#clockRate = options.clockRate ?? 90_000;
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

  /** Binds 127.0.0.1 on an ephemeral port and returns the port. No-op (same port) if started. */
  async start(): Promise<number> {
    if (this.#socket !== undefined && this.#port !== undefined) return this.#port;
    const socket = createSocket({ type: 'udp4', reuseAddr: false });
    this.#socket = socket;
    this.#closed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('message', (packet) => this.#onPacket(packet));
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind({ address: '127.0.0.1', port: 0, exclusive: true }, () => {
        socket.off('error', reject);
        resolve();
      });
    });
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
    socket.removeAllListeners('message');
    socket.close();
    await closed;
    this.#log.debug({ ...this.#stats }, 'rtp source stopped');
    this.emit('stopped', this.stats);
  }

  #onPacket(packet: Buffer): void {
    if (this.#socket === undefined) return;
    if (isRtcp(packet)) return;
    if (payloadTypeOf(packet) !== this.#payloadType || !this.#gate()) {
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
    const now = this.#now();
    const mapped = continueStream(this.#continuity, rtp.header, now, this.#clockRate);
    if (mapped === undefined) {
      this.#stats.packetsDropped += 1;
      return;
    }
    this.#continuity = mapped.state;
    rtp.header.sequenceNumber = mapped.sequenceNumber;
    rtp.header.timestamp = mapped.timestamp;
    try {
      this.#track.writeRtp(rtp);
    } catch (error) {
      this.#stats.packetsDropped += 1;
      this.#log.warn({ err: error }, 'track refused rtp');
      return;
    }
    this.#stats.packetsForwarded += 1;
    this.#stats.lastForwardedAtMs = now;
    if (this.#stats.firstForwardedAtMs === undefined) {
      this.#stats.firstForwardedAtMs = now;
      this.emit('first-packet', now);
    }
  }
}
