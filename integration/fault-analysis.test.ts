/**
 * The fault scenarios' bookkeeping (integration/fault-analysis.ts) on made-up histories: which
 * keys count as lost, which reads as stale, and the figures over a window. No process is started.
 */
import { describe, expect, it } from 'vitest';
import {
  analyze, figures, findFailedButApplied, findLost, findStaleReads, percentile, summaryLine,
  type FinalRead, type OpRecord,
} from './fault-analysis.js';

let clock = 0;
function op(kind: OpRecord['kind'], key: string, value: string | null, start: number, end: number, outcome: OpRecord['outcome'] = 'ok', node = 'n1'): OpRecord {
  clock++;
  return { client: `c${clock}`, node, kind, key, value, start, end, outcome, reply: outcome };
}
const set = (key: string, value: string, start: number, end: number, outcome: OpRecord['outcome'] = 'ok') => op('set', key, value, start, end, outcome);
const get = (key: string, value: string | null, start: number, end: number, outcome: OpRecord['outcome'] = 'ok') => op('get', key, value, start, end, outcome);
const finals = (key: string, ...values: Array<string | null>): FinalRead[] => values.map((value, i) => ({ node: `n${i}`, key, value }));

describe('lost writes', () => {
  const history = [set('k', 'v1', 0, 10), set('k', 'v2', 20, 30, 'failed'), set('k', 'v3', 40, 50)];

  it('a key is kept when every node returns its last acknowledged value', () => {
    expect(findLost(history, finals('k', 'v3', 'v3', 'v3'))).toEqual([]);
  });

  it('a key is lost when one node returns an older value, or a failed write\'s value', () => {
    const older = findLost(history, finals('k', 'v3', 'v1', 'v3'));
    expect(older).toHaveLength(1);
    expect(older[0]).toMatchObject({ key: 'k', expected: 'v3', got: [{ node: 'n1', value: 'v1' }] });
    const failedWon = findLost(history, finals('k', 'v2', 'v2', 'v2'));
    expect(failedWon).toHaveLength(1);
    expect(failedWon[0]!.foundWrite).toMatchObject({ value: 'v2', outcome: 'failed' });
  });

  it('an unknown write sent after the last acknowledged one may be what is left', () => {
    const h = [set('k', 'v1', 0, 10), set('k', 'v2', 20, 10_020, 'unknown')];
    expect(findLost(h, finals('k', 'v2', 'v2'))).toEqual([]);
    expect(findLost(h, finals('k', 'v1', 'v1'))).toEqual([]);
  });

  it('an unknown write sent before the last acknowledged one showing up at the end is a loss', () => {
    const h = [set('k', 'v0', 0, 10_000, 'unknown'), set('k', 'v1', 10_001, 10_010)];
    expect(findLost(h, finals('k', 'v0', 'v0'))).toHaveLength(1);
  });

  it('of two acknowledged writes that overlapped, either may be last', () => {
    const h = [set('k', 'a', 0, 100), set('k', 'b', 50, 60)];
    expect(findLost(h, finals('k', 'b', 'b'))).toEqual([]);
    expect(findLost(h, finals('k', 'a', 'a'))).toEqual([]);
  });

  it('keys with no acknowledged write are not counted; a delete expects a miss', () => {
    expect(findLost([set('x', 'v', 0, 10, 'failed')], finals('x', 'v'))).toEqual([]);
    const h = [set('k', 'v1', 0, 10), op('delete', 'k', null, 20, 30)];
    expect(findLost(h, finals('k', null, null))).toEqual([]);
    expect(findLost(h, finals('k', null, 'v1'))).toHaveLength(1);
  });

  it('a node that cannot be read, or no final read at all, counts as lost', () => {
    expect(findLost([set('k', 'v', 0, 10)], [{ node: 'n0', key: 'k', value: null, error: 'SERVER_ERROR' }])).toHaveLength(1);
    expect(findLost([set('k', 'v', 0, 10)], [])).toHaveLength(1);
  });
});

