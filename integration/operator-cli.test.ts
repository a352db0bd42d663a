/**
 * The operator's command line against a live three-node cluster holding sessions written by real
 * PHP (both extensions, both text serialize handlers): status counts the sessions once and sees
 * every member; sessions show prints what PHP wrote; find and delete --where pick exactly the
 * sessions with the variable, and PHP then sees those users logged out and nobody else; locks
 * lists a lock a live PHP request holds; drain moves every session off a node while PHP keeps
 * writing through the others, with nothing lost, and undrain brings it back. Bad input to each
 * subcommand ends in one line and exit 1 or 2.
 */
import type { ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startLiveCluster, stopCluster, waitForMembers, type Cluster, type ClusterNode } from './cluster-harness.js';
import { daemonBin, freePort, freePorts, startDaemon, startMemcached, waitFor, type RunningServer } from './harness.js';
import { describeRead, killChildren, readBack, writeSessions } from './php-batches.js';
import { clientSetups, holdSessionLock, phpOk } from './php-harness.js';
import { rawGet } from './raw-client.js';

const [MEMCACHED_BINARY, MEMCACHED_ASCII, PECL_MEMCACHE] = clientSetups({ memcachedLockExpire: 30 });
const PHP_SERIALIZE = ['session.serialize_handler=php_serialize'];

interface CliRun { exitCode: number; stdout: string; stderr: string }

async function cli(args: string[], env: Record<string, string | undefined> = { SESSION_CLUSTER_PASSWORD: undefined }): Promise<CliRun> {
  const run = await execa(daemonBin, args, { reject: false, timeout: 60_000, stdin: 'ignore', env });
  return { exitCode: run.exitCode ?? -1, stdout: String(run.stdout), stderr: String(run.stderr) };
}

const address = (node: { host: string; port: number }) => `${node.host}:${node.port}`;

/** The run ended with `code` and said why in one line on stderr, with no stack trace. */
function expectOneLineError(run: CliRun, code: number, says: RegExp): void {
  const detail = JSON.stringify(run);
  expect(run.exitCode, detail).toBe(code);
  const lines = run.stderr.trim().split('\n');
  expect(lines, detail).toHaveLength(1);
  expect(lines[0], detail).toMatch(says);
  expect(run.stderr, detail).not.toMatch(/\n\s+at /);
}

