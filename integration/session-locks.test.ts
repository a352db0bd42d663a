/**
 * Session locks with real PHP and real daemons (docs/architecture.md, "Session locks"):
 *  - a PHP worker killed with kill -9 while it holds its session's lock: the daemon releases the
 *    lock as the worker's connection closes, and the request already waiting for it gets it
 *    (each extension; a single node, and a node of a cluster that is not the session's master);
 *  - live holders are safe: 50 concurrent requests on one session through three nodes end with
 *    exactly 50 increments, and no request held the lock while another did, with lock handoff
 *    (--lock-wait-ms) off and on;
 *  - with handoff off, PHP's own lock timing is what it is against memcached: a request that
 *    cannot get the lock gives up after its configured retries, with the same error;
 *  - with handoff on, in both protocols: a waiter whose connection closes leaves the line, and a
 *    lock released because its holder disconnected goes to the next waiter.
 */
import type { ChildProcess } from 'node:child_process';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { allAlive, sessionOwners, startLiveCluster, stats, stopCluster, sumStats, waitForMembers, type Cluster, type ClusterNode } from './cluster-harness.js';
import { pollUntil, startDaemon, startMemcached, type RunningServer } from './harness.js';
import { clientSetups, expectPhpOk, holdSessionLock, php, phpOk, type ClientSetup, type SessionServer } from './php-harness.js';
import { buildPacket, Opcode, RawClient, rawGet, rawStats, Status as BinaryStatus, storageExtras } from './raw-client.js';

// php-memcached's lock expires after 30 s, pecl memcache's after 15 s: a waiter that gets the lock
// within the test did not wait for the expiry.
const SETUPS = clientSetups({ memcachedLockExpire: 30 });
const holders = new Set<ChildProcess>();

afterEach(() => {
  for (const holder of holders) holder.kill('SIGKILL');
  holders.clear();
});

/** Starts a PHP request that takes the session's lock and keeps it; settles once it holds it. */
function holdLock(server: SessionServer, setup: ClientSetup, id: string): Promise<ChildProcess> {
  return holdSessionLock(server, setup, id, holders);
}

const counter = async (node: SessionServer, name: string) => Number((await stats(node))[name]);
const total = async (nodes: SessionServer[], name: string) => (await sumStats(nodes, [name]))[name]!;

/**
 * A worker holds `id`'s lock through `via`; another request for the session, through `waitVia`,
 * starts waiting for it; the worker is killed with kill -9. The waiter must get the lock and end
 * cleanly, and `via` must have released the lock for the dead worker.
 */
async function killHolderWhileWaited(setup: ClientSetup, via: SessionServer, waitVia: SessionServer, id: string, all: SessionServer[] = [via]): Promise<void> {
  await phpOk(via, setup, ['update', id, JSON.stringify({ counter: 0 })], setup.lockingIni);
  const releasedBefore = await counter(via, 'session_locks_released_on_disconnect');
  const contendedBefore = await counter(waitVia, 'session_locks_contended');
  const holder = await holdLock(via, setup, id);
  const waiter = php(waitVia, setup, ['counter', id], setup.lockingIni, { SLEEP_MS: '1' });
  // It polls the held lock (handoff off), or waits in line on the lock's master (handoff on).
  const waiting = async () => (await counter(waitVia, 'session_locks_contended')) > contendedBefore || (await total(all, 'session_locks_waiting')) > 0;
  expect(await pollUntil(waiting, { timeoutMs: 10_000 }), 'the waiter waits for the held lock').toBe(true);
  const killedAt = Date.now();
  holder.kill('SIGKILL');
  const run = await waiter;
  const waited = Date.now() - killedAt;
  expect(run.exitCode, run.details).toBe(0);
  expect(run.result?.errors, run.details).toEqual([]);
  expect(run.result?.read, run.details).toBe(0);
  expect(await counter(via, 'session_locks_released_on_disconnect')).toBe(releasedBefore + 1);
  console.log(`${setup.name}: lock of a killed worker (via ${via.id ?? 'the node'}) taken by the waiting request (via ${waitVia.id ?? 'the node'}) ${waited} ms after the kill`);
  // The waiter released it in turn, as PHP does.
  expect(await rawGet(waitVia, setup.lockKey(id))).toEqual(setup.releasedLock);
}

