/**
 * When the replicator scans: soon after a membership change, and, after a copy had to be given
 * up (a live peer that does not answer), once more a while later so the peer gets it then; an
 * earlier scan is never pushed back by a later request; requests during a scan run after it.
 */
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ClusterView } from '../../src/cluster/cluster-view.js';
import { Opcode } from '../../src/cluster/peer/opcodes.js';
import type { PeerPool } from '../../src/cluster/peer/peer-pool.js';
import { Replicator } from '../../src/cluster/replication/replicator.js';
import { MemberState } from '../../src/cluster/types.js';
import { StoreMode } from '../../src/protocol/types.js';
import { MemoryStore } from '../../src/store/memory-store.js';

const log = pino({ level: 'silent' });

function setup(failing: Set<string>) {
  const store = new MemoryStore({ memoryLimit: 1 << 24, maxItemSize: 1024, nodeId: 'node1' });
  const view = new ClusterView('node1');
  view.update(['node1', 'node2', 'node3'].map((id, i) => ({ id, peerAddress: `127.0.0.1:${7001 + i}`, state: MemberState.Alive, incarnation: 1 })));
  const requests: string[] = [];
  const pool = {
    get: (address: string) => ({
      request: async () => {
        requests.push(address);
        if (failing.has(address)) throw new Error('timed out');
        return { opcode: Opcode.ReplicateAck, payload: Buffer.alloc(0) };
      },
    }),
  } as unknown as PeerPool;
  const replicator = new Replicator({ store, view, pool, log, requestTimeoutMs: 50, giveUpAfterMs: 300 });
  store.store(StoreMode.Set, 'memc.sess.key.a', 0, 0, Buffer.from('x'), 0, Date.now());
  return { store, view, replicator, requests };
}

beforeEach(() => { vi.useFakeTimers(); });
afterEach(() => { vi.useRealTimers(); });

describe('Replicator scans', () => {
  it('a membership change scans after 100 ms; a later, longer request does not push it back', async () => {
    const { replicator, requests } = setup(new Set());
    replicator.scheduleScan();
    replicator.scheduleScan(10_000);
    await vi.advanceTimersByTimeAsync(99);
    expect(requests).toEqual([]);
    await vi.advanceTimersByTimeAsync(2);
    expect(requests.length).toBeGreaterThan(0);
    const after = requests.length;
    await vi.advanceTimersByTimeAsync(20_000);
    expect(requests.length, 'no second scan: the 10 s request was folded into the earlier one').toBe(after);
    replicator.stop();
  });

  it('a copy given up on schedules a repair scan 10 s later, which copies to the peer once it answers', async () => {
    const failing = new Set(['127.0.0.1:7002', '127.0.0.1:7003']);
    const { replicator, requests } = setup(failing);
    const copy = replicator.replicateKey('memc.sess.key.a');
    await vi.advanceTimersByTimeAsync(400);
    await copy;
    expect(replicator.counters.failed).toBeGreaterThan(0);
    failing.clear();
    const before = requests.length;
    await vi.advanceTimersByTimeAsync(9_000);
    expect(requests.length, 'nothing before the repair scan is due').toBe(before);
    await vi.advanceTimersByTimeAsync(1_500);
    expect(requests.length).toBeGreaterThan(before);
    expect(replicator.counters.rereplicated).toBeGreaterThan(0);
    replicator.stop();
  });

  it('a scan asked for while one runs follows it, at the time asked', async () => {
    const failing = new Set<string>();
    const { replicator, requests, view } = setup(failing);
    const peer = view.otherOwners('memc.sess.key.a')[0]!.address;
    const toPeer = () => requests.filter((a) => a === peer).length;
    failing.add(peer);
    replicator.scheduleScan(0);
    await vi.advanceTimersByTimeAsync(1); // the scan runs; its copy to the peer keeps failing
    replicator.scheduleScan(1_000); // asked while it runs: due at about t = 1 s
    await vi.advanceTimersByTimeAsync(350); // the first scan gives up on the peer (300 ms)
    failing.clear();
    const attempts = toPeer();
    expect(attempts).toBeGreaterThan(1);
    await vi.advanceTimersByTimeAsync(500); // t = 851 ms: nothing yet
    expect(toPeer()).toBe(attempts);
    await vi.advanceTimersByTimeAsync(300); // t = 1151 ms: the second scan reached it
    expect(toPeer()).toBe(attempts + 1);
    replicator.stop();
  });
});
