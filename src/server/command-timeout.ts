/**
 * The command timeout (--command-timeout-ms): a client connection stuck in the middle of a
 * request is closed; one that is idle between requests is left alone.
 *
 * Stuck means the same part of a request (an ascii command line or data block, a binary header
 * or body; protocol.txt frames requests this way) has been arriving for the whole timeout. A
 * client that trickles a byte a second is stuck; a client whose request merely spans several
 * reads is not: PHP writes each request at once, and it arrives in milliseconds.
 *
 * Nothing runs per read. One sweep over the connections, every sweepIntervalMs, compares each
 * connection's count of parts received with what it saw the time before (StallWatch): so a
 * connection is closed between `timeoutMs` and `timeoutMs` + one interval after it got stuck.
 *
 * Idle connections are never closed: PHP's persistent connections (php-memcached
 * `memcached.sess_persistent`, pecl memcache `pconnect`) sit idle between requests for as long
 * as the php-fpm worker lives. memcached's `-o idle_timeout` (off by default) would close those;
 * it closes nothing mid-value.
 */

/** How often the sweep runs for a given timeout: a quarter of it, at most once a second. */
export function sweepIntervalMs(timeoutMs: number): number {
  return Math.max(10, Math.min(1000, Math.floor(timeoutMs / 4)));
}

/** What the sweep reads of a connection whose request is not stuck: idle, or waiting on us. */
export const NOT_MID_REQUEST = -1;

/**
 * One connection's watch: the mark the last sweep saw, and since when. A mark is the protocol's
 * count of request parts received while the client is in the middle of one, NOT_MID_REQUEST
 * otherwise; any change of mark is progress, and starts the clock again.
 */
export class StallWatch {
  private mark = NOT_MID_REQUEST;
  private since = 0;

  /** Whether the part in progress at `now` has been stuck for at least `timeoutMs`. */
  stuck(mark: number, now: number, timeoutMs: number): boolean {
    if (mark !== this.mark) {
      this.mark = mark;
      this.since = now;
      return false;
    }
    return mark !== NOT_MID_REQUEST && now - this.since >= timeoutMs;
  }
}
