/**
 * Joining and health, with real daemons on loopback:
 * - a node given --peers that cannot join any of them (a wrong cluster secret, a seed where
 *   nothing listens) does not serve as a cluster of one: its client port stays closed, GET
 *   /health and /ready answer 503 naming each seed's refusal, it warns with the same, and after
 *   --join-timeout-ms it exits 1 with a fatal line naming them (SIGTERM meanwhile stops it, exit 0);
 * - GET /health is 200 `ok` on a cluster node that serves and on a single node, and 503
 *   `catching up` while a restarted node waits for a stopped peer to hand over its sessions;
 * - a peer's graceful leave (SIGTERM) is logged at info on the survivors, not as a
 *   `peer link down` warning.
 */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  DEFAULT_SECRET, type Cluster, type ClusterNode, allAlive, startCluster, startLiveCluster, startOutsiderNode, stopCluster, waitForMembers, waitForReady,
} from './cluster-harness.js';
import { freePort, freePorts, httpGet, pollUntil, sleep, startDaemon, waitFor, type RunningServer } from './harness.js';

const WRONG_SECRET = 'not-the-cluster-secret-at-all';

let cluster: Cluster | null = null;
const others: Array<{ cleanup(): Promise<void> }> = [];
afterEach(async () => {
  for (const node of others.splice(0)) await node.cleanup();
  if (cluster !== null) await stopCluster(cluster);
  cluster = null;
});

/** Whether something accepts TCP connections on 127.0.0.1:port. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.once('connect', () => { socket.destroy(); resolve(true); });
    socket.once('error', () => resolve(false));
  });
}

/** Every log line of `node` at `level` whose msg contains `text`. */
function linesAt(node: ClusterNode, level: number, text: string): Array<Record<string, unknown>> {
  return node.logsMatching(text).filter((line) => line.level === level);
}

/** The daemon's exit code, once it has exited by itself (fails the test if it has not within `timeoutMs`). */
async function exitCodeOf(node: ClusterNode, timeoutMs: number): Promise<number | undefined> {
  await waitFor(() => !node.running, { timeoutMs, what: () => `${node.id} to exit by itself; ${node.describeExit()}` });
  return (await node.server.process).exitCode;
}

/**
 * A node that cannot join `seed` (seedReason: how it describes that seed) is not ready, warns,
 * and exits 1 after its join timeout, each time naming the seed's reason.
 */
async function expectCannotJoin(node: ClusterNode, seedReason: string): Promise<void> {
  // The first answers may come before the first attempt has failed ("no answer yet").
  let health = await httpGet(node, '/health');
  await pollUntil(async () => (health = await httpGet(node, '/health')).body.includes(seedReason), { timeoutMs: 5000, intervalMs: 50 });
  expect(health).toEqual({ status: 503, body: `unhealthy: not joined: ${seedReason}\n` });
  const ready = await httpGet(node, '/ready');
  expect(ready.status).toBe(503);
  expect(ready.body).toContain(seedReason);
  // PHP finds no server rather than a node serving sessions apart from the cluster.
  expect(await accepts(node.port), `client port ${node.port} of ${node.id}`).toBe(false);

  await waitFor(() => linesAt(node, 40, 'cannot join the cluster:').length > 0, { timeoutMs: 5000, what: () => `the join warning; ${node.describeExit(12)}` });
  expect(linesAt(node, 40, 'cannot join the cluster:')[0]!.msg).toBe(`cannot join the cluster: ${seedReason}`);

  expect(await exitCodeOf(node, 15_000)).toBe(1);
  const fatal = node.logs.filter((line) => line.level === 60);
  expect(fatal, node.describeExit(12)).toHaveLength(1);
  expect(fatal[0]).toMatchObject({ msg: 'cannot start', code: 'ERR_JOIN', err: `cannot join the cluster within --join-timeout-ms (3000 ms): ${seedReason}` });
  // It never served: no "ready", and never a member of anything.
  expect(node.logsMatching(/^ready$/)).toEqual([]);
  expect(node.logsMatching('joined the cluster')).toEqual([]);
}

