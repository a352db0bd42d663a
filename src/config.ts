/**
 * Settings: defaults, then the environment (the cluster secret only), then the config file
 * (--config, JSON), then command-line flags, each validated with a message that names the flag,
 * key or variable at fault.
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { NODE_ID_PATTERN } from './cluster/types.js';
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
  /** the port peers reach this node on; set, it turns cluster mode on (port 0 picks a free port) */
  peerListen: Endpoint | null;
  /** seed peers ("host:port") to join through; any one that answers is enough. Needs peerListen. */
  peers: string[];
  /**
   * this node's stable identity in the cluster. In cluster mode it defaults to
   * defaultNodeId(os.hostname(), peerListen.port); it stays null only when peerListen's port is 0,
   * for the daemon to derive from the port it bound.
   */
  nodeId: string | null;
  /** sync: a write is acknowledged once the backup has it; async: once the master has it */
  replication: ReplicationMode;
  /**
   * shared secret peers prove to each other (never sent); required with peerListen.
   * NEVER log it, nor any object that holds it (log chosen fields, as daemon.ts does), nor put it
   * in an error message.
   */
  clusterSecret: string | null;
  /** how often heartbeats go to each peer */
  heartbeatMs: number;
  /** silence after which a peer is declared dead; at least 3 heartbeats */
  failureTimeoutMs: number;
  /** on SIGTERM/SIGINT, how long a cluster node may spend handing its sessions over; 0 = leave without handing over */
  drainTimeoutMs: number;
  /** php-memcached's memcached.sess_prefix: how session and lock keys are recognised (routing-key.ts) */
  sessionPrefix: string;
}

export const REPLICATION_MODES = ['sync', 'async'] as const;
export type ReplicationMode = (typeof REPLICATION_MODES)[number];

/** The environment variable that gives the cluster secret when neither the file nor a flag does. */
export const CLUSTER_SECRET_ENV = 'SESSION_CLUSTER_SECRET';
/** Below this a secret is guessable; 16 characters is a short random password. */
export const MIN_SECRET_LENGTH = 16;
export const MIN_HEARTBEAT_MS = 10;
/** A peer must miss this many heartbeats in a row before it is declared dead: one lost or late heartbeat is not a failure. */
export const HEARTBEATS_PER_FAILURE_TIMEOUT = 3;

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
  peerListen: null,
  peers: [],
  nodeId: null,
  replication: 'sync',
  clusterSecret: null,
  // A crash is served by the backup about this long after it happens (measured: failure timeout
  // + ~20 ms, bench/CLUSTER-RESULTS.md): 800 ms keeps failover under 1 s with 4 heartbeats of margin.
  heartbeatMs: 200,
  failureTimeoutMs: 800,
  // Handing over is a copy at peer-link speed (about 100 MB/s on loopback); 30 s covers a node
  // full of sessions with room to spare, and stays under systemd's default stop timeout (90 s).
  drainTimeoutMs: 30_000,
  sessionPrefix: 'memc.sess.key.',
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
  peerListen: '--peer-listen',
  peers: '--peers',
  nodeId: '--node-id',
  replication: '--replication',
  clusterSecret: '--cluster-secret',
  heartbeatMs: '--heartbeat-ms',
  failureTimeoutMs: '--failure-timeout-ms',
  drainTimeoutMs: '--drain-timeout-ms',
  sessionPrefix: '--session-prefix',
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

/** HOST:PORT, with [v6]:PORT for IPv6 addresses and :PORT for every address; null if it is not one. */
function matchEndpoint(text: string): Endpoint | null {
  const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(text);
  const port = match ? Number(match[3]) : NaN;
  if (!match || port > 65535) return null;
  const host = match[1] ?? match[2]!;
  return { host: host === '' ? '0.0.0.0' : host, port };
}

