/**
 * The router between the local executor and the peers, with placement worked out by hand: a
 * fake peer pool records what is forwarded or replicated and answers as the peer would.
 */
import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { Executor } from '../../src/command/executor.js';
import { ClusterView } from '../../src/cluster/cluster-view.js';
import { decodeCommand, decodeItemBatch, encodeReply } from '../../src/cluster/peer/command-codec.js';
import { Opcode } from '../../src/cluster/peer/opcodes.js';
import type { PeerPool } from '../../src/cluster/peer/peer-pool.js';
import { Replicator } from '../../src/cluster/replication/replicator.js';
import { MemberState } from '../../src/cluster/types.js';
import { type Command, type Reply, Status, StoreMode } from '../../src/protocol/types.js';
import { Router } from '../../src/router.js';
import { PeerError } from '../../src/errors.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { STATS_SOURCE } from '../support/rig.js';

const log = pino({ level: 'silent' });
const NODES = ['node1', 'node2', 'node3'];

interface Sent { address: string; opcode: number; payload: Buffer }

/** A pool whose links answer Forward with `answer(command)` and acknowledge Replicate. */
function fakePool(answer: (command: Command) => Reply | Error) {
  const sent: Sent[] = [];
  const releases: Array<() => void> = [];
  let holdReplicas = false;
  const pool = {
    get: (address: string) => ({
      request: async (opcode: number, payload: Buffer) => {
        sent.push({ address, opcode, payload });
        if (opcode === Opcode.Forward) {
          const reply = answer(decodeCommand(payload));
          if (reply instanceof Error) throw reply;
          return { opcode: Opcode.ForwardReply, payload: encodeReply(reply) };
        }
        if (holdReplicas) await new Promise<void>((resolve) => releases.push(resolve));
        return { opcode: Opcode.ReplicateAck, payload: Buffer.alloc(0) };
      },
    }),
  } as unknown as PeerPool;
  return { pool, sent, releases, holdReplicas: (hold: boolean) => { holdReplicas = hold; } };
}

