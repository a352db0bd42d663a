/**
 * The cluster, end to end: real daemons on loopback (integration/cluster-harness.ts) and real
 * php8.2-cli processes with the stock extensions, each pointed at one node only — like PHP on a web
 * server talking to its local daemon. The three client setups of integration/php-harness.ts, as in
 * php-sessions.test.ts: php-memcached over binary, php-memcached over ascii, pecl memcache.
 *
 * Session ids are chosen by PHP or by the test (not cluster-minted), so placement is rendezvous
 * hashing over the live members: any node may be master, and most requests through a node are
 * forwarded.
 *
 * What is shown:
 *  - sessions written through any node read back identically through every other node; locks hold
 *    cluster-wide (20 concurrent increments through three nodes end at exactly 20);
 *  - kill -9 of a node while 10,000 sessions are written through the other two: every write PHP
 *    saw acknowledged is readable afterwards; then, after re-replication, a second kill -9: still
 *    every write on the last survivor;
 *  - a peer with the wrong cluster secret is refused;
 *  - kill -STOP longer than the failure timeout, then -CONT: no read returns an older value;
 *  - a node restarted empty under its id catches up and serves its sessions; 0 lost.
 *
 * Writes count as acknowledged when session_start() and session_write_close() returned true and
 * PHP warned nothing (PHP 8.2's session_write_close() returns true even when the handler failed
 * to write; it only warns). See integration/php/cluster-sessions.php.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  allAlive, parseMembers, reservedValue, scrapeMetrics, sessionOwners, startLiveCluster, startOutsiderNode, stats, stopCluster, sumStats, waitForMembers, waitForSettled,
  type Cluster, type ClusterNode,
} from './cluster-harness.js';
import { pollUntil, sleep } from './harness.js';
import {
  describeRead, killChildren, readBack, writeSessions, type ReadOutcome, type Written, type WriterSpec,
} from './php-batches.js';
import { clientSetups, expectPhpOk, php, phpSessionEncode, type ClientSetup, type PhpResult } from './php-harness.js';
import { exchange, rawGet, type RawTarget } from './raw-client.js';

// php-memcached's lock expiry defaults to max_execution_time, which the CLI sets to 0 (never): the
// setups give it 30 s, like a web server's default, so a lock left by a failed request expires.
const SETUPS = clientSetups({ memcachedLockExpire: 30 });
const [MB, MA, PM] = SETUPS;

/** A unique prefix per test run, in PHP's session id alphabet. */
const RUN = `c${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;

// ---------------------------------------------------------------------------------------------
// One PHP request per process (integration/php/session.php, see php-harness.ts)

/** Nodes whose raw view of a session phpOk shows when a request fails (set per describe). */
let diagnosticNodes: ClusterNode[] = [];

/** php-harness's phpOk, plus what each diagnostic node holds for the session when the request failed. */
async function phpOk(node: ClusterNode, setup: ClientSetup, args: string[], ini: string[] = [], env: Record<string, string> = {}): Promise<PhpResult> {
  const run = await php(node, setup, args, ini, env);
  const id = args[1];
  if (run.exitCode !== 0 && id) {
    // What each node holds for the session and its lock right after the failure (raw gets take no lock).
    const views = await Promise.all(diagnosticNodes.map(async (x) => {
      const show = async (key: string) => {
        try { const item = await rawGet(x, key); return item === null ? 'miss' : JSON.stringify(item.value.slice(0, 60)); } catch (e) { return String(e).slice(0, 100); }
      };
      return `${x.id}: ${setup.key(id)}=${await show(setup.key(id))} ${setup.lockKey(id)}=${await show(setup.lockKey(id))}`;
    }));
    run.details += `\nraw gets after the failure:\n  ${views.join('\n  ')}\nstats: ${await clusterStats(diagnosticNodes, COUNTERS)}`;
  }
  return expectPhpOk(run);
}

/** Sends `request` over a fresh raw ascii connection; the answer once it matches `done`. */
async function rawExchange(node: RawTarget, request: string, done: RegExp): Promise<string> {
  return (await exchange(node, request, done)).reply;
}

// ---------------------------------------------------------------------------------------------
// Long-running PHP processes: integration/php-batches.ts

/**
 * For sessions that did not read back: what each given node holds under the session key and the
 * lock key (raw ascii get, so no lock is taken), to tell a lost item from a stuck lock.
 */
async function diagnose(written: Written[], r: ReadOutcome, nodes: ClusterNode[], max = 3): Promise<string> {
  const bad = [...r.missing, ...r.mismatch, ...r.failed].slice(0, max).map((line) => line.split(' ')[0]!);
  const out: string[] = [];
  for (const id of bad) {
    const w = written.find((x) => x.id === id);
    if (!w) continue;
    for (const node of nodes.filter((x) => x.running && !x.stopped)) {
      const show = async (key: string) => {
        try {
          const item = await rawGet(node, key);
          return item === null ? 'miss' : JSON.stringify(item.value.length > 40 ? `${item.value.slice(0, 40)}...` : item.value);
        } catch (e) { return String(e).slice(0, 120); }
      };
      out.push(`${id} (expected ${w.value}) via ${node.id}: ${w.setup.key(id)}=${await show(w.setup.key(id))} ${w.setup.lockKey(id)}=${await show(w.setup.lockKey(id))}`);
    }
  }
  return out.length ? `\n  raw gets: ${out.join('\n  raw gets: ')}` : '';
}


async function clusterStats(nodes: ClusterNode[], names: string[]): Promise<string> {
  const parts = await Promise.all(nodes.map(async (x) => {
    try {
      const s = await stats(x, 1000);
      return `${x.id}{${names.map((n) => `${n}=${s[n]}`).join(' ')}}`;
    } catch (e) { return `${x.id}{${String(e)}}`; }
  }));
  return parts.join(' ');
}

const COUNTERS = ['cluster_members', 'cluster_forwarded', 'cluster_replicated', 'cluster_rereplicated', 'cluster_rereplication_skipped', 'cluster_failovers'];

async function sumStat(nodes: ClusterNode[], name: string): Promise<number> {
  return (await sumStats(nodes, [name], 1000))[name]!;
}

/** Warn-or-worse log lines the nodes printed since `since` (ms epoch), for failure messages. */
function warningsSince(nodes: ClusterNode[], since: number, max = 8): string {
  const lines = nodes.flatMap((x) => x.allLogs
    .filter((l) => Number(l.level) >= 40 && Number(l.time) >= since)
    .map((l) => `${x.id}: ${JSON.stringify(l).slice(0, 400)}`));
  return lines.length ? `\nnode warnings since the phase began (${lines.length}):\n  ${lines.slice(0, max).join('\n  ')}` : '\nno node logged a warning';
}

/** Records how long each phase of a test took, for the log: mark('name') ends a phase. */
function phases(): { mark(name: string): void; toString(): string } {
  let last = Date.now();
  const done: string[] = [];
  return {
    mark(name) { const now = Date.now(); done.push(`${name} ${now - last} ms`); last = now; },
    toString() { return done.join(', '); },
  };
}

afterEach(() => killChildren());

// ---------------------------------------------------------------------------------------------

describe('three nodes: any node serves any session', () => {
  let cluster: Cluster;
  let nodes: ClusterNode[];

  beforeAll(async () => {
    // node3 takes its secret from SESSION_CLUSTER_SECRET, the others from --cluster-secret.
    cluster = await startLiveCluster(3, { secretViaEnv: ['node3'] });
    nodes = cluster.nodes;
    diagnosticNodes = nodes;
  });

  afterAll(async () => { killChildren(); await stopCluster(cluster); });

  it('every node names itself and lists all three members alive, sorted by id', async () => {
    for (const x of nodes) {
      const s = await stats(x);
      expect(s.cluster_node_id, x.id).toBe(x.id);
      expect(s.cluster_members, x.id).toBe('node1:alive,node2:alive,node3:alive');
      // One authenticated link out to each other node, and one in from each. A link can be
      // between connections for a moment (one side redials while the other has just closed), so
      // the counts are given a few seconds to settle there.
      let links = [s.cluster_peer_links_up, s.cluster_peer_connections_up];
      await pollUntil(async () => {
        if (links[0] === '2' && links[1] === '2') return true;
        const now = await stats(x);
        links = [now.cluster_peer_links_up, now.cluster_peer_connections_up];
        return links[0] === '2' && links[1] === '2';
      }, { timeoutMs: 5000, intervalMs: 50 });
      expect(links, x.id).toEqual(['2', '2']);
      expect(Number(s.cluster_peer_bytes_sent), x.id).toBeGreaterThan(0);
      expect(Number(s.cluster_peer_bytes_received), x.id).toBeGreaterThan(0);
      expect(s.cluster_peer_auth_refused, x.id).toBe('0');
    }
  });

  it.each(SETUPS)('$name: sessions written through each node read back identically through every node', async (setup) => {
    for (const [w, writer] of nodes.entries()) {
      const data = { writer: writer.id, setup: setup.tag, n: w };
      const { id } = await phpOk(writer, setup, ['create', '', JSON.stringify(data)]);
      expect(id).toMatch(/^[0-9a-v]{32}$/);
      const stored = { flags: 0, value: phpSessionEncode(data) };
      for (const reader of nodes) {
        const read = await phpOk(reader, setup, ['read', id]);
        expect(read.data, `${setup.name}: written via ${writer.id}, read via ${reader.id}`).toEqual(data);
        expect(await rawGet(reader, setup.key(id)), `raw get via ${reader.id}`).toEqual(stored);
      }
      // Changed through a second node, read through the third.
      const updater = nodes[(w + 1) % 3]!;
      const third = nodes[(w + 2) % 3]!;
      await phpOk(updater, setup, ['update', id, JSON.stringify({ n: w + 10, by: updater.id })]);
      const after = await phpOk(third, setup, ['read', id]);
      expect(after.data, `updated via ${updater.id}, read via ${third.id}`).toEqual({ ...data, n: w + 10, by: updater.id });
      // Destroyed through the third: gone everywhere.
      await phpOk(third, setup, ['destroy', id]);
      for (const reader of nodes) {
        expect(await rawGet(reader, setup.key(id)), `destroyed via ${third.id}, raw get via ${reader.id}`).toBeNull();
      }
    }
  });

  it.each(SETUPS)('$name: 20 concurrent increments of one session, round-robin over the three nodes, end at exactly 20', async (setup) => {
    const N = 20;
    const { id } = await phpOk(nodes[0]!, setup, ['create', '', JSON.stringify({ counter: 0 })], setup.lockingIni);
    const runs = await Promise.all(Array.from({ length: N }, (_, i) =>
      php(nodes[i % 3]!, setup, ['counter', id], setup.lockingIni, { SLEEP_MS: '10' })));
    for (const run of runs) {
      expect(run.exitCode, run.details).toBe(0);
      expect(run.result?.ok, run.details).toBe(true);
      expect(run.result?.errors, run.details).toEqual([]);
    }
    const seen = runs.map((r) => r.result!.read).sort((a, b) => a! - b!);
    expect(seen, 'each request saw a different count').toEqual(Array.from({ length: N }, (_, i) => i));
    for (const reader of nodes) {
      const final = await phpOk(reader, setup, ['read', id], setup.lockingIni);
      expect(final.data.counter, `read via ${reader.id}`).toBe(N);
      expect((final.data.writers as unknown[]).length).toBe(N);
    }
  });

  it('requests were forwarded and writes replicated (the sessions are sharded, not all local)', async () => {
    const line = await clusterStats(nodes, COUNTERS);
    for (const x of nodes) {
      const s = await stats(x);
      expect(Number(s.cluster_forwarded), `${x.id}: ${line}`).toBeGreaterThan(0);
    }
    expect(await sumStat(nodes, 'cluster_replicated'), line).toBeGreaterThan(0);
    // php-memcached deleted its lock key after every request above: each deletion is
    // remembered by the session's master and backup, within the memory limit
    expect(await sumStat(nodes, 'tombstones'), line).toBeGreaterThanOrEqual(2);
    expect(await sumStat(nodes, 'tombstone_bytes'), line).toBeGreaterThan(0);
  });

  it('a peer with the wrong cluster secret is refused', async () => {
    const refusalsBefore = nodes[0]!.logsMatching(/refused/i).length;
    // It never joins, so it never serves: its client port stays closed, and what it sees is read
    // from its /metrics.
    const intruder = await startOutsiderNode('intruder', [nodes[0]!], { secret: 'not-the-cluster-secret-at-all' });
    try {
      // node1 logs the refusal (a warn line whose msg says "refused").
      await pollUntil(() => nodes[0]!.logsMatching(/refused/i).length > refusalsBefore, { timeoutMs: 5000, intervalMs: 50 });
      const refusals = nodes[0]!.logsMatching(/refused/i).slice(refusalsBefore);
      expect(refusals.length, `node1 logs: ${JSON.stringify(nodes[0]!.logs.slice(-10))}`).toBeGreaterThan(0);
      expect(refusals.some((l) => Number(l.level) >= 40), JSON.stringify(refusals)).toBe(true);
      // Well past the failure timeout and several heartbeats: still refused, both ways. A fixed
      // wait: what is checked is that the intruder does NOT become a member in that time.
      await sleep(1500);
      for (const x of nodes) {
        const m = parseMembers((await stats(x)).cluster_members);
        expect(m, `${x.id} members`).toEqual({ node1: 'alive', node2: 'alive', node3: 'alive' });
      }
      const seenByIntruder = (await scrapeMetrics(intruder)).members;
      for (const x of nodes) expect(seenByIntruder[x.id] ?? 'absent', `intruder sees ${x.id}`).not.toBe('alive');
      expect(intruder.logsMatching(/refused/i).length, `intruder logs: ${JSON.stringify(intruder.logs.slice(-10))}`).toBeGreaterThan(0);
      // and both count it: node1 refused the intruder's handshakes, the intruder was refused
      expect(Number((await stats(nodes[0]!)).cluster_peer_auth_refused)).toBeGreaterThan(0);
      const intruderStats = (await scrapeMetrics(intruder)).series;
      expect(Number(intruderStats.get('session_cluster_cluster_peer_refused_by_peer_total')) + Number(intruderStats.get('session_cluster_cluster_peer_auth_refused_total')),
        JSON.stringify([...intruderStats])).toBeGreaterThan(0);
    } finally {
      await intruder.cleanup();
    }
  });

  it('a client pipelining 3,000 commands (about 400 KB) through one node gets every reply, in order, whichever node serves each', async () => {
    const [node1] = nodes as [ClusterNode];
    const count = 1500;
    let request = '';
    let expected = '';
    for (let i = 0; i < count; i++) {
      const key = `memc.sess.key.${RUN}-pipe-${i}`;
      const value = `value-${i}-${'v'.repeat(200)}`;
      request += `set ${key} 0 0 ${value.length}\r\n${value}\r\nget ${key}\r\n`;
      expected += `STORED\r\nVALUE ${key} 0 ${value.length}\r\n${value}\r\nEND\r\n`;
    }
    const before = Number((await stats(node1)).cluster_forwarded);
    // Everything that arrives until there are at least as many bytes as expected: a longer answer fails below.
    const { reply: answer } = await exchange(node1, request, (buf) => (buf.length >= expected.length ? buf.length : -1), {
      timeoutMs: 20_000, label: `${count * 2} pipelined commands via ${node1.id}, ${expected.length} bytes of replies expected`,
    });
    expect(answer.length).toBe(expected.length);
    expect(answer === expected, 'replies differ from the requests, in content or order').toBe(true);
    // most of them went to another node
    expect(Number((await stats(node1)).cluster_forwarded) - before).toBeGreaterThan(count);
  });

  // Last in this block: it empties the cluster.
  it('flush_all through one node empties every node: masters and backups', async () => {
    const [node1, node2, node3] = nodes as [ClusterNode, ClusterNode, ClusterNode];
    const keys = Array.from({ length: 30 }, (_, i) => `memc.sess.key.${RUN}-flush-${i}`);
    for (const key of keys) {
      expect(await rawExchange(node1, `set ${key} 0 0 1\r\nx\r\n`, /\r\n$/)).toBe('STORED\r\n');
    }
    const itemsBefore = await Promise.all(nodes.map(async (x) => Number((await stats(x)).curr_items)));
    for (const count of itemsBefore) expect(count).toBeGreaterThan(0);
    expect(await rawExchange(node2, 'flush_all\r\n', /\r\n$/)).toBe('OK\r\n');
    for (const via of [node1, node2, node3]) {
      for (const key of keys) expect(await rawGet(via, key), `${key} via ${via.id}`).toBeNull();
    }
    // Not one copy is left anywhere, backups included (each node's own items: stats cachedump).
    for (const x of nodes) {
      const dump = await rawExchange(x, 'stats cachedump 1 0\r\n', /END\r\n$/);
      const left = keys.filter((key) => dump.includes(`ITEM ${key} `));
      expect(left, `${x.id} still holds`).toEqual([]);
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe('kill -9 while PHP writes 10,000 sessions', () => {
  let cluster: Cluster;
  let acked: Written[] = [];

  beforeAll(async () => {
    cluster = await startLiveCluster(3);
  });

  afterAll(async () => { killChildren(); await stopCluster(cluster); });

  it('kill -9 of node3 after a third of the writes through node1 and node2: 0 acknowledged writes lost', async () => {
    const [node1, node2, node3] = cluster.nodes as [ClusterNode, ClusterNode, ClusterNode];
    const TOTAL = 10_000;
    const writers: WriterSpec[] = [
      { setup: MB, via: node1, prefix: `${RUN}-k-mb-`, from: 0, count: 3334, tag: 'k' },
      { setup: PM, via: node2, prefix: `${RUN}-k-pm-`, from: 0, count: 3333, tag: 'k' },
      { setup: MA, via: node2, prefix: `${RUN}-k-ma-`, from: 0, count: 3333, tag: 'k' },
    ];
    let killedAt = -1;
    let killing: Promise<void> | undefined;
    const t0 = Date.now();
    const outcome = await writeSessions(writers, (handled) => {
      if (killing === undefined && handled >= Math.floor(TOTAL / 3)) {
        killedAt = handled;
        killing = node3.kill();
      }
    });
    await killing;
    const writeMs = Date.now() - t0;
    const failed = outcome.failed.length;
    acked = outcome.acked;

    // The survivors agree node3 is dead (reads must not depend on it any more).
    await waitForMembers([node1, node2], { node1: 'alive', node2: 'alive', node3: 'dead' }, 5000);
    // Every acknowledged session, read through the other survivor than the one it was written through.
    const read = await readBack(acked, (w) => (w.via === node1 ? node2 : node1));
    const line = `writes acknowledged: ${acked.length}, lost: ${read.lost}, failed: ${failed}`;
    console.log(`[kill -9] ${line}`);
    console.log(`[kill -9] node3 killed after ${killedAt} writes; writing took ${writeMs} ms; read back: ${describeRead(read)}${await diagnose(acked, read, [node1, node2])}`);
    if (failed) console.log(`[kill -9] failed writes e.g.: ${outcome.failed.slice(0, 3).map((f) => `${f.id} ${f.reason}`).join(' || ')}`);
    console.log(`[kill -9] ${await clusterStats([node1, node2], COUNTERS)}`);

    expect(killedAt, 'node3 was killed mid-run').toBeGreaterThan(0);
    expect(acked.length + failed).toBe(TOTAL);
    // Most writes go through: a node's death is only a short pause for the sessions it held.
    expect(acked.length, line).toBeGreaterThan(TOTAL / 2);
    expect(read.lost, `${line}; ${describeRead(read)}`).toBe(0);
   }, 90_000);

  it('after re-replication settles, kill -9 of node2 too: node1 alone still has every acknowledged write', async () => {
    expect(acked.length, 'the previous test wrote sessions').toBeGreaterThan(0);
    const [node1, node2] = cluster.nodes as [ClusterNode, ClusterNode];
    // Re-replication done: cluster_rereplicated has moved and then stays put for a second.
    const t0 = Date.now();
    const rereplicated = await waitForSettled(() => sumStat([node1, node2], 'cluster_rereplicated'),
      { quietMs: 1000, timeoutMs: 20_000, ready: (v) => v > 0 }).catch(async (e) => {
      throw new Error(`${String(e)}; ${await clusterStats([node1, node2], COUNTERS)}`);
    });
    const settled = await clusterStats([node1, node2], COUNTERS);
    console.log(`[second kill] re-replication settled after ${Date.now() - t0} ms: ${settled}`);
    expect(rereplicated).toBeGreaterThan(0);
    // The sessions node1 and node2 owned together stayed where they were: not copied again.
    expect(await sumStat([node1, node2], 'cluster_rereplication_skipped'), settled).toBeGreaterThan(0);

    await node2.kill();
    await waitForMembers([node1], { node1: 'alive', node2: 'dead', node3: 'dead' }, 5000);
    const read = await readBack(acked, () => node1);
    console.log(`[second kill] writes acknowledged: ${acked.length}, lost: ${read.lost} (read through node1 alone: ${describeRead(read)})${await diagnose(acked, read, [node1])}`);
    expect(read.lost, describeRead(read)).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------------

describe('a node stopped (kill -STOP) past the failure timeout, then continued', () => {
  let cluster: Cluster;

  beforeAll(async () => {
    cluster = await startLiveCluster(3);
  });

  afterAll(async () => { killChildren(); await stopCluster(cluster); });

  it('rejoins without serving stale data: no read returns a value older than the last acknowledged write', async () => {
    const [node1, node2, node3] = cluster.nodes as [ClusterNode, ClusterNode, ClusterNode];
    const COUNT = 300;
    const prefix = `${RUN}-s-`;
    const t1 = Date.now();
    const v1 = await writeSessions([{ setup: MB, via: node1, prefix, from: 0, count: COUNT, tag: 'v1' }]);
    expect(v1.failed, `first writes, whole cluster up${warningsSince(cluster.nodes, t1)}`).toEqual([]);

    node3.pause();
    const detectMs = await waitForMembers([node1, node2], { node3: 'dead' }, 5000);
    // Every session written again while node3 sleeps (it keeps v1 of those it held).
    const t2 = Date.now();
    const v2 = await writeSessions([{ setup: MB, via: node2, prefix, from: 0, count: COUNT, tag: 'v2' }]);
    expect(v2.failed, `second writes, node3 dead${warningsSince([node1, node2], t2)}`).toEqual([]);
    const expected = v2.acked;

    node3.resume();
    // Straight away, through the node that just woke up, before it learns it was declared dead.
    const early = await readBack(expected, () => node3);
    const rejoinMs = await waitForMembers(cluster.nodes, allAlive(cluster.nodes), 10_000).catch((e) => { throw new Error(`after -CONT: ${String(e)}; early reads: ${describeRead(early)}`); });
    const late = await readBack(expected, (w) => cluster.nodes[Number(w.id.slice(prefix.length)) % 3]!);
    console.log(`[stop/cont] node3 seen dead after ${detectMs} ms; all alive again ${rejoinMs} ms after the reads that followed -CONT`);
    console.log(`[stop/cont] reads via node3 right after -CONT: ${describeRead(early)}; reads via all nodes after rejoin: ${describeRead(late)}${await diagnose(expected, late, cluster.nodes)}`);
    console.log(`[stop/cont] ${await clusterStats(cluster.nodes, COUNTERS)}`);
    expect(early.mismatch, 'stale values served right after -CONT').toEqual([]);
    expect(early.missing, 'sessions missing right after -CONT').toEqual([]);
    expect(late.lost, describeRead(late)).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------------

describe('a node restarted empty under its id', () => {
  let cluster: Cluster;

  beforeAll(async () => {
    cluster = await startLiveCluster(3);
  });

  afterAll(async () => { killChildren(); await stopCluster(cluster); });

  it('catches up, serves its sessions again, and holds its copies: 0 lost', async () => {
    const [node1, node2, node3] = cluster.nodes as [ClusterNode, ClusterNode, ClusterNode];
    const t = phases();
    const t1 = Date.now();
    const before = await writeSessions([
      { setup: MB, via: node1, prefix: `${RUN}-r-mb-`, from: 0, count: 400, tag: 'r' },
      { setup: PM, via: node2, prefix: `${RUN}-r-pm-`, from: 0, count: 400, tag: 'r' },
    ]);
    expect(before.failed, `writes, whole cluster up${warningsSince(cluster.nodes, t1)}`).toEqual([]);
    t.mark('write 800');

    await node3.kill();
    await waitForMembers([node1, node2], { node3: 'dead' }, 5000);
    t.mark('kill node3 until seen dead');
    // Written while node3 is down: node3 never saw these.
    const t2 = Date.now();
    const during = await writeSessions([{ setup: MB, via: node2, prefix: `${RUN}-r-mb-`, from: 400, count: 200, tag: 'r' }]);
    expect(during.failed, `writes, node3 dead${warningsSince([node1, node2], t2)}`).toEqual([]);
    t.mark('write 200 more');
    const all = [...before.acked, ...during.acked];

    const t0 = Date.now();
    await node3.restart();
    const readyMs = Date.now() - t0;
    // As soon as it says ready: a node must not serve before it caught up.
    t.mark('restart node3 until ready');
    const early = await readBack(all, () => node3);
    t.mark('read all via node3');
    await waitForMembers(cluster.nodes, allAlive(cluster.nodes), 10_000);
    t.mark('until all alive');
    const rejoined = await readBack(all, () => node3);
    t.mark('read all via node3');
    // Let catch-up and re-replication traffic finish, then take node1 away: sessions whose two
    // copies belong on node1 and node3 now survive only if node3 really holds its copies.
    await waitForSettled(async () => [await sumStat(cluster.nodes, 'cluster_replicated'), await sumStat(cluster.nodes, 'cluster_rereplicated')],
      { quietMs: 1000, timeoutMs: 15_000 });
    t.mark('until replication counters settle');
    const statsBefore = await clusterStats(cluster.nodes, COUNTERS);
    await node1.kill();
    await waitForMembers([node2, node3], { node1: 'dead', node2: 'alive', node3: 'alive' }, 5000);
    t.mark('kill node1 until seen dead');
    const afterKill = await readBack(all, (w) => (Number(w.id.split('-').pop()) % 2 ? node2 : node3));
    t.mark('read all via node2/node3');
    console.log(`[restart] node3 ready ${readyMs} ms after restart; ${all.length} sessions`);
    console.log(`[restart] reads via node3 right after ready: ${describeRead(early)}; after rejoin: ${describeRead(rejoined)}; after kill -9 of node1: ${describeRead(afterKill)}${await diagnose(all, afterKill, [node2, node3])}`);
    console.log(`[restart] before killing node1: ${statsBefore}`);
    console.log(`[restart] phases: ${t}`);
    expect(early.lost, `right after ready: ${describeRead(early)}${await diagnose(all, early, [node1, node2, node3])}\nnode3's log since the restart: ${node3.logs.map((l) => l.msg).join(' | ')}`).toBe(0);
    expect(rejoined.lost, `after rejoin: ${describeRead(rejoined)}`).toBe(0);
    expect(afterKill.lost, `after kill -9 of node1: ${describeRead(afterKill)}`).toBe(0);
  });
});