describe('the operator command line, against a live cluster written by PHP', () => {
  let cluster: Cluster;
  let n1: ClusterNode;
  let n2: ClusterNode;
  let n3: ClusterNode;
  const metricsPorts: Record<string, number> = {};
  const holders = new Set<ChildProcess>();
  /** session ids PHP issued, by what each holds */
  const ids: Record<'alice' | 'cart' | 'bob' | 'nearMiss', string> = { alice: '', cart: '', bob: '', nearMiss: '' };

  beforeAll(async () => {
    const ports = await freePorts(3);
    ['node1', 'node2', 'node3'].forEach((id, i) => { metricsPorts[id] = ports[i]!; });
    cluster = await startLiveCluster(3, { perNodeArgs: ({ id }) => ['--metrics-listen', `127.0.0.1:${metricsPorts[id]}`] });
    [n1, n2, n3] = cluster.nodes as [ClusterNode, ClusterNode, ClusterNode];
    ids.alice = (await phpOk(n1, MEMCACHED_BINARY, ['create', '', JSON.stringify({ user_id: 42, name: 'alice' })])).id;
    ids.cart = (await phpOk(n2, PECL_MEMCACHE, ['create', '', JSON.stringify({ user_id: 42, cart: { items: 3, total: 9.5 } })], PHP_SERIALIZE)).id;
    ids.bob = (await phpOk(n3, MEMCACHED_ASCII, ['create', '', JSON.stringify({ user_id: 7, name: 'bob' })])).id;
    ids.nearMiss = (await phpOk(n1, PECL_MEMCACHE, ['create', '', JSON.stringify({ user_id: '420', profile: { user_id: 42 } })])).id;
  }, 60_000);

  afterEach(() => {
    for (const holder of holders) holder.kill('SIGKILL');
    holders.clear();
    killChildren();
  });

  afterAll(async () => {
    await stopCluster(cluster);
  });

  it('status lists the three members alive, counts each session once, and sees both copies of each', async () => {
    // Copies made in the background after the members met may still be under way at first.
    await waitFor(async () => (await cli(['status', '--node', address(n2)])).exitCode === 0, { timeoutMs: 10_000, what: 'status to report a healthy cluster' });
    const run = await cli(['status', '--node', address(n2), '--json']);
    expect(run.exitCode, run.stderr).toBe(0);
    const status = JSON.parse(run.stdout) as { members: Array<{ id: string; state: string; figures: { sessionsMastered: number; sessionsBackedUp: number; ready: boolean } | null }>; sessions: number; copiesComplete: boolean; healthy: boolean };
    expect(status.members.map((m) => [m.id, m.state]).sort()).toEqual([['node1', 'alive'], ['node2', 'alive'], ['node3', 'alive']]);
    expect(status.sessions).toBe(4);
    expect(status.members.reduce((sum, m) => sum + m.figures!.sessionsBackedUp, 0)).toBe(4);
    expect(status.copiesComplete).toBe(true);
    expect(status.healthy).toBe(true);

    const human = await cli(['status', '--node', address(n1)]);
    expect(human.exitCode).toBe(0);
    expect(human.stdout).toMatch(/^node1\s+alive\s+127\.0\.0\.1:\d+/m);
    expect(human.stdout).toContain('sessions: 4 (each counted once)');
    expect(human.stdout).toContain('cluster: healthy');
  });

  it('sessions show prints what PHP wrote, under either serialize handler, from a bare id or a full key', async () => {
    const alice = await cli(['sessions', 'show', ids.alice, '--node', address(n3), '--json']);
    expect(alice.exitCode, alice.stderr).toBe(0);
    const shown = JSON.parse(alice.stdout) as { key: string; extension: string; format: string; data: unknown; master: string; backup: string; copies: Array<{ node: string; held: boolean }>; lock: { held: boolean } };
    expect(shown).toMatchObject({ key: `memc.sess.key.${ids.alice}`, extension: 'php-memcached', format: 'php', data: { user_id: 42, name: 'alice' }, lock: { held: false } });
    expect(shown.master).not.toBe(shown.backup);
    expect(shown.copies.map((c) => c.held)).toEqual([true, true]);

    const cart = await cli(['sessions', 'show', ids.cart, '--node', address(n1), '--json']);
    expect(cart.exitCode, cart.stderr).toBe(0);
    expect(JSON.parse(cart.stdout)).toMatchObject({ key: ids.cart, extension: 'pecl memcache', format: 'php_serialize', data: { user_id: 42, cart: { items: 3, total: 9.5 } } });

    const byKey = await cli(['sessions', 'show', `memc.sess.key.${ids.bob}`, '--node', address(n2)]);
    expect(byKey.exitCode, byKey.stderr).toBe(0);
    expect(byKey.stdout).toMatch(/^format\s+php$/m);
    expect(byKey.stdout).toContain('"name": "bob"');
    expect(byKey.stdout).toMatch(/^master\s+node\d \(version \d+, \d+ bytes\)$/m);
  });

  it('locks lists the locks live PHP requests hold (each extension), not the ones released', async () => {
    await phpOk(n1, MEMCACHED_BINARY, ['update', ids.bob, JSON.stringify({ seen: 1 })], MEMCACHED_BINARY.lockingIni);
    // pecl memcache releases its lock by setting it to 0: the sessions it wrote have such keys now.
    expect((await rawGet(n1, PECL_MEMCACHE.lockKey(ids.nearMiss)))?.value).toBe('0');
    const held = await cli(['locks', '--node', address(n3), '--json']);
    expect(JSON.parse(held.stdout)).toMatchObject({ locks: [] });

    const memcachedHolder = await holdSessionLock(n2, MEMCACHED_BINARY, ids.bob, holders);
    const memcacheHolder = await holdSessionLock(n3, PECL_MEMCACHE, ids.nearMiss, holders);
    const run = await cli(['locks', '--node', address(n3), '--json']);
    expect(run.exitCode, run.stderr).toBe(0);
    const { locks, waiting } = JSON.parse(run.stdout) as { locks: Array<{ session: string; extension: string; heldForSeconds: number }>; waiting: Array<{ node: string; waiting: number }> };
    expect(locks.map((l) => [l.session, l.extension]).sort()).toEqual([[ids.bob, 'php-memcached'], [ids.nearMiss, 'pecl-memcache']].sort());
    // Held for about as long as the test has held them, not since the keys were first written.
    for (const lock of locks) expect(lock.heldForSeconds).toBeLessThan(20);
    expect(waiting.map((w) => w.node).sort()).toEqual(['node1', 'node2', 'node3']);
    const shown = JSON.parse((await cli(['sessions', 'show', ids.bob, '--node', address(n1), '--json'])).stdout) as { lock: { held: boolean } };
    expect(shown.lock.held).toBe(true);
    const human = await cli(['locks', '--node', address(n1)]);
    expect(human.stdout).toMatch(new RegExp(`^${ids.bob}\\s+php-memcached\\s+\\d+s\\s+node\\d$`, 'm'));

    memcachedHolder.kill('SIGKILL');
    memcacheHolder.kill('SIGKILL');
    await waitFor(async () => (await rawGet(n1, MEMCACHED_BINARY.lockKey(ids.bob))) === null, { timeoutMs: 5000, what: 'the dead holder\'s lock to be released' });
    await waitFor(async () => (JSON.parse((await cli(['locks', '--node', address(n3), '--json'])).stdout) as { locks: unknown[] }).locks.length === 0,
      { timeoutMs: 5000, what: 'no lock to be listed once both holders died' });
    const free = JSON.parse((await cli(['sessions', 'show', ids.nearMiss, '--node', address(n1), '--json'])).stdout) as { lock: { held: boolean } };
    expect(free.lock.held).toBe(false);
  });

  it('sessions find and delete --where pick exactly the sessions with the variable; PHP then finds those users logged out, and nobody else', async () => {
    const found = await cli(['sessions', 'find', '--where', 'user_id=42', '--node', address(n2), '--json']);
    expect(found.exitCode, found.stderr).toBe(0);
    const keys = (JSON.parse(found.stdout) as { sessions: Array<{ key: string }> }).sessions.map((s) => s.key).sort();
    expect(keys).toEqual([`memc.sess.key.${ids.alice}`, ids.cart].sort());

    const nested = await cli(['sessions', 'find', '--where', 'cart.items=3', '--node', address(n3)]);
    expect(nested.exitCode, nested.stderr).toBe(0);
    expect(nested.stdout.trim().split('\n')).toEqual([ids.cart, '1 session with cart.items=3']);
    const none = await cli(['sessions', 'find', '--where', 'user_id=99', '--node', address(n3)]);
    expect(none.exitCode).toBe(1);

    const unconfirmed = await cli(['sessions', 'delete', '--where', 'user_id=42', '--node', address(n1)]);
    expectOneLineError(unconfirmed, 2, /2 sessions with user_id=42: add --yes/);
    expect((await phpOk(n3, MEMCACHED_BINARY, ['read', ids.alice])).data).toEqual({ user_id: 42, name: 'alice' });

    const deleted = await cli(['sessions', 'delete', '--where', 'user_id=42', '--yes', '--node', address(n1), '--json']);
    expect(deleted.exitCode, deleted.stderr).toBe(0);
    expect((JSON.parse(deleted.stdout) as { deleted: string[] }).deleted.sort()).toEqual(keys);
    const count = await cli(['sessions', 'count', '--node', address(n2), '--json']);
    expect(count.exitCode, count.stderr).toBe(0);
    expect(JSON.parse(count.stdout)).toEqual({ sessions: 2 });

    // Logged out: through every node, PHP starts these sessions empty; the others keep their data.
    for (const node of [n1, n2, n3]) {
      expect((await phpOk(node, MEMCACHED_BINARY, ['read', ids.alice])).data).toEqual({});
      expect((await phpOk(node, PECL_MEMCACHE, ['read', ids.cart], PHP_SERIALIZE)).data).toEqual({});
    }
    expect((await phpOk(n2, MEMCACHED_ASCII, ['read', ids.bob])).data).toMatchObject({ user_id: 7, name: 'bob' });
    expect((await phpOk(n2, PECL_MEMCACHE, ['read', ids.nearMiss])).data).toEqual({ user_id: '420', profile: { user_id: 42 } });

    const one = await cli(['sessions', 'delete', ids.nearMiss, '--node', address(n3), '--json']);
    expect(one.exitCode, one.stderr).toBe(0);
    expect(JSON.parse(one.stdout)).toEqual({ deleted: [ids.nearMiss] });
    expectOneLineError(await cli(['sessions', 'show', ids.nearMiss, '--node', address(n1)]), 1, /no session/);
  });

  it('sessions top lists the biggest sessions first', async () => {
    const big = (await phpOk(n1, MEMCACHED_BINARY, ['create', '', JSON.stringify({ blob: 'x'.repeat(5000) })])).id;
    const run = await cli(['sessions', 'top', '--by', 'size', '--limit', '2', '--node', address(n2), '--json']);
    expect(run.exitCode, run.stderr).toBe(0);
    const sessions = (JSON.parse(run.stdout) as { sessions: Array<{ key: string; bytes: number }> }).sessions;
    expect(sessions).toHaveLength(2);
    expect(sessions[0]!.key).toBe(`memc.sess.key.${big}`);
    expect(sessions[0]!.bytes).toBeGreaterThan(5000);
    expect(sessions[1]!.bytes).toBeLessThan(sessions[0]!.bytes);
    const byAge = await cli(['sessions', 'top', '--by', 'age', '--node', address(n2), '--json']);
    expect(byAge.exitCode, byAge.stderr).toBe(0);
    expect((JSON.parse(byAge.stdout) as { sessions: Array<{ key: string }> }).sessions.at(-1)!.key).toBe(`memc.sess.key.${big}`);
  });

  it('drain moves every session off a node while PHP keeps writing through the others, with nothing lost; undrain brings it back', async () => {
    const health = async (node: string) => {
      const response = await fetch(`http://127.0.0.1:${metricsPorts[node]}/health`);
      return { status: response.status, body: await response.text() };
    };
    expect((await health('node3')).status).toBe(200);
    const writers = writeSessions([
      { setup: MEMCACHED_BINARY, via: n1, prefix: 'drainmb', from: 0, count: 300, tag: 'd1' },
      { setup: PECL_MEMCACHE, via: n2, prefix: 'drainpm', from: 0, count: 300, tag: 'd2' },
    ]);
    // Start once the writers are under way, so the drain runs while PHP writes.
    await waitFor(async () => Number((await cli(['sessions', 'count', '--node', address(n1), '--json'])).stdout.match(/\d+/)?.[0] ?? 0) > 60, { timeoutMs: 20_000, what: 'PHP to have written sessions' });
    const drained = await cli(['drain', '--node', address(n3), '--json']);
    expect(drained.exitCode, drained.stderr).toBe(0);
    const report = JSON.parse(drained.stdout) as { node: string; state: string; outcome: string; items: number; acknowledged: number; copies: number };
    expect(report).toMatchObject({ node: 'node3', state: 'drained', outcome: 'complete' });
    expect(report.acknowledged).toBe(report.copies);
    // The load balancer's health check moves this server's users elsewhere.
    const drainedHealth = await health('node3');
    expect(drainedHealth.status).toBe(503);
    expect(drainedHealth.body).toMatch(/drained: this node has left the cluster/);

    const outcome = await writers;
    expect(outcome.failed, JSON.stringify(outcome.failed.slice(0, 3))).toEqual([]);
    await waitForMembers([n1, n2], { node1: 'alive', node2: 'alive', node3: 'left' });
    const read = await readBack(outcome.acked, (w) => (w.via === n1 ? n2 : n1));
    expect(read.lost, describeRead(read)).toBe(0);
    expect(read.ok).toBe(600);
    // The drained node holds nothing: every session lives on the other two, in two copies.
    await waitFor(async () => (await cli(['status', '--node', address(n1)])).exitCode === 0, { timeoutMs: 10_000, what: 'status to report the two remaining nodes healthy' });
    const status = JSON.parse((await cli(['status', '--node', address(n1), '--json'])).stdout) as { members: Array<{ id: string; state: string }>; sessions: number; copiesComplete: boolean };
    expect(status.members.find((m) => m.id === 'node3')!.state).toBe('left');
    expect(status.copiesComplete).toBe(true);
    expect(status.sessions).toBeGreaterThanOrEqual(600);

    const back = await cli(['undrain', '--node', address(n3), '--json']);
    expect(back.exitCode, back.stderr).toBe(0);
    expect(JSON.parse(back.stdout)).toMatchObject({ node: 'node3', state: 'serving' });
    await waitForMembers(cluster.nodes, { node1: 'alive', node2: 'alive', node3: 'alive' });
    expect((await health('node3')).status).toBe(200);
    const again = await readBack(outcome.acked, () => n3);
    expect(again.lost, describeRead(again)).toBe(0);
  }, 120_000);
});

