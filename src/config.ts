/**
 * Settings: defaults, then the environment (the cluster secret only), then the config file
 * (--config, JSON), then command-line flags, each validated with a message that names the flag,
 * key or variable at fault.
 *
 * Each setting is declared once, in SETTINGS: its flag, config key, environment variable, default,
 * parser (which holds its validation messages) and help. The command line (main.ts), the config
 * file loader, `stats settings` and the reference in docs/configuration.md all come from it.
 */
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { createSecureContext } from 'node:tls';
import { type Endpoint, formatEndpoint, isWildcardHost, matchEndpoint } from './address.js';
import { ConfigError } from './errors.js';
import { LOG_FORMATS, LOG_LEVELS, type LogFormat, type LogLevel } from './log.js';
import { NODE_ID_PATTERN, NODE_ID_RULE, defaultNodeId } from './node-id.js';
import { AllowList, type AllowedBlock, parseBlock } from './security/allow-list.js';
import { AuthFile } from './security/client-auth.js';
import type { Stat } from './stats/registry.js';
import { FSYNC_POLICIES, type FsyncPolicy } from './store/disk/append-log.js';

export type { Endpoint };

/** A PEM file named by a flag, read once at start. */
export interface PemFile {
  path: string;
  pem: Buffer;
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
  /**
   * a client connection stuck this long in the middle of a request part (a command line or binary
   * header, or a value) is closed; 0: never. Idle connections between requests are never closed.
   */
  commandTimeoutMs: number;
  /**
   * on SIGTERM/SIGINT, how long the requests in progress (between a session's read and its write) may
   * take to write and release before their connections close; 0: closed at once
   */
  stopGraceMs: number;
  logLevel: LogLevel;
  /** json or pretty; null: pretty when stdout is a terminal, json otherwise (log.ts, defaultLogFormat) */
  logFormat: LogFormat | null;
  /** the address the peer listener binds; set, it turns cluster mode on (port 0 picks a free port) */
  peerListen: Endpoint | null;
  /**
   * the address this node announces, which other nodes dial; null: peerListen as written (with
   * the bound port). Never a wildcard and never port 0.
   */
  peerAdvertise: Endpoint | null;
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
  /** in a cluster of two, whether a node alone keeps serving (available) or waits for the other (consistent) */
  twoNodes: TwoNodeMode;
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
  /**
   * with --peers, how long a starting node may go without joining a peer before it exits non-zero;
   * 0 = wait forever (it serves nothing meanwhile)
   */
  joinTimeoutMs: number;
  /** php-memcached's memcached.sess_prefix: how session and lock keys are recognised (routing-key.ts) */
  sessionPrefix: string;
  /**
   * TLS on every peer link, both ways and mutual: all three set, or none. The certificate chain
   * this node presents, its private key (NEVER log it, like the secret), and the CA bundle a
   * peer's certificate must chain to.
   */
  peerTlsCert: PemFile | null;
  peerTlsKey: PemFile | null;
  peerTlsCa: PemFile | null;
  /** HTTP address of the Prometheus metrics endpoint (GET /metrics); none by default */
  metricsListen: Endpoint | null;
  /** where sessions are kept on disk (src/store/disk/); null: memory only */
  dataDir: string | null;
  /** when a write's log record is made durable: always (before the reply), everysec, no (the kernel decides) */
  fsync: FsyncPolicy;
  /** bytes the data files may take before writes are refused; null: no limit but the disk */
  diskLimit: number | null;
  /** at start, cut damage found in the middle of the data files instead of refusing to start */
  recoverTruncate: boolean;
  /** lock handoff: how long a session lock take may wait on the server for the lock's release; 0 = off */
  lockWaitMs: number;
  /** client addresses the client port accepts (null: any) */
  allow: AllowList | null;
  /** users and passwords clients authenticate with (null: no authentication) */
  authFile: AuthFile | null;
  /** refuse flush_all (memcached -F) */
  disableFlush: boolean;
  /** refuse `stats cachedump`, by which memcdump lists every key (memcached -X) */
  disableCachedump: boolean;
}

export const REPLICATION_MODES = ['sync', 'async'] as const;
/** What a node of a two-member cluster does alone (cluster/quorum.ts). */
export const TWO_NODE_MODES = ['available', 'consistent'] as const;
export type TwoNodeMode = (typeof TWO_NODE_MODES)[number];
export type ReplicationMode = (typeof REPLICATION_MODES)[number];

