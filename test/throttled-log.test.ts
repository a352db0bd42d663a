import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { pino } from 'pino';
import { Writable } from 'node:stream';
import { ThrottledWarning } from '../src/throttled-log.js';

/** A real pino logger writing into an array, one parsed entry per line. */
function capturingLogger() {
  const entries: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) entries.push(JSON.parse(line));
      done();
    },
  });
  return { log: pino({ level: 'info' }, stream), entries };
}

describe('ThrottledWarning', () => {
  beforeEach(() => { vi.useFakeTimers(); });
  afterEach(() => { vi.useRealTimers(); });

  it('logs the first occurrence at once, then one line per interval with the count since', () => {
    const { log, entries } = capturingLogger();
    const warning = new ThrottledWarning(log, 'evicted', () => ({ total: 42 }), 10_000);
    warning.add(3);
    expect(entries).toMatchObject([{ msg: 'evicted', count: 3, total: 42, level: 40 }]);
    for (let i = 0; i < 600; i++) warning.add();
    expect(entries).toHaveLength(1);
    vi.advanceTimersByTime(10_000);
    expect(entries).toHaveLength(2);
    expect(entries[1]).toMatchObject({ msg: 'evicted', count: 600 });
  });

  it('loses nothing on flush, and logs nothing when nothing happened', () => {
    const { log, entries } = capturingLogger();
    const warning = new ThrottledWarning(log, 'refused', () => ({}), 10_000);
    warning.flush();
    expect(entries).toHaveLength(0);
    warning.add();
    warning.add(5);
    warning.flush();
    expect(entries.map((entry) => entry.count)).toEqual([1, 5]);
    vi.advanceTimersByTime(60_000);
    expect(entries).toHaveLength(2);
  });
});
