/**
 * The router: serves a command here when this node masters its session, or forwards it to the
 * master and relays the answer (docs/architecture.md, "Request flow"). Placement is asked once
 * per key; a write served here hands what it changed (the store's change records) and those
 * owners to the replicator, which copies it to the other owner before the reply (sync) or after
 * it (async). Other nodes are reached through the Peers seam only, never the wire.
 */
import type { Executor } from '../command/executor.js';
import { afterWrite, type Durability, NOT_DURABLE, whenDurable } from '../store/durability.js';
import { valuesInKeyOrder } from '../command/values-in-key-order.js';
import type { ReplicationMode } from '../config.js';
import type { Logger } from '../log.js';
import { type Command, type Reply, StoreMode, type ValueEntry } from '../protocol/types.js';
import type { Change } from '../store/change.js';
import { relativeExptime } from '../store/expiry.js';
import { PeerError } from '../errors.js';
import type { CounterDefs } from '../stats/registry.js';
import { ThrottledWarning } from '../throttled-log.js';
import type { ClusterView } from './cluster-view.js';
import { type Deadline, type PeerClocks, type Peers, refusal, SAME_CLOCKS, timeLeft } from './peers.js';
import { ALWAYS_QUORUM, type QuorumCheck } from './quorum.js';
import { type CopyResult, guardOf, type Replicator } from './replication/replicator.js';
import type { KeyOwners, NodeId, Owner } from './types.js';
import type { LockHandoff } from '../session-locks/lock-handoff.js';

export class RouterCounters {
  forwarded = 0;
  forwardedReads = 0;
  forwardRetries = 0;
  forwardFailures = 0;
  forwardsRefusedLate = 0;
  writesNotCopied = 0;
  refusedNoMajority = 0;
  sentThroughRelay = 0;
  relayed = 0;
}

export const ROUTER_STATS: CounterDefs<RouterCounters> = {
  forwarded: { name: 'cluster_forwarded', type: 'counter', help: 'commands sent to their session\'s master on another node (a multi-key get counts once per master)' },
  forwardedReads: { name: 'cluster_forwarded_reads', type: 'counter', help: 'of those, reads (get, gets, gat): what a sticky load balancer with minted ids brings to zero' },
  forwardRetries: { name: 'cluster_forward_retries', type: 'counter', help: 'forwards sent again because the master could not be reached (a failover, a link coming back)' },
  forwardFailures: { name: 'cluster_forward_failures', type: 'counter', help: 'forwards that got no answer in time: the client got SERVER_ERROR' },
  forwardsRefusedLate: { name: 'cluster_forwards_refused_late', type: 'counter', help: 'commands forwarded here and refused, not run, because they could only have run after their sender gave up on them (a pause, a held link)' },
  writesNotCopied: { name: 'cluster_writes_not_copied', type: 'counter', help: 'writes answered SERVER_ERROR because their copy to the other owner could not be made in time (undone here)' },
  refusedNoMajority: { name: 'cluster_refused_no_majority', type: 'counter', help: 'session commands this node refused to run because it did not have a majority (answered SERVER_ERROR, or refused to the forwarding node)' },
  sentThroughRelay: { name: 'cluster_forwards_relayed_out', type: 'counter', help: 'forwards sent through another node because this node does not reach the master itself (an asymmetric partition)' },
  relayed: { name: 'cluster_forwards_relayed', type: 'counter', help: 'forwards this node passed on to the master for a node that does not reach it' },
};

export interface RouterOptions {
  executor: Executor;
  view: ClusterView;
  peers: Peers;
  replicator: Replicator;
  replication: ReplicationMode;
  log: Logger;
  /** how long a forwarded command may wait for the master, and a write for its copies */
  forwardTimeoutMs: number;
  /** the other nodes' clocks as this node estimates them, to judge a forward's deadline (default: the same as ours) */
  clocks?: PeerClocks;
  /** whether this node may serve sessions now (default: always) */
  quorum?: QuorumCheck;
  /** which members this node reaches, and through whom the others (default: every member, directly) */
  paths?: Paths;
  /** disk storage, whose log records a write's reply waits for (default: none, memory only) */
  durability?: Durability;
  /** lock handoff (--lock-wait-ms): lock takes refused here wait for the release (default: none) */
  handoff?: LockHandoff;
  /**
   * This node's own commands (version, stats and its operator groups), here or asked by another
   * node (`stats node`): never forwarded, held or refused for a lack of majority (default: the
   * executor)
   */
  nodeCommands?: (command: Command) => Reply | Promise<Reply>;
}