describe('stale reads', () => {
  const writes = [set('k', 'v1', 0, 10), set('k', 'v2', 20, 30)];

  it('a read that returns a value older than the newest write acknowledged before it started is stale', () => {
    const stale = findStaleReads([...writes, get('k', 'v1', 40, 45)]);
    expect(stale).toHaveLength(1);
    expect(stale[0]!.newest.value).toBe('v2');
    expect(findStaleReads([...writes, get('k', null, 40, 45)])).toHaveLength(1);
    expect(findStaleReads([...writes, get('k', 'not written', 40, 45)])).toHaveLength(1);
  });

  it('a read that returns the newest value, or overlaps the write of a newer one, is not', () => {
    expect(findStaleReads([...writes, get('k', 'v2', 40, 45)])).toEqual([]);
    // v2 was not acknowledged yet when the read started
    expect(findStaleReads([...writes, get('k', 'v1', 25, 35)])).toEqual([]);
    expect(findStaleReads([...writes, get('k', 'v2', 25, 35)])).toEqual([]);
    // a miss before any acknowledged write
    expect(findStaleReads([set('k', 'v1', 10, 20), get('k', null, 5, 15)])).toEqual([]);
  });

  it('a value from a write that may have been applied after the newest acknowledged one is not stale', () => {
    const unknown = set('k', 'v3', 32, 10_032, 'unknown');
    expect(findStaleReads([...writes, unknown, get('k', 'v3', 40, 45)])).toEqual([]);
    const failed = set('k', 'v4', 31, 33, 'failed');
    const h = [...writes, failed, get('k', 'v4', 40, 45)];
    expect(findStaleReads(h)).toEqual([]);
    // ... but a failed write that took effect is reported as such
    expect(findFailedButApplied(h, [])).toEqual([failed]);
  });

  it('failed and unknown reads are never stale', () => {
    expect(findStaleReads([...writes, get('k', null, 40, 45, 'failed'), get('k', null, 40, 10_040, 'unknown')])).toEqual([]);
  });
});

describe('figures', () => {
  it('nearest-rank percentiles', () => {
    const xs = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(xs, 50)).toBe(50);
    expect(percentile(xs, 99)).toBe(99);
    expect(percentile([7], 99)).toBe(7);
    expect(percentile([], 99)).toBe(0);
  });

  it('counts writes by outcome, latency and the acknowledged rate within a window', () => {
    const h: OpRecord[] = [];
    // 10 writes a second for 10 s, each taking 5 ms; between 4 s and 6 s they fail after 1 s.
    for (let t = 0; t < 10_000; t += 100) {
      const failing = t >= 4000 && t < 6000;
      h.push(set(`k${t}`, `v${t}`, t, t + (failing ? 1000 : 5), failing ? 'failed' : 'ok'));
      h.push(get(`k${t}`, `v${t}`, t + 50, t + 55));
    }
    const before = figures(h, { from: 0, to: 4000 });
    expect(before).toMatchObject({ writes: 40, acknowledged: 40, failed: 0, p99: 5, reads: 40, staleReads: 0 });
    expect(before.writeRate).toBeCloseTo(10);
    const during = figures(h, { from: 4000, to: 6000 });
    expect(during).toMatchObject({ writes: 20, acknowledged: 0, failed: 20, p50: 1000, p99: 1000 });
    expect(during.writeRate).toBe(0);
    const all = analyze(h, h.filter((o) => o.kind === 'set' && o.outcome === 'ok').map((o) => ({ node: 'n0', key: o.key, value: o.value })));
    expect(all).toMatchObject({ writes: 100, acknowledged: 80, failed: 20, unknown: 0 });
    expect(all.lost).toEqual([]);
    expect(summaryLine(all)).toMatch(/^acknowledged 80, lost 0, stale reads 0, failed 20, unknown 0, p99 1\.00 s/);
  });
});

describe('the default window', () => {
  it('holds every operation, also one sent and answered in the last millisecond', () => {
    const f = figures([set('a', '1', 0, 10), set('b', '2', 10, 10)]);
    expect(f.writes).toBe(2);
    expect(f.acknowledged).toBe(2);
  });
});