/** The environment variable that gives the cluster secret when neither the file nor a flag does. */
export const CLUSTER_SECRET_ENV = 'SESSION_CLUSTER_SECRET';
/** Below this a secret is guessable; 16 characters is a short random password. */
export const MIN_SECRET_LENGTH = 16;
export const MIN_HEARTBEAT_MS = 10;
/**
 * Below this a client whose request merely spans two reads could be cut off: the sweep that
 * enforces --command-timeout-ms looks at most every quarter of it (server/command-timeout.ts).
 */
export const MIN_COMMAND_TIMEOUT_MS = 100;
/** A peer must miss this many heartbeats in a row before it is declared dead: one lost or late heartbeat is not a failure. */
export const HEARTBEATS_PER_FAILURE_TIMEOUT = 3;

const MiB = 1024 * 1024;

/** Raw values as given: strings from flags, any JSON value from the file. */
export type RawSettings = Partial<Record<keyof Settings, unknown>>;

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
  const endpoint = matchEndpoint(value);
  if (!endpoint) throw new ConfigError(`${name}: "${value}" is not HOST:PORT, e.g. 127.0.0.1:11211 (port 0 picks a free port)`);
  return endpoint;
}

function parseOptionalEndpoint(value: unknown, name: string): Endpoint | null {
  if (value === null || value === '') return null;
  return parseEndpoint(value, name);
}

