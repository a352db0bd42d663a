/**
 * The router between the local executor and the other nodes, with placement worked out by hand:
 * the other nodes sit on an in-memory peer network, which records every request and answers
 * forwards as a test says.
 */
import { describe, expect, it, vi } from 'vitest';
import { pino } from 'pino';
import { Executor } from '../../src/command/executor.js';
import { ClusterView } from '../../src/cluster/cluster-view.js';
import { MemoryPeerNetwork } from '../../src/cluster/memory-peers.js';
import type { PeerClocks } from '../../src/cluster/peers.js';
import { Replicator } from '../../src/cluster/replication/replicator.js';
import { Router } from '../../src/cluster/router.js';
import { MemberState } from '../../src/cluster/types.js';
import { PeerError, type PeerErrorCode } from '../../src/errors.js';
import { type Command, type Reply, Status, StoreMode } from '../../src/protocol/types.js';
import { MemoryStore } from '../../src/store/memory-store.js';

const log = pino({ level: 'silent' });
const NODES = ['node1', 'node2', 'node3'];
const addressOf = (id: string) => `127.0.0.1:${7001 + NODES.indexOf(id)}`;
const members = (dead: string[] = []) => NODES.map((id) => ({ id, peerAddress: addressOf(id), state: dead.includes(id) ? MemberState.Dead : MemberState.Alive, incarnation: 1 }));

/**
 * Node `self` with its router, and the other nodes on the same network: they answer a forward
 * with `answer(command)` (an Error is thrown back) and acknowledge copies.
 */
function setup(self: string, replication: 'sync' | 'async', answer: (command: Command) => Reply | Error = () => new Error('unreachable'), store = new MemoryStore({ memoryLimit: 1 << 24, maxItemSize: 1024, nodeId: self }), clocks?: PeerClocks) {
  const network = new MemoryPeerNetwork();
  const executor = new Executor({ store, version: 'v' });
  const view = new ClusterView(self);
  view.update(members());
  const peers = network.connect({ id: self, address: addressOf(self) });
  const replicator = new Replicator({ store, view, peers, log, requestTimeoutMs: 100, giveUpAfterMs: 300 });
  const router = new Router({ executor, view, peers, replicator, replication, log, forwardTimeoutMs: 100, ...(clocks ? { clocks } : {}) });
  const others = new Map(NODES.filter((id) => id !== self).map((id) => {
    const remote = network.connect({ id, address: addressOf(id) });
    remote.serveForward((command) => {
      const reply = answer(command);
      if (reply instanceof Error) throw reply;
      return reply;
    });
    remote.serveReplicate(() => undefined);
    remote.serveHandoff(async () => true);
    return [id, remote];
  }));
  return { store, view, router, network, others };
}

/** A key whose owners (by the real placement) are exactly `master` and `backup`. */
function keyOwnedBy(view: ClusterView, master: string, backup: string): string {
  for (let i = 0; ; i++) {
    const key = `memc.sess.key.s${i}`;
    const owners = view.owners(key);
    if (owners.master?.id === master && owners.backup?.id === backup) return key;
  }
}

const set = (key: string, value: string): Command => ({ kind: 'store', mode: StoreMode.Set, key, flags: 0, exptime: 0, value: Buffer.from(value), cas: 0 });

