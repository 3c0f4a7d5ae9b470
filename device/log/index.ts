// Logging: one pino root per process, one child per concern (`log.child({ mod: 'auth' })`).
// JSON to stdout for journald by default; pretty output for the demo.
import { type Logger, pino } from 'pino';

export type { Logger } from 'pino';

export interface LogOptions {
  level?: string;
  pretty?: boolean;
}

export function createLogger(options: LogOptions = {}): Logger {
  const level = options.level ?? 'info';
  if (options.pretty) {
    return pino({
      level,
      transport: { target: 'pino-pretty', options: { colorize: true, ignore: 'pid,hostname' } },
    });
  }
  // Never log secrets: tokens and keys are redacted wherever they appear under these names.
  return pino({ level, redact: ['token', 'grant', '*.token', '*.grant', 'key', '*.privateKey'] });
}

/** A logger that drops everything; for tests that do not look at logs. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

/**
 * Emits an event so that a listener that throws (or an async one that rejects) cannot break the emitter
 * or keep the other listeners from hearing it: the error is logged. The one such wrapper in the service.
 */
export function emitSafely<Events extends Record<keyof Events, unknown[]>, K extends keyof Events & string>(
  emitter: { rawListeners(event: K): unknown[] },
  log: Logger,
  event: K,
  ...args: Events[K]
): void {
  for (const listener of emitter.rawListeners(event) as Array<(...a: Events[K]) => unknown>) {
    try {
      const result = listener.apply(emitter, args);
      if (result instanceof Promise) {
        result.catch((err: unknown) => log.error({ err, event }, 'a listener rejected; ignored'));
      }
    } catch (err) {
      log.error({ err, event }, 'a listener threw; ignored');
    }
  }
}
