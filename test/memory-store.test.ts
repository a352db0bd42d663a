/**
 * MemoryStore: the memory cap with least-recently-used eviction, the expired-item sweeper, CAS
 * uniques, incr/decr (memcached protocol.txt, "Increment/Decrement") and append/prepend.
 * Time is passed in, so every expiry is worked out by hand.
 */
import { describe, expect, it } from 'vitest';
import { StoreMode, WriteStatus } from '../src/store/types.js';
import { type ArithResult, type Item, ITEM_OVERHEAD_BYTES, type WriteResult } from '../src/store/change.js';
import { MemoryStore, parseCounter } from '../src/store/memory-store.js';

const NOW = 1_700_000_000_000;
const UINT64_MAX = (1n << 64n) - 1n;

/** incr/decr's new number, or its status when there is none. */
const outcome = (result: ArithResult) => result.value ?? result.status;
/** The CAS unique a write gave its item. */
const casOf = (result: WriteResult) => (result.change as Item).cas;

/** What an item with this key and value costs against the memory limit. */
const cost = (key: string, value: string) => key.length + value.length + ITEM_OVERHEAD_BYTES;

function newStore(options: { memoryLimit?: number; maxItemSize?: number } = {}) {
  const evictions: number[] = [];
  const store = new MemoryStore({
    memoryLimit: options.memoryLimit ?? 1024 * 1024,
    maxItemSize: options.maxItemSize ?? 1024,
    onEvict: (count) => evictions.push(count),
  });
  const set = (key: string, value: string, now = NOW, exptime = 0, flags = 0) =>
    store.store(StoreMode.Set, key, flags, exptime, Buffer.from(value), 0, now);
  const read = (key: string, now = NOW) => store.get(key, now)?.value.toString() ?? null;
  return { store, evictions, set, read };
}

describe('memory limit and LRU eviction', () => {
  const VALUE = 'v'.repeat(40);
  /** room for exactly three items of key length 1 and VALUE */
  const LIMIT = 3 * cost('a', VALUE);

  it('evicts the oldest item first, counts it and reports it', () => {
    const { store, evictions, set, read } = newStore({ memoryLimit: LIMIT });
    for (const key of ['a', 'b', 'c']) expect(set(key, VALUE).status).toBe(WriteStatus.Stored);
    expect(store.bytes).toBe(LIMIT);
    expect(store.counters.evictions).toBe(0);

    expect(set('d', VALUE).status).toBe(WriteStatus.Stored);
    expect(read('a')).toBeNull();
    expect([read('b'), read('c'), read('d')]).toEqual([VALUE, VALUE, VALUE]);
    expect(store.itemCount).toBe(3);
    expect(store.bytes).toBe(LIMIT);
    expect(store.counters.evictions).toBe(1);
    expect(evictions).toEqual([1]);

    expect(set('e', VALUE).status).toBe(WriteStatus.Stored);
    expect(read('b')).toBeNull();
    expect(store.counters.evictions).toBe(2);
    expect(evictions).toEqual([1, 1]);
  });

  it('keeps an item that was read recently', () => {
    const { store, set, read } = newStore({ memoryLimit: LIMIT });
    for (const key of ['a', 'b', 'c']) set(key, VALUE);
    // Items move to the young end at most once a second (memcached's ITEM_UPDATE_INTERVAL).
    const later = NOW + 1_000;
    expect(read('a', later)).toBe(VALUE);
    set('d', VALUE, later);
    expect(read('a', later)).toBe(VALUE);
    expect(read('b', later)).toBeNull();
    expect(store.counters.evictions).toBe(1);
  });

  it('keeps an item that was touched, or that an add found, recently', () => {
    const { store, set, read } = newStore({ memoryLimit: LIMIT });
    for (const key of ['a', 'b', 'c']) set(key, VALUE);
    const later = NOW + 1_000;
    expect(store.touch('a', 0, later).change?.key).toBe('a');
    expect(store.store(StoreMode.Add, 'b', 0, 0, Buffer.from('x'), 0, later).status).toBe(WriteStatus.NotStored);
    set('d', VALUE, later);
    expect([read('a', later), read('b', later), read('c', later), read('d', later)]).toEqual([VALUE, VALUE, null, VALUE]);
  });

  it('evicts as many items as a large one needs, in one report', () => {
    const { store, evictions, set, read } = newStore({ memoryLimit: LIMIT });
    for (const key of ['a', 'b', 'c']) set(key, VALUE);
    // two items' worth
    const big = 'x'.repeat(2 * cost('a', VALUE) - ITEM_OVERHEAD_BYTES - 1);
    expect(set('z', big).status).toBe(WriteStatus.Stored);
    expect([read('a'), read('b'), read('c')]).toEqual([null, null, VALUE]);
    expect(read('z')).toBe(big);
    expect(store.bytes).toBe(LIMIT);
    expect(evictions).toEqual([2]);
  });

  it('replacing an item frees the old one first, so nothing is evicted', () => {
    const { store, set, read } = newStore({ memoryLimit: LIMIT });
    for (const key of ['a', 'b', 'c']) set(key, VALUE);
    expect(set('a', VALUE.toUpperCase()).status).toBe(WriteStatus.Stored);
    expect(store.counters.evictions).toBe(0);
    expect(read('b')).toBe(VALUE);
    expect(store.bytes).toBe(LIMIT);
  });

  it('bytes follows stores, deletes and flush', () => {
    const { store, set } = newStore();
    set('a', 'xx');
    set('bb', 'yyy');
    expect(store.bytes).toBe(cost('a', 'xx') + cost('bb', 'yyy'));
    expect(store.delete('a', 0, NOW).status).toBe(WriteStatus.Deleted);
    expect(store.bytes).toBe(cost('bb', 'yyy'));
    store.flush();
    expect(store.bytes).toBe(0);
    expect(store.itemCount).toBe(0);
    expect(store.get('bb', NOW)).toBeUndefined();
  });
});

