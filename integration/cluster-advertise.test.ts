/**
 * --peer-advertise, end to end with real daemons on loopback: nodes whose peer listener binds
 * every address (--peer-listen 0.0.0.0:P) announce another address, and the other nodes dial
 * that one. To show it is the advertised address they dial, each node advertises a recording
 * relay (127.0.0.1:R, forwarding to its port P) while the seed lists name the ports P directly:
 * traffic through a relay can only come from a peer that learned the advertised address. Every
 * address dialed is on 127.0.0.1.
 *
 * A wildcard --peer-listen without --peer-advertise, and a wildcard or port-0 advertise, are
 * refused at start (exit 2).
 */
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  TcpRelay, allAlive, startCluster, stats, stopCluster, waitForMembers, writeThroughFirstReadThroughOthers, type Cluster,
} from './cluster-harness.js';
import { daemonBin, pollUntil } from './harness.js';

describe('--peer-advertise refusals at start', () => {
  // A secret in the environment of whoever runs the tests must not decide these cases.
  const run = (args: string[]) => execa(daemonBin, ['start', '--listen', '127.0.0.1:0', '--cluster-secret', 'a-secret-of-16-chars', ...args], {
    reject: false, timeout: 10000, env: { SESSION_CLUSTER_SECRET: undefined },
  });

  it.each([['0.0.0.0:11212'], [':11212'], ['[::]:11212']])('--peer-listen %s without --peer-advertise: exit 2, saying to set --peer-advertise', async (listen) => {
    const result = await run(['--peer-listen', listen]);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toMatch(/^session-cluster: --peer-listen \(peerListen\): .* listens on every address, which other nodes cannot dial; set --peer-advertise \(peerAdvertise\)/);
  });

  it.each([
    ['0.0.0.0:11212', 'is a wildcard address'],
    ['10.0.0.1:0', 'has port 0'],
  ])('--peer-advertise %s: exit 2, %s', async (advertise, why) => {
    const result = await run(['--peer-listen', '127.0.0.1:0', '--peer-advertise', advertise]);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain(`--peer-advertise: "${advertise}" ${why}`);
  });
});

describe('nodes listening on 0.0.0.0 are dialed at their advertised address', () => {
  let cluster: Cluster;
  const relays = new Map<string, TcpRelay>();

  beforeAll(async () => {
    for (const id of ['node1', 'node2', 'node3']) relays.set(id, await TcpRelay.start());
    cluster = await startCluster(3, {
      peerListenHost: '0.0.0.0',
      perNodeArgs: ({ id, peerPort }) => {
        const relay = relays.get(id)!;
        relay.target = peerPort;
        return ['--peer-advertise', relay.address];
      },
    });
    await waitForMembers(cluster.nodes, allAlive(cluster.nodes));
  });

  afterAll(async () => {
    await stopCluster(cluster);
    for (const relay of relays.values()) await relay.close();
  });

  it('bind every address and announce the advertised one', () => {
    for (const node of cluster.nodes) {
      const listening = node.logs.find((line) => line.msg === 'listening' && line.transport === 'peer');
      expect(listening, node.id).toMatchObject({ host: '0.0.0.0', port: node.peerPort, advertised: relays.get(node.id)!.address });
    }
  });

  it('every node is dialed through its advertised address by each of the other two', async () => {
    // Membership carries the advertised address; heartbeats and every later request go there.
    // Without TLS the dialer's Hello names it in plaintext (docs/peer-protocol.md, "Handshake").
    for (const node of cluster.nodes) {
      const relay = relays.get(node.id)!;
      const dialers = relay.streams.map((stream) => helloNodeId(Buffer.concat(stream.sent)));
      expect(new Set(dialers), node.id).toEqual(new Set(cluster.nodes.filter((other) => other !== node).map((other) => other.id)));
    }
    const before = cluster.nodes.map((node) => relays.get(node.id)!.bytesCarried);
    // At most 500 ms (five heartbeats), and on as soon as every relay has carried more.
    await pollUntil(() => cluster.nodes.every((node, i) => relays.get(node.id)!.bytesCarried > before[i]!), { timeoutMs: 500 });
    // heartbeats keep flowing through the relays (every 100 ms in the harness)
    cluster.nodes.forEach((node, i) => expect(relays.get(node.id)!.bytesCarried, node.id).toBeGreaterThan(before[i]!));
  });

  it('sessions written through one node are read through the others, and cross in plaintext without TLS', async () => {
    const marker = `plaintext-marker-${Date.now()}`;
    const keys = Array.from({ length: 30 }, (_, i) => `advertise-session-${i}`);
    await writeThroughFirstReadThroughOthers(cluster.nodes, keys, (key) => `${marker}:${key}`);
    // The control for integration/cluster-tls.test.ts: without TLS, a relay sees session data.
    const seen = [...relays.values()].flatMap((relay) => relay.carried()).filter((bytes) => bytes.includes(marker));
    expect(seen.length).toBeGreaterThan(0);
    for (const node of cluster.nodes) expect((await stats(node)).cluster_peer_tls, node.id).toBe('off');
  });
});

/** The node id in the Hello frame a plaintext peer connection opens with: u32 length, u8 opcode, u32 requestId, then u16 version | nonce[32] | u32 maxFrameSize | u16 length + id. */
function helloNodeId(stream: Buffer): string {
  const HELLO = 1;
  if (stream.length < 49 || stream[4] !== HELLO) return `(not a Hello: ${stream.subarray(0, 16).toString('hex')})`;
  const at = 9 + 2 + 32 + 4;
  return stream.subarray(at + 2, at + 2 + stream.readUInt16BE(at)).toString('utf8');
}
