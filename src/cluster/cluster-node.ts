/**
 * A cluster node's lifecycle (docs/architecture.md, "Graceful startup" and "Graceful shutdown"):
 * join through the seeds, catch up (take back the sessions this node owns before serving them),
 * serve, and on the way out drain (hand every session to its next owners) and leave. Membership
 * events keep the view of owners current and start re-replication; a stall long enough to have
 * been declared dead makes the node drop its copies and catch up again.
 *
 * Everything it drives is built by the composition root and handed in (membership, view,
 * replicator, router, session ids), so its unit tests run it over in-memory transports.
 */
import { EventEmitter } from 'node:events';
import { JoinError, StartAbortedError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Command, Reply } from '../protocol/types.js';
import { letRequestsFinish, type RequestsInProgress } from '../session-locks/session-locks.js';
import type { MemoryStore } from '../store/memory-store.js';
import type { Stat } from '../stats/registry.js';
import type { ClusterView } from './cluster-view.js';
import { connectedSet } from './membership/connectivity.js';
import type { Membership } from './membership/membership.js';
import type { Quorum } from './quorum.js';
import type { Replicator } from './replication/replicator.js';
import { DRAINING_REFUSAL, type Paths, type Router } from './router.js';
import type { SessionIds } from './session-ids.js';
import { MemberState, type MemberInfo, type NodeId } from './types.js';

export interface ClusterNodeOptions {
  /** this node's peer address, as the other nodes dial it */
  peerAddress: string;
  /** the seed addresses it joins through (--peers) */
  seeds: readonly string[];
  store: MemoryStore;
  view: ClusterView;
  membership: Membership;
  replicator: Replicator;
  router: Router;
  sessionIds: SessionIds;
  /** whether this node may acknowledge writes; fed the serving members on every change */
  quorum: Quorum;
  log: Logger;
  /** silence after which a member is declared dead (--failure-timeout-ms) */
  failureTimeoutMs: number;
  /** heartbeat period (--heartbeat-ms): the leave gets this long, at most 100 ms, to go out */
  heartbeatMs: number;
  /** how long a drain may take before the node leaves anyway (--drain-timeout-ms; 0: no drain) */
  drainTimeoutMs: number;
  /** closes the peer listener and links, once the node has left */
  closeLinks: () => Promise<void>;
  /**
   * the PHP requests in progress on this node's client connections: an operator's drain refuses
   * new ones and lets these finish, for up to stopGraceMs, before it hands sessions over
   */
  requests?: RequestsInProgress;
  /** how long an operator's drain waits for the requests in progress (--stop-grace-ms) */
  stopGraceMs?: number;
  /**
   * with seeds: how long start() waits for this node to join through one of them before it fails
   * with a JoinError (--join-timeout-ms); 0 or absent waits forever
   */
  joinTimeoutMs?: number;
  /** why no seed has let this node join yet, one phrase per seed (logged, and in notReadyBecause) */
  whyNotJoined?: () => string;
}

/**
 * A node that has not joined after this long is warned about, and again at the interval: a join
 * takes one round trip to a seed, so a normal start logs nothing.
 */
const JOIN_FIRST_WARNING_MS = 1000;
const JOIN_WARNING_INTERVAL_MS = 5000;

/** How a drain ended: every session acknowledged, some not, out of time, or nothing to drain to. */
export type DrainOutcome = 'complete' | 'incomplete' | 'timeout' | 'skipped';

/**
 * An operator's drain (`session-cluster drain`), with the process left running: serving, handing
 * sessions over, gone from the cluster, or taking sessions back after an undrain.
 */
export type DrainState = 'serving' | 'draining' | 'drained' | 'rejoining';

export interface DrainReport {
  state: DrainState;
  /** sessions (and lock keys) held when the drain started */
  items: number;
  /** copies sent to the new owners so far, and of those acknowledged */
  copies: number;
  acknowledged: number;
  /** set once drained */
  outcome: DrainOutcome | null;
  replacement: NodeId | null;
}