describe('a PHP worker killed while it holds its session\'s lock: single node', () => {
  let server: RunningServer;
  beforeAll(async () => { server = await startDaemon(); });
  afterAll(async () => { await server?.stop(); });

  it.each(SETUPS)('$name: the daemon releases the lock as the connection closes; the waiting request gets it', async (setup) => {
    const id = `lk${setup.tag}${Date.now().toString(36)}single`;
    await killHolderWhileWaited(setup, server, server, id);
    const lines = server.logs.filter((l) => String(l.msg ?? '').includes('closed without releasing'));
    expect(lines.at(-1)).toMatchObject({ session: `${id.slice(0, 6)}…` });
    expect(JSON.stringify(server.logs)).not.toContain(id);
  });
});

describe.each([
  { handoff: 'off', args: [] as string[] },
  { handoff: 'on', args: ['--lock-wait-ms', '1000'] },
])('session locks in a cluster, lock handoff $handoff', ({ handoff, args }) => {
  let cluster: Cluster;
  let nodes: ClusterNode[];
  beforeAll(async () => {
    cluster = await startLiveCluster(3, { extraArgs: args, idPrefix: `h${handoff}` });
    nodes = cluster.nodes;
  }, 60_000);
  afterAll(async () => { await stopCluster(cluster); });

  /** A session id (of the php-harness kind) whose master is not `node`. */
  async function idMasteredElsewhere(node: ClusterNode, tag: string): Promise<string> {
    for (let i = 0; ; i++) {
      const id = `lk${tag}${handoff}${Date.now().toString(36)}c${i}`;
      const owners = await sessionOwners(node, id);
      if (owners.master !== node.id) return id;
    }
  }

  it.each(SETUPS)('$name: through a node that is not the session\'s master, a killed worker\'s lock is released on the master', async (setup) => {
    const via = nodes[0]!;
    const id = await idMasteredElsewhere(via, setup.tag);
    // The waiter comes through a third node: the release went to the master, not just to via.
    const master = (await sessionOwners(via, id)).master;
    const waitVia = nodes.find((n) => n.id !== via.id && n.id !== master) ?? nodes[1]!;
    await killHolderWhileWaited(setup, via, waitVia, id, nodes);
  });

  it.each(SETUPS)('$name: 50 concurrent requests on one session through three nodes end with exactly 50 increments, their lock holds never overlapping', async (setup) => {
    const N = 50;
    const { id } = await phpOk(nodes[0]!, setup, ['create', '', JSON.stringify({ counter: 0 })], setup.lockingIni);
    const handedOffBefore = await total(nodes, 'session_locks_handed_off');
    const contendedBefore = await total(nodes, 'session_locks_contended');
    const runs = await Promise.all(Array.from({ length: N }, (_, i) =>
      php(nodes[i % 3]!, setup, ['counter', id], setup.lockingIni, { SLEEP_MS: '5', HOLDS: '1' })));
    for (const run of runs) {
      expect(run.exitCode, run.details).toBe(0);
      expect(run.result?.errors, run.details).toEqual([]);
    }
    const final = await phpOk(nodes[2]!, setup, ['read', id], setup.lockingIni);
    expect(final.data.counter).toBe(N);
    const holds = (final.data.holds as Array<[number, number]>).slice().sort((a, b) => a[0] - b[0]);
    expect(holds).toHaveLength(N);
    const overlaps = holds.filter((hold, i) => i > 0 && hold[0] < holds[i - 1]![1]);
    expect(overlaps, 'a request held the lock while another did').toEqual([]);
    expect(await rawGet(nodes[1]!, setup.lockKey(id))).toEqual(setup.releasedLock);
    const handedOff = await total(nodes, 'session_locks_handed_off') - handedOffBefore;
    const contended = await total(nodes, 'session_locks_contended') - contendedBefore;
    console.log(`${setup.name}, handoff ${handoff}: ${N} requests on one session; polls of a held lock ${contended}, handed off ${handedOff}`);
    if (handoff === 'on') expect(handedOff).toBeGreaterThan(0);
    else expect(handedOff).toBe(0);
  }, 120_000);
});