describe('expiry and sweepExpired', () => {
  it('an item expires at its time, and a read of it counts as expired', () => {
    const { store, set, read } = newStore();
    set('k', 'v', NOW, 10);
    expect(read('k', NOW + 9_999)).toBe('v');
    expect(read('k', NOW + 10_000)).toBeNull();
    expect(store.counters.getExpired).toBe(1);
    expect(store.itemCount).toBe(0);
    expect(store.bytes).toBe(0);
  });

  it('reclaims expired items without a read, and counts them', () => {
    const { store, set } = newStore();
    set('keep1', 'v', NOW, 0);
    set('gone1', 'v', NOW, 10);
    set('keep2', 'v', NOW, 100);
    set('gone2', 'v', NOW, 5);
    set('gone3', 'v', NOW, -1);
    expect(store.sweepExpired(NOW + 1, 100)).toBe(1);
    expect(store.sweepExpired(NOW + 10_000, 100)).toBe(2);
    expect(store.itemCount).toBe(2);
    expect(store.bytes).toBe(2 * cost('keep1', 'v'));
    expect(store.counters.reclaimed).toBe(3);
    expect(store.counters.expiredUnfetched).toBe(3);
    expect(store.get('keep1', NOW + 10_000)?.value.toString()).toBe('v');
    expect(store.get('keep2', NOW + 10_000)?.value.toString()).toBe('v');
  });

  it('scans at most `budget` items a call and resumes where it stopped', () => {
    const { store, set } = newStore();
    for (let i = 0; i < 10; i++) set(`k${i}`, 'v', NOW, 1);
    const later = NOW + 1_000;
    expect([store.sweepExpired(later, 4), store.sweepExpired(later, 4), store.sweepExpired(later, 4), store.sweepExpired(later, 4)])
      .toEqual([4, 4, 2, 0]);
    expect(store.itemCount).toBe(0);
    expect(store.bytes).toBe(0);
  });

  it('reclaims nothing before items expire', () => {
    const { store, set } = newStore();
    set('a', 'v', NOW, 10);
    expect(store.sweepExpired(NOW + 9_999, 100)).toBe(0);
    expect(store.itemCount).toBe(1);
    expect(store.counters.reclaimed).toBe(0);
  });
});

