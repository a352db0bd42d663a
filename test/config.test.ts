/**
 * Settings: defaults < environment (cluster secret only) < config file < flags, and every bad value
 * reported with the flag (e.g. --max-item-size), the file's key or the variable that gave it.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isWildcardHost } from '../src/address.js';
import {
  DEFAULTS, FLAG_NAMES, parseCommandTimeout, parseEndpoint, parsePeers, parseSize, readConfigFile, resolveSettings, type RawSettings,
} from '../src/config.js';
import { defaultNodeId } from '../src/node-id.js';
import { ConfigError } from '../src/errors.js';
import { TestCertificates } from './cluster/test-certificates.js';

// resolveSettings reads process.env by default: a secret in the environment of whoever runs the
// tests must not change what they see.
const savedSecret = process.env.SESSION_CLUSTER_SECRET;
beforeAll(() => { delete process.env.SESSION_CLUSTER_SECRET; });
afterAll(() => { if (savedSecret !== undefined) process.env.SESSION_CLUSTER_SECRET = savedSecret; });

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

/** The cluster settings' defaults: a single node, not in a cluster. */
const SINGLE_NODE = {
  peerListen: null, peerAdvertise: null, peers: [], nodeId: null, replication: 'sync', twoNodes: 'available', clusterSecret: null, heartbeatMs: 200, failureTimeoutMs: 800,
  drainTimeoutMs: 30000, joinTimeoutMs: 30000, sessionPrefix: 'memc.sess.key.', peerTlsCert: null, peerTlsKey: null, peerTlsCa: null,
  metricsListen: null, dataDir: null, fsync: 'everysec', diskLimit: null, recoverTruncate: false, lockWaitMs: 0, authFile: null, allow: null, disableFlush: false, disableCachedump: false,
};
const SECRET = 'correct-horse-battery';

/** The ConfigError that `run` throws (fails if it throws something else or nothing). */
function configError(run: () => unknown): ConfigError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).code).toBe('ERR_CONFIG');
    return error as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('parseSize', () => {
  it('reads bytes and binary units, in any case, with spaces around', () => {
    const cases: Array<[unknown, number]> = [
      ['1048576', 1048576], ['1', 1], ['100b', 100], ['512k', 512 * KiB], ['512KB', 512 * KiB], ['2KiB', 2 * KiB],
      ['64m', 64 * MiB], ['64MiB', 64 * MiB], ['3Mb', 3 * MiB], ['1g', GiB], ['2GB', 2 * GiB], ['1gib', GiB],
      [' 8 m ', 8 * MiB], [4096, 4096],
    ];
    for (const [value, expected] of cases) expect(parseSize(value, '--max-item-size'), String(value)).toBe(expected);
  });

  it('refuses anything else, naming the flag', () => {
    for (const value of ['', 'abc', '0', '0k', '-1', '1.5m', '10x', '1 t', 'm', 0, -5, 1.5, Number.NaN, null, true, {}]) {
      const error = configError(() => parseSize(value, '--max-item-size'));
      expect(error.message, String(value)).toMatch(/^--max-item-size: ".*" is not a size; use bytes or a unit, e\.g\. 1048576, 512k, 64m, 1g$/);
    }
    expect(configError(() => parseSize('12 parsecs', '--memory-limit')).message).toContain('--memory-limit: "12 parsecs" is not a size');
  });
});

describe('parseEndpoint', () => {
  it('reads HOST:PORT, [v6]:PORT and :PORT', () => {
    expect(parseEndpoint('127.0.0.1:11211', '--listen')).toEqual({ host: '127.0.0.1', port: 11211 });
    expect(parseEndpoint('localhost:0', '--listen')).toEqual({ host: 'localhost', port: 0 });
    expect(parseEndpoint('[::1]:11212', '--listen')).toEqual({ host: '::1', port: 11212 });
    expect(parseEndpoint(':11211', '--listen')).toEqual({ host: '0.0.0.0', port: 11211 });
    expect(parseEndpoint('10.0.0.1:65535', '--listen')).toEqual({ host: '10.0.0.1', port: 65535 });
  });

  it('refuses anything else, naming the flag', () => {
    for (const value of ['localhost', '127.0.0.1', '127.0.0.1:', 'host:abc', 'host:65536', 'host:123456', '::1:11211', '[::1]', '']) {
      const error = configError(() => parseEndpoint(value, '--listen'));
      expect(error.message).toBe(`--listen: "${value}" is not HOST:PORT, e.g. 127.0.0.1:11211 (port 0 picks a free port)`);
    }
  });

  it('refuses a value that is not a string (a JSON number, say)', () => {
    for (const value of [11211, null, { host: 'a', port: 1 }]) {
      expect(configError(() => parseEndpoint(value, '--listen')).message).toBe('--listen: expected a "HOST:PORT" string, e.g. "127.0.0.1:11211"');
    }
  });
});

describe('parseCommandTimeout', () => {
  it('reads 0 (off) and whole milliseconds from 100 up, from a flag\'s string or a JSON number', () => {
    const cases: Array<[unknown, number]> = [['0', 0], [0, 0], ['100', 100], [' 5000 ', 5000], [30000, 30000], ['86400000', 86_400_000]];
    for (const [value, expected] of cases) expect(parseCommandTimeout(value, '--command-timeout-ms'), String(value)).toBe(expected);
  });

  it('refuses timeouts so short that a request spanning two reads could be cut off, and anything not a whole number', () => {
    for (const value of ['1', '99', 50, '-1', -100, '1.5', 2500.5, '5s', '', 'off', null, true, {}]) {
      const error = configError(() => parseCommandTimeout(value, '--command-timeout-ms'));
      expect(error.message, String(value)).toBe(`--command-timeout-ms: "${String(value)}" is neither 0 (off) nor a whole number of milliseconds of at least 100`);
    }
  });
});