describe('lock handoff off: PHP\'s own lock timing is as against memcached', () => {
  let server: RunningServer;
  let memcached: RunningServer;
  beforeAll(async () => { [server, memcached] = await Promise.all([startDaemon(), startMemcached()]); });
  afterAll(async () => { await Promise.all([server?.stop(), memcached?.stop()]); });

  // Three tries 50 ms apart, then php-memcached gives up on the session.
  const FEW_RETRIES = ['memcached.sess_locking=1', 'memcached.sess_lock_wait_min=50', 'memcached.sess_lock_wait_max=50', 'memcached.sess_lock_retries=3', 'memcached.sess_lock_expire=30'];

  it.each(SETUPS.filter((setup) => setup.tag !== 'pm'))('$name: a request that cannot get the lock fails after its retries, with the same error', async (setup) => {
    const outcomes = [];
    for (const target of [server, memcached]) {
      const id = `lkretry${setup.tag}${Date.now().toString(36)}`;
      const holder = await holdLock(target, setup, id);
      const started = Date.now();
      const writesBefore = await counter(target, 'cmd_set');
      const run = await php(target, setup, ['read', id], FEW_RETRIES);
      // The messages name the server's port: the same text otherwise.
      const errors = (run.result?.errors ?? []).map((error) => error.replace(`:${target.port})`, ':PORT)'));
      outcomes.push({ exitCode: run.exitCode, errors, lockTries: await counter(target, 'cmd_set') - writesBefore, ms: Date.now() - started });
      holder.kill('SIGKILL');
    }
    console.log(`${setup.name}: refused after ${outcomes[0]!.lockTries} tries: session-cluster ${outcomes[0]!.ms} ms, memcached (${outcomes[1]!.lockTries} tries) ${outcomes[1]!.ms} ms`);
    expect(outcomes[0]!.exitCode).toBe(1);
    expect(outcomes[0]!.errors.join(' ')).toContain('Unable to clear session lock record');
    const { ms: _ours, ...ours } = outcomes[0]!;
    const { ms: _theirs, ...theirs } = outcomes[1]!;
    expect(ours).toEqual(theirs);
  });
});

describe('lock handoff on: waiters that leave, holders that die (both protocols)', () => {
  let server: RunningServer;
  beforeAll(async () => { server = await startDaemon(['--lock-wait-ms', '5000']); });
  afterAll(async () => { await server?.stop(); });

  it('a waiter whose connection closes leaves the line; the lock its dead holder left goes to the next waiter', async () => {
    const lock = `memc.sess.key.lock.lkraw${Date.now().toString(36)}`;
    const holder = await RawClient.connect(server.host, server.port);
    expect((await holder.request(`add ${lock} 0 30 1\r\n1\r\n`, '\r\n')).data.toString()).toBe('STORED\r\n');
    // An ascii waiter that goes away, then a binary one that stays.
    const leaving = await RawClient.connect(server.host, server.port);
    await leaving.send(`add ${lock} 0 30 1\r\n1\r\n`);
    const staying = await RawClient.connect(server.host, server.port);
    await staying.send(buildPacket({ opcode: Opcode.ADD, key: lock, extras: storageExtras(0, 30), value: '1', opaque: 7 }));
    expect(await pollUntil(async () => (await counter(server, 'session_locks_waiting')) === 2, { timeoutMs: 5000 })).toBe(true);
    leaving.destroy();
    holder.destroy();
    const answer = await staying.readPacket(5000);
    expect(answer).toMatchObject({ opcode: Opcode.ADD, status: BinaryStatus.SUCCESS, opaque: 7 });
    const figures = await stats(server);
    expect(Number(figures.session_locks_waiting)).toBe(0);
    expect(Number(figures.session_locks_held)).toBe(1);
    // The dead holder's lock, and the one handed to the waiter that had left: both released.
    expect(Number(figures.session_locks_released_on_disconnect)).toBe(2);
    expect(Number(figures.session_locks_handed_off)).toBe(2);
    staying.destroy();
    expect(await pollUntil(async () => (await rawGet(server, lock)) === null, { timeoutMs: 5000 })).toBe(true);
  });
});