describe('a node that cannot join any of its --peers does not serve alone', () => {
  it('a wrong cluster secret beside a running node: not ready, warned, and exit 1 after --join-timeout-ms, naming the refusal', async () => {
    cluster = await startCluster(1, { idPrefix: 'anchor' });
    const anchor = cluster.nodes[0]!;
    const intruder = await startOutsiderNode('intruder', [anchor], { secret: WRONG_SECRET, joinTimeoutMs: 3000 });
    others.push(intruder);
    await expectCannotJoin(intruder, `${anchor.peerAddress} refused our cluster secret`);
    // The running node is untouched: alone in its cluster, as before.
    await waitForMembers([anchor], { anchor1: 'alive', intruder: 'absent' }, 5000);
  });

  it('a seed where nothing listens: not ready, warned, and exit 1 after --join-timeout-ms, naming the refused connection', async () => {
    const nobody = `127.0.0.1:${await freePort()}`;
    const lonely = await startOutsiderNode('lonely', [{ peerAddress: nobody }], { joinTimeoutMs: 3000 });
    others.push(lonely);
    await expectCannotJoin(lonely, `${nobody}: connection refused (nothing listens there)`);
  });

  it('SIGTERM while it waits to join (--join-timeout-ms 0: for ever) stops it at once, exit 0', async () => {
    const nobody = `127.0.0.1:${await freePort()}`;
    const waiting = await startOutsiderNode('waiting', [{ peerAddress: nobody }], { joinTimeoutMs: 0 });
    others.push(waiting);
    await waitFor(async () => (await httpGet(waiting, '/health')).body.includes(`${nobody}: connection refused`), { timeoutMs: 5000, what: 'the waiting node to name its seed' });
    expect(await waiting.terminate(10_000)).toBe(0);
    expect(waiting.logsMatching('stop requested while starting')).toHaveLength(1);
    expect(waiting.logsMatching(/^stopped$/)).toHaveLength(1);
    expect(waiting.logs.filter((line) => Number(line.level) >= 50)).toEqual([]);
  });

  it('the first node of a cluster, whose peers are not up yet, waits for them and forms the cluster when they come', async () => {
    const [firstPeer, secondPeer, firstMetrics] = await freePorts(3);
    const seeds = [`127.0.0.1:${firstPeer}`, `127.0.0.1:${secondPeer}`];
    const args = (id: string, peerPort: number, metrics: string) => [
      '--peer-listen', `127.0.0.1:${peerPort}`, '--peers', seeds.join(','), '--node-id', id, '--cluster-secret', DEFAULT_SECRET,
      '--heartbeat-ms', '100', '--failure-timeout-ms', '600', '--metrics-listen', metrics, '--join-timeout-ms', '0',
    ];
    const first = await startDaemon(args('first', firstPeer!, `127.0.0.1:${firstMetrics}`), { until: 'metrics' });
    others.push({ cleanup: () => first.stop('SIGKILL') });
    // Alone, it waits: not serving, and saying why.
    await waitFor(async () => (await httpGet(first, '/health')).body.includes(`127.0.0.1:${secondPeer}: connection refused`), { timeoutMs: 5000, what: 'the first node to name its missing peer' });
    expect((await httpGet(first, '/health')).status).toBe(503);
    expect(first.logs.some((line) => line.msg === 'ready')).toBe(false);
    // The second comes up: both join and serve.
    const second: RunningServer = await startDaemon(args('second', secondPeer!, '127.0.0.1:0'));
    others.push({ cleanup: () => second.stop('SIGKILL') });
    await waitFor(() => first.logs.some((line) => line.msg === 'ready'), { timeoutMs: 10_000, what: () => `the first node to serve: ${JSON.stringify(first.logs.slice(-5))}` });
    expect(await httpGet(first, '/health')).toEqual({ status: 200, body: 'ok\n' });
    expect(await httpGet(second, '/health')).toEqual({ status: 200, body: 'ok\n' });
  });
});