describe('SIGTERM: a node drains before it leaves', () => {
  let cluster: Cluster;

  beforeAll(async () => {
    cluster = await startLiveCluster(3);
  });

  afterAll(async () => { killChildren(); await stopCluster(cluster); });

  it('hands every session to its new owners (0 lost), minted sessions naming it go to the replacement it named, and a later kill -9 loses nothing', async () => {
    const [node1, node2, node3] = cluster.nodes as [ClusterNode, ClusterNode, ClusterNode];
    const t = phases();
    const t1 = Date.now();
    const stock = await writeSessions([
      { setup: MB, via: node1, prefix: `${RUN}-d-mb-`, from: 0, count: 300, tag: 'd' },
      { setup: PM, via: node3, prefix: `${RUN}-d-pm-`, from: 0, count: 300, tag: 'd' },
    ]);
    expect(stock.failed, `stock-id writes${warningsSince(cluster.nodes, t1)}`).toEqual([]);
    // Sessions minted by node2 (it is their named master), written through node1.
    const minted: Array<{ id: string; value: string }> = [];
    for (let i = 0; i < 60; i++) {
      const id = await reservedValue(node2, 'mint');
      expect(id).toMatch(/^1[0-9a-zA-Z,-]{37,208}$/);
      const value = `minted-${i}`;
      expect(await rawExchange(node1, `set memc.sess.key.${id} 0 0 ${value.length}\r\n${value}\r\n`, /\r\n$/)).toBe('STORED\r\n');
      minted.push({ id: id!, value });
    }
    t.mark('write 600 stock + 60 minted');
    const itemsOnNode2 = Number((await stats(node2))['curr_items']);
    expect(itemsOnNode2).toBeGreaterThan(0);

    const exitCode = await node2.terminate();
    t.mark('SIGTERM node2 until exit');
    expect(exitCode, node2.describeExit()).toBe(0);
    const drained = node2.logsMatching('drained: every session acknowledged');
    expect(drained, node2.describeExit(12)).toHaveLength(1);
    const left = node2.logsMatching('left the cluster')[0];
    const replacement = String(left?.replacement);
    expect(['node1', 'node3']).toContain(replacement);
    await waitForMembers([node1, node3], { node1: 'alive', node2: 'left', node3: 'alive' }, 5000);
    t.mark('until seen left');

    // The replacement now masters every session node2 minted, on every node's view.
    for (const node of [node1, node3]) {
      for (const { id } of minted) {
        const owners = await sessionOwners(node, id);
        expect(owners.named_master, id).toBe('node2');
        expect(owners.master, `${id} via ${node.id}`).toBe(replacement);
      }
    }
    const readMinted = async (via: ClusterNode) => {
      const lost: string[] = [];
      for (const { id, value } of minted) {
        const item = await rawGet(via, `memc.sess.key.${id}`);
        if (item?.value !== value) lost.push(`${id} via ${via.id}: ${JSON.stringify(item?.value ?? null)}`);
      }
      return lost;
    };
    expect(await readMinted(node1)).toEqual([]);
    expect(await readMinted(node3)).toEqual([]);
    const afterDrain = await readBack(stock.acked, (w) => (w.via === node1 ? node3 : node1));
    t.mark('read all back');
    expect(afterDrain.lost, `after the drain: ${describeRead(afterDrain)}${await diagnose(stock.acked, afterDrain, [node1, node3])}`).toBe(0);

    // Two copies of everything on the two nodes left: kill -9 one, the other has it all.
    await waitForSettled(async () => [await sumStat([node1, node3], 'cluster_replicated'), await sumStat([node1, node3], 'cluster_rereplicated')],
      { quietMs: 1000, timeoutMs: 15_000 });
    await node3.kill();
    await waitForMembers([node1], { node3: 'dead' }, 5000);
    t.mark('kill -9 node3 until seen dead');
    const afterKill = await readBack(stock.acked, () => node1);
    expect(afterKill.lost, `after kill -9 of node3: ${describeRead(afterKill)}${await diagnose(stock.acked, afterKill, [node1])}`).toBe(0);
    expect(await readMinted(node1)).toEqual([]);
    console.log(`[drain] node2 held ${itemsOnNode2} items; replacement ${replacement}; ${JSON.stringify(drained[0])}`);
    console.log(`[drain] phases: ${t}`);
  });
});