export interface ClusterNodeEvents {
  /** the node took back its sessions and serves them (reason: start, or a stall) */
  caughtUp: [reason: string];
  /** the node handed its sessions over (or could not), naming its replacement */
  drained: [outcome: DrainOutcome, replacement: NodeId | null];
  /** the node has a majority (again) */
  majority: [];
}

/**
 * The router's paths from membership: a member this node heard within the failure timeout is
 * reached directly; another, through the first serving member that this node hears and that
 * reports hearing it.
 */
export function pathsOf(membership: Membership, view: ClusterView): Paths {
  return {
    reaches: (member) => membership.hears(member),
    relayTo: (member) => {
      const reach = membership.reachability();
      return view.liveOthers().find((id) => id !== member && membership.hears(id) && (reach.get(id)?.has(member) ?? false)) ?? null;
    },
  };
}

export class ClusterNodeCounters {
  failovers = 0;
  majorityLost = 0;
}

/** What `stats` reads of the cluster as this node sees it. */
export interface ClusterStatsSource {
  readonly nodeId: NodeId;
  readonly replication: string;
  readonly peerTls: boolean;
  members(): MemberInfo[];
  readonly node: ClusterNode;
  readonly quorum: Quorum;
}

export const CLUSTER_STATS: ReadonlyArray<Stat<ClusterStatsSource>> = [
  { name: 'cluster_node_id', type: 'text', help: 'this node\'s id (--node-id)', metric: 'node_id', read: (s) => s.nodeId },
  {
    name: 'cluster_members', type: 'text',
    help: 'every member this node knows, as id:state (alive, suspect, dead, left), comma-separated; /metrics: one series per member and a count per state',
    read: (s) => s.members().map((m) => `${m.id}:${m.state}`).join(','),
  },
  { name: 'cluster_replication', type: 'text', help: 'sync or async (--replication)', metric: 'replication', read: (s) => s.replication },
  { name: 'cluster_peer_tls', type: 'text', help: 'on when peer links use TLS (--peer-tls-cert), else off', metric: 'peer_tls', read: (s) => (s.peerTls ? 'on' : 'off') },
  { name: 'cluster_failovers', type: 'counter', help: 'members this node saw declared dead: each a failover of the sessions they mastered', read: (s) => s.node.counters.failovers },
  {
    name: 'cluster_serving', type: 'text',
    help: 'the members that serve, as this node decides from who hears whom: those that all reach each other (an asymmetric partition leaves one side out)',
    read: (s) => s.node.servingIds().join(','),
  },
  { name: 'cluster_voters', type: 'gauge', help: 'the members a majority is counted of: those that served, less those that stopped while a majority remained', read: (s) => s.quorum.voterIds.length },
  { name: 'cluster_serving_voters', type: 'gauge', help: 'of those, how many serve now', read: (s) => s.quorum.servingVoters },
  { name: 'cluster_majority', type: 'gauge', help: '1 while this node serves with a majority of the voters and so acknowledges session writes, else 0', read: (s) => (s.quorum.ok ? 1 : 0) },
  { name: 'cluster_majority_lost', type: 'counter', help: 'times this node lost the majority and stopped serving sessions', read: (s) => s.node.counters.majorityLost },
  { name: 'cluster_ready', type: 'gauge', help: '1 while this node serves sessions (joined, caught up, with a majority), else 0: what GET /ready and GET /health say', read: (s) => (s.node.ready ? 1 : 0) },
];

export class ClusterNode extends EventEmitter<ClusterNodeEvents> {
  readonly counters = new ClusterNodeCounters();
  private readonly log: Logger;
  private stopping: Promise<void> | null = null;
  /** an operator's drain under way (drainNow): its requests' finish, then the drain; settles with the replacement */
  private draining: Promise<NodeId | null> | null = null;
  /** catch-ups under way: session commands wait meanwhile */
  private catchingUp = 0;
  /** start() has run */
  private started = false;
  /**
   * the start's catch-up completed: from then on, losing the majority is news, and regaining it
   * is followed by a catch-up (before, a joining node's view settles, and its start catch-up
   * follows anyway)
   */
  private servedOnce = false;
  private serving: ReadonlySet<NodeId> = new Set();
  private drainReport: DrainReport = { state: 'serving', items: 0, copies: 0, acknowledged: 0, outcome: null, replacement: null };

