/**
 * Settings: defaults, then the environment (the cluster secret only), then the config file
 * (--config, JSON), then command-line flags, each validated with a message that names the flag,
 * key or variable at fault.
 */
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { hostname } from 'node:os';
import { PeerTls } from './cluster/peer/peer-tls.js';
import { NODE_ID_PATTERN } from './cluster/types.js';
import { ConfigError } from './errors.js';
import { LOG_LEVELS, type LogLevel } from './log.js';

export interface Endpoint {
  host: string;
  port: number;
}

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
  logLevel: LogLevel;
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
  peerAdvertise: null,
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
  peerTlsCert: null,
  peerTlsKey: null,
  peerTlsCa: null,
  metricsListen: null,
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
  peerAdvertise: '--peer-advertise',
  peers: '--peers',
  nodeId: '--node-id',
  replication: '--replication',
  clusterSecret: '--cluster-secret',
  heartbeatMs: '--heartbeat-ms',
  failureTimeoutMs: '--failure-timeout-ms',
  drainTimeoutMs: '--drain-timeout-ms',
  sessionPrefix: '--session-prefix',
  peerTlsCert: '--peer-tls-cert',
  peerTlsKey: '--peer-tls-key',
  peerTlsCa: '--peer-tls-ca',
  metricsListen: '--metrics-listen',
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

/** 0.0.0.0, ::, and their longer spellings: "every address", which nobody can dial. */
export function isWildcardHost(host: string): boolean {
  switch (isIP(host)) {
    case 4: return host.split('.').every((part) => Number(part) === 0);
    case 6: return /^[0:]+$/.test(host);
    default: return false;
  }
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
  peerAdvertise: parseAdvertise,
  peers: parsePeers,
  nodeId: parseNodeId,
  replication: parseReplication,
  clusterSecret: parseSecret,
  heartbeatMs: wholeNumber(MIN_HEARTBEAT_MS),
  failureTimeoutMs: wholeNumber(1),
  drainTimeoutMs: wholeNumber(0),
  sessionPrefix: parseSessionPrefix,
  peerTlsCert: parseCertificates,
  peerTlsKey: parsePrivateKey,
  peerTlsCa: parseCertificates,
  metricsListen: parseOptionalEndpoint,
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
  checkPeerTls(settings);
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
      `--peer-listen (peerListen): ${host.includes(':') ? `[${host}]` : host}:${port} listens on every address, which other nodes cannot dial; set --peer-advertise (peerAdvertise) to the address they reach this node on, e.g. 10.0.0.1:${port || 11212}`,
    );
  }
  if (settings.failureTimeoutMs < HEARTBEATS_PER_FAILURE_TIMEOUT * settings.heartbeatMs) {
    throw new ConfigError(
      `--failure-timeout-ms (failureTimeoutMs): ${settings.failureTimeoutMs} is less than ${HEARTBEATS_PER_FAILURE_TIMEOUT} times --heartbeat-ms (heartbeatMs, ${settings.heartbeatMs}); a peer must miss ${HEARTBEATS_PER_FAILURE_TIMEOUT} heartbeats before it is declared dead`,
    );
  }
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
    new PeerTls({ cert: cert.pem, key: key.pem, ca: ca.pem });
  } catch (error) {
    throw new ConfigError(`${describe('peerTlsCert')}, ${describe('peerTlsKey')}, ${describe('peerTlsCa')}: ${cert.path}, ${key.path} and ${ca.path} cannot make a TLS context: ${(error as Error).message}`);
  }
}