describe('GET /health', () => {
  it('200 ok on a single node, without --peers', async () => {
    const single = await startDaemon(['--metrics-listen', '127.0.0.1:0']);
    others.push({ cleanup: () => single.stop('SIGKILL') });
    expect(await httpGet(single, '/health')).toEqual({ status: 200, body: 'ok\n' });
    expect(await httpGet(single, '/ready')).toEqual({ status: 200, body: 'ready\n' });
  });

  it('200 ok on every node of a healthy cluster; 503 "catching up" while a restarted node waits for a stopped peer, 200 again after', async () => {
    const metricsPorts = await freePorts(3);
    cluster = await startLiveCluster(3, {
      idPrefix: 'health', perNodeArgs: ({ id }) => ['--metrics-listen', `127.0.0.1:${metricsPorts[Number(id.slice('health'.length)) - 1]}`],
    });
    const [node1, node2, node3] = cluster.nodes as [ClusterNode, ClusterNode, ClusterNode];
    await waitForReady(cluster.nodes);
    for (const node of cluster.nodes) expect(await httpGet(node, '/health'), node.id).toEqual({ status: 200, body: 'ok\n' });

    // node3 stopped: node1, restarted, joins through node2 and then waits for node3's handoff.
    node3.pause();
    const restarted = node1.restart();
    const node1Metrics = { metricsPort: metricsPorts[0]! };
    const seen: string[] = [];
    const caughtCatchingUp = await pollUntil(async () => {
      const answer = await httpGet(node1Metrics, '/health').catch((error: Error) => ({ status: 0, body: error.message }));
      seen.push(`${answer.status} ${answer.body.trim()}`);
      return answer.status === 503 && answer.body.includes('catching up');
    }, { timeoutMs: 15_000, intervalMs: 20 });
    node3.resume();
    expect(caughtCatchingUp, `node1's /health answers: ${[...new Set(seen)].join(' | ')}`).toBe(true);
    expect(seen.at(-1)).toBe('503 unhealthy: catching up: taking back this node\'s sessions from its peers');
    await restarted;
    await waitForMembers(cluster.nodes, allAlive(cluster.nodes), 10_000);
    await waitForReady(cluster.nodes);
    expect(await httpGet(node1, '/health')).toEqual({ status: 200, body: 'ok\n' });
    expect(await httpGet(node2, '/health')).toEqual({ status: 200, body: 'ok\n' });
  });
});

describe('a graceful leave', () => {
  it('is logged at info on the survivors, with no "peer link down" warning for the node that left', async () => {
    cluster = await startLiveCluster(3, { idPrefix: 'leave' });
    const [node1, node2, node3] = cluster.nodes as [ClusterNode, ClusterNode, ClusterNode];
    await waitForReady(cluster.nodes);
    expect(await node3.terminate()).toBe(0);
    for (const survivor of [node1, node2]) {
      await waitFor(() => survivor.logsMatching('peer link closed after the peer left the cluster').some((line) => line.peerNodeId === node3.id), {
        timeoutMs: 10_000, what: () => `${survivor.id} to log the closed link to ${node3.id}: ${survivor.logs.slice(-8).map((line) => line.msg).join(' | ')}`,
      });
      const closed = survivor.logsMatching('peer link closed after the peer left the cluster').filter((line) => line.peerNodeId === node3.id);
      expect(closed.every((line) => line.level === 30), JSON.stringify(closed)).toBe(true);
      expect(survivor.logsMatching('member left').some((line) => line.peer === node3.id && line.level === 30)).toBe(true);
    }
    // A fixed wait past the leave grace (500 ms): what is checked is that no warning comes late.
    await sleep(1500);
    for (const survivor of [node1, node2]) {
      const down = survivor.logsMatching('peer link down').filter((line) => line.peerNodeId === node3.id || line.peer === node3.peerAddress);
      expect(down, survivor.id).toEqual([]);
    }
  });
});