  constructor(private readonly options: ClusterNodeOptions) {
    super();
    this.log = options.log;
    const { membership, view, replicator } = options;
    // Who owns what changes when the serving members do (a join, a death, a leave, one side of an
    // asymmetric partition left out) or a departed member's replacement is forgotten (24 h on):
    // every item then goes to its owners again. A member that flaps between alive and suspect, or
    // refutes, changes nothing that placement reads, so it costs no copying. A member that
    // restarted without being left out took its sessions back itself (catch-up), and a copy that
    // could not be delivered meanwhile schedules its own repair (the replicator's give-up).
    view.onPlacementChange(() => replicator.scheduleScan());
    this.refresh();
    // Membership logs each change itself (joined, suspected, declared dead, left); here the view follows.
    for (const event of ['join', 'update', 'leave', 'forget', 'reach'] as const) membership.on(event, () => this.refresh());
    membership.on('dead', () => {
      this.counters.failovers++;
      this.refresh();
    });
    membership.on('stall', (gapMs) => this.onStall(gapMs));
  }

  /** Serving sessions: in a cluster, caught up, with a majority, and not drained (GET /ready). */
  get ready(): boolean {
    return this.started && this.options.membership.joined && this.catchingUp === 0 && this.options.quorum.ok && this.drainReport.state === 'serving';
  }

  /** Why this node does not serve sessions now ('' when it does). */
  notReadyBecause(): string {
    if (!this.started) return 'starting';
    if (this.drainReport.state === 'draining') return 'draining: handing this node\'s sessions to the other nodes';
    if (this.drainReport.state === 'drained') return 'drained: this node has left the cluster (session-cluster undrain, or a restart, brings it back)';
    if (!this.options.membership.joined) return `not joined: ${this.whyNotJoined()}`;
    if (this.catchingUp > 0) return 'catching up: taking back this node\'s sessions from its peers';
    if (!this.options.quorum.ok) return this.options.quorum.describe();
    return '';
  }

  /** The members that serve, in id order. */
  servingIds(): NodeId[] {
    return [...this.serving].sort();
  }

  /**
   * After every membership change: which members serve (those that all reach each other, as every
   * node decides alike from the reported links), who owns what, and whether this node still has a
   * majority. A node that regains it takes back its sessions before serving them again: the
   * majority may have changed them meanwhile.
   */
  private refresh(): void {
    const { membership, view, quorum } = this.options;
    const members = membership.members();
    const candidates = members.filter((m) => m.state !== MemberState.Left).map((m) => m.id);
    this.serving = connectedSet(candidates, membership.reachability());
    view.update(members, this.serving);
    const had = quorum.ok;
    const has = quorum.update(this.serving, members.filter((m) => m.state === MemberState.Left).map((m) => m.id));
    if (has && !had) this.emit('majority');
    if (!this.servedOnce) return;
    // Rejoining after a drain, this node is left out until the others hear it again: no news.
    if (had && !has && this.drainReport.state !== 'rejoining') {
      this.counters.majorityLost++;
      this.log.warn({ serving: this.servingIds(), voters: quorum.voterIds }, `lost the majority: refusing session commands (${quorum.describe()})`);
    } else if (!had && has) {
      // The majority may have served this node's sessions meanwhile: take them back first.
      this.log.info({ serving: this.servingIds(), voters: quorum.voterIds }, 'a majority again');
      void this.catchUp('back with a majority');
    }
  }

  /** Where PHP's commands go: the router, which holds them while the node catches up. */
  readonly execute = (command: Command): Reply | Promise<Reply> => this.options.router.execute(command);

