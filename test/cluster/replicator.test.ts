/**
 * When the replicator scans: soon after a membership change, and, after a copy had to be given
 * up (a live peer that does not answer), once more a while later so the peer gets it then; an
 * earlier scan is never pushed back by a later request; requests during a scan run after it.
 */
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ClusterView } from '../../src/cluster/cluster-view.js';
import { MemoryPeerNetwork } from '../../src/cluster/memory-peers.js';
import { type CopyResult, Replicator } from '../../src/cluster/replication/replicator.js';
import { MemberState, type Owner } from '../../src/cluster/types.js';
import { PeerError } from '../../src/errors.js';
import { StoreMode } from '../../src/protocol/types.js';
import { MemoryStore } from '../../src/store/memory-store.js';

const log = pino({ level: 'silent' });

/** The owners of `key` other than this node: where its writes are copied. */
function otherOwners(view: ClusterView, key: string): Owner[] {
  const { master, backup } = view.owners(key);
  return [master, backup].filter((owner): owner is Owner => owner !== null && owner.id !== view.self);
}

/**
 * node1's replicator, and `ids` on the same in-memory network, acknowledging copies (each record
 * handed to `received` with the node's id) unless their address is in `failing`. They answer no
 * offers, as a node of an older version: scans that offer first send them everything.
 */
function network(ids: string[], address: (id: string) => string, failing: Set<string>, received: (key: string, node: string) => void = () => undefined) {
  const net = new MemoryPeerNetwork();
  for (const id of ids.filter((id) => id !== 'node1')) {
    net.connect({ id, address: address(id) }).serveReplicate((records) => {
      if (failing.has(address(id))) throw new PeerError('ERR_PEER_TIMEOUT', 'timed out');
      for (const record of records) received(record.key, id);
    });
  }
  return { net, peers: net.connect({ id: 'node1', address: address('node1') }) };
}

/** Copies what `store` holds of `key` to its other owners, as the router would after a write. */
function replicateKey(replicator: Replicator, store: MemoryStore, view: ClusterView, key: string): Promise<CopyResult> | null {
  return replicator.replicate(store.peek(key, Date.now())!, view.owners(key));
}

function setup(failing: Set<string>) {
  const store = new MemoryStore({ memoryLimit: 1 << 24, maxItemSize: 1024, nodeId: 'node1' });
  const view = new ClusterView('node1');
  const address = (id: string) => `127.0.0.1:${7000 + Number(id.slice(4))}`;
  view.update(['node1', 'node2', 'node3'].map((id) => ({ id, peerAddress: address(id), state: MemberState.Alive, incarnation: 1 })));
  const { net, peers } = network(['node1', 'node2', 'node3'], address, failing);
  const replicator = new Replicator({ store, view, peers, log, requestTimeoutMs: 50, giveUpAfterMs: 300 });
  store.store(StoreMode.Set, 'memc.sess.key.a', 0, 0, Buffer.from('x'), 0, Date.now());
  /** the address of every copy attempted, answered or not (offers before copies are not copies) */
  const sent = () => net.requestsOf('replicate').map((request) => request.to);
  return { store, view, replicator, sent };
}

beforeEach(() => { vi.useFakeTimers(); });
afterEach(() => { vi.useRealTimers(); });