function setup(self: string, replication: 'sync' | 'async', answer: (command: Command) => Reply | Error = () => new Error('unreachable')) {
  const store = new MemoryStore({ memoryLimit: 1 << 24, maxItemSize: 1024, nodeId: self });
  const executor = new Executor({ store, stats: STATS_SOURCE, version: 'v' });
  const view = new ClusterView(self);
  view.update(NODES.map((id, i) => ({ id, peerAddress: `127.0.0.1:${7001 + i}`, state: MemberState.Alive, incarnation: 1 })));
  const fake = fakePool(answer);
  const replicator = new Replicator({ store, view, pool: fake.pool, log, requestTimeoutMs: 100, giveUpAfterMs: 300 });
  const router = new Router({ executor, view, pool: fake.pool, replicator, replication, log, forwardTimeoutMs: 100 });
  return { store, view, router, ...fake };
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
    const { router, view, sent, releases, holdReplicas, store } = setup('node1', 'sync');
    const key = keyOwnedBy(view, 'node1', 'node3');
    holdReplicas(true);
    const reply = router.execute(set(key, 'v1'));
    expect(reply).toBeInstanceOf(Promise);
    let answered = false;
    void (reply as Promise<Reply>).then(() => { answered = true; });
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(answered).toBe(false);
    expect(sent).toHaveLength(1);
    expect(sent[0]).toMatchObject({ address: '127.0.0.1:7003', opcode: Opcode.Replicate });
    expect(decodeItemBatch(sent[0]!.payload)[0]).toMatchObject({ key, origin: 'node1' });
    releases.shift()!();
    expect(await reply).toMatchObject({ kind: 'status', status: Status.Stored });
    expect(store.peek(key, Date.now())?.value.toString()).toBe('v1');
  });

  it('answers at once in async mode, the copy following', async () => {
    const { router, view, sent, holdReplicas } = setup('node1', 'async');
    holdReplicas(true);
    const key = keyOwnedBy(view, 'node1', 'node2');
    expect(router.execute(set(key, 'v'))).toMatchObject({ kind: 'status', status: Status.Stored });
    expect(sent.map((s) => s.opcode)).toEqual([Opcode.Replicate]);
  });

  it('forwards a session mastered elsewhere to its master and relays the answer; reads copy nothing', async () => {
    const { router, view, sent, store } = setup('node1', 'sync', (command) =>
      command.kind === 'get' ? { kind: 'values', entries: [{ key: command.keys[0]!, flags: 5, value: Buffer.from('remote'), cas: 9 }], missing: [] } : new Error('unexpected'));
    const key = keyOwnedBy(view, 'node2', 'node1');
    const reply = await router.execute({ kind: 'get', keys: [key], withCas: false });
    expect(reply).toMatchObject({ kind: 'values', entries: [{ key, flags: 5, cas: 9 }] });
    expect(sent).toHaveLength(1);
    expect(sent[0]).toMatchObject({ address: '127.0.0.1:7002', opcode: Opcode.Forward });
    expect(store.itemCount).toBe(0);
  });

  it('answers SERVER_ERROR-style when the master cannot be reached', async () => {
    const { router, view } = setup('node1', 'sync');
    const key = keyOwnedBy(view, 'node3', 'node2');
    expect(await router.execute(set(key, 'v'))).toEqual({ kind: 'serverError', message: 'temporary failure: session owner node3 unreachable' });
    expect(router.counters.forwardFailures).toBe(1);
  });

  describe('a master that cannot be reached', () => {
    /** Forwards to `down` addresses fail with `code`; others answer STORED / a value. */
    function retryRig(code: string, forwardTimeoutMs = 1000) {
      const store = new MemoryStore({ memoryLimit: 1 << 24, maxItemSize: 1024, nodeId: 'node1' });
      const executor = new Executor({ store, stats: STATS_SOURCE, version: 'v' });
      const view = new ClusterView('node1');
      const members = (dead: string[]) => NODES.map((id, i) => ({ id, peerAddress: `127.0.0.1:${7001 + i}`, state: dead.includes(id) ? MemberState.Dead : MemberState.Alive, incarnation: 1 }));
      view.update(members([]));
      const down = new Set<string>(['127.0.0.1:7002']);
      const sent: string[] = [];
      const pool = {
        get: (address: string) => ({
          request: async (opcode: number, payload: Buffer) => {
            if (opcode !== Opcode.Forward) return { opcode: Opcode.ReplicateAck, payload: Buffer.alloc(0) };
            sent.push(address);
            if (down.has(address)) throw new PeerError(code as never, `${address}: ${code}`);
            const command = decodeCommand(payload);
            const reply: Reply = command.kind === 'get'
              ? { kind: 'values', entries: command.keys.map((key) => ({ key, flags: 0, value: Buffer.from(`from ${address}`), cas: 1 })), missing: [] }
              : { kind: 'status', status: Status.Stored, cas: 1 };
            return { opcode: Opcode.ForwardReply, payload: encodeReply(reply) };
          },
        }),
      } as unknown as PeerPool;
      const replicator = new Replicator({ store, view, pool, log, requestTimeoutMs: 100, giveUpAfterMs: 300 });
      const router = new Router({ executor, view, pool, replicator, replication: 'async', log, forwardTimeoutMs });
      return { router, view, sent, down, store, declareDead: (...ids: string[]) => view.update(members(ids)) };
    }

    it('a command that never left waits for the failover, then goes to the new master', async () => {
      const { router, view, sent, declareDead } = retryRig('ERR_PEER_UNAVAILABLE');
      const key = keyOwnedBy(view, 'node2', 'node3');
      const reply = router.execute(set(key, 'v'));
      await new Promise((resolve) => setTimeout(resolve, 130));
      expect(sent.every((address) => address === '127.0.0.1:7002')).toBe(true);
      expect(sent.length).toBeGreaterThan(1); // tried again while node2 was still counted live
      declareDead('node2');
      expect(await reply).toMatchObject({ kind: 'status', status: Status.Stored });
      expect(sent.at(-1)).toBe('127.0.0.1:7003');
      expect(router.counters.forwardFailures).toBe(0);
      expect(router.counters.forwardRetries).toBeGreaterThan(1);
    });

    it('a link that comes back: the same master gets it', async () => {
      const { router, view, sent, down } = retryRig('ERR_PEER_UNAVAILABLE');
      const key = keyOwnedBy(view, 'node2', 'node3');
      const reply = router.execute({ kind: 'get', keys: [key], withCas: false });
      await new Promise((resolve) => setTimeout(resolve, 80));
      down.clear();
      expect(await reply).toMatchObject({ kind: 'values', entries: [{ value: Buffer.from('from 127.0.0.1:7002') }] });
      expect(new Set(sent)).toEqual(new Set(['127.0.0.1:7002']));
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
      expect(await router.execute(add)).toEqual({ kind: 'serverError', message: 'temporary failure: session owner node2 unreachable' });
      expect(sent).toEqual(['127.0.0.1:7002']);
      const del = router.execute({ kind: 'delete', key, cas: 0 });
      await new Promise((resolve) => setTimeout(resolve, 60));
      declareDead('node2');
      expect(await del).toMatchObject({ kind: 'status' });
      expect(sent.at(-1)).toBe('127.0.0.1:7003');
    });

    it('a master that stays unreachable: SERVER_ERROR once the forward timeout is spent', async () => {
      const { router, view, sent } = retryRig('ERR_PEER_UNAVAILABLE', 300);
      const key = keyOwnedBy(view, 'node2', 'node3');
      const started = Date.now();
      expect(await router.execute(set(key, 'v'))).toEqual({ kind: 'serverError', message: 'temporary failure: session owner node2 unreachable' });
      expect(Date.now() - started).toBeGreaterThanOrEqual(200);
      expect(sent.length).toBeGreaterThan(2);
      expect(router.counters.forwardFailures).toBe(1);
    });

    it('a timeout is final: no second try', async () => {
      const { router, view, sent } = retryRig('ERR_PEER_TIMEOUT');
      const key = keyOwnedBy(view, 'node2', 'node3');
      expect(await router.execute(set(key, 'v'))).toMatchObject({ kind: 'serverError' });
      expect(sent).toEqual(['127.0.0.1:7002']);
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
    const { router, sent, store, view } = setup('node1', 'sync', (command) => {
      if (command.kind !== 'flush') return new Error('unexpected');
      flushed.push(String(command.delaySeconds));
      return { kind: 'status', status: Status.Ok, cas: 0 };
    });
    store.store(StoreMode.Set, 'memc.sess.key.a', 0, 0, Buffer.from('x'), 0, Date.now());
    expect(await router.execute({ kind: 'flush', delaySeconds: 0 })).toMatchObject({ kind: 'status', status: Status.Ok });
    expect(store.get('memc.sess.key.a', Date.now())).toBeUndefined();
    expect(sent.map((s) => [s.address, s.opcode])).toEqual([['127.0.0.1:7002', Opcode.Forward], ['127.0.0.1:7003', Opcode.Forward]]);
    expect(flushed).toEqual(['0', '0']);
    // a dead member is not asked
    view.update(NODES.map((id, i) => ({ id, peerAddress: `127.0.0.1:${7001 + i}`, state: id === 'node3' ? MemberState.Dead : MemberState.Alive, incarnation: 1 })));
    await router.execute({ kind: 'flush', delaySeconds: 5 });
    expect(sent.slice(2).map((s) => s.address)).toEqual(['127.0.0.1:7002']);
    expect(flushed).toEqual(['0', '0', '5']);
  });

  it('flush_all that cannot reach a live node says so (SERVER_ERROR), after flushing every node it reached', async () => {
    const { router, store } = setup('node1', 'sync', () => new Error('connection refused'));
    store.store(StoreMode.Set, 'k', 0, 0, Buffer.from('x'), 0, Date.now());
    expect(await router.execute({ kind: 'flush', delaySeconds: 0 })).toEqual({ kind: 'serverError', message: 'flush_all applied on 1 of 3 nodes; unreachable: node2,node3' });
    expect(store.get('k', Date.now())).toBeUndefined();
  });

  it('a forwarded command is run here, never forwarded again, even when this node thinks another masters it', async () => {
    const { router, view, sent } = setup('node1', 'async');
    const key = keyOwnedBy(view, 'node2', 'node3');
    expect(router.handleForward(set(key, 'v'))).toMatchObject({ kind: 'status', status: Status.Stored });
    // copied to both owners it knows of, but no Forward
    expect(sent.map((s) => s.opcode)).toEqual([Opcode.Replicate, Opcode.Replicate]);
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
