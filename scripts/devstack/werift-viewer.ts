// A stand-in for the operator's browser: a real werift peer on loopback that answers the device's offer,
// receives the H.264 track, reassembles frames and reports each frame's NAL unit types. Shared by the
// video tests and scripts/bench/video.ts.

import { EventEmitter } from 'node:events';
import {
  H264RtpPayload,
  type MediaStreamTrack,
  RTCPeerConnection,
  type RTCRtpReceiver,
  type RtpPacket,
} from 'werift';
import { h264Codec, type VideoSession, withoutDefaultStun } from '../../device/video/index.js';

/** ICE on loopback only: the tests never reach the machine's other interfaces. */
export const LOOPBACK_ICE: {
  iceInterfaceAddresses: { udp4: string };
  iceAdditionalHostAddresses: string[];
  iceUseIpv6: boolean;
} = {
  iceInterfaceAddresses: { udp4: '127.0.0.1' },
  iceAdditionalHostAddresses: ['127.0.0.1'],
  iceUseIpv6: false,
};

export interface ReceivedFrame {
  /** NAL unit types in decoding order (7 SPS, 8 PPS, 5 IDR slice, 1 non-IDR slice). */
  nalTypes: number[];
  keyframe: boolean;
  rtpTimestamp: number;
  sequenceNumber: number;
  atMs: number;
}

/** NAL unit types found in an Annex-B byte stream. */
export function nalTypesOf(annexB: Buffer): number[] {
  const types: number[] = [];
  for (let i = 0; i + 3 < annexB.length; i++) {
    if (annexB[i] === 0 && annexB[i + 1] === 0 && annexB[i + 2] === 1) {
      const header = annexB[i + 3];
      if (header !== undefined) types.push(header & 0x1f);
      i += 3;
    }
  }
  return types;
}

/** Turns RTP packets into whole frames (marker bit ends a frame). */
export class FrameAssembler {
  #fragment: Buffer | undefined;
  #parts: Buffer[] = [];
  #broken = false;
  #lastSeq: number | undefined;

  /** Returns the frame a packet completes, if it does. Frames with a sequence gap are skipped. */
  push(rtp: RtpPacket, atMs: number): ReceivedFrame | undefined {
    const seq = rtp.header.sequenceNumber;
    if (this.#lastSeq !== undefined && ((this.#lastSeq + 1) & 0xffff) !== seq) this.#broken = true;
    this.#lastSeq = seq;
    const payload = H264RtpPayload.deSerialize(rtp.payload, this.#fragment);
    this.#fragment = payload.fragment;
    if (payload.payload !== undefined) this.#parts.push(payload.payload);
    if (!rtp.header.marker) return undefined;
    const nalTypes = nalTypesOf(Buffer.concat(this.#parts));
    const broken = this.#broken;
    this.#parts = [];
    this.#fragment = undefined;
    this.#broken = false;
    if (broken) return undefined;
    return {
      nalTypes,
      keyframe: nalTypes.includes(5),
      rtpTimestamp: rtp.header.timestamp,
      sequenceNumber: seq,
      atMs,
    };
  }
}

export interface ViewerEvents {
  frame: [ReceivedFrame];
}

export interface ViewerTimings {
  iceConnectedAtMs: number | undefined;
  connectedAtMs: number | undefined;
}

/** The receiving peer. `connect` runs offer/answer and trickle with a VideoSession in the same process. */
export class Viewer extends EventEmitter<ViewerEvents> {
  readonly pc: RTCPeerConnection;
  readonly frames: ReceivedFrame[] = [];
  readonly timings: ViewerTimings = { iceConnectedAtMs: undefined, connectedAtMs: undefined };
  packets = 0;
  #receiver: RTCRtpReceiver | undefined;
  #track: MediaStreamTrack | undefined;
  readonly #assembler = new FrameAssembler();

  constructor(readonly now: () => number = Date.now) {
    super();
    this.pc = new RTCPeerConnection({ codecs: { video: [h264Codec(96)] }, ...LOOPBACK_ICE });
    this.pc.iceConnectionStateChange.subscribe((state) => {
      if (state === 'connected' && this.timings.iceConnectedAtMs === undefined) {
        this.timings.iceConnectedAtMs = this.now();
      }
    });
    this.pc.connectionStateChange.subscribe((state) => {
      if (state === 'connected' && this.timings.connectedAtMs === undefined) {
        this.timings.connectedAtMs = this.now();
      }
    });
    this.pc.onTrack.subscribe((track) => {
      this.#track = track;
      this.#receiver = this.pc.getReceivers().find((receiver) => receiver.tracks.includes(track));
      track.onReceiveRtp.subscribe((rtp) => {
        this.packets += 1;
        const frame = this.#assembler.push(rtp, this.now());
        if (frame !== undefined) {
          this.frames.push(frame);
          this.emit('frame', frame);
        }
      });
    });
  }

  /** `answerDelayMs` stands for a slow console: the time between getting the offer and answering. */
  async connect(session: VideoSession, options: { answerDelayMs?: number } = {}): Promise<void> {
    session.on('candidate', (candidate) => {
      this.pc
        .addIceCandidate({ candidate: candidate.candidate, sdpMid: candidate.sdpMid ?? null })
        .catch(() => undefined);
    });
    this.pc.onIceCandidate.subscribe((candidate) => {
      if (candidate !== undefined) session.addRemoteCandidate(candidate.toJSON()).catch(() => undefined);
    });
    const offer = await session.createOffer();
    if (options.answerDelayMs !== undefined) {
      await new Promise((resolve) => setTimeout(resolve, options.answerDelayMs));
    }
    await this.pc.setRemoteDescription({ type: 'offer', sdp: offer });
    withoutDefaultStun(this.pc, []);
    const answer = await this.pc.createAnswer();
    await this.pc.setLocalDescription(answer);
    const sdp = this.pc.localDescription?.sdp;
    if (sdp === undefined) throw new Error('viewer has no answer');
    await session.acceptAnswer(sdp);
  }

  /** Resolves with the next frame that satisfies `predicate`, or rejects after `timeoutMs`. */
  nextFrame(predicate: (frame: ReceivedFrame) => boolean, timeoutMs: number): Promise<ReceivedFrame> {
    return new Promise((resolve, reject) => {
      const onFrame = (frame: ReceivedFrame): void => {
        if (!predicate(frame)) return;
        clearTimeout(timer);
        this.off('frame', onFrame);
        resolve(frame);
      };
      const timer = setTimeout(() => {
        this.off('frame', onFrame);
        reject(new Error(`no matching frame within ${timeoutMs} ms`));
      }, timeoutMs);
      this.on('frame', onFrame);
    });
  }

  /** Asks the device for a keyframe, as a browser does after loss. */
  async sendPli(): Promise<void> {
    const ssrc = this.#track?.ssrc;
    if (this.#receiver === undefined || ssrc === undefined) throw new Error('no track yet');
    await this.#receiver.sendRtcpPLI(ssrc);
  }

  async close(): Promise<void> {
    await this.pc.close();
  }
}