  /**
   * Joins the cluster and settles once caught up; until then session commands wait. A node with
   * seeds must join through one of them first (docs/cluster.md, "Joining"): it is not a cluster
   * of its own. Rejects with a JoinError when the join timeout passes first, and with a
   * StartAbortedError when `abort` fires while it waits.
   */
  start(abort?: AbortSignal): Promise<void> {
    this.options.membership.start();
    this.started = true;
    return this.joinAtStart(abort).then(() => this.catchUp('start')).then(() => {
      this.servedOnce = true;
    });
  }

  /** Why no seed has let this node join yet. */
  private whyNotJoined(): string {
    return this.options.whyNotJoined?.() ?? `no answer from ${this.options.seeds.join(', ')}`;
  }

  /**
   * Waits until membership has joined a cluster, warning at intervals with each seed's refusal,
   * until the join timeout (0: none). Settles at once for a node without seeds (it starts one).
   */
  private joinAtStart(abort?: AbortSignal): Promise<void> {
    const { membership, joinTimeoutMs = 0 } = this.options;
    if (membership.joined) return Promise.resolve();
    const started = Date.now();
    return new Promise<void>((resolve, reject) => {
      const warn = () => {
        this.log.warn({ seeds: this.options.seeds, waitedMs: Date.now() - started, joinTimeoutMs }, `cannot join the cluster: ${this.whyNotJoined()}`);
      };
      let warnings: NodeJS.Timeout | null = null;
      const firstWarning = setTimeout(() => {
        warn();
        warnings = setInterval(warn, JOIN_WARNING_INTERVAL_MS);
      }, JOIN_FIRST_WARNING_MS);
      const deadline = joinTimeoutMs === 0 ? null : setTimeout(() => {
        finish(new JoinError(`cannot join the cluster within --join-timeout-ms (${joinTimeoutMs} ms): ${this.whyNotJoined()}`));
      }, joinTimeoutMs);
      const aborted = () => finish(new StartAbortedError('start abandoned while waiting to join the cluster'));
      const joined = () => finish(null);
      const finish = (error: Error | null) => {
        clearTimeout(firstWarning);
        if (warnings !== null) clearInterval(warnings);
        if (deadline !== null) clearTimeout(deadline);
        membership.off('joined', joined);
        abort?.removeEventListener('abort', aborted);
        if (error === null) resolve();
        else reject(error);
      };
      membership.once('joined', joined);
      if (abort?.aborted === true) aborted();
      else abort?.addEventListener('abort', aborted, { once: true });
    });
  }

