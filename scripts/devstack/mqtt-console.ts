// A stand-in operator console in Node: asks for a look over MQTT exactly as the reference page does and
// receives the picture with a werift peer, reassembling H.264 frames. It has its own DTLS certificate and
// hang-up secret (`identity`): a grant for it names both (`holder`). Used by test/view and the benches.
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { RTCPeerConnection } from 'werift';
import {
  type SignalOffer,
  schemaVersion,
  topic,
  type ViewDecision,
  type ViewEnded,
} from '../../device/protocol/index.js';
import { h264Codec, repairDtlsRetransmissions, withoutDefaultStun } from '../../device/video/index.js';
import { type ConsoleIdentity, createConsoleIdentity, holderClaims } from './console-identity.js';
import { FrameAssembler, LOOPBACK_ICE, type ReceivedFrame } from './werift-viewer.js';

export interface LookTimings {
  requestedAtMs: number;
  decisionAtMs?: number;
  offerAtMs?: number;
  answerSentAtMs?: number;
  iceConnectedAtMs?: number;
  connectedAtMs?: number;
  firstFrameAtMs?: number;
}

/** The ICE part of the console peer's configuration. */
export interface PeerIce {
  iceServers?: Array<{ urls: string; username?: string; credential?: string }>;
  iceTransportPolicy?: 'all' | 'relay';
  iceInterfaceAddresses?: { udp4?: string };
  iceAdditionalHostAddresses?: string[];
  iceUseIpv6?: boolean;
}

export interface MqttViewerEvents {
  decision: [ViewDecision];
  /** Every RTP packet of the track, with its arrival time (ms since the epoch, this process's clock). */
  rtp: [number];
  frame: [ReceivedFrame];
  ended: [ViewEnded];
}

export class MqttViewer extends EventEmitter<MqttViewerEvents> {
  readonly client: MqttClient;
  readonly deviceId: string;
  readonly identity: ConsoleIdentity;
  pc: RTCPeerConnection | undefined;
  frames: ReceivedFrame[] = [];
  timings: LookTimings = { requestedAtMs: 0 };
  #requestId: string | undefined;
  #sessionId: string | undefined;
  /** When false, offers are left unanswered (a console that vanished). */
  answerOffers = true;
  /** When set, this console answers offers of any request (it watches for other consoles' looks). */
  answerAnyOffer = false;
  /** Waits this long before answering an offer (a slow console). */
  answerDelayMs = 0;
  /** Answers only once this has resolved (a console slower than another, whatever the load). */
  answerAfter: Promise<unknown> | undefined;
  /**
   * ICE of the answering peer: loopback only by default (tests on one machine); the network lab gives
   * the look's TURN server with `iceTransportPolicy: 'relay'`.
   */
  ice: PeerIce = LOOPBACK_ICE;
  /** Rewrites the answer's SDP before it is sent (a console that lies about its certificate). */
  rewriteAnswer: ((sdp: string) => string) | undefined;
  /** Rewrites each trickled candidate line before it is sent (a console behind a NAT it knows of). */
  rewriteCandidate: ((candidate: string) => string) | undefined;
  /** When false, the peer stays open after the device's `ended` (to see whether media still comes). */
  closeOnEnded = true;
  /** When true, this console answers as the DTLS server (`a=setup:passive`) instead of the client. */
  dtlsServer = false;
  /** Offers this console has seen, by session id (a hostile console learns session ids from them). */
  readonly offersSeen: SignalOffer[] = [];
  readonly endedSeen: ViewEnded[] = [];

  private constructor(client: MqttClient, deviceId: string, identity: ConsoleIdentity) {
    super();
    this.client = client;
    this.deviceId = deviceId;
    this.identity = identity;
    client.on('message', (_topic, payload) => {
      this.#onMessage(JSON.parse(payload.toString('utf8'))).catch(() => undefined);
    });
  }

