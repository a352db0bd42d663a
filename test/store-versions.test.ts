/**
 * Item versions for replication: a write here gets a fresh (version, origin); a replicated record
 * is applied only when newer; ties are broken by node id, never by a clock.
 */
import { describe, expect, it } from 'vitest';
import { MemoryStore, isNewer } from '../src/store/memory-store.js';
import { StoreMode } from '../src/protocol/types.js';

const NOW = 1_700_000_000_000;
const store = (nodeId: string) => new MemoryStore({ memoryLimit: 1 << 24, maxItemSize: 1024, nodeId });

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
    const first = master.record('k', NOW);
    master.store(StoreMode.Set, 'k', 3, 0, Buffer.from('two'), 0, NOW);
    const second = master.record('k', NOW);
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
    replica.apply(master.record('k', NOW), NOW);
    master.delete('k', 0, NOW);
    const deletion = master.record('k', NOW);
    expect(deletion.value).toBeNull();
    expect(replica.apply(deletion, NOW)).toBe(true);
    expect(replica.peek('k', NOW)).toBeUndefined();
  });

  it('a node that received a version writes above it (Lamport clock)', () => {
    const a = store('node1');
    const b = store('node2');
    for (let i = 0; i < 5; i++) a.store(StoreMode.Set, `x${i}`, 0, 0, Buffer.from('v'), 0, NOW);
    b.apply(a.record('x4', NOW), NOW);
    b.store(StoreMode.Set, 'x4', 0, 0, Buffer.from('newer'), 0, NOW);
    const fromB = b.record('x4', NOW);
    expect(a.apply(fromB, NOW)).toBe(true);
    expect(a.peek('x4', NOW)?.value.toString()).toBe('newer');
  });

  it('touch is a write: it gets a new version, so the new expiry replicates', () => {
    const a = store('node1');
    a.store(StoreMode.Set, 'k', 0, 100, Buffer.from('v'), 0, NOW);
    const before = a.record('k', NOW).version;
    a.touch('k', 500, NOW);
    const after = a.record('k', NOW);
    expect(after.version).toBeGreaterThan(before);
    expect(after.expiresAt).toBe(NOW + 500_000);
  });
});

describe('tombstones', () => {
  it('an older copy arriving after a deletion does not bring the item back', () => {
    const master = store('node1');
    const replica = store('node2');
    master.store(StoreMode.Set, 'lock', 0, 0, Buffer.from('1'), 0, NOW);
    const stale = master.record('lock', NOW);
    replica.apply(stale, NOW);
    master.delete('lock', 0, NOW);
    replica.apply(master.record('lock', NOW), NOW);
    // the stale copy comes round again (re-replication from a node that missed the delete)
    expect(replica.apply(stale, NOW)).toBe(false);
    expect(master.apply(stale, NOW)).toBe(false);
    expect(replica.peek('lock', NOW)).toBeUndefined();
    expect(master.peek('lock', NOW)).toBeUndefined();
  });

  it('a newer write after the deletion is taken, and a tombstone is forgotten after a while', () => {
    const a = store('node1');
    const b = store('node2');
    a.store(StoreMode.Set, 'k', 0, 0, Buffer.from('v1'), 0, NOW);
    const v1 = a.record('k', NOW);
    a.delete('k', 0, NOW);
    a.store(StoreMode.Add, 'k', 0, 0, Buffer.from('v2'), 0, NOW);
    b.apply(a.record('k', NOW), NOW);
    expect(b.peek('k', NOW)?.value.toString()).toBe('v2');
    a.delete('k', 0, NOW);
    a.sweepExpired(NOW + 11 * 60 * 1000, 1000);
    // past the tombstone's lifetime an old copy is taken again: tombstones are bounded in time
    expect(a.apply(v1, NOW + 11 * 60 * 1000)).toBe(true);
  });
});
