/**
 * The routing key: the part of a memcached key that placement hashes, so that a session and its
 * lock keys always have the same master and backup (docs/architecture.md, "Routing key"). Locks are decided by
 * the master alone (docs/architecture.md, "Request flow"), which only works if the lock key and the session key
 * land on the same node.
 *
 * What the PHP extensions send (docs/architecture.md, "What the PHP side sends"):
 * - php-memcached: `<prefix><sid>` and `<prefix>lock.<sid>`. The extension builds `lock.<sid>` itself
 *   and libmemcached prepends `memcached.sess_prefix` (default `memc.sess.key.`) to every key
 *   (MEMCACHED_CALLBACK_PREFIX_KEY), so `lock.` only means "lock" right after the prefix;
 * - pecl memcache: `<sid>` and `<sid>.lock`.
 *
 * Keys are latin1 strings (one char per raw byte); nothing here decodes or re-encodes them.
 */

/** php-memcached's default `memcached.sess_prefix`. */
export const DEFAULT_SESSION_PREFIX = 'memc.sess.key.';

/** php-memcached's lock key is `lock.<sid>` (php_memcached_session.c, `"lock.%s"`). */
const LOCK_PREFIX = 'lock.';

/** pecl memcache's lock key is `<sid>.lock`. */
const LOCK_SUFFIX = '.lock';

/**
 * Maps a memcached key to the key that placement hashes. The steps, in order:
 * 1. strip `sessionPrefix` if the key starts with it;
 * 2. only if step 1 matched, strip a leading `lock.` — a plain key such as `lock.jobs` is not a
 *    session lock and routes by itself (plain memcached use still works). An empty `sessionPrefix`
 *    (php-memcached with `memcached.sess_prefix=""` sends a bare `lock.<sid>`) always matches;
 * 3. strip one trailing `.lock`, whether or not step 1 matched (pecl memcache sends no prefix).
 *
 * Edge cases, all deliberate:
 * - nothing left after stripping (`memc.sess.key.`, `memc.sess.key.lock.`, `.lock`, ``): route by
 *   the whole key, unchanged — an empty routing key would pile every such key onto one node and
 *   mean nothing;
 * - each step strips at most once: `<sid>.lock.lock` routes as `<sid>.lock`;
 * - the `.lock` suffix must lie wholly after what steps 1–2 stripped: `memc.sess.key.lock` routes
 *   as `lock` (the prefix is stripped; `lock` neither starts with `lock.` nor ends with `.lock`);
 * - matching is exact and case-sensitive (`<sid>.LOCK` routes by itself), like memcached keys;
 * - PHP session ids use `[a-zA-Z0-9,-]` only, never `.`, so a real session id is never altered
 *   by step 3 and two different sessions never share a routing key by accident.
 */
export function routingKey(key: string, sessionPrefix: string = DEFAULT_SESSION_PREFIX): string {
  let start = 0;
  let end = key.length;
  if (key.startsWith(sessionPrefix)) {
    start = sessionPrefix.length;
    if (key.startsWith(LOCK_PREFIX, start)) start += LOCK_PREFIX.length;
  }
  if (end - start >= LOCK_SUFFIX.length && key.endsWith(LOCK_SUFFIX)) end -= LOCK_SUFFIX.length;
  if (start >= end) return key;
  return start === 0 && end === key.length ? key : key.slice(start, end);
}
