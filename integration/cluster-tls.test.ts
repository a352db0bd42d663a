/**
 * TLS on peer links, end to end with real daemons on loopback and throwaway certificates made
 * with the openssl CLI (test/cluster/test-certificates.ts): a CA for the cluster, one
 * certificate per node, and another CA for nodes the cluster must not trust.
 *
 * What is shown:
 *  - a 3-node cluster with --peer-tls-cert/--peer-tls-key/--peer-tls-ca forms, and sessions
 *    written through one node are read through the others;
 *  - the wire carries TLS only: each node advertises a recording relay (--peer-advertise), so
 *    the peer traffic passes through the test; every connection opens with a TLS record and no
 *    session value crosses in plaintext (integration/cluster-advertise.test.ts shows the same
 *    relay does see session values when TLS is off);
 *  - a raw TCP peek: a plaintext Hello to a TLS node's peer port gets no Hello back, only
 *    Error(TlsRequired), while a node without TLS answers the same bytes with its Hello;
 *  - a node whose certificate comes from another CA is refused (logged on both sides) and never
 *    becomes a member; so is a node without TLS;
 *  - unusable TLS settings stop the daemon at start, exit 2, naming the flag.
 */
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  TcpRelay, allAlive, members, scrapeMetrics, startCluster, startOutsiderNode, stats, stopCluster, waitForMembers, writeThroughFirstReadThroughOthers,
  type Cluster, type ClusterNode,
} from './cluster-harness.js';
import { daemonBin, sleep, startDaemon, waitFor, type RunningServer } from './harness.js';
import { RawClient } from './raw-client.js';
import { TestCertificates } from '../test/cluster/test-certificates.js';

const HELLO = 1;
const ERROR = 13;
const TLS_REQUIRED = 10;
/** RFC 8446 §5.1: a TLS connection opens with a handshake(22) record, version 3.x. */
const TLS_RECORD_START = Buffer.from([0x16, 0x03]);

let certificates: TestCertificates;
/** the CA bundle every cluster node trusts */
let clusterCa: string;

/** The three TLS flags for a node whose certificate `signedBy` signed; it trusts the cluster's CA. */
function tlsArgs(name: string, signedBy: 'cluster-ca' | 'other-ca' = 'cluster-ca'): string[] {
  const { cert, key } = certificates.node(name, signedBy);
  return ['--peer-tls-cert', cert, '--peer-tls-key', key, '--peer-tls-ca', clusterCa];
}

/** A Hello as a plaintext dialer sends it first (docs/peer-protocol.md, "Handshake"). */
function plaintextHello(nodeId: string): Buffer {
  const id = Buffer.from(nodeId);
  const payload = Buffer.alloc(2 + 32 + 4 + 2 + id.length);
  payload.writeUInt16BE(1, 0);
  payload.writeUInt32BE(1024 * 1024, 34);
  payload.writeUInt16BE(id.length, 38);
  id.copy(payload, 40);
  const header = Buffer.alloc(9);
  header.writeUInt32BE(payload.length, 0);
  header[4] = HELLO;
  return Buffer.concat([header, payload]);
}

/** Connects to a peer port with a plain socket, sends a plaintext Hello, returns what comes back before the close (or 2 s). */
async function peekWithPlaintextHello(port: number): Promise<{ bytes: Buffer; closed: boolean }> {
  const client = await RawClient.connect('127.0.0.1', port);
  await client.send(plaintextHello('raw-peek'));
  const result = await client.readFor(1500);
  client.destroy();
  return { bytes: result.data, closed: result.closed };
}

beforeAll(() => {
  certificates = new TestCertificates();
  clusterCa = certificates.ca('cluster-ca');
  certificates.ca('other-ca');
});
afterAll(() => certificates?.remove());

