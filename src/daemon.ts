/**
 * The composition root: the only place that builds and wires the daemon's parts. Nothing here
 * decides anything: the cluster's lifecycle is ClusterNode's, each statistic is declared where it
 * is counted (stats-catalog.ts orders them), each setting in config.ts's table.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { formatEndpoint } from './address.js';
import { type AdminCluster, AdminCommands } from './admin/admin-commands.js';
import { ClusterNode, pathsOf } from './cluster/cluster-node.js';
import { ClusterView } from './cluster/cluster-view.js';
import { clockIncarnation } from './cluster/membership/clock.js';
import { Membership } from './cluster/membership/membership.js';
import { PeerMembershipTransport } from './cluster/peer/membership-transport.js';
import { PeerCounters } from './cluster/peer/peer-counters.js';
import { PeerLinks } from './cluster/peer/peer-links.js';
import { PeerPool } from './cluster/peer/peer-pool.js';
import { PeerServer } from './cluster/peer/peer-server.js';
import { PeerTls } from './cluster/peer/peer-tls.js';
import { Replicator } from './cluster/replication/replicator.js';
import { Quorum } from './cluster/quorum.js';
import { Router } from './cluster/router.js';
import { SessionIds } from './cluster/session-ids.js';
import { MemberState } from './cluster/types.js';
import { Executor } from './command/executor.js';
import type { Settings } from './config.js';
import type { Logger } from './log.js';
import { randomNodeId } from './node-id.js';
import type { Execute } from './protocol/handler.js';
import { Output } from './protocol/output.js';
import { ReservedKeys } from './reserved-keys.js';
import type { LockHandoff } from './session-locks/lock-handoff.js';
import { DeadNodeLocks } from './session-locks/dead-node-locks.js';
import { letRequestsFinish, SessionLocks } from './session-locks/session-locks.js';
import { ClientAuth } from './security/client-auth.js';
import { warnIfExposed } from './security/exposure.js';
import { ClientListeners } from './server/listeners.js';
import { MetricsServer } from './server/metrics.js';
import { ReplyBatch } from './server/reply-batch.js';
import { ServerCounters } from './server/server-counters.js';
import { SETTINGS_SECTIONS, STATS_SECTIONS, type StatSources, bindSections } from './stats-catalog.js';
import { StatsRegistry } from './stats/registry.js';
import { DiskStorage } from './store/disk/disk-storage.js';
import { afterWrite, whenDurable } from './store/durability.js';
import { MemoryStore } from './store/memory-store.js';
import { ThrottledWarning } from './throttled-log.js';

/** How often expired items are reclaimed in the background, and how many are looked at each time. */
const SWEEP_INTERVAL_MS = 1000;
const SWEEP_BUDGET = 50_000;
/**
 * A peer's leave message and the drop of its links travel on different connections: a drop is
 * warned about only if no leave came within this long (peer-link.ts, leaveGraceMs).
 */
const LEAVE_GRACE_MS = 500;
/** Repeating warnings (evictions, refused connections) are logged at most this often; stats count each. */
const WARNING_INTERVAL_MS = 10_000;

export const PACKAGE_VERSION: string = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

/**
 * The version string of `version` and `stats`: memcached's version first, since clients such as
 * libmemcached read it to decide which commands the server has, then ours.
 */
export const WIRE_VERSION = `1.6.18-session-cluster-${PACKAGE_VERSION}`;

export interface Daemon {
  /** the TCP port PHP connects to (the one bound, when --listen asked for port 0) */
  readonly tcpPort: number;
  stop(): Promise<void>;
}

/**
 * Starts the daemon; settles once it serves. `abort` abandons a start still waiting for the
 * cluster (a signal meanwhile): it then rejects with a StartAbortedError, everything closed.
 */
