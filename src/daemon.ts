/**
 * The composition root: the only place that builds and wires the daemon's parts.
 */
import { readFileSync } from 'node:fs';
import { Executor } from './command/executor.js';
import type { StatsSource } from './command/stats.js';
import type { Settings } from './config.js';
import type { Logger } from './log.js';
import { ClientListeners } from './server/listeners.js';
import { ServerCounters } from './server/server-counters.js';
import { Output } from './protocol/output.js';
import { MemoryStore } from './store/memory-store.js';
import { ThrottledWarning } from './throttled-log.js';
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { Execute } from './protocol/handler.js';
import { Router } from './router.js';
import { ClusterView } from './cluster/cluster-view.js';
import { Membership } from './cluster/membership/membership.js';
import { clockIncarnation } from './cluster/membership/clock.js';
import { PeerServer } from './cluster/peer/peer-server.js';
import { PeerPool } from './cluster/peer/peer-pool.js';
import { PeerCounters } from './cluster/peer/peer-counters.js';
import { PeerTls } from './cluster/peer/peer-tls.js';
import { formatPeerAddress } from './cluster/peer/address.js';
import { PeerMembershipTransport } from './cluster/peer/membership-transport.js';
import { Opcode } from './cluster/peer/opcodes.js';
import { decodeCommand, encodeReply } from './cluster/peer/command-codec.js';
import { Replicator } from './cluster/replication/replicator.js';
import { SessionIds } from './cluster/session-ids.js';
import { MemberState } from './cluster/types.js';
import { ReservedKeys } from './reserved-keys.js';
import { MetricsServer } from './server/metrics.js';

/** How often expired items are reclaimed in the background, and how many are looked at each time. */
const SWEEP_INTERVAL_MS = 1000;
const SWEEP_BUDGET = 50_000;
/** Repeating warnings (evictions, refused connections) are logged at most this often; stats count each. */
const WARNING_INTERVAL_MS = 10_000;

export const PACKAGE_VERSION: string = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

/**
 * The version string of `version` and `stats`: memcached's version first, since clients such as
 * libmemcached read it to decide which commands the server has, then ours.
 */
export const WIRE_VERSION = `1.6.18-session-cluster-${PACKAGE_VERSION}`;

export interface Daemon {
  stop(): Promise<void>;
}