/**
 * Who this node reaches: directly (it hears them), or through a serving member that does. In an
 * asymmetric partition the node left out still reaches some of the others; its users are served
 * through them, as far as they reach.
 */
export interface Paths {
  reaches(member: NodeId): boolean;
  /** a serving member this node reaches that reaches `member`, or null */
  relayTo(member: NodeId): NodeId | null;
}

const DIRECT_PATHS: Paths = { reaches: () => true, relayTo: () => null };

export class Router {
  readonly counters = new RouterCounters();
  /** a master that is down fails every forward until it is declared dead: logged at most every few seconds */
  private readonly forwardFailures: ThrottledWarning;
  private lastForwardFailure: Record<string, unknown> = {};
  /** while this node catches up, the commands it owns wait here (docs/architecture.md, "Graceful startup": no ownership before that) */
  private gate: Promise<void> | null = null;
  private readonly clocks: PeerClocks;
  private readonly quorum: QuorumCheck;
  private readonly paths: Paths;
  private readonly nodeCommands: (command: Command) => Reply | Promise<Reply>;
  /** why forwards are refused now (this node left the cluster after an operator's drain), or null */
  private forwardsRefused: string | null = null;

  constructor(private readonly options: RouterOptions) {
    this.forwardFailures = new ThrottledWarning(options.log, 'forwarded commands failed: session owner unreachable',
      () => ({ ...this.lastForwardFailure, totalFailures: this.counters.forwardFailures }), 5000);
    this.clocks = options.clocks ?? SAME_CLOCKS;
    this.quorum = options.quorum ?? ALWAYS_QUORUM;
    this.paths = options.paths ?? DIRECT_PATHS;
    this.nodeCommands = options.nodeCommands ?? ((command) => options.executor.execute(command));
    // A command forwarded here runs here, and is never forwarded again: views that disagree for
    // a moment cannot make it loop.
    options.peers.serveForward((command, deadline, relay) => this.handleForward(command, deadline, relay));
  }

  /**
   * Holds every command until `catchUp` settles, then lets them through in arrival order. A
   * catch-up that starts while another runs holds commands until both have settled.
   */
  holdUntil(catchUp: Promise<void>): void {
    const previous = this.gate;
    const gate: Promise<void> = (previous === null ? catchUp : Promise.all([previous, catchUp]).then(() => undefined)).finally(() => {
      if (this.gate === gate) this.gate = null;
    });
    this.gate = gate;
  }

  /**
   * After an operator's drain this node has left: a forward that still comes (its sender has not
   * heard the leave yet) is refused, not run against copies that are no longer kept, and its
   * sender tries the new owners. null: run them again (undrain).
   */
  refuseForwards(reason: string | null): void {
    this.forwardsRefused = reason;
  }

  execute(command: Command): Reply | Promise<Reply> {
    // Draining or drained: the sessions' new owners serve them; a read sent there before its copy
    // arrived would find nothing, so this node's clients are refused rather than misled.
    if (this.options.view.leaving && isSessionCommand(command)) {
      return { kind: 'serverError', message: DRAINING_REFUSAL };
    }
    if (this.gate !== null && isSessionCommand(command)) {
      const gate = this.gate;
      return gate.then(() => this.execute(command));
    }

    switch (command.kind) {
      case 'store':
      case 'refuseOversized':
      case 'delete':
      case 'arith':
      case 'touch':
        return this.route(command.key, command);
      case 'get':
      case 'touchGet':
        if (command.keys.length === 1) return this.route(command.keys[0]!, command);
        return this.executeMultiGet(command);
      case 'flush':
        return this.flushEverywhere(command);
      default:
        // version, stats, verbosity, quit: this node's own business
        return this.nodeCommands(command);
    }
  }

  private notServing(): Reply {
    this.counters.refusedNoMajority++;
    return { kind: 'serverError', message: `temporary failure: not serving sessions: ${this.quorum.describe()}` };
  }

