/**
 * A membership clock on vitest's fake timers, for the in-memory hub: globals are looked up on
 * each call, so they are the faked ones once vi.useFakeTimers() has run.
 */
import type { MembershipClock } from '../../src/cluster/membership/clock.js';

export const fakeClock: MembershipClock = {
  now: () => Date.now(),
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};
