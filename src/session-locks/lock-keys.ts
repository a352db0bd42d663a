/**
 * Which keys are session locks (docs/architecture.md, "What the PHP side sends"):
 *
 * - php-memcached: `<prefix>lock.<id>` (the prefix is `memcached.sess_prefix`, --session-prefix),
 *   taken with `add` (its value "1"), released with `delete`; held while the key exists.
 * - pecl memcache: `<id>.lock`, taken when `incr <id>.lock 1` answers 1 or the `add` that follows
 *   a miss stores it, released by a `set` of "0" (flags 768, pecl's integer type); held while its
 *   value is not 0.
 *
 * The same rules as the routing key (src/cluster/placement/routing-key.ts), which keeps a lock and
 * its session on the same nodes; a key with nothing left once the markers are taken off is not a
 * lock. Nothing here changes how a key is stored: it tells the layers that watch locks which keys
 * to watch, and what the answer to a lock command says (taken, refused, released).
 */
import { type Command, type Reply, Status, StoreMode } from '../protocol/types.js';

export enum LockStyle {
  /** php-memcached: held while the key exists */
  Memcached = 'php-memcached',
  /** pecl memcache: held while the value is not 0 */
  Memcache = 'pecl-memcache',
}

/** php-memcached's lock key is `<prefix>lock.<id>` (php_memcached_session.c, `"lock.%s"`). */
const MEMCACHED_LOCK_MARK = 'lock.';
/** pecl memcache's lock key is `<id>.lock` (memcache_session.c). */
const MEMCACHE_LOCK_SUFFIX = '.lock';
/** The flags pecl memcache stores its lock with: its type flag for an integer (MMC_TYPE_LONG). */
export const MEMCACHE_LOCK_FLAGS = 768;

/** The style of session lock `key` is, or null for any other key. */
export function lockStyleOf(key: string, sessionPrefix: string): LockStyle | null {
  const memcachedStart = sessionPrefix.length + MEMCACHED_LOCK_MARK.length;
  if (key.length > memcachedStart && key.startsWith(sessionPrefix) && key.startsWith(MEMCACHED_LOCK_MARK, sessionPrefix.length)) return LockStyle.Memcached;
  return isMemcacheLockKey(key) ? LockStyle.Memcache : null;
}

/** Whether `key` has the form of pecl memcache's lock key, `<id>.lock`. */
export function isMemcacheLockKey(key: string): boolean {
  return key.length > MEMCACHE_LOCK_SUFFIX.length && key.endsWith(MEMCACHE_LOCK_SUFFIX);
}

/** The session id inside a lock key of `style`. */
export function sessionIdOfLock(key: string, style: LockStyle, sessionPrefix: string): string {
  return style === LockStyle.Memcached ? key.slice(sessionPrefix.length + MEMCACHED_LOCK_MARK.length) : key.slice(0, -MEMCACHE_LOCK_SUFFIX.length);
}

/** What a log line may show of a session id: its first characters. The whole id is a credential. */
export function idForLog(id: string): string {
  return id.length <= 6 ? `${id.slice(0, 2)}…` : `${id.slice(0, 6)}…`;
}

/** Whether `command`, answered `reply`, took its lock: an add stored, or pecl memcache's incr answering 1. */
export function isTake(command: Command, style: LockStyle, reply: Reply): boolean {
  if (command.kind === 'store') return command.mode === StoreMode.Add && reply.kind === 'status' && reply.status === Status.Stored;
  return style === LockStyle.Memcache && command.kind === 'arith' && command.incr && reply.kind === 'number' && reply.value === 1n;
}

/**
 * Whether `reply` says `command` took no lock because the lock is held: php-memcached's add
 * refused, pecl memcache's incr answering more than 1 (its add that follows is not counted: the
 * incr already was).
 */
export function isRefusedTake(command: Command, style: LockStyle, reply: Reply): boolean {
  if (style === LockStyle.Memcached) return command.kind === 'store' && command.mode === StoreMode.Add && reply.kind === 'status' && reply.status === Status.NotStored;
  return command.kind === 'arith' && command.incr && reply.kind === 'number' && reply.value > 1n;
}

/** Whether `command`, answered `reply`, released its lock: its delete, or pecl memcache's set of "0". */
export function isRelease(command: Command, style: LockStyle, reply: Reply): boolean {
  if (command.kind === 'delete') return reply.kind === 'status' && reply.status === Status.Deleted;
  return style === LockStyle.Memcache && command.kind === 'store' && command.mode === StoreMode.Set && isReleasedMemcacheLock(command.value)
    && reply.kind === 'status' && reply.status === Status.Stored;
}

/** Whether a pecl memcache lock holding `value` is released: "0" (memcache_session.c's release). */
export function isReleasedMemcacheLock(value: Buffer): boolean {
  return value.length === 1 && value[0] === 0x30;
}