  /**
   * A command another node forwarded here, to run here as its session's owner. It carries its
   * sender's deadline: a command that could only run after it (it waited in a paused process or
   * a held link, or behind a catch-up) is refused, not run, since its sender has told its client
   * it failed; run then, it could replace a newer write (docs/architecture.md, "Replication").
   * What it may still take is what its copies get.
   */
  private handleForward(command: Command, deadline: Deadline | null, relay: boolean): Reply | Promise<Reply> {
    // An operator's question to this node (`stats node`): answered whatever its state.
    if (command.kind === 'stats') return this.nodeCommands(command);
    if (this.forwardsRefused !== null) throw refusal(`refused: ${this.forwardsRefused}`);
    if (this.gate !== null) {
      const gate = this.gate;
      return gate.then(() => this.handleForward(command, deadline, relay));
    }
    if (!this.quorum.ok) {
      this.counters.refusedNoMajority++;
      throw refusal(`refused: ${this.quorum.describe()}`);
    }
    let left = this.options.forwardTimeoutMs;
    if (deadline !== null) {
      left = timeLeft(deadline, this.clocks);
      if (left <= 0) {
        this.counters.forwardsRefusedLate++;
        throw refusal(`refused: forwarded by ${deadline.from} ${deadline.validForMs - left} ms ago, past its ${deadline.validForMs} ms`);
      }
    }
    // Relayed by a node that cannot reach the master: forward it there, once, in the time left.
    const key = relay ? keyOf(command) : null;
    if (key !== null) {
      const master = this.options.view.owners(key).master;
      if (master !== null && master.id !== this.options.view.self) {
        this.counters.relayed++;
        return this.forward(key, master, command, { budgetMs: left, mayRelay: false });
      }
    }
    return this.executeHere(command, undefined, Date.now() + left);
  }

  /**
   * Runs a command as its session's owner: here, with no further forwarding. What it changed goes
   * to the replicator with the key's owners: `owners` when the caller placed the key already (a
   * function for a multi-key command), else placement is asked now, once per changed key. In
   * sync mode the answer waits for the copies, until `deadlineAt` at the latest; a write whose
   * copy could not be made by then is undone and answered SERVER_ERROR.
   */
  executeHere(command: Command, owners?: KeyOwners | ((key: string) => KeyOwners), deadlineAt?: number): Reply | Promise<Reply> {
    if (this.gate !== null) {
      // Placement may differ once caught up: whoever runs the command then places it again.
      const gate = this.gate;
      return gate.then(() => this.executeHere(command, undefined, deadlineAt));
    }
    const { executor } = this.options;
    // Without a majority this node may be on the small side of a partition, whose sessions the
    // majority takes over: neither a read (perhaps stale) nor a write (perhaps lost) is served.
    if (!this.quorum.ok) return this.notServing();
    // Values on disk only (memory as a cache of disk storage) are read back first.
    const reading = executor.readBack(command);
    if (reading !== null) return reading.then(() => this.executeHere(command, owners, deadlineAt));
    const handoff = this.options.handoff;
    if (handoff === undefined) return this.runHere(command, owners, deadlineAt);
    // A lock take waits for the release here, the lock's master, and answers its sender in time
    // for the copy that follows it.
    const left = (deadlineAt ?? Date.now() + this.options.forwardTimeoutMs) - Date.now();
    // A waiting take runs again on the release: only if this node still serves by then.
    return handoff.execute(command, (run) => (this.quorum.ok ? this.runHere(run, owners, deadlineAt) : this.notServing()), left - Math.min(500, left / 2));
  }

  /** executeHere, once the command may run: runs it, and has what it changed copied. */
  private runHere(command: Command, owners?: KeyOwners | ((key: string) => KeyOwners), deadlineAt?: number): Reply | Promise<Reply> {
    const { executor, replicator, view } = this.options;
    if (command.kind === 'get') return executor.execute(command);
    const changes: Change[] = [];
    const seqBefore = this.options.durability?.nextSeq ?? 0;
    const reply = executor.execute(command, changes);
    if (changes.length === 0) return reply;
    // In the file before the copy leaves; under --fsync always the reply waits for the disk too.
    this.options.durability?.writePending();
    const durable = afterWrite(this.options.durability, seqBefore);
    const sync = this.options.replication === 'sync';
    const copyBy = sync ? (deadlineAt ?? Date.now() + this.options.forwardTimeoutMs) : undefined;
    const copies: Array<Promise<CopyResult>> = [];
    for (const change of changes) {
      const placed = owners === undefined ? view.owners(change.key) : typeof owners === 'function' ? owners(change.key) : owners;
      const copy = replicator.replicate(change, placed, copyBy);
      if (copy !== null) copies.push(copy);
    }
    if (copies.length === 0 || !sync) return whenDurable(reply, durable);
    // One copy and no disk to wait for (the common case): its result settles the reply directly.
    if (copies.length === 1 && durable === null) return copies[0]!.then((result) => (result === 'copied' ? reply : this.notCopied([result])));
    return Promise.all([Promise.all(copies), durable]).then(([results, onDisk]): Reply => {
      if (onDisk === false) return NOT_DURABLE;
      if (results.every((result) => result === 'copied')) return reply;
      return this.notCopied(results);
    });
  }

