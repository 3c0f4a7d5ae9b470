// Entry point of the fleet service for operations (`npm run fleet -- …`): reads the options, the TLS
// files and the environment, starts one instance and stops it on SIGINT/SIGTERM within a deadline.
//
//   npm run fleet -- --broker mqtts://broker:8883 --ca ca.pem --cert ops.pem --key ops-key.pem \
//     [--instance a] [--db fleet.db | --db postgres://user@host/db] [--host 127.0.0.1] [--port 8080] \
//     [--webhook https://alerts.example/hook] [--horizon-h 12] [--time-zone Europe/Stockholm] [--group fleet]
//
// Environment, for the same options: TK_FLEET_BROKER, TK_FLEET_DB, TK_FLEET_WEBHOOK, TK_FLEET_INSTANCE.
// Run several instances with different --instance values and the same --db and --group: the broker
// splits the messages between them, and any of them serves the whole fleet.
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { startFleet } from './service.js';

const shutdownDeadlineMs = 5000;
const usage =
  'Usage: npm run fleet -- --broker URL [--ca FILE --cert FILE --key FILE] [--instance NAME] [--db FILE|postgres://…] [--host H] [--port N] [--webhook URL] [--horizon-h H] [--time-zone TZ] [--group NAME] [--retained-sync-ms MS] [--retained-refresh-s S]';

export async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        broker: { type: 'string' },
        ca: { type: 'string' },
        cert: { type: 'string' },
        key: { type: 'string' },
        instance: { type: 'string' },
        db: { type: 'string' },
        host: { type: 'string' },
        port: { type: 'string' },
        webhook: { type: 'string' },
        'horizon-h': { type: 'string' },
        'time-zone': { type: 'string' },
        group: { type: 'string' },
        'retained-sync-ms': { type: 'string' },
        'retained-refresh-s': { type: 'string' },
        'log-level': { type: 'string' },
        help: { type: 'boolean' },
      },
    }));
  } catch (error) {
    console.error(`${(error as Error).message}\n${usage}`);
    return 64;
  }
  const text = (name: string, fallback?: string): string | undefined => {
    const value = values[name];
    return typeof value === 'string' ? value : fallback;
  };
  const broker = text('broker', env.TK_FLEET_BROKER);
  if (values.help || broker === undefined) {
    console.error(usage);
    return values.help ? 0 : 64;
  }
  const numberOf = (name: string, fallback: number): number => {
    const value = Number(text(name) ?? fallback);
    if (!Number.isFinite(value) || value < 0) throw new Error(`--${name} must be a non-negative number`);
    return value;
  };
  const log = pino({ level: text('log-level', 'info') ?? 'info' }).child({ mod: 'fleet' });
  const files = async (name: string) => {
    const path = text(name);
    return path === undefined ? undefined : readFile(path);
  };
  const [ca, cert, key] = await Promise.all([files('ca'), files('cert'), files('key')]);
  const controller = new AbortController();
  let fleet: Awaited<ReturnType<typeof startFleet>> | undefined;
  let exitCode = 0;
  const stopped = new Promise<void>((resolveStopped) => {
    const onSignal = (signal: NodeJS.Signals, number: number) => {
      log.info({ signal }, 'stopping');
      controller.abort();
      setTimeout(() => process.exit(128 + number), shutdownDeadlineMs).unref();
      resolveStopped();
    };
    process.once('SIGINT', () => onSignal('SIGINT', 2));
    process.once('SIGTERM', () => onSignal('SIGTERM', 15));
  });
  try {
    fleet = await startFleet(
      {
        instance: text('instance', env.TK_FLEET_INSTANCE ?? hostname()) ?? 'fleet',
        mqtt: {
          url: broker,
          ...(ca ? { ca, rejectUnauthorized: true } : {}),
          ...(cert ? { cert } : {}),
          ...(key ? { key } : {}),
        },
        database: text('db', env.TK_FLEET_DB ?? 'fleet.db') ?? 'fleet.db',
        http: { host: text('host', '127.0.0.1') ?? '127.0.0.1', port: numberOf('port', 8080) },
        webhookUrl: text('webhook', env.TK_FLEET_WEBHOOK),
        risk: {
          horizonMs: numberOf('horizon-h', 12) * 3600_000,
          timeZone: text('time-zone', 'Europe/Stockholm') ?? 'Europe/Stockholm',
        },
        group: text('group', 'fleet') ?? 'fleet',
        retainedSyncMs: numberOf('retained-sync-ms', 3000),
        retainedRefreshMs: numberOf('retained-refresh-s', 120) * 1000,
      },
      { log, signal: controller.signal },
    );
    // One line on stdout for whoever started us (tests, scripts): where the page is.
    console.log(JSON.stringify({ fleet: 'started', url: fleet.url }));
  } catch (error) {
    if (!controller.signal.aborted) {
      log.error({ err: (error as Error).message }, 'fleet service failed to start');
      return 1;
    }
  }
  await stopped;
  if (fleet) exitCode = await fleet.stop();
  return exitCode;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = await main(process.argv.slice(2), process.env);
}
