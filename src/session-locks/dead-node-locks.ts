/**
 * Session locks left by a node that died (docs/architecture.md, "Session locks"). A PHP request
 * takes its session's lock through the daemon beside it; if that daemon dies (kill -9, a crash, a
 * lost machine), so does the request, and nobody releases the lock: the user's next requests,
 * through the other nodes, wait for it until it expires (php-memcached: max_execution_time, 30 s
 * by default; pecl memcache: 15 s), and php-memcached gives up on it after half a second.
 *
 * When a member is declared dead, each node looks at the locks it masters: a lock that no live
 * node's client connection holds is one whose request died, and is released (a `delete` with the
 * CAS it was found with, replicated as any delete). Which locks a live node's connections hold is
 * asked of it (`stats locks held <key>...`, over the peer link); a node that does not answer (a
 * version without the question) keeps every lock, which then expires as set. This covers both
 * cases: the lock taken through the dead node and forwarded to a live master, and the lock the
 * dead node mastered for its own clients, now mastered by its backup.
 *
 * A lock taken less than `settleMs` ago is looked at again once it is that old: the answer to its
 * take may still be on its way to the node that asked, which records the hold only when it comes.
 */
import type { Logger } from '../log.js';
import type { MemoryStore } from '../store/memory-store.js';
import { isReleasedMemcacheLock, LockStyle, lockStyleOf } from './lock-keys.js';

/** Items looked at between yields to the event loop: a scan does not stall a busy node. */
const SCAN_CHUNK = 20_000;

export interface DeadNodeLocksOptions {
  store: MemoryStore;
  sessionPrefix: string;
  /** whether this node masters `key` now (after the dead member's sessions failed over) */
  mastersHere(key: string): boolean;
  /**
   * whether this node serves now (it has a majority): one cut off from the others sees them all
   * dead, and releases nothing
   */
  serving(): boolean;
  /** whether this node's own client connections hold the lock `key` */
  holdsHere(key: string): boolean;
  /** the live members other than this one */
  liveOthers(): string[];
  /** which of `keys` the client connections of `member` hold; rejects when it cannot say */
  askHeld(member: string, keys: string[]): Promise<Set<string>>;
  /** releases the lock `key` if it still has `cas` */
  release(key: string, style: LockStyle, cas: number, since: number, deadNode: string): Promise<void>;
  /** how long after its take a lock's holder is surely known to hold it (the forward timeout) */
  settleMs: number;
  log: Logger;
  now?: () => number;
}

interface Candidate {
  key: string;
  style: LockStyle;
  cas: number;
  takenAt: number;
}

export class DeadNodeLocks {
  private readonly now: () => number;
  private readonly timers = new Set<NodeJS.Timeout>();
  private stopped = false;

  constructor(private readonly options: DeadNodeLocksOptions) {
    this.now = options.now ?? Date.now;
  }

  /** A member was declared dead: the locks its requests left are released (see above). */
  memberDied(member: string): void {
    this.later(0, member);
  }

  stop(): void {
    this.stopped = true;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
  }

  /** One look at the locks mastered here; settles when their releases have been answered. */
  async scan(deadNode: string): Promise<void> {
    const { store, sessionPrefix, mastersHere, holdsHere, settleMs } = this.options;
    if (!this.options.serving()) return;
    const candidates: Candidate[] = [];
    let seen = 0;
    for (const item of store.liveItems(this.now())) {
      if (this.stopped) return;
      if (++seen % SCAN_CHUNK === 0) await new Promise((resolve) => setImmediate(resolve));
      const style = lockStyleOf(item.key, sessionPrefix);
      if (style === null || !mastersHere(item.key) || holdsHere(item.key)) continue;
      // pecl memcache releases its lock by setting it to "0": that one is free already. One whose
      // value is on disk only is left alone rather than read back here.
      if (style === LockStyle.Memcache && (!item.inMemory || isReleasedMemcacheLock(item.value))) continue;
      candidates.push({ key: item.key, style, cas: item.cas, takenAt: item.writtenAt });
    }
    if (candidates.length === 0 || this.stopped) return;
    const now = this.now();
    const settled = candidates.filter((c) => now - c.takenAt >= settleMs);
    const young = candidates.filter((c) => now - c.takenAt < settleMs);
    if (young.length > 0) this.later(Math.max(...young.map((c) => c.takenAt)) + settleMs - now + 1, deadNode);
    if (settled.length === 0) return;
    const held = await this.heldElsewhere(settled.map((c) => c.key));
    if (held === null || this.stopped) return;
    await Promise.all(settled.filter((c) => !held.has(c.key)).map((c) => this.options.release(c.key, c.style, c.cas, c.takenAt, deadNode)));
  }

  /** The keys among `keys` that a live member's connections hold; null when one could not say. */
  private async heldElsewhere(keys: string[]): Promise<Set<string> | null> {
    const held = new Set<string>();
    const members = this.options.liveOthers();
    const answers = await Promise.allSettled(members.map((member) => this.options.askHeld(member, keys)));
    for (const [i, answer] of answers.entries()) {
      if (answer.status === 'rejected') {
        this.options.log.warn({ member: members[i], locks: keys.length, err: (answer.reason as Error).message },
          'locks left by a dead node kept: a live member could not say which of them its requests hold; they expire as set');
        return null;
      }
      for (const key of answer.value) held.add(key);
    }
    return held;
  }

  private later(delayMs: number, deadNode: string): void {
    if (this.stopped) return;
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      this.scan(deadNode).catch((error: unknown) => this.options.log.warn({ err: (error as Error).message }, 'releasing the locks left by a dead node failed'));
    }, delayMs);
    timer.unref();
    this.timers.add(timer);
  }
}
