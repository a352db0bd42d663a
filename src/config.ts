/**
 * Settings: defaults, then the config file (--config, JSON), then command-line flags, each
 * validated with a message that names the flag or key at fault.
 */
import { readFileSync } from 'node:fs';
import { ConfigError } from './errors.js';
import { LOG_LEVELS, type LogLevel } from './log.js';

export interface Endpoint {
  host: string;
  port: number;
}

export interface Settings {
  /** TCP listener for PHP (memcached protocol, ascii and binary) */
  listen: Endpoint;
  /** unix socket listener for PHP on the same host, or null */
  socket: string | null;
  /** permission bits of the unix socket file */
  socketMode: number;
  /** largest value accepted, like memcached -I */
  maxItemSize: number;
  /** memory for items; least recently used items are evicted beyond it, like memcached -m */
  memoryLimit: number;
  /** connections beyond this get "ERROR Too many open connections" and are closed, like memcached -c */
  maxConnections: number;
  logLevel: LogLevel;
}

const MiB = 1024 * 1024;

export const DEFAULTS: Settings = {
  listen: { host: '127.0.0.1', port: 11211 },
  socket: null,
  socketMode: 0o660,
  maxItemSize: 1 * MiB,
  // memcached's 64 MB would evict live sessions on a busy farm: sessions are not a cache.
  memoryLimit: 1024 * MiB,
  maxConnections: 1024,
  logLevel: 'info',
};

/** Raw values as given: strings from flags, any JSON value from the file. */
export type RawSettings = Partial<Record<keyof Settings, unknown>>;

/** The flag that sets each setting, for messages; the config file uses the setting's own name. */
export const FLAG_NAMES: Record<keyof Settings, string> = {
  listen: '--listen',
  socket: '--socket',
  socketMode: '--socket-mode',
  maxItemSize: '--max-item-size',
  memoryLimit: '--memory-limit',
  maxConnections: '--max-connections',
  logLevel: '--log-level',
};

const SIZE_UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, kb: 1024, kib: 1024, m: MiB, mb: MiB, mib: MiB, g: 1024 * MiB, gb: 1024 * MiB, gib: 1024 * MiB };

/** "1048576", "512k", "64MiB", "1g": binary units, as memcached's -m and -I read them. */
export function parseSize(value: unknown, name: string): number {
  if (typeof value === 'number' && Number.isSafeInteger(value) && value > 0) return value;
  const match = typeof value === 'string' ? /^\s*(\d+)\s*([a-z]*)\s*$/i.exec(value) : null;
  const unit = match ? SIZE_UNITS[match[2]!.toLowerCase()] : undefined;
  if (!match || unit === undefined || Number(match[1]) <= 0 || !Number.isSafeInteger(Number(match[1]) * unit)) {
    throw new ConfigError(`${name}: "${String(value)}" is not a size; use bytes or a unit, e.g. 1048576, 512k, 64m, 1g`);
  }
  return Number(match[1]) * unit;
}

export function parseEndpoint(value: unknown, name: string): Endpoint {
  if (typeof value !== 'string') throw new ConfigError(`${name}: expected a "HOST:PORT" string, e.g. "127.0.0.1:11211"`);
  const text = value;
  // HOST:PORT, with [v6]:PORT for IPv6 addresses
  const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(text);
  const port = match ? Number(match[3]) : NaN;
  if (!match || port > 65535) throw new ConfigError(`${name}: "${text}" is not HOST:PORT, e.g. 127.0.0.1:11211 (port 0 picks a free port)`);
  const host = match[1] ?? match[2]!;
  return { host: host === '' ? '0.0.0.0' : host, port };
}

function parseCount(value: unknown, name: string): number {
  const number = typeof value === 'number' ? value : /^\s*\d+\s*$/.test(String(value)) ? Number(value) : NaN;
  if (!Number.isSafeInteger(number) || number < 1) throw new ConfigError(`${name}: "${String(value)}" is not a whole number of at least 1`);
  return number;
}

function parseMode(value: unknown, name: string): number {
  // A JSON number such as 660 is read as the octal digits it was written with.
  const text = String(value);
  if (!/^0?[0-7]{3}$/.test(text)) throw new ConfigError(`${name}: "${text}" is not an octal file mode, e.g. 0660`);
  return parseInt(text, 8);
}

function parseLogLevel(value: unknown, name: string): LogLevel {
  if (typeof value === 'string' && (LOG_LEVELS as readonly string[]).includes(value)) return value as LogLevel;
  throw new ConfigError(`${name}: "${String(value)}" is not a log level; use one of ${LOG_LEVELS.join(', ')}`);
}

function parsePath(value: unknown, name: string): string | null {
  if (value === null || value === '') return null;
  if (typeof value !== 'string') throw new ConfigError(`${name}: expected a file path`);
  return value;
}

const PARSERS: { [K in keyof Settings]: (value: unknown, name: string) => Settings[K] } = {
  listen: parseEndpoint,
  socket: parsePath,
  socketMode: parseMode,
  maxItemSize: parseSize,
  memoryLimit: parseSize,
  maxConnections: parseCount,
  logLevel: parseLogLevel,
};

/** Reads a JSON config file whose keys are the settings' names (listen, maxItemSize, …). */
export function readConfigFile(path: string): RawSettings {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(`--config: cannot read ${path}: ${(error as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(`--config: ${path} is not valid JSON: ${(error as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new ConfigError(`--config: ${path} must hold a JSON object of settings`);
  }
  for (const key of Object.keys(parsed)) {
    if (!(key in PARSERS)) throw new ConfigError(`--config: ${path}: unknown setting "${key}"; known settings: ${Object.keys(PARSERS).join(', ')}`);
  }
  return parsed as RawSettings;
}

/** Defaults, overridden by the file's settings, overridden by the flags' (both raw). */
export function resolveSettings(fromFile: RawSettings, fromFlags: RawSettings, filePath = 'config file'): Settings {
  const settings: Settings = { ...DEFAULTS };
  const apply = (raw: RawSettings, describe: (key: keyof Settings) => string) => {
    for (const key of Object.keys(PARSERS) as Array<keyof Settings>) {
      if (raw[key] === undefined) continue;
      (settings as unknown as Record<string, unknown>)[key] = PARSERS[key](raw[key], describe(key));
    }
  };
  apply(fromFile, (key) => `${filePath}: "${key}"`);
  apply(fromFlags, (key) => FLAG_NAMES[key]);
  checkItemSize(settings);
  return settings;
}

/** memcached's own bounds for -I: at least 1 KiB, and at most half of the memory limit (-m). */
function checkItemSize(settings: Settings): void {
  if (settings.maxItemSize < 1024) {
    throw new ConfigError(`--max-item-size (maxItemSize): ${settings.maxItemSize} is below the 1024-byte minimum`);
  }
  if (settings.maxItemSize > settings.memoryLimit / 2) {
    throw new ConfigError(`--max-item-size (maxItemSize): ${settings.maxItemSize} is more than half of --memory-limit (memoryLimit, ${settings.memoryLimit}); raise the memory limit or lower the item size`);
  }
}