describe('SIGTERM while PHP writes: a drain under load', () => {
  let cluster: Cluster;

  beforeAll(async () => {
    cluster = await startLiveCluster(3);
  });

  afterAll(async () => { killChildren(); await stopCluster(cluster); });

  it('node2 drains while 3,000 sessions are written through node1 and node3: 0 acknowledged writes lost, also after a later kill -9 of node3', async () => {
    const [node1, node2, node3] = cluster.nodes as [ClusterNode, ClusterNode, ClusterNode];
    const TOTAL = 3000;
    const writers: WriterSpec[] = [
      { setup: MB, via: node1, prefix: `${RUN}-dl-mb-`, from: 0, count: 1500, tag: 'dl' },
      { setup: PM, via: node3, prefix: `${RUN}-dl-pm-`, from: 0, count: 1500, tag: 'dl' },
    ];
    let stoppedAt = -1;
    let stopping: Promise<number | null> | undefined;
    const outcome = await writeSessions(writers, (handled) => {
      if (stopping === undefined && handled >= TOTAL / 3) {
        stoppedAt = handled;
        stopping = node2.terminate();
      }
    });
    const exitCode = await stopping;
    expect(stoppedAt, 'node2 was stopped mid-run').toBeGreaterThan(0);
    expect(exitCode, node2.describeExit(12)).toBe(0);
    expect(node2.logsMatching('drained: every session acknowledged'), node2.describeExit(12)).toHaveLength(1);
    await waitForMembers([node1, node3], { node1: 'alive', node2: 'left', node3: 'alive' }, 5000);

    const acked = outcome.acked;
    const read = await readBack(acked, (w) => (w.via === node1 ? node3 : node1));
    const line = `writes acknowledged: ${acked.length}, lost: ${read.lost}, failed: ${outcome.failed.length}`;
    console.log(`[drain under load] node2 stopped after ${stoppedAt} writes; ${line}; read back: ${describeRead(read)}`);
    if (outcome.failed.length) console.log(`[drain under load] failed writes e.g.: ${outcome.failed.slice(0, 3).map((f) => `${f.id} ${f.reason}`).join(' || ')}`);
    expect(acked.length + outcome.failed.length).toBe(TOTAL);
    expect(acked.length, line).toBeGreaterThan(TOTAL / 2);
    expect(read.lost, `${line}; ${describeRead(read)}${await diagnose(acked, read, [node1, node3])}`).toBe(0);

    // Two copies of everything on the two nodes left.
    await waitForSettled(async () => [await sumStat([node1, node3], 'cluster_replicated'), await sumStat([node1, node3], 'cluster_rereplicated')],
      { quietMs: 1000, timeoutMs: 15_000 });
    await node3.kill();
    await waitForMembers([node1], { node3: 'dead' }, 5000);
    const alone = await readBack(acked, () => node1);
    console.log(`[drain under load] after kill -9 of node3, through node1 alone: ${describeRead(alone)}`);
    expect(alone.lost, `${describeRead(alone)}${await diagnose(acked, alone, [node1])}`).toBe(0);
  }, 90_000);
});