/** The announced peer address: one that other nodes can dial, so no wildcard and no port 0. */
function parseAdvertise(value: unknown, name: string): Endpoint | null {
  const endpoint = parseOptionalEndpoint(value, name);
  if (endpoint === null) return null;
  if (isWildcardHost(endpoint.host)) {
    throw new ConfigError(`${name}: "${String(value)}" is a wildcard address, which other nodes cannot dial; give the address they reach this node on, e.g. 10.0.0.1:11212`);
  }
  if (endpoint.port === 0) {
    throw new ConfigError(`${name}: "${String(value)}" has port 0; give the port other nodes reach this node on (1 to 65535), e.g. 10.0.0.1:11212`);
  }
  return endpoint;
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
    if (isWildcardHost(endpoint.host)) {
      // ":11212" or "0.0.0.0:11212" means "every address" when listening, and nothing to dial
      throw new ConfigError(`${name}: "${text}" has no host to dial; give the address the other node's --peer-listen is reached on, ${PEERS_EXAMPLE}`);
    }
    peers.push(formatEndpoint(endpoint.host, endpoint.port));
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

/** --command-timeout-ms: 0 (off), or at least MIN_COMMAND_TIMEOUT_MS. */
export function parseCommandTimeout(value: unknown, name: string): number {
  const number = typeof value === 'number' ? value : /^\s*\d+\s*$/.test(String(value)) ? Number(value) : NaN;
  if (!Number.isSafeInteger(number) || number < 0 || (number > 0 && number < MIN_COMMAND_TIMEOUT_MS)) {
    throw new ConfigError(`${name}: "${String(value)}" is neither 0 (off) nor a whole number of milliseconds of at least ${MIN_COMMAND_TIMEOUT_MS}`);
  }
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

function parseLogFormat(value: unknown, name: string): LogFormat {
  if (typeof value === 'string' && (LOG_FORMATS as readonly string[]).includes(value)) return value as LogFormat;
  throw new ConfigError(`${name}: "${String(value)}" is not a log format; use one of ${LOG_FORMATS.join(', ')}`);
}

function parsePath(value: unknown, name: string): string | null {
  if (value === null || value === '') return null;
  if (typeof value !== 'string') throw new ConfigError(`${name}: expected a file path`);
  return value;
}


function parseNodeId(value: unknown, name: string): string | null {
  if (value === null || value === '') return null;
  if (typeof value === 'string' && NODE_ID_PATTERN.test(value)) return value;
  throw new ConfigError(`${name}: "${String(value)}" is not a node id; use ${NODE_ID_RULE}`);
}

/** What memcached accepts in a key, shorter than any key: the prefix is part of every session key. */
const SESSION_PREFIX_PATTERN = /^[\x21-\x7e]{0,200}$/;

function parseSessionPrefix(value: unknown, name: string): string {
  if (typeof value === 'string' && SESSION_PREFIX_PATTERN.test(value)) return value;
  throw new ConfigError(`${name}: "${String(value)}" is not a key prefix; use up to 200 printable ASCII characters without spaces, the same as memcached.sess_prefix in php.ini ("" for none)`);
}

/** Each "-----BEGIN CERTIFICATE-----" block of a PEM text (RFC 7468), in order. */
const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g;

function readPem(value: unknown, name: string): PemFile | null {
  if (value === null || value === '') return null;
  if (typeof value !== 'string') throw new ConfigError(`${name}: expected a file path`);
  try {
    return { path: value, pem: readFileSync(value) };
  } catch (error) {
    throw new ConfigError(`${name}: cannot read ${value}: ${(error as Error).message}`);
  }
}

/** A certificate chain or CA bundle: at least one PEM certificate, each one readable. */
function parseCertificates(value: unknown, name: string): PemFile | null {
  const file = readPem(value, name);
  if (file === null) return null;
  const blocks = file.pem.toString('latin1').match(PEM_CERTIFICATE) ?? [];
  if (blocks.length === 0) throw new ConfigError(`${name}: ${file.path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
  blocks.forEach((block, index) => {
    try {
      new X509Certificate(block);
    } catch (error) {
      throw new ConfigError(`${name}: ${file.path}: certificate ${index + 1} is not valid: ${(error as Error).message}`);
    }
  });
  return file;
}

function privateKeyOf(file: PemFile, name: string): KeyObject {
  try {
    return createPrivateKey(file.pem);
  } catch (error) {
    throw new ConfigError(`${name}: ${file.path} is not a PEM private key, or it is encrypted (a passphrase cannot be given): ${(error as Error).message}`);
  }
}

function parsePrivateKey(value: unknown, name: string): PemFile | null {
  const file = readPem(value, name);
  if (file !== null) privateKeyOf(file, name);
  return file;
}

function parseFsync(value: unknown, name: string): FsyncPolicy {
  if (typeof value === 'string' && (FSYNC_POLICIES as readonly string[]).includes(value)) return value as FsyncPolicy;
  throw new ConfigError(`${name}: "${String(value)}" is not an fsync policy; use one of ${FSYNC_POLICIES.join(', ')}`);
}

function parseOptionalSize(value: unknown, name: string): number | null {
  if (value === null || value === '') return null;
  return parseSize(value, name);
}

/** A flag without a value (commander gives true), or true/false in the file. */
function parseAuthFile(value: unknown, name: string): AuthFile | null {
  const path = parsePath(value, name);
  return path === null ? null : AuthFile.read(path, name);
}

function parseAllowList(value: unknown, name: string): AllowList | null {
  const EXAMPLE = 'e.g. 10.0.0.0/24,10.0.1.5';
  if (value === null) return null;
  let entries: unknown[];
  if (typeof value === 'string') entries = value.split(',');
  else if (Array.isArray(value)) entries = value;
  else throw new ConfigError(`${name}: expected "CIDR,..." or an array of CIDR strings, ${EXAMPLE}`);
  const blocks: AllowedBlock[] = [];
  for (const entry of entries) {
    const text = typeof entry === 'string' ? entry.trim() : '';
    const block = parseBlock(text);
    if (block === null) throw new ConfigError(`${name}: ${JSON.stringify(entry)} is not an address or a CIDR block, ${EXAMPLE}`);
    blocks.push(block);
  }
  if (blocks.length === 0) throw new ConfigError(`${name}: no address given, ${EXAMPLE}`);
  return new AllowList(blocks);
}

function parseSwitch(value: unknown, name: string): boolean {
  if (value === true || value === 'true') return true;
  if (value === false || value === 'false') return false;
  throw new ConfigError(`${name}: "${String(value)}" is not true or false`);
}

function parseTwoNodes(value: unknown, name: string): TwoNodeMode {
  if (typeof value === 'string' && (TWO_NODE_MODES as readonly string[]).includes(value)) return value as TwoNodeMode;
  throw new ConfigError(`${name}: "${String(value)}" is not a two-node mode; use one of ${TWO_NODE_MODES.join(', ')}`);
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
 * One setting, declared once: everything the command line, the config file, `stats settings`
 * and the configuration reference need to know about it.
 */
export interface SettingSpec<K extends keyof Settings> {
  /** the command-line flag; the config file uses the key itself */
  readonly flag: string;
  /** what the flag takes, as --help shows it; '' for a switch, which takes nothing */
  readonly arg: string;
  /** the environment variable that gives it, where there is one */
  readonly env?: string;
  readonly default: Settings[K];
  /** the default as --help and the docs say it; none: the setting is off unless given */
  readonly shownDefault?: string;
  /** reads a raw value (a flag's string, any JSON value from the file); throws ConfigError naming `name` */
  readonly parse: (value: unknown, name: string) => Settings[K];
  /** one or two sentences: what it does, and what to know before changing it */
  readonly help: string;
  /** how `stats settings` shows the value (default: as text; null and [] as "none") */
  readonly show?: (value: Settings[K]) => string;
}

export type SettingsTable = { readonly [K in keyof Settings]: SettingSpec<K> };

const showEndpoint = (value: Endpoint | null) => (value === null ? 'none' : formatEndpoint(value.host, value.port));
const showFile = (value: PemFile | null) => (value === null ? 'none' : value.path);

/** Every setting, in the order --help and the docs list them. */
export const SETTINGS: SettingsTable = {
  listen: {
    flag: '--listen', arg: '<host:port>', default: { host: '127.0.0.1', port: 11211 }, shownDefault: '127.0.0.1:11211',
    parse: parseEndpoint, show: showEndpoint,
    help: 'TCP address PHP connects to (memcached protocol, ascii and binary); port 0 picks a free port.',
  },
  socket: {
    flag: '--socket', arg: '<path>', default: null, parse: parsePath,
    help: 'Also listen on this unix socket, for PHP on the same host.',
  },
  socketMode: {
    flag: '--socket-mode', arg: '<octal>', default: 0o660, shownDefault: '0660', parse: parseMode,
    show: (mode) => `0${mode.toString(8)}`,
    help: 'Permission bits of the unix socket: who may connect to it.',
  },
  maxItemSize: {
    flag: '--max-item-size', arg: '<bytes>', default: 1 * MiB, shownDefault: '1m', parse: parseSize,
    help: 'Largest value stored, e.g. 1m, like memcached -I; at least 1k and at most half of --memory-limit.',
  },
  memoryLimit: {
    // memcached's 64 MB would evict live sessions on a busy farm: sessions are not a cache.
    flag: '--memory-limit', arg: '<bytes>', default: 1024 * MiB, shownDefault: '1g', parse: parseSize,
    help: 'Memory for items, e.g. 1g; past it the least recently used items are evicted (counted in evictions, logged). With --data-dir their values stay on disk instead, read back when asked for.',
  },
  maxConnections: {
    flag: '--max-connections', arg: '<n>', default: 1024, parse: wholeNumber(1),
    help: 'Client connections accepted at once, like memcached -c; more are answered "ERROR Too many open connections" and closed.',
  },
  commandTimeoutMs: {
    // PHP writes a whole request at once, so on a LAN it arrives in milliseconds; 5 s covers
    // several TCP retransmissions of a lost segment, and is libmemcached's own I/O timeout
    // (MEMCACHED_DEFAULT_TIMEOUT, 5000 ms): a php-memcached client stalled that long mid-request
    // has given up on it already. Much longer would let slow senders hold --max-connections.
    flag: '--command-timeout-ms', arg: '<ms>', default: 5000, parse: parseCommandTimeout,
    help: `A client connection stuck this long in the middle of a request (part of a command line or binary header, or a value whose bytes stopped coming) is closed, counted in command_timeouts and logged; 0 = never, else at least ${MIN_COMMAND_TIMEOUT_MS}. Idle connections between requests are never closed.`,
  },
  stopGraceMs: {
    // A PHP request holds its session's lock from session_start() to its end, typically well under
    // a second. 5 s lets the usual ones finish and keeps the whole stop inside docker stop's
    // default 10 s for a single node; a cluster node's drain comes after it (--drain-timeout-ms).
    flag: '--stop-grace-ms', arg: '<ms>', default: 5000, parse: wholeNumber(0),
    help: 'On SIGTERM/SIGINT, how long the PHP requests in progress (between a session\'s read and its write) may take to finish before their connections close; new connections are refused meanwhile. An operator\'s drain waits as long for them before it hands sessions over. 0 closes them at once.',
  },
  logLevel: {
    flag: '--log-level', arg: '<level>', default: 'info', parse: parseLogLevel,
    help: `One of ${LOG_LEVELS.join(', ')}. Logs go to stdout, one line per event (see --log-format).`,
  },
  logFormat: {
    flag: '--log-format', arg: '<format>', default: null, shownDefault: 'pretty on a terminal, json otherwise', parse: parseLogFormat,
    show: (format) => format ?? 'auto',
    help: 'json: one pino JSON object per line, for journald, jq and log shippers; pretty: human lines (time, level, message, fields). Without it, pretty when stdout is a terminal and json otherwise, so a service manager or a pipe gets JSON.',
  },
  peerListen: {
    flag: '--peer-listen', arg: '<host:port>', default: null, parse: parseOptionalEndpoint, show: showEndpoint,
    help: 'Address the peer listener binds; turns cluster mode on. Port 0 picks a free port; 0.0.0.0 or :port needs --peer-advertise.',
  },
  peerAdvertise: {
    flag: '--peer-advertise', arg: '<host:port>', default: null, shownDefault: 'the --peer-listen address', parse: parseAdvertise, show: showEndpoint,
    help: 'Address other nodes dial to reach this node, when it is not --peer-listen (a wildcard, NAT, a container); no wildcard, no port 0.',
  },
  peers: {
    flag: '--peers', arg: '<host:port,...>', default: [], parse: parsePeers,
    show: (peers) => (peers.length === 0 ? 'none' : peers.join(',')),
    help: 'Seed peers to join the cluster through; any one that answers is enough. Needs --peer-listen.',
  },
  nodeId: {
    flag: '--node-id', arg: '<id>', default: null, shownDefault: 'host name and peer port', parse: parseNodeId,
    help: `This node's stable identity in the cluster, ${NODE_ID_RULE}. Keep it across restarts: a node that comes back under its id takes its sessions back.`,
  },
  replication: {
    flag: '--replication', arg: '<mode>', default: 'sync', parse: parseReplication,
    help: `${REPLICATION_MODES.join(' or ')}: sync acknowledges a write once the backup has it; async once the master has it.`,
  },
  twoNodes: {
    flag: '--two-nodes', arg: '<mode>', default: 'available', parse: parseTwoNodes,
    help: 'What a node does in a cluster of two when the other is gone, which it cannot tell from a partition between them: available keeps serving alone (a partition then loses the writes made on one side), consistent stops until both are back. Three or more nodes always need a majority.',
  },
  clusterSecret: {
    flag: '--cluster-secret', arg: '<secret>', env: CLUSTER_SECRET_ENV, default: null, parse: parseSecret,
    // Only the secret's presence is ever shown: never logged, echoed or answered.
    show: (secret) => (secret === null ? 'none' : 'set'),
    help: `Secret shared by all nodes, at least ${MIN_SECRET_LENGTH} characters; required with --peer-listen. Prefer the ${CLUSTER_SECRET_ENV} environment variable: ps shows command lines to every user.`,
  },
  heartbeatMs: {
    // A crash is served by the backup about failure timeout + 20 ms after it happens
    // (bench/CLUSTER-RESULTS.md): 800 ms keeps failover under 1 s with 4 heartbeats of margin.
    flag: '--heartbeat-ms', arg: '<ms>', default: 200, parse: wholeNumber(MIN_HEARTBEAT_MS),
    help: `How often each peer is sent a heartbeat, at least ${MIN_HEARTBEAT_MS}.`,
  },
  failureTimeoutMs: {
    flag: '--failure-timeout-ms', arg: '<ms>', default: 800, parse: wholeNumber(1),
    help: `Silence after which a peer is declared dead and its sessions fail over, at least ${HEARTBEATS_PER_FAILURE_TIMEOUT} heartbeats.`,
  },
  drainTimeoutMs: {
    // Handing over is a copy at peer-link speed (about 100 MB/s on loopback); 30 s covers a node
    // full of sessions with room to spare, and stays under systemd's default stop timeout (90 s).
    flag: '--drain-timeout-ms', arg: '<ms>', default: 30_000, parse: wholeNumber(0),
    help: 'On SIGTERM/SIGINT, how long a cluster node may take to hand its sessions to their new owners before it leaves; 0 leaves at once.',
  },
  joinTimeoutMs: {
    // Long enough for the nodes of a cluster started one after another (a rolling deploy, a
    // supervisor starting them in turn) to come up; short enough that a node that cannot join
    // (wrong secret, wrong address) is a failed start a supervisor sees, not a silent wait.
    flag: '--join-timeout-ms', arg: '<ms>', default: 30_000, parse: wholeNumber(0),
    help: 'With --peers: how long a starting node may go without joining one of them (it serves nothing meanwhile) before it exits with code 1, naming why each refused; 0 waits forever.',
  },
  sessionPrefix: {
    flag: '--session-prefix', arg: '<prefix>', default: 'memc.sess.key.', parse: parseSessionPrefix,
    show: (prefix) => (prefix === '' ? '""' : prefix),
    help: 'php-memcached\'s memcached.sess_prefix, by which session and lock keys are recognised and kept together; "" for none.',
  },
  peerTlsCert: {
    flag: '--peer-tls-cert', arg: '<file>', default: null, parse: parseCertificates, show: showFile,
    help: 'PEM certificate chain this node presents on peer links; with --peer-tls-key and --peer-tls-ca, turns TLS on for every peer link, both ways.',
  },
  peerTlsKey: {
    flag: '--peer-tls-key', arg: '<file>', default: null, parse: parsePrivateKey, show: showFile,
    help: 'PEM private key of --peer-tls-cert (unencrypted; keep it readable by the service user only).',
  },
  peerTlsCa: {
    flag: '--peer-tls-ca', arg: '<file>', default: null, parse: parseCertificates, show: showFile,
    help: 'PEM CA bundle every peer\'s certificate must chain to.',
  },
  metricsListen: {
    flag: '--metrics-listen', arg: '<host:port>', default: null, parse: parseOptionalEndpoint, show: showEndpoint,
    help: 'Also serve Prometheus metrics over HTTP at GET /metrics on this address.',
  },
  dataDir: {
    flag: '--data-dir', arg: '<dir>', default: null, parse: parsePath,
    help: 'Keep sessions on disk in this directory as well as in memory: they survive restarts and crashes. One daemon per directory (it is locked). Without it, sessions live in memory only.',
  },
  fsync: {
    // Redis' appendfsync default, for the same reason: a machine crash costs at most about a
    // second of writes, and writes do not wait for the disk.
    flag: '--fsync', arg: '<policy>', default: 'everysec', parse: parseFsync,
    help: 'With --data-dir, when each write reaches the disk: always (before its reply; nothing acknowledged is lost even to a power cut), everysec (a sync a second: a machine crash loses at most about the last second, a process crash nothing), no (the kernel decides).',
  },
  diskLimit: {
    flag: '--disk-limit', arg: '<bytes>', default: null, shownDefault: 'no limit but the disk', parse: parseOptionalSize,
    show: (limit) => (limit === null ? 'none' : String(limit)),
    help: 'With --data-dir, the most the data files may take, e.g. 10g; past it writes are answered SERVER_ERROR (and counted) until compaction frees space.',
  },
  recoverTruncate: {
    flag: '--recover-truncate', arg: '', default: false, parse: parseSwitch,
    help: 'With --data-dir, when the files are damaged in the middle (not just a torn last write, which is always cut), drop everything from the damage on and start, instead of refusing to start. The log says what was dropped.',
  },
  lockWaitMs: {
    // Off by default: clients that time their own lock retries then behave exactly as against
    // memcached. In cluster mode a wait also ends within the forward timeout.
    flag: '--lock-wait-ms', arg: '<ms>', default: 0, parse: wholeNumber(0),
    help: 'Lock handoff: a PHP request that finds its session locked waits on the server up to this long and gets the lock the moment it is released, first come first served; after that it is refused as memcached would. 0 (the default) is off.',
  },
  authFile: {
    flag: '--auth-file', arg: '<file>', default: null, parse: parseAuthFile,
    show: (file) => (file === null ? 'none' : file.path),
    help: 'Clients must authenticate with a user:password of this file (memcached\'s SASL password file format): SASL PLAIN on the binary protocol (php-memcached\'s memcached.sess_sasl_username/password), a first set of "user password" in ascii (as memcached -Y). The file must not be readable by every user.',
  },
  allow: {
    flag: '--allow', arg: '<cidr,...>', default: null, shownDefault: 'any address', parse: parseAllowList,
    show: (allow) => (allow === null ? 'any' : allow.toString()),
    help: 'Client addresses the client port accepts connections from, e.g. 10.0.0.0/24,10.0.1.5; others are closed at once (counted, logged). For clients that cannot authenticate. A unix socket is governed by --socket-mode instead.',
  },
  disableFlush: {
    // Off by default only so that conformance tools (memccapable) pass; production turns it on.
    flag: '--disable-flush', arg: '', default: false, parse: parseSwitch,
    help: 'Refuse flush_all (CLIENT_ERROR flush_all not allowed, as memcached -F): nobody logs every user out with one command. Turn it on in production.',
  },
  disableCachedump: {
    flag: '--disable-cachedump', arg: '', default: false, parse: parseSwitch,
    help: 'Refuse stats cachedump, by which memcdump lists every key, that is every session id (as memcached -X), and the session listings of stats sessions. Turn it on in production.',
  },
};

/** The settings' keys, in table order. */
export const SETTING_KEYS = Object.keys(SETTINGS) as Array<keyof Settings>;

/** Every default. */
export const DEFAULTS: Settings = Object.fromEntries(SETTING_KEYS.map((key) => [key, SETTINGS[key].default])) as unknown as Settings;

/** The flag that sets each setting, for messages; the config file uses the setting's own name. */
export const FLAG_NAMES = Object.fromEntries(SETTING_KEYS.map((key) => [key, SETTINGS[key].flag])) as Record<keyof Settings, string>;

/** `stats settings` names a setting by its config key in snake_case: maxItemSize -> max_item_size. */
export function settingStatName(key: keyof Settings): string {
  return key.replace(/[A-Z]/g, (upper) => `_${upper.toLowerCase()}`);
}

/** A setting's value as text, as `stats settings` shows it (the cluster secret only as "set" or "none"). */
export function showSetting(key: keyof Settings, settings: Settings): string {
  const show = SETTINGS[key].show as ((value: unknown) => string) | undefined;
  if (show !== undefined) return show(settings[key]);
  return settings[key] === null ? 'none' : String(settings[key]);
}

/** The settings as statistics, for `stats settings`, after memcached's own names. */
export const SETTING_STATS: ReadonlyArray<Stat<Settings>> = SETTING_KEYS.map((key) => ({
  name: settingStatName(key),
  type: 'text',
  help: `${SETTINGS[key].flag}: ${SETTINGS[key].help}`,
  read: (settings: Settings) => showSetting(key, settings),
}));

/**
 * Reads a JSON config file whose keys are the settings' names (listen, maxItemSize, …). `name`
 * starts each message: the flag that named the file, or what else did.
 */
export function readConfigFile(path: string, name = '--config'): RawSettings {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(`${name}: cannot read ${path}: ${(error as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(`${name}: ${path} is not valid JSON: ${(error as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new ConfigError(`${name}: ${path} must hold a JSON object of settings`);
  }
  for (const key of Object.keys(parsed)) {
    if (!(key in SETTINGS)) throw new ConfigError(`${name}: ${path}: unknown setting "${key}"; known settings: ${SETTING_KEYS.join(', ')}`);
  }
  return parsed as RawSettings;
}

/**
 * Defaults, overridden by the file's settings, overridden by the flags' (both raw). A setting
 * with an environment variable (only the cluster secret, SESSION_CLUSTER_SECRET) takes it when
 * neither the file nor a flag gives it: a secret kept out of the command line, where `ps` would
 * show it to every user.
 */
export function resolveSettings(
  fromFile: RawSettings, fromFlags: RawSettings, filePath = 'config file', env: NodeJS.ProcessEnv = process.env,
): Settings {
  const settings: Settings = { ...DEFAULTS };
  for (const key of SETTING_KEYS) {
    const variable = SETTINGS[key].env;
    const value = variable === undefined ? undefined : env[variable];
    // An empty variable counts as unset, as shells and compose files leave them.
    if (fromFile[key] !== undefined || fromFlags[key] !== undefined || value === undefined || value === '') continue;
    (settings as unknown as Record<string, unknown>)[key] = SETTINGS[key].parse(value, variable!);
  }
  const apply = (raw: RawSettings, describe: (key: keyof Settings) => string) => {
    for (const key of SETTING_KEYS) {
      if (raw[key] === undefined) continue;
      (settings as unknown as Record<string, unknown>)[key] = SETTINGS[key].parse(raw[key], describe(key));
    }
  };
  apply(fromFile, (key) => `${filePath}: "${key}"`);
  apply(fromFlags, (key) => FLAG_NAMES[key]);
  checkItemSize(settings);
  checkCluster(settings);
  checkPeerTls(settings);
  checkDisk(settings);
  // The port the node id is derived from must be stable: the listen port, or, when that is 0
  // (picked at each start), the advertised one.
  const stablePort = settings.peerListen?.port || settings.peerAdvertise?.port;
  if (settings.peerListen !== null && settings.nodeId === null && stablePort) {
    settings.nodeId = defaultNodeId(hostname(), stablePort);
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
  if (settings.peerAdvertise !== null && settings.peerListen === null) {
    throw new ConfigError('--peer-advertise (peerAdvertise): an advertised peer address needs --peer-listen (peerListen), the address the peer listener binds');
  }
  if (settings.peerListen !== null && settings.clusterSecret === null) {
    throw new ConfigError(
      `--peer-listen (peerListen) needs a cluster secret: set --cluster-secret (clusterSecret) or the ${CLUSTER_SECRET_ENV} environment variable, the same on every node`,
    );
  }
  if (settings.peerListen !== null && settings.peerAdvertise === null && isWildcardHost(settings.peerListen.host)) {
    const { host, port } = settings.peerListen;
    throw new ConfigError(
      `--peer-listen (peerListen): ${formatEndpoint(host, port)} listens on every address, which other nodes cannot dial; set --peer-advertise (peerAdvertise) to the address they reach this node on, e.g. 10.0.0.1:${port || 11212}`,
    );
  }
  if (settings.failureTimeoutMs < HEARTBEATS_PER_FAILURE_TIMEOUT * settings.heartbeatMs) {
    throw new ConfigError(
      `--failure-timeout-ms (failureTimeoutMs): ${settings.failureTimeoutMs} is less than ${HEARTBEATS_PER_FAILURE_TIMEOUT} times --heartbeat-ms (heartbeatMs, ${settings.heartbeatMs}); a peer must miss ${HEARTBEATS_PER_FAILURE_TIMEOUT} heartbeats before it is declared dead`,
    );
  }
}

/** The disk settings mean nothing without a data directory: saying so beats ignoring them. */
function checkDisk(settings: Settings): void {
  if (settings.dataDir !== null) return;
  if (settings.fsync !== DEFAULTS.fsync) throw new ConfigError('--fsync (fsync) applies to disk storage, which needs --data-dir (dataDir)');
  if (settings.diskLimit !== null) throw new ConfigError('--disk-limit (diskLimit) applies to disk storage, which needs --data-dir (dataDir)');
  if (settings.recoverTruncate) throw new ConfigError('--recover-truncate (recoverTruncate) applies to disk storage, which needs --data-dir (dataDir)');
}

const TLS_FLAGS = ['peerTlsCert', 'peerTlsKey', 'peerTlsCa'] as const;

/**
 * Peer TLS is all three files or none: a certificate without a CA cannot check its peers, and a
 * CA without a certificate cannot be checked by them. The key must belong to the certificate,
 * and the three must make the daemon's TLS context (built here once, so a failure is a refused
 * setting rather than a daemon that cannot start).
 */
function checkPeerTls(settings: Settings): void {
  const describe = (key: (typeof TLS_FLAGS)[number]) => `${FLAG_NAMES[key]} (${key})`;
  const given = TLS_FLAGS.filter((key) => settings[key] !== null);
  if (given.length === 0) return;
  if (given.length < TLS_FLAGS.length) {
    const missing = TLS_FLAGS.filter((key) => settings[key] === null).map(describe).join(' and ');
    throw new ConfigError(`peer TLS needs --peer-tls-cert, --peer-tls-key and --peer-tls-ca together; ${given.map(describe).join(' and ')} given, ${missing} missing`);
  }
  if (settings.peerListen === null) {
    throw new ConfigError('--peer-tls-cert, --peer-tls-key and --peer-tls-ca secure peer links, which need --peer-listen (peerListen)');
  }
  const cert = settings.peerTlsCert!;
  const key = settings.peerTlsKey!;
  const ca = settings.peerTlsCa!;
  const leaf = new X509Certificate(cert.pem.toString('latin1').match(PEM_CERTIFICATE)![0]!);
  if (!leaf.checkPrivateKey(privateKeyOf(key, describe('peerTlsKey')))) {
    throw new ConfigError(`${describe('peerTlsKey')}: ${key.path} is not the private key of the first certificate in ${describe('peerTlsCert')}, ${cert.path}`);
  }
  try {
    createSecureContext({ cert: cert.pem, key: key.pem, ca: ca.pem });
  } catch (error) {
    throw new ConfigError(`${describe('peerTlsCert')}, ${describe('peerTlsKey')}, ${describe('peerTlsCa')}: ${cert.path}, ${key.path} and ${ca.path} cannot make a TLS context: ${(error as Error).message}`);
  }
}
