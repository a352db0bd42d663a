/** The pino factory: JSON, one line per event, on stdout. */
import { pino, type Logger } from 'pino';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export function createLogger(level: LogLevel): Logger {
  return pino({ level, base: { pid: process.pid, name: 'session-cluster' } });
}

export type { Logger };
