// The device half of the look stack in a process of its own, for benches that measure the device
// service's own CPU, memory, descriptors and children without the viewer's cost mixed in. The parent
// starts it with the broker's plain URL, then drives it over the IPC channel: it asks for a schedule
// and grants (signed here, by the stack's demo central key) and for the running encoder's pid.
//   child_process.fork('scripts/devstack/look-device.ts', [brokerUrl, width, height, fps], { execArgv: ['--import', 'tsx'] })
import { createLogger, silentLogger } from '../../device/log/index.js';
import { ProcessMedia } from '../../device/view/process-media.js';
import { type LookStackOptions, type ScheduleKind, startLookStack } from './look-stack.js';
import type { GrantHolder } from './viewer-server.js';

export type DeviceRequest =
  /** A schedule with a window open now (default `open`, a full view). */
  | { id: number; type: 'schedule'; kind?: ScheduleKind }
  | { id: number; type: 'grant'; holder: GrantHolder }
  | { id: number; type: 'encoder-pid' }
  /** The running look's media process and ffmpeg, and the stand-by media process. */
  | { id: number; type: 'media-pids' }
  /** A full garbage collection (the child runs with --expose-gc), then process.memoryUsage(). */
  | { id: number; type: 'memory' }
  /** The viewing LED (lit or not) and the running look, if any. */
  | { id: number; type: 'view-state' }
  /** The broker connection: connected, reconnects, TLS sessions resumed. */
  | { id: number; type: 'link' }
  | { id: number; type: 'stop' };

/** Instead of positional arguments, one JSON argument (the network lab: TLS broker, TURN, config). */
export type LookDeviceOptions = Pick<
  LookStackOptions,
  'brokerUrl' | 'camera' | 'loopbackOnly' | 'tls' | 'turn' | 'config' | 'negotiationTimeoutMs'
> & {
  /** Log to stderr at this level (default: silent). */
  logLevel?: string;
};

export interface LinkState {
  connected: boolean;
  reconnects: number;
  tlsSessionsResumed: number;
}

export interface ViewState {
  ledOn: boolean;
  activeSessionId: string | undefined;
  mediaSessions: string[];
}

export type DeviceReply =
  | { id: number; ok: true; value?: unknown }
  | { id: number; ok: false; error: string };

export interface MediaPids {
  childPid: number | undefined;
  encoderPid: number | undefined;
  warmPid: number | undefined;
}

/** First message of the child once its stack is up. */
export interface DeviceReady {
  type: 'ready';
  deviceId: string;
}

async function main(): Promise<void> {
  const [brokerUrl, width, height, fps] = process.argv.slice(2);
  if (brokerUrl === undefined || process.send === undefined) {
    throw new Error('usage: fork look-device.ts <brokerUrl> [width height fps] (with an IPC channel)');
  }
  const options: LookDeviceOptions = brokerUrl.startsWith('{')
    ? (JSON.parse(brokerUrl) as LookDeviceOptions)
    : {
        brokerUrl,
        loopbackOnly: true,
        camera: { width: Number(width ?? 1280), height: Number(height ?? 720), fps: Number(fps ?? 15) },
      };
  const stack = await startLookStack({
    ...options,
    log: options.logLevel ? createLogger({ level: options.logLevel }) : silentLogger(),
    // The stack keeps every session's media view and final stats for tests; a long run here must not
    // count that as the service's memory.
    keepSessions: false,
  });
  const reply = (message: DeviceReply): void => {
    process.send?.(message);
  };
  const handle = async (request: DeviceRequest): Promise<unknown> => {
    switch (request.type) {
      case 'schedule':
        return stack.setSchedule(request.kind ?? 'open');
      case 'grant':
        return stack.signGrant(request.holder);
      case 'encoder-pid': {
        const sessionId = stack.service.supervisor.activeSessionId;
        return sessionId === undefined ? undefined : stack.videos.get(sessionId)?.encoderPid;
      }
      case 'media-pids': {
        const sessionId = stack.service.supervisor.activeSessionId;
        const view = sessionId === undefined ? undefined : stack.videos.get(sessionId);
        return {
          childPid: view?.childPid,
          encoderPid: view?.encoderPid,
          warmPid: stack.media instanceof ProcessMedia ? stack.media.warmPid : undefined,
        } satisfies MediaPids;
      }
      case 'view-state':
        return {
          ledOn: stack.gpio.viewingLed.value,
          activeSessionId: stack.service.supervisor.activeSessionId,
          mediaSessions: stack.media.activeSessions,
        } satisfies ViewState;
      case 'link': {
        const link = stack.service.link;
        return {
          connected: link?.connected ?? false,
          reconnects: link?.reconnects ?? 0,
          tlsSessionsResumed: link?.tlsSessionsResumed ?? 0,
        } satisfies LinkState;
      }
      case 'memory':
        (globalThis as { gc?: () => void }).gc?.();
        return process.memoryUsage();
      case 'stop':
        await stack.stop();
        setImmediate(() => process.disconnect());
        return undefined;
    }
  };
  process.on('message', (request: DeviceRequest) => {
    handle(request).then(
      (value) => reply({ id: request.id, ok: true, value }),
      (error: unknown) => reply({ id: request.id, ok: false, error: String(error) }),
    );
  });
  // The parent went away without asking: stop cleanly rather than leave ffmpeg behind.
  process.once('disconnect', () => {
    void stack.stop().finally(() => process.exit(0));
  });
  process.send({ type: 'ready', deviceId: stack.deviceId } satisfies DeviceReady);
}

main().catch((error: unknown) => {
  console.error('look-device failed:', error);
  process.exit(1);
});
