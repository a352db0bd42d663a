/**
 * Cluster-minted session ids with the php-client, end to end: three real daemons, real
 * php8.2-cli processes loading php-client/bootstrap.php, each pointed at one node as PHP on a web
 * server points at its local daemon.
 *
 * What is shown:
 *  - with requests sticky to the node that created each session, every read (every command) is
 *    served from that node's memory: the daemons' stats show zero forwarded commands; with the
 *    same sessions then spread round-robin over the nodes, every read is still correct;
 *  - kill -9 of the node that minted a set of sessions: each is served by its backup and gets a
 *    new backup; the next request, landing on another node, moves the cookie to an id minted there
 *    (the cluster's current owner) with the data carried over; 0 lost; a request still carrying the
 *    old cookie follows it to the same new id.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { allAlive, reservedValue, sessionOwners, startLiveCluster, stopCluster, sumStats, waitForMembers, waitForSettled, type Cluster, type ClusterNode } from './cluster-harness.js';
import { repoRoot } from './harness.js';
import { iniArgs, runPhpLines } from './php-harness.js';

const SCRIPT = path.join(repoRoot, 'integration', 'php', 'client-requests.php');
const BOOTSTRAP = path.join(repoRoot, 'php-client', 'bootstrap.php');

/**
 * `auto`: php-client/bootstrap.php registers the handler itself, as the one-line php.ini install
 * does (it picks php-memcached, loaded here); then pecl memcache, and the plain-socket transport
 * (no extension needed).
 */
const TRANSPORTS = ['auto', 'memcache', 'socket'] as const;
type Transport = (typeof TRANSPORTS)[number];

interface RequestResult { ok: boolean; cookie: string; after: string; n: number; reason: string }

/**
 * Runs one PHP process through `node` that sends the requests `cookies` one by one ("-" = no
 * cookie yet) and reports each.
 */
async function requests(node: ClusterNode, transport: Transport, cookies: string[]): Promise<RequestResult[]> {
  const ini = [
    `auto_prepend_file=${BOOTSTRAP}`, `session.save_path=${node.host}:${node.port}`,
    'display_errors=stderr', 'log_errors=0', 'error_reporting=-1', 'session.use_cookies=0', 'session.cache_limiter=',
    'session.serialize_handler=php', 'session.gc_probability=0', 'session.gc_maxlifetime=1440',
  ];
  const run = await runPhpLines([...iniArgs(ini), SCRIPT], {
    stdin: cookies.map((c) => `${c}\n`).join(''),
    env: transport === 'auto' ? process.env : { ...process.env, SESSION_CLUSTER_TRANSPORT: transport, SESSION_CLUSTER_NO_AUTOREGISTER: '1' },
    timeoutMs: 60_000,
  });
  const results: RequestResult[] = [];
  let done = false;
  for (const line of run.lines) {
    const [kind, cookie, ...rest] = line.split(' ');
    if (kind === 'DONE') { done = true; continue; }
    if (kind === 'OK') results.push({ ok: true, cookie: cookie!, after: rest[0]!, n: Number(rest[1]), reason: '' });
    else results.push({ ok: false, cookie: cookie ?? '', after: '', n: NaN, reason: `${line} (stderr: ${run.stderr.slice(0, 500)})` });
  }
  if (!done || results.length !== cookies.length) {
    throw new Error(`php via ${node.id} (${transport}): exit ${run.exitCode ?? run.signal}, ${results.length} of ${cookies.length} requests reported, done=${done}\nstderr: ${run.stderr.slice(0, 2000)}`);
  }
  return results;
}

function failures(results: RequestResult[]): string[] {
  return results.filter((r) => !r.ok).map((r) => r.reason);
}

