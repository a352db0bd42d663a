/**
 * Client-port security with real daemons: client authentication (--auth-file: php-memcached's
 * SASL, raw binary SASL, memcached -Y's ascii credentials, and every node of a cluster checking
 * its own clients), the flush guard (--disable-flush) on a single node and
 * on every node of a cluster, the key-listing guard (--disable-cachedump, with libmemcached's
 * memcdump), and the --allow list (the whole 127/8 is loopback on Linux, so a client bound to
 * 127.0.0.2 is another address). The socket-path checks are in cli.test.ts.
 */
import { execa } from 'execa';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseMembers, startCluster, startLiveCluster, stats, stopCluster, type Cluster } from './cluster-harness.js';
import { pollUntil, startDaemon, type RunningServer } from './harness.js';
import { clientSetups, php, phpOk } from './php-harness.js';
import { buildPacket, exchange, Opcode, RawClient, rawGet, Status as BinaryStatus } from './raw-client.js';

const ask = async (server: { host: string; port: number }, request: string, until: RegExp = /\r\n$/) => (await exchange(server, request, until)).reply;

describe('--disable-flush and --disable-cachedump on a single node', () => {
  let guarded: RunningServer;
  let open: RunningServer;
  beforeAll(async () => {
    [guarded, open] = await Promise.all([startDaemon(['--disable-flush', '--disable-cachedump']), startDaemon()]);
  });
  afterAll(async () => { await Promise.all([guarded?.stop(), open?.stop()]); });

  it('flush_all gets memcached -F\'s answer in ascii and binary, and nothing is deleted', async () => {
    expect(await ask(guarded, 'set kept 0 0 4\r\nstay\r\n')).toBe('STORED\r\n');
    expect(await ask(guarded, 'flush_all\r\n')).toBe('CLIENT_ERROR flush_all not allowed\r\n');
    expect(await ask(guarded, 'flush_all 10\r\n')).toBe('CLIENT_ERROR flush_all not allowed\r\n');
    const client = await RawClient.connect(guarded.host, guarded.port);
    await client.send(buildPacket({ opcode: Opcode.FLUSH, opaque: 3 }));
    const answer = await client.readPacket(5000);
    client.destroy();
    expect(answer).toMatchObject({ opcode: Opcode.FLUSH, status: BinaryStatus.AUTH_ERROR, opaque: 3 });
    expect(answer?.value.toString()).toBe('flush_all not allowed');
    expect(await rawGet(guarded, 'kept')).toEqual({ flags: 0, value: 'stay' });
    // Counted, as memcached counts a refused flush_all.
    expect(Number((await stats(guarded)).cmd_flush)).toBe(3);
  });

  it('stats cachedump is refused, so memcdump lists no key; without the switch it lists them', async () => {
    expect(await ask(guarded, 'set listed 0 0 1\r\nx\r\n')).toBe('STORED\r\n');
    expect(await ask(guarded, 'stats cachedump 1 0\r\n')).toBe('CLIENT_ERROR stats cachedump not allowed\r\n');
    const refused = await execa('memcdump', [`--servers=${guarded.host}:${guarded.port}`], { reject: false, timeout: 10_000 });
    expect(`${refused.stdout}`).not.toContain('listed');
    expect(await ask(open, 'set listed 0 0 1\r\nx\r\n')).toBe('STORED\r\n');
    const listed = await execa('memcdump', [`--servers=${open.host}:${open.port}`], { reject: false, timeout: 10_000 });
    expect(`${listed.stdout}`).toContain('listed');
  });
});

describe('--disable-flush on every node of a cluster', () => {
  let cluster: Cluster;
  beforeAll(async () => { cluster = await startLiveCluster(3, { extraArgs: ['--disable-flush'], idPrefix: 'guard' }); }, 60_000);
  afterAll(async () => { await stopCluster(cluster); });

  it('flush_all through any node is refused there, and every node keeps every session', async () => {
    const keys = Array.from({ length: 30 }, (_, i) => `memc.sess.key.guard${i}`);
    for (const key of keys) expect(await ask(cluster.nodes[0]!, `set ${key} 0 0 2\r\nok\r\n`)).toBe('STORED\r\n');
    for (const node of cluster.nodes) expect(await ask(node, 'flush_all\r\n'), node.id).toBe('CLIENT_ERROR flush_all not allowed\r\n');
    for (const node of cluster.nodes) {
      for (const key of keys) expect(await rawGet(node, key), `${key} via ${node.id}`).toEqual({ flags: 0, value: 'ok' });
      expect(Number((await stats(node)).curr_items), node.id).toBeGreaterThan(0);
    }
  });
});