describe('CAS uniques', () => {
  it('every successful write gets a new, larger unique, reported with its change', () => {
    const { store, set } = newStore();
    const seen: number[] = [];
    const write = (result: WriteResult) => {
      expect(result.status).toBe(WriteStatus.Stored);
      seen.push(casOf(result));
    };
    write(set('a', '1'));
    write(set('b', '1'));
    write(set('a', '2'));
    write(store.store(StoreMode.Append, 'a', 0, 0, Buffer.from('0'), 0, NOW));
    write(store.store(StoreMode.Prepend, 'a', 0, 0, Buffer.from('1'), 0, NOW));
    write(store.arith('a', true, 1n, null, 0, 0, NOW));
    write(store.store(StoreMode.Cas, 'a', 0, 0, Buffer.from('x'), store.get('a', NOW)!.cas, NOW));
    write(store.store(StoreMode.Replace, 'b', 0, 0, Buffer.from('y'), 0, NOW));
    expect(seen).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(store.get('a', NOW)!.cas).toBe(7);
    expect(store.get('b', NOW)!.cas).toBe(8);
  });

  it('uniques are distinct across keys', () => {
    const { store, set } = newStore();
    for (let i = 0; i < 200; i++) set(`k${i}`, 'v');
    const uniques = new Set(Array.from({ length: 200 }, (_, i) => store.get(`k${i}`, NOW)!.cas));
    expect(uniques.size).toBe(200);
  });

  it('failed writes, reads and touches leave the unique as it is', () => {
    const { store, set } = newStore();
    set('a', '1');
    const cas = store.get('a', NOW)!.cas;
    expect(store.store(StoreMode.Add, 'a', 0, 0, Buffer.from('2'), 0, NOW).status).toBe(WriteStatus.NotStored);
    expect(store.store(StoreMode.Replace, 'x', 0, 0, Buffer.from('2'), 0, NOW).status).toBe(WriteStatus.NotStored);
    expect(store.store(StoreMode.Cas, 'a', 0, 0, Buffer.from('2'), cas + 1, NOW).status).toBe(WriteStatus.Exists);
    expect(store.touch('a', 100, NOW).change?.key).toBe('a');
    expect(store.getAndTouch('a', 100, NOW)!.cas).toBe(cas);
    expect(store.get('a', NOW)!.cas).toBe(cas);
    expect(casOf(set('b', '1'))).toBe(cas + 1);
  });

  it('cas counts hits, bad values and misses', () => {
    const { store, set } = newStore();
    set('a', '1');
    expect(store.store(StoreMode.Cas, 'a', 0, 0, Buffer.from('2'), 99, NOW).status).toBe(WriteStatus.Exists);
    expect(store.store(StoreMode.Cas, 'x', 0, 0, Buffer.from('2'), 1, NOW).status).toBe(WriteStatus.NotFound);
    expect(store.store(StoreMode.Cas, 'a', 0, 0, Buffer.from('2'), 1, NOW).status).toBe(WriteStatus.Stored);
    expect([store.counters.casHits, store.counters.casBadval, store.counters.casMisses]).toEqual([1, 1, 1]);
  });

  it('Set with a cas acts as cas; delete with a cas deletes only a match', () => {
    const { store, set, read } = newStore();
    set('a', '1');
    expect(store.store(StoreMode.Set, 'a', 0, 0, Buffer.from('2'), 5, NOW).status).toBe(WriteStatus.Exists);
    expect(store.store(StoreMode.Set, 'a', 0, 0, Buffer.from('2'), 1, NOW).status).toBe(WriteStatus.Stored);
    expect(store.delete('a', 1, NOW).status).toBe(WriteStatus.Exists);
    expect(read('a')).toBe('2');
    expect(store.delete('a', 2, NOW).status).toBe(WriteStatus.Deleted);
    expect(read('a')).toBeNull();
  });
});

describe('incr/decr', () => {
  it('parseCounter reads what memcached\'s safe_strtoull reads', () => {
    const cases: Array<[string, bigint | null]> = [
      ['0', 0n], ['42', 42n], ['007', 7n], ['  12  ', 12n], ['18446744073709551615', UINT64_MAX],
      ['18446744073709551616', null], ['000000000000000000001', null], ['', null], ['   ', null], ['12a', null],
      ['-1', null], ['+1', null], ['1 2', null], ['1.0', null], ['\t1', null], ['1\r\n', null],
    ];
    for (const [text, expected] of cases) expect(parseCounter(Buffer.from(text)), JSON.stringify(text)).toBe(expected);
  });

  it('incr adds and wraps at 2^64; decr subtracts and stops at 0', () => {
    const { store, set, read } = newStore();
    set('n', '10');
    expect(outcome(store.arith('n', true, 5n, null, 0, 0, NOW))).toBe(15n);
    expect(outcome(store.arith('n', false, 3n, null, 0, 0, NOW))).toBe(12n);
    expect(outcome(store.arith('n', false, 100n, null, 0, 0, NOW))).toBe(0n);
    expect(outcome(store.arith('n', true, UINT64_MAX, null, 0, 0, NOW))).toBe(UINT64_MAX);
    expect(outcome(store.arith('n', true, 1n, null, 0, 0, NOW))).toBe(0n);
    set('m', '18446744073709551610');
    expect(outcome(store.arith('m', true, 10n, null, 0, 0, NOW))).toBe(4n);
    expect(read('m')).toBe('4');
    set('p', '  7 ');
    expect(outcome(store.arith('p', true, 1n, null, 0, 0, NOW))).toBe(8n);
    expect(read('p')).toBe('8');
  });

  it('keeps the item\'s flags and expiry', () => {
    const { store } = newStore();
    store.store(StoreMode.Set, 'n', 42, 100, Buffer.from('1'), 0, NOW);
    expect(outcome(store.arith('n', true, 1n, null, 0, 0, NOW + 50_000))).toBe(2n);
    expect(store.get('n', NOW + 99_999)!.flags).toBe(42);
    expect(store.get('n', NOW + 100_000)).toBeUndefined();
  });

  it('a missing item is NotFound, or created with the initial value', () => {
    const { store, read } = newStore();
    expect(outcome(store.arith('x', true, 1n, null, 0, 0, NOW))).toBe(WriteStatus.NotFound);
    expect(outcome(store.arith('x', false, 1n, null, 0, 0, NOW))).toBe(WriteStatus.NotFound);
    expect(store.itemCount).toBe(0);
    expect(outcome(store.arith('x', true, 5n, 100n, 10, 0, NOW))).toBe(100n);
    expect(read('x')).toBe('100');
    expect(store.get('x', NOW + 10_000)).toBeUndefined();
    expect(store.counters.incrMisses).toBe(2);
    expect(store.counters.decrMisses).toBe(1);
  });

  it('a non-numeric value, or a cas that does not match, changes nothing', () => {
    const { store, set, read } = newStore();
    set('t', 'abc');
    set('big', '18446744073709551616');
    set('n', '5');
    expect(outcome(store.arith('t', true, 1n, null, 0, 0, NOW))).toBe(WriteStatus.NonNumeric);
    expect(outcome(store.arith('big', false, 1n, null, 0, 0, NOW))).toBe(WriteStatus.NonNumeric);
    expect(outcome(store.arith('n', true, 1n, null, 0, 99, NOW))).toBe(WriteStatus.Exists);
    expect([read('t'), read('big'), read('n')]).toEqual(['abc', '18446744073709551616', '5']);
    expect([store.counters.incrHits, store.counters.decrHits]).toEqual([0, 0]);
  });
});

