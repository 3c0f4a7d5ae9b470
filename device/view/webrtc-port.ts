// The supervisor's ViewPort over WebRTC: one `VideoSession` per granted view. It makes the offer, sends
// it through the signalling function it is given (MQTT view/answer in the service), routes the console's
// answer and candidates to the running session by sessionId, and resolves `start` once the first packet
// has passed the frame gate. The camera is opened only by that session's ffmpeg, which starts with the
// offer (the view is granted and the LED lit by then) and stops in `stop`: outside a view nothing holds
// the camera. No video leaves before the viewer is connected, and the first that does is a keyframe.
//
// Our own negotiation deadline (10 s by default) ends a view whose viewer never connects as `peer-gone`,
// instead of leaving the LED lit (and the camera open) until ICE gives up.
import { EventEmitter } from 'node:events';
import type { EndReason } from '../core/reasons.js';
import type { Logger } from '../log/index.js';
import {
  type IceCandidate,
  type SignalInbound,
  type SignalOutbound,
  schemaVersion,
} from '../protocol/index.js';
import type { ViewPort, ViewSession } from '../supervisor/index.js';
import {
  type EncoderKind,
  type IceCandidateMessage,
  type PeerOptions,
  type RtpSourceStats,
  type SpawnFunction,
  startVideo,
  type VideoSession,
  type VideoSource,
} from '../video/index.js';

/** What the port needs from the service: a way to send signalling and to end a view it cannot carry. */
export interface ViewWiring {
  send(message: SignalOutbound): Promise<void>;
  endView(sessionId: string, reason: EndReason): void;
}

/** A view port that also takes the console's signalling. */
export interface SignallingViewPort extends ViewPort {
  onSignal(message: SignalInbound): void;
}

export interface WebRtcViewSettings {
  camera: {
    source: VideoSource;
    width: number;
    height: number;
    fps: number;
    encoder: EncoderKind;
    bitrateKbps?: number | undefined;
  };
  /** Keyframe interval in frames; default one second's worth. */
  gopFrames?: number | undefined;
  peer?: PeerOptions | undefined;
  /** From the offer to the first packet sent; default 10 s. */
  negotiationTimeoutMs?: number | undefined;
}

export interface WebRtcViewDeps extends ViewWiring {
  log: Logger;
  /** Clock for packet time stamps; the same one as the LED's, so their order can be compared. */
  now?: (() => number) | undefined;
  ffmpegPath?: string | undefined;
  spawn?: SpawnFunction | undefined;
}

export interface WebRtcViewEvents {
  /** A view's media session was created (tests and benches read its timings and stats). */
  video: [sessionId: string, video: VideoSession];
  /** A view's media is fully stopped: ffmpeg gone, RTP socket and peer connection closed. */
  stopped: [sessionId: string, stats: RtpSourceStats];
}

interface Active {
  video: VideoSession;
  answered: boolean;
  /** Candidates that came before the answer was applied. */
  early: IceCandidate[];
  /** Signalling for one session is applied strictly in arrival order. */
  queue: Promise<void>;
}

interface Starting {
  controller: AbortController;
  settled: Promise<void>;
}

export const DEFAULT_NEGOTIATION_TIMEOUT_MS = 10_000;

function toCandidateMessage(candidate: IceCandidate): IceCandidateMessage {
  return {
    candidate: candidate.candidate,
    sdpMid: candidate.sdpMid ?? undefined,
    sdpMLineIndex: candidate.sdpMLineIndex ?? undefined,
    usernameFragment: candidate.usernameFragment ?? undefined,
  };
}

function toCandidate(message: IceCandidateMessage): IceCandidate {
  return {
    candidate: message.candidate,
    ...(message.sdpMid === undefined ? {} : { sdpMid: message.sdpMid }),
    ...(message.sdpMLineIndex === undefined ? {} : { sdpMLineIndex: message.sdpMLineIndex }),
    ...(message.usernameFragment === undefined ? {} : { usernameFragment: message.usernameFragment }),
  };
}

export class WebRtcViewPort extends EventEmitter<WebRtcViewEvents> implements SignallingViewPort {
  readonly #deps: WebRtcViewDeps;
  readonly #settings: WebRtcViewSettings;
  readonly #log: Logger;
  readonly #active = new Map<string, Active>();
  readonly #starting = new Map<string, Starting>();

  constructor(deps: WebRtcViewDeps, settings: WebRtcViewSettings) {
    super();
    this.#deps = deps;
    this.#settings = settings;
    this.#log = deps.log;
  }

