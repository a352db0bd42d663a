/**
 * The fault proxy (integration/fault-proxy.ts) with three real daemons behind it: it tells the
 * connections apart by their dialer's Hello, and each rule does what it says: a cut makes a member
 * dead in the others' stats until heal(); hold keeps bytes until release() and then delivers them;
 * delay slows a forwarded request; reset drops a link, which the nodes dial again.
 *
 * Timing: heartbeats every 100 ms, failure timeout 1000 ms, so a hold of a few hundred ms does not
 * get a node declared dead, while a cut does within about a second.
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { allAlive, startLiveCluster, stopCluster, waitForMembers, waitForReady, type Cluster, type ClusterNode } from './cluster-harness.js';
import { sessionMasteredBy } from './fault-harness.js';
import type { FaultNetwork } from './fault-proxy.js';
import { pollUntil, sleep, waitFor } from './harness.js';
import { RawClient, rawGet } from './raw-client.js';

const IDS = ['n0', 'n1', 'n2'];

describe('fault proxy in front of three daemons', () => {
  let cluster: Cluster;
  let faults: FaultNetwork;
  let n0: ClusterNode, n1: ClusterNode, n2: ClusterNode;

  beforeAll(async () => {
    cluster = await startLiveCluster(3, { ids: IDS, behindProxies: true, heartbeatMs: 100, failureTimeoutMs: 1000 });
    faults = cluster.faults!;
    [n0, n1, n2] = cluster.nodes as [ClusterNode, ClusterNode, ClusterNode];
  });

  afterAll(async () => { await stopCluster(cluster); });

  /** set through `via` on a fresh connection: the answer line and how long it took. */
  async function timedSet(via: ClusterNode, key: string, value: string, timeoutMs = 10_000): Promise<{ reply: string; ms: number }> {
    const c = await RawClient.connect(via.host, via.port);
    try {
      const t0 = Date.now();
      const r = await c.request(`set ${key} 0 0 ${value.length}\r\n${value}\r\n`, '\r\n', timeoutMs);
      return { reply: r.data.toString('latin1').trim() || (r.timedOut ? '(no answer)' : '(closed)'), ms: Date.now() - t0 };
    } finally {
      c.destroy();
    }
  }

  it('every peer connection passes through the proxy of the node it dials, identified by its dialer', async () => {
    // A node that dialed a peer's proxy before the peer listened backs off before it dials again
    // (up to 5 s when its handshake timed out): the members can all be alive meanwhile, each
    // hearing the others on the links that are up.
    const pairs = IDS.flatMap((from) => IDS.filter((to) => to !== from).map((to) => [from, to] as const));
    await waitFor(() => pairs.every(([from, to]) => faults.bytes(from, to).open === 1), { timeoutMs: 10_000, what: () => `one open link per pair\n${faults.describe()}` });
    for (const from of IDS) {
      for (const to of IDS) {
        if (from === to) continue;
        const t = faults.bytes(from, to);
        expect(t.connections, `${from}->${to}\n${faults.describe()}`).toBeGreaterThanOrEqual(1);
        expect(t.open, `${from}->${to}: one link per peer address\n${faults.describe()}`).toBe(1);
        expect(t.request.delivered, `${from}->${to}`).toBeGreaterThan(0);
        expect(t.reply.delivered, `${from}->${to}`).toBeGreaterThan(0);
      }
    }
    // No connection went unidentified.
    for (const to of IDS) expect(faults.bytes('?', to).connections).toBe(0);
  });

  it('a cut makes the isolated member dead in the others\' stats (its connections stay open); heal brings it back', async () => {
    const droppedBefore = faults.bytes(n2.id, n0.id).request.dropped;
    faults.isolate(n2.id);
    const deadMs = await waitForMembers([n0, n1], { n2: 'dead' }, 10_000);
    await waitForMembers([n2], { n0: 'dead', n1: 'dead' }, 10_000);
    expect(faults.bytes(n2.id, n0.id).request.dropped).toBeGreaterThan(droppedBefore);
    expect(faults.bytes(n2.id, n0.id).open, faults.describe()).toBeGreaterThanOrEqual(1);
    faults.heal();
    const aliveMs = await waitForMembers(cluster.nodes, allAlive(cluster.nodes), 15_000);
    console.log(`[fault-proxy] isolated n2 seen dead after ${deadMs} ms; all alive ${aliveMs} ms after heal`);
  });

  it('cutOneWay drops only what one node sends to the other, whichever dialed', async () => {
    const before = { n1ToN2: faults.bytes(n1.id, n2.id).request, n2Replies: faults.bytes(n2.id, n1.id).reply, n2ToN1: faults.bytes(n2.id, n1.id).request };
    faults.cutOneWay(n1.id, n2.id);
    // Until each way has carried (or dropped) something: heartbeats go every 200 ms, but a busy
    // machine may delay a node's by more than that.
    await pollUntil(() => faults.bytes(n1.id, n2.id).request.dropped > before.n1ToN2.dropped
      && faults.bytes(n2.id, n1.id).request.delivered > before.n2ToN1.delivered, { timeoutMs: 5000 });
    const after = { n1ToN2: faults.bytes(n1.id, n2.id).request, n2Replies: faults.bytes(n2.id, n1.id).reply, n2ToN1: faults.bytes(n2.id, n1.id).request };
    faults.heal();
    // n1's heartbeats to n2 are dropped; n2's heartbeats to n1 are delivered.
    expect(after.n1ToN2.dropped).toBeGreaterThan(before.n1ToN2.dropped);
    expect(after.n1ToN2.delivered).toBe(before.n1ToN2.delivered);
    expect(after.n2ToN1.delivered).toBeGreaterThan(before.n2ToN1.delivered);
    expect(after.n2ToN1.dropped).toBe(before.n2ToN1.dropped);
    // Replies n1 sends on n2's link are dropped too (none may have been due in half a second).
    expect(after.n2Replies.delivered).toBe(before.n2Replies.delivered);
    await waitForMembers(cluster.nodes, allAlive(cluster.nodes), 15_000);
  });

  it('hold keeps the bytes of a link and release delivers them, in order: a forwarded set completes after the hold', async () => {
    await waitForMembers(cluster.nodes, allAlive(cluster.nodes), 15_000);
    // the faults before may have left a node catching up: its sessions wait for that, not the hold
    await waitForReady(cluster.nodes, 15_000);
    const { id } = await sessionMasteredBy(n1, n2.id, 'hold');
    const key = `memc.sess.key.${id}`;
    faults.hold(n1.id, n2.id);
    const pending = timedSet(n1, key, 'held-value');
    await waitFor(() => faults.bytes(n1.id, n2.id).request.pending > 0, { timeoutMs: 2000, what: `bytes held on n1->n2\n${faults.describe()}` });
    await sleep(300);
    const held = faults.bytes(n1.id, n2.id).request;
    faults.release(n1.id, n2.id);
    const { reply, ms } = await pending;
    const after = faults.bytes(n1.id, n2.id).request;
    console.log(`[fault-proxy] held ${held.pending} bytes for 300 ms; the forwarded set answered ${reply} after ${ms} ms`);
    expect(reply).toBe('STORED');
    expect(ms).toBeGreaterThanOrEqual(300);
    expect(after.pending).toBe(0);
    expect(after.delivered).toBeGreaterThanOrEqual(held.delivered + held.pending);
    expect((await rawGet(n2, key))?.value).toBe('held-value');
  });

  it('delay delivers each frame N ms late: a forwarded set takes at least the delay both ways', async () => {
    await waitForReady(cluster.nodes, 15_000);
    const { id } = await sessionMasteredBy(n1, n2.id, 'delay');
    faults.delay(n1.id, n2.id, 150);
    const { reply, ms } = await timedSet(n1, `memc.sess.key.${id}`, 'delayed-value');
    faults.heal();
    console.log(`[fault-proxy] 150 ms delay each way: the forwarded set answered ${reply} after ${ms} ms`);
    expect(reply).toBe('STORED');
    expect(ms).toBeGreaterThanOrEqual(300);
  });

  it('reset drops the links between two nodes with an RST; they dial again and serve', async () => {
    await waitForMembers(cluster.nodes, allAlive(cluster.nodes), 15_000);
    const before = { a: faults.bytes(n1.id, n2.id).connections, b: faults.bytes(n2.id, n1.id).connections };
    const dropped = faults.reset(n1.id, n2.id);
    expect(dropped).toBe(2);
    await waitFor(() => faults.bytes(n1.id, n2.id).open === 1 && faults.bytes(n2.id, n1.id).open === 1
      && faults.bytes(n1.id, n2.id).connections > before.a && faults.bytes(n2.id, n1.id).connections > before.b,
    { timeoutMs: 10_000, what: `new links n1<->n2\n${faults.describe()}` });
    await waitForMembers(cluster.nodes, allAlive(cluster.nodes), 15_000);
    const { id } = await sessionMasteredBy(n1, n2.id, 'reset');
    expect((await timedSet(n1, `memc.sess.key.${id}`, 'after-reset')).reply).toBe('STORED');
  });

  it('close() closes every proxy and connection', async () => {
    const ports = IDS.map((id) => faults.portOf(id));
    await stopCluster(cluster);
    for (const port of ports) {
      const refused = await new Promise<boolean>((resolve) => {
        const s = net.connect(port, '127.0.0.1');
        s.once('connect', () => { s.destroy(); resolve(false); });
        s.once('error', () => resolve(true));
      });
      expect(refused, `proxy port ${port} still accepts`).toBe(true);
    }
  });
});
