/**
 * Fault scenarios: what a client sees when a node stalls, a node is cut off, two nodes cannot
 * reach each other while a third reaches both, or the nodes' clocks disagree. Each scenario runs
 * real daemons (integration/cluster-harness.ts) behind fault proxies on their peer links
 * (integration/fault-proxy.ts), records every client operation with its outcome
 * (integration/fault-harness.ts), reads every key through every node after the heal, prints a
 * one-line summary to stdout ("[faults] <scenario>: acknowledged N, lost N, stale reads N, …") and
 * asserts the properties the scenario is about, and only those. docs/reliability.md describes them
 * and keeps the figures.
 *
 * Timing, the same in every scenario: heartbeats every 100 ms, failure timeout 400 ms (a silent
 * node is suspect after 200 ms, dead after 400 ms). That is the defaults (200 / 800 ms) halved:
 * every mechanism the defaults trigger still runs, in the same order, only sooner, so the file
 * runs in a few minutes. The forward deadline follows from it: max(2 × failure timeout, 2 s) = 2 s.
 * A backup that does not answer is retried for 3 × 400 ms before its copy is given up. Clients
 * wait 10 s for an answer before they call an operation unknown: longer than any deadline of the
 * daemon, so a client sees the daemon's own answer whenever there is one.
 *
 * Clients pace themselves (a few ms between operations) so that the load, the proxies and the
 * three daemons leave the two cores of a small machine enough room for 100 ms heartbeats: a
 * starved event loop would make nodes look dead without any fault.
 *
 * Assertions are soft (expect.soft): every property of a scenario is checked and reported, and the
 * figures are printed, even when an earlier one fails.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  allAlive, startLiveCluster, stats, stopCluster, waitForMembers, type Cluster, type ClusterNode, type ClusterOptions,
} from './cluster-harness.js';
import {
  analyze, describeProblems, figures, findLost, mintIds, randomSessionId, readFinal, RecordingClient, report, runWorkers,
  sessionMasteredBy, valueFor, windowLine, type FinalRead, type OpRecord,
} from './fault-harness.js';
import type { FaultNetwork } from './fault-proxy.js';
import { sleep } from './harness.js';

const HEARTBEAT_MS = 100;
const FAILURE_TIMEOUT_MS = 400;
const IDS = ['n0', 'n1', 'n2'];
const BASE: ClusterOptions = { ids: IDS, heartbeatMs: HEARTBEAT_MS, failureTimeoutMs: FAILURE_TIMEOUT_MS };
/** php-memcached's session key prefix (memcached.sess_prefix); its lock key is PREFIX + 'lock.' + id. */
const PREFIX = 'memc.sess.key.';

/** A unique tag per test run, in PHP's session id alphabet. */
const RUN = `f${Date.now().toString(36)}`;

function nodesOf(cluster: Cluster): [ClusterNode, ClusterNode, ClusterNode] {
  return cluster.nodes as [ClusterNode, ClusterNode, ClusterNode];
}

/** What each node's `stats` says of the members, on one line. */
async function membersNow(nodes: ClusterNode[]): Promise<string> {
  const parts = await Promise.all(nodes.map(async (x) => {
    try { return `${x.id}{${(await stats(x, 1000)).cluster_members}}`; } catch (e) { return `${x.id}{${String(e).slice(0, 80)}}`; }
  }));
  return parts.join(' ');
}

/** Warn-or-worse log lines of the nodes since `since`, a few, for the test log. */
function warnings(nodes: ClusterNode[], since: number, max = 6): string {
  const lines = nodes.flatMap((x) => x.allLogs
    .filter((l) => Number(l.level) >= 40 && Number(l.time) >= since)
    .map((l) => `${x.id}: ${JSON.stringify(l).slice(0, 300)}`));
  return lines.length ? `${lines.length} warnings, e.g.\n  ${lines.slice(0, max).join('\n  ')}` : 'no warnings';
}

// ---------------------------------------------------------------------------------------------
// 1. Delayed forward
// ---------------------------------------------------------------------------------------------

