// The media of a look over WebRTC: one `VideoSession` per look. It makes the offer, applies the answer
// and candidates the supervisor has already checked against the grant, and reports the first packet and
// failures back. The camera is opened only by that session's ffmpeg, which starts with the offer (the
// look is granted and the LED lit by then) and stops in `stop`: outside a look nothing holds the camera.
// A stand-by media process may `prepare` that ffmpeg ahead of the look, held before it opens the camera
// (see PreparedEncoder): the offer then lets it go instead of spawning it.
// No video leaves before the console is connected, the first that does is a keyframe, and every packet
// passes the supervisor's frame gate. The peer checks the console's DTLS certificate against the grant's
// fingerprint once more when the connection comes up, before any packet can leave.
import { EventEmitter } from 'node:events';
import {
  applyControls,
  type ControlsReport,
  koffiV4l2Port,
  planControls,
  type V4l2Port,
  verifyControls,
} from '../camera/index.js';
import { emitSafely, type Logger } from '../log/index.js';
import type { IceCandidate, ViewMode } from '../protocol/index.js';
import type { MediaPort, MediaRequest, MediaSink } from '../supervisor/index.js';
import {
  chooseIceServers,
  type IceCandidateMessage,
  type PreparedVideo,
  prepareVideo,
  type RtpSourceStats,
  type SpawnFunction,
  startVideo,
  type VideoEncoderSettings,
  type VideoSession,
} from '../video/index.js';
import type { WebRtcMediaSettings } from './settings.js';

export type { WebRtcMediaSettings } from './settings.js';

export interface WebRtcMediaDeps {
  log: Logger;
  /** Clock for packet time stamps; the same one as the LED's, so their order can be compared. */
  now?: (() => number) | undefined;
  ffmpegPath?: string | undefined;
  spawn?: SpawnFunction | undefined;
  /** The camera's control ioctls; default koffi's (tests: a fake device). */
  v4l2?: V4l2Port | undefined;
}

export interface WebRtcMediaEvents {
  /** The camera's controls were applied and read back (before every camera open). */
  'camera-controls': [sessionId: string, report: ControlsReport];
  /** A look's media session was created (tests and benches read its timings and stats). */
  video: [sessionId: string, video: VideoSession];
  /** A look's media is fully stopped: ffmpeg gone, RTP socket and peer connection closed. */
  stopped: [sessionId: string, stats: RtpSourceStats];
}

interface Running {
  /** Resolves with the video session once it exists (undefined if it could not be made). */
  ready: Promise<VideoSession | undefined>;
  /** Signalling is applied strictly in arrival order. */
  queue: Promise<void>;
  sink: MediaSink;
  stopping: boolean;
}

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

export class WebRtcMedia extends EventEmitter<WebRtcMediaEvents> implements MediaPort {
  readonly #deps: WebRtcMediaDeps;
  readonly #settings: WebRtcMediaSettings;
  readonly #log: Logger;
  readonly #running = new Map<string, Running>();
  #v4l2: V4l2Port | undefined;
  #prepared: PreparedVideo | undefined;

  constructor(deps: WebRtcMediaDeps, settings: WebRtcMediaSettings) {
    super();
    this.#deps = deps;
    this.#settings = settings;
    this.#log = deps.log;
  }

  /** Looks whose media is open (at most one under the supervisor). */
  get activeSessions(): string[] {
    return [...this.#running.keys()];
  }

  /**
   * Readies the next look's encoder for `viewMode`: its RTP socket bound and ffmpeg spawned, held before
   * it opens the camera. `dir` is a private directory for its gate, which the caller removes once this
   * process has gone. Not for a libcamera source (resolves false).
   */
  async prepare(viewMode: ViewMode, dir: string): Promise<boolean> {
    if (this.#settings.camera.source.kind === 'libcamera' || this.#prepared !== undefined) return false;
    this.#prepared = await prepareVideo(
      { log: this.#log, ffmpegPath: this.#deps.ffmpegPath, spawn: this.#deps.spawn, dir },
      this.#encoderSettings(viewMode),
    );
    return true;
  }

  start(look: MediaRequest, sink: MediaSink): void {
    const running: Running = {
      ready: Promise.resolve(undefined),
      queue: Promise.resolve(),
      sink,
      stopping: false,
    };
    running.ready = this.#open(look, sink, running).catch((error: unknown) => {
      if (!running.stopping) sink.failed('camera-failure', String(error));
      return undefined;
    });
    running.queue = running.ready.then(() => undefined);
    this.#running.set(look.sessionId, running);
  }

  applyAnswer(sessionId: string, sdp: string): void {
    this.#enqueue(sessionId, 'answer', (video) => video.acceptAnswer(sdp));
  }

  addCandidate(sessionId: string, candidate: IceCandidate): void {
    if (candidate.candidate === '') return;
    this.#enqueue(sessionId, 'candidate', (video) => video.addRemoteCandidate(toCandidateMessage(candidate)));
  }

