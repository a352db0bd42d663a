/** The pino factory: JSON, one line per event, on stdout. */
import { pino, type Logger } from 'pino';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export function createLogger(level: LogLevel): Logger {
  const destination = pino.destination({ dest: 1, sync: true });
  // A reader of stdout that went away (a closed pipe, a restarted journal) must not take the
  // daemon with it, nor stop it from stopping: lost log lines are the lesser harm.
  destination.on('error', () => undefined);
  return pino({ level, base: { pid: process.pid, name: 'session-cluster' } }, destination);
}

export type { Logger };