describe('Replicator scans', () => {
  it('a membership change scans after 100 ms; a later, longer request does not push it back', async () => {
    const { replicator, sent } = setup(new Set());
    replicator.scheduleScan();
    replicator.scheduleScan(10_000);
    await vi.advanceTimersByTimeAsync(99);
    expect(sent()).toEqual([]);
    await vi.advanceTimersByTimeAsync(2);
    expect(sent().length).toBeGreaterThan(0);
    const after = sent().length;
    await vi.advanceTimersByTimeAsync(20_000);
    expect(sent().length, 'no second scan: the 10 s request was folded into the earlier one').toBe(after);
    replicator.stop();
  });

  it('a copy given up on schedules a repair scan 10 s later, which copies to the peer once it answers', async () => {
    const failing = new Set(['127.0.0.1:7002', '127.0.0.1:7003']);
    const { replicator, sent, store, view } = setup(failing);
    const copy = replicateKey(replicator, store, view, 'memc.sess.key.a');
    await vi.advanceTimersByTimeAsync(400);
    await copy;
    expect(replicator.counters.failed).toBeGreaterThan(0);
    failing.clear();
    const before = sent().length;
    await vi.advanceTimersByTimeAsync(9_000);
    expect(sent().length, 'nothing before the repair scan is due').toBe(before);
    await vi.advanceTimersByTimeAsync(1_500);
    expect(sent().length).toBeGreaterThan(before);
    expect(replicator.counters.rereplicated).toBeGreaterThan(0);
    replicator.stop();
  });

  it('a scan asked for while one runs follows it, at the time asked', async () => {
    const failing = new Set<string>();
    const { replicator, sent, view } = setup(failing);
    const peer = otherOwners(view, 'memc.sess.key.a')[0]!.address;
    const toPeer = () => sent().filter((a) => a === peer).length;
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

describe('Replicator scans copy only what moved', () => {
  const NODES = ['node1', 'node2', 'node3', 'node4'];
  const address = (id: string) => `127.0.0.1:${7000 + Number(id.slice(4))}`;
  const members = (dead: string[] = []) => NODES.map((id) => ({
    id, peerAddress: address(id), state: dead.includes(id) ? MemberState.Dead : MemberState.Alive, incarnation: 1,
  }));
  /** The other owners of `key` under a view of `nodes`' states, as node1 sees them. */
  const othersUnder = (key: string, dead: string[]) => {
    const view = new ClusterView('node1');
    view.update(members(dead));
    return otherOwners(view, key).map((owner) => owner.id);
  };

  function setupCluster() {
    const store = new MemoryStore({ memoryLimit: 1 << 24, maxItemSize: 1024, nodeId: 'node1' });
    const view = new ClusterView('node1');
    view.update(members());
    /** every (key, target) a Replicate frame carried, as "key>node" */
    const copies: string[] = [];
    const failing = new Set<string>();
    const { peers } = network(NODES, address, failing, (key, node) => copies.push(`${key}>${node}`));
    const replicator = new Replicator({ store, view, peers, log, requestTimeoutMs: 50, giveUpAfterMs: 300 });
    // the sessions node1 holds: those it masters or backs up with all four nodes alive
    const keys: string[] = [];
    for (let i = 0; keys.length < 400; i++) {
      const key = `memc.sess.key.session${i}`;
      if (othersUnder(key, []).length === 1) keys.push(key); // node1 is the other owner
    }
    for (const key of keys) store.store(StoreMode.Set, key, 0, 0, Buffer.from('v'), 0, Date.now());
    const scan = async () => {
      copies.length = 0;
      replicator.scheduleScan(0);
      await vi.advanceTimersByTimeAsync(50);
      return [...copies].sort();
    };
    return { store, view, replicator, keys, failing, scan, copies };
  }

  /** What a scan must copy: each owner now that did not own the key under every earlier placement. */
  const expected = (keys: string[], now: string[], earlier: string[][]) => keys.flatMap((key) =>
    othersUnder(key, now)
      .filter((target) => !earlier.every((dead) => othersUnder(key, dead).includes(target) || target === 'node1'))
      .map((target) => `${key}>${target}`)).sort();

  it('the first scan copies every item; after a death, only the items whose owners changed go, to their new owner', async () => {
    const { view, replicator, keys, scan } = setupCluster();
    expect(await scan()).toEqual(keys.map((key) => `${key}>${othersUnder(key, [])[0]}`).sort());
    expect(replicator.counters.rereplicationSkipped).toBe(0);

    view.update(members(['node4']));
    const copied = await scan();
    const moved = expected(keys, ['node4'], [[], ['node4']]);
    expect(copied).toEqual(moved);
    // the keys node4 co-owned got a new owner; the rest stayed where they were and were left out
    expect(moved.length).toBe(keys.filter((key) => othersUnder(key, []).includes('node4')).length);
    expect(moved.length).toBeGreaterThan(0);
    expect(moved.length).toBeLessThan(keys.length / 2);
    expect(replicator.counters.rereplicationSkipped).toBe(keys.length - moved.length);
    replicator.stop();
  });

  it('two deaths before the next scan: left out only what its owners held through both', async () => {
    const { view, keys, replicator, scan } = setupCluster();
    await scan();
    view.update(members(['node4']));
    view.update(members(['node3', 'node4']));
    const copied = await scan();
    expect(copied).toEqual(expected(keys, ['node3', 'node4'], [[], ['node4'], ['node3', 'node4']]));
    // with two nodes left, each of node1's items needs node2 as its other owner
    expect(copied.length).toBeGreaterThan(0);
    expect(copied.length).toBeLessThan(keys.length);
    expect(copied.length + replicator.counters.rereplicationSkipped).toBe(keys.length);
    replicator.stop();
  });

  it('a member that comes back makes the next scan copy everything: an owner may have dropped a copy meanwhile', async () => {
    const { view, keys, replicator, scan } = setupCluster();
    await scan();
    // node4 dies and comes back (a new incarnation) before the next scan runs
    view.update(members(['node4']));
    view.update(members());
    expect(await scan()).toEqual(keys.map((key) => `${key}>${othersUnder(key, [])[0]}`).sort());
    // and the scan after that, on a death, is incremental again
    view.update(members(['node4']));
    expect(await scan()).toEqual(expected(keys, ['node4'], [[], ['node4']]));
    expect(replicator.counters.rereplicationSkipped).toBeGreaterThan(0);
    replicator.stop();
  });

  it('after a copy was given up, the next scan copies everything again', async () => {
    const { store, view, keys, failing, replicator, scan } = setupCluster();
    await scan();
    failing.add(address('node2'));
    const given = replicateKey(replicator, store, view, keys.find((key) => othersUnder(key, [])[0] === 'node2')!)!;
    await vi.advanceTimersByTimeAsync(400);
    await given;
    expect(replicator.counters.failed).toBe(1);
    failing.clear();
    view.update(members(['node4']));
    const copied = await scan();
    expect(copied).toEqual(keys.map((key) => `${key}>${othersUnder(key, ['node4'])[0]}`).sort());
    replicator.stop();
  });

  it('a draining node hands over everything, whatever earlier scans vouch for', async () => {
    const { view, keys, replicator, scan, copies } = setupCluster();
    await scan();
    copies.length = 0;
    view.leave(null);
    const handover = replicator.handOverAll();
    await vi.advanceTimersByTimeAsync(50);
    expect(await handover).toBe(true);
    const drainView = new ClusterView('node1');
    drainView.update(members());
    drainView.leave(null);
    const all = keys.flatMap((key) => otherOwners(drainView, key).map((owner) => `${key}>${owner.id}`)).sort();
    expect(all.length).toBe(2 * keys.length);
    expect([...copies].sort()).toEqual(all);
    expect(replicator.counters.rereplicated).toBe(keys.length + all.length);
    replicator.stop();
  });
});

describe('a write\'s copy and its deadline', () => {
  it('applies a copy on time; refuses, and does not apply, one that comes after its writer gave up on it', async () => {
    vi.useRealTimers();
    const net = new MemoryPeerNetwork();
    const address = (id: string) => `${id}.test:1`;
    const store = new MemoryStore({ memoryLimit: 1 << 24, maxItemSize: 1024, nodeId: 'node1' });
    const view = new ClusterView('node1');
    view.update(['node1', 'node2'].map((id) => ({ id, peerAddress: address(id), state: MemberState.Alive, incarnation: 1 })));
    // node1 reads node2's clock as 10 s ahead of its own
    const replicator = new Replicator({ store, view, peers: net.connect({ id: 'node1', address: address('node1') }), log, requestTimeoutMs: 100, giveUpAfterMs: 300, clocks: { nowAt: (member) => Date.now() + (member === 'node2' ? 10_000 : 0) } });
    const node2 = net.connect({ id: 'node2', address: address('node2') });
    const record = (key: string) => ({ key, value: Buffer.from('v'), flags: 0, expiresAt: 0, version: 1, origin: 'node2' });
    // valid for 20 s: on time even read as 10 s late
    await node2.replicate({ id: 'node1', address: address('node1') }, [record('on-time')], { timeoutMs: 1000, validForMs: 20_000 });
    await expect(node2.replicate({ id: 'node1', address: address('node1') }, [record('late')], { timeoutMs: 1000, validForMs: 5_000 }))
      .rejects.toMatchObject({ code: 'ERR_PEER_REFUSED' });
    // no deadline (a re-replication scan, a handoff): always applied
    await node2.replicate({ id: 'node1', address: address('node1') }, [record('state')], { timeoutMs: 1000, validForMs: 0 });
    expect(['on-time', 'late', 'state'].map((key) => store.peek(key, Date.now())?.value.toString() ?? null)).toEqual(['v', null, 'v']);
    expect(replicator.counters.refusedLate).toBe(1);
    replicator.stop();
  });
});

describe('catch-up', () => {
  /** node1 catching up from node2, which holds one session node1 owns, on one network. */
  function pair() {
    const net = new MemoryPeerNetwork();
    const address = (id: string) => `${id}.test:1`;
    const members = ['node1', 'node2'].map((id) => ({ id, peerAddress: address(id), state: MemberState.Alive, incarnation: 1 }));
    const make = (id: string) => {
      const store = new MemoryStore({ memoryLimit: 1 << 24, maxItemSize: 1024, nodeId: id });
      const view = new ClusterView(id);
      view.update(members);
      const replicator = new Replicator({ store, view, peers: net.connect({ id, address: address(id) }), log, requestTimeoutMs: 400, giveUpAfterMs: 1200 });
      return { store, view, replicator };
    };
    const node1 = make('node1');
    const node2 = make('node2');
    // with two members, both own every key
    node2.store.store(StoreMode.Set, 'memc.sess.key.a', 0, 0, Buffer.from('kept'), 0, Date.now());
    return { net, node1, node2, address };
  }

  it('asks again when a handoff\'s answer is lost, instead of holding sessions for the whole handoff time', async () => {
    const { net, node1, node2, address } = pair();
    // node2 runs the handoff and pushes the session, but its answer never reaches node1
    net.loseAnswersIf((from, to) => from === 'node1' && to === address('node2'));
    let done = false;
    const catchUp = node1.replicator.catchUp([address('node2')], address('node1')).then(() => { done = true; });
    await vi.advanceTimersByTimeAsync(100);
    expect(node1.store.peek('memc.sess.key.a', Date.now())?.value.toString()).toBe('kept');
    expect(done).toBe(false);
    net.loseAnswersIf(null);
    // asked again after two request timeouts at the latest (at least 2 s), and answered then
    await vi.advanceTimersByTimeAsync(2000);
    await catchUp;
    expect(done).toBe(true);
    expect(net.requestsOf('handoff').filter((request) => request.from === 'node1')).toHaveLength(2);
    node1.replicator.stop();
    node2.replicator.stop();
  });

  it('hands over once the requester serves in the giver\'s view, so writes made before that are in it too', async () => {
    const { net, node1, node2, address } = pair();
    // node2 does not count node1 among the serving members yet (no reachability report from it):
    // its writes have node2 as their only owner, and are not copied to node1
    const members = ['node1', 'node2'].map((id) => ({ id, peerAddress: address(id), state: MemberState.Alive, incarnation: 1 }));
    node2.view.update(members, new Set(['node2']));
    let done = false;
    const catchUp = node1.replicator.catchUp([address('node2')], address('node1')).then(() => { done = true; });
    await vi.advanceTimersByTimeAsync(300);
    node2.store.store(StoreMode.Set, 'memc.sess.key.b', 0, 0, Buffer.from('meanwhile'), 0, Date.now());
    expect([done, node1.store.peek('memc.sess.key.a', Date.now()) ?? null]).toEqual([false, null]);
    // from now on node2 copies its writes to node1; the handoff brings everything before
    node2.view.update(members, new Set(['node1', 'node2']));
    await vi.advanceTimersByTimeAsync(10);
    await catchUp;
    expect(['a', 'b'].map((k) => node1.store.peek(`memc.sess.key.${k}`, Date.now())?.value.toString())).toEqual(['kept', 'meanwhile']);
    expect(net.requestsOf('handoff')).toHaveLength(1);
    node1.replicator.stop();
    node2.replicator.stop();
  });

  it('a requester that never serves in the giver\'s view gets its share, as if it served, after the give-up time', async () => {
    const { node1, node2, address } = pair();
    const members = ['node1', 'node2'].map((id) => ({ id, peerAddress: address(id), state: MemberState.Alive, incarnation: 1 }));
    node2.view.update(members, new Set(['node2']));
    let done = false;
    const catchUp = node1.replicator.catchUp([address('node2')], address('node1')).then(() => { done = true; });
    await vi.advanceTimersByTimeAsync(1100);
    expect([done, node1.store.peek('memc.sess.key.a', Date.now()) ?? null]).toEqual([false, null]);
    await vi.advanceTimersByTimeAsync(200);
    await catchUp;
    expect(node1.store.peek('memc.sess.key.a', Date.now())?.value.toString()).toBe('kept');
    node1.replicator.stop();
    node2.replicator.stop();
  });

  it('offers before it pushes: a requester that kept its sessions (on disk) is sent only what it lacks or holds older', async () => {
    const { net, node1, node2, address } = pair();
    const now = Date.now();
    // node1 kept 'a' as node2 holds it, and an older 'b'; 'c' and the deletion of 'd' are new to it
    node2.store.store(StoreMode.Set, 'memc.sess.key.b', 0, 0, Buffer.from('old'), 0, now);
    node2.store.store(StoreMode.Set, 'memc.sess.key.d', 0, 0, Buffer.from('gone soon'), 0, now);
    for (const key of ['a', 'b', 'd']) node1.store.apply(node2.store.record(`memc.sess.key.${key}`, now)!, now);
    node2.store.store(StoreMode.Set, 'memc.sess.key.b', 0, 0, Buffer.from('new'), 0, now);
    node2.store.store(StoreMode.Set, 'memc.sess.key.c', 0, 0, Buffer.from('fresh'), 0, now);
    node2.store.delete('memc.sess.key.d', 0, now);
    const catchUp = node1.replicator.catchUp([address('node2')], address('node1'));
    await vi.advanceTimersByTimeAsync(100);
    await catchUp;
    expect(['a', 'b', 'c', 'd'].map((k) => node1.store.peek(`memc.sess.key.${k}`, Date.now())?.value.toString() ?? null)).toEqual(['kept', 'new', 'fresh', null]);
    const pushed = net.requestsOf('replicate').filter((r) => r.from === 'node2').flatMap((r) => r.records.map((record) => record.key)).sort();
    expect(pushed).toEqual(['memc.sess.key.b', 'memc.sess.key.c', 'memc.sess.key.d']);
    expect(net.requestsOf('offer').filter((r) => r.from === 'node2').flatMap((r) => r.offers.map((o) => o.key)).sort())
      .toEqual(['memc.sess.key.a', 'memc.sess.key.b', 'memc.sess.key.c', 'memc.sess.key.d']);
    expect([node2.replicator.counters.offeredHeld, node2.replicator.counters.handoffRecords, node1.replicator.counters.received]).toEqual([1, 3, 3]);
    node1.replicator.stop();
    node2.replicator.stop();
  });

  it('a request repeated while the handoff is still pushing joins it: one handoff, however often asked', async () => {
    const { net, node1, node2, address } = pair();
    // node2's pushes to node1 wait (a slow link) longer than node1 waits for an answer
    net.hold(address('node1'));
    const catchUp = node1.replicator.catchUp([address('node2')], address('node1'));
    await vi.advanceTimersByTimeAsync(2000 + 2000 + 100);
    expect(net.requestsOf('handoff').filter((request) => request.from === 'node1')).toHaveLength(3);
    net.release(address('node1'));
    await vi.advanceTimersByTimeAsync(2000);
    await catchUp;
    // one handoff, one batch (retried while held), however often it was asked for
    expect(node2.replicator.counters.handedOver).toBe(1);
    expect(node1.store.peek('memc.sess.key.a', Date.now())?.value.toString()).toBe('kept');
    node1.replicator.stop();
    node2.replicator.stop();
  });
});