describe('resolveSettings', () => {
  it('gives the defaults when nothing is set', () => {
    expect(resolveSettings({}, {})).toEqual(DEFAULTS);
    expect(DEFAULTS).toEqual({
      listen: { host: '127.0.0.1', port: 11211 }, socket: null, socketMode: 0o660, maxItemSize: MiB,
      memoryLimit: 1024 * MiB, maxConnections: 1024, commandTimeoutMs: 5000, stopGraceMs: 5000, logLevel: 'info', logFormat: null, ...SINGLE_NODE,
    });
  });

  it('file settings override defaults, flags override the file', () => {
    const file: RawSettings = {
      listen: '0.0.0.0:1', maxItemSize: '2m', memoryLimit: 512 * MiB, logLevel: 'debug', socket: '/run/sc.sock', socketMode: '0600',
    };
    const flags: RawSettings = { listen: '127.0.0.1:2', maxItemSize: '4m', maxConnections: '10', socketMode: undefined };
    expect(resolveSettings(file, flags)).toEqual({
      listen: { host: '127.0.0.1', port: 2 }, socket: '/run/sc.sock', socketMode: 0o600, maxItemSize: 4 * MiB,
      memoryLimit: 512 * MiB, maxConnections: 10, commandTimeoutMs: 5000, stopGraceMs: 5000, logLevel: 'debug', logFormat: null, ...SINGLE_NODE,
    });
  });

  it('reads each setting from its flag\'s string', () => {
    expect(resolveSettings({}, {
      listen: '[::]:11311', socket: '/tmp/x.sock', socketMode: '640', maxItemSize: '128k', memoryLimit: '1g',
      maxConnections: ' 50 ', commandTimeoutMs: '2500', stopGraceMs: '0', logLevel: 'silent', logFormat: 'pretty',
    })).toEqual({
      listen: { host: '::', port: 11311 }, socket: '/tmp/x.sock', socketMode: 0o640, maxItemSize: 128 * KiB,
      memoryLimit: GiB, maxConnections: 50, commandTimeoutMs: 2500, stopGraceMs: 0, logLevel: 'silent', logFormat: 'pretty', ...SINGLE_NODE,
    });
  });

  it('an empty socket path means no socket; a JSON number file mode is read as the octal digits written', () => {
    expect(resolveSettings({ socket: '/a.sock', socketMode: 644 }, { socket: '' })).toMatchObject({ socket: null, socketMode: 0o644 });
    expect(resolveSettings({ socketMode: 660 }, {}).socketMode).toBe(0o660);
    expect(resolveSettings({ socket: null }, {}).socket).toBeNull();
  });

  it('a bad flag value names the flag', () => {
    const cases: Array<[keyof RawSettings & string, string, string]> = [
      ['listen', 'nowhere', '--listen: "nowhere" is not HOST:PORT'],
      ['maxItemSize', 'big', '--max-item-size: "big" is not a size'],
      ['memoryLimit', '0', '--memory-limit: "0" is not a size'],
      ['maxConnections', '0', '--max-connections: "0" is not a whole number of at least 1'],
      ['maxConnections', 'many', '--max-connections: "many" is not a whole number of at least 1'],
      ['maxConnections', '1.5', '--max-connections: "1.5" is not a whole number of at least 1'],
      ['socketMode', '999', '--socket-mode: "999" is not an octal file mode, e.g. 0660'],
      ['socketMode', 'rw-rw----', '--socket-mode: "rw-rw----" is not an octal file mode'],
      ['logLevel', 'loud', '--log-level: "loud" is not a log level; use one of fatal, error, warn, info, debug, trace, silent'],
      ['logFormat', 'text', '--log-format: "text" is not a log format; use one of json, pretty'],
      ['peerListen', 'nowhere', '--peer-listen: "nowhere" is not HOST:PORT, e.g. 127.0.0.1:11211 (port 0 picks a free port)'],
      ['peerListen', '10.0.0.1:99999', '--peer-listen: "10.0.0.1:99999" is not HOST:PORT'],
      ['peers', '10.0.0.2:11212,nowhere', '--peers: "nowhere" is not HOST:PORT with a port from 1 to 65535, e.g. 10.0.0.2:11212,10.0.0.3:11212'],
      ['peers', '10.0.0.2:0', '--peers: "10.0.0.2:0" is not HOST:PORT with a port from 1 to 65535'],
      ['peers', ':11212', '--peers: ":11212" has no host to dial; give the address the other node\'s --peer-listen is reached on'],
      ['peers', '10.0.0.2:11212,0.0.0.0:11212', '--peers: "0.0.0.0:11212" has no host to dial'],
      ['peers', '[::]:11212', '--peers: "[::]:11212" has no host to dial'],
      ['nodeId', 'web 1', '--node-id: "web 1" is not a node id; use 1 to 64 of A-Z a-z 0-9 _ . -'],
      ['nodeId', 'x'.repeat(65), `--node-id: "${'x'.repeat(65)}" is not a node id`],
      ['nodeId', 'wëb', '--node-id: "wëb" is not a node id'],
      ['replication', 'quorum', '--replication: "quorum" is not a replication mode; use one of sync, async'],
      ['replication', 'SYNC', '--replication: "SYNC" is not a replication mode'],
      ['twoNodes', 'maybe', '--two-nodes: "maybe" is not a two-node mode; use one of available, consistent'],
      ['clusterSecret', 'short', '--cluster-secret: the cluster secret has 5 characters; use at least 16'],
      ['clusterSecret', '', '--cluster-secret: the cluster secret has 0 characters; use at least 16'],
      ['heartbeatMs', '9', '--heartbeat-ms: "9" is not a whole number of at least 10'],
      ['heartbeatMs', 'often', '--heartbeat-ms: "often" is not a whole number of at least 10'],
      ['failureTimeoutMs', '0', '--failure-timeout-ms: "0" is not a whole number of at least 1'],
      ['failureTimeoutMs', '1.5', '--failure-timeout-ms: "1.5" is not a whole number of at least 1'],
      ['stopGraceMs', '-5', '--stop-grace-ms: "-5" is not a whole number of at least 0'],
      ['drainTimeoutMs', '-1', '--drain-timeout-ms: "-1" is not a whole number of at least 0'],
      ['drainTimeoutMs', 'long', '--drain-timeout-ms: "long" is not a whole number of at least 0'],
      ['joinTimeoutMs', '-1', '--join-timeout-ms: "-1" is not a whole number of at least 0'],
      ['sessionPrefix', 'my prefix.', '--session-prefix: "my prefix." is not a key prefix'],
      ['sessionPrefix', 'p'.repeat(201), '--session-prefix: "ppp'],
    ];
    for (const [key, value, message] of cases) {
      expect(FLAG_NAMES[key as keyof typeof FLAG_NAMES]).toBe(message.slice(0, message.indexOf(':')));
      expect(configError(() => resolveSettings({}, { [key]: value })).message, `${key}=${value}`).toContain(message);
    }
  });

  it('the session prefix and drain timeout: defaults, values, and "" / 0 for none', () => {
    expect(resolveSettings({}, {})).toMatchObject({ sessionPrefix: 'memc.sess.key.', drainTimeoutMs: 30_000, metricsListen: null });
  });

  it('lock handoff: off (0) by default; --lock-wait-ms takes whole milliseconds', () => {
    expect(resolveSettings({}, {})).toMatchObject({ lockWaitMs: 0 });
    expect(resolveSettings({ lockWaitMs: 500 }, { lockWaitMs: '1000' })).toMatchObject({ lockWaitMs: 1000 });
    expect(configError(() => resolveSettings({}, { lockWaitMs: '-5' })).message).toContain('--lock-wait-ms');
  });

  it('disk storage: --data-dir turns it on; --fsync, --disk-limit and --recover-truncate need it, and are checked', () => {
    expect(resolveSettings({}, { dataDir: '/var/lib/session-cluster' })).toMatchObject({ dataDir: '/var/lib/session-cluster', fsync: 'everysec', diskLimit: null, recoverTruncate: false });
    expect(resolveSettings({ dataDir: '/d', fsync: 'no', diskLimit: '10g' }, { fsync: 'always', recoverTruncate: true }))
      .toMatchObject({ fsync: 'always', diskLimit: 10 * GiB, recoverTruncate: true });
    expect(resolveSettings({ dataDir: '/d', recoverTruncate: false }, {})).toMatchObject({ recoverTruncate: false });
    expect(configError(() => resolveSettings({}, { dataDir: '/d', fsync: 'sometimes' })).message).toBe('--fsync: "sometimes" is not an fsync policy; use one of always, everysec, no');
    expect(configError(() => resolveSettings({ dataDir: '/d', recoverTruncate: 'yes' }, {})).message).toContain('"recoverTruncate": "yes" is not true or false');
    expect(configError(() => resolveSettings({}, { fsync: 'always' })).message).toBe('--fsync (fsync) applies to disk storage, which needs --data-dir (dataDir)');
    expect(configError(() => resolveSettings({}, { diskLimit: '1g' })).message).toContain('needs --data-dir');
    expect(configError(() => resolveSettings({}, { recoverTruncate: true })).message).toContain('needs --data-dir');
    expect(resolveSettings({ metricsListen: '127.0.0.1:9150' }, {})).toMatchObject({ metricsListen: { host: '127.0.0.1', port: 9150 } });
    expect(configError(() => resolveSettings({}, { metricsListen: 'nowhere' })).message).toContain('--metrics-listen: "nowhere" is not HOST:PORT');
    expect(resolveSettings({ sessionPrefix: 'app1.' }, { drainTimeoutMs: '0' })).toMatchObject({ sessionPrefix: 'app1.', drainTimeoutMs: 0 });
    expect(resolveSettings({ joinTimeoutMs: 5000 }, {}).joinTimeoutMs).toBe(5000);
    expect(resolveSettings({ joinTimeoutMs: 5000 }, { joinTimeoutMs: '0' }).joinTimeoutMs).toBe(0);
    expect(resolveSettings({}, { sessionPrefix: '' })).toMatchObject({ sessionPrefix: '' });
  });

  it('a bad file value names the file and the key', () => {
    const cases: Array<[string, unknown, string]> = [
      ['listen', 11211, '/etc/sc.json: "listen": expected a "HOST:PORT" string'],
      ['listen', 'nowhere', '/etc/sc.json: "listen": "nowhere" is not HOST:PORT'],
      ['maxItemSize', '1.5m', '/etc/sc.json: "maxItemSize": "1.5m" is not a size'],
      ['memoryLimit', -1, '/etc/sc.json: "memoryLimit": "-1" is not a size'],
      ['maxConnections', 0, '/etc/sc.json: "maxConnections": "0" is not a whole number of at least 1'],
      ['socket', 5, '/etc/sc.json: "socket": expected a file path'],
      ['socketMode', '0888', '/etc/sc.json: "socketMode": "0888" is not an octal file mode'],
      ['socketMode', 888, '/etc/sc.json: "socketMode": "888" is not an octal file mode'],
      ['logLevel', 3, '/etc/sc.json: "logLevel": "3" is not a log level'],
      ['logFormat', 'JSON', '/etc/sc.json: "logFormat": "JSON" is not a log format'],
      ['peerListen', 11212, '/etc/sc.json: "peerListen": expected a "HOST:PORT" string'],
      ['peers', 5, '/etc/sc.json: "peers": expected "HOST:PORT,..." or an array of "HOST:PORT" strings'],
      ['peers', ['10.0.0.2:11212', 11212], '/etc/sc.json: "peers": 11212 is not a "HOST:PORT" string'],
      ['peers', ['10.0.0.2:11212', ''], '/etc/sc.json: "peers": "" is not HOST:PORT with a port from 1 to 65535'],
      ['nodeId', 7, '/etc/sc.json: "nodeId": "7" is not a node id'],
      ['replication', true, '/etc/sc.json: "replication": "true" is not a replication mode'],
      ['clusterSecret', 1234567890123456, '/etc/sc.json: "clusterSecret": expected a string'],
      ['clusterSecret', 'too-short', '/etc/sc.json: "clusterSecret": the cluster secret has 9 characters; use at least 16'],
      ['heartbeatMs', 5, '/etc/sc.json: "heartbeatMs": "5" is not a whole number of at least 10'],
      ['failureTimeoutMs', -1, '/etc/sc.json: "failureTimeoutMs": "-1" is not a whole number of at least 1'],
    ];
    for (const [key, value, message] of cases) {
      expect(configError(() => resolveSettings({ [key]: value }, {}, '/etc/sc.json')).message, key).toContain(message);
    }
    expect(configError(() => resolveSettings({ maxItemSize: 'x' }, {})).message).toContain('config file: "maxItemSize": "x" is not a size');
  });
});