describe('Router', () => {
  it('serves a session it masters here, and copies the write to the backup before answering (sync)', async () => {
    const { router, view, network, store } = setup('node1', 'sync');
    const key = keyOwnedBy(view, 'node1', 'node3');
    network.hold(addressOf('node3'));
    const reply = router.execute(set(key, 'v1'));
    expect(reply).toBeInstanceOf(Promise);
    let answered = false;
    void (reply as Promise<Reply>).then(() => { answered = true; });
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(answered).toBe(false);
    expect(network.requests).toHaveLength(1);
    expect(network.requests[0]).toMatchObject({ kind: 'replicate', to: '127.0.0.1:7003' });
    expect(network.requestsOf('replicate')[0]!.records[0]).toMatchObject({ key, origin: 'node1' });
    network.release(addressOf('node3'));
    expect(await reply).toMatchObject({ kind: 'status', status: Status.Stored });
    expect(store.peek(key, Date.now())?.value.toString()).toBe('v1');
  });

  describe('one way: a write is placed once, run once, and its change copied as the store made it', () => {
    /** `store`, counting every method called on it. */
    function counted(store: MemoryStore): { store: MemoryStore; calls: string[] } {
      const calls: string[] = [];
      const proxy = new Proxy(store, {
        get(target, name, receiver) {
          const value: unknown = Reflect.get(target, name, receiver);
          if (typeof value !== 'function') return value;
          return (...args: unknown[]) => {
            calls.push(String(name));
            return (value as (...a: unknown[]) => unknown).apply(target, args);
          };
        },
      });
      return { store: proxy, calls };
    }

    it('a replicated set: one placement, one store access, the record it wrote on the wire', async () => {
      const { store, calls } = counted(new MemoryStore({ memoryLimit: 1 << 24, maxItemSize: 1024, nodeId: 'node1' }));
      const { router, view, network } = setup('node1', 'sync', undefined, store);
      const key = keyOwnedBy(view, 'node1', 'node2');
      const placements = vi.spyOn(view, 'owners');
      expect(await router.execute(set(key, 'v1'))).toMatchObject({ kind: 'status', status: Status.Stored });
      expect(placements).toHaveBeenCalledTimes(1);
      expect(calls).toEqual(['store']);
      const held = store.peek(key, Date.now())!;
      expect(network.requestsOf('replicate').map((r) => [r.to, r.records])).toEqual([
        [addressOf('node2'), [{ key, value: Buffer.from('v1'), flags: 0, expiresAt: 0, version: held.version, origin: 'node1' }]],
      ]);
    });

    it('a replicated delete: the deletion it made travels, with its version and how long to remember it', async () => {
      const { store, calls } = counted(new MemoryStore({ memoryLimit: 1 << 24, maxItemSize: 1024, nodeId: 'node1' }));
      const { router, view, network } = setup('node1', 'sync', undefined, store);
      const key = keyOwnedBy(view, 'node1', 'node3');
      await router.execute(set(key, 'v1'));
      const written = network.requestsOf('replicate')[0]!.records[0]!;
      calls.length = 0;
      const placements = vi.spyOn(view, 'owners');
      expect(await router.execute({ kind: 'delete', key, cas: 0 })).toMatchObject({ kind: 'status', status: Status.Deleted });
      expect(placements).toHaveBeenCalledTimes(1);
      expect(calls).toEqual(['delete']);
      const deletion = network.requestsOf('replicate')[1]!.records[0]!;
      expect(deletion).toMatchObject({ key, value: null, origin: 'node1' });
      expect(deletion.version).toBeGreaterThan(written.version);
      expect(deletion.expiresAt).toBeGreaterThan(Date.now());
    });

    it('a multi-key gat: each key placed once; each key found here copied to its own backup', async () => {
      const { router, view, network, store } = setup('node1', 'async', (command) =>
        command.kind === 'touchGet' ? { kind: 'values', entries: [], missing: command.keys } : new Error('unexpected'));
      const toNode2 = keyOwnedBy(view, 'node1', 'node2');
      const toNode3 = keyOwnedBy(view, 'node1', 'node3');
      const elsewhere = keyOwnedBy(view, 'node2', 'node3');
      for (const key of [toNode2, toNode3]) store.store(StoreMode.Set, key, 0, 0, Buffer.from('x'), 0, Date.now());
      const placements = vi.spyOn(view, 'owners');
      const reply = await router.execute({ kind: 'touchGet', keys: [toNode2, elsewhere, toNode3], exptime: 100, withCas: false });
      expect(reply).toMatchObject({ kind: 'values', entries: [{ key: toNode2 }, { key: toNode3 }] });
      expect(placements).toHaveBeenCalledTimes(3);
      expect(network.requestsOf('replicate').map((r) => [r.to, r.records.map((record) => record.key)])).toEqual([
        [addressOf('node2'), [toNode2]],
        [addressOf('node3'), [toNode3]],
      ]);
    });
  });

  it('answers at once in async mode, the copy following', async () => {
    const { router, view, network } = setup('node1', 'async');
    network.hold(addressOf('node2'));
    const key = keyOwnedBy(view, 'node1', 'node2');
    expect(router.execute(set(key, 'v'))).toMatchObject({ kind: 'status', status: Status.Stored });
    expect(network.requests.map((r) => r.kind)).toEqual(['replicate']);
    network.release(addressOf('node2'));
  });

  it('forwards a session mastered elsewhere to its master and relays the answer; reads copy nothing', async () => {
    const { router, view, network, store } = setup('node1', 'sync', (command) =>
      command.kind === 'get' ? { kind: 'values', entries: [{ key: command.keys[0]!, flags: 5, value: Buffer.from('remote'), cas: 9 }], missing: [] } : new Error('unexpected'));
    const key = keyOwnedBy(view, 'node2', 'node1');
    const reply = await router.execute({ kind: 'get', keys: [key], withCas: false });
    expect(reply).toMatchObject({ kind: 'values', entries: [{ key, flags: 5, cas: 9 }] });
    expect(network.requests).toHaveLength(1);
    expect(network.requests[0]).toMatchObject({ kind: 'forward', to: '127.0.0.1:7002' });
    expect(store.itemCount).toBe(0);
  });

  it('answers SERVER_ERROR-style when the master cannot be reached', async () => {
    const { router, view } = setup('node1', 'sync');
    const key = keyOwnedBy(view, 'node3', 'node2');
    // the peer failed without saying whether it ran the command: it may have
    expect(await router.execute(set(key, 'v'))).toEqual({ kind: 'serverError', message: 'temporary failure: no answer in time from session owner node3; it may have been applied' });
    expect(router.counters.forwardFailures).toBe(1);
  });

  describe('a master that cannot be reached', () => {
    /** Forwards to node2 fail with `code` until healed; the others answer STORED / a value naming them. */
    function retryRig(code: PeerErrorCode, forwardTimeoutMs = 1000) {
      const store = new MemoryStore({ memoryLimit: 1 << 24, maxItemSize: 1024, nodeId: 'node1' });
      const network = new MemoryPeerNetwork();
      const executor = new Executor({ store, version: 'v' });
      const view = new ClusterView('node1');
      view.update(members());
      const peers = network.connect({ id: 'node1', address: addressOf('node1') });
      for (const id of ['node2', 'node3']) {
        const address = addressOf(id);
        const remote = network.connect({ id, address });
        remote.serveForward((command): Reply => (command.kind === 'get'
          ? { kind: 'values', entries: command.keys.map((key) => ({ key, flags: 0, value: Buffer.from(`from ${address}`), cas: 1 })), missing: [] }
          : { kind: 'status', status: Status.Stored, cas: 1 }));
        remote.serveReplicate(() => undefined);
      }
      network.fail(addressOf('node2'), code);
      const replicator = new Replicator({ store, view, peers, log, requestTimeoutMs: 100, giveUpAfterMs: 300 });
      const router = new Router({ executor, view, peers, replicator, replication: 'async', log, forwardTimeoutMs });
      const sent = () => network.requestsOf('forward').map((request) => request.to);
      return { router, view, network, sent, store, declareDead: (...ids: string[]) => view.update(members(ids)) };
    }

    it('a command that never left waits for the failover, then goes to the new master', async () => {
      const { router, view, sent, declareDead } = retryRig('ERR_PEER_UNAVAILABLE');
      const key = keyOwnedBy(view, 'node2', 'node3');
      const reply = router.execute(set(key, 'v'));
      await new Promise((resolve) => setTimeout(resolve, 130));
      expect(sent().every((address) => address === '127.0.0.1:7002')).toBe(true);
      expect(sent().length).toBeGreaterThan(1); // tried again while node2 was still counted live
      declareDead('node2');
      expect(await reply).toMatchObject({ kind: 'status', status: Status.Stored });
      expect(sent().at(-1)).toBe('127.0.0.1:7003');
      expect(router.counters.forwardFailures).toBe(0);
      expect(router.counters.forwardRetries).toBeGreaterThan(1);
    });

    it('a link that comes back: the same master gets it', async () => {
      const { router, view, sent, network } = retryRig('ERR_PEER_UNAVAILABLE');
      const key = keyOwnedBy(view, 'node2', 'node3');
      const reply = router.execute({ kind: 'get', keys: [key], withCas: false });
      await new Promise((resolve) => setTimeout(resolve, 80));
      network.heal(addressOf('node2'));
      expect(await reply).toMatchObject({ kind: 'values', entries: [{ value: Buffer.from('from 127.0.0.1:7002') }] });
      expect(new Set(sent())).toEqual(new Set(['127.0.0.1:7002']));
    });

    it('when this node becomes the master, the command runs here', async () => {
      const { router, view, store, declareDead } = retryRig('ERR_PEER_UNAVAILABLE');
      const key = keyOwnedBy(view, 'node2', 'node1');
      const reply = router.execute(set(key, 'mine'));
      await new Promise((resolve) => setTimeout(resolve, 60));
      declareDead('node2');
      expect(await reply).toMatchObject({ kind: 'status', status: Status.Stored });
      expect(store.get(key, Date.now())?.value.toString()).toBe('mine');
    });

    it('a command that may have run is sent again only if running it twice is harmless', async () => {
      const { router, view, sent, declareDead } = retryRig('ERR_PEER_DISCONNECTED');
      const key = keyOwnedBy(view, 'node2', 'node3');
      const add: Command = { kind: 'store', mode: StoreMode.Add, key, flags: 0, exptime: 0, value: Buffer.from('1'), cas: 0 };
      expect(await router.execute(add)).toEqual({ kind: 'serverError', message: 'temporary failure: no answer in time from session owner node2; it may have been applied' });
      expect(sent()).toEqual(['127.0.0.1:7002']);
      const del = router.execute({ kind: 'delete', key, cas: 0 });
      await new Promise((resolve) => setTimeout(resolve, 60));
      declareDead('node2');
      expect(await del).toMatchObject({ kind: 'status' });
      expect(sent().at(-1)).toBe('127.0.0.1:7003');
    });

    it('a master that stays unreachable: SERVER_ERROR once the forward timeout is spent', async () => {
      const { router, view, sent } = retryRig('ERR_PEER_UNAVAILABLE', 300);
      const key = keyOwnedBy(view, 'node2', 'node3');
      const started = Date.now();
      expect(await router.execute(set(key, 'v'))).toEqual({ kind: 'serverError', message: 'temporary failure: session owner node2 unreachable; not applied' });
      expect(Date.now() - started).toBeGreaterThanOrEqual(200);
      expect(sent().length).toBeGreaterThan(2);
      expect(router.counters.forwardFailures).toBe(1);
    });

    it('a timeout is final: no second try', async () => {
      const { router, view, sent } = retryRig('ERR_PEER_TIMEOUT');
      const key = keyOwnedBy(view, 'node2', 'node3');
      expect(await router.execute(set(key, 'v'))).toMatchObject({ kind: 'serverError' });
      expect(sent()).toEqual(['127.0.0.1:7002']);
    });
  });

  it('a multi-key get asks each master and answers in the order the keys were asked', async () => {
    const { router, view, store } = setup('node1', 'sync', (command) =>
      command.kind === 'get' ? { kind: 'values', entries: command.keys.map((key) => ({ key, flags: 0, value: Buffer.from(`from-peer:${key}`), cas: 1 })), missing: [] } : new Error('unexpected'));
    const local = keyOwnedBy(view, 'node1', 'node2');
    const remote = keyOwnedBy(view, 'node2', 'node3');
    store.store(StoreMode.Set, local, 0, 0, Buffer.from('here'), 0, Date.now());
    const reply = await router.execute({ kind: 'get', keys: [remote, local, 'memc.sess.key.missing-here'], withCas: false });
    expect(reply.kind).toBe('values');
    const values = reply as Extract<Reply, { kind: 'values' }>;
    const order = values.entries.map((entry) => entry.key);
    expect(order.indexOf(remote)).toBeLessThan(order.indexOf(local));
    expect(values.entries.find((entry) => entry.key === local)?.value.toString()).toBe('here');
  });

  it('flush_all empties every live node: applied here, sent to each other live node, OK once all applied', async () => {
    const flushed: string[] = [];
    const { router, network, store, view } = setup('node1', 'sync', (command) => {
      if (command.kind !== 'flush') return new Error('unexpected');
      flushed.push(String(command.delaySeconds));
      return { kind: 'status', status: Status.Ok, cas: 0 };
    });
    store.store(StoreMode.Set, 'memc.sess.key.a', 0, 0, Buffer.from('x'), 0, Date.now());
    expect(await router.execute({ kind: 'flush', delaySeconds: 0 })).toMatchObject({ kind: 'status', status: Status.Ok });
    expect(store.get('memc.sess.key.a', Date.now())).toBeUndefined();
    expect(network.requests.map((r) => [r.to, r.kind])).toEqual([['127.0.0.1:7002', 'forward'], ['127.0.0.1:7003', 'forward']]);
    expect(flushed).toEqual(['0', '0']);
    // a dead member is not asked
    view.update(members(['node3']));
    await router.execute({ kind: 'flush', delaySeconds: 5 });
    expect(network.requests.slice(2).map((r) => r.to)).toEqual(['127.0.0.1:7002']);
    expect(flushed).toEqual(['0', '0', '5']);
  });

  it('flush_all waits for a node that cannot be reached to be declared dead, as a forward waits for a failover', async () => {
    const { router, network, view } = setup('node1', 'sync', (command) => (command.kind === 'flush' ? { kind: 'status', status: Status.Ok, cas: 0 } : new Error('unexpected')));
    network.fail(addressOf('node3'), 'ERR_PEER_UNAVAILABLE');
    const reply = router.execute({ kind: 'flush', delaySeconds: 0 });
    await new Promise((resolve) => setTimeout(resolve, 40));
    view.update(members(['node3']));
    expect(await reply).toMatchObject({ kind: 'status', status: Status.Ok });
    expect(network.requestsOf('forward').filter((r) => r.to === addressOf('node3')).length, 'tried again meanwhile').toBeGreaterThan(1);
  });

  it('flush_all that cannot reach a live node says so (SERVER_ERROR), after flushing every node it reached', async () => {
    const { router, store } = setup('node1', 'sync', () => new Error('connection refused'));
    store.store(StoreMode.Set, 'k', 0, 0, Buffer.from('x'), 0, Date.now());
    expect(await router.execute({ kind: 'flush', delaySeconds: 0 })).toEqual({ kind: 'serverError', message: 'flush_all applied on 1 of 3 nodes; unreachable: node2,node3' });
    expect(store.get('k', Date.now())).toBeUndefined();
  });

  it('a forwarded command is run here, never forwarded again, even when this node thinks another masters it', async () => {
    const { view, network, others } = setup('node1', 'async');
    const key = keyOwnedBy(view, 'node2', 'node3');
    // node2 forwards it to node1 (its view of the moment says node1 masters it)
    expect(await others.get('node2')!.forward({ id: 'node1', address: addressOf('node1') }, set(key, 'v'), { timeoutMs: 1000, validForMs: 900 })).toMatchObject({ kind: 'status', status: Status.Stored });
    // copied to both owners it knows of, but no Forward
    expect(network.requests.filter((r) => r.from === 'node1').map((r) => r.kind)).toEqual(['replicate', 'replicate']);
  });

  describe('deadlines: nothing runs after its sender gave up on it', () => {
    const wait = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

    it('a forward held on the way past its deadline is refused when it arrives, not run', async () => {
      const { view, network, others, store, router } = setup('node1', 'async');
      const key = keyOwnedBy(view, 'node1', 'node2');
      network.hold(addressOf('node1'));
      const sent = others.get('node2')!.forward({ id: 'node1', address: addressOf('node1') }, set(key, 'late'), { timeoutMs: 60, validForMs: 50 });
      await expect(sent).rejects.toMatchObject({ code: 'ERR_PEER_TIMEOUT' });
      await wait(20);
      network.release(addressOf('node1'));
      await wait(20);
      expect(store.peek(key, Date.now()), 'the held forward did not run').toBeUndefined();
      expect(router.counters.forwardsRefusedLate).toBe(1);
    });

    it('a forward on time runs; the refusal of a late one reaches its sender as ERR_PEER_REFUSED', async () => {
      const { view, others, store } = setup('node1', 'async');
      const key = keyOwnedBy(view, 'node1', 'node2');
      const node2 = others.get('node2')!;
      expect(await node2.forward({ id: 'node1', address: addressOf('node1') }, set(key, 'on time'), { timeoutMs: 1000, validForMs: 900 })).toMatchObject({ status: Status.Stored });
      expect(store.peek(key, Date.now())?.value.toString()).toBe('on time');
      // node1 reads node2's clock as an hour ahead: a forward sent just now is long past its deadline there
      const skewed = setup('node1', 'async', undefined, undefined, { nowAt: (member) => Date.now() + (member === 'node2' ? 3_600_000 : 0) });
      await expect(skewed.others.get('node2')!.forward({ id: 'node1', address: addressOf('node1') }, set(key, 'x'), { timeoutMs: 1000, validForMs: 900 }))
        .rejects.toMatchObject({ code: 'ERR_PEER_REFUSED' });
      expect(skewed.store.peek(key, Date.now())).toBeUndefined();
    });

    it('the sender sends it again elsewhere when refused: a refusal means it did not run', async () => {
      const refusedOnce = new Set<string>();
      const { router, view, network } = setup('node1', 'sync', (command) => {
        if (command.kind !== 'store') return new Error('unexpected');
        if (!refusedOnce.has(command.key)) {
          refusedOnce.add(command.key);
          throw new PeerError('ERR_PEER_REFUSED', 'not now');
        }
        return { kind: 'status', status: Status.Stored, cas: 1 };
      });
      const key = keyOwnedBy(view, 'node2', 'node3');
      expect(await router.execute(set(key, 'v'))).toMatchObject({ status: Status.Stored });
      expect(network.requestsOf('forward').map((r) => r.to)).toEqual([addressOf('node2'), addressOf('node2')]);
      expect(router.counters.forwardRetries).toBe(1);
    });

    it('every forward carries how long it may still run: less than the sender waits', async () => {
      const { router, view, network } = setup('node1', 'sync', () => ({ kind: 'values', entries: [], missing: [] }));
      await router.execute({ kind: 'get', keys: [keyOwnedBy(view, 'node2', 'node3')], withCas: false });
      const { limits } = network.requestsOf('forward')[0]!;
      expect(limits.validForMs).toBeGreaterThan(0);
      expect(limits.validForMs).toBeLessThan(limits.timeoutMs);
      expect(limits.timeoutMs).toBeLessThanOrEqual(100);
    });

    it('a write whose copy cannot be made in time is answered SERVER_ERROR and undone here', async () => {
      const { router, view, network, store } = setup('node1', 'sync');
      const key = keyOwnedBy(view, 'node1', 'node3');
      expect(await router.execute(set(key, 'acknowledged'))).toMatchObject({ status: Status.Stored });
      // node3 cannot be reached at all: the copy certainly did not arrive
      network.fail(addressOf('node3'), 'ERR_PEER_UNAVAILABLE');
      expect(await router.execute(set(key, 'not copied'))).toEqual({ kind: 'serverError', message: 'temporary failure: the write could not be copied to the session\'s other owner in time; not stored' });
      expect(store.peek(key, Date.now()), 'undone: node3 still has the acknowledged value').toBeUndefined();
      expect(router.counters.writesNotCopied).toBe(1);
      // node3's link holds what it is sent: the copy went out, and may have arrived
      network.heal(addressOf('node3'));
      expect(await router.execute(set(key, 'acknowledged again'))).toMatchObject({ status: Status.Stored });
      network.hold(addressOf('node3'));
      expect(await router.execute(set(key, 'unanswered'))).toEqual({ kind: 'serverError', message: 'temporary failure: no answer in time from the session\'s other owner; the write may have been applied' });
      expect(store.peek(key, Date.now()), 'undone here too').toBeUndefined();
      const copies = network.requestsOf('replicate');
      expect(copies.at(-1)!.limits.validForMs, 'each copy says how long it may be applied').toBeGreaterThan(0);
      network.release(addressOf('node3'));
    });

    it('an absolute exptime is sent as the seconds left, by this node\'s clock', async () => {
      const { router, view, network } = setup('node1', 'async', () => ({ kind: 'status', status: Status.Stored, cas: 1 }));
      const key = keyOwnedBy(view, 'node2', 'node3');
      const absolute = Math.floor(Date.now() / 1000) + 1440;
      await router.execute({ kind: 'store', mode: StoreMode.Set, key, flags: 0, exptime: absolute, value: Buffer.from('v'), cas: 0 });
      const sent = network.requestsOf('forward')[0]!.command as Extract<Command, { kind: 'store' }>;
      expect(Math.abs(sent.exptime - 1440)).toBeLessThanOrEqual(1);
    });
  });

  it('holds session commands until catch-up settles, in arrival order; stats answer at once', async () => {
    const { router, view } = setup('node1', 'async');
    const key = keyOwnedBy(view, 'node1', 'node2');
    let finish!: () => void;
    router.holdUntil(new Promise<void>((resolve) => { finish = resolve; }));
    const first = router.execute(set(key, 'a'));
    const second = router.execute({ kind: 'get', keys: [key], withCas: false });
    expect(router.execute({ kind: 'version' })).toEqual({ kind: 'version', version: 'v' });
    expect(first).toBeInstanceOf(Promise);
    finish();
    expect(await first).toMatchObject({ status: Status.Stored });
    expect(await second).toMatchObject({ kind: 'values', entries: [{ key }] });
    // once caught up, local commands answer synchronously again
    expect(router.execute({ kind: 'get', keys: [key], withCas: false })).toMatchObject({ kind: 'values' });
  });
});
