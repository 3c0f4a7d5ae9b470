// Public surface of the video concern, and `VideoSession`: the media half of one live view. It prepares
// the peer connection and starts ffmpeg with the offer, so the encoder warms up while the viewer answers
// and ICE and DTLS come up; until the viewer is connected the RTP hop sends nothing and keeps only the
// packets since the latest keyframe, which it sends the moment the connection is up (the first frame the
// viewer gets is a keyframe, with no wait for the next GOP). It answers PLI with a rate-limited encoder
// restart, and tears down safety first: gate shut and RTP stopped before the peer connection closes.
// It never touches LEDs: the caller lights the viewing LED before `startVideo` and darkens it after
// `stop()` resolves; `stats` gives the first/last forwarded packet instants to prove that order.

import type { Socket } from 'node:dgram';
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import {
  Encoder,
  type EncoderSettings,
  type PreparedEncoder,
  prepareEncoder,
  type SpawnFunction,
} from './encoder.js';
import {
  DEFAULT_PAYLOAD_TYPE,
  type IceCandidateMessage,
  Peer,
  type PeerGoneReason,
  type PeerOptions,
} from './peer.js';
import { bindLoopbackUdp, RtpSource, type RtpSourceStats } from './rtp-source.js';

export { installDtlsChanges } from './dtls.js';
export { checkDtlsServerSignature, serverKeyExchangeVerifies } from './dtls-client.js';
export { flight5InOrder, repairDtlsRetransmissions } from './dtls-retransmission.js';
export { coalescing, maxDatagramBytes, tuneDtlsServer, withCookie } from './dtls-server.js';
export {
  buildEncoderArgs,
  checkEncoderSettings,
  defaultSpawn,
  Encoder,
  type EncoderDeps,
  type EncoderEvents,
  type EncoderExit,
  type EncoderKind,
  type EncoderSettings,
  type EncoderSettingsProblem,
  effectiveCodec,
  encoderBitrateKbps,
  LOW_RESOLUTION_WIDTH,
  type PreparedEncoder,
  prepareEncoder,
  rpicamArgs,
  type SpawnFunction,
  type SpawnStdio,
  type VideoSource,
  type ViewMode,
  viewModeMaxBitrateKbps,
} from './encoder.js';
export { type KeyframeNals, keyframeNals } from './h264.js';
export { type ChosenIceServers, chooseIceServers } from './ice-servers.js';
export {
  H264_FMTP,
  h264Codec,
  type IceCandidateMessage,
  Peer,
  type PeerDeps,
  type PeerEvents,
  type PeerGoneReason,
  type PeerOptions,
  withoutDefaultStun,
} from './peer.js';
export {
  bindLoopbackUdp,
  continueStream,
  type RtpRelease,
  RtpSource,
  type RtpSourceEvents,
  type RtpSourceStats,
} from './rtp-source.js';

/** Why the media side ended a view by itself. The caller then calls `stop()`. */
export type VideoEndReason = 'camera-failure' | 'viewer-gone';

export interface VideoEnd {
  reason: VideoEndReason;
  /** For logs: ffmpeg's exit reason or the peer's gone reason. */
  detail: string;
}

export type VideoSessionState = 'negotiating' | 'connecting' | 'streaming' | 'stopping' | 'stopped';

/** Encoder settings the session chooses itself are left out: port, payload type and SSRC. */
export type VideoEncoderSettings = Omit<EncoderSettings, 'rtpPort' | 'payloadType' | 'ssrc'>;

export interface VideoSessionSettings {
  encoder: VideoEncoderSettings;
  peer?: PeerOptions | undefined;
  /** Minimum time between keyframe-forcing encoder restarts (and after the first start). */
  pliMinIntervalMs?: number | undefined;
}

export interface VideoSessionDeps {
  log: Logger;
  ffmpegPath?: string | undefined;
  spawn?: SpawnFunction | undefined;
  /** Injected clock in ms; default Date.now. */
  now?: (() => number) | undefined;
  /** Extra per-packet gate from the core (e.g. "the grant is still valid"); false drops video. */
  mayStream?: (() => boolean) | undefined;
  /** SSRC of the first encoder run; default random. Each restart uses the next one. */
  ssrc?: number | undefined;
  encoderStopTimeoutMs?: number | undefined;
  /** Before every camera open (start and each restart), before the first frame: camera controls. */
  beforeCameraOpen?: (() => void) | undefined;
}

