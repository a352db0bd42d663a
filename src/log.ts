/**
 * The pino factory: one line per event on stdout, as JSON (for journald, jq and log shippers) or
 * as pino-pretty's human lines (for an operator at a terminal).
 */
import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export const LOG_FORMATS = ['json', 'pretty'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

/** The format when none is set: pretty for a person at a terminal, JSON for anything reading a pipe or a file. */
export function defaultLogFormat(stdoutIsTerminal = process.stdout.isTTY === true): LogFormat {
  return stdoutIsTerminal ? 'pretty' : 'json';
}

export function createLogger(level: LogLevel, format: LogFormat = 'json'): Logger {
  const destination = pino.destination({ dest: 1, sync: true });
  // A reader of stdout that went away (a closed pipe, a restarted journal) must not take the
  // daemon with it, nor stop it from stopping: lost log lines are the lesser harm.
  destination.on('error', () => undefined);
  const options = { level, base: { pid: process.pid, name: 'session-cluster' } };
  if (format === 'json') return pino(options, destination);
  // Synchronous like the JSON destination, so that the last lines before an exit are written.
  // One line per event, its fields after the message: a log is read line by line.
  return pino(options, pretty({ destination, sync: true, singleLine: true, translateTime: 'SYS:standard' }));
}

export type { Logger };
