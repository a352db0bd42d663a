/**
 * Session locks the daemon understands (docs/architecture.md, "Session locks"). PHP's session
 * handlers lock a session with a key of their own (lock-keys.ts) and release it at the end of the
 * request. A worker that dies in between (killed, a segfault, an OOM kill, a container stop)
 * never releases it, and its user waits until the lock expires: up to 30 s with php-memcached,
 * 15 s with pecl memcache. The daemon sees which connection took a lock; when that connection
 * closes without releasing it, the lock is released at once.
 *
 * Each lock taken is remembered by its connection with the CAS unique its take answered. The
 * release is a `delete` of the lock key with that CAS, run as any client command is: on the
 * lock's master in cluster mode (forwarded there if need be), replicated like any delete. The CAS
 * makes it safe: a lock that expired meanwhile and was taken by another worker has another CAS,
 * and is left alone.
 *
 * Knowing which connection holds which lock serves three more ends: the other nodes ask which
 * locks this node's requests hold when a member dies (dead-node-locks.ts); a stop or an operator's
 * drain waits for the requests in progress, the lock holders (and, without locking, the
 * connections that read a session they have not written yet), and refuses the others
 * (RequestsInProgress); and a node back from a stall closes its lock holders' connections
 * (abandonHolders).
 */
import type { Logger } from '../log.js';
import type { Execute } from '../protocol/handler.js';
import { type Command, type Reply, Status, StoreMode } from '../protocol/types.js';
import { type CounterDefs, countersToStats, type Stat } from '../stats/registry.js';
import { LockHandoff } from './lock-handoff.js';
import { idForLog, isRefusedTake, isTake, type LockStyle, lockStyleOf, sessionIdOfLock } from './lock-keys.js';

export class SessionLockCounters {
  acquired = 0;
  contended = 0;
  releasedOnDisconnect = 0;
  releasedNodeDied = 0;
  expiredWhileHeld = 0;
}

export const SESSION_LOCK_COUNTER_STATS: CounterDefs<SessionLockCounters> = {
  acquired: { name: 'session_locks_acquired', type: 'counter', help: 'session locks taken through this node (php-memcached\'s add of lock.<id>, pecl memcache\'s incr or add of <id>.lock)' },
  contended: { name: 'session_locks_contended', type: 'counter', help: 'attempts to take a session lock that another request held: each is a wait for the PHP worker' },
  releasedOnDisconnect: { name: 'session_locks_released_on_disconnect', type: 'counter', help: 'session locks released by the daemon because the connection that took them closed without releasing them (a PHP worker killed or crashed); each is logged' },
  releasedNodeDied: { name: 'session_locks_released_node_died', type: 'counter', help: 'session locks this node mastered that it released because the node their request came through died (its PHP request died with it); each is logged' },
  expiredWhileHeld: { name: 'session_locks_expired_while_held', type: 'counter', help: 'session locks that expired before their holder released them: a request that ran longer than the lock\'s expiry' },
};

/** The figures of `stats` about session locks. */
export const SESSION_LOCK_STATS: ReadonlyArray<Stat<SessionLocks>> = [
  { name: 'session_locks_held', type: 'gauge', help: 'session locks held now by connections to this node', read: (locks) => locks.heldNow },
  ...countersToStats(SESSION_LOCK_COUNTER_STATS, (locks: SessionLocks) => locks.counters),
  { name: 'session_locks_waiting', type: 'gauge', help: 'lock takes waiting on this node (their session\'s master) for the lock\'s release (--lock-wait-ms)', read: (locks) => locks.handoff?.waitingNow ?? 0 },
  { name: 'session_locks_handed_off', type: 'counter', help: 'waiting lock takes that got the lock the moment it was released (--lock-wait-ms)', read: (locks) => locks.handoff?.handedOff ?? 0 },
  { name: 'session_locks_wait_timeouts', type: 'counter', help: 'waiting lock takes that ran out of --lock-wait-ms and were refused as memcached would (the client retries)', read: (locks) => locks.handoff?.timedOut ?? 0 },
  { name: 'session_lock_wait_p50_ms', type: 'gauge', help: 'median wait of the lock takes that waited (--lock-wait-ms), ms: the upper bound of its histogram bucket', read: (locks) => locks.handoff?.waitPercentileMs(0.5) ?? 0 },
  { name: 'session_lock_wait_p99_ms', type: 'gauge', help: '99th percentile of those waits, ms', read: (locks) => locks.handoff?.waitPercentileMs(0.99) ?? 0 },
];

