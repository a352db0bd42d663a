/**
 * Time as membership sees it, injectable so tests run on a virtual clock (fake timers, or the memory
 * hub's per-node clocks that freeze while a node is "paused").
 */
export interface MembershipClock {
  /** Milliseconds on a monotonic clock: durations only, never compared across nodes. */
  now(): number;
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/**
 * The process clock. Globals are looked up on each call, not captured at load, so fake timers
 * installed later apply. Timers are unref'd: membership alone never keeps the process running.
 */
export const systemClock: MembershipClock = {
  now: () => performance.now(),
  setTimeout: (callback, ms) => {
    const timer = setTimeout(callback, ms);
    timer.unref?.();
    return timer;
  },
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

/**
 * The recommended starting incarnation: the wall clock in seconds. A node that restarts then comes
 * back with a higher incarnation than it had before with no state on disk, because a restart takes
 * longer than a second and refutations (+1 each) are rare. Seconds rather than milliseconds keep it
 * readable in logs and within a uint32 until 2106, should a binary codec ever carry it. If the clock
 * stepped back, or the node refuted more often than once a second, it may start lower than its
 * previous life: still safe, since peers answer its join with what they know of it and it refutes
 * past that (Membership, news about self), one round trip later.
 */
export function clockIncarnation(nowMs: number = Date.now()): number {
  return Math.floor(nowMs / 1000);
}
