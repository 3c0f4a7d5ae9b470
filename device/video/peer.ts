// The device's side of one WebRTC connection: a werift RTCPeerConnection with a single send-only video
// transceiver. The device makes the offer so the codec stays under its control. Codec: H.264
// constrained baseline only (RFC 7742 requires every WebRTC browser to decode it, and the Pi encodes
// it in hardware); VP8 through libvpx would cost a software encode on the Pi's CPU for no viewer that
// lacks H.264, so it is deliberately not offered.
// `gone` is our own, shorter liveness verdict than ICE consent freshness (~30 s): the session layer ends
// the view on it.
// werift completes the offer only once every ICE server has answered or timed out (an unreachable TURN
// server holds it 5-6 s); the offer here waits at most `gatherDeadlineMs` for server candidates and
// trickles those that come later.

import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import {
  MediaStreamTrack,
  type RTCIceServer,
  RTCPeerConnection,
  RTCRtpCodecParameters,
  type RTCRtpTransceiver,
} from 'werift';
import { certificateFingerprint } from '../core/signalling.js';
import type { IceServer } from '../protocol/tokens.js';
import { installDtlsChanges } from './dtls.js';

/** The fmtp werift cannot derive by itself (it negotiates on mime type only), so it is spelled out. */
export const H264_FMTP = 'profile-level-id=42e01f;packetization-mode=1;level-asymmetry-allowed=1';
export const DEFAULT_PAYLOAD_TYPE = 96;

export const h264Codec = (payloadType: number): RTCRtpCodecParameters =>
  new RTCRtpCodecParameters({
    mimeType: 'video/H264',
    clockRate: 90_000,
    payloadType,
    parameters: H264_FMTP,
    rtcpFeedback: [{ type: 'nack' }, { type: 'nack', parameter: 'pli' }, { type: 'goog-remb' }],
  });

/**
 * werift-ice falls back to stun.l.google.com when it is given no STUN server, even for an explicit empty
 * list (shinyoshiaki/werift-webrtc#691, werift 0.24.4): every look would resolve that name and send it a
 * Binding request, and the offer waited for the answer or a 5 s time-out where DNS fails. The device
 * talks to no server it was not given: without a stun: entry the fallback is cleared. Call it after the
 * transceivers are added (they create the ICE transports) and before the offer.
 */
export function withoutDefaultStun(
  pc: RTCPeerConnection,
  iceServers: readonly { urls: string | string[] }[],
): void {
  const urls = iceServers.flatMap((server) => (Array.isArray(server.urls) ? server.urls : [server.urls]));
  if (urls.some((url) => url.startsWith('stun:') || url.startsWith('stuns:'))) return;
  for (const transport of pc.iceTransports) {
    (transport.connection as unknown as { stunServer: unknown }).stunServer = undefined;
  }
}

/** Why a connection is considered gone. */
export type PeerGoneReason =
  | 'failed'
  | 'closed'
  | 'disconnected'
  | 'no-receiver-reports'
  | 'fingerprint-mismatch';

/** A remote or local ICE candidate as it travels through signalling. */
export interface IceCandidateMessage {
  candidate: string;
  sdpMid?: string | undefined;
  sdpMLineIndex?: number | undefined;
  usernameFragment?: string | undefined;
}

export interface PeerEvents {
  /** A local candidate found after the offer was returned (those found before are in the offer). */
  candidate: [IceCandidateMessage];
  /** ICE and DTLS are up: media can flow. */
  connected: [];
  /** The viewer asked for a keyframe. */
  pli: [];
  /** The viewer is gone; emitted at most once. The caller closes the peer. */
  gone: [PeerGoneReason];
}

export interface PeerOptions {
  /**
   * STUN/TURN servers (werift uses the first of each kind: see ice-servers.ts). None by default: the
   * device never talks to a public server unless configured or given one in the grant.
   */
  iceServers?: readonly IceServer[] | undefined;
  /** Inclusive UDP port range for ICE (so a firewall rule can name it); default ephemeral. */
  icePortRange?: [number, number] | undefined;
  /** Restrict ICE sockets to these local addresses (tests use loopback). */
  iceInterfaceAddresses?: { udp4?: string; udp6?: string } | undefined;
  /** Host addresses to offer besides the interfaces' own (e.g. 127.0.0.1, normally excluded). */
  iceAdditionalHostAddresses?: string[] | undefined;
  iceUseIpv6?: boolean | undefined;
  payloadType?: number | undefined;
  /** How long the offer waits for STUN/TURN candidates; later ones are trickled. Default 2000 ms. */
  gatherDeadlineMs?: number | undefined;
  /** How long connectionState may stay 'disconnected' before the viewer counts as gone. */
  disconnectedGraceMs?: number | undefined;
  /** How long after connecting, or after the last RTCP from the viewer, before it counts as gone. */
  receiverReportTimeoutMs?: number | undefined;
  /** How often the receiver-report deadline is checked. */
  livenessCheckMs?: number | undefined;
  /**
   * The console's DTLS certificate fingerprint from the grant. werift already checks the certificate
   * against the answer's a=fingerprint; this checks it against the grant itself once the connection is
   * up, before it counts as connected, so no packet can reach another certificate's holder.
   */
  expectRemoteFingerprint?: string | undefined;
}