describe('--allow', () => {
  let server: RunningServer;
  beforeAll(async () => { server = await startDaemon(['--allow', '127.0.0.2/32']); });
  afterAll(async () => { await server?.stop(); });

  /** Connects from `localAddress` and asks for the version: the answer, or null if the connection was closed unanswered. */
  function versionFrom(localAddress: string): Promise<string | null> {
    return new Promise((resolve) => {
      const socket = net.connect({ host: server.host, port: server.port, localAddress }, () => socket.write('version\r\n'));
      let data = '';
      socket.on('data', (chunk) => {
        data += chunk.toString();
        if (data.endsWith('\r\n')) { socket.destroy(); resolve(data); }
      });
      socket.on('error', () => resolve(data === '' ? null : data));
      socket.on('close', () => resolve(data === '' ? null : data));
    });
  }

  it('a client from an address outside it is closed unanswered, counted and logged; one inside it is served', async () => {
    expect(await versionFrom('127.0.0.1')).toBe(null);
    expect(await versionFrom('127.0.0.2')).toMatch(/^VERSION /);
    const figures = await new Promise<string>((resolve) => {
      const socket = net.connect({ host: server.host, port: server.port, localAddress: '127.0.0.2' }, () => socket.write('stats\r\n'));
      let data = '';
      socket.on('data', (chunk) => {
        data += chunk.toString();
        if (data.endsWith('END\r\n')) { socket.destroy(); resolve(data); }
      });
    });
    expect(figures).toContain('STAT rejected_connections_not_allowed 1\r\n');
    const logged = server.logs.find((l) => String(l.msg ?? '').includes('not in --allow'));
    expect(logged).toMatchObject({ last: '127.0.0.1', allow: '127.0.0.2/32' });
  });
});

const USERS = (() => {
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'session-cluster-auth-')), 'users');
  writeFileSync(file, 'php:s3cret\n');
  chmodSync(file, 0o600);
  return file;
})();
const [MB] = clientSetups({ memcachedLockExpire: 30 });
const sasl = (user: string, password: string) => [`memcached.sess_sasl_username=${user}`, `memcached.sess_sasl_password=${password}`];

/** Sends one binary packet on `client` and reads its answer. */
async function binary(client: RawClient, spec: Parameters<typeof buildPacket>[0]) {
  await client.send(buildPacket(spec));
  return client.readPacket(5000);
}