describe('item size bounds (memcached: -I at least 1 KiB and at most half of -m)', () => {
  it('accepts the bounds themselves', () => {
    expect(resolveSettings({}, { maxItemSize: '1024' }).maxItemSize).toBe(1024);
    expect(resolveSettings({}, { maxItemSize: '8m', memoryLimit: '16m' })).toMatchObject({ maxItemSize: 8 * MiB, memoryLimit: 16 * MiB });
  });

  it('refuses an item size below 1 KiB, naming --max-item-size', () => {
    expect(configError(() => resolveSettings({}, { maxItemSize: '1023' })).message).toBe('--max-item-size (maxItemSize): 1023 is below the 1024-byte minimum');
  });

  it('refuses an item size over half the memory limit, naming both flags', () => {
    expect(configError(() => resolveSettings({ memoryLimit: '16m' }, { maxItemSize: '9m' })).message).toBe(
      `--max-item-size (maxItemSize): ${9 * MiB} is more than half of --memory-limit (memoryLimit, ${16 * MiB}); raise the memory limit or lower the item size`,
    );
    // the default item size (1 MiB) against a small limit
    expect(configError(() => resolveSettings({}, { memoryLimit: '1m' })).message).toContain('is more than half of --memory-limit (memoryLimit');
  });
});

