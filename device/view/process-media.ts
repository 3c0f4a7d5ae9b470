// The media of a look in a process of its own: werift and ffmpeg run in a child (media-child.ts) forked
// into a process group of its own, one child per look. The child keeps a local frame gate that this side
// opens and closes, but the gate that counts is the kill: when a look ends the child is asked to stop and
// its whole group is SIGKILLed at a short deadline, and `stop` resolves only once no process of that group
// is left running. A dead process sends nothing, not even the packets werift re-sends from its cache on
// NACK (which never pass our gate). If the group cannot be confirmed gone, `stop` rejects with a
// MediaStuckError: the supervisor then raises `camera-failure`, keeps the LED lit and starts no view, and
// the service withholds the watchdog so that systemd restarts it.
//
// werift is loaded only in the child, so the service itself idles without it. To keep the time to the
// first frame, a child can be forked ahead of a look (`standBy(true)`, while a window is open or about to
// open): it loads werift and waits, and the next look takes it. It also readies that look's ffmpeg for
// the window's view mode, held before it opens the camera (see PreparedEncoder), in a private directory
// that this side removes once the process group is gone.
import { type ChildProcess, fork } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ControlsReport } from '../camera/controls.js';
import { emitSafely, type Logger } from '../log/index.js';
import type { IceCandidate } from '../protocol/signalling.js';
import type { ViewMode } from '../protocol/tokens.js';
import { type MediaPort, type MediaRequest, type MediaSink, MediaStuckError } from '../supervisor/types.js';
import type { RtpSourceStats, VideoTimings } from '../video/index.js';
import type { FromChild, ToChild } from './media-ipc.js';
import type { WebRtcMediaSettings } from './settings.js';

export { MediaStuckError } from '../supervisor/types.js';

/** What this side knows of a look's media process (tests and benches read it). Updated in place. */
export interface MediaView {
  /** The media process; also its process group id. */
  childPid: number;
  encoderPid: number | undefined;
  timings: VideoTimings | undefined;
  /** Final RTP stats, once stopped. */
  stats: RtpSourceStats | undefined;
}

export interface ProcessMediaEvents {
  video: [sessionId: string, view: MediaView];
  /** The look's media process group is gone. */
  stopped: [sessionId: string, view: MediaView];
  /** A media process group that could not be confirmed gone; no look starts any more. */
  stuck: [sessionId: string, detail: string];
  /** The camera's controls were set and read back at a camera open (health reports what did not take). */
  'camera-controls': [sessionId: string, report: ControlsReport];
}

export interface ProcessMediaDeps {
  log: Logger;
  settings: WebRtcMediaSettings;
  ffmpegPath?: string | undefined;
  /** The child's log level; default the parent logger's. */
  logLevel?: string | undefined;
  /** From the stop request to SIGKILL of the process group; default 1000 ms. */
  stopTimeoutMs?: number | undefined;
  /** From SIGKILL until the group must be seen gone, else MediaStuckError; default 1000 ms. */
  confirmTimeoutMs?: number | undefined;
  /** Tests: another entry module for the child, and the signal sender. */
  entry?: string | undefined;
  kill?: ((pid: number, signal: NodeJS.Signals | 0) => void) | undefined;
}

interface Child {
  process: ChildProcess;
  pid: number;
  /** A stand-by child's private directory (its encoder's gate); removed once its group is gone. */
  dir: string | undefined;
  ready: Promise<void>;
  exited: Promise<void>;
  hasExited: boolean;
}

interface Run {
  child: Child;
  sink: MediaSink;
  view: MediaView;
  /** Messages to the child wait until it has loaded werift. */
  queue: Promise<void>;
  gateTimer: ReturnType<typeof setInterval> | undefined;
  stopping: Promise<void> | undefined;
  /** The first packet has left: from now a spare process may load without slowing this look's start. */
  streaming: boolean;
}

const defaultStopTimeoutMs = 1000;
const defaultConfirmTimeoutMs = 1000;
/** How often the supervisor's frame gate is copied to the child's (it is closed at once on stop). */
const gatePollMs = 20;
/** A warm child that died while idle is replaced only after this long (no fork loop). */
const refillBackoffMs = 5000;

const here = fileURLToPath(import.meta.url);
/** Built: media-child.js under node; from source (tests, tsx): media-child.ts under tsx. */
const defaultEntry = here.replace(/process-media\.(ts|js)$/, 'media-child.$1');

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Members of a process group that still run (zombies hold nothing and send nothing). */
export function runningInGroup(pgid: number): number[] {
  const found: number[] = [];
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return found;
  }
  for (const entry of entries) {
    if (!/^[0-9]+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses, so split after the last ')'.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[2]) === pgid && fields[0] !== 'Z' && fields[0] !== 'X') found.push(Number(entry));
    } catch {
      // Gone while we looked.
    }
  }
  return found;
}