describe('--auth-file on a single node', () => {
  let server: RunningServer;
  beforeAll(async () => { server = await startDaemon(['--auth-file', USERS]); });
  afterAll(async () => { await server?.stop(); });

  it('php-memcached with sess_sasl_username/password reads and writes sessions; with a wrong password or none it fails', async () => {
    const id = `auth${Date.now().toString(36)}`;
    await phpOk(server, MB, ['update', id, JSON.stringify({ user: 'alice' })], sasl('php', 's3cret'));
    const read = await phpOk(server, MB, ['read', id], sasl('php', 's3cret'));
    expect(read.data).toEqual({ user: 'alice' });
    for (const ini of [sasl('php', 'wrong'), []]) {
      const refused = await php(server, MB, ['read', id], ini);
      expect(refused.exitCode, refused.details).toBe(1);
      expect(refused.result?.data ?? {}, refused.details).toEqual({});
    }
  });

  it('a raw binary client gets the auth error for every command before SASL AUTH; a wrong password is counted; the right one is served', async () => {
    const client = await RawClient.connect(server.host, server.port);
    try {
      for (const opcode of [Opcode.GET, Opcode.VERSION, Opcode.FLUSH]) {
        const answer = await binary(client, { opcode, key: opcode === Opcode.GET ? 'k' : undefined, opaque: opcode });
        expect(answer, `opcode ${opcode}`).toMatchObject({ status: BinaryStatus.AUTH_ERROR, opaque: opcode });
      }
      expect((await binary(client, { opcode: 0x20 }))?.value.toString()).toBe('PLAIN');
      expect(await binary(client, { opcode: 0x21, key: 'PLAIN', value: '\0php\0guess' })).toMatchObject({ status: BinaryStatus.AUTH_ERROR });
      expect(await binary(client, { opcode: 0x21, key: 'PLAIN', value: '\0php\0s3cret' })).toMatchObject({ status: BinaryStatus.SUCCESS });
      expect(await binary(client, { opcode: Opcode.VERSION })).toMatchObject({ status: BinaryStatus.SUCCESS });
    } finally {
      client.destroy();
    }
  });

  it('ascii: commands before the credentials get CLIENT_ERROR unauthenticated; a set of "user password" authenticates (memcached -Y); wrong tokens are counted', async () => {
    const client = await RawClient.connect(server.host, server.port);
    try {
      const line = async (request: string) => (await client.request(request, '\r\n', 5000)).data.toString();
      expect(await line('get k\r\n')).toBe('CLIENT_ERROR unauthenticated\r\n');
      expect(await line('set auth 0 0 9\r\nphp wrong\r\n')).toBe('CLIENT_ERROR authentication failure\r\n');
      expect(await line('set auth 0 0 10\r\nphp s3cret\r\n')).toBe('STORED\r\n');
      expect(await line('set k 0 0 1\r\nv\r\n')).toBe('STORED\r\n');
      const figures = (await client.request('stats\r\n', 'END\r\n', 5000)).data.toString();
      expect(figures).toMatch(/STAT auth_errors [1-9]\d*\r\n/);
      expect(figures).toMatch(/STAT auth_cmds [1-9]\d*\r\n/);
    } finally {
      client.destroy();
    }
  });
});

describe('--auth-file on every node of a cluster', () => {
  let cluster: Cluster;
  /** `stats` on a connection that authenticates first, as memcached -Y's ascii credentials. */
  async function authedStats(node: { host: string; port: number }): Promise<string> {
    return (await exchange(node, 'set auth 0 0 10\r\nphp s3cret\r\nstats\r\n', /END\r\n$/)).reply;
  }
  beforeAll(async () => {
    cluster = await startCluster(3, { extraArgs: ['--auth-file', USERS], idPrefix: 'auth' });
    const alive = async () => (await Promise.all(cluster.nodes.map(async (node) => {
      const members = parseMembers(/STAT cluster_members (\S+)/.exec(await authedStats(node))?.[1]);
      return Object.values(members).filter((state) => state === 'alive').length === 3;
    }))).every(Boolean);
    expect(await pollUntil(alive, { timeoutMs: 10_000 })).toBe(true);
  }, 60_000);
  afterAll(async () => { await stopCluster(cluster); });

  it('each node checks its own clients: a session mastered elsewhere is refused unauthenticated and served authenticated, through every node', async () => {
    for (const node of cluster.nodes) {
      const id = `authc${node.id}${Date.now().toString(36)}`;
      const refused = await php(node, MB, ['update', id, JSON.stringify({ n: 1 })], []);
      expect(refused.exitCode, refused.details).toBe(1);
      await phpOk(node, MB, ['update', id, JSON.stringify({ n: 1 })], sasl('php', 's3cret'));
      for (const reader of cluster.nodes) {
        const read = await phpOk(reader, MB, ['read', id], sasl('php', 's3cret'));
        expect(read.data, `${id} via ${reader.id}`).toEqual({ n: 1 });
      }
    }
    const line = async (node: { host: string; port: number }) => (await exchange(node, 'get memc.sess.key.anything\r\n', /\r\n$/)).reply;
    for (const node of cluster.nodes) expect(await line(node), node.id).toBe('CLIENT_ERROR unauthenticated\r\n');
  });
});
