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
 * At --max-connections a new connection takes the slot of the one stuck the longest (listeners.ts,
 * reclaimAfterMs), rather than being refused while the sweep catches up.
 *
 * Idle connections are never closed: PHP's persistent connections (php-memcached
 * `memcached.sess_persistent`, pecl memcache `pconnect`) sit idle between requests for as long
 * as the php-fpm worker lives. memcached's `-o idle_timeout` (off by default) would close those;
 * it closes nothing mid-value.
 */

/**
 * How often the sweep runs for a given timeout: a quarter of it, at least every 250 ms, so that
 * at --max-connections a stuck connection is known as stuck soon enough to give its slot away
 * (reclaimAfterMs). A sweep reads two numbers per connection: tens of thousands take well under
 * a millisecond.
 */
export function sweepIntervalMs(timeoutMs: number): number {
  return Math.max(10, Math.min(250, Math.floor(timeoutMs / 4)));
}

/**
 * At --max-connections, a new connection takes the slot of the connection stuck the longest,
 * once that one has been stuck for this long (it was seen stuck by a sweep, so it has really been
 * stuck up to one sweep interval longer): a quarter of a second, or the timeout if shorter. A
 * slow-loris flood thus costs a normal client (a PHP request) no refusal once the flood's
 * connections are that old, instead of a wait for the whole command timeout.
 */
export function reclaimAfterMs(timeoutMs: number): number {
  return Math.min(250, timeoutMs);
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

  /**
   * Since when the part in progress (`mark`) has been stuck, as far as the sweeps know; null if
   * the connection is not mid-request or moved on since the last sweep. Reads, never updates:
   * only the sweep moves the watch.
   */
  stuckSince(mark: number): number | null {
    return mark !== NOT_MID_REQUEST && mark === this.mark ? this.since : null;
  }
}
