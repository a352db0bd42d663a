/**
 * memcached's exptime rules (protocol.txt, "Storage commands"):
 * - 0: the item never expires;
 * - up to 30 days (2592000 s): seconds from now;
 * - above that: an absolute unix time, so a time in the past stores an item that is already
 *   expired (libmemcached's existence probe `add <key> 0 2678400 0` relies on this);
 * - negative: the item is immediately expired.
 */
export const RELATIVE_EXPTIME_LIMIT = 60 * 60 * 24 * 30;

/** Sentinel expiry for "already expired": any time in the past works, 1 ms is the clearest. */
export const ALREADY_EXPIRED = 1;

/** Converts a wire exptime (seconds) to an absolute expiry in ms since the epoch; 0 means never. */
export function expiresAtFromExptime(exptime: number, nowMs: number): number {
  if (exptime === 0) return 0;
  if (exptime < 0) return ALREADY_EXPIRED;
  if (exptime <= RELATIVE_EXPTIME_LIMIT) return nowMs + exptime * 1000;
  const absoluteMs = exptime * 1000;
  return absoluteMs <= nowMs ? ALREADY_EXPIRED : absoluteMs;
}

export function isExpired(expiresAt: number, nowMs: number): boolean {
  return expiresAt !== 0 && expiresAt <= nowMs;
}

/**
 * The same expiry as an exptime that does not depend on whose clock reads it: an absolute unix
 * time becomes the seconds left until it (negative when it has passed), as long as that is
 * within the 30 days a relative exptime may say; anything else is returned as it is. A node
 * that forwards a command converts with its own clock, the one PHP beside it used to compute
 * the absolute time, so a master whose clock differs keeps the session exactly as long.
 */
export function relativeExptime(exptime: number, nowMs: number): number {
  if (exptime <= RELATIVE_EXPTIME_LIMIT) return exptime;
  const leftMs = exptime * 1000 - nowMs;
  if (leftMs <= 0) return -1;
  const seconds = Math.max(1, Math.round(leftMs / 1000));
  return seconds <= RELATIVE_EXPTIME_LIMIT ? seconds : exptime;
}