export async function startDaemon(settings: Settings, log: Logger, abort?: AbortSignal): Promise<Daemon> {
  const clustered = settings.peerListen !== null;
  const nodeId = clustered ? (settings.nodeId ?? randomNodeId(hostname())) : 'local';
  const evictions: ThrottledWarning = new ThrottledWarning(log,
    'evicted least recently used items to stay under --memory-limit; raise it to keep sessions',
    () => ({ totalEvictions: store.counters.evictions, memoryLimit: settings.memoryLimit }), WARNING_INTERVAL_MS);
  const store = new MemoryStore({
    memoryLimit: settings.memoryLimit,
    maxItemSize: settings.maxItemSize,
    onEvict: (count) => evictions.add(count),
    nodeId,
    rememberDeletions: clustered,
  });
  // Disk storage loads what the data directory holds before anything else: no port is open, so
  // nobody is served until every session is back (docs/architecture.md, "Disk storage").
  const disk = settings.dataDir === null ? null : await DiskStorage.open({
    dir: settings.dataDir, fsync: settings.fsync, diskLimit: settings.diskLimit, recoverTruncate: settings.recoverTruncate, store, log,
  });
  const counters = new ServerCounters();
  const stats = new StatsRegistry();
  const settingsStats = new StatsRegistry();
  const executor = new Executor({
    store, version: WIRE_VERSION, stats, settings: settingsStats, disableFlush: settings.disableFlush, disableCachedump: settings.disableCachedump,
    ...(disk === null ? {} : { refuseWrites: () => disk.refusal(), onRefused: () => disk.refused() }),
  });
  let listeners: ClientListeners | null = null;
  let cluster: BuiltCluster | null = null;
  const auth = settings.authFile === null ? null : new ClientAuth(settings.authFile, log);
  const locks = new SessionLocks({
    sessionPrefix: settings.sessionPrefix, log, lockWaitMs: settings.lockWaitMs,
    // The handoff runs on each lock's master, which holds the lock item.
    lockExpiresAt: (key) => store.peek(key, Date.now())?.expiresAt ?? null,
  });
  // The operator's stats groups (admin-commands.ts): asked here, or by another node for a
  // `stats node` question, which the router hands to nodeCommands.
  let admin: AdminCommands | null = null;
  const nodeCommands: Execute = (command) => admin!.execute(command, (inner) => executor.execute(inner));
  try {
    cluster = clustered ? await buildClusterNode(settings, nodeId, store, executor, disk, locks, nodeCommands, log) : null;
  } catch (error) {
    await disk?.close();
    throw error;
  }
  // A single node mints ids too (the php-client works the same everywhere). Without a cluster
  // secret it signs them with a key of its own, which is fine: its sessions live in its memory
  // and end with the process anyway.
  const sessionIds = cluster?.sessionIds ?? singleNodeSessionIds(nodeId, settings.clusterSecret ?? randomBytes(32));
  const sources: Partial<StatSources> = {
    process: { startedAtMs: Date.now(), version: WIRE_VERSION, now: Date.now },
    server: { counters, maxConnections: settings.maxConnections, auth: auth?.counters },
    commands: executor.counters,
    storeCounters: store.counters,
    store,
    sessionIds: sessionIds.counters,
    storage: { storage: disk === null ? 'memory' : 'disk', disk },
    locks,
    ...cluster?.statSources,
  };
  bindSections(stats, STATS_SECTIONS, sources);
  bindSections(settingsStats, SETTINGS_SECTIONS, {
    memcached: {
      store,
      maxConnections: settings.maxConnections,
      get tcpPort() { return listeners?.tcpPort ?? 0; },
      socketPath: settings.socket,
      get verbosity() { return executor.verbosity; },
    },
    settings,
  });
  const reservedKeys = new ReservedKeys(sessionIds, nodeId);
  admin = new AdminCommands({
    store, nodeId, sessionPrefix: settings.sessionPrefix, cluster: cluster?.admin ?? null, disableListings: settings.disableCachedump,
    holdsLock: (key) => locks.holds(key),
  });
  const execute: Execute = reservedKeys.wrap(cluster !== null ? cluster.node.execute
    : withAdmin(admin, withHandoff(locks.handoff, disk === null ? (command) => executor.execute(command) : executeOnDisk(executor, disk))));
  locks.releaseThrough(execute);
  listeners = new ClientListeners(
    {
      execute, limits: { maxItemSize: settings.maxItemSize, sasl: auth !== null }, counters, output: new Output(), locks,
      ...(auth === null ? {} : { auth }),
      ...(disk === null ? {} : { replies: new ReplyBatch(() => disk.recordsWaiting, () => disk.writePending()) }),
    },
    {
      maxConnections: settings.maxConnections,
      log,
      refused: new ThrottledWarning(log, 'connections refused: --max-connections reached',
        () => ({ maxConnections: settings.maxConnections, totalRefused: counters.rejectedConnections }), WARNING_INTERVAL_MS),
      commandTimeoutMs: settings.commandTimeoutMs,
      timedOut: new ThrottledWarning(log, 'closed client connections stuck in the middle of a request: --command-timeout-ms passed',
        () => ({ commandTimeoutMs: settings.commandTimeoutMs, totalClosed: counters.commandTimeouts }), WARNING_INTERVAL_MS),
      reclaimed: new ThrottledWarning(log, 'closed client connections stuck in the middle of a request to admit new ones: --max-connections reached',
        () => ({ maxConnections: settings.maxConnections, totalReclaimed: counters.reclaimedConnections }), WARNING_INTERVAL_MS),
      allow: settings.allow,
      notAllowed: new ThrottledWarning(log, 'closed client connections from addresses not in --allow',
        () => ({ allow: settings.allow?.toString(), last: listeners?.lastNotAllowed, totalClosed: counters.notAllowedConnections }), WARNING_INTERVAL_MS),
      acceptFailed: new ThrottledWarning(log, 'accepting client connections failed',
        () => ({ last: listeners?.lastAcceptError }), WARNING_INTERVAL_MS),
    },
  );
  const sweeper = setInterval(() => store.sweepExpired(Date.now(), SWEEP_BUDGET), SWEEP_INTERVAL_MS);
  sweeper.unref();

  /** set as a stop begins: /ready and /health answer 503 while the requests in progress finish */
  let stopping = false;
  const readiness = () => {
    if (stopping) return { ready: false, why: 'stopping: letting the requests in progress finish' };
    return cluster === null ? { ready: true, why: '' } : { ready: cluster.node.ready, why: cluster.node.notReadyBecause() };
  };
  const metrics = settings.metricsListen === null ? null : new MetricsServer(() => stats.samples(), log, readiness);
  try {
    // The HTTP listener first: while the node joins its cluster and catches up, /health and
    // /ready answer 503 with the reason, and /metrics shows the peer refusals.
    if (metrics !== null) await metrics.listen(settings.metricsListen!.host, settings.metricsListen!.port);
    // A cluster node joins its cluster and takes back its sessions before it accepts PHP's
    // connections (docs/architecture.md, "Graceful startup"): PHP gets a refused connection
    // rather than a request held past its timeout, or served by a node that is not in the cluster.
    if (cluster !== null) await cluster.node.start(abort);
    await listeners.listenTcp(settings.listen.host, settings.listen.port);
    if (settings.socket !== null) await listeners.listenUnix(settings.socket, settings.socketMode);
  } catch (error) {
    clearInterval(sweeper);
    await listeners.close();
    await metrics?.close();
    await cluster?.node.stop();
    await disk?.close();
    throw error;
  }
  warnIfExposed(settings, log);
  log.info({
    version: PACKAGE_VERSION, maxItemSize: settings.maxItemSize, memoryLimit: settings.memoryLimit, maxConnections: settings.maxConnections,
    storage: disk === null ? 'memory' : 'disk', ...(disk === null ? {} : { dataDir: settings.dataDir, fsync: settings.fsync, items: store.itemCount }),
  }, 'ready');

  return {
    tcpPort: listeners.tcpPort,
    async stop() {
      clearInterval(sweeper);
      stopping = true;
      // A stop's first step (docs/architecture.md, "Graceful shutdown"): no new connections, and the
      // PHP requests in progress get up to --stop-grace-ms to write (and release), against a node
      // that still serves and replicates them: a write cut off here would be a count the user saw
      // and the session never kept.
      await letRequestsFinish(locks, (graceMs) => listeners!.finish(graceMs), settings.stopGraceMs, log, {
        waiting: 'stopping: letting the requests in progress finish',
        cutShort: 'requests still in progress after --stop-grace-ms: their connections close and their session locks are released; what they had not written is lost',
      });
      executor.close();
      await listeners!.close();
      await metrics?.close();
      await cluster?.node.stop();
      // Last: a draining cluster node still changes its store until it has left.
      await disk?.close();
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

interface BuiltCluster {
  node: ClusterNode;
  sessionIds: SessionIds;
  admin: AdminCluster;
  statSources: Partial<StatSources>;
}

/**
 * Cluster mode: the peer listener and links, membership, the view of owners, replication, the
 * router and the node that runs them, built and wired. The peer listener is opened here, since
 * the address the node announces needs the port it bound.
 */
/** A single node's commands, with the operator's stats groups answered first. */
function withAdmin(admin: AdminCommands, execute: Execute): Execute {
  return (command) => admin.execute(command, execute);
}

/** A single node's commands, with lock handoff around them when it is on (--lock-wait-ms). */
function withHandoff(handoff: LockHandoff | null, execute: Execute): Execute {
  return handoff === null ? execute : (command) => handoff.execute(command, execute);
}

/**
 * A single node with disk storage: values on disk only (memory as a cache) are read back before
 * the command runs, and its reply waits for its log records as the --fsync policy says.
 */
function executeOnDisk(executor: Executor, disk: DiskStorage): Execute {
  const execute: Execute = (command) => {
    const reading = executor.readBack(command);
    if (reading !== null) return reading.then(() => execute(command));
    const seqBefore = disk.nextSeq;
    return whenDurable(executor.execute(command), afterWrite(disk, seqBefore));
  };
  return execute;
}

async function buildClusterNode(
  settings: Settings, nodeId: string, store: MemoryStore, executor: Executor, disk: DiskStorage | null, locks: SessionLocks, nodeCommands: Execute, log: Logger,
): Promise<BuiltCluster> {
  const handoff = locks.handoff;
  const secret = settings.clusterSecret!;
  const clusterLog = log.child({ node: nodeId });
  // Config checked that the three files are all there and make a TLS context (config.ts).
  const tls = settings.peerTlsCert === null ? null
    : new PeerTls({ cert: settings.peerTlsCert.pem, key: settings.peerTlsKey!.pem, ca: settings.peerTlsCa!.pem });
  // One set of peer counters for both directions, shown in `stats` as cluster_peer_*.
  const peerCounters = new PeerCounters();
  const maxFrameSize = settings.maxItemSize + 64 * 1024;
  const server = new PeerServer({ nodeId, secret, log: clusterLog, maxFrameSize, tls, counters: peerCounters });
  // A peer that does not answer within the failure timeout is as good as dead for one request.
  const requestTimeoutMs = Math.max(settings.failureTimeoutMs, 200);
  const pool = new PeerPool({ nodeId, secret, log: clusterLog, maxFrameSize, requestTimeoutMs, tls, counters: peerCounters, leaveGraceMs: LEAVE_GRACE_MS });
  const endpoint = settings.peerListen!;
  const bound = await server.listen(endpoint.host, endpoint.port);
  // What the other nodes dial: --peer-advertise, else --peer-listen as written with the bound port
  // (config refuses a wildcard --peer-listen without --peer-advertise).
  const advertised = settings.peerAdvertise;
  const peerAddress = advertised !== null ? formatEndpoint(advertised.host, advertised.port) : formatEndpoint(endpoint.host, bound.port);
  log.info({ transport: 'peer', host: bound.address, port: bound.port, node: nodeId, advertised: peerAddress, tls: tls !== null }, 'listening');

  const peers = new PeerLinks(pool, server);
  // The seeds this node joins through: --peers less its own address (membership skips it too).
  const seeds = settings.peers.filter((address) => address !== peerAddress);
  const membership = new Membership({
    self: { id: nodeId, peerAddress, incarnation: clockIncarnation() },
    seeds: settings.peers,
    transport: new PeerMembershipTransport(nodeId, pool, server, clusterLog),
    log,
    heartbeatMs: settings.heartbeatMs,
    failureTimeoutMs: settings.failureTimeoutMs,
    load: () => store.itemCount,
  });
  // A member that announced its leave closes its links: expected, not a warning (PeerLink.peerLeft).
  membership.on('leave', (member) => pool.departed(member.peerAddress));
  membership.on('join', (member) => pool.returned(member.peerAddress));
  // Deadlines of forwards and copies are judged by their sender's clock, as heartbeats measure it.
  const clocks = membership.clocks;
  const quorum = new Quorum(nodeId, settings.twoNodes);
  const view = new ClusterView(nodeId, { secret, sessionPrefix: settings.sessionPrefix });
  const durability = disk ?? undefined;
  const replicator = new Replicator({ store, view, peers, clocks, quorum, log: clusterLog, requestTimeoutMs, giveUpAfterMs: settings.failureTimeoutMs * 3, durability });
  // A forwarded command may wait for a busy master longer than one heartbeat round; a crashed
  // master fails it at once (the connection resets), a stopped one after this long.
  const forwardTimeoutMs = Math.max(settings.failureTimeoutMs * 2, 2000);
  const router = new Router({
    executor, view, peers, clocks, quorum, paths: pathsOf(membership, view), replicator, replication: settings.replication, log: clusterLog, forwardTimeoutMs, durability,
    handoff: handoff ?? undefined, nodeCommands,
  });
  const sessionIds = new SessionIds({ view, secret, loadOf: (member) => membership.loadOf(member) });
  const deadNodeLocks = new DeadNodeLocks({
    store, sessionPrefix: settings.sessionPrefix, log: clusterLog,
    mastersHere: (key) => view.owners(key).master?.id === nodeId,
    serving: () => quorum.ok,
    holdsHere: (key) => locks.holds(key),
    liveOthers: () => view.liveOthers(),
    askHeld: async (member, keys) => {
      const reply = await peers.forward({ id: member, address: view.addressOf(member) }, { kind: 'stats', args: ['locks', 'held', ...keys] }, { timeoutMs: requestTimeoutMs, validForMs: 0 });
      if (reply.kind === 'unknownStats') throw new Error('it does not know the question (an older version)');
      if (reply.kind !== 'stats') throw new Error(`it answered ${reply.kind === 'serverError' ? reply.message : reply.kind}`);
      return new Set(reply.entries.filter(([name]) => name === 'held').map(([, key]) => key));
    },
    release: (key, style, cas, since, deadNode) => locks.releaseOrphaned(key, style, cas, since, deadNode),
    // Past the forward timeout, the node a take came through has its answer, or gave up on it.
    settleMs: forwardTimeoutMs,
  });
  membership.on('dead', (member) => deadNodeLocks.memberDied(member.id));
  membership.on('stall', (gapMs) => {
    if (gapMs < settings.failureTimeoutMs) return;
    const closed = locks.abandonHolders();
    if (closed > 0) {
      clusterLog.warn({ connections: closed, gapMs: Math.round(gapMs) },
        'closed the client connections holding session locks: this node stalled past the failure timeout, and the other nodes may have released those locks');
    }
  });
  const node = new ClusterNode({
    peerAddress, seeds: settings.peers, store, view, membership, replicator, router, sessionIds, quorum, log: clusterLog,
    failureTimeoutMs: settings.failureTimeoutMs, heartbeatMs: settings.heartbeatMs, drainTimeoutMs: settings.drainTimeoutMs,
    joinTimeoutMs: settings.joinTimeoutMs, whyNotJoined: () => pool.whyUnanswered(seeds),
    requests: locks, stopGraceMs: settings.stopGraceMs,
    closeLinks: async () => {
      deadNodeLocks.stop();
      pool.close();
      await server.close();
    },
  });
  const admin: AdminCluster = {
    self: nodeId,
    members: () => membership.members(),
    owners: (key) => view.owners(key),
    // A listing page or a count over many sessions may take a moment on a busy node.
    ask: (member, args) => peers.forward(member, { kind: 'stats', args }, { timeoutMs: Math.max(10_000, requestTimeoutMs), validForMs: 0 }),
    copiesPending: () => replicator.pending,
    drain: () => node.drainNow(),
    drainStatus: () => node.drainStatus,
    undrain: () => node.undrain(),
  };
  return {
    node,
    sessionIds,
    admin,
    statSources: {
      cluster: { nodeId, replication: settings.replication, peerTls: tls !== null, members: () => membership.members(), node, quorum },
      router: router.counters,
      replication: replicator.counters,
      membership: membership.stats,
      clocks,
      peers: peerCounters,
    },
  };
}