  /** The reply to a write whose copies were not all made (undone here). */
  private notCopied(results: CopyResult[]): Reply {
    this.counters.writesNotCopied++;
    // Undone here; the other owner has it only if the copy arrived and just its answer was lost.
    return results.includes('maybe copied')
      ? { kind: 'serverError', message: 'temporary failure: no answer in time from the session\'s other owner; the write may have been applied' }
      : { kind: 'serverError', message: 'temporary failure: the write could not be copied to the session\'s other owner in time; not stored' };
  }

  private route(key: string, command: Command): Reply | Promise<Reply> {
    const owners = this.options.view.owners(key);
    const { master } = owners;
    if (master === null || master.id === this.options.view.self) return this.executeHere(command, owners);
    // Without a majority this node still forwards to a master it reaches (one side of an
    // asymmetric partition keeps serving its users through the rest); to one it cannot reach at
    // all, it fails fast: PHP had better learn it now than after the forward timeout.
    if (!this.quorum.ok && !this.paths.reaches(master.id) && this.paths.relayTo(master.id) === null) return this.notServing();
    return this.forward(key, master, command);
  }

  /**
   * Sends a command to its master. When the master cannot be reached, the command waits for the
   * cluster rather than failing at once: it is tried again every FORWARD_RETRY_MS, on whichever
   * node masters the session by then (the backup, once the master is declared dead, or the same
   * master once its link is back), until the forward timeout. So a crash costs PHP a pause of
   * about the failure timeout instead of a failed request, and php-memcached's unlock (a delete
   * whose failure it ignores) is not lost, leaving a lock behind. Only a command that certainly
   * did not run is sent again, or one that may have run but does the same when run twice (see
   * isIdempotent).
   */
  private forward(key: string, master: Owner, command: Command, options: { budgetMs?: number; mayRelay?: boolean } = {}): Promise<Reply> {
    this.counters.forwarded++;
    if (command.kind === 'get' || command.kind === 'touchGet') this.counters.forwardedReads++;
    command = withRelativeExptime(command, Date.now());
    const deadline = Date.now() + (options.budgetMs ?? this.options.forwardTimeoutMs);
    const mayRelay = options.mayRelay ?? true;
    // The first attempt to a master this node reaches: its reply settles the client's reply
    // straight from the peer link's dispatch; only a failure goes on to forwardAgain, which
    // judges it and retries as the loop below does.
    const left = deadline - Date.now();
    const validForMs = left - guardOf(left);
    if (validForMs >= 1 && (!mayRelay || this.paths.reaches(master.id))) {
      const first = command;
      return this.options.peers.forward(master, command, { timeoutMs: left, validForMs }, (failure) => this.forwardAgain(key, master, first, deadline, mayRelay, { error: failure }));
    }
    return this.forwardAgain(key, master, command, deadline, mayRelay, null);
  }