describe('a node stopped (SIGTERM) or drained while PHP requests hold their sessions\' locks', () => {
  let cluster: Cluster;
  beforeAll(async () => { cluster = await startLiveCluster(3, { idPrefix: 'stop' }); }, 60_000);
  afterAll(async () => { await stopCluster(cluster); });

  /** The node stopped by the test before (or by a failed one) comes back first. */
  async function allUp(): Promise<void> {
    const stopped = cluster.nodes.filter((node) => !node.running);
    if (stopped.length === 0) return;
    for (const node of stopped) await node.start();
    await waitForMembers(cluster.nodes, allAlive(cluster.nodes), 10_000);
  }

  it.each(SETUPS)('$name: the requests in progress finish their writes before the node drains; the other nodes have them', async (setup) => {
    const [node1, via] = cluster.nodes as [ClusterNode, ClusterNode];
    await allUp();
    const logged = (text: string) => via.logs.filter((l) => String(l.msg).includes(text));
    const REQUESTS = 4;
    const ids = Array.from({ length: REQUESTS }, (_, i) => `lk${setup.tag}stop${Date.now().toString(36)}r${i}`);
    for (const id of ids) await phpOk(via, setup, ['update', id, JSON.stringify({ counter: 41 })], setup.lockingIni);
    // Each request reads its session (taking the lock), sleeps 1.5 s, and writes counter + 1.
    const requests = ids.map((id) => php(via, setup, ['counter', id], setup.lockingIni, { SLEEP_MS: '1500' }));
    expect(await pollUntil(async () => (await counter(via, 'session_locks_held')) === REQUESTS, { timeoutMs: 10_000 }), 'every request holds its lock').toBe(true);
    const exitCode = await via.terminate();
    const runs = await Promise.all(requests);
    for (const run of runs) expectPhpOk(run);
    expect(exitCode, via.describeExit(12)).toBe(0);
    expect(logged('stopping: letting the requests in progress finish'), via.describeExit(12)).toMatchObject([{ requests: REQUESTS, stopGraceMs: 5000 }]);
    expect(logged('requests in progress finished'), via.describeExit(12)).toMatchObject([{ requests: REQUESTS }]);
    expect(logged('drained: every session acknowledged'), via.describeExit(12)).toHaveLength(1);
    expect(logged('released: the connection that took it closed')).toEqual([]);
    for (const id of ids) {
      const read = await phpOk(node1, setup, ['read', id], setup.lockingIni);
      expect(read.data.counter, id).toBe(42);
      expect(await rawGet(node1, setup.lockKey(id)), id).toEqual(setup.releasedLock);
    }
  }, 60_000);

  it.each(SETUPS.filter((setup) => setup.tag !== 'pm'))('$name with locking off (sess_locking=0): the requests that read their session write it before the node drains', async (setup) => {
    const [node1, via] = cluster.nodes as [ClusterNode, ClusterNode];
    await allUp();
    const logged = (text: string) => via.logs.filter((l) => String(l.msg).includes(text));
    const unlocked = ['memcached.sess_locking=0'];
    const ids = Array.from({ length: 3 }, (_, i) => `lk${setup.tag}nolock${Date.now().toString(36)}r${i}`);
    for (const id of ids) await phpOk(via, setup, ['update', id, JSON.stringify({ counter: 41 })], unlocked);
    // Each read counts on the session's master, wherever that is.
    const readsBefore = await total(cluster.nodes, 'get_hits');
    const requests = ids.map((id) => php(via, setup, ['counter', id], unlocked, { SLEEP_MS: '1500' }));
    expect(await pollUntil(async () => (await total(cluster.nodes, 'get_hits')) >= readsBefore + ids.length, { timeoutMs: 10_000 }), 'every request read its session').toBe(true);
    const exitCode = await via.terminate();
    for (const run of await Promise.all(requests)) expectPhpOk(run);
    expect(exitCode, via.describeExit(12)).toBe(0);
    expect(logged('stopping: letting the requests in progress finish'), via.describeExit(12)).toMatchObject([{ requests: ids.length }]);
    for (const id of ids) expect((await phpOk(node1, setup, ['read', id], unlocked)).data.counter, id).toBe(42);
  }, 60_000);

  it.each(SETUPS)('$name: an operator\'s drain (session-cluster drain) lets the requests in progress write first, and refuses new ones meanwhile', async (setup) => {
    const [node1, , via] = cluster.nodes as [ClusterNode, ClusterNode, ClusterNode];
    await allUp();
    const logged = (text: string) => via.logs.filter((l) => String(l.msg).includes(text));
    const before = logged('draining: letting the requests in progress finish').length;
    const ids = Array.from({ length: 2 }, (_, i) => `lk${setup.tag}drain${Date.now().toString(36)}r${i}`);
    for (const id of ids) await phpOk(via, setup, ['update', id, JSON.stringify({ counter: 41 })], setup.lockingIni);
    const requests = ids.map((id) => php(via, setup, ['counter', id], setup.lockingIni, { SLEEP_MS: '1500' }));
    expect(await pollUntil(async () => (await counter(via, 'session_locks_held')) === ids.length, { timeoutMs: 10_000 }), 'every request holds its lock').toBe(true);
    expect(await rawStats(via, { args: 'drain' })).toMatchObject({ state: 'draining' });
    // A new request through the draining node is refused: nothing is read. php-memcached's
    // session_start() fails; pecl memcache reads an error as an empty session, and its write fails.
    const refused = await php(via, setup, ['read', ids[0]!], setup.lockingIni);
    if (setup.tag === 'pm') {
      expect(refused.result?.data, refused.details).toEqual({});
      expect(refused.result?.errors.join(' '), refused.details).toContain('Failed to write session data');
    } else {
      expect(refused.result?.ok, refused.details).toBe(false);
    }
    for (const run of await Promise.all(requests)) expectPhpOk(run);
    expect(await pollUntil(async () => (await rawStats(via, { args: 'drain status' })).state === 'drained', { timeoutMs: 20_000 })).toBe(true);
    expect(logged('draining: letting the requests in progress finish').slice(before), via.describeExit(12)).toMatchObject([{ requests: ids.length }]);
    for (const id of ids) expect((await phpOk(node1, setup, ['read', id], setup.lockingIni)).data.counter, id).toBe(42);
    expect(await rawStats(via, { args: 'undrain' })).toMatchObject({ state: 'rejoining' });
    expect(await pollUntil(async () => (await rawStats(via, { args: 'drain status' })).state === 'serving', { timeoutMs: 20_000 })).toBe(true);
    await waitForMembers(cluster.nodes, allAlive(cluster.nodes), 10_000);
  }, 60_000);
});