  /**
   * Settles with true once membership has joined a cluster, or with false after `timeoutMs` (no
   * seed answered: the node is alone for now, and keeps trying in the background).
   */
  join(timeoutMs: number): Promise<boolean> {
    const { membership } = this.options;
    if (membership.joined) return Promise.resolve(true);
    return new Promise((resolve) => {
      const joined = () => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        membership.off('joined', joined);
        resolve(false);
      }, timeoutMs);
      timer.unref();
      membership.once('joined', joined);
    });
  }

  /**
   * Settles once this node has a majority, or after `timeoutMs` (it then serves what it may:
   * nothing, without a majority). Members that join together learn who hears whom within a
   * heartbeat or two; commands wait that long rather than meet a refusal.
   */
  private majority(timeoutMs: number): Promise<void> {
    if (this.options.quorum.ok) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.off('majority', done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      timer.unref();
      this.on('majority', done);
    });
  }

  /**
   * Takes back what this node owns before it serves sessions again: first it learns the members
   * (joined, or the join timed out: it is alone), then every known peer hands over. Session
   * commands wait meanwhile (the router's gate), in arrival order.
   */
  catchUp(reason: string): Promise<void> {
    const { membership, replicator, router, store, seeds, peerAddress, failureTimeoutMs, view } = this.options;
    this.log.info({ reason }, 'catching up: holding session requests until peers hand over this node\'s sessions');
    const started = Date.now();
    this.catchingUp++;
    const done = this.join(failureTimeoutMs * 2).then(() => {
      // Every peer it knows of, and every seed at start; back with a majority, the members that
      // serve: the others have nothing newer (they were out, or are gone). A peer that stops
      // serving meanwhile is not waited for (the replicator's catch-up).
      const others = reason === 'back with a majority'
        ? view.liveOthers().map((id) => view.addressOf(id))
        : [...seeds, ...membership.members().filter((m) => m.state !== MemberState.Left).map((m) => m.peerAddress)];
      const addresses = [...new Set(others)].filter((address) => address !== peerAddress);
      return replicator.catchUp(addresses, peerAddress);
    }).then(() => this.majority(failureTimeoutMs * 2)).then(() => {
      this.log.info({ reason, items: store.itemCount, ms: Date.now() - started }, 'caught up: serving');
      this.emit('caughtUp', reason);
    }).finally(() => {
      this.catchingUp--;
    });
    router.holdUntil(done);
    return done;
  }

  /**
   * Graceful shutdown: with PHP's connections already closed, hand every session to the owners it
   * has once this node is gone, wait for their acknowledgements (up to the drain timeout), and
   * name the least-loaded live node as the replacement that serves the sessions whose minted ids
   * name this node. What a drain cut short did not copy still has its other copy, which
   * re-replication restores after the leave. Settles with the replacement (null: none).
   */
  async drain(): Promise<NodeId | null> {
    const { drainTimeoutMs, sessionIds, store, view, replicator } = this.options;
    if (drainTimeoutMs === 0) {
      this.emit('drained', 'skipped', null);
      return null;
    }
    // A node that never joined (its start failed, or was abandoned) has no one to hand over to;
    // what it holds was never served from it.
    if (!this.options.membership.joined) {
      this.emit('drained', 'skipped', null);
      return null;
    }
    const replacement = sessionIds.leastLoadedOther();
    if (replacement === null) {
      if (store.itemCount > 0) this.log.warn({ items: store.itemCount }, 'draining: no other live node to hand sessions to; they end with this node');
      this.emit('drained', 'skipped', null);
      return null;
    }
    view.leave(replacement);
    const started = Date.now();
    const items = store.itemCount;
    this.log.info({ items, replacement }, 'draining: handing sessions to their new owners before leaving');
    let timer: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([
      replicator.handOverAll().then((complete): DrainOutcome => (complete ? 'complete' : 'incomplete')),
      new Promise<DrainOutcome>((resolve) => { timer = setTimeout(() => resolve('timeout'), drainTimeoutMs); }),
    ]);
    clearTimeout(timer);
    const fields = { items, replacement, ms: Date.now() - started };
    if (outcome === 'complete') this.log.info(fields, 'drained: every session acknowledged by its new owners');
    else this.log.warn({ ...fields, outcome, drainTimeoutMs }, 'drain cut short: sessions not acknowledged keep their other copy, restored by re-replication');
    this.emit('drained', outcome, replacement);
    return replacement;
  }

  /** Drains, tells the cluster this node leaves (naming its replacement), and closes the links. */
  stop(): Promise<void> {
    this.stopping ??= this.leave();
    return this.stopping;
  }

  /** Where an operator's drain is (`stats drain`). */
  get drainStatus(): DrainReport {
    const progress = this.drainReport.state === 'draining' ? this.options.replicator.progress : null;
    return progress === null ? { ...this.drainReport } : { ...this.drainReport, copies: progress.copies, acknowledged: progress.acknowledged };
  }

  /**
   * An operator's drain, the process left running: this node stops serving its own clients'
   * session commands (a read at a new owner before its copy arrived would find nothing), hands
   * every session over as a shutdown does, and leaves the cluster. Forwards that arrive after the
   * leave are refused, so their senders go to the new owners; once every copy was acknowledged this
   * node drops its own, so that an undrain cannot bring back a session deleted meanwhile.
   * Settles when drained; a drain already under way or done is not started again.
   */
  drainNow(): DrainReport {
    if (this.drainReport.state !== 'serving' || this.stopping !== null) return this.drainStatus;
    const { store, membership, router, replicator, sessionIds, requests, stopGraceMs = 0 } = this.options;
    if (sessionIds.leastLoadedOther() === null) throw new Error('no other live node to hand this node\'s sessions to');
    this.drainReport = { state: 'draining', items: store.itemCount, copies: 0, acknowledged: 0, outcome: null, replacement: null };
    this.once('drained', (outcome, replacement) => {
      const progress = replicator.progress;
      this.drainReport = { ...this.drainReport, state: 'drained', outcome, replacement, copies: progress?.copies ?? 0, acknowledged: progress?.acknowledged ?? 0 };
    });
    // The PHP requests in progress here finish first (a write refused after the page showed its
    // change would be lost); new ones are refused, and their users' retries go to other nodes.
    requests?.admitOnlyInProgress(DRAINING_REFUSAL);
    const finishing = requests === undefined || requests.inProgressNow === 0 || stopGraceMs === 0 ? null
      : letRequestsFinish(requests, (graceMs) => requests.finished(graceMs), stopGraceMs, this.log, {
        waiting: 'draining: letting the requests in progress finish',
        cutShort: 'draining: requests still in progress after --stop-grace-ms; their writes are refused',
      });
    this.draining = finishing === null ? this.drain() : finishing.then(() => this.drain());
    void this.draining.then((replacement) => {
      if (this.stopping !== null) return;
      membership.leave(replacement ?? undefined);
      router.refuseForwards('this node has left the cluster (drained)');
      if (this.drainReport.outcome === 'complete') store.flush();
    });
    return this.drainStatus;
  }

  /**
   * Undrain: back into the cluster after drainNow, as a restart would come back: alive again,
   * owning what placement gives it, and serving once it has taken those sessions back.
   */
  undrain(): DrainReport {
    if (this.drainReport.state !== 'drained' || this.stopping !== null) return this.drainStatus;
    const { membership, router, view } = this.options;
    this.drainReport = { ...this.drainReport, state: 'rejoining' };
    view.rejoin();
    router.refuseForwards(null);
    this.draining = null;
    this.options.requests?.admitOnlyInProgress(null);
    membership.rejoin();
    this.refresh();
    this.log.info('undrained: rejoining the cluster');
    void this.catchUp('undrain').finally(() => {
      this.drainReport = { state: 'serving', items: 0, copies: 0, acknowledged: 0, outcome: null, replacement: null };
    });
    return this.drainStatus;
  }

  private async leave(): Promise<void> {
    const { replicator, membership, router, heartbeatMs, closeLinks } = this.options;
    // Drained by an operator already: its sessions are with their new owners, and it has left.
    // Draining for an operator: that drain goes on, and the node leaves once it has ended.
    const replacement = this.drainReport.state === 'drained' ? this.drainReport.replacement : await (this.draining ?? this.drain());
    // Handed over: the new owners hold every session now. A forward from a node that has not heard
    // the leave yet is refused, and its sender runs it again on the new owner once it has; run
    // here, its copy could no longer be made (the replicator stops) and a PHP request would fail.
    router.refuseForwards('this node is leaving the cluster (stopping)');
    replicator.stop();
    // A node that never joined has no one to tell (its start failed or was abandoned).
    if (membership.joined) membership.leave(replacement ?? undefined);
    // Give the leave a moment to go out before the links close.
    await new Promise((resolve) => setTimeout(resolve, Math.min(heartbeatMs, 100)));
    membership.stop();
    await closeLinks();
  }

  /**
   * This node's own timers ran late by `gapMs` (the process was stopped, or its event loop
   * blocked). Silent long enough to have been declared dead, others took over and may have newer
   * writes, and deletions this node missed: its copies cannot be trusted. It drops them and
   * takes back the current ones (every session has its other copy elsewhere).
   */
  private onStall(gapMs: number): void {
    if (gapMs < this.options.failureTimeoutMs) return;
    this.options.store.flush();
    void this.catchUp('stalled past the failure timeout');
  }
}
