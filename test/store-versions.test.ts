/**
 * Item versions for replication: a write here gets a fresh (version, origin); a replicated record
 * is applied only when newer; ties are broken by node id, never by a clock.
 */
import { describe, expect, it } from 'vitest';
import { ITEM_OVERHEAD_BYTES } from '../src/store/change.js';
import { MemoryStore, TOMBSTONE_OVERHEAD_BYTES } from '../src/store/memory-store.js';
import { type ItemRecord, isNewer, WriteStatus } from '../src/store/types.js';
import { StoreMode } from '../src/protocol/types.js';

const NOW = 1_700_000_000_000;
const store = (nodeId: string) => new MemoryStore({ memoryLimit: 1 << 24, maxItemSize: 1024, nodeId });
/** What `s` holds of `key` now, as it would travel to another node. */
const rec = (s: MemoryStore, key: string): ItemRecord => {
  const record = s.record(key, NOW);
  if (record === null) throw new Error(`nothing held for ${key}`);
  return record;
};

describe('item versions', () => {
  it('orders by version, then by origin', () => {
    expect(isNewer(2, 'a', 1, 'z')).toBe(true);
    expect(isNewer(1, 'b', 1, 'a')).toBe(true);
    expect(isNewer(1, 'a', 1, 'a')).toBe(false);
    expect(isNewer(1, 'z', 2, 'a')).toBe(false);
  });

  it('a replica takes newer records and keeps its copy against older ones', () => {
    const master = store('node1');
    const replica = store('node2');
    master.store(StoreMode.Set, 'k', 3, 0, Buffer.from('one'), 0, NOW);
    const first = rec(master, 'k');
    master.store(StoreMode.Set, 'k', 3, 0, Buffer.from('two'), 0, NOW);
    const second = rec(master, 'k');
    expect(second.version).toBeGreaterThan(first.version);
    expect(replica.apply(second, NOW)).toBe(true);
    expect(replica.apply(first, NOW)).toBe(false);
    expect(replica.peek('k', NOW)?.value.toString()).toBe('two');
    expect(replica.peek('k', NOW)?.flags).toBe(3);
  });

  it('a deletion record removes an older copy, and is newer than the write it removes', () => {
    const master = store('node1');
    const replica = store('node2');
    master.store(StoreMode.Set, 'k', 0, 0, Buffer.from('v'), 0, NOW);
    replica.apply(rec(master, 'k'), NOW);
    master.delete('k', 0, NOW);
    const deletion = rec(master, 'k');
    expect(deletion.value).toBeNull();
    expect(replica.apply(deletion, NOW)).toBe(true);
    expect(replica.peek('k', NOW)).toBeUndefined();
  });

  it('a node that received a version writes above it (Lamport clock)', () => {
    const a = store('node1');
    const b = store('node2');
    for (let i = 0; i < 5; i++) a.store(StoreMode.Set, `x${i}`, 0, 0, Buffer.from('v'), 0, NOW);
    b.apply(rec(a, 'x4'), NOW);
    b.store(StoreMode.Set, 'x4', 0, 0, Buffer.from('newer'), 0, NOW);
    const fromB = rec(b, 'x4');
    expect(a.apply(fromB, NOW)).toBe(true);
    expect(a.peek('x4', NOW)?.value.toString()).toBe('newer');
  });

  it('touch is a write: it gets a new version, so the new expiry replicates', () => {
    const a = store('node1');
    a.store(StoreMode.Set, 'k', 0, 100, Buffer.from('v'), 0, NOW);
    const before = rec(a, 'k').version;
    a.touch('k', 500, NOW);
    const after = rec(a, 'k');
    expect(after.version).toBeGreaterThan(before);
    expect(after.expiresAt).toBe(NOW + 500_000);
  });
});