export class ProcessMedia extends EventEmitter<ProcessMediaEvents> implements MediaPort {
  readonly #deps: ProcessMediaDeps;
  readonly #log: Logger;
  readonly #kill: (pid: number, signal: NodeJS.Signals | 0) => void;
  readonly #running = new Map<string, Run>();
  #warm: Child | undefined;
  #standBy = false;
  /** The view mode a stand-by child readies its encoder for: the open or next window's. */
  #standByViewMode: ViewMode = 'full';
  #lastIdleDeathMs = Number.NEGATIVE_INFINITY;
  #refillTimer: ReturnType<typeof setTimeout> | undefined;
  #stuck: string | undefined;
  #closed = false;

  constructor(deps: ProcessMediaDeps) {
    super();
    this.#deps = deps;
    this.#log = deps.log;
    this.#kill = deps.kill ?? ((pid, signal) => process.kill(pid, signal));
  }

  /** Looks whose media process is running or being stopped. */
  get activeSessions(): string[] {
    return [...this.#running.keys()];
  }

  /** Why no look can start: a media process group that could not be confirmed gone. */
  get stuck(): string | undefined {
    return this.#stuck;
  }

  /** The idle, ready media process kept for the next look, if any. */
  get warmPid(): number | undefined {
    return this.#warm?.pid;
  }

  /** Resolves true once the warm media process has loaded werift; false when there is none. */
  async warmReady(): Promise<boolean> {
    const warm = this.#warm;
    if (!warm) return false;
    return warm.ready.then(
      () => true,
      () => false,
    );
  }

  /**
   * Keep a media process loaded and waiting for the next look (while a window is open), or not; a new
   * one readies its encoder for `viewMode`.
   */
  standBy(on: boolean, viewMode: ViewMode = 'full'): void {
    if (this.#closed) return;
    this.#standBy = on;
    this.#standByViewMode = viewMode;
    if (on) this.#refill();
    else {
      const warm = this.#warm;
      this.#warm = undefined;
      if (warm) void this.#reap(warm, 'stand-by over');
    }
  }

  start(look: MediaRequest, sink: MediaSink): void {
    const { sessionId } = look;
    if (this.#stuck !== undefined || this.#closed) {
      const detail = this.#stuck ?? 'media closed';
      queueMicrotask(() => sink.failed('camera-failure', detail));
      return;
    }
    let child: Child;
    try {
      child = this.#warm ?? this.#fork();
    } catch (error) {
      queueMicrotask(() => sink.failed('camera-failure', `media process not started: ${String(error)}`));
      return;
    }
    this.#warm = undefined;
    const view: MediaView = {
      childPid: child.pid,
      encoderPid: undefined,
      timings: undefined,
      stats: undefined,
    };
    const run: Run = {
      child,
      sink,
      view,
      queue: Promise.resolve(),
      gateTimer: undefined,
      stopping: undefined,
      streaming: false,
    };
    this.#running.set(sessionId, run);
    child.process.on('message', (message: FromChild) => this.#fromChild(run, sessionId, message));
    void child.exited.then(() => {
      if (!run.stopping) sink.failed('camera-failure', 'the media process exited');
    });
    let gateOpen = look.allowFrames();
    this.#send(run, { type: 'start', look: this.#mediaLook(look), gateOpen });
    run.gateTimer = setInterval(() => {
      const open = look.allowFrames();
      if (open === gateOpen) return;
      gateOpen = open;
      this.#send(run, { type: 'gate', sessionId, open });
    }, gatePollMs);
    run.gateTimer.unref();
    emitSafely<ProcessMediaEvents, 'video'>(this, this.#log, 'video', sessionId, view);
  }

  applyAnswer(sessionId: string, sdp: string): void {
    const run = this.#running.get(sessionId);
    if (run && !run.stopping) this.#send(run, { type: 'answer', sessionId, sdp });
  }

  addCandidate(sessionId: string, candidate: IceCandidate): void {
    const run = this.#running.get(sessionId);
    if (run && !run.stopping) this.#send(run, { type: 'candidate', sessionId, candidate });
  }

  /**
   * Resolves once the look's whole process group has exited: asked to stop, SIGKILLed at the deadline.
   * Rejects with MediaStuckError if it cannot be confirmed gone; no look starts after that.
   */
  stop(sessionId: string): Promise<void> {
    const run = this.#running.get(sessionId);
    if (!run) return Promise.resolve();
    run.stopping ??= this.#stop(sessionId, run);
    return run.stopping;
  }

  /** Stops every look's media and the warm process. Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#standBy = false;
    clearTimeout(this.#refillTimer);
    const warm = this.#warm;
    this.#warm = undefined;
    const stops = [...this.#running.keys()].map((sessionId) => this.stop(sessionId));
    if (warm) stops.push(this.#reap(warm, 'closing'));
    const results = await Promise.allSettled(stops);
    const failed = results.find((result) => result.status === 'rejected');
    if (failed) throw failed.reason;
  }

  async #stop(sessionId: string, run: Run): Promise<void> {
    clearInterval(run.gateTimer);
    const startedMs = performance.now();
    // Shut the child's gate and ask it to stop at once, without waiting for the queue: if it has not
    // loaded werift yet, it has nothing to stop and the kill below ends it.
    this.#post(run.child, { type: 'gate', sessionId, open: false });
    this.#post(run.child, { type: 'stop', sessionId });
    await this.#reap(run.child, `look ${sessionId} ended`, this.#deps.stopTimeoutMs ?? defaultStopTimeoutMs);
    this.#running.delete(sessionId);
    if (this.#stuck !== undefined) {
      emitSafely<ProcessMediaEvents, 'stuck'>(this, this.#log, 'stuck', sessionId, this.#stuck);
      throw new MediaStuckError(this.#stuck);
    }
    this.#log.info(
      { sessionId, pid: run.child.pid, stopMs: Math.round(performance.now() - startedMs) },
      'look media process gone',
    );
    emitSafely<ProcessMediaEvents, 'stopped'>(this, this.#log, 'stopped', sessionId, run.view);
    this.#refill();
  }

  /**
   * Gives the child `graceMs` to exit by itself, then SIGKILLs its group until the group is seen gone;
   * past `confirmTimeoutMs` it flags the media as stuck.
   */
  async #reap(child: Child, why: string, graceMs = 0): Promise<void> {
    const confirmTimeoutMs = this.#deps.confirmTimeoutMs ?? defaultConfirmTimeoutMs;
    if (!child.hasExited && graceMs > 0) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const deadline = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, graceMs);
      });
      await Promise.race([child.exited, deadline]);
      clearTimeout(timer);
    }
    if (!child.hasExited && graceMs > 0) {
      this.#log.warn(
        { pid: child.pid, why, graceMs },
        'media process did not stop in time; killing its group',
      );
    }
    // Always: ffmpeg (same group) could outlive the child.
    const until = performance.now() + confirmTimeoutMs;
    for (;;) {
      this.#signalGroup(child.pid);
      if (child.hasExited && runningInGroup(child.pid).length === 0) {
        this.#removeDir(child.dir);
        return;
      }
      if (performance.now() > until) break;
      await sleep(10);
    }
    const left = runningInGroup(child.pid);
    const detail = `media process group ${child.pid} not confirmed gone ${confirmTimeoutMs} ms after SIGKILL (${
      child.hasExited ? `still running: ${left.join(', ')}` : 'the media process was not reaped'
    })`;
    this.#log.error({ pid: child.pid, left, why }, 'media process group not confirmed gone');
    this.#stuck ??= detail;
  }

  /** A stand-by child's directory, once its group is gone (the child may have left it read-only). */
  #removeDir(dir: string | undefined): void {
    if (dir === undefined) return;
    try {
      chmodSync(dir, 0o700);
      rmSync(dir, { recursive: true, force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
        this.#log.warn({ dir, err: String(error) }, 'media directory not removed');
      }
    }
  }

  #signalGroup(pgid: number): void {
    try {
      this.#kill(-pgid, 'SIGKILL');
    } catch {
      // ESRCH: the group is empty.
    }
  }

  /** A new media process; with `prepareFor`, a stand-by one that readies its encoder for that view mode. */
  #fork(prepareFor?: ViewMode): Child {
    const entry = this.#deps.entry ?? defaultEntry;
    const prepare =
      prepareFor === undefined
        ? undefined
        : { viewMode: prepareFor, dir: mkdtempSync(join(tmpdir(), 'tk-media-')) };
    const process_ = fork(entry, [], {
      // A group of its own: the whole of it (the child and its ffmpeg) can be killed with one signal.
      detached: true,
      execArgv: entry.endsWith('.ts') ? ['--import', 'tsx'] : [],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      serialization: 'json',
    });
    const pid = process_.pid;
    if (pid === undefined) {
      this.#removeDir(prepare?.dir);
      throw new Error('fork gave no pid');
    }
    // 'close' comes after 'exit' (reaped) and after the IPC channel is drained: the child's last
    // messages (its final stats) have been handled by then.
    const exited = new Promise<void>((resolve) => {
      process_.once('close', (code, signal) => {
        child.hasExited = true;
        this.#log.debug({ pid, code, signal }, 'media process exited');
        resolve();
      });
    });
    process_.on('error', (error) => this.#log.warn({ pid, err: error.message }, 'media process error'));
    const ready = new Promise<void>((resolve, reject) => {
      const onMessage = (message: FromChild) => {
        if (message.type !== 'ready') return;
        process_.off('message', onMessage);
        resolve();
      };
      process_.on('message', onMessage);
      void exited.then(() => reject(new Error('the media process exited before it was ready')));
    });
    ready.catch(() => undefined);
    const child: Child = { process: process_, pid, dir: prepare?.dir, ready, exited, hasExited: false };
    this.#post(child, {
      type: 'init',
      settings: this.#deps.settings,
      ffmpegPath: this.#deps.ffmpegPath,
      logLevel: this.#deps.logLevel ?? this.#log.level,
      parentPid: process.pid,
      prepare,
    });
    this.#log.debug({ pid }, 'media process forked');
    return child;
  }

  /**
   * Forks a warm child if standing by and none is waiting. Not while a look is still starting (loading
   * werift takes a core for most of a second, which that look's first frame would pay); a warm child
   * that died while idle is replaced only after a pause.
   */
  #refill(): void {
    if (!this.#standBy || this.#closed || this.#stuck !== undefined) return;
    if (this.#warm || [...this.#running.values()].some((run) => !run.streaming)) return;
    const waitMs = this.#lastIdleDeathMs + refillBackoffMs - performance.now();
    if (waitMs > 0) {
      clearTimeout(this.#refillTimer);
      this.#refillTimer = setTimeout(() => this.#refill(), waitMs);
      this.#refillTimer.unref();
      return;
    }
    let child: Child;
    try {
      child = this.#fork(this.#standByViewMode);
    } catch (error) {
      this.#log.warn({ err: String(error) }, 'cannot fork a media process');
      return;
    }
    this.#warm = child;
    void child.exited.then(() => {
      if (this.#warm !== child) return;
      this.#warm = undefined;
      this.#lastIdleDeathMs = performance.now();
      this.#log.warn({ pid: child.pid }, 'idle media process exited');
      void this.#reap(child, 'idle exit').then(() => this.#refill());
    });
  }

  #mediaLook(look: MediaRequest): Extract<ToChild, { type: 'start' }>['look'] {
    return {
      sessionId: look.sessionId,
      requestId: look.requestId,
      viewMode: look.viewMode,
      fingerprint: look.fingerprint,
      ...(look.iceServers === undefined ? {} : { iceServers: look.iceServers }),
    };
  }

  /** In order, once the child is ready. */
  #send(run: Run, message: ToChild): void {
    run.queue = run.queue
      .then(() => run.child.ready)
      .then(
        () => {
          if (!run.stopping) this.#post(run.child, message);
        },
        () => undefined,
      );
  }

  #post(child: Child, message: ToChild): void {
    if (child.hasExited || !child.process.connected) return;
    try {
      child.process.send(message, (error) => {
        if (error) this.#log.debug({ pid: child.pid, err: error.message }, 'message to media process lost');
      });
    } catch (error) {
      this.#log.debug({ pid: child.pid, err: String(error) }, 'message to media process lost');
    }
  }

  #fromChild(run: Run, sessionId: string, message: FromChild): void {
    const { view, sink } = run;
    switch (message.type) {
      case 'ready':
        return;
      case 'video':
        view.encoderPid = message.encoderPid;
        view.timings = message.timings;
        return;
      case 'stopped':
        view.stats = message.stats;
        view.timings = message.timings;
        return;
      case 'camera-controls':
        // Reported even while the look stops: it says how the camera was, whatever became of the look.
        if (message.sessionId === sessionId)
          emitSafely<ProcessMediaEvents, 'camera-controls'>(
            this,
            this.#log,
            'camera-controls',
            sessionId,
            message.report,
          );
        return;
      default:
        break;
    }
    if (message.sessionId !== sessionId || run.stopping) return;
    switch (message.type) {
      case 'offer':
        sink.offer(message.sdp);
        return;
      case 'candidate':
        sink.candidate(message.candidate);
        return;
      case 'streaming':
        view.timings = message.timings;
        view.stats = message.stats;
        run.streaming = true;
        sink.streaming();
        this.#refill();
        return;
      case 'failed':
        sink.failed(message.reason, message.detail);
        return;
    }
  }
}