export async function startDaemon(settings: Settings, log: Logger): Promise<Daemon> {
  // With --peer-listen on port 0 and no --node-id there is no stable port to derive an id from:
  // the node gets a fresh id each start (tests name their nodes; production pins the port).
  const nodeId = settings.peerListen === null ? 'local' : (settings.nodeId ?? `${hostname().replace(/[^A-Za-z0-9_.-]/g, '-').slice(0, 50)}-${randomBytes(4).toString('hex')}`);
  const evictions: ThrottledWarning = new ThrottledWarning(log,
    'evicted least recently used items to stay under --memory-limit; raise it to keep sessions',
    () => ({ totalEvictions: store.counters.evictions, memoryLimit: settings.memoryLimit }), WARNING_INTERVAL_MS);
  const store = new MemoryStore({
    memoryLimit: settings.memoryLimit,
    maxItemSize: settings.maxItemSize,
    onEvict: (count) => evictions.add(count),
    nodeId,
    rememberDeletions: settings.peerListen !== null,
  });
  const counters = new ServerCounters();
  const startedAtMs = Date.now();
  let listeners: ClientListeners | null = null;
  const stats: StatsSource = {
    startedAtMs,
    get currConnections() { return counters.currConnections; },
    get totalConnections() { return counters.totalConnections; },
    get rejectedConnections() { return counters.rejectedConnections; },
    get bytesRead() { return counters.bytesRead; },
    get bytesWritten() { return counters.bytesWritten; },
    maxConnections: settings.maxConnections,
    get tcpPort() { return listeners?.tcpPort ?? 0; },
    socketPath: settings.socket,
    clusterStats: () => [
      ['session_ids_minted', String(sessionIds.counters.minted)],
      ['session_ids_rehomed', String(sessionIds.counters.rehomed)],
      ...(cluster?.stats() ?? []),
    ],
  };
  const executor = new Executor({ store, stats, version: WIRE_VERSION });
  let cluster: ClusterNode | null = null;
  if (settings.peerListen !== null) {
    cluster = await startClusterNode({ settings, nodeId, store, executor, log });
  }
  // A single node mints ids too (the php-client works the same everywhere). Without a cluster
  // secret it signs them with a key of its own, which is fine: its sessions live in its memory
  // and end with the process anyway.
  const sessionIds = cluster?.sessionIds ?? singleNodeSessionIds(nodeId, settings.clusterSecret ?? randomBytes(32));
  const reservedKeys = new ReservedKeys(sessionIds, nodeId);
  const execute: Execute = reservedKeys.wrap(cluster === null ? (command) => executor.execute(command) : cluster.execute);
  listeners = new ClientListeners(
    { execute, limits: { maxItemSize: settings.maxItemSize }, counters, output: new Output() },
    {
      maxConnections: settings.maxConnections,
      log,
      refused: new ThrottledWarning(log, 'connections refused: --max-connections reached',
        () => ({ maxConnections: settings.maxConnections, totalRefused: counters.rejectedConnections }), WARNING_INTERVAL_MS),
    },
  );
  const sweeper = setInterval(() => store.sweepExpired(Date.now(), SWEEP_BUDGET), SWEEP_INTERVAL_MS);
  sweeper.unref();

  // A cluster node takes back its sessions before it accepts PHP's connections (DESIGN.md,
  // "Graceful startup"): PHP gets a refused connection rather than a request held past its timeout.
  if (cluster !== null) await cluster.start();
  // The same figures as `stats`, through the same path (cluster figures included).
  const metrics = settings.metricsListen === null ? null : new MetricsServer(() => {
    const reply = executor.execute({ kind: 'stats', args: [] });
    return reply.kind === 'stats' ? reply.entries : [];
  }, log);
  try {
    await listeners.listenTcp(settings.listen.host, settings.listen.port);
    if (settings.socket !== null) await listeners.listenUnix(settings.socket, settings.socketMode);
    if (metrics !== null) await metrics.listen(settings.metricsListen!.host, settings.metricsListen!.port);
  } catch (error) {
    clearInterval(sweeper);
    await listeners.close();
    await metrics?.close();
    await cluster?.stop();
    throw error;
  }
  log.info({ version: PACKAGE_VERSION, maxItemSize: settings.maxItemSize, memoryLimit: settings.memoryLimit, maxConnections: settings.maxConnections }, 'ready');

  return {
    async stop() {
      clearInterval(sweeper);
      executor.close();
      await listeners!.close();
      await metrics?.close();
      await cluster?.stop();
      evictions.flush();
    },
  };
}

/** Session ids for a daemon without peers: it is the master of everything and names no backup. */
function singleNodeSessionIds(nodeId: string, secret: string | Uint8Array): SessionIds {
  const view = new ClusterView(nodeId, { secret });
  view.update([{ id: nodeId, peerAddress: '', state: MemberState.Alive, incarnation: 0 }]);
  return new SessionIds({ view, secret, loadOf: () => undefined });
}

interface ClusterNode {
  execute: Execute;
  sessionIds: SessionIds;
  /** starts membership (joins through the seeds, heartbeats) and settles once caught up */
  start(): Promise<void>;
  stop(): Promise<void>;
  stats(): Array<[string, string]>;
}

interface ClusterParts {
  settings: Settings;
  nodeId: string;
  store: MemoryStore;
  executor: Executor;
  log: Logger;
}

/**
 * Cluster mode: the peer listener and links, membership, the view of owners, replication and
 * the router, wired together. Membership events rebuild the view and trigger re-replication.
 */
