/**
 * Measuring peers' clocks from their heartbeats: the best sample of the last seconds (the one
 * that took least to arrive) is the estimate; it can only be below the true offset.
 */
import { describe, expect, it } from 'vitest';
import { ClockOffsets } from '../../src/cluster/membership/clock-offsets.js';
import { relativeExptime } from '../../src/store/expiry.js';

describe('ClockOffsets', () => {
  it('estimates a member\'s offset from its fastest recent heartbeat, and its clock from ours', () => {
    let now = 1_000_000;
    const clocks = new ClockOffsets(() => now);
    expect(clocks.offsetOf('b')).toBeUndefined();
    expect(clocks.nowAt('b'), 'not measured yet: unknown').toBeUndefined();
    // b is 5 s ahead; its heartbeats take 1, 30 and 2 ms to arrive
    for (const delay of [1, 30, 2]) {
      now += 200;
      clocks.observe('b', now - delay + 5000);
    }
    expect(clocks.offsetOf('b')).toBe(4999);
    expect(clocks.nowAt('b')).toBe(now + 4999);
    clocks.observe('c', now - 3_600_000);
    expect(clocks.offsets()).toEqual([['b', 4999], ['c', -3_600_000]]);
  });

  it('forgets samples older than ten seconds, but keeps the newest', () => {
    let now = 0;
    const clocks = new ClockOffsets(() => now);
    clocks.observe('b', now + 100); // a quick one, long ago
    now += 11_000;
    clocks.observe('b', now - 50 + 20); // 20 ms ahead, took 50 ms
    expect(clocks.offsetOf('b')).toBe(-30);
    now += 60_000;
    expect(clocks.offsetOf('b'), 'the last one heard still counts').toBe(-30);
    clocks.forget('b');
    expect(clocks.offsetOf('b')).toBeUndefined();
  });
});

describe('relativeExptime', () => {
  const NOW = 1_700_000_000_000;
  it('turns an absolute unix time into the seconds left, leaves relative ones and far ones alone', () => {
    expect(relativeExptime(0, NOW)).toBe(0);
    expect(relativeExptime(1440, NOW)).toBe(1440);
    expect(relativeExptime(NOW / 1000 + 1440, NOW)).toBe(1440);
    expect(relativeExptime(NOW / 1000 + 0.2, NOW), 'not yet passed: at least a second').toBe(1);
    expect(relativeExptime(NOW / 1000 - 10, NOW), 'passed: expired at once').toBe(-1);
    expect(relativeExptime(NOW / 1000, NOW)).toBe(-1);
    const farAway = NOW / 1000 + 40 * 24 * 3600;
    expect(relativeExptime(farAway, NOW), 'beyond 30 days a relative exptime cannot say it').toBe(farAway);
  });
});