describe('a node killed (kill -9) while PHP requests through it hold their sessions\' locks', () => {
  let cluster: Cluster;
  beforeAll(async () => { cluster = await startLiveCluster(3, { idPrefix: 'dead' }); }, 60_000);
  afterAll(async () => { await stopCluster(cluster); });

  /** A session id (of the php-harness kind) whose master is, or is not, `node`. */
  async function sessionMastered(node: ClusterNode, byIt: boolean, tag: string): Promise<string> {
    for (let i = 0; ; i++) {
      const id = `lk${tag}dead${Date.now().toString(36)}m${i}`;
      if (((await sessionOwners(cluster.nodes[0]!, id)).master === node.id) === byIt) return id;
    }
  }

  it.each(SETUPS)('$name: the locks its requests held are released by their masters, both when a live node masters the session and when the dead one did', async (setup) => {
    const [other, , through] = cluster.nodes as [ClusterNode, ClusterNode, ClusterNode];
    for (const mastered of [false, true]) {
      if (!through.running) {
        await through.start();
        await waitForMembers(cluster.nodes, allAlive(cluster.nodes), 10_000);
      }
      const id = await sessionMastered(through, mastered, setup.tag);
      const what = mastered ? 'mastered by the dead node' : 'mastered by a live node';
      await phpOk(other, setup, ['update', id, JSON.stringify({ counter: 7 })], setup.lockingIni);
      const releasedLines = () => cluster.nodes.flatMap((node) => node.allLogs).filter((l) => l.msg === 'session lock released: the node its request came through died');
      const before = new Set(releasedLines());
      const holder = await holdLock(through, setup, id);
      await through.kill();
      holder.kill('SIGKILL');
      await waitForMembers([other], { [through.id]: 'dead' }, 5000);
      // Without the release it would wait out the lock's expiry: 30 s (php-memcached), 15 s (pecl memcache).
      expect(await pollUntil(async () => (await rawGet(other, setup.lockKey(id))) === null, { timeoutMs: 10_000 }), `the lock of a session ${what} is released`).toBe(true);
      // The line is logged once the delete is answered, after the copy to the backup: it may come just after.
      const logged = () => releasedLines().filter((l) => !before.has(l));
      await pollUntil(() => logged().length > 0, { timeoutMs: 5000 });
      expect(logged(), what).toMatchObject([{ deadNode: through.id, session: `${id.slice(0, 6)}…` }]);
      const next = await phpOk(other, setup, ['counter', id], setup.lockingIni);
      expect(next.read, what).toBe(7);
    }
    expect(await total(cluster.nodes.filter((node) => node.running), 'session_locks_released_node_died')).toBeGreaterThanOrEqual(2);
  }, 90_000);

  it.each(SETUPS)('$name: paused (kill -STOP) past the failure timeout, the node\'s lock was released and retaken; back, its request fails instead of writing over the newer session', async (setup) => {
    const [other, , through] = cluster.nodes as [ClusterNode, ClusterNode, ClusterNode];
    if (!through.running) {
      await through.start();
      await waitForMembers(cluster.nodes, allAlive(cluster.nodes), 10_000);
    }
    const id = await sessionMastered(through, false, setup.tag);
    const closedLines = () => through.logs.filter((l) => String(l.msg).startsWith('closed the client connections holding session locks'));
    const before = closedLines().length;
    await phpOk(other, setup, ['update', id, JSON.stringify({ counter: 7 })], setup.lockingIni);
    // A reads 7 through the node to be paused, and would write 8 after its 3 s.
    const paused = php(through, setup, ['counter', id], setup.lockingIni, { SLEEP_MS: '3000' });
    expect(await pollUntil(async () => (await counter(through, 'session_locks_held')) === 1, { timeoutMs: 10_000 })).toBe(true);
    through.pause();
    try {
      await waitForMembers([other], { [through.id]: 'dead' }, 5000);
      expect(await pollUntil(async () => (await rawGet(other, setup.lockKey(id))) === null, { timeoutMs: 10_000 }), 'the paused node\'s lock is released').toBe(true);
      // B, through a live node, takes the lock and writes 8.
      const newer = await phpOk(other, setup, ['counter', id], setup.lockingIni);
      expect(newer.read).toBe(7);
    } finally {
      through.resume();
    }
    const stale = await paused;
    expect(stale.result?.errors.join(' '), stale.details).toMatch(/Failed to write session data|failed/i);
    const final = await phpOk(other, setup, ['read', id], setup.lockingIni);
    expect(final.data.counter).toBe(8);
    expect((final.data.writers as number[]).length, 'only the newer request wrote').toBe(1);
    await pollUntil(() => closedLines().length > before, { timeoutMs: 5000 });
    expect(closedLines().slice(before)).toMatchObject([{ connections: 1 }]);
    await waitForMembers(cluster.nodes, allAlive(cluster.nodes), 15_000);
  }, 90_000);
});