/**
 * The PHP requests in progress on this node's client connections, as a stop and an operator's
 * drain see them (cluster-node.ts, listeners.ts). A request holds its session's lock from its read
 * to its write; without locking (php-memcached's sess_locking=0) it is a connection that read a
 * session (`<prefix><id>`) and has not yet written or touched it.
 */
export interface RequestsInProgress {
  /**
   * With a reason: commands with keys from connections with no request in progress (new requests)
   * are refused with it, while the requests in progress go on. null: everything is admitted again.
   */
  admitOnlyInProgress(reason: string | null): void;
  /** Settles once no client connection has a request in progress, or after timeoutMs. */
  finished(timeoutMs: number): Promise<void>;
  /** client connections with a request in progress now */
  readonly inProgressNow: number;
}

/**
 * A stop's or an operator's drain's first step: `wait` (up to graceMs) while the requests in
 * progress finish, logging that they are waited for (`lines.waiting`), that they all finished, or
 * that the grace cut some short (`lines.cutShort`).
 */
export async function letRequestsFinish(
  requests: Pick<RequestsInProgress, 'inProgressNow'>, wait: (graceMs: number) => Promise<void>, graceMs: number, log: Logger,
  lines: { waiting: string; cutShort: string },
): Promise<void> {
  const inProgress = requests.inProgressNow;
  const waiting = inProgress > 0 && graceMs > 0;
  if (waiting) log.info({ requests: inProgress, stopGraceMs: graceMs }, lines.waiting);
  const started = Date.now();
  await wait(graceMs);
  const left = requests.inProgressNow;
  if (left > 0) log.warn({ requests: left, stopGraceMs: graceMs }, lines.cutShort);
  else if (waiting) log.info({ requests: inProgress, ms: Date.now() - started }, 'requests in progress finished');
}

export interface SessionLocksOptions {
  /** php-memcached's memcached.sess_prefix (--session-prefix) */
  sessionPrefix: string;
  log: Logger;
  /** lock handoff: how long a refused lock take waits for the release (--lock-wait-ms); 0: off */
  lockWaitMs?: number;
  /** when the lock held under a key expires (ms; 0 never), or null: wakes waiters of an expired lock */
  lockExpiresAt?: (key: string) => number | null;
}

/** The node's view of the session locks its clients take. */
export class SessionLocks implements RequestsInProgress {
  readonly counters = new SessionLockCounters();
  /** locks held by this node's client connections */
  private held = 0;
  /** the lock keys they hold, with how many connections hold each (one, but for an expired lock retaken) */
  private readonly heldKeys = new Map<string, number>();
  /** admitOnlyInProgress's reason, or null */
  private refusing: string | null = null;
  /** finished() waits for the last request in progress to end */
  private whenNoneInProgress: Array<() => void> = [];
  /** the connections holding at least one lock (abandonHolders) */
  private readonly holders = new Set<ConnectionLocks>();
  /** the connections between reading a session and writing it, without a lock */
  private readonly readers = new Set<ConnectionLocks>();
  /** lock handoff, when --lock-wait-ms is on: run around the commands this node runs as master */
  readonly handoff: LockHandoff | null;
  /** runs the releases: the node's own command path (set once the node is built) */
  private execute: Execute | null = null;

  constructor(private readonly options: SessionLocksOptions) {
    const waitMs = options.lockWaitMs ?? 0;
    this.handoff = waitMs > 0 ? new LockHandoff({ waitMs, sessionPrefix: options.sessionPrefix, lockExpiresAt: options.lockExpiresAt }) : null;
  }

  /** Where releases run: the same path as clients' commands (the router in cluster mode). */
  releaseThrough(execute: Execute): void {
    this.execute = execute;
  }

  get heldNow(): number {
    return this.held;
  }

  admitOnlyInProgress(reason: string | null): void {
    this.refusing = reason;
  }

  /** Why new requests are refused now (admitOnlyInProgress), or null. */
  get refusal(): string | null {
    return this.refusing;
  }

  get inProgressNow(): number {
    let readersOnly = 0;
    for (const reader of this.readers) if (!this.holders.has(reader)) readersOnly++;
    return this.holders.size + readersOnly;
  }