describe('delayed forward', () => {
  let cluster: Cluster;
  let faults: FaultNetwork;
  let n0: ClusterNode, n1: ClusterNode, n2: ClusterNode;

  beforeAll(async () => {
    cluster = await startLiveCluster(3, { ...BASE, behindProxies: true });
    faults = cluster.faults!;
    [n0, n1, n2] = nodesOf(cluster);
  });

  afterAll(async () => { await stopCluster(cluster); });

  beforeEach(async () => {
    // Each case starts from a whole cluster, whatever the case before it left.
    await waitForMembers(cluster.nodes, allAlive(cluster.nodes), 20_000);
  });

  type Stall = 'pause' | 'hold';
  /**
   * kill -STOP n0 for 8 s, or partition n0 off for 6 s by holding every link to and from it (both
   * directions): what it is sent waits, and arrives when the partition heals.
   */
  const STALL_MS: Record<Stall, number> = { pause: 8000, hold: 6000 };
  const n0Links = () => [n1, n2].flatMap((other) => [[n0.id, other.id], [other.id, n0.id]] as Array<[string, string]>);
  const begin = (stall: Stall) => (stall === 'pause' ? n0.pause() : n0Links().forEach(([from, to]) => faults.hold(from, to)));
  const end = (stall: Stall) => (stall === 'pause' ? n0.resume() : n0Links().forEach(([from, to]) => faults.release(from, to)));

  async function afterStall(stall: Stall, startedAt: number): Promise<number> {
    await sleep(Math.max(0, startedAt + STALL_MS[stall] - Date.now()));
    end(stall);
    const endedAt = Date.now();
    await waitForMembers(cluster.nodes, allAlive(cluster.nodes), 20_000);
    return Date.now() - endedAt;
  }

  async function writesThroughStall(stall: Stall, name: string): Promise<void> {
    const history: OpRecord[] = [];
    const { id, backup } = await sessionMasteredBy(n1, n0.id, `${RUN}${stall}`);
    const key = `${PREFIX}${id}`;
    const client = new RecordingClient('php@n1', n1, history);
    try {
      const v1 = await client.set(key, 'v1', 1440);
      const startedAt = Date.now();
      begin(stall);
      const v2 = await client.set(key, 'v2', 1440);
      const v3 = await client.set(key, 'v3', 1440);
      const rejoinMs = await afterStall(stall, startedAt);
      const { reads, settled } = await readFinal(cluster.nodes, [key]);
      const a = analyze(history, reads);
      report(name, a,
        `session ${id}: master n0, backup ${backup}; v1 ${v1.reply} in ${v1.end - v1.start} ms; v2 ${v2.reply} after ${v2.end - v2.start} ms; `
        + `v3 ${v3.reply} after ${v3.end - v3.start} ms; all alive ${rejoinMs} ms after the stall ended; `
        + `every node now: ${reads.map((r) => `${r.node}=${r.error ?? JSON.stringify(r.value)}`).join(' ')}${settled ? '' : ' (still changing)'}`,
        warnings(cluster.nodes, startedAt));
      expect(v1.outcome, 'v1 before the stall').toBe('ok');
      expect.soft(v2.reply, 'v2 during the stall: SERVER_ERROR once the forward deadline passes').toMatch(/^SERVER_ERROR/);
      expect.soft(v3.reply, 'v3 during the stall: STORED once n0 is declared dead').toBe('STORED');
      expect.soft(reads.filter((r) => r.value !== 'v3' || r.error), `every node ends with v3\n${describeProblems(a)}`).toEqual([]);
    } finally {
      // A case that failed half way must not leave n0 stopped or the link held for the next one.
      end(stall);
      client.close();
    }
  }

  async function lockAddThroughStall(stall: Stall, name: string): Promise<void> {
    const history: OpRecord[] = [];
    const { id } = await sessionMasteredBy(n1, n0.id, `${RUN}lock${stall}`);
    const lock = `${PREFIX}lock.${id}`;
    const client = new RecordingClient('php@n1', n1, history);
    try {
      const startedAt = Date.now();
      begin(stall);
      // php-memcached's lock: add <prefix>lock.<id> with its lock expiry (memcached.sess_lock_expire).
      // It writes "1"; each add here writes its own value, so that the history tells them apart.
      const during = await client.add(lock, 'lock-during-stall', 30);
      const rejoinMs = await afterStall(stall, startedAt);
      // Give a request still waiting somewhere time to run, so that what the next add meets is
      // what the cluster will keep.
      await sleep(1000);
      const next = await client.add(lock, 'lock-after-heal', 30);
      const { reads } = await readFinal(cluster.nodes, [lock]);
      report(name, analyze(history, reads),
        `lock ${lock} (master n0): add during the stall ${during.reply} after ${during.end - during.start} ms; `
        + `all alive ${rejoinMs} ms after the stall ended; next add ${next.reply}; lock on every node now: ${reads.map((r) => `${r.node}=${r.error ?? JSON.stringify(r.value)}`).join(' ')}`,
        warnings(cluster.nodes, startedAt));
      // PHP saw an error either way: a definite failure, or a forward with no answer in time
      expect(['failed', 'unknown'], `the add during the stall failed (${during.reply}): the case needs a failed add`).toContain(during.outcome);
      expect.soft(next.reply, 'the next add of the lock after the heal: a failed add left no lock behind').toBe('STORED');
      await client.delete(lock);
    } finally {
      end(stall);
      client.close();
    }
  }

  it('(a) master paused (kill -STOP n0 for 8 s): v2 fails after the forward deadline, v3 is stored, every node ends with v3', async () => {
    await writesThroughStall('pause', 'delayed forward (a) paused master');
  });

  it('(b) n0 partitioned off for 6 s, its links held (the bytes arrive late on the heal): v2 fails after the forward deadline, v3 is stored, every node ends with v3', async () => {
    await writesThroughStall('hold', 'delayed forward (b) held links');
  });

  it('(c) lock add that failed while the master was paused leaves no lock: the next add after the heal succeeds', async () => {
    await lockAddThroughStall('pause', 'delayed forward (c) lock, paused master');
  });

  it('(c) lock add that failed while n0\'s links were held leaves no lock: the next add after the heal succeeds', async () => {
    await lockAddThroughStall('hold', 'delayed forward (c) lock, held links');
  });
});