  static async connect(url: string, options: IClientOptions, deviceId: string): Promise<MqttViewer> {
    const identity = await createConsoleIdentity();
    const client = await mqtt.connectAsync(url, { ...options, clientId: `viewer-${randomUUID()}` });
    await client.subscribeAsync(topic(deviceId, 'viewAnswer'), { qos: 1 });
    return new MqttViewer(client, deviceId, identity);
  }

  /** The grant claims that make this console the holder of a look. */
  get holder(): { fp: string; hup: string } {
    return holderClaims(this.identity);
  }

  get sessionId(): string | undefined {
    return this.#sessionId;
  }

  #send(message: object): Promise<unknown> {
    return this.client.publishAsync(
      topic(this.deviceId, 'viewRequest'),
      JSON.stringify({ schemaVersion, ...message }),
      { qos: 1 },
    );
  }

  /** Publishes a request and resolves with the device's decision. */
  async request(grant: string): Promise<ViewDecision> {
    await this.closePeer();
    this.frames = [];
    this.#requestId = `req-${randomUUID()}`;
    this.#sessionId = undefined;
    const decided = new Promise<ViewDecision>((resolve) => this.once('decision', resolve));
    this.timings = { requestedAtMs: performance.timeOrigin + performance.now() };
    await this.#send({ type: 'request', requestId: this.#requestId, grant });
    return decided;
  }

  /** Hangs up with this console's secret (or `secret`, to try someone else's look). */
  hangup(sessionId = this.#sessionId, secret = this.identity.hangupSecret): Promise<unknown> {
    return this.#send({
      type: 'hangup',
      requestId: this.#requestId ?? `req-${randomUUID()}`,
      sessionId,
      secret,
    });
  }

  /** Sends raw signalling, as a hostile console might. */
  sendRaw(message: object): Promise<unknown> {
    return this.#send(message);
  }

  nextFrame(timeoutMs: number): Promise<ReceivedFrame> {
    return waitFor(this, 'frame', timeoutMs);
  }

  nextEnded(timeoutMs: number): Promise<ViewEnded> {
    return waitFor(this, 'ended', timeoutMs);
  }

  async #onMessage(message: { type?: string }): Promise<void> {
    const at = performance.timeOrigin + performance.now();
    if (message.type === 'decision') {
      const decision = message as ViewDecision;
      if (decision.requestId !== this.#requestId) return;
      this.timings.decisionAtMs = at;
      if (decision.sessionId) this.#sessionId = decision.sessionId;
      this.emit('decision', decision);
    } else if (message.type === 'offer') {
      const offer = message as SignalOffer;
      this.offersSeen.push(offer);
      if ((offer.requestId !== this.#requestId && !this.answerAnyOffer) || !this.answerOffers) return;
      this.#sessionId = offer.sessionId;
      this.timings.offerAtMs = at;
      if (this.answerDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, this.answerDelayMs));
      if (this.answerAfter) await this.answerAfter;
      await this.#answer(offer);
    } else if (message.type === 'candidate') {
      const { sessionId, candidate } = message as { sessionId: string; candidate: { candidate: string } };
      if (sessionId === this.#sessionId && candidate.candidate) await this.pc?.addIceCandidate(candidate);
    } else if (message.type === 'ended') {
      const ended = message as ViewEnded;
      this.endedSeen.push(ended);
      if (ended.sessionId !== this.#sessionId) return;
      if (this.closeOnEnded) await this.closePeer();
      this.emit('ended', ended);
    }
  }

  async #answer(offer: SignalOffer): Promise<void> {
    // This console is the DTLS client: werift's fails on a duplicate HelloVerifyRequest (a slow link).
    repairDtlsRetransmissions();
    const pc = new RTCPeerConnection({
      codecs: { video: [h264Codec(96)] },
      ...this.ice,
      certificates: [this.identity.certificate],
    });
    this.pc = pc;
    const now = () => performance.timeOrigin + performance.now();
    const assembler = new FrameAssembler();
    pc.iceConnectionStateChange.subscribe((state) => {
      if (state === 'connected') this.timings.iceConnectedAtMs ??= now();
    });
    pc.connectionStateChange.subscribe((state) => {
      if (state === 'connected') this.timings.connectedAtMs ??= now();
    });
    pc.onTrack.subscribe((track) => {
      track.onReceiveRtp.subscribe((rtp) => {
        this.emit('rtp', now());
        const frame = assembler.push(rtp, now());
        if (frame === undefined) return;
        this.timings.firstFrameAtMs ??= frame.atMs;
        this.frames.push(frame);
        this.emit('frame', frame);
      });
    });
    pc.onIceCandidate.subscribe((candidate) => {
      if (candidate === undefined) return;
      const json = candidate.toJSON();
      // The device takes a candidate only with the ufrag of the answer it took.
      const usernameFragment =
        json.usernameFragment ?? /a=ice-ufrag:(\S+)/.exec(pc.localDescription?.sdp ?? '')?.[1];
      const line =
        json.candidate && this.rewriteCandidate ? this.rewriteCandidate(json.candidate) : json.candidate;
      this.#send({
        type: 'candidate',
        sessionId: offer.sessionId,
        candidate: { ...json, candidate: line, usernameFragment },
      }).catch(() => undefined);
    });
    await pc.setRemoteDescription({ type: 'offer', sdp: offer.sdp });
    withoutDefaultStun(pc, this.ice.iceServers ?? []);
    if (this.dtlsServer)
      for (const transceiver of pc.getTransceivers()) transceiver.dtlsTransport.role = 'server';
    await pc.setLocalDescription(await pc.createAnswer());
    keepChecking(pc);
    const sdp = pc.localDescription!.sdp;
    await this.#send({ type: 'answer', sessionId: offer.sessionId, sdp: this.rewriteAnswer?.(sdp) ?? sdp });
    this.timings.answerSentAtMs = now();
  }

  async closePeer(): Promise<void> {
    const pc = this.pc;
    this.pc = undefined;
    await pc?.close();
  }

  async close(): Promise<void> {
    await this.closePeer();
    await this.client.endAsync(true);
  }
}