async function startClusterNode({ settings, nodeId, store, executor, log }: ClusterParts): Promise<ClusterNode> {
  const secret = settings.clusterSecret!;
  const clusterLog = log.child({ node: nodeId });
  // Config checked that the three files are all there and make a TLS context (config.ts).
  const tls = settings.peerTlsCert === null ? null
    : new PeerTls({ cert: settings.peerTlsCert.pem, key: settings.peerTlsKey!.pem, ca: settings.peerTlsCa!.pem });
  // One set of peer counters for both directions, shown in `stats` as cluster_peer_*.
  const peerCounters = new PeerCounters();
  const server = new PeerServer({ nodeId, secret, log: clusterLog, maxFrameSize: settings.maxItemSize + 64 * 1024, tls, counters: peerCounters });
  // A peer that does not answer within the failure timeout is as good as dead for one request.
  const requestTimeoutMs = Math.max(settings.failureTimeoutMs, 200);
  const pool = new PeerPool({ nodeId, secret, log: clusterLog, maxFrameSize: settings.maxItemSize + 64 * 1024, requestTimeoutMs, tls, counters: peerCounters });
  const endpoint = settings.peerListen!;
  const bound = await server.listen(endpoint.host, endpoint.port);
  // What the other nodes dial: --peer-advertise, else --peer-listen as written with the bound port
  // (config refuses a wildcard --peer-listen without --peer-advertise).
  const advertised = settings.peerAdvertise;
  const peerAddress = advertised !== null ? formatPeerAddress(advertised.host, advertised.port) : formatPeerAddress(endpoint.host, bound.port);
  log.info({ transport: 'peer', host: bound.address, port: bound.port, node: nodeId, advertised: peerAddress, tls: tls !== null }, 'listening');

  const view = new ClusterView(nodeId, { secret, sessionPrefix: settings.sessionPrefix });
  const replicator = new Replicator({ store, view, pool, log: clusterLog, requestTimeoutMs, giveUpAfterMs: settings.failureTimeoutMs * 3 });
  // A forwarded command may wait for a busy master longer than one heartbeat round; a crashed
  // master fails it at once (the connection resets), a stopped one after this long.
  const forwardTimeoutMs = Math.max(settings.failureTimeoutMs * 2, 2000);
  const router = new Router({ executor, view, pool, replicator, replication: settings.replication, log: clusterLog, forwardTimeoutMs });
  const transport = new PeerMembershipTransport(nodeId, pool, server, clusterLog);
  const membership = new Membership({
    self: { id: nodeId, peerAddress, incarnation: clockIncarnation() },
    seeds: settings.peers,
    transport,
    log,
    heartbeatMs: settings.heartbeatMs,
    failureTimeoutMs: settings.failureTimeoutMs,
    load: () => store.itemCount,
  });
  const sessionIds = new SessionIds({ view, secret, loadOf: (member) => membership.loadOf(member) });
  let failovers = 0;
  const refresh = () => {
    view.update(membership.members());
    replicator.scheduleScan();
  };
  view.update(membership.members());
  // Membership logs each change itself (joined, suspected, declared dead, left); here the view follows.
  // A join, death or leave changes who owns what: every item goes to its owners again. An update
  // (alive <-> suspect, or a refutation raising the incarnation) does not: suspects keep their
  // sessions, so a member that flaps under load costs no copying. A member that restarted without
  // being declared dead took its sessions back itself (catch-up), and a copy that could not be
  // delivered meanwhile schedules its own repair (Replicator: "replication gave up").
  membership.on('join', refresh);
  membership.on('update', () => view.update(membership.members()));
  membership.on('dead', () => { failovers++; refresh(); });
  membership.on('leave', refresh);
  // A departed member's replacement is forgotten with it (24 h on): the sessions it named move.
  membership.on('forget', refresh);
  /**
   * Takes back what this node owns before it serves sessions again: first it learns the members
   * (joined, or the join timed out: it is alone), then every known peer hands over.
   */
  const catchUp = (reason: string): Promise<void> => {
    clusterLog.info({ reason }, 'catching up: holding session requests until peers hand over this node\'s sessions');
    const started = Date.now();
    const done = waitForJoin(membership, settings.failureTimeoutMs * 2).then(() => {
      const addresses = [...new Set([...settings.peers, ...membership.members().map((m) => m.peerAddress)])].filter((address) => address !== peerAddress);
      return replicator.catchUp(addresses, peerAddress);
    }).then(() => {
      clusterLog.info({ reason, items: store.itemCount, ms: Date.now() - started }, 'caught up: serving');
    });
    router.holdUntil(done);
    return done;
  };
  membership.on('stall', (gapMs) => {
    if (gapMs < settings.failureTimeoutMs) return;
    // Silent long enough to have been declared dead: others took over and may have newer writes,
    // and deletions this node missed. Its copies cannot be trusted: drop them and take back the
    // current ones (every session has its other copy elsewhere).
    store.flush();
    void catchUp('stalled past the failure timeout');
  });

  /**
   * Graceful shutdown (DESIGN.md, "Cluster mechanics"): with PHP's connections already closed,
   * hand every session to the owners it has once this node is gone, wait for their
   * acknowledgements (up to --drain-timeout-ms), and name the least-loaded live node as the
   * replacement that serves the sessions whose minted ids name this node. What a drain cut short
   * did not copy still has its other copy, which re-replication restores after the leave.
   */
  const drain = async (): Promise<string | null> => {
    if (settings.drainTimeoutMs === 0) return null;
    const replacement = sessionIds.leastLoadedOther();
    if (replacement === null) {
      if (store.itemCount > 0) clusterLog.warn({ items: store.itemCount }, 'draining: no other live node to hand sessions to; they end with this node');
      return null;
    }
    view.leave(replacement);
    const started = Date.now();
    const items = store.itemCount;
    clusterLog.info({ items, replacement }, 'draining: handing sessions to their new owners before leaving');
    let timer: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([
      replicator.handOverAll().then((complete) => (complete ? 'complete' : 'incomplete')),
      new Promise<'timeout'>((resolve) => { timer = setTimeout(() => resolve('timeout'), settings.drainTimeoutMs); }),
    ]);
    clearTimeout(timer);
    const fields = { items, replacement, ms: Date.now() - started };
    if (outcome === 'complete') clusterLog.info(fields, 'drained: every session acknowledged by its new owners');
    else clusterLog.warn({ ...fields, outcome, drainTimeoutMs: settings.drainTimeoutMs }, 'drain cut short: sessions not acknowledged keep their other copy, restored by re-replication');
    return replacement;
  };

  server.handle(Opcode.Forward, (frame, reply) => {
    const answer = router.handleForward(decodeCommand(frame.payload));
    if (answer instanceof Promise) void answer.then((settled) => reply(Opcode.ForwardReply, encodeReply(settled)));
    else reply(Opcode.ForwardReply, encodeReply(answer));
  });
  server.handle(Opcode.Replicate, replicator.handleReplicate);
  server.handle(Opcode.Handoff, replicator.handleHandoff);

  return {
    execute: (command) => router.execute(command),
    sessionIds,
    start: () => {
      membership.start();
      // A node that starts (or restarts empty) takes no ownership before it has caught up.
      return catchUp('start');
    },
    async stop() {
      const replacement = await drain();
      replicator.stop();
      membership.leave(replacement ?? undefined);
      // Give the leave a moment to go out before the links close.
      await new Promise((resolve) => setTimeout(resolve, Math.min(settings.heartbeatMs, 100)));
      membership.stop();
      pool.close();
      await server.close();
    },
    stats: () => [
      ['cluster_node_id', nodeId],
      ['cluster_members', membership.members().map((m) => `${m.id}:${m.state}`).join(',')],
      ['cluster_replication', settings.replication],
      ['cluster_peer_tls', tls === null ? 'off' : 'on'],
      ['cluster_forwarded', String(router.counters.forwarded)],
      ['cluster_forwarded_reads', String(router.counters.forwardedReads)],
      ['cluster_forward_failures', String(router.counters.forwardFailures)],
      ['cluster_forward_retries', String(router.counters.forwardRetries)],
      ['cluster_replicated', String(replicator.counters.replicated)],
      ['cluster_rereplicated', String(replicator.counters.rereplicated)],
      ['cluster_rereplication_skipped', String(replicator.counters.rereplicationSkipped)],
      ['cluster_replicas_applied', String(replicator.counters.applied)],
      ['cluster_replication_failures', String(replicator.counters.failed)],
      ['cluster_failovers', String(failovers)],
      ['cluster_handoff_batches', String(replicator.counters.handedOver)],
      ['cluster_catch_ups', String(replicator.counters.caughtUp)],
      ['cluster_peer_links_up', String(peerCounters.linksUp)],
      ['cluster_peer_connections_up', String(peerCounters.connectionsUp)],
      ['cluster_peer_connect_failures', String(peerCounters.connectFailures)],
      ['cluster_peer_link_drops', String(peerCounters.linkDrops)],
      ['cluster_peer_auth_refused', String(peerCounters.authRefused)],
      ['cluster_peer_refused_by_peer', String(peerCounters.refusedByPeer)],
      ['cluster_peer_tls_refused', String(peerCounters.tlsRefused)],
      ['cluster_peer_request_timeouts', String(peerCounters.requestTimeouts)],
      ['cluster_peer_sends_dropped', String(peerCounters.sendsDropped)],
      ['cluster_peer_bytes_sent', String(peerCounters.bytesSent)],
      ['cluster_peer_bytes_received', String(peerCounters.bytesReceived)],
    ],
  };
}

/** Settles once membership has joined a cluster, or after `timeoutMs` (no seed answered: alone). */
function waitForJoin(membership: Membership, timeoutMs: number): Promise<void> {
  return new Promise((resolve) => {
    const deadline = Date.now() + timeoutMs;
    const check = () => {
      if (membership.joined || Date.now() >= deadline) resolve();
      else setTimeout(check, 20).unref();
    };
    check();
  });
}