export interface VideoTimings {
  offerAtMs: number | undefined;
  connectedAtMs: number | undefined;
  encoderSpawnedAtMs: number | undefined;
  /** The encoder's first packet reached the RTP hop (held there if the viewer was not connected yet). */
  firstReceivedAtMs: number | undefined;
  firstPacketAtMs: number | undefined;
}

/**
 * What a stand-by media process readies for a look: the loopback RTP socket, bound, and an ffmpeg that
 * will send to it, held before it opens the camera (see `PreparedEncoder`). A look whose encoder
 * settings differ (another view mode) gets a fresh ffmpeg, and the held one is killed.
 */
export interface PreparedVideo {
  readonly socket: Socket;
  readonly encoder: PreparedEncoder;
  /** Kills the held ffmpeg and closes the socket. Idempotent; harmless once a look has taken it. */
  discard(): void;
}

export interface PrepareVideoDeps {
  log: Logger;
  ffmpegPath?: string | undefined;
  spawn?: SpawnFunction | undefined;
  /** A private directory for the encoder's gate, removed by the caller once this process has gone. */
  dir: string;
}

const randomSsrc = (): number => Math.floor(Math.random() * 0xffffffff) >>> 0;

/** Binds the RTP socket and spawns the held ffmpeg for a look with these settings. */
export async function prepareVideo(
  deps: PrepareVideoDeps,
  settings: VideoEncoderSettings,
): Promise<PreparedVideo> {
  const socket = await bindLoopbackUdp();
  socket.on('error', (error) => deps.log.warn({ err: error }, 'prepared rtp socket error'));
  try {
    const encoder = await prepareEncoder(
      deps,
      {
        ...settings,
        rtpPort: socket.address().port,
        payloadType: DEFAULT_PAYLOAD_TYPE,
        ssrc: randomSsrc(),
      },
      deps.dir,
    );
    return {
      socket,
      encoder,
      discard: () => {
        encoder.discard();
        try {
          socket.close();
        } catch {
          // Closed already: by the RTP source of the look that took it.
        }
      },
    };
  } catch (error) {
    socket.close();
    throw error;
  }
}

export interface VideoSessionEvents {
  /** A local ICE candidate to trickle to the viewer (most are already in the offer). */
  candidate: [IceCandidateMessage];
  /** The first RTP packet went to the viewer, at this clock reading (ms). */
  streaming: [atMs: number];
  /** The media side cannot go on; emitted at most once. The caller ends the view and calls stop(). */
  end: [VideoEnd];
}