const failedPair = 4; // werift's CandidatePairState.FAILED
const recheckEveryMs = 1000;
const recheckForMs = 20_000;

/**
 * werift's ICE gives a pair one check of 1.55 s (RTO 50 ms, 4 retransmissions) and checks a failed pair
 * again only when a check comes in while it is failed. On the lab's bad link (losses in bursts) this
 * console's only check on the relay pair could fail while the device had already nominated that pair
 * (the device's check got through): the device's ICE was connected, this console's never, and the look
 * ended peer-gone at the device's negotiation deadline. Like a browser, which keeps checking, the console
 * checks its failed pairs again every second until ICE connects or the peer closes (bounded).
 */
function keepChecking(pc: RTCPeerConnection): void {
  const startedAt = performance.now();
  const timer = setInterval(() => {
    const done = ['connected', 'completed', 'closed'].includes(pc.iceConnectionState);
    if (done || performance.now() - startedAt > recheckForMs) {
      clearInterval(timer);
      return;
    }
    for (const transport of pc.iceTransports) {
      const connection = transport.connection as unknown as {
        checkList: Array<{ state: number; handle?: unknown }>;
        checkStart(pair: unknown): unknown;
      };
      for (const pair of connection.checkList) {
        if (pair.state === failedPair && pair.handle === undefined) pair.handle = connection.checkStart(pair);
      }
    }
  }, recheckEveryMs);
  timer.unref();
}

function waitFor<K extends 'frame' | 'ended'>(
  viewer: MqttViewer,
  event: K,
  timeoutMs: number,
): Promise<MqttViewerEvents[K][0]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      viewer.off(event, listener as never);
      reject(new Error(`no ${event} within ${timeoutMs} ms`));
    }, timeoutMs);
    const listener = (value: MqttViewerEvents[K][0]) => {
      clearTimeout(timer);
      resolve(value);
    };
    viewer.once(event, listener as never);
  });
}