describe('sticky requests: minted sessions live where they were born', () => {
  let cluster: Cluster;
  beforeAll(async () => {
    cluster = await startLiveCluster(3);
  });
  afterAll(async () => { await stopCluster(cluster); });

  it('sticky: zero forwarded reads (zero forwarded commands at all); round-robin: still correct', async () => {
    const nodes = cluster.nodes;
    const before = await sumStats(nodes, ['cluster_forwarded', 'cluster_forwarded_reads', 'cmd_get', 'session_ids_minted']);
    const sessionsPerNode = 15;
    const sticky = 4; // requests per session after the first, each through the node that minted it
    // One PHP server per node, each with its own transport, as a farm might mix them.
    const born = await Promise.all(nodes.map(async (node, i) => {
      const transport = TRANSPORTS[i % TRANSPORTS.length]!;
      const created = await requests(node, transport, Array.from({ length: sessionsPerNode }, () => '-'));
      expect(failures(created), `${node.id} creating sessions`).toEqual([]);
      const ids = created.map((r) => r.after);
      for (const id of ids) expect(id).toMatch(/^1[0-9a-zA-Z,-]{37,208}$/);
      const again = await requests(node, transport, Array.from({ length: sticky }, () => ids).flat());
      expect(failures(again), `${node.id} sticky requests`).toEqual([]);
      for (const r of again) expect(r.after, 'a sticky request keeps its id').toBe(r.cookie);
      return { node, transport, ids, last: new Map(again.map((r) => [r.cookie, r.n])) };
    }));
    for (const { node, ids, last } of born) {
      for (const id of ids) {
        expect(last.get(id), `${id} via ${node.id}`).toBe(1 + sticky);
        const o = await sessionOwners(node, id);
        expect(o, id).toMatchObject({ id_kind: 'minted', named_master: node.id, master: node.id });
        expect(o.backup).not.toBe(node.id);
      }
    }
    const after = await sumStats(nodes, ['cluster_forwarded', 'cluster_forwarded_reads', 'cmd_get', 'session_ids_minted', 'cluster_replicated']);
    const reads = after.cmd_get! - before.cmd_get!;
    console.log(`[sticky] ${3 * sessionsPerNode} sessions, ${3 * sessionsPerNode * (1 + sticky)} requests, ${reads} gets; forwarded ${after.cluster_forwarded! - before.cluster_forwarded!} (reads ${after.cluster_forwarded_reads! - before.cluster_forwarded_reads!}); replicated ${after.cluster_replicated}`);
    expect(after.session_ids_minted! - before.session_ids_minted!).toBe(3 * sessionsPerNode);
    expect(reads).toBeGreaterThanOrEqual(3 * sessionsPerNode * (1 + sticky));
    expect(after.cluster_forwarded_reads! - before.cluster_forwarded_reads!).toBe(0);
    expect(after.cluster_forwarded! - before.cluster_forwarded!).toBe(0);
    // the sessions were still copied to their backups
    expect(after.cluster_replicated).toBeGreaterThanOrEqual(3 * sessionsPerNode * (1 + sticky));

    // Round-robin: every session's next requests go through the other nodes in turn.
    const all = born.flatMap(({ ids, node }) => ids.map((id) => ({ id, home: node })));
    const expected = new Map(all.map(({ id }) => [id, 1 + sticky]));
    for (let round = 1; round <= 2; round++) {
      const byNode = new Map<ClusterNode, string[]>();
      all.forEach(({ id, home }, j) => {
        const via = nodes[(nodes.indexOf(home) + round + j) % nodes.length]!;
        if (!byNode.has(via)) byNode.set(via, []);
        byNode.get(via)!.push(id);
      });
      const results = (await Promise.all([...byNode].map(([via, ids]) => requests(via, TRANSPORTS[nodes.indexOf(via) % TRANSPORTS.length]!, ids)))).flat();
      expect(failures(results), `round-robin round ${round}`).toEqual([]);
      for (const r of results) {
        expect(r.after, 'no failover: the id stays').toBe(r.cookie);
        expect(r.n, `${r.cookie} round ${round}`).toBe(expected.get(r.cookie)! + 1);
        expected.set(r.cookie, r.n);
      }
    }
    const roundRobin = await sumStats(nodes, ['cluster_forwarded_reads']);
    console.log(`[round-robin] forwarded reads ${roundRobin.cluster_forwarded_reads! - after.cluster_forwarded_reads!}`);
    expect(roundRobin.cluster_forwarded_reads! - after.cluster_forwarded_reads!).toBeGreaterThan(0);
  });
});

describe('kill -9 of the node that minted the sessions', () => {
  let cluster: Cluster;
  beforeAll(async () => {
    cluster = await startLiveCluster(3);
  });
  afterAll(async () => { await stopCluster(cluster); });

  for (const transport of TRANSPORTS) {
    it(`${transport}: served by the backup, a new backup, the cookie moved to an id the cluster owns now, 0 lost`, async () => {
      const [node1, node2, node3] = cluster.nodes as [ClusterNode, ClusterNode, ClusterNode];
      if (!node2.running) await node2.restart();
      await waitForMembers(cluster.nodes, allAlive(cluster.nodes), 10_000);
      const count = 20;
      const created = await requests(node2, transport, Array.from({ length: count }, () => '-'));
      expect(failures(created)).toEqual([]);
      const ids = created.map((r) => r.after);
      const second = await requests(node2, transport, ids);
      expect(failures(second)).toEqual([]);
      const named = new Map<string, string>();
      for (const id of ids) {
        const o = await sessionOwners(node1, id);
        expect(o).toMatchObject({ id_kind: 'minted', named_master: 'node2', master: 'node2' });
        named.set(id, o.named_backup!);
      }
      await waitForSettled(async () => (await sumStats([node1, node3], ['cluster_replicas_applied'])).cluster_replicas_applied, { quietMs: 500, timeoutMs: 10_000 });

      await node2.kill();
      await waitForMembers([node1, node3], { node2: 'dead' }, 5000);
      for (const id of ids) {
        for (const via of [node1, node3]) {
          const o = await sessionOwners(via, id);
          expect(o.master, `${id} via ${via.id}: served by its backup`).toBe(named.get(id));
          expect(['node1', 'node3'].filter((x) => x !== o.master), `${id}: a new backup`).toContain(o.backup);
        }
      }

      // The load balancer sends the users to node1 now.
      const moved = await requests(node1, transport, ids);
      expect(failures(moved)).toEqual([]);
      const newIds = new Map<string, string>();
      for (const r of moved) {
        expect(r.after, 'the cookie moved to a new id').not.toBe(r.cookie);
        expect(r.n, `${r.cookie}: the data came along (0 lost)`).toBe(3);
        const o = await sessionOwners(node3, r.after);
        expect(o, `${r.after}: minted by node1, owned by the cluster now`).toMatchObject({ id_kind: 'minted', named_master: 'node1', master: 'node1', backup: 'node3' });
        expect(Number(o.revision)).toBe(1);
        expect(await reservedValue(node1, `valid.${r.after}`)).toBe('1');
        newIds.set(r.cookie, r.after);
      }
      // The next request with the new cookie stays put; one still carrying the old cookie (a
      // request that was in flight) follows it to the same new id.
      const next = await requests(node1, transport, ids.map((id) => newIds.get(id)!));
      expect(failures(next)).toEqual([]);
      for (const r of next) expect([r.after, r.n]).toEqual([r.cookie, 4]);
      const stale = await requests(node3, transport, ids);
      expect(failures(stale)).toEqual([]);
      for (const r of stale) expect([r.after, r.n], `old cookie ${r.cookie}`).toEqual([newIds.get(r.cookie), 5]);
      console.log(`[failover ${transport}] ${count} sessions re-homed from node2 to node1, 0 lost`);
    });
  }
});
