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