  async stop(sessionId: string): Promise<void> {
    const running = this.#running.get(sessionId);
    if (!running) return;
    running.stopping = true;
    const video = await running.ready;
    if (this.#running.get(sessionId) === running) this.#running.delete(sessionId);
    if (!video) return;
    const stats = await video.stop();
    this.#log.info({ sessionId, packets: stats.packetsForwarded }, 'look media stopped');
    emitSafely<WebRtcMediaEvents, 'stopped'>(this, this.#log, 'stopped', sessionId, stats);
  }

  /**
   * Sets the camera's controls for this look (day or night, its view mode) before every camera open,
   * and reads them back after the first frame: some cameras reset them when streaming starts.
   */
  #controlsFor(look: MediaRequest): { beforeOpen: () => void; afterFirstFrame: () => void } | undefined {
    const { camera } = this.#settings;
    const { source, controls } = camera;
    if (source.kind !== 'v4l2' || controls === undefined) return undefined;
    const now = this.#deps.now ?? Date.now;
    const log = this.#log.child({ sessionId: look.sessionId });
    let last: ControlsReport | undefined;
    const report = (next: ControlsReport): void => {
      last = next;
      if (next.failedRequired.length > 0)
        log.error(
          { failed: next.failedRequired, outcomes: next.outcomes },
          'required camera controls not set',
        );
      else if (next.warnings.length > 0)
        log.warn(
          { warnings: next.warnings, outcomes: next.outcomes },
          'camera controls not all as configured',
        );
      else log.debug({ profile: next.profile, outcomes: next.outcomes }, 'camera controls set');
      emitSafely<WebRtcMediaEvents, 'camera-controls'>(
        this,
        this.#log,
        'camera-controls',
        look.sessionId,
        next,
      );
    };
    const port = (): V4l2Port => {
      this.#v4l2 ??= this.#deps.v4l2 ?? koffiV4l2Port();
      return this.#v4l2;
    };
    return {
      beforeOpen: () => {
        const plan = planControls(controls, look.viewMode, now(), camera.timeZone ?? 'UTC');
        report(applyControls(port(), source.device, plan, now()));
      },
      afterFirstFrame: () => {
        if (last === undefined) return;
        const verified = verifyControls(port(), last, now());
        if (verified !== last) report(verified);
      },
    };
  }

  async #open(look: MediaRequest, sink: MediaSink, running: Running): Promise<VideoSession> {
    const { sessionId } = look;
    const controls = this.#controlsFor(look);
    // The grant's servers (with this look's TURN credentials) replace the configured ones.
    const { servers: iceServers, skipped } = chooseIceServers(
      look.iceServers ?? this.#settings.peer?.iceServers ?? [],
    );
    if (skipped.length > 0) this.#log.debug({ sessionId, skipped }, 'ICE servers werift would not use');
    const prepared = this.#prepared;
    this.#prepared = undefined;
    let video: VideoSession;
    try {
      video = await startVideo(
        {
          log: this.#log.child({ sessionId }),
          now: this.#deps.now,
          mayStream: () => look.allowFrames(),
          ffmpegPath: this.#deps.ffmpegPath,
          spawn: this.#deps.spawn,
          beforeCameraOpen: controls?.beforeOpen,
        },
        {
          encoder: this.#encoderSettings(look.viewMode),
          peer: { ...this.#settings.peer, iceServers, expectRemoteFingerprint: look.fingerprint },
        },
        prepared,
      );
    } catch (error) {
      // Not taken by a session: the held ffmpeg and its socket go here.
      prepared?.discard();
      throw error;
    }
    if (running.stopping) return video;
    emitSafely<WebRtcMediaEvents, 'video'>(this, this.#log, 'video', sessionId, video);
    video.on('candidate', (candidate) => sink.candidate(toCandidate(candidate)));
    video.on('streaming', () => {
      sink.streaming();
      controls?.afterFirstFrame();
    });
    video.on('end', ({ reason, detail }) => {
      sink.failed(reason === 'camera-failure' ? 'camera-failure' : 'peer-gone', detail);
    });
    const sdp = await video.createOffer();
    if (!running.stopping) sink.offer(sdp);
    return video;
  }

  #encoderSettings(viewMode: ViewMode): VideoEncoderSettings {
    const { camera } = this.#settings;
    return {
      source: camera.source,
      width: camera.width,
      height: camera.height,
      fps: camera.fps,
      encoder: camera.encoder,
      bitrateKbps: camera.bitrateKbps,
      gopFrames: this.#settings.gopFrames ?? camera.fps,
      viewMode,
    };
  }

  #enqueue(sessionId: string, type: string, apply: (video: VideoSession) => Promise<void>): void {
    const running = this.#running.get(sessionId);
    if (!running || running.stopping) return;
    running.queue = running.queue
      .then(async () => {
        const video = await running.ready;
        if (video && !running.stopping) await apply(video);
      })
      .catch((error: unknown) => {
        this.#log.warn({ sessionId, type, err: String(error) }, 'signalling not applied');
        // An answer that cannot be used means the console cannot connect.
        if (type === 'answer' && !running.stopping) {
          running.sink.failed('peer-gone', `answer not applied: ${String(error)}`);
        }
      });
  }
}