  finished(timeoutMs: number): Promise<void> {
    if (this.inProgressNow === 0 || timeoutMs <= 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, timeoutMs);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.whenNoneInProgress.push(done);
    });
  }

  /** Whether a client connection of this node holds the lock `key` (dead-node-locks.ts asks). */
  holds(key: string): boolean {
    return this.heldKeys.has(key);
  }

  /** A connection took a lock (ConnectionLocks). */
  taken(key: string): void {
    this.held++;
    this.heldKeys.set(key, (this.heldKeys.get(key) ?? 0) + 1);
  }

  /** A connection's lock went: released, or its connection closed. */
  dropped(key: string): void {
    const holders = this.heldKeys.get(key) ?? 0;
    if (holders <= 1) this.heldKeys.delete(key);
    else this.heldKeys.set(key, holders - 1);
    this.held--;
  }

  get sessionPrefix(): string {
    return this.options.sessionPrefix;
  }

  /** The locks of one new client connection; `abandon` closes that connection (abandonHolders). */
  forConnection(abandon?: () => void): ConnectionLocks {
    return new ConnectionLocks(this, abandon);
  }

  /**
   * This node stalled past the failure timeout (kill -STOP, a frozen VM): the other nodes have
   * declared it dead and released the locks its requests held (dead-node-locks.ts), and another
   * request may hold one now. Each connection holding a lock is closed, so that its request fails
   * rather than write over the newer session; the close releases only the locks that are still
   * the ones it took (their CAS). Answers how many were closed.
   */
  abandonHolders(): number {
    const holders = [...this.holders];
    for (const holder of holders) holder.abandon();
    return holders.length;
  }

  /** `connection` holds its first lock, or no lock any more (ConnectionLocks). */
  holding(connection: ConnectionLocks, holds: boolean): void {
    if (holds) this.holders.add(connection);
    else if (this.holders.delete(connection)) this.maybeNoneInProgress();
  }

  /** `connection` read a session without a lock, or wrote it since (ConnectionLocks). */
  reading(connection: ConnectionLocks, reads: boolean): void {
    if (reads) this.readers.add(connection);
    else if (this.readers.delete(connection)) this.maybeNoneInProgress();
  }

  private maybeNoneInProgress(): void {
    if (this.whenNoneInProgress.length === 0 || this.inProgressNow > 0) return;
    const waiting = this.whenNoneInProgress;
    this.whenNoneInProgress = [];
    for (const done of waiting) done();
  }

  /** A lock its holder left behind: released if it is still the one taken (its CAS). */
  releaseLeftBehind(key: string, hold: Hold): void {
    const execute = this.execute;
    if (execute === null) return;
    let reply: Reply | Promise<Reply>;
    try {
      reply = execute({ kind: 'delete', key, cas: hold.cas });
    } catch (error) {
      this.options.log.warn({ session: idForLog(sessionIdOfLock(key, hold.style, this.sessionPrefix)), err: (error as Error).message }, 'session lock left by a closed connection could not be released');
      return;
    }
    if (reply instanceof Promise) void reply.then((r) => this.released(key, hold, r), () => undefined);
    else this.released(key, hold, reply);
  }

  /**
   * A lock whose request came through a node that died (dead-node-locks.ts): released as a closed
   * connection's is, if it is still the one found (its CAS). Settles once answered.
   */
  async releaseOrphaned(key: string, style: LockStyle, cas: number, since: number, deadNode: string): Promise<void> {
    const execute = this.execute;
    if (execute === null) return;
    const session = idForLog(sessionIdOfLock(key, style, this.sessionPrefix));
    let reply: Reply;
    try {
      reply = await execute({ kind: 'delete', key, cas });
    } catch (error) {
      reply = { kind: 'serverError', message: (error as Error).message };
    }
    if (reply.kind === 'status' && reply.status === Status.Deleted) {
      this.counters.releasedNodeDied++;
      this.options.log.info({ session, style, heldMs: Date.now() - since, deadNode }, 'session lock released: the node its request came through died');
    } else if (reply.kind === 'serverError') {
      this.options.log.warn({ session, deadNode, err: reply.message }, 'session lock left by a dead node could not be released; it expires as set');
    }
  }

  private released(key: string, hold: Hold, reply: Reply): void {
    const session = idForLog(sessionIdOfLock(key, hold.style, this.sessionPrefix));
    if (reply.kind === 'status' && reply.status === Status.Deleted) {
      this.counters.releasedOnDisconnect++;
      this.options.log.info({ session, style: hold.style, heldMs: Date.now() - hold.since }, 'session lock released: the connection that took it closed without releasing it');
    } else if (reply.kind === 'status' && reply.status === Status.NotFound) {
      this.counters.expiredWhileHeld++;
    } else if (reply.kind === 'serverError') {
      this.options.log.warn({ session, err: reply.message }, 'session lock left by a closed connection could not be released; it expires as set');
    }
    // EXISTS: it expired and another request took it since; that one is left alone.
  }
}