export class VideoSession extends EventEmitter<VideoSessionEvents> {
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #mayStream: () => boolean;
  readonly #settings: VideoSessionSettings;
  readonly #pliMinIntervalMs: number;
  readonly #peer: Peer;
  readonly #rtp: RtpSource;
  #encoder: Encoder | undefined;
  readonly #encoderDeps: {
    ffmpegPath?: string | undefined;
    spawn?: SpawnFunction | undefined;
    stopTimeoutMs?: number | undefined;
    beforeOpen?: (() => void) | undefined;
  };
  #ssrc: number;
  #state: VideoSessionState = 'negotiating';
  #endEmitted = false;
  #restarting = false;
  #lastKeyframeAtMs = Number.NEGATIVE_INFINITY;
  #stopped: Promise<RtpSourceStats> | undefined;
  /** Until the first encoder start takes it (or stop() discards it). */
  #prepared: PreparedVideo | undefined;
  readonly #timings: VideoTimings = {
    offerAtMs: undefined,
    connectedAtMs: undefined,
    encoderSpawnedAtMs: undefined,
    firstReceivedAtMs: undefined,
    firstPacketAtMs: undefined,
  };

  constructor(deps: VideoSessionDeps, settings: VideoSessionSettings, prepared?: PreparedVideo) {
    super();
    this.#log = deps.log;
    this.#now = deps.now ?? Date.now;
    this.#mayStream = deps.mayStream ?? (() => true);
    this.#settings = settings;
    this.#prepared = prepared;
    this.#pliMinIntervalMs = settings.pliMinIntervalMs ?? 1000;
    this.#ssrc = (prepared?.encoder.settings.ssrc ?? deps.ssrc ?? randomSsrc()) >>> 0;
    this.#encoderDeps = {
      ffmpegPath: deps.ffmpegPath,
      spawn: deps.spawn,
      stopTimeoutMs: deps.encoderStopTimeoutMs,
      beforeOpen: deps.beforeCameraOpen,
    };
    this.#peer = new Peer({ log: deps.log.child({ part: 'peer' }), now: this.#now }, settings.peer);
    this.#rtp = new RtpSource(
      {
        log: deps.log.child({ part: 'rtp' }),
        track: this.#peer.track,
        gate: () => this.#state === 'streaming' && !this.#endEmitted && this.#mayStream(),
        hold: () =>
          (this.#state === 'negotiating' || this.#state === 'connecting') &&
          !this.#endEmitted &&
          this.#mayStream(),
        now: this.#now,
      },
      { payloadType: this.#peer.payloadType, keyframeFirst: true },
    );
    this.#peer.on('candidate', (candidate) => this.emit('candidate', candidate));
    this.#peer.on('connected', () => this.#onConnected());
    this.#peer.on('pli', () => this.#onPli());
    this.#peer.on('gone', (reason: PeerGoneReason) => this.#end('viewer-gone', reason));
    this.#rtp.on('first-packet', (atMs) => {
      this.#timings.firstPacketAtMs = atMs;
      this.#log.info({ atMs }, 'video streaming');
      this.emit('streaming', atMs);
    });
  }

  get state(): VideoSessionState {
    return this.#state;
  }

  /** Packet counts and first/last forwarded instants (ms, injected clock). */
  get stats(): RtpSourceStats {
    return this.#rtp.stats;
  }

  get timings(): VideoTimings {
    return { ...this.#timings, firstReceivedAtMs: this.#rtp.stats.firstReceivedAtMs };
  }

  /** Process id of the running ffmpeg, if any (for tests and CPU figures). */
  get encoderPid(): number | undefined {
    return this.#encoder?.pid;
  }

  /** Process id of the running rpicam-vid (libcamera source), if any. */
  get cameraPid(): number | undefined {
    return this.#encoder?.cameraPid;
  }

  /** Binds the loopback RTP socket (or takes the prepared one). Called by `startVideo`. */
  async prepare(): Promise<void> {
    await this.#rtp.start(this.#prepared?.socket);
  }

  /**
   * The device's offer SDP (complete: candidates included). Starts the encoder too (or lets a prepared
   * one open the camera): the view is granted and its LED lit by now, and the encoder's start-up then
   * overlaps the viewer's answer, ICE and DTLS.
   */
  async createOffer(): Promise<string> {
    this.#startEncoder();
    const sdp = await this.#peer.createOffer();
    this.#timings.offerAtMs = this.#now();
    return sdp;
  }

  async acceptAnswer(sdp: string): Promise<void> {
    await this.#peer.acceptAnswer(sdp);
    if (this.#state === 'negotiating') this.#state = 'connecting';
  }

  async addRemoteCandidate(candidate: IceCandidateMessage): Promise<void> {
    await this.#peer.addRemoteCandidate(candidate);
  }

  /**
   * Ends the media: gate shut, ffmpeg stopped and the RTP socket closed first, then the peer connection.
   * Idempotent; resolves with the final stats once everything is closed. Never rejects.
   */
  stop(): Promise<RtpSourceStats> {
    this.#stopped ??= this.#stop();
    return this.#stopped;
  }

  async #stop(): Promise<RtpSourceStats> {
    this.#state = 'stopping';
    // The encoder never started: the held ffmpeg goes (its socket is the RTP source's, closed below).
    this.#prepared?.encoder.discard();
    this.#prepared = undefined;
    const steps: Array<[string, () => Promise<void>]> = [
      ['encoder', async () => this.#encoder?.stop()],
      ['rtp', async () => this.#rtp.stop()],
      ['peer', async () => this.#peer.close()],
    ];
    for (const [part, step] of steps) {
      try {
        await step();
      } catch (error) {
        this.#log.error({ err: error, part }, 'video stop step failed');
      }
    }
    this.#state = 'stopped';
    const stats = this.#rtp.stats;
    this.#log.info({ ...stats }, 'video stopped');
    return stats;
  }

  #encoderSettings(): EncoderSettings {
    const port = this.#rtp.port;
    if (port === undefined) throw new Error('rtp source not started');
    return {
      ...this.#settings.encoder,
      rtpPort: port,
      payloadType: this.#peer.payloadType,
      ssrc: this.#ssrc,
    };
  }

  /** Spawns ffmpeg once per session; a failure ends the view as `camera-failure`. */
  #startEncoder(): void {
    if (this.#encoder !== undefined || this.#state === 'stopping' || this.#state === 'stopped') return;
    let settings: EncoderSettings;
    try {
      settings = this.#encoderSettings();
    } catch (error) {
      this.#end('camera-failure', String(error));
      return;
    }
    const encoder = new Encoder(
      { log: this.#log.child({ part: 'encoder' }), ...this.#encoderDeps },
      settings,
      this.#prepared?.encoder,
    );
    this.#prepared = undefined;
    this.#encoder = encoder;
    encoder.on('exit', (exit) => this.#end('camera-failure', exit.reason));
    this.#rtp.acceptSsrc(settings.ssrc);
    this.#lastKeyframeAtMs = this.#now();
    encoder.start().then(
      () => {
        this.#timings.encoderSpawnedAtMs = this.#now();
        // stop() may have run while ffmpeg was spawning; make sure it does not outlive the view.
        if (this.#state === 'stopping' || this.#state === 'stopped') void encoder.stop();
      },
      (error: unknown) => this.#end('camera-failure', `ffmpeg did not start: ${String(error)}`),
    );
  }

  #onConnected(): void {
    if (this.#state !== 'negotiating' && this.#state !== 'connecting') return;
    this.#timings.connectedAtMs = this.#now();
    this.#state = 'streaming';
    this.#startEncoder();
    const { flushedPackets, keyframeSeen } = this.#rtp.release();
    this.#log.debug({ flushedPackets, keyframeSeen }, 'viewer connected: held video released');
    // A keyframe went by but could not be held (too old or too long): ask for a fresh one now rather
    // than leave the viewer waiting up to a GOP.
    if (flushedPackets === 0 && keyframeSeen) this.#forceKeyframe();
  }

  #onPli(): void {
    if (this.#now() - this.#lastKeyframeAtMs < this.#pliMinIntervalMs) return;
    this.#forceKeyframe();
  }

  #forceKeyframe(): void {
    const encoder = this.#encoder;
    if (this.#state !== 'streaming' || this.#endEmitted || encoder === undefined || this.#restarting) return;
    const now = this.#now();
    this.#restarting = true;
    this.#lastKeyframeAtMs = now;
    // A new SSRC per run lets the RTP source drop late packets of the old run and splice the new one on.
    this.#ssrc = (this.#ssrc + 1) >>> 0;
    const settings = this.#encoderSettings();
    this.#rtp.acceptSsrc(settings.ssrc);
    this.#log.debug({ ssrc: settings.ssrc }, 'keyframe requested: restarting encoder');
    encoder
      .restart(settings)
      .then(
        () => {
          this.#lastKeyframeAtMs = this.#now();
        },
        (error: unknown) => this.#end('camera-failure', `ffmpeg did not restart: ${String(error)}`),
      )
      .finally(() => {
        this.#restarting = false;
        // stop() may have run while the new ffmpeg was spawning; make sure it does not outlive the view.
        if (this.#state === 'stopping' || this.#state === 'stopped') void encoder.stop();
      });
  }

  #end(reason: VideoEndReason, detail: string): void {
    if (this.#state === 'stopping' || this.#state === 'stopped' || this.#endEmitted) return;
    // Setting this shuts the gate at once; the caller's stop() does the rest in the safe order.
    this.#endEmitted = true;
    this.#log.warn({ reason, detail }, 'video ending');
    this.emit('end', { reason, detail });
  }
}

/**
 * Prepares the media side of one view: binds the loopback RTP socket and builds the peer connection.
 * Next: `createOffer()` (which starts ffmpeg) → send to the viewer → `acceptAnswer()`, trickle candidates
 * both ways; video flows once the viewer is connected, from a keyframe.
 */
export async function startVideo(
  deps: VideoSessionDeps,
  settings: VideoSessionSettings,
  prepared?: PreparedVideo,
): Promise<VideoSession> {
  const session = new VideoSession(deps, settings, prepared);
  try {
    await session.prepare();
  } catch (error) {
    await session.stop();
    throw error;
  }
  return session;
}