  /** Sessions whose media is open (at most one under the supervisor). */
  get activeSessions(): string[] {
    return [...this.#active.keys()];
  }

  async start(session: ViewSession, signal: AbortSignal): Promise<void> {
    signal.throwIfAborted();
    const controller = new AbortController();
    const forward = () => controller.abort(signal.reason);
    signal.addEventListener('abort', forward, { once: true });
    const run = this.#run(session, controller.signal);
    const starting: Starting = { controller, settled: run.then(noop, noop) };
    this.#starting.set(session.sessionId, starting);
    try {
      await run;
    } finally {
      signal.removeEventListener('abort', forward);
      if (this.#starting.get(session.sessionId) === starting) this.#starting.delete(session.sessionId);
    }
  }

  async stop(sessionId: string, reason: EndReason): Promise<void> {
    const starting = this.#starting.get(sessionId);
    if (starting) {
      starting.controller.abort(new Error(`view stopped: ${reason}`));
      await starting.settled;
    }
    const active = this.#active.get(sessionId);
    if (!active) return;
    this.#active.delete(sessionId);
    const stats = await active.video.stop();
    this.#log.info({ sessionId, reason, packets: stats.packetsForwarded }, 'view media stopped');
    this.#emitSafe('stopped', sessionId, stats);
  }

  onSignal(message: SignalInbound): void {
    const { sessionId } = message;
    const active = this.#active.get(sessionId);
    if (!active) {
      this.#log.debug({ sessionId, type: message.type }, 'signalling for no running view; ignored');
      return;
    }
    active.queue = active.queue
      .then(() => this.#apply(active, message))
      .catch((error: unknown) => {
        this.#log.warn({ sessionId, type: message.type, err: String(error) }, 'signalling not applied');
        if (message.type === 'answer') this.#deps.endView(sessionId, 'peer-gone');
      });
  }

  async #apply(active: Active, message: SignalInbound): Promise<void> {
    if (message.type === 'answer') {
      // First answer wins: a second one (a duplicate, or another console) cannot take the session over.
      if (active.answered) return;
      active.answered = true;
      await active.video.acceptAnswer(message.sdp);
      for (const candidate of active.early.splice(0)) await this.#addCandidate(active, candidate);
      return;
    }
    if (!active.answered) {
      if (active.early.length < 64) active.early.push(message.candidate);
      return;
    }
    await this.#addCandidate(active, message.candidate);
  }

  async #addCandidate(active: Active, candidate: IceCandidate): Promise<void> {
    if (candidate.candidate === '') return;
    await active.video.addRemoteCandidate(toCandidateMessage(candidate));
  }

  async #run(session: ViewSession, signal: AbortSignal): Promise<void> {
    const { sessionId } = session;
    const { camera } = this.#settings;
    const video = await startVideo(
      {
        log: this.#log.child({ sessionId }),
        now: this.#deps.now,
        mayStream: () => session.allowFrames(),
        ffmpegPath: this.#deps.ffmpegPath,
        spawn: this.#deps.spawn,
      },
      {
        encoder: {
          source: camera.source,
          width: camera.width,
          height: camera.height,
          fps: camera.fps,
          encoder: camera.encoder,
          bitrateKbps: camera.bitrateKbps,
          gopFrames: this.#settings.gopFrames ?? camera.fps,
          viewMode: session.viewMode,
        },
        peer: this.#settings.peer,
      },
    );
    // Registered before anything else can fail, so `stop` always finds and closes it.
    this.#active.set(sessionId, { video, answered: false, early: [], queue: Promise.resolve() });
    signal.throwIfAborted();
    this.#emitSafe('video', sessionId, video);
    video.on('candidate', (candidate) => {
      this.#send({ schemaVersion, type: 'candidate', sessionId, candidate: toCandidate(candidate) });
    });
    video.on('end', ({ reason }) => {
      this.#deps.endView(sessionId, reason === 'camera-failure' ? 'camera-failure' : 'peer-gone');
    });

    const timeoutMs = this.#settings.negotiationTimeoutMs ?? DEFAULT_NEGOTIATION_TIMEOUT_MS;
    await new Promise<void>((resolve, reject) => {
      const cleanup = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        video.off('streaming', onStreaming);
        video.off('end', onEnd);
      };
      const onStreaming = () => {
        cleanup();
        resolve();
      };
      const onEnd = ({ reason }: { reason: string }) => {
        cleanup();
        reject(new Error(`video ended before streaming: ${reason}`));
      };
      const onAbort = () => {
        cleanup();
        reject(signal.reason instanceof Error ? signal.reason : new Error('view start aborted'));
      };
      const timer = setTimeout(() => {
        cleanup();
        this.#log.warn({ sessionId, timeoutMs }, 'viewer did not connect in time');
        this.#deps.endView(sessionId, 'peer-gone');
        reject(new Error(`no media within ${timeoutMs} ms`));
      }, timeoutMs);
      signal.addEventListener('abort', onAbort, { once: true });
      video.on('streaming', onStreaming);
      video.on('end', onEnd);
      video.createOffer().then(
        (sdp) => {
          if (signal.aborted) return;
          this.#send({ schemaVersion, type: 'offer', sessionId, requestId: session.requestId, sdp });
        },
        (error: unknown) => {
          cleanup();
          reject(error instanceof Error ? error : new Error(String(error)));
        },
      );
    });
  }

  #send(message: SignalOutbound): void {
    this.#deps.send(message).catch((error: unknown) => {
      this.#log.warn({ sessionId: message.sessionId, type: message.type, err: String(error) }, 'send failed');
    });
  }

  #emitSafe<K extends keyof WebRtcViewEvents>(event: K, ...args: WebRtcViewEvents[K]): void {
    try {
      // biome-ignore lint/suspicious/noExplicitAny: EventEmitter's generic emit signature needs the cast.
      (this.emit as any)(event, ...args);
    } catch (error) {
      this.#log.error({ err: error, event }, 'a listener threw; ignored');
    }
  }
}

function noop(): void {}