describe('parsePeers', () => {
  it('reads a comma-separated list or a JSON array, each entry like --listen, as "host:port"', () => {
    expect(parsePeers('10.0.0.2:11212,10.0.0.3:11212', '--peers')).toEqual(['10.0.0.2:11212', '10.0.0.3:11212']);
    expect(parsePeers(' a:1 , [::1]:2,', '--peers')).toEqual(['a:1', '[::1]:2']);
    expect(parsePeers(['b:3', '[fe80::1]:4'], 'peers')).toEqual(['b:3', '[fe80::1]:4']);
    expect(parsePeers('', '--peers')).toEqual([]);
    expect(parsePeers([], 'peers')).toEqual([]);
  });
});

describe('defaultNodeId', () => {
  it('is the host name and the peer port, so a restart on the same host and port is the same member', () => {
    expect(defaultNodeId('web1', 11212)).toBe('web1-11212');
    expect(defaultNodeId('web1.example.com', 7000)).toBe('web1.example.com-7000');
    expect(defaultNodeId('web1', 7000)).toBe(defaultNodeId('web1', 7000));
    expect(defaultNodeId('web1', 7000)).not.toBe(defaultNodeId('web1', 7001));
  });

  it('replaces characters outside [A-Za-z0-9_.-] and fits 64 characters, keeping the port', () => {
    expect(defaultNodeId('my host (2)', 1)).toBe('my-host--2--1');
    expect(defaultNodeId('hôte', 2)).toBe('h-te-2');
    expect(defaultNodeId('', 3)).toBe('node-3');
    const long = defaultNodeId('h'.repeat(100), 65535);
    expect(long).toBe(`${'h'.repeat(58)}-65535`);
    expect(long).toHaveLength(64);
    for (const id of [long, defaultNodeId('a b/c:d', 9), defaultNodeId('', 3)]) expect(id).toMatch(/^[A-Za-z0-9_.-]{1,64}$/);
  });
});

