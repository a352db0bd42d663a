/**
 * Client-port security with real daemons: the flush guard (--disable-flush) on a single node and
 * on every node of a cluster, the key-listing guard (--disable-cachedump, with libmemcached's
 * memcdump), and the --allow list (the whole 127/8 is loopback on Linux, so a client bound to
 * 127.0.0.2 is another address). The socket-path checks are in cli.test.ts.
 */
import { execa } from 'execa';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLiveCluster, stats, stopCluster, type Cluster } from './cluster-harness.js';
import { startDaemon, type RunningServer } from './harness.js';
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