/** A lock a connection holds: the CAS its take answered, and since when. */
export interface Hold {
  readonly style: LockStyle;
  cas: number;
  readonly since: number;
}

/** The session locks one client connection took and has not released. */
export class ConnectionLocks {
  private readonly held = new Map<string, Hold>();
  /**
   * The session (its key) this connection read and has not written or touched since: a request
   * in progress without a lock. null: none.
   */
  private unwritten: string | null = null;
  private closed = false;

  constructor(private readonly locks: SessionLocks, private readonly abandonConnection?: () => void) {}

  /** Closes the connection (SessionLocks.abandonHolders); its locks are released as it closes. */
  abandon(): void {
    this.abandonConnection?.();
  }

  /** A request is in progress: the connection holds a lock, or read a session it has not written. */
  get inProgress(): boolean {
    return this.held.size > 0 || this.unwritten !== null;
  }

  /** `execute` for this connection: the answers to lock commands tell which locks it holds. */
  wrap(execute: Execute): Execute {
    const locks = this.locks;
    const prefix = locks.sessionPrefix;
    return (command) => {
      // An operator's drain: a new request is refused, one in progress goes on.
      if (locks.refusal !== null && !this.inProgress && ('key' in command || 'keys' in command)) {
        return { kind: 'serverError', message: locks.refusal };
      }
      const style = 'key' in command ? lockStyleOf(command.key, prefix) : null;
      if (style === null && prefix !== '') this.followSession(command, prefix);
      const reply = execute(command);
      if (style === null) return reply;
      if (reply instanceof Promise) return reply.then((answer) => { this.observe(command, style, answer); return answer; });
      this.observe(command, style, reply);
      return reply;
    };
  }

  /**
   * A session read (a `get` of one `<prefix><id>` key) begins a request without a lock; a write,
   * touch or delete of that session ends it. Followed as the command is sent, not answered: a read
   * that fails leaves a request in progress until the connection writes or closes, which is the
   * side to err on. Only with a session prefix: pecl memcache's bare keys cannot be told from
   * others, and pecl memcache always locks.
   */
  private followSession(command: Command, prefix: string): void {
    if (command.kind === 'get') {
      if (command.keys.length !== 1 || !command.keys[0]!.startsWith(prefix)) return;
      if (this.unwritten === null && !this.closed) this.locks.reading(this, true);
      this.unwritten = command.keys[0]!;
      return;
    }
    if (this.unwritten === null || !('key' in command) || command.key !== this.unwritten) return;
    if (command.kind === 'store' || command.kind === 'touch' || command.kind === 'delete') {
      this.unwritten = null;
      this.locks.reading(this, false);
    }
  }

  /** The connection closed: every lock it still holds is released. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.unwritten !== null) {
      this.unwritten = null;
      this.locks.reading(this, false);
    }
    for (const [key, hold] of this.held) {
      this.locks.dropped(key);
      this.locks.releaseLeftBehind(key, hold);
    }
    if (this.held.size > 0) this.locks.holding(this, false);
    this.held.clear();
  }

  private observe(command: Command, style: LockStyle, reply: Reply): void {
    if (!('key' in command)) return;
    const key = command.key;
    if (isTake(command, style, reply)) {
      this.take(key, style, (reply as { cas: number }).cas);
      return;
    }
    if (isRefusedTake(command, style, reply)) {
      this.locks.counters.contended++;
      return;
    }
    switch (command.kind) {
      case 'store':
        // pecl memcache releases by setting "0"; a holder that writes its lock otherwise manages it itself.
        if (command.mode !== StoreMode.Add) this.drop(key);
        return;
      case 'delete':
        if (!this.held.has(key)) return;
        this.drop(key);
        if (reply.kind === 'status' && reply.status === Status.NotFound) this.locks.counters.expiredWhileHeld++;
        return;
      default:
    }
  }

  private take(key: string, style: LockStyle, cas: number): void {
    this.locks.counters.acquired++;
    if (this.closed) {
      // Its answer arrived after the connection closed: nobody holds it.
      this.locks.releaseLeftBehind(key, { style, cas, since: Date.now() });
      return;
    }
    if (!this.held.has(key)) {
      this.locks.taken(key);
      if (this.held.size === 0) this.locks.holding(this, true);
    }
    this.held.set(key, { style, cas, since: Date.now() });
  }

  private drop(key: string): void {
    if (!this.held.delete(key)) return;
    this.locks.dropped(key);
    if (this.held.size === 0) this.locks.holding(this, false);
  }
}