describe('append/prepend', () => {
  it('keep the item\'s flags and exptime, whatever the command carries', () => {
    const { store } = newStore();
    store.store(StoreMode.Set, 'k', 5, 100, Buffer.from('mid'), 0, NOW);
    expect(store.store(StoreMode.Append, 'k', 9, 0, Buffer.from('>'), 0, NOW + 50_000).status).toBe(WriteStatus.Stored);
    expect(store.store(StoreMode.Prepend, 'k', 8, -1, Buffer.from('<'), 0, NOW + 50_000).status).toBe(WriteStatus.Stored);
    const item = store.get('k', NOW + 99_999)!;
    expect([item.value.toString(), item.flags]).toEqual(['<mid>', 5]);
    expect(store.get('k', NOW + 100_000)).toBeUndefined();
  });

  it('refuse a result over the item size limit and keep the item', () => {
    const { store, set, read } = newStore({ maxItemSize: 10 });
    set('k', '12345678');
    expect(store.store(StoreMode.Append, 'k', 0, 0, Buffer.from('abc'), 0, NOW).status).toBe(WriteStatus.TooLarge);
    expect(store.store(StoreMode.Prepend, 'k', 0, 0, Buffer.from('abc'), 0, NOW).status).toBe(WriteStatus.TooLarge);
    expect(read('k')).toBe('12345678');
    expect(store.store(StoreMode.Append, 'k', 0, 0, Buffer.from('90'), 0, NOW).status).toBe(WriteStatus.Stored);
    expect(read('k')).toBe('1234567890');
  });

  it('with a cas, join only when it matches', () => {
    const { store, set, read } = newStore();
    set('k', 'a');
    expect(store.store(StoreMode.Append, 'k', 0, 0, Buffer.from('b'), 7, NOW).status).toBe(WriteStatus.Exists);
    expect(store.store(StoreMode.Append, 'k', 0, 0, Buffer.from('b'), 1, NOW).status).toBe(WriteStatus.Stored);
    expect(read('k')).toBe('ab');
  });
});

describe('oversized values', () => {
  it('a refused set removes the old value; other modes keep it', () => {
    const { store, set, read } = newStore({ maxItemSize: 4 });
    set('a', 'old');
    set('b', 'old');
    expect(store.store(StoreMode.Add, 'a', 0, 0, Buffer.from('12345'), 0, NOW).status).toBe(WriteStatus.TooLarge);
    expect(store.refuseOversized(StoreMode.Replace, 'a', NOW).status).toBe(WriteStatus.TooLarge);
    expect(read('a')).toBe('old');
    expect(store.store(StoreMode.Set, 'a', 0, 0, Buffer.from('12345'), 0, NOW).status).toBe(WriteStatus.TooLarge);
    expect(store.refuseOversized(StoreMode.Set, 'b', NOW).status).toBe(WriteStatus.TooLarge);
    expect([read('a'), read('b')]).toEqual([null, null]);
    expect(store.bytes).toBe(0);
  });
});