  /**
   * The rest of forward: from its first attempt's failure (`failed`), or with no attempt made yet
   * (null: no time left, or the master is reached through a relay).
   */
  private async forwardAgain(key: string, target: Owner, command: Command, deadline: number, mayRelay: boolean, failed: { error: unknown } | null): Promise<Reply> {
    /** whether an attempt went out and got no answer: the command may have run */
    let mayHaveRun = false;
    for (;;) {
      // The master may run it only while this node still waits for the answer, less the time the
      // answer takes to come back: after that, this node has answered SERVER_ERROR.
      const left = deadline - Date.now();
      let validForMs = left - guardOf(left);
      /** why the attempt failed; null while none went out (made only then: an Error costs its stack trace) */
      let error: unknown = null;
      // A master this node does not hear (an asymmetric partition) is reached through a serving
      // member that hears it, when there is one.
      const via = mayRelay && !this.paths.reaches(target.id) ? this.paths.relayTo(target.id) : null;
      if (failed !== null) {
        // The first attempt, made by forward(), with time left then.
        error = failed.error;
        failed = null;
        validForMs = Math.max(1, validForMs);
        if (!certainlyNotRun(error)) mayHaveRun = true;
      } else if (validForMs >= 1) {
        try {
          if (via !== null) {
            this.counters.sentThroughRelay++;
            return await this.options.peers.forward({ id: via, address: this.options.view.addressOf(via) }, command, { timeoutMs: left, validForMs, relay: true });
          }
          return await this.options.peers.forward(target, command, { timeoutMs: left, validForMs });
        } catch (failure) {
          error = failure;
          if (!certainlyNotRun(failure)) mayHaveRun = true;
        }
      }
      if (validForMs < 1 || !mayRetry(error, command) || Date.now() + FORWARD_RETRY_MS >= deadline) {
        error ??= new PeerError('ERR_PEER_TIMEOUT', `no time left to forward to ${target.id}`);
        this.counters.forwardFailures++;
        this.forwardFailures.add();
        this.lastForwardFailure = { peer: target.id, err: (error as Error).message };
        // The client is told what this node knows: a command that went out and got no answer
        // may have run (before its deadline); one that never went out, or was refused, did not.
        return {
          kind: 'serverError',
          message: mayHaveRun
            ? `temporary failure: no answer in time from session owner ${target.id}; it may have been applied`
            : `temporary failure: session owner ${target.id} unreachable; not applied`,
        };
      }
      await new Promise((resolve) => setTimeout(resolve, FORWARD_RETRY_MS));
      this.counters.forwardRetries++;
      const owners = this.options.view.owners(key);
      const now = owners.master;
      if (now === null || now.id === this.options.view.self) return this.executeHere(command, owners);
      // The keys of a multi-key read were grouped by their master: once that changed, group again.
      if ((command.kind === 'get' || command.kind === 'touchGet') && command.keys.length > 1 && now.id !== target.id) {
        return this.executeMultiGet(command);
      }
      target = now;
    }
  }

  /** A multi-key read: each key from its own master, answered in the order the keys were asked. */
  private executeMultiGet(command: Extract<Command, { kind: 'get' | 'touchGet' }>): Reply | Promise<Reply> {
    const { view } = this.options;
    const groups = new Map<string, { master: Owner | null; keys: string[] }>();
    const ownersOf = new Map<string, KeyOwners>();
    for (const key of command.keys) {
      const owners = view.owners(key);
      ownersOf.set(key, owners);
      const id = owners.master === null ? view.self : owners.master.id;
      let group = groups.get(id);
      if (group === undefined) groups.set(id, (group = { master: owners.master, keys: [] }));
      group.keys.push(key);
    }
    // gat writes what it finds: the keys served here are copied to the owners just worked out.
    const placed = (key: string) => ownersOf.get(key) ?? view.owners(key);
    const serve = (master: Owner | null, part: typeof command): Reply | Promise<Reply> =>
      master === null || master.id === view.self ? this.executeHere(part, placed) : this.forward(part.keys[0]!, master, part);
    if (groups.size === 1) {
      const [only] = groups.values();
      return serve(only!.master, command);
    }
    const parts = [...groups.values()].map(({ master, keys }) => serve(master, { ...command, keys }));
    return Promise.all(parts).then((replies) => {
      const found = new Map<string, ValueEntry>();
      for (const reply of replies) {
        if (reply.kind === 'serverError') return reply;
        if (reply.kind === 'values') for (const entry of reply.entries) found.set(entry.key, entry);
      }
      return valuesInKeyOrder(command.keys, found);
    });
  }

  /**
   * flush_all empties the cluster, not one node: an operator's `memcflush` (or a logout-everyone)
   * must not leave the other copies of every session behind, to be served again after a failover.
   * Every serving node applies it with the same delay (protocol.txt, "flush_all"), through the
   * Forward opcode, which runs a command on the receiving node without forwarding it again. A node
   * that cannot be reached is tried again until it answers or leaves the serving members (it
   * crashed: its copies went with it), within the forward timeout, as a forward waits for a
   * failover. The answer is OK once every serving node has applied it; if one could still not be
   * reached the client is told (SERVER_ERROR), though every reachable node did flush.
   */
  private flushEverywhere(command: Extract<Command, { kind: 'flush' }>): Reply | Promise<Reply> {
    const { executor, view, forwardTimeoutMs } = this.options;
    const local = executor.execute(command);
    // Refused here (--disable-flush): not sent on to the others either.
    if (local.kind === 'notAllowed') return local;
    const peers = view.liveOthers();
    if (peers.length === 0) return local;
    const deadline = Date.now() + forwardTimeoutMs;
    return Promise.all(peers.map((peer) => this.flushOn(peer, command, deadline))).then((results) => {
      const failed = results.filter((result) => result !== null);
      if (failed.length === 0) return local;
      this.options.log.warn({ failed, delaySeconds: command.delaySeconds }, 'flush_all did not reach every node: the unreached keep their copies');
      const refused = failed.filter((f) => f.refused);
      const unreachable = failed.filter((f) => !f.refused);
      const why = [
        ...(unreachable.length > 0 ? [`unreachable: ${unreachable.map((f) => f.peer).join(',')}`] : []),
        ...(refused.length > 0 ? [`refused (--disable-flush): ${refused.map((f) => f.peer).join(',')}`] : []),
      ];
      return { kind: 'serverError', message: `flush_all applied on ${peers.length + 1 - failed.length} of ${peers.length + 1} nodes; ${why.join('; ')}` };
    });
  }

