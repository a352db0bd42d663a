/**
 * A flood on the peer port: 300 idle TCP connections to a node's --peer-listen port that never
 * start the peer handshake, reopened whenever the node closes one, as a flood would. Real nodes
 * must still link to the flooded node while it goes on: a third node that joins through it, and
 * a member restarted under its old id. The node keeps only a bounded number of them, making room
 * for every newcomer by closing the oldest silent one (src/cluster/peer/handshake-slots.ts).
 */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  allAlive, startExtraNode, startLiveCluster, stats, stopCluster, waitForMembers, type Cluster, type ClusterNode,
} from './cluster-harness.js';
import { exchange, rawGet } from './raw-client.js';

const FLOOD = 300;
/** How long a flood connection that was closed waits before it comes back. */
const REOPEN_MS = 100;

let cluster: Cluster | undefined;
let extra: ClusterNode | undefined;
let stopFlood: (() => void) | undefined;
afterEach(async () => {
  stopFlood?.();
  stopFlood = undefined;
  await extra?.cleanup();
  extra = undefined;
  await stopCluster(cluster);
  cluster = undefined;
});

/** Keeps `count` idle connections open to `port`, reopening each one the node closes. */
function flood(port: number, count: number): { stop(): void; opened(): number; open(): number } {
  const sockets = new Set<net.Socket>();
  let running = true;
  let opened = 0;
  const one = () => {
    if (!running) return;
    opened++;
    const socket = net.connect({ host: '127.0.0.1', port });
    sockets.add(socket);
    socket.on('error', () => undefined);
    // read (and drop) what the node sends, so that its close is seen
    socket.resume();
    socket.on('close', () => {
      sockets.delete(socket);
      if (running) setTimeout(one, REOPEN_MS);
    });
  };
  for (let i = 0; i < count; i++) one();
  return {
    stop() {
      running = false;
      for (const socket of sockets) socket.destroy();
    },
    opened: () => opened,
    open: () => sockets.size,
  };
}

describe('peer port flood', () => {
  it('a new node joins through a node flooded with idle connections, and a restarted member links again', async () => {
    cluster = await startLiveCluster(2, { idPrefix: 'flood' });
    const [first, second] = cluster.nodes as [ClusterNode, ClusterNode];
    const attack = flood(first.peerPort, FLOOD);
    stopFlood = () => attack.stop();
    // let the flood reach the node and fill its handshake slots
    await new Promise((resolve) => setTimeout(resolve, 500));

    // A third node whose only seed is the flooded one.
    const joinStarted = performance.now();
    extra = await startExtraNode('flood3', [first]);
    const joinMs = await waitForMembers([first, second, extra], allAlive([first, second, extra]), 10_000);
    console.log(`third node: joined through the flooded node ${logGap(extra, 'joining the cluster', 'joined the cluster')} ms after it began to; `
      + `alive everywhere ${(performance.now() - joinStarted).toFixed(0)} ms after its process started (${joinMs} ms after it was ready); flood connections opened so far: ${attack.opened()}`);
    // It is linked, not merely gossiped about: a session written through it is read through the others.
    await rawSet(extra, 'flood-session', 'written through the new node');
    expect((await rawGet(first, 'flood-session'))?.value).toBe('written through the new node');
    expect((await rawGet(second, 'flood-session'))?.value).toBe('written through the new node');

    // A member killed and restarted under its id links to the flooded node again.
    const restartStarted = performance.now();
    await second.restart();
    const restartMs = await waitForMembers([first, second, extra], allAlive([first, second, extra]), 10_000);
    const linked = await waitForLinks([first, second, extra], 2, 10_000);
    console.log(`restarted member: joined through the flooded node ${logGap(second, 'joining the cluster', 'joined the cluster')} ms after it began to; `
      + `alive everywhere ${(performance.now() - restartStarted).toFixed(0)} ms after the kill (${restartMs} ms after it was ready), every link up ${linked} ms later; flood connections opened so far: ${attack.opened()}`);

    // The flood was going on the whole time, and the node bounded what it kept of it.
    expect(attack.open()).toBeGreaterThan(0);
    const seen = await stats(first);
    expect(Number(seen.cluster_peer_connections_rejected)).toBeGreaterThan(0);
    expect(Number(seen.cluster_peer_connections_accepted)).toBeGreaterThanOrEqual(FLOOD);
    expect(first.logsMatching('to make room for new ones').length).toBeGreaterThan(0);
    expect(first.running && second.running && extra.running).toBe(true);
  }, 60_000);
});

/** Milliseconds between the current incarnation's first log lines `from` and `to`. */
function logGap(node: ClusterNode, from: string, to: string): number {
  const at = (msg: string) => Number(node.logs.find((line) => line.msg === msg)?.time);
  return at(to) - at(from);
}

/** Until every node has `links` peer links and connections up; how long that took. */
async function waitForLinks(nodes: ClusterNode[], links: number, timeoutMs: number): Promise<number> {
  const started = Date.now();
  for (;;) {
    const counts = await Promise.all(nodes.map(async (node) => {
      const seen = await stats(node);
      return [Number(seen.cluster_peer_links_up), Number(seen.cluster_peer_connections_up)];
    }));
    if (counts.every(([up, accepted]) => up === links && accepted === links)) return Date.now() - started;
    if (Date.now() - started > timeoutMs) throw new Error(`peer links did not come up: ${JSON.stringify(counts)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function rawSet(node: ClusterNode, key: string, value: string): Promise<void> {
  const { reply } = await exchange(node, `set ${key} 0 0 ${value.length}\r\n${value}\r\n`, /\r\n/);
  expect(reply).toBe('STORED\r\n');
}