// ---------------------------------------------------------------------------------------------
// 2. Isolated node
// ---------------------------------------------------------------------------------------------

describe('isolated node', () => {
  let cluster: Cluster;

  beforeAll(async () => {
    cluster = await startLiveCluster(3, { ...BASE, behindProxies: true });
  });

  afterAll(async () => { await stopCluster(cluster); });

  it('n0 cut off from n1 and n2 for 4 s while clients write round robin through all three: 0 acknowledged writes lost', async () => {
    const faults = cluster.faults!;
    const nodes = nodesOf(cluster);
    const hashed = Array.from({ length: 200 }, () => `${PREFIX}${randomSessionId(`${RUN}i`)}`);
    const minted = (await mintIds(nodes, 200)).map((id) => `${PREFIX}${id}`);
    const keys = [...hashed, ...minted];
    const history: OpRecord[] = [];
    const WORKERS = 12;
    // Each worker owns every 12th key and writes them in turn, each write through the next node,
    // and each pass over its keys starts one node further on: every key is written through all three.
    const clients = Array.from({ length: WORKERS }, (_, w) => nodes.map((x) => new RecordingClient(`w${w}@${x.id}`, x, history)));
    const mine = (w: number) => keys.filter((_, i) => i % WORKERS === w);
    const load = runWorkers(WORKERS, async (w, i) => {
      const own = mine(w);
      const key = own[i % own.length]!;
      const client = clients[w]![(i + Math.floor(i / own.length)) % 3]!;
      await client.set(key, valueFor(key, client.name, i), 1440);
      await sleep(5);
    });
    let members = '';
    let cutAt = 0;
    let healAt = 0;
    try {
      await sleep(2000);
      cutAt = Date.now();
      faults.isolate('n0');
      await sleep(3500);
      members = await membersNow(nodes);
      await sleep(500);
      // The writes stop with the heal: what the two sides acknowledged apart is what the heal must
      // reconcile (writes after it would overwrite every key and hide what it lost).
      faults.heal();
      healAt = Date.now();
    } finally {
      await load.stop();
      for (const c of clients.flat()) c.close();
    }
    const rejoin = await waitForMembers(cluster.nodes, allAlive(cluster.nodes), 20_000);
    const { reads, rounds, settled } = await readFinal(cluster.nodes, keys);
    const a = analyze(history, reads);
    const lostHashed = a.lost.filter((l) => hashed.includes(l.key)).length;
    report('isolated node', a,
      `before the cut ${windowLine(figures(history, { from: history[0]!.start, to: cutAt }))}`,
      `during the cut ${windowLine(figures(history, { from: cutAt, to: healAt }))}`,
      `members 3.5 s into the cut: ${members}`,
      `lost ${lostHashed} of 200 hashed and ${a.lost.length - lostHashed} of 200 minted sessions; all alive ${rejoin} ms after the reads began waiting; final reads settled after ${rounds} rounds${settled ? '' : ' (still changing)'}`,
      describeProblems(a, 3) || 'no problem found',
      warnings(cluster.nodes, cutAt));
    expect.soft(a.lost.length, `acknowledged writes lost\n${describeProblems(a)}`).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------------
// 3. Asymmetric cut
// ---------------------------------------------------------------------------------------------

describe('asymmetric cut', () => {
  let cluster: Cluster;

  beforeAll(async () => {
    cluster = await startLiveCluster(3, { ...BASE, behindProxies: true });
  });

  afterAll(async () => { await stopCluster(cluster); });

  it('n0↔n2 cut for 30 s while n1 reaches both, sticky clients: rate ≥ half, failed < 0.5 %, p99 < 0.5 s, stale reads < 0.5 %, 0 lost', async () => {
    const faults = cluster.faults!;
    const nodes = nodesOf(cluster);
    const PER_NODE = 3;
    const KEYS_PER_WORKER = 20;
    const history: OpRecord[] = [];
    // Sticky: worker w always talks to node w % 3 and owns its keys.
    const workers = Array.from({ length: PER_NODE * 3 }, (_, w) => {
      const node = nodes[w % 3]!;
      return {
        client: new RecordingClient(`w${w}@${node.id}`, node, history),
        keys: Array.from({ length: KEYS_PER_WORKER }, () => `${PREFIX}${randomSessionId(`${RUN}a`)}`),
      };
    });
    const load = runWorkers(workers.length, async (w, i) => {
      const { client, keys } = workers[w]!;
      const key = keys[i % keys.length]!;
      await client.set(key, valueFor(key, client.name, i), 1440);
      // Read back one of its own sessions, written a few rounds ago.
      await client.get(keys[(i * 7) % keys.length]!);
      await sleep(5);
    });
    const loadAt = Date.now();
    let members = '';
    let cutAt = 0;
    let healAt = 0;
    try {
      await sleep(6000);
      cutAt = Date.now();
      faults.partition([['n0'], ['n2']]);
      await sleep(30_000);
      members = await membersNow(nodes);
      faults.heal();
      healAt = Date.now();
      await sleep(2000);
    } finally {
      await load.stop();
      for (const x of workers) x.client.close();
    }
    await waitForMembers(cluster.nodes, allAlive(cluster.nodes), 20_000);
    const keys = workers.flatMap((x) => x.keys);
    const { reads, rounds, settled } = await readFinal(cluster.nodes, keys);
    const all = analyze(history, reads);
    // Before: from a second after the load began (connections made, caches warm) until the cut.
    const before = figures(history, { from: loadAt + 1000, to: cutAt });
    const during = analyze(history, reads, { from: cutAt + 3000, to: healAt });
    const failedPct = during.writes ? (100 * during.failed) / during.writes : 0;
    const stalePct = during.reads ? (100 * during.staleReads) / during.reads : 0;
    report('asymmetric cut', all,
      `before the cut ${windowLine(before)}`,
      `from 3 s after the cut to the heal ${windowLine(during)}`,
      `members just before the heal: ${members}; final reads settled after ${rounds} rounds${settled ? '' : ' (still changing)'}`,
      describeProblems(all, 3) || 'no problem found',
      warnings(cluster.nodes, cutAt));
    expect.soft(during.writeRate, `write rate during the cut (${during.writeRate.toFixed(0)}/s) vs before (${before.writeRate.toFixed(0)}/s)`).toBeGreaterThanOrEqual(before.writeRate / 2);
    expect.soft(failedPct, `failed writes during the cut: ${during.failed} of ${during.writes}`).toBeLessThan(0.5);
    expect.soft(during.p99, 'write p99 during the cut, ms').toBeLessThan(500);
    expect.soft(stalePct, `stale reads during the cut: ${during.staleReads} of ${during.reads}\n${describeProblems(during, 3)}`).toBeLessThan(0.5);
    expect.soft(all.lost.length, `acknowledged writes lost\n${describeProblems(all)}`).toBe(0);
    // The cut alone lasts 30 s: room beyond the suite's 60 s default for the reads after it.
  }, 120_000);
});

// ---------------------------------------------------------------------------------------------
// 4. Clock skew
// ---------------------------------------------------------------------------------------------

describe('clock skew', () => {
  /** Wall-clock offsets: n1 an hour ahead, n2 an hour behind, n0 true (faketime, see wrap below). */
  const SKEW_S: Record<string, number> = { n0: 0, n1: 3600, n2: -3600 };
  const FAKETIME: Record<string, string> = { n1: '+1h', n2: '-1h' };
  /** The long sessions' lifetime, s: session.gc_maxlifetime's default. */
  const LONG_S = 1440;
  /** The short sessions' lifetime, s: long enough to read them all before it ends, with room. */
  const SHORT_S = 10;
  let cluster: Cluster;

  beforeEach(async () => {
    cluster = await startLiveCluster(3, {
      ...BASE,
      // faketime forks the daemon and preloads libfaketime into it: Date.now() is off by the skew.
      // The monotonic clock is left alone, as NTP leaves it: timers and the failure detector run
      // on it, and a wrong wall clock must not disturb them.
      wrap: ({ id }) => (FAKETIME[id] ? { prefix: ['faketime', '-f', FAKETIME[id]!], env: { FAKETIME_DONT_FAKE_MONOTONIC: '1' } } : undefined),
    });
    // The harness must have skewed the clocks, or the scenario shows nothing.
    const now = Math.floor(Date.now() / 1000);
    for (const x of cluster.nodes) {
      const offset = Number((await stats(x)).time) - now;
      if (Math.abs(offset - SKEW_S[x.id]!) > 5) throw new Error(`${x.id}'s clock is off by ${offset} s, not ${SKEW_S[x.id]} s: faketime did not apply`);
    }
  });

  afterEach(async () => { await stopCluster(cluster); });

  interface Session { key: string; node: string; absolute: boolean; lifetimeS: number; writtenAt: number; op?: OpRecord }

  async function failoverKeepsExpiry(victimId: string, name: string): Promise<void> {
    const nodes = nodesOf(cluster);
    const history: OpRecord[] = [];
    /** the checking reads: kept apart, since a read of an expired session is no stale read */
    const checks: OpRecord[] = [];
    const sessions: Session[] = [];
    // Through every node: php-memcached style (key with its prefix, exptime relative) and pecl
    // memcache style (the bare id, exptime absolute: the PHP host's clock, which is the node's,
    // plus the lifetime), long and short.
    await Promise.all(nodes.map(async (node) => {
      const client = new RecordingClient(`php@${node.id}`, node, history);
      try {
        for (const [count, lifetimeS] of [[40, LONG_S], [20, SHORT_S]] as const) {
          for (const absolute of [false, true]) {
            for (let i = 0; i < count; i++) {
              const id = randomSessionId(`${RUN}${node.id}`);
              const key = absolute ? id : `${PREFIX}${id}`;
              const hostNow = Math.floor((Date.now() + SKEW_S[node.id]! * 1000) / 1000);
              const exptime = absolute ? hostNow + lifetimeS : lifetimeS;
              const writtenAt = Date.now();
              const op = await client.set(key, valueFor(key, client.name, i), exptime);
              sessions.push({ key, node: node.id, absolute, lifetimeS, writtenAt, op });
            }
          }
        }
      } finally {
        client.close();
      }
    }));
    const writesDone = Date.now();
    const acked = sessions.filter((s) => s.op?.outcome === 'ok');

    /** Every session through each of `via`: the sessions some node did not return. */
    async function missing(via: ClusterNode[], which: Session[]): Promise<Array<{ s: Session; node: string; got: string }>> {
      const out: Array<{ s: Session; node: string; got: string }> = [];
      await Promise.all(via.map(async (node) => {
        const client = new RecordingClient(`check@${node.id}`, node, checks);
        try {
          for (const s of which) {
            const r = await client.get(s.key);
            if (r.outcome !== 'ok' || r.value !== s.op!.value) out.push({ s, node: node.id, got: r.outcome === 'ok' ? JSON.stringify(r.value) : r.reply });
          }
        } finally {
          client.close();
        }
      }));
      return out;
    }
    const show = (xs: Array<{ s: Session; node: string; got: string }>) => xs.slice(0, 4)
      .map((x) => `${x.s.key.slice(0, 30)}… (${x.s.absolute ? 'absolute' : 'relative'} ${x.s.lifetimeS} s, written via ${x.s.node}) via ${x.node}: ${x.got}`).join('; ');
    /** The distinct sessions among failed reads. */
    const distinct = (xs: Array<{ s: Session }>) => [...new Set(xs.map((x) => x.s))];
    /** How many sessions of each kind: "abs1440@n2" is an absolute exptime of 1440 s, written through n2. */
    const byKind = (xs: Array<{ s: Session }>) => {
      const c: Record<string, number> = {};
      for (const x of distinct(xs)) { const k = `${x.absolute ? 'abs' : 'rel'}${x.lifetimeS}@${x.node}`; c[k] = (c[k] ?? 0) + 1; }
      return JSON.stringify(c);
    };

    // Each node measured its peers' clocks from their heartbeats and warned about each skewed one.
    for (const x of nodes) {
      const peers = nodes.filter((y) => y !== x);
      const furthestMs = Math.max(...peers.map((y) => Math.abs(SKEW_S[y.id]! - SKEW_S[x.id]!))) * 1000;
      const measuredMs = Number((await stats(x)).cluster_clock_offset_max_ms);
      expect.soft(Math.abs(measuredMs - furthestMs), `${x.id}'s cluster_clock_offset_max_ms ${measuredMs} against ${furthestMs}`).toBeLessThan(5000);
      const warnedAbout = new Set(x.allLogs.filter((l) => Number(l.level) === 40 && String(l.msg).startsWith('the clock of')).map((l) => String(l.peer)));
      expect.soft([...warnedAbout].sort(), `peers ${x.id} warned about`).toEqual(peers.filter((y) => SKEW_S[y.id] !== SKEW_S[x.id]).map((y) => y.id).sort());
    }

    // Before any failure, every session is alive through every node.
    const before = await missing(nodes, acked);
    const beforeKeys = new Set(before.map((x) => x.s.key));
    const victim = cluster.node(victimId);
    const survivors = nodes.filter((x) => x !== victim);
    await victim.kill();
    const deadMs = await waitForMembers(survivors, { [victimId]: 'dead' }, 10_000);
    // After the failover, still before the short sessions' expiry: every session alive before is alive now.
    const atFailover = await missing(survivors, acked);
    const lostAtFailover = distinct(atFailover.filter((x) => !beforeKeys.has(x.s.key)));
    const lostAtFailoverReads = atFailover.filter((x) => !beforeKeys.has(x.s.key));
    const checkedAt = Date.now();
    const shortestEnd = Math.min(...acked.filter((s) => s.lifetimeS === SHORT_S).map((s) => s.writtenAt)) + SHORT_S * 1000;
    // After the short sessions' expiry (plus 2 s: absolute exptimes are whole seconds): they are gone, the long ones are not.
    const latestEnd = Math.max(...acked.filter((s) => s.lifetimeS === SHORT_S).map((s) => s.op!.end)) + SHORT_S * 1000 + 2000;
    await sleep(Math.max(0, latestEnd - Date.now()));
    const short = acked.filter((s) => s.lifetimeS === SHORT_S);
    const long = acked.filter((s) => s.lifetimeS === LONG_S);
    const stillThere: Array<{ s: Session; node: string; got: string }> = [];
    await Promise.all(survivors.map(async (node) => {
      const client = new RecordingClient(`expiry@${node.id}`, node, checks);
      try {
        for (const s of short) {
          const r = await client.get(s.key);
          if (r.outcome !== 'ok' || r.value !== null) stillThere.push({ s, node: node.id, got: r.outcome === 'ok' ? JSON.stringify(r.value) : r.reply });
        }
      } finally {
        client.close();
      }
    }));
    const longAfter = await missing(survivors, long);
    const finals: FinalRead[] = [];
    for (const s of long) {
      for (const node of survivors) {
        const miss = longAfter.find((x) => x.s === s && x.node === node.id);
        finals.push({ node: node.id, key: s.key, value: miss ? null : s.op!.value });
      }
    }
    // The summary's lost count is over the long sessions: the short ones are meant to be gone.
    const longKeys = new Set(long.map((s) => s.key));
    const a = { ...analyze(history, finals), lost: findLost(history.filter((o) => longKeys.has(o.key)), finals) };
    report(name, a,
      `${sessions.length} sessions written in ${writesDone - sessions[0]!.writtenAt} ms, ${acked.length} stored; killed ${victimId}, seen dead after ${deadMs} ms; `
      + `the checks before and at failover ended ${checkedAt - writesDone} ms after the writes, the first short expiry being ${shortestEnd - writesDone} ms after them`,
      `not alive through every node before the failure (and before their expiry): ${distinct(before).length} of ${acked.length} sessions ${byKind(before)}; e.g. ${show(before)}`,
      `lost at failover (alive before it, missing through a survivor after it): ${lostAtFailover.length} sessions ${byKind(lostAtFailoverReads)}; e.g. ${show(lostAtFailoverReads)}`,
      `short sessions still there after their expiry: ${distinct(stillThere).length} of ${short.length} ${byKind(stillThere)}; e.g. ${show(stillThere)}`,
      `long sessions missing at the end: ${distinct(longAfter).length} of ${long.length} ${byKind(longAfter)}`);
    expect(checkedAt, 'the checks before the short expiry ran before it (a harness timing problem otherwise)').toBeLessThan(shortestEnd - 1000);
    const unstored = history.filter((o) => o.kind !== 'get' && o.outcome !== 'ok').map((o) => `${o.key} via ${o.node}: ${o.reply}`);
    expect.soft(acked.length, `every write stored; not: ${unstored.slice(0, 3).join(' | ')}`).toBe(sessions.length);
    expect.soft(distinct(before).length, `sessions not alive through every node before their expiry: ${show(before)}`).toBe(0);
    expect.soft(lostAtFailover.length, `sessions lost at failover: ${show(lostAtFailoverReads)}`).toBe(0);
    expect.soft(distinct(stillThere).length, `short sessions not gone after their expiry: ${show(stillThere)}`).toBe(0);
    expect.soft(distinct(longAfter).length, `long sessions not alive at the end (before their expiry): ${show(longAfter)}`).toBe(0);
  }

  it('kill -9 of n2 (an hour behind): 0 sessions lost at failover, each alive before its expiry and gone after', async () => {
    await failoverKeepsExpiry('n2', 'clock skew, kill n2 (-1h)');
  });

  it('kill -9 of n1 (an hour ahead): 0 sessions lost at failover, each alive before its expiry and gone after', async () => {
    await failoverKeepsExpiry('n1', 'clock skew, kill n1 (+1h)');
  });
});