export interface PeerDeps {
  log: Logger;
  /** Injected clock in ms; default Date.now. */
  now?: (() => number) | undefined;
}

export class Peer extends EventEmitter<PeerEvents> {
  /** The track ffmpeg's RTP is written to (by `RtpSource`). */
  readonly track: MediaStreamTrack;
  readonly payloadType: number;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #pc: RTCPeerConnection;
  readonly #transceiver: RTCRtpTransceiver;
  readonly #disconnectedGraceMs: number;
  readonly #receiverReportTimeoutMs: number;
  readonly #livenessCheckMs: number;
  readonly #expectRemoteFingerprint: string | undefined;
  readonly #gatherDeadlineMs: number;
  /** Every local candidate werift reported, so that those missing from an early offer are trickled. */
  readonly #localCandidates: IceCandidateMessage[] = [];
  readonly #unsubscribe: Array<() => void> = [];
  #offerReturned = false;
  #closed: Promise<void> | undefined;
  #goneEmitted = false;
  #connected = false;
  #disconnectedTimer: NodeJS.Timeout | undefined;
  #livenessTimer: NodeJS.Timeout | undefined;
  #lastHeardAtMs = 0;
  /** The ICE ufrag of the answer that was applied. */
  #remoteUfrag: string | undefined;

  constructor(deps: PeerDeps, options: PeerOptions = {}) {
    super();
    this.#log = deps.log;
    this.#now = deps.now ?? Date.now;
    this.payloadType = options.payloadType ?? DEFAULT_PAYLOAD_TYPE;
    this.#disconnectedGraceMs = options.disconnectedGraceMs ?? 3000;
    this.#receiverReportTimeoutMs = options.receiverReportTimeoutMs ?? 5000;
    this.#livenessCheckMs = options.livenessCheckMs ?? 500;
    this.#expectRemoteFingerprint = options.expectRemoteFingerprint;
    this.#gatherDeadlineMs = options.gatherDeadlineMs ?? 2000;
    // werift's DTLS with the device's repairs and checks (dtls.ts).
    installDtlsChanges();
    this.#pc = new RTCPeerConnection({
      codecs: { video: [h264Codec(this.payloadType)] },
      iceServers: (options.iceServers ?? []).map(
        (server): RTCIceServer => ({
          urls: server.urls,
          ...(server.username === undefined ? {} : { username: server.username }),
          ...(server.credential === undefined ? {} : { credential: server.credential }),
        }),
      ),
      icePortRange: options.icePortRange,
      iceInterfaceAddresses: options.iceInterfaceAddresses,
      iceAdditionalHostAddresses: options.iceAdditionalHostAddresses,
      iceUseIpv6: options.iceUseIpv6 ?? true,
      bundlePolicy: 'max-bundle',
      // Every console that can read the offer knows the device's ICE password and could send it
      // connectivity checks: answer only those from the console whose answer was taken (the sender's
      // ufrag is the second half of USERNAME), and none before an answer is taken.
      iceFilterStunResponse: (message) => {
        const username = message.getAttributeValue('USERNAME');
        const sender = typeof username === 'string' ? username.split(':')[1] : undefined;
        return this.#remoteUfrag !== undefined && sender === this.#remoteUfrag;
      },
    });
    this.track = new MediaStreamTrack({ kind: 'video' });
    this.#transceiver = this.#pc.addTransceiver(this.track, { direction: 'sendonly' });
    withoutDefaultStun(this.#pc, options.iceServers ?? []);
    const sender = this.#transceiver.sender;

    this.#unsubscribe.push(
      this.#pc.onIceCandidate.subscribe((candidate) => {
        if (candidate === undefined || this.#closed !== undefined) return;
        const json = candidate.toJSON();
        this.#localCandidates.push(json);
        if (this.#offerReturned) this.emit('candidate', json);
      }).unSubscribe,
      this.#pc.connectionStateChange.subscribe((state) => this.#onConnectionState(state)).unSubscribe,
      // For finding out, from the log, where a slow or failed connection spent its time.
      this.#pc.iceGatheringStateChange.subscribe((state) => this.#log.debug({ state }, 'ICE gathering'))
        .unSubscribe,
      this.#pc.iceConnectionStateChange.subscribe((state) => this.#log.debug({ state }, 'ICE connection'))
        .unSubscribe,
      sender.onPictureLossIndication.subscribe(() => {
        if (this.#closed === undefined) this.emit('pli');
      }).unSubscribe,
      sender.onRtcp.subscribe(() => {
        this.#lastHeardAtMs = this.#now();
      }).unSubscribe,
    );
  }

  /** Current werift connection state, for logs and tests. */
  get connectionState(): string {
    return this.#pc.connectionState;
  }

  /**
   * Creates and applies the offer; returns its SDP with the candidates gathered so far: all of them, or
   * those found by `gatherDeadlineMs` (the rest are emitted as `candidate` after the offer is returned).
   */
  async createOffer(): Promise<string> {
    const offer = await this.#pc.createOffer();
    const applied = this.#pc.setLocalDescription(offer).then(() => 'complete' as const);
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'deadline'>((resolve) => {
      timer = setTimeout(() => resolve('deadline'), this.#gatherDeadlineMs);
    });
    const outcome = await Promise.race([applied, deadline]).finally(() => clearTimeout(timer));
    if (outcome === 'deadline') {
      applied.catch((error: unknown) => this.#log.warn({ err: error }, 'applying the offer failed late'));
      this.#log.info({ gatherDeadlineMs: this.#gatherDeadlineMs }, 'offer sent before ICE gathering ended');
    }
    const sdp = this.#pc.localDescription?.sdp;
    if (sdp === undefined) throw new Error('werift produced no local description');
    this.#offerReturned = true;
    const missing = this.#localCandidates.filter((candidate) => !sdp.includes(candidate.candidate));
    // After the caller has sent the offer: a candidate before its offer would be dropped by the console.
    if (missing.length > 0) {
      setImmediate(() => {
        for (const candidate of missing) if (this.#closed === undefined) this.emit('candidate', candidate);
      });
    }
    return sdp;
  }

  /** Applies the viewer's answer. Rejects if it is not a valid answer to our offer. */
  async acceptAnswer(sdp: string): Promise<void> {
    this.#remoteUfrag = /^a=ice-ufrag:(\S+)/m.exec(sdp)?.[1];
    await this.#pc.setRemoteDescription({ type: 'answer', sdp });
    this.#log.debug('answer applied');
    const codec = this.#transceiver.codecs[0];
    if (codec?.mimeType.toLowerCase() !== 'video/h264') {
      throw new Error('answer did not accept H.264');
    }
  }

  /** Adds a candidate trickled by the viewer. */
  async addRemoteCandidate(candidate: IceCandidateMessage): Promise<void> {
    this.#log.debug({ type: /typ (\w+)/.exec(candidate.candidate)?.[1] }, 'remote candidate');
    await this.#pc.addIceCandidate({
      candidate: candidate.candidate,
      sdpMid: candidate.sdpMid ?? null,
      sdpMLineIndex: candidate.sdpMLineIndex ?? null,
      usernameFragment: candidate.usernameFragment ?? null,
    });
  }

  /** Closes the connection and its sockets; idempotent. Does not emit `gone`. */
  async close(): Promise<void> {
    if (this.#closed === undefined) {
      this.#clearTimers();
      for (const unsubscribe of this.#unsubscribe.splice(0)) unsubscribe();
      this.#closed = this.#pc.close().catch((error: unknown) => {
        this.#log.warn({ err: error }, 'peer connection close failed');
      });
    }
    await this.#closed;
  }

  #onConnectionState(state: RTCPeerConnection['connectionState']): void {
    if (this.#closed !== undefined) return;
    this.#log.debug({ state }, 'peer connection state');
    switch (state) {
      case 'connected':
        clearTimeout(this.#disconnectedTimer);
        this.#disconnectedTimer = undefined;
        if (!this.#connected) {
          if (!this.#remoteCertificateMatches()) {
            this.#gone('fingerprint-mismatch');
            return;
          }
          this.#connected = true;
          this.#lastHeardAtMs = this.#now();
          this.#livenessTimer = setInterval(() => this.#checkLiveness(), this.#livenessCheckMs);
          this.emit('connected');
        }
        return;
      case 'disconnected':
        if (this.#disconnectedTimer === undefined) {
          this.#disconnectedTimer = setTimeout(() => this.#gone('disconnected'), this.#disconnectedGraceMs);
        }
        return;
      case 'failed':
      case 'closed':
        this.#gone(state);
        return;
      case 'new':
      case 'connecting':
        return;
    }
  }

  #remoteCertificateMatches(): boolean {
    const expected = this.#expectRemoteFingerprint;
    if (expected === undefined) return true;
    const der = (this.#pc.dtlsTransports[0] as { dtls?: { remoteCertificate?: Uint8Array } } | undefined)
      ?.dtls?.remoteCertificate;
    const actual = der === undefined ? undefined : certificateFingerprint(der);
    if (actual === expected.toUpperCase()) return true;
    this.#log.error({ expected, actual }, "console's DTLS certificate is not the grant's");
    return false;
  }

  #checkLiveness(): void {
    if (this.#now() - this.#lastHeardAtMs > this.#receiverReportTimeoutMs) this.#gone('no-receiver-reports');
  }

  #gone(reason: PeerGoneReason): void {
    this.#clearTimers();
    if (this.#goneEmitted || this.#closed !== undefined) return;
    this.#goneEmitted = true;
    this.#log.info({ reason }, 'viewer gone');
    this.emit('gone', reason);
  }

  #clearTimers(): void {
    clearTimeout(this.#disconnectedTimer);
    clearInterval(this.#livenessTimer);
    this.#disconnectedTimer = undefined;
    this.#livenessTimer = undefined;
  }
}
