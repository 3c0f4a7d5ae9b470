// The media process of a look: WebRtcMedia (werift and ffmpeg) in a process of its own, forked by
// ProcessMedia in a process group of its own. It keeps a local copy of the frame gate, which the parent
// opens and closes, but the gate that counts is that the parent kills this process group when a look
// ends: a dead process sends nothing, not even the packets werift re-sends on NACK from its own cache.
// It dies with its parent: when the IPC channel closes it kills its own group (ffmpeg included), and
// on Linux the kernel sends it SIGKILL when the parent dies (PR_SET_PDEATHSIG) and ffmpeg runs under
// `setpriv --pdeathsig KILL`, so neither outlives the process that started it even if this one hangs.
import { spawn as nodeSpawn, type SpawnOptions } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createLogger } from '../log/index.js';
import type { MediaRequest, MediaSink } from '../supervisor/types.js';
import type { SpawnFunction, VideoSession } from '../video/index.js';
import type { FromChild, ToChild } from './media-ipc.js';

const setprivPath = '/usr/bin/setpriv';

function send(message: FromChild, then?: () => void): void {
  if (process.connected && process.send) process.send(message, undefined, {}, () => then?.());
  else then?.();
}

/** Kills this process's group (this process and ffmpeg): it is the group leader (`detached: true`). */
function killGroup(): never {
  try {
    process.kill(-process.pid, 'SIGKILL');
  } catch {
    // Not a group leader after all: at least this process goes.
  }
  process.exit(137);
}

/** PR_SET_PDEATHSIG through koffi: SIGKILL when the parent (the thread that forked us) dies. */
function armDeathSignal(parentPid: number): void {
  if (process.platform !== 'linux') return;
  try {
    type Koffi = typeof import('koffi');
    const koffi = createRequire(import.meta.url)('koffi') as Koffi;
    const prctl = koffi
      .load('libc.so.6')
      .func('int prctl(int, unsigned long, unsigned long, unsigned long, unsigned long)');
    const PR_SET_PDEATHSIG = 1;
    const SIGKILL = 9;
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  } catch {
    // Without koffi the closed IPC channel still ends this process.
  }
  // The parent may have died before the signal was armed.
  if (process.ppid !== parentPid) killGroup();
}

/** ffmpeg (and rpicam-vid) die with this process too: setpriv sets the death signal and execs (same pid). */
const spawnWithDeathSignal: SpawnFunction = (command, args, stdio) => {
  const options: SpawnOptions = { stdio: [stdio?.stdin ?? 'ignore', stdio?.stdout ?? 'ignore', 'pipe'] };
  return existsSync(setprivPath)
    ? nodeSpawn(setprivPath, ['--pdeathsig', 'KILL', '--', command, ...args], options)
    : nodeSpawn(command, args, options);
};

async function main(): Promise<void> {
  if (process.send === undefined) throw new Error('media-child: start with an IPC channel (ProcessMedia)');
  process.once('disconnect', killGroup);
  const init = await new Promise<Extract<ToChild, { type: 'init' }>>((resolve) => {
    const onMessage = (message: ToChild) => {
      // Asked to stop before werift is even loaded: nothing to tear down.
      if (message.type === 'stop') killGroup();
      if (message.type !== 'init') return;
      process.off('message', onMessage);
      resolve(message);
    };
    process.on('message', onMessage);
  });
  armDeathSignal(init.parentPid);
  const log = createLogger({ level: init.logLevel }).child({ mod: 'media', pid: process.pid });
  // The expensive part (werift, about 30 MiB): loaded here, while the child waits for a look.
  const { WebRtcMedia } = await import('./webrtc-media.js');
  try {
    const { warmUp } = await import('./warm-up.js');
    const warmUpMs = await warmUp();
    log.debug({ warmUpMs: Math.round(warmUpMs) }, 'media process warmed up');
  } catch (error) {
    log.debug({ err: String(error) }, 'media warm-up failed; the first look pays for it');
  }
  const media = new WebRtcMedia(
    { log, now: Date.now, ffmpegPath: init.ffmpegPath, spawn: spawnWithDeathSignal },
    init.settings,
  );
  if (init.prepare !== undefined) {
    // After the warm-up: ffmpeg's start-up (mostly loading its libraries) then costs the look nothing.
    const { viewMode, dir } = init.prepare;
    await media.prepare(viewMode, dir).then(
      (prepared) => log.debug({ viewMode, prepared }, 'encoder prepared for the next look'),
      (error: unknown) => log.warn({ err: String(error) }, 'encoder not prepared; the look spawns it'),
    );
  }
  media.on('camera-controls', (sessionId, report) => send({ type: 'camera-controls', sessionId, report }));
  const gates = new Map<string, boolean>();
  const videos = new Map<string, VideoSession>();
  media.on('video', (sessionId, video) => {
    videos.set(sessionId, video);
    send({ type: 'video', sessionId, encoderPid: video.encoderPid, timings: video.timings });
    // ffmpeg starts with the offer: its pid is news for tests and benches.
    const watch = setInterval(() => {
      if (video.encoderPid === undefined) return;
      clearInterval(watch);
      send({ type: 'video', sessionId, encoderPid: video.encoderPid, timings: video.timings });
    }, 10);
    video.once('end', () => clearInterval(watch));
    video.on('streaming', () =>
      send({ type: 'streaming', sessionId, timings: video.timings, stats: video.stats }),
    );
  });
  const handle = (message: ToChild): void => {
    switch (message.type) {
      case 'init':
        return;
      case 'start': {
        const { sessionId } = message.look;
        gates.set(sessionId, message.gateOpen);
        const request: MediaRequest = { ...message.look, allowFrames: () => gates.get(sessionId) === true };
        const sink: MediaSink = {
          offer: (sdp) => send({ type: 'offer', sessionId, sdp }),
          candidate: (candidate) => send({ type: 'candidate', sessionId, candidate }),
          streaming: () => undefined,
          failed: (reason, detail) => send({ type: 'failed', sessionId, reason, detail }),
        };
        media.start(request, sink);
        return;
      }
      case 'gate':
        if (gates.has(message.sessionId)) gates.set(message.sessionId, message.open);
        return;
      case 'answer':
        media.applyAnswer(message.sessionId, message.sdp);
        return;
      case 'candidate':
        media.addCandidate(message.sessionId, message.candidate);
        return;
      case 'stop':
        gates.set(message.sessionId, false);
        // One look per process: once its media is down the process exits, and the parent kills the
        // group anyway at its deadline.
        media
          .stop(message.sessionId)
          .catch((error: unknown) => log.error({ err: error }, 'media did not stop cleanly'))
          .finally(() => {
            const video = videos.get(message.sessionId);
            const final: FromChild = video
              ? { type: 'stopped', sessionId: message.sessionId, stats: video.stats, timings: video.timings }
              : { type: 'stopped', sessionId: message.sessionId, stats: undefined, timings: undefined };
            send(final, killGroup);
          });
        return;
    }
  };
  process.on('message', handle);
  send({ type: 'ready' });
}

main().catch((error: unknown) => {
  console.error('media-child failed:', error);
  killGroup();
});