export function parseEndpoint(value: unknown, name: string): Endpoint {
  if (typeof value !== 'string') throw new ConfigError(`${name}: expected a "HOST:PORT" string, e.g. "127.0.0.1:11211"`);
  const endpoint = matchEndpoint(value);
  if (!endpoint) throw new ConfigError(`${name}: "${value}" is not HOST:PORT, e.g. 127.0.0.1:11211 (port 0 picks a free port)`);
  return endpoint;
}

function parseOptionalEndpoint(value: unknown, name: string): Endpoint | null {
  if (value === null || value === '') return null;
  return parseEndpoint(value, name);
}

/**
 * Seed peers: "host:port,host:port" (a flag, or the file), or a JSON array of "host:port" strings;
 * each read like --listen but with a real port, and given back as "host:port" ("[v6]:port").
 */
export function parsePeers(value: unknown, name: string): string[] {
  const PEERS_EXAMPLE = 'e.g. 10.0.0.2:11212,10.0.0.3:11212';
  let entries: unknown[];
  if (typeof value === 'string') entries = value.split(',');
  else if (Array.isArray(value)) entries = value;
  else throw new ConfigError(`${name}: expected "HOST:PORT,..." or an array of "HOST:PORT" strings, ${PEERS_EXAMPLE}`);
  const peers: string[] = [];
  for (const entry of entries) {
    if (typeof entry !== 'string') throw new ConfigError(`${name}: ${JSON.stringify(entry)} is not a "HOST:PORT" string, ${PEERS_EXAMPLE}`);
    const text = entry.trim();
    if (text === '' && typeof value === 'string') continue; // "a:1," or an empty flag
    const endpoint = matchEndpoint(text);
    if (!endpoint || endpoint.port === 0) throw new ConfigError(`${name}: "${text}" is not HOST:PORT with a port from 1 to 65535, ${PEERS_EXAMPLE}`);
    peers.push(endpoint.host.includes(':') ? `[${endpoint.host}]:${endpoint.port}` : `${endpoint.host}:${endpoint.port}`);
  }
  return peers;
}