describe('cluster settings', () => {
  const cluster = { peerListen: '127.0.0.1:11212', clusterSecret: SECRET };

  it('are off by default: no peer port, no peers, no node id, no secret', () => {
    expect(resolveSettings({}, {}, 'config file', {})).toMatchObject(SINGLE_NODE);
  });

  it('--peer-listen turns cluster mode on, with a node id derived from the host name and peer port', () => {
    const settings = resolveSettings({}, cluster, 'config file', {});
    expect(settings).toMatchObject({
      peerListen: { host: '127.0.0.1', port: 11212 }, peers: [], nodeId: defaultNodeId(hostname(), 11212),
      replication: 'sync', twoNodes: 'available', clusterSecret: SECRET, heartbeatMs: 200, failureTimeoutMs: 800, drainTimeoutMs: 30000, sessionPrefix: 'memc.sess.key.',
    });
    // the same host and port give the same id on every start
    expect(resolveSettings({}, cluster, 'config file', {}).nodeId).toBe(settings.nodeId);
  });

  it('peer port 0 leaves the node id to the daemon, which knows the port it bound', () => {
    expect(resolveSettings({}, { ...cluster, peerListen: '127.0.0.1:0' }, 'config file', {})).toMatchObject({
      peerListen: { host: '127.0.0.1', port: 0 }, nodeId: null,
    });
  });

  it('reads each from its flag\'s string, and from the file; flags win over the file', () => {
    expect(resolveSettings({}, {
      peerListen: ':11212', peerAdvertise: '10.0.0.1:11212', peers: '10.0.0.2:11212,10.0.0.3:11212', nodeId: 'web-1.a_b', replication: 'async',
      clusterSecret: SECRET, heartbeatMs: '50', failureTimeoutMs: '150',
    }, 'config file', {})).toMatchObject({
      peerListen: { host: '0.0.0.0', port: 11212 }, peerAdvertise: { host: '10.0.0.1', port: 11212 }, peers: ['10.0.0.2:11212', '10.0.0.3:11212'], nodeId: 'web-1.a_b',
      replication: 'async', twoNodes: 'available', clusterSecret: SECRET, heartbeatMs: 50, failureTimeoutMs: 150, drainTimeoutMs: 30000, sessionPrefix: 'memc.sess.key.',
    });
    const file: RawSettings = {
      peerListen: '10.0.0.1:11212', peers: ['10.0.0.2:11212'], nodeId: 'file-node', replication: 'async',
      clusterSecret: 'secret-from-the-file', heartbeatMs: 100, failureTimeoutMs: 2000, drainTimeoutMs: 30000, sessionPrefix: 'memc.sess.key.',
    };
    expect(resolveSettings(file, {}, 'config file', {})).toMatchObject({
      peerListen: { host: '10.0.0.1', port: 11212 }, peers: ['10.0.0.2:11212'], nodeId: 'file-node', replication: 'async',
      clusterSecret: 'secret-from-the-file', heartbeatMs: 100, failureTimeoutMs: 2000, drainTimeoutMs: 30000, sessionPrefix: 'memc.sess.key.',
    });
    expect(resolveSettings({ ...file, peers: '10.0.0.4:1, 10.0.0.5:2' }, {
      peerListen: '10.0.0.9:11212', peers: '10.0.0.3:11212', nodeId: 'flag-node', replication: 'sync',
      clusterSecret: 'secret-from-the-flag', heartbeatMs: '300',
    }, 'config file', {})).toMatchObject({
      peerListen: { host: '10.0.0.9', port: 11212 }, peers: ['10.0.0.3:11212'], nodeId: 'flag-node', replication: 'sync',
      clusterSecret: 'secret-from-the-flag', heartbeatMs: 300, failureTimeoutMs: 2000, drainTimeoutMs: 30000, sessionPrefix: 'memc.sess.key.',
    });
  });

  it('the secret comes from --cluster-secret, then the file, then SESSION_CLUSTER_SECRET', () => {
    const env = { SESSION_CLUSTER_SECRET: 'secret-from-the-environment' };
    const listen = { peerListen: '127.0.0.1:11212' };
    expect(resolveSettings({}, listen, 'config file', env).clusterSecret).toBe('secret-from-the-environment');
    expect(resolveSettings({ clusterSecret: 'secret-from-the-file' }, listen, 'config file', env).clusterSecret).toBe('secret-from-the-file');
    expect(resolveSettings({ clusterSecret: 'secret-from-the-file' }, { ...listen, clusterSecret: 'secret-from-the-flag' }, 'config file', env).clusterSecret)
      .toBe('secret-from-the-flag');
    // the default environment is the process's
    process.env.SESSION_CLUSTER_SECRET = 'secret-from-process-env';
    try {
      expect(resolveSettings({}, listen).clusterSecret).toBe('secret-from-process-env');
    } finally {
      delete process.env.SESSION_CLUSTER_SECRET;
    }
  });

  it('an empty SESSION_CLUSTER_SECRET counts as unset; a short one is refused, naming it, unless the file or a flag gives the secret', () => {
    expect(configError(() => resolveSettings({}, { peerListen: '127.0.0.1:1' }, 'config file', { SESSION_CLUSTER_SECRET: '' })).message)
      .toContain('--peer-listen (peerListen) needs a cluster secret');
    expect(configError(() => resolveSettings({}, {}, 'config file', { SESSION_CLUSTER_SECRET: 'short' })).message)
      .toBe('SESSION_CLUSTER_SECRET: the cluster secret has 5 characters; use at least 16');
    expect(resolveSettings({}, { clusterSecret: SECRET }, 'config file', { SESSION_CLUSTER_SECRET: 'short' }).clusterSecret).toBe(SECRET);
  });

  it('no message ever holds the secret', () => {
    const secret = 'sh0rt-s3cret';
    for (const run of [
      () => resolveSettings({}, { clusterSecret: secret }, 'config file', {}),
      () => resolveSettings({ clusterSecret: secret }, {}, '/etc/sc.json', {}),
      () => resolveSettings({}, {}, 'config file', { SESSION_CLUSTER_SECRET: secret }),
    ]) expect(configError(run).message).not.toContain(secret);
  });

  it('refuses --peers without --peer-listen, naming both', () => {
    expect(configError(() => resolveSettings({}, { peers: '10.0.0.2:11212', clusterSecret: SECRET }, 'config file', {})).message).toBe(
      '--peers (peers): seed peers need --peer-listen (peerListen), the address peers reach this node on',
    );
    expect(configError(() => resolveSettings({ peers: ['10.0.0.2:11212'] }, {}, 'config file', {})).message).toContain('--peers (peers): seed peers need --peer-listen');
    // an empty list is no peers
    expect(resolveSettings({}, { peers: '' }, 'config file', {}).peers).toEqual([]);
  });

  it('refuses --peer-listen without a secret, naming --cluster-secret and SESSION_CLUSTER_SECRET', () => {
    expect(configError(() => resolveSettings({}, { peerListen: '127.0.0.1:11212' }, 'config file', {})).message).toBe(
      '--peer-listen (peerListen) needs a cluster secret: set --cluster-secret (clusterSecret) or the SESSION_CLUSTER_SECRET environment variable, the same on every node',
    );
    expect(configError(() => resolveSettings({ peerListen: ':0' }, {}, 'config file', {})).message).toContain('--cluster-secret (clusterSecret) or the SESSION_CLUSTER_SECRET');
  });

  it('accepts a secret of exactly 16 characters', () => {
    expect(resolveSettings({}, { ...cluster, clusterSecret: '0123456789abcdef' }, 'config file', {}).clusterSecret).toBe('0123456789abcdef');
  });

  it('refuses a failure timeout under 3 heartbeats, naming both flags, and accepts exactly 3', () => {
    expect(configError(() => resolveSettings({}, { heartbeatMs: '200', failureTimeoutMs: '599' }, 'config file', {})).message).toBe(
      '--failure-timeout-ms (failureTimeoutMs): 599 is less than 3 times --heartbeat-ms (heartbeatMs, 200); a peer must miss 3 heartbeats before it is declared dead',
    );
    // the default failure timeout (800) against a slower heartbeat
    expect(configError(() => resolveSettings({ heartbeatMs: 400 }, {}, 'config file', {})).message).toContain(
      '--failure-timeout-ms (failureTimeoutMs): 800 is less than 3 times --heartbeat-ms (heartbeatMs, 400)',
    );
    expect(resolveSettings({}, { heartbeatMs: '10', failureTimeoutMs: '30' }, 'config file', {})).toMatchObject({ heartbeatMs: 10, failureTimeoutMs: 30 });
    expect(resolveSettings({}, { heartbeatMs: '200', failureTimeoutMs: '600' }, 'config file', {})).toMatchObject({ heartbeatMs: 200, failureTimeoutMs: 600 });
  });

  it('a config file holding the cluster settings is read', () => {
    const dir = mkdtempSync(join(tmpdir(), 'session-cluster-config-'));
    try {
      const path = join(dir, 'cluster.json');
      writeFileSync(path, JSON.stringify({ peerListen: '127.0.0.1:11212', peers: '127.0.0.1:11213,127.0.0.1:11214', clusterSecret: SECRET, nodeId: 'n1' }));
      expect(resolveSettings(readConfigFile(path), {}, path, {})).toMatchObject({
        peerListen: { host: '127.0.0.1', port: 11212 }, peers: ['127.0.0.1:11213', '127.0.0.1:11214'], clusterSecret: SECRET, nodeId: 'n1',
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('readConfigFile', () => {
  const dir = mkdtempSync(join(tmpdir(), 'session-cluster-config-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, text: string) => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };

  it('returns the raw settings of a JSON object, which resolveSettings then reads', () => {
    const path = file('good.json', JSON.stringify({ listen: ':11300', maxItemSize: '2m', maxConnections: 20 }));
    const raw = readConfigFile(path);
    expect(raw).toEqual({ listen: ':11300', maxItemSize: '2m', maxConnections: 20 });
    expect(resolveSettings(raw, { maxConnections: '30' }, path)).toMatchObject({
      listen: { host: '0.0.0.0', port: 11300 }, maxItemSize: 2 * MiB, maxConnections: 30,
    });
  });

  it('a missing file names --config', () => {
    const path = join(dir, 'missing.json');
    expect(configError(() => readConfigFile(path)).message).toMatch(new RegExp(`^--config: cannot read ${path}: .*ENOENT`));
  });

  it('bad JSON names --config and the file', () => {
    const path = file('bad.json', '{ "listen": ');
    expect(configError(() => readConfigFile(path)).message).toMatch(new RegExp(`^--config: ${path} is not valid JSON: `));
  });

  it('JSON that is not an object names --config and the file', () => {
    for (const [name, text] of [['array.json', '[1]'], ['null.json', 'null'], ['number.json', '3'], ['string.json', '"x"']]) {
      const path = file(name!, text!);
      expect(configError(() => readConfigFile(path)).message).toBe(`--config: ${path} must hold a JSON object of settings`);
    }
  });

  it('an unknown key names it and lists the known ones', () => {
    const path = file('unknown.json', JSON.stringify({ listen: ':1', maxItemSzie: '1m' }));
    expect(configError(() => readConfigFile(path)).message).toBe(
      `--config: ${path}: unknown setting "maxItemSzie"; known settings: listen, socket, socketMode, maxItemSize, memoryLimit, maxConnections, commandTimeoutMs, stopGraceMs, logLevel, logFormat, `
      + 'peerListen, peerAdvertise, peers, nodeId, replication, twoNodes, clusterSecret, heartbeatMs, failureTimeoutMs, drainTimeoutMs, joinTimeoutMs, sessionPrefix, '
      + 'peerTlsCert, peerTlsKey, peerTlsCa, metricsListen, dataDir, fsync, diskLimit, recoverTruncate, lockWaitMs, authFile, allow, disableFlush, disableCachedump',
    );
  });
});

describe('--peer-advertise: the address other nodes dial', () => {
  const cluster = { clusterSecret: SECRET };

  it('is --peer-listen when not given; given, it is kept apart from the listen address', () => {
    expect(resolveSettings({}, { ...cluster, peerListen: '10.0.0.1:11212' }, 'config file', {}).peerAdvertise).toBeNull();
    expect(resolveSettings({}, { ...cluster, peerListen: '0.0.0.0:11212', peerAdvertise: '10.0.0.1:11212' }, 'config file', {})).toMatchObject({
      peerListen: { host: '0.0.0.0', port: 11212 }, peerAdvertise: { host: '10.0.0.1', port: 11212 }, nodeId: defaultNodeId(hostname(), 11212),
    });
    // NAT or a container's published port: another port than the one bound
    expect(resolveSettings({ peerListen: ':11212', peerAdvertise: 'web1.example.net:21212' }, cluster, 'config file', {})).toMatchObject({
      peerListen: { host: '0.0.0.0', port: 11212 }, peerAdvertise: { host: 'web1.example.net', port: 21212 },
    });
    expect(resolveSettings({}, { ...cluster, peerListen: '[::]:11212', peerAdvertise: '[fd00::1]:11212' }, 'config file', {}).peerAdvertise)
      .toEqual({ host: 'fd00::1', port: 11212 });
    // "" or null (JSON) means not given
    expect(resolveSettings({ peerAdvertise: null }, { ...cluster, peerListen: '10.0.0.1:11212', peerAdvertise: '' }, 'config file', {}).peerAdvertise).toBeNull();
  });

  it('a wildcard --peer-listen needs it: the message says to set --peer-advertise', () => {
    for (const listen of ['0.0.0.0:11212', ':11212', '[::]:11212', '[0:0::0]:11212', '0.0.0.0:0']) {
      const message = configError(() => resolveSettings({}, { ...cluster, peerListen: listen }, 'config file', {})).message;
      expect(message, listen).toMatch(/^--peer-listen \(peerListen\): .+ listens on every address, which other nodes cannot dial; set --peer-advertise \(peerAdvertise\) to the address they reach this node on, e\.g\. 10\.0\.0\.1:\d+$/);
    }
    expect(configError(() => resolveSettings({ peerListen: ':11212' }, cluster, '/etc/sc.json', {})).message)
      .toBe('--peer-listen (peerListen): 0.0.0.0:11212 listens on every address, which other nodes cannot dial; set --peer-advertise (peerAdvertise) to the address they reach this node on, e.g. 10.0.0.1:11212');
  });

  it('with --peer-listen on port 0, the node id comes from the advertised port, which is stable', () => {
    expect(resolveSettings({}, { ...cluster, peerListen: '0.0.0.0:0', peerAdvertise: '10.0.0.1:11212' }, 'config file', {}).nodeId)
      .toBe(defaultNodeId(hostname(), 11212));
  });

  it('refuses a wildcard, port 0, or no --peer-listen, naming the flag or key', () => {
    for (const advertise of ['0.0.0.0:11212', ':11212', '[::]:11212', '[::0]:11212']) {
      expect(configError(() => resolveSettings({}, { ...cluster, peerListen: '0.0.0.0:11212', peerAdvertise: advertise }, 'config file', {})).message, advertise)
        .toBe(`--peer-advertise: "${advertise}" is a wildcard address, which other nodes cannot dial; give the address they reach this node on, e.g. 10.0.0.1:11212`);
    }
    expect(configError(() => resolveSettings({}, { ...cluster, peerListen: '127.0.0.1:0', peerAdvertise: '10.0.0.1:0' }, 'config file', {})).message)
      .toBe('--peer-advertise: "10.0.0.1:0" has port 0; give the port other nodes reach this node on (1 to 65535), e.g. 10.0.0.1:11212');
    expect(configError(() => resolveSettings({ peerAdvertise: 'nowhere' }, cluster, '/etc/sc.json', {})).message)
      .toBe('/etc/sc.json: "peerAdvertise": "nowhere" is not HOST:PORT, e.g. 127.0.0.1:11211 (port 0 picks a free port)');
    expect(configError(() => resolveSettings({}, { ...cluster, peerAdvertise: '10.0.0.1:11212' }, 'config file', {})).message)
      .toBe('--peer-advertise (peerAdvertise): an advertised peer address needs --peer-listen (peerListen), the address the peer listener binds');
  });

  it('isWildcardHost: the unspecified addresses of IPv4 and IPv6, however written', () => {
    for (const host of ['0.0.0.0', '::', '::0', '0:0:0:0:0:0:0:0', '0::']) expect(isWildcardHost(host), host).toBe(true);
    for (const host of ['127.0.0.1', '10.0.0.0', '::1', 'fd00::', 'localhost', '0', '']) expect(isWildcardHost(host), host).toBe(false);
  });
});

describe('peer TLS: --peer-tls-cert, --peer-tls-key, --peer-tls-ca', () => {
  let certificates: TestCertificates;
  const paths: Record<string, string> = {};
  const cluster = { peerListen: '10.0.0.1:11212', clusterSecret: SECRET };
  let tls: RawSettings;

  beforeAll(() => {
    certificates = new TestCertificates();
    paths.ca = certificates.ca('cluster-ca');
    const node = certificates.node('node1', 'cluster-ca');
    const other = certificates.node('node2', 'cluster-ca');
    paths.cert = node.cert;
    paths.key = node.key;
    paths.otherKey = other.key;
    const write = (name: string, text: string) => {
      paths[name] = join(certificates.dir, name);
      writeFileSync(paths[name]!, text);
    };
    write('empty.pem', '');
    write('garbage-cert.pem', '-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n');
    paths.encryptedKey = join(certificates.dir, 'encrypted.key');
    execFileSync('openssl', ['pkey', '-in', paths.key, '-aes256', '-passout', 'pass:secret-passphrase', '-out', paths.encryptedKey]);
    // a chain: the node's certificate followed by the CA's, as a server usually sends it
    write('chain.pem', readFileSync(paths.cert, 'utf8') + readFileSync(paths.ca, 'utf8'));
    tls = { peerTlsCert: paths.cert, peerTlsKey: paths.key, peerTlsCa: paths.ca };
  });
  afterAll(() => certificates?.remove());

  it('are off by default', () => {
    expect(resolveSettings({}, cluster, 'config file', {})).toMatchObject({ peerTlsCert: null, peerTlsKey: null, peerTlsCa: null });
  });

  it('all three turn TLS on: each file is read at start and kept with its path', () => {
    const settings = resolveSettings({}, { ...cluster, ...tls }, 'config file', {});
    expect(settings.peerTlsCert).toEqual({ path: paths.cert, pem: readFileSync(paths.cert!) });
    expect(settings.peerTlsKey).toEqual({ path: paths.key, pem: readFileSync(paths.key!) });
    expect(settings.peerTlsCa).toEqual({ path: paths.ca, pem: readFileSync(paths.ca!) });
    // from the config file, a chain for the certificate, and flags win over the file
    const fromFile = resolveSettings({ ...tls, peerTlsCert: paths['chain.pem'] }, cluster, 'config file', {});
    expect(fromFile.peerTlsCert?.path).toBe(paths['chain.pem']);
    expect(resolveSettings({ ...tls, peerTlsCert: paths['chain.pem'] }, { ...cluster, peerTlsCert: paths.cert }, 'config file', {}).peerTlsCert?.path).toBe(paths.cert);
    // "" (a flag) or null (JSON) means not given
    expect(resolveSettings({ peerTlsCa: null }, { ...cluster, peerTlsCert: '', peerTlsKey: '' }, 'config file', {})).toMatchObject({ peerTlsCert: null, peerTlsKey: null, peerTlsCa: null });
  });

  it('only some of the three: refused, naming what is given and what is missing', () => {
    expect(configError(() => resolveSettings({}, { ...cluster, peerTlsCert: paths.cert, peerTlsKey: paths.key }, 'config file', {})).message).toBe(
      'peer TLS needs --peer-tls-cert, --peer-tls-key and --peer-tls-ca together; --peer-tls-cert (peerTlsCert) and --peer-tls-key (peerTlsKey) given, --peer-tls-ca (peerTlsCa) missing',
    );
    expect(configError(() => resolveSettings({ peerTlsCa: paths.ca }, cluster, 'config file', {})).message).toBe(
      'peer TLS needs --peer-tls-cert, --peer-tls-key and --peer-tls-ca together; --peer-tls-ca (peerTlsCa) given, --peer-tls-cert (peerTlsCert) and --peer-tls-key (peerTlsKey) missing',
    );
  });

  it('TLS without --peer-listen: refused', () => {
    expect(configError(() => resolveSettings({}, tls, 'config file', {})).message)
      .toBe('--peer-tls-cert, --peer-tls-key and --peer-tls-ca secure peer links, which need --peer-listen (peerListen)');
  });

  it('an unreadable file, or one that is not what its flag needs: refused at start, naming the flag or key and the file', () => {
    const missing = join(certificates.dir, 'missing.pem');
    const cases: Array<[RawSettings, string | RegExp]> = [
      [{ peerTlsCert: missing }, new RegExp(`^--peer-tls-cert: cannot read ${missing}: ENOENT`)],
      [{ peerTlsKey: certificates.dir }, new RegExp(`^--peer-tls-key: cannot read ${certificates.dir}: EISDIR`)],
      [{ peerTlsCert: paths.key }, `--peer-tls-cert: ${paths.key} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`],
      [{ peerTlsCa: paths['empty.pem'] }, `--peer-tls-ca: ${paths['empty.pem']} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`],
      [{ peerTlsCa: paths['garbage-cert.pem'] }, new RegExp(`^--peer-tls-ca: ${paths['garbage-cert.pem']}: certificate 1 is not valid: `)],
      [{ peerTlsKey: paths.cert }, new RegExp(`^--peer-tls-key: ${paths.cert} is not a PEM private key, or it is encrypted \\(a passphrase cannot be given\\): `)],
      [{ peerTlsKey: paths.encryptedKey }, new RegExp(`^--peer-tls-key: ${paths.encryptedKey} is not a PEM private key, or it is encrypted`)],
      [{ peerTlsCert: 5 }, '--peer-tls-cert: expected a file path'],
    ];
    for (const [bad, message] of cases) {
      const error = configError(() => resolveSettings({}, { ...cluster, ...tls, ...bad }, 'config file', {}));
      if (typeof message === 'string') expect(error.message, JSON.stringify(bad)).toBe(message);
      else expect(error.message, JSON.stringify(bad)).toMatch(message);
    }
    expect(configError(() => resolveSettings({ ...tls, peerTlsCert: missing }, cluster, '/etc/sc.json', {})).message).toMatch(`/etc/sc.json: "peerTlsCert": cannot read ${missing}`);
  });

  it('a key that is not the certificate\'s: refused, naming both', () => {
    expect(configError(() => resolveSettings({}, { ...cluster, ...tls, peerTlsKey: paths.otherKey }, 'config file', {})).message).toBe(
      `--peer-tls-key (peerTlsKey): ${paths.otherKey} is not the private key of the first certificate in --peer-tls-cert (peerTlsCert), ${paths.cert}`,
    );
  });

  it('no message holds the private key', () => {
    const key = readFileSync(paths.key!, 'utf8');
    const body = key.split('\n')[1]!;
    for (const run of [
      () => resolveSettings({}, { ...cluster, ...tls, peerTlsCert: paths.key }, 'config file', {}),
      () => resolveSettings({}, { ...cluster, ...tls, peerTlsCa: paths.key }, 'config file', {}),
      () => resolveSettings({}, { ...cluster, ...tls, peerTlsKey: paths.otherKey }, 'config file', {}),
    ]) expect(configError(run).message).not.toContain(body);
  });
});