describe('a cluster with TLS on its peer links', () => {
  let cluster: Cluster;
  const relays = new Map<string, TcpRelay>();
  const extraNodes: ClusterNode[] = [];
  const marker = `tls-marker-${Date.now()}`;

  beforeAll(async () => {
    for (const id of ['node1', 'node2', 'node3']) relays.set(id, await TcpRelay.start());
    cluster = await startCluster(3, {
      perNodeArgs: ({ id, peerPort }) => {
        const relay = relays.get(id)!;
        relay.target = peerPort;
        return [...tlsArgs(id), '--peer-advertise', relay.address];
      },
    });
    await waitForMembers(cluster.nodes, allAlive(cluster.nodes));
  });

  afterAll(async () => {
    for (const node of extraNodes) await node.cleanup();
    await stopCluster(cluster);
    for (const relay of relays.values()) await relay.close();
  });

  it('forms, says so in stats, and serves sessions written through one node from the others', async () => {
    for (const node of cluster.nodes) {
      expect((await stats(node)).cluster_peer_tls, node.id).toBe('on');
      expect(node.logs.find((line) => line.msg === 'listening' && line.transport === 'peer'), node.id).toMatchObject({ tls: true });
    }
    const keys = Array.from({ length: 30 }, (_, i) => `tls-session-${i}`);
    await writeThroughFirstReadThroughOthers(cluster.nodes, keys, (key) => `${marker}:${key}`);
    // Most keys live on another node than node1: they were forwarded and replicated over TLS.
    expect(Number((await stats(cluster.nodes[0]!)).cluster_forwarded)).toBeGreaterThan(0);
  });

  it('puts only TLS on the wire: every peer connection opens with a TLS record, and no session value crosses in plaintext', () => {
    let connections = 0;
    for (const [id, relay] of relays) {
      expect(relay.bytesCarried, id).toBeGreaterThan(1000);
      for (const stream of relay.streams) {
        const sent = Buffer.concat(stream.sent);
        const answered = Buffer.concat(stream.answered);
        if (sent.length === 0) continue;
        connections++;
        expect(sent.subarray(0, 2), `${id}: dialer's first bytes`).toEqual(TLS_RECORD_START);
        expect(answered.subarray(0, 2), `${id}: acceptor's first bytes`).toEqual(TLS_RECORD_START);
      }
      for (const bytes of relay.carried()) expect(bytes.includes(marker), id).toBe(false);
    }
    expect(connections).toBeGreaterThanOrEqual(6);
  });

  it('a plaintext Hello to a TLS peer port gets no Hello back, only Error(TlsRequired), and the connection closes', async () => {
    const peek = await peekWithPlaintextHello(cluster.nodes[0]!.peerPort);
    expect(peek.closed).toBe(true);
    expect(peek.bytes[4]).toBe(ERROR);
    expect(peek.bytes.readUInt16BE(9)).toBe(TLS_REQUIRED);
    expect(peek.bytes.subarray(13).toString()).toContain('this node requires TLS on peer links');
    expect(peek.bytes.length).toBe(9 + peek.bytes.readUInt32BE(0)); // that frame only
    await waitForLog(cluster.nodes[0]!, 'peer refused: TLS is on on one side only');
  });

  it('(the control: a node without TLS answers the same bytes with its Hello)', async () => {
    let plain: RunningServer | null = null;
    try {
      plain = await startDaemon(['--peer-listen', '127.0.0.1:0', '--cluster-secret', 'integration-test-cluster-secret', '--node-id', 'plain-control']);
      const listening = plain.logs.find((line) => line.msg === 'listening' && line.transport === 'peer');
      const peek = await peekWithPlaintextHello(Number(listening!.port));
      expect(peek.bytes[4]).toBe(HELLO);
      expect(peek.bytes.includes(Buffer.from('plain-control'))).toBe(true);
    } finally {
      await plain?.stop('SIGKILL');
    }
  });

  it('refuses a node whose certificate comes from another CA: logged on both sides, never a member', async () => {
    // The outsider trusts the cluster's CA, and knows the secret: only its certificate is wrong.
    // It never joins, so it never serves: its client port stays closed; its members are read from its /metrics.
    const outsider = await startOutsiderNode('outsider', cluster.nodes, { perNodeArgs: ({ id }) => tlsArgs(id, 'other-ca') });
    extraNodes.push(outsider);
    // Each seed refuses the outsider's certificate; the outsider learns it as a dropped link.
    for (const node of cluster.nodes) {
      const refusal = await waitForLog(node, 'peer refused: TLS handshake failed');
      expect(refusal.detail, node.id).toMatch(/the peer's certificate was refused \(\w+\): it must chain to this node's --peer-tls-ca/);
    }
    const ownSide = await waitForLog(outsider, /^peer refused: TLS/);
    expect(ownSide.detail).toMatch(/does not trust this node's certificate|certificate was refused/);
    // A fixed wait: what is checked is that the outsider does NOT become a member in that time.
    await sleep(500);
    for (const node of cluster.nodes) expect(Object.keys(await members(node)), node.id).not.toContain('outsider');
    expect(Object.keys((await scrapeMetrics(outsider)).members)).toEqual(['outsider']);
  });

  it('refuses a node without TLS: it is told TLS is required, and never becomes a member', async () => {
    const plain = await startOutsiderNode('plain', cluster.nodes);
    extraNodes.push(plain);
    const told = await waitForLog(plain, 'peer refused our handshake');
    expect(told.detail).toMatch(new RegExp(`^code ${TLS_REQUIRED}: this node requires TLS on peer links; TLS is on on one side only`));
    // A fixed wait: what is checked is that the plain node does NOT become a member in that time.
    await sleep(500);
    for (const node of cluster.nodes) expect(Object.keys(await members(node)), node.id).not.toContain('plain');
    expect(Object.keys((await scrapeMetrics(plain)).members)).toEqual(['plain']);
    expect([...(await scrapeMetrics(plain)).series.keys()].find((name) => name.startsWith('session_cluster_info{'))).toContain('peer_tls="off"');
  });

  it('nothing crashed', () => {
    for (const node of cluster.nodes) {
      expect(node.running, node.describeExit()).toBe(true);
      expect(node.logs.filter((line) => Number(line.level) >= 50 || line.raw !== undefined), node.id).toEqual([]);
    }
  });
});

describe('unusable TLS settings stop the daemon at start (exit 2)', () => {
  const run = (args: string[]) => execa(daemonBin, ['start', '--listen', '127.0.0.1:0', '--cluster-secret', 'a-secret-of-16-chars', ...args], {
    reject: false, timeout: 10000, env: { SESSION_CLUSTER_SECRET: undefined },
  });

  it('only some of the three files', async () => {
    const [, cert, , key] = tlsArgs('partial');
    const result = await run(['--peer-listen', '127.0.0.1:0', '--peer-tls-cert', cert!, '--peer-tls-key', key!]);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain('peer TLS needs --peer-tls-cert, --peer-tls-key and --peer-tls-ca together');
    expect(result.stderr).toContain('--peer-tls-ca (peerTlsCa) missing');
  });

  it('an unreadable file or one that is not PEM, naming the flag', async () => {
    const args = tlsArgs('unreadable');
    const missing = await run(['--peer-listen', '127.0.0.1:0', ...args.slice(0, 4), '--peer-tls-ca', `${certificates.dir}/no-such-ca.pem`]);
    expect(missing.exitCode).toBe(2);
    expect(missing.stderr).toMatch(/^session-cluster: --peer-tls-ca: cannot read .*no-such-ca\.pem: ENOENT/);
    const notPem = await run(['--peer-listen', '127.0.0.1:0', '--peer-tls-cert', args[3]!, ...args.slice(2)]);
    expect(notPem.exitCode).toBe(2);
    expect(notPem.stderr).toContain('--peer-tls-cert: ');
    expect(notPem.stderr).toContain('holds no PEM certificate');
  });

  it('TLS without --peer-listen', async () => {
    const result = await run(tlsArgs('no-listen'));
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain('which need --peer-listen (peerListen)');
  });
});

/** The first log line of `node` whose msg matches, waiting up to `timeoutMs`. */
async function waitForLog(node: ClusterNode, msg: string | RegExp, timeoutMs = 10_000): Promise<Record<string, unknown>> {
  await waitFor(() => node.logsMatching(msg).length > 0, {
    timeoutMs, intervalMs: 50, what: () => `${node.id} to log ${String(msg)}; ${node.describeExit()}`,
  });
  return node.logsMatching(msg)[0]!;
}