function wholeNumber(min: number): (value: unknown, name: string) => number {
  return (value, name) => {
    const number = typeof value === 'number' ? value : /^\s*\d+\s*$/.test(String(value)) ? Number(value) : NaN;
    if (!Number.isSafeInteger(number) || number < min) throw new ConfigError(`${name}: "${String(value)}" is not a whole number of at least ${min}`);
    return number;
  };
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


function parseNodeId(value: unknown, name: string): string | null {
  if (value === null || value === '') return null;
  if (typeof value === 'string' && NODE_ID_PATTERN.test(value)) return value;
  throw new ConfigError(`${name}: "${String(value)}" is not a node id; use 1 to 64 of A-Z a-z 0-9 _ . -`);
}

/** What memcached accepts in a key, shorter than any key: the prefix is part of every session key. */
const SESSION_PREFIX_PATTERN = /^[\x21-\x7e]{0,200}$/;

function parseSessionPrefix(value: unknown, name: string): string {
  if (typeof value === 'string' && SESSION_PREFIX_PATTERN.test(value)) return value;
  throw new ConfigError(`${name}: "${String(value)}" is not a key prefix; use up to 200 printable ASCII characters without spaces, the same as memcached.sess_prefix in php.ini ("" for none)`);
}

function parseReplication(value: unknown, name: string): ReplicationMode {
  if (typeof value === 'string' && (REPLICATION_MODES as readonly string[]).includes(value)) return value as ReplicationMode;
  throw new ConfigError(`${name}: "${String(value)}" is not a replication mode; use one of ${REPLICATION_MODES.join(', ')}`);
}

/** Messages give the secret's length, never the secret. */
function parseSecret(value: unknown, name: string): string {
  if (typeof value !== 'string') throw new ConfigError(`${name}: expected a string`);
  if (value.length < MIN_SECRET_LENGTH) {
    throw new ConfigError(`${name}: the cluster secret has ${value.length} characters; use at least ${MIN_SECRET_LENGTH}`);
  }
  return value;
}

/**
 * The default node id: `${hostname}-${port}`, anything outside [A-Za-z0-9_.-] replaced by "-" and
 * the host name shortened so the whole fits 64 characters. Derived, not random, so it is stable
 * across restarts of the same host and peer port: a restarted node comes back as the same member,
 * and takes back its sessions (rejoin) instead of appearing as a stranger next to its own ghost.
 */
export function defaultNodeId(host: string, port: number): string {
  const suffix = `-${port}`;
  const name = host.replace(/[^A-Za-z0-9_.-]/g, '-').slice(0, 64 - suffix.length);
  return `${name === '' ? 'node' : name}${suffix}`;
}

const PARSERS: { [K in keyof Settings]: (value: unknown, name: string) => Settings[K] } = {
  listen: parseEndpoint,
  socket: parsePath,
  socketMode: parseMode,
  maxItemSize: parseSize,
  memoryLimit: parseSize,
  maxConnections: wholeNumber(1),
  logLevel: parseLogLevel,
  peerListen: parseOptionalEndpoint,
  peers: parsePeers,
  nodeId: parseNodeId,
  replication: parseReplication,
  clusterSecret: parseSecret,
  heartbeatMs: wholeNumber(MIN_HEARTBEAT_MS),
  failureTimeoutMs: wholeNumber(1),
  drainTimeoutMs: wholeNumber(0),
  sessionPrefix: parseSessionPrefix,
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

/**
 * Defaults, overridden by the file's settings, overridden by the flags' (both raw). The environment
 * gives only the cluster secret (SESSION_CLUSTER_SECRET), and only when neither the file nor a flag
 * does: a secret kept out of the command line, where `ps` would show it to every user.
 */
export function resolveSettings(
  fromFile: RawSettings, fromFlags: RawSettings, filePath = 'config file', env: NodeJS.ProcessEnv = process.env,
): Settings {
  const settings: Settings = { ...DEFAULTS };
  // An empty variable counts as unset, as shells and compose files leave them.
  const envSecret = env[CLUSTER_SECRET_ENV];
  if (fromFile.clusterSecret === undefined && fromFlags.clusterSecret === undefined && envSecret !== undefined && envSecret !== '') {
    settings.clusterSecret = parseSecret(envSecret, CLUSTER_SECRET_ENV);
  }
  const apply = (raw: RawSettings, describe: (key: keyof Settings) => string) => {
    for (const key of Object.keys(PARSERS) as Array<keyof Settings>) {
      if (raw[key] === undefined) continue;
      (settings as unknown as Record<string, unknown>)[key] = PARSERS[key](raw[key], describe(key));
    }
  };
  apply(fromFile, (key) => `${filePath}: "${key}"`);
  apply(fromFlags, (key) => FLAG_NAMES[key]);
  checkItemSize(settings);
  checkCluster(settings);
  if (settings.peerListen !== null && settings.nodeId === null && settings.peerListen.port !== 0) {
    settings.nodeId = defaultNodeId(hostname(), settings.peerListen.port);
  }
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

/** The cluster settings that depend on each other. */
function checkCluster(settings: Settings): void {
  if (settings.peers.length > 0 && settings.peerListen === null) {
    throw new ConfigError('--peers (peers): seed peers need --peer-listen (peerListen), the address peers reach this node on');
  }
  if (settings.peerListen !== null && settings.clusterSecret === null) {
    throw new ConfigError(
      `--peer-listen (peerListen) needs a cluster secret: set --cluster-secret (clusterSecret) or the ${CLUSTER_SECRET_ENV} environment variable, the same on every node`,
    );
  }
  if (settings.failureTimeoutMs < HEARTBEATS_PER_FAILURE_TIMEOUT * settings.heartbeatMs) {
    throw new ConfigError(
      `--failure-timeout-ms (failureTimeoutMs): ${settings.failureTimeoutMs} is less than ${HEARTBEATS_PER_FAILURE_TIMEOUT} times --heartbeat-ms (heartbeatMs, ${settings.heartbeatMs}); a peer must miss ${HEARTBEATS_PER_FAILURE_TIMEOUT} heartbeats before it is declared dead`,
    );
  }
}