describe('tombstones', () => {
  it('an older copy arriving after a deletion does not bring the item back', () => {
    const master = store('node1');
    const replica = store('node2');
    master.store(StoreMode.Set, 'lock', 0, 0, Buffer.from('1'), 0, NOW);
    const stale = rec(master, 'lock');
    replica.apply(stale, NOW);
    master.delete('lock', 0, NOW);
    replica.apply(rec(master, 'lock'), NOW);
    // the stale copy comes round again (re-replication from a node that missed the delete)
    expect(replica.apply(stale, NOW)).toBe(false);
    expect(master.apply(stale, NOW)).toBe(false);
    expect(replica.peek('lock', NOW)).toBeUndefined();
    expect(master.peek('lock', NOW)).toBeUndefined();
  });

  it('a newer write after the deletion is taken', () => {
    const a = store('node1');
    const b = store('node2');
    a.store(StoreMode.Set, 'k', 0, 0, Buffer.from('v1'), 0, NOW);
    a.delete('k', 0, NOW);
    a.store(StoreMode.Add, 'k', 0, 0, Buffer.from('v2'), 0, NOW);
    b.apply(rec(a, 'k'), NOW);
    expect(b.peek('k', NOW)?.value.toString()).toBe('v2');
  });

  const MINUTE = 60_000;
  const tombstoneKept = (s: MemoryStore, stale: ItemRecord, at: number): boolean => {
    s.sweepExpired(at, 1000);
    // a copy that is not expired yet at `at`, with the old version: refused while the tombstone lives
    return !s.apply({ ...stale, expiresAt: at + MINUTE }, at);
  };

  it('a deleted session is remembered for as long as it could have lived (a logout stays a logout)', () => {
    const a = store('node1');
    a.store(StoreMode.Set, 'memc.sess.key.s', 0, 1440, Buffer.from('user|s:5:"alice";'), 0, NOW);
    const stale = rec(a, 'memc.sess.key.s');
    a.delete('memc.sess.key.s', 0, NOW);
    expect(tombstoneKept(a, stale, NOW + 23 * MINUTE)).toBe(true);
    expect(tombstoneKept(a, stale, NOW + 25 * MINUTE)).toBe(false); // past its 24 min: forgotten
  });

  it('a deleted lock key (30 s expiry) costs a minute; a never-expiring item, a day', () => {
    const a = store('node1');
    a.store(StoreMode.Add, 'memc.sess.key.lock.s', 0, 30, Buffer.from('1'), 0, NOW);
    const lock = rec(a, 'memc.sess.key.lock.s');
    a.delete('memc.sess.key.lock.s', 0, NOW);
    expect(tombstoneKept(a, lock, NOW + 59_000)).toBe(true);
    expect(tombstoneKept(a, lock, NOW + 61_000)).toBe(false);

    a.store(StoreMode.Set, 'forever', 0, 0, Buffer.from('x'), 0, NOW);
    const forever = rec(a, 'forever');
    a.delete('forever', 0, NOW);
    expect(tombstoneKept(a, forever, NOW + 23 * 60 * MINUTE)).toBe(true);
    expect(tombstoneKept(a, forever, NOW + 24 * 60 * MINUTE + 1)).toBe(false);
  });

  it('a deletion record carries its tombstone lifetime: a replica keeps it as long, held the item or not', () => {
    const master = store('node1');
    const replica = store('node2');
    const fresh = store('node3');
    master.store(StoreMode.Set, 'memc.sess.key.s', 0, 1440, Buffer.from('v'), 0, NOW);
    const stale = rec(master, 'memc.sess.key.s');
    replica.apply(stale, NOW);
    master.delete('memc.sess.key.s', 0, NOW);
    const deletion = rec(master, 'memc.sess.key.s');
    expect(deletion.value).toBeNull();
    expect(deletion.expiresAt).toBe(NOW + 1440_000);
    replica.apply(deletion, NOW);
    fresh.apply(deletion, NOW);
    for (const s of [replica, fresh]) {
      expect(tombstoneKept(s, stale, NOW + 23 * MINUTE)).toBe(true);
      expect(tombstoneKept(s, stale, NOW + 25 * MINUTE)).toBe(false);
    }
  });

  it('an item stored already expired leaves a short tombstone when replicated, not a day-long one', () => {
    const a = store('node1');
    // libmemcached's existence probe: add with an absolute time in the past
    a.store(StoreMode.Add, 'probe', 0, 2678400, Buffer.from(''), 0, NOW);
    const record = rec(a, 'probe');
    expect(record.value).toBeNull();
    expect(record.expiresAt).toBe(NOW + MINUTE);
  });
});

