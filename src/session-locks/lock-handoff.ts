/**
 * Lock handoff (--lock-wait-ms; docs/architecture.md, "Session locks"): a request that finds its
 * session locked waits on the server, in line, and gets the lock the moment its holder releases
 * it, instead of polling from PHP in steps of up to 150 ms (php-memcached) or 1 s (pecl memcache).
 *
 * It runs where locks are decided: on the session's master, around the commands run there. A take
 * refused because the lock is held (php-memcached's `add` answered NOT_STORED, pecl memcache's
 * `incr` answering more than 1) is not answered yet: it joins the lock's queue. A release run here
 * (the lock's delete, or pecl memcache's set of "0") runs the first waiter's take again at once,
 * and answers it with what that take answers (STORED, or 1). A waiter still in line after the wait
 * (or the time its forwarding node gives it) runs its take once more and gets what memcached would
 * answer then, so the client's own retries go on as against memcached.
 *
 * A waiter whose client went away is not known here (it may be on another node): it is handed the
 * lock like any other, and its connection, closed, releases it at once (session-locks.ts), which
 * hands it to the next.
 */
import type { Command, Reply } from '../protocol/types.js';
import { isRefusedTake, isRelease, LockStyle, lockStyleOf } from './lock-keys.js';

type Run = (command: Command) => Reply | Promise<Reply>;

interface Waiter {
  readonly command: Command;
  readonly run: Run;
  readonly since: number;
  /** how long it may wait in all */
  readonly waitMs: number;
  readonly resolve: (reply: Reply) => void;
  timer: NodeJS.Timeout | null;
}

/**
 * pecl memcache waits 1 s for an answer (its save_path `timeout`, 1 s by default), and a session
 * read that times out starts the session empty. Its polls wait at most this long on the server,
 * whatever --lock-wait-ms says, so that the answer always comes in time.
 */
export const MEMCACHE_POLL_WAIT_MAX_MS = 800;

/** Wait times, ms, kept as a histogram with these upper bounds (the last: everything longer). */
const WAIT_BUCKETS_MS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 30_000, Infinity];

export class LockHandoff {
  /** requests waiting for a lock now */
  waitingNow = 0;
  /** waits that ended with the lock handed over on its release */
  handedOff = 0;
  /** waits that ran out of time */
  timedOut = 0;
  private readonly waitCounts = new Array<number>(WAIT_BUCKETS_MS.length).fill(0);
  private readonly queues = new Map<string, Waiter[]>();
  /** per lock with waiters: a wake-up when the held lock expires (its holder never released it) */
  private readonly expiryTimers = new Map<string, NodeJS.Timeout>();

  constructor(private readonly options: {
    waitMs: number;
    sessionPrefix: string;
    now?: () => number;
    /** when the lock held under `key` expires (ms; 0 never), or null when none is held here */
    lockExpiresAt?: (key: string) => number | null;
  }) {}

  get waitMs(): number {
    return this.options.waitMs;
  }

  /**
   * Runs `command` with `run`. A lock take refused because the lock is held waits, up to the wait
   * or `budgetMs`, whichever is shorter; a release wakes the first waiter.
   */
  execute(command: Command, run: Run, budgetMs = Infinity): Reply | Promise<Reply> {
    const style = 'key' in command ? lockStyleOf(command.key, this.options.sessionPrefix) : null;
    if (style === null) return run(command);
    const reply = run(command);
    if (reply instanceof Promise) return reply.then((answer) => this.after(command, style, answer, run, budgetMs));
    return this.after(command, style, reply, run, budgetMs);
  }

  /** Wait time percentile `p` (0 to 1) of the waits that ended, ms: the upper bound of its bucket; 0 before any. */
  waitPercentileMs(p: number): number {
    const total = this.waitCounts.reduce((sum, n) => sum + n, 0);
    if (total === 0) return 0;
    let seen = 0;
    for (let i = 0; i < this.waitCounts.length; i++) {
      seen += this.waitCounts[i]!;
      if (seen >= p * total) return Number.isFinite(WAIT_BUCKETS_MS[i]!) ? WAIT_BUCKETS_MS[i]! : WAIT_BUCKETS_MS.at(-2)!;
    }
    return 0;
  }

