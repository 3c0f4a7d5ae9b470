// The local demo: a mosquitto on loopback (plain listener for the device, WebSocket listener for the
// page), a demo signing key standing in for the central service, a schedule whose window is open now,
// the device service in-process on simulated GPIO with ffmpeg's test picture, and the reference viewer
// served on 127.0.0.1. Run with `scripts/demo` (installs what is missing) or `npx tsx scripts/demo.ts`.
//
//   --port N   port of the viewer page (default 8765; 0 = any free port)
//   --size WxH picture size (default 1280x720)
//
// Ctrl-C stops everything: the view ends (LED off, ffmpeg stopped), the device goes offline, the broker
// exits. A second Ctrl-C, or 5 s without finishing, exits at once.
import { parseArgs } from 'node:util';
import { createLogger } from '../device/log/index.js';
import { startFleetForDemo } from '../fleet/index.js';
import { startBroker } from './devstack/broker.js';
import { startLookStack } from './devstack/look-stack.js';

const shutdownDeadlineMs = 5000;

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: { port: { type: 'string', default: '8765' }, size: { type: 'string', default: '1280x720' } },
  });
  const [width, height] = (values.size ?? '1280x720').split('x').map(Number);
  if (!width || !height) throw new Error('--size must look like 1280x720');
  const log = createLogger({ level: 'info', pretty: true });

  const broker = await startBroker({ websockets: true, plain: true });
  const stack = await startLookStack({
    brokerUrl: broker.plainUrl!,
    page: { brokerUrl: broker.wsUrl!, ...broker.wsCredentials('console-1') },
    log,
    camera: { width, height, fps: 15 },
    httpPort: Number(values.port),
  }).catch(async (error: unknown) => {
    await broker.stop();
    throw error;
  });
  await stack.setSchedule('open');
  const fleet = await startFleetForDemo({
    brokerUrl: broker.plainUrl!,
    mqtt: broker.plainOptions('ops'),
    log,
    port: Number(values.port) + 1,
  });

  console.log(`
  Trygghetskamera demo is running.

    Viewer:  ${stack.server!.url}
    Fleet:   ${fleet.url} (the operations page: every device, the check-ins at risk)
    Device:  ${stack.deviceId} (simulated GPIO, ffmpeg test picture ${width}x${height})
    Broker:  ${broker.plainUrl} (device), ${broker.wsUrl} (page, user "console-1")

  In the page: "Look in" signs a demo grant and asks the device; "Press the privacy button" presses the
  simulated button (press again to turn privacy off). Switch the schedule from another shell:
    curl -X POST -H 'x-demo: 1' '${stack.server!.url}schedule?kind=closing'   (window closes in ~3 min)
    curl -X POST -H 'x-demo: 1' '${stack.server!.url}schedule?kind=closed'    (looks are refused)
    curl -X POST -H 'x-demo: 1' '${stack.server!.url}schedule?kind=blurred'   (also: low-resolution, open)

  Ctrl-C stops everything.
`);

  return new Promise<number>((resolve) => {
    let stopping = false;
    const onSignal = (signal: NodeJS.Signals, number: number) => {
      if (stopping) process.exit(128 + number);
      stopping = true;
      log.info({ signal }, 'demo stopping');
      setTimeout(() => {
        log.error('shutdown deadline passed; exiting hard');
        process.exit(128 + number);
      }, shutdownDeadlineMs).unref();
      fleet
        .stop()
        .then(() => stack.stop())
        .then(() => broker.stop())
        .then(
          () => resolve(0),
          () => resolve(1),
        );
    };
    process.on('SIGINT', () => onSignal('SIGINT', 2));
    process.on('SIGTERM', () => onSignal('SIGTERM', 15));
  });
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error('demo: fatal:', error);
    process.exit(1);
  },
);