describe('tombstones under the memory cap', () => {
  const MINUTE = 60_000;
  const capped = (memoryLimit: number) => new MemoryStore({ memoryLimit, maxItemSize: memoryLimit / 2, nodeId: 'node1' });
  const cost = (key: string) => key.length + TOMBSTONE_OVERHEAD_BYTES;
  const itemCost = (key: string, valueLength: number) => key.length + valueLength + ITEM_OVERHEAD_BYTES;

  it('are counted: stats show how many and what they take', () => {
    const s = capped(1 << 20);
    s.store(StoreMode.Set, 'memc.sess.key.lock.a', 0, 30, Buffer.from('1'), 0, NOW);
    s.delete('memc.sess.key.lock.a', 0, NOW);
    expect(s.tombstoneCount).toBe(1);
    expect(s.tombstoneBytesUsed).toBe(cost('memc.sess.key.lock.a'));
    expect(s.bytes).toBe(0);
    // a second deletion of the same key replaces the tombstone, it does not add one
    s.store(StoreMode.Set, 'memc.sess.key.lock.a', 0, 30, Buffer.from('1'), 0, NOW);
    expect(s.tombstoneCount).toBe(0);
    s.delete('memc.sess.key.lock.a', 0, NOW);
    expect(s.tombstoneCount).toBe(1);
    expect(s.tombstoneBytesUsed).toBe(cost('memc.sess.key.lock.a'));
  });

  it('a client that sets and deletes new keys without end stays under the cap; the newest deletions are kept', () => {
    const limit = 64 * 1024;
    const s = capped(limit);
    const stale = new Map<string, ItemRecord>();
    for (let i = 0; i < 5000; i++) {
      const key = `memc.sess.key.${String(i).padStart(32, '0')}`;
      s.store(StoreMode.Set, key, 0, 1440, Buffer.alloc(100, 1), 0, NOW);
      stale.set(key, rec(s, key));
      s.delete(key, 0, NOW);
      expect(s.bytes + s.tombstoneBytesUsed).toBeLessThanOrEqual(limit);
    }
    // Each set first makes room for its item, then its deletion adds one tombstone.
    const key = `memc.sess.key.${'0'.repeat(32)}`;
    expect(s.tombstoneCount).toBe(Math.floor((limit - itemCost(key, 100)) / cost(key)) + 1);
    expect(s.counters.evictedTombstones).toBe(5000 - s.tombstoneCount);
    // the last deletion still refuses an older copy; the first one was given up for room
    const last = `memc.sess.key.${String(4999).padStart(32, '0')}`;
    const first = `memc.sess.key.${String(0).padStart(32, '0')}`;
    expect(s.apply(stale.get(last)!, NOW)).toBe(false);
    expect(s.apply(stale.get(first)!, NOW)).toBe(true);
  });

  it('room for items is taken from the oldest tombstones before any item is evicted', () => {
    const s = capped(4096);
    s.store(StoreMode.Set, 'kept', 0, 0, Buffer.alloc(1000), 0, NOW);
    for (let i = 0; i < 10; i++) {
      s.store(StoreMode.Set, `gone${i}`, 0, 0, Buffer.alloc(1), 0, NOW);
      s.delete(`gone${i}`, 0, NOW);
    }
    expect(s.tombstoneCount).toBe(10);
    const room = 4096 - s.bytes - s.tombstoneBytesUsed;
    // a value that needs two tombstones' room and a little more
    const valueLength = room + 2 * cost('gone0') - itemCost('new', 0) - 10;
    s.store(StoreMode.Set, 'new', 0, 0, Buffer.alloc(valueLength), 0, NOW);
    expect(s.counters.evictions).toBe(0);
    expect(s.counters.evictedTombstones).toBe(2);
    expect(s.peek('kept', NOW)).toBeDefined();
    expect(s.peek('new', NOW)).toBeDefined();
    expect(s.bytes + s.tombstoneBytesUsed).toBeLessThanOrEqual(4096);
  });

  it('a deletion in a store full of items evicts the oldest item rather than forget itself', () => {
    // exactly four items fit, so once one has been evicted the store is full to the byte
    const s = capped(4 * itemCost('item0', 500));
    let i = 0;
    while (s.counters.evictions === 0) s.store(StoreMode.Set, `item${i++}`, 0, 0, Buffer.alloc(500), 0, NOW);
    const evictedBefore = s.counters.evictions;
    // a deletion of an item this node never held, arriving from its master
    expect(s.apply({ key: 'elsewhere', value: null, flags: 0, expiresAt: NOW + 24 * MINUTE, version: 10, origin: 'node2' }, NOW)).toBe(false);
    expect(s.tombstoneCount).toBe(1);
    expect(s.counters.evictions).toBe(evictedBefore + 1);
    expect(s.counters.evictedTombstones).toBe(0);
    expect(s.apply({ key: 'elsewhere', value: Buffer.from('old'), flags: 0, expiresAt: 0, version: 1, origin: 'node2' }, NOW)).toBe(false);
  });

  it('expired tombstones are swept in turns of the sweep budget', () => {
    const s = capped(1 << 20);
    for (let i = 0; i < 250; i++) {
      s.store(StoreMode.Set, `lock${i}`, 0, 30, Buffer.from('1'), 0, NOW);
      s.delete(`lock${i}`, 0, NOW);
    }
    expect(s.tombstoneCount).toBe(250);
    s.sweepExpired(NOW + 2 * MINUTE, 100);
    expect(s.tombstoneCount).toBe(150);
    s.sweepExpired(NOW + 2 * MINUTE, 100);
    s.sweepExpired(NOW + 2 * MINUTE, 100);
    expect(s.tombstoneCount).toBe(0);
    expect(s.tombstoneBytesUsed).toBe(0);
  });
});

describe('a single node', () => {
  it('keeps no tombstones: with no other copies there is nothing for them to refuse', () => {
    const s = new MemoryStore({ memoryLimit: 1 << 20, maxItemSize: 1024, rememberDeletions: false });
    s.store(StoreMode.Set, 'memc.sess.key.s', 0, 1440, Buffer.from('v'), 0, NOW);
    expect(s.delete('memc.sess.key.s', 0, NOW).status).toBe(WriteStatus.Deleted);
    expect(s.tombstoneCount).toBe(0);
    expect(s.tombstoneBytesUsed).toBe(0);
    expect(s.peek('memc.sess.key.s', NOW)).toBeUndefined();
  });
});