  private after(command: Command, style: LockStyle, reply: Reply, run: Run, budgetMs: number): Reply | Promise<Reply> {
    const key = (command as { key: string }).key;
    if (isRelease(command, style, reply)) this.wake(key);
    if (!isRefusedTake(command, style, reply)) return reply;
    const waitMs = Math.min(style === LockStyle.Memcache ? Math.min(this.options.waitMs, MEMCACHE_POLL_WAIT_MAX_MS) : this.options.waitMs, budgetMs);
    if (waitMs < 1) return reply;
    return new Promise<Reply>((resolve) => {
      const waiter: Waiter = { command, run, since: this.now(), waitMs, resolve, timer: null };
      waiter.timer = setTimeout(() => this.giveUp(key, waiter), waitMs);
      let queue = this.queues.get(key);
      if (queue === undefined) this.queues.set(key, (queue = []));
      queue.push(waiter);
      this.waitingNow++;
      this.armExpiry(key);
    });
  }

  /**
   * A lock that expires is as good as released: its first waiter is woken then, rather than
   * waiting out the handoff time (a holder that hung, or one whose release was lost).
   */
  private armExpiry(key: string): void {
    const expiresAt = this.options.lockExpiresAt?.(key);
    if (expiresAt === undefined || expiresAt === null || expiresAt === 0) return;
    const previous = this.expiryTimers.get(key);
    if (previous !== undefined) clearTimeout(previous);
    // A millisecond past the expiry: the store counts an item expired from that instant on.
    const timer = setTimeout(() => {
      this.expiryTimers.delete(key);
      this.wake(key);
    }, Math.max(1, expiresAt - this.now() + 1));
    timer.unref();
    this.expiryTimers.set(key, timer);
  }

  private disarmExpiry(key: string): void {
    const timer = this.expiryTimers.get(key);
    if (timer === undefined) return;
    clearTimeout(timer);
    this.expiryTimers.delete(key);
  }

  /** The lock of `key` was released: its first waiter takes it, if the take succeeds. */
  private wake(key: string): void {
    const queue = this.queues.get(key);
    const waiter = queue?.shift();
    if (waiter === undefined) return;
    if (queue!.length === 0) {
      this.queues.delete(key);
      this.disarmExpiry(key);
    }
    this.waitingNow--;
    clearTimeout(waiter.timer!);
    const settle = (reply: Reply) => {
      const style = lockStyleOf(key, this.options.sessionPrefix)!;
      if (isRefusedTake(waiter.command, style, reply)) {
        // Taken by someone outside the line in between: back to the front, for the next release.
        const back = this.queues.get(key) ?? [];
        back.unshift(waiter);
        this.queues.set(key, back);
        this.waitingNow++;
        waiter.timer = setTimeout(() => this.giveUp(key, waiter), Math.max(1, waiter.waitMs - (this.now() - waiter.since)));
        this.armExpiry(key);
        return;
      }
      this.handedOff++;
      this.ended(waiter);
      // The others now wait for the new holder, whose lock expires in its own time.
      if (this.queues.has(key)) this.armExpiry(key);
      waiter.resolve(reply);
    };
    const reply = this.run(waiter);
    if (reply instanceof Promise) void reply.then(settle);
    else settle(reply);
  }

  /** The wait ran out: the take is run once more, and answered as it is then. */
  private giveUp(key: string, waiter: Waiter): void {
    const queue = this.queues.get(key);
    const at = queue?.indexOf(waiter) ?? -1;
    if (at < 0) return;
    queue!.splice(at, 1);
    if (queue!.length === 0) {
      this.queues.delete(key);
      this.disarmExpiry(key);
    }
    this.waitingNow--;
    this.timedOut++;
    this.ended(waiter);
    const reply = this.run(waiter);
    if (reply instanceof Promise) void reply.then(waiter.resolve);
    else waiter.resolve(reply);
  }

  private run(waiter: Waiter): Reply | Promise<Reply> {
    try {
      return waiter.run(waiter.command);
    } catch (error) {
      return { kind: 'serverError', message: `internal error: ${(error as Error).message}` };
    }
  }

  private ended(waiter: Waiter): void {
    const waited = this.now() - waiter.since;
    const bucket = WAIT_BUCKETS_MS.findIndex((bound) => waited <= bound);
    this.waitCounts[bucket]!++;
  }

  private now(): number {
    return (this.options.now ?? Date.now)();
  }
}