describe('bad input to the operator subcommands: one line and exit 1 or 2, never a stack trace', () => {
  let single: RunningServer;
  let memcached: RunningServer;
  let closedPort: number;

  beforeAll(async () => {
    [single, memcached] = await Promise.all([startDaemon(), startMemcached()]);
    closedPort = await freePort();
  });

  afterAll(async () => {
    await Promise.all([single?.stop(), memcached?.stop()]);
  });

  it.each([
    [['status', '--node', 'nonsense'], 2, /not a node address: "nonsense"/],
    [['status', '--node', '127.0.0.1:99999'], 2, /not a node address/],
    [['sessions', 'count', '--node', 'unix:relative/path'], 2, /not a node address/],
    [['locks', '--bogus'], 2, /unknown option '--bogus'/],
    [['sessions', 'find'], 2, /required option '--where/],
    [['sessions', 'find', '--where', 'no-equals-sign'], 2, /not a --where: "no-equals-sign"/],
    [['sessions', 'find', '--where', '=42'], 2, /not a --where/],
    [['sessions', 'delete'], 2, /name one session .* or give --where/],
    [['sessions', 'top', '--by', 'colour'], 2, /--by must be size or age/],
    [['sessions', 'top', '--limit', '-3'], 2, /--limit must be a positive whole number/],
  ])('%j exits %i', async (args, code, says) => {
    expectOneLineError(await cli(args as string[]), code as number, says as RegExp);
  });

  it('an unreachable node, every subcommand: exit 1 naming the address', async () => {
    for (const args of [['status'], ['sessions', 'show', 'abc'], ['sessions', 'count'], ['locks'], ['drain'], ['undrain']]) {
      expectOneLineError(await cli([...args, '--node', `127.0.0.1:${closedPort}`]), 1, new RegExp(`cannot reach 127\\.0\\.0\\.1:${closedPort}: connection refused`));
    }
    expectOneLineError(await cli(['status', '--node', 'unix:/nonexistent/session-cluster.sock']), 1, /cannot reach unix:\/nonexistent\/session-cluster\.sock: no such socket/);
  });

  it('an unknown session id, a malformed one, a lock key: exit 1, 2, 2', async () => {
    expectOneLineError(await cli(['sessions', 'show', 'nosuchsession', '--node', address(single)]), 1, /no session nosuchsession/);
    expectOneLineError(await cli(['sessions', 'delete', 'nosuchsession', '--node', address(single)]), 1, /no session nosuchsession/);
    expectOneLineError(await cli(['sessions', 'show', 'has space', '--node', address(single)]), 2, /not a session id or key/);
    expectOneLineError(await cli(['sessions', 'show', 'x'.repeat(300), '--node', address(single)]), 2, /at most 250 bytes/);
    expectOneLineError(await cli(['sessions', 'show', 'abc.lock', '--node', address(single)]), 2, /is a lock key/);
  });

  it('a node with --disable-cachedump refuses listings, and says which subcommands that turns off', async () => {
    const guarded = await startDaemon(['--disable-cachedump']);
    try {
      expectOneLineError(await cli(['sessions', 'count', '--node', address(guarded)]), 1, /runs with --disable-cachedump, which also turns off the listings that sessions find, count, top and locks read/);
      const status = await cli(['status', '--node', address(guarded)]);
      expect(status.exitCode, status.stderr).toBe(0);
    } finally {
      await guarded.stop();
    }
  });

  it('a real memcached is named as such; a single node has nothing to drain to', async () => {
    expectOneLineError(await cli(['status', '--node', address(memcached)]), 1, /is a memcached server, not a session-cluster node/);
    expectOneLineError(await cli(['drain', '--node', address(single)]), 1, /a single node has nothing to drain to/);
  });

  it('a node with --auth-file: refused without credentials, served with --user and SESSION_CLUSTER_PASSWORD', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'sc-cli-auth-'));
    const users = path.join(dir, 'users');
    writeFileSync(users, 'ops:0p3rat0r\n');
    chmodSync(users, 0o600);
    const secured = await startDaemon(['--auth-file', users]);
    try {
      const at = ['--node', address(secured)];
      expectOneLineError(await cli(['status', ...at]), 1, /requires authentication \(--auth-file\): give --user, and the password in SESSION_CLUSTER_PASSWORD/);
      expectOneLineError(await cli(['status', ...at, '--user', 'ops']), 2, /--user needs the password in the environment variable SESSION_CLUSTER_PASSWORD/);
      expectOneLineError(await cli(['status', ...at, '--user', 'ops'], { SESSION_CLUSTER_PASSWORD: 'wrong' }), 1, /refused user ops: wrong user or password/);
      const ok = await cli(['status', ...at, '--user', 'ops', '--json'], { SESSION_CLUSTER_PASSWORD: '0p3rat0r' });
      expect(ok.exitCode, ok.stderr).toBe(0);
      expect(JSON.parse(ok.stdout)).toMatchObject({ members: [{ id: 'local', state: 'alive' }] });
      // the password is on no command line: not in the process list, not in the output
      expect(ok.stdout + ok.stderr).not.toContain('0p3rat0r');
    } finally {
      await secured.stop();
    }
  });

  it('a single node: status and sessions work, with one copy of each session', async () => {
    const value = Buffer.from('user_id|i:5;');
    const set = await execa(process.execPath, ['-e', `
      const s = require('node:net').connect(${single.port}, '127.0.0.1');
      s.on('connect', () => s.write('set memc.sess.key.lonely 0 0 ${value.length}\\r\\n${value.toString()}\\r\\n'));
      s.on('data', (d) => { process.stdout.write(d); s.end(); });
    `]);
    expect(String(set.stdout)).toBe('STORED');
    const status = await cli(['status', '--node', address(single), '--json']);
    expect(status.exitCode, status.stderr).toBe(0);
    expect(JSON.parse(status.stdout)).toMatchObject({ sessions: 1, healthy: true, members: [{ id: 'local', state: 'alive' }] });
    const shown = await cli(['sessions', 'show', 'lonely', '--node', address(single), '--json']);
    expect(shown.exitCode, shown.stderr).toBe(0);
    expect(JSON.parse(shown.stdout)).toMatchObject({ data: { user_id: 5 }, master: 'local', backup: null });
  });
});