  /** flush_all on one peer, by `deadline`: null once applied, or once the peer no longer serves. */
  private async flushOn(peer: NodeId, command: Command, deadline: number): Promise<{ peer: NodeId; err: string; refused?: boolean } | null> {
    const { view, peers: links } = this.options;
    for (;;) {
      const left = deadline - Date.now();
      try {
        const reply = await links.forward({ id: peer, address: view.addressOf(peer) }, command, { timeoutMs: Math.max(1, left), validForMs: Math.max(1, left - guardOf(left)) });
        // A node that refuses flush_all (--disable-flush) did not flush: not applied there.
        if (reply.kind === 'notAllowed') return { peer, err: reply.message, refused: true };
        return null;
      } catch (error) {
        if (!view.isLive(peer)) return null;
        // Running flush_all twice does what running it once does: any failure may be tried again.
        if (Date.now() + FORWARD_RETRY_MS >= deadline) return { peer, err: (error as Error).message };
      }
      await new Promise((resolve) => setTimeout(resolve, FORWARD_RETRY_MS));
    }
  }
}

/** How often a forwarded command whose master cannot be reached is tried again. */
const FORWARD_RETRY_MS = 20;

/**
 * Whether a failed forward may be sent again: always when it certainly never left this node;
 * when it was sent and the link dropped before the answer (it may have run), only if running it
 * twice does what running it once does. A timeout is final: the forward timeout is spent.
 */
function mayRetry(error: unknown, command: Command): boolean {
  if (certainlyNotRun(error)) return true;
  return (error as { code?: string }).code === 'ERR_PEER_DISCONNECTED' && isIdempotent(command);
}

/** Whether a forward that failed so certainly did not run: it never left, or was refused. */
function certainlyNotRun(error: unknown): boolean {
  const code = (error as { code?: string }).code;
  return code === 'ERR_PEER_UNAVAILABLE' || code === 'ERR_PEER_CLOSED' || code === 'ERR_PEER_BUSY' || code === 'ERR_PEER_TOO_LARGE' || code === 'ERR_PEER_REFUSED';
}

/**
 * Commands whose second run leaves the data as the first left it, so that a copy sent again after
 * an unknown outcome cannot double anything: reads, set, delete (whose second run may answer
 * NOT_FOUND), touch. Not add (its second run answers NOT_STORED: a session lock would look taken
 * by someone else), replace, append/prepend, cas or incr/decr.
 */
function isIdempotent(command: Command): boolean {
  switch (command.kind) {
    case 'get':
    case 'touchGet':
    case 'touch':
    case 'delete':
      return true;
    case 'store':
      return command.mode === StoreMode.Set;
    default:
      return false;
  }
}

/** Commands on keys wait for catch-up; version, stats and the like answer at once. */
/** What this node's clients are answered while it drains or is drained (a temporary failure, so PHP retries). */
export const DRAINING_REFUSAL = 'temporary failure: this node is drained or draining; its sessions are served by the other nodes';

function isSessionCommand(command: Command): boolean {
  return 'key' in command || 'keys' in command;
}

/**
 * `command` with an absolute exptime (pecl memcache sends one) turned into the seconds left, read
 * by this node's clock: the one PHP beside it used. The master's may differ (docs/architecture.md,
 * "Replication": clocks).
 */
function withRelativeExptime(command: Command, nowMs: number): Command {
  switch (command.kind) {
    case 'store':
    case 'touchGet':
    case 'touch':
    case 'arith': {
      const exptime = relativeExptime(command.exptime, nowMs);
      return exptime === command.exptime ? command : { ...command, exptime };
    }
    default:
      return command;
  }
}

/** The key a forwarded command routes by: its key, or the first of its keys (grouped by master). */
function keyOf(command: Command): string | null {
  if ('key' in command) return command.key;
  if ('keys' in command) return command.keys[0] ?? null;
  return null;
}
