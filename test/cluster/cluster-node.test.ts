/**
 * A cluster node's lifecycle, whole nodes in one process: membership over the in-memory hub,
 * forwarding and copies over the in-memory peer network, real stores, routers and replicators,
 * on fake timers. Join and catch-up (commands wait until the node has its sessions back), a join
 * nobody answers (never serving alone), a drain cut short by its timeout, and a stall past the
 * failure timeout.
 */
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ClusterNode, type DrainOutcome, pathsOf } from '../../src/cluster/cluster-node.js';
import { ClusterView } from '../../src/cluster/cluster-view.js';
import { Membership } from '../../src/cluster/membership/membership.js';
import { MemoryHub } from '../../src/cluster/membership/memory-transport.js';
import { MemoryPeerNetwork } from '../../src/cluster/memory-peers.js';
import { Replicator } from '../../src/cluster/replication/replicator.js';
import { Quorum } from '../../src/cluster/quorum.js';
import { Router } from '../../src/cluster/router.js';
import type { TwoNodeMode } from '../../src/config.js';
import { SessionIds } from '../../src/cluster/session-ids.js';
import { MemberState, type NodeId } from '../../src/cluster/types.js';
import { Executor } from '../../src/command/executor.js';
import { type Command, type Reply, Status, StoreMode } from '../../src/protocol/types.js';
import { SessionLocks } from '../../src/session-locks/session-locks.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { fakeClock } from '../support/fake-clock.js';

const log = pino({ level: 'silent' });
const HEARTBEAT = 200;
const FAILURE_TIMEOUT = 800;

const addressOf = (id: NodeId) => `${id}.test:7000`;
const set = (key: string, value: string): Command => ({ kind: 'store', mode: StoreMode.Set, key, flags: 0, exptime: 0, value: Buffer.from(value), cas: 0 });
const get = (key: string): Command => ({ kind: 'get', keys: [key], withCas: false });
const valueOf = (reply: Reply) => (reply.kind === 'values' ? reply.entries[0]?.value.toString() ?? null : `not a value: ${reply.kind}`);

class Farm {
  readonly hub = new MemoryHub(fakeClock);
  readonly network = new MemoryPeerNetwork();
  readonly nodes = new Map<NodeId, ReturnType<Farm['build']>>();

  /** One node, built as the composition root builds it, over the in-memory transports. */
  build(id: NodeId, seeds: NodeId[], options: { drainTimeoutMs?: number; twoNodes?: TwoNodeMode; joinTimeoutMs?: number; stopGraceMs?: number } = {}) {
    const peerAddress = addressOf(id);
    const store = new MemoryStore({ memoryLimit: 1 << 24, maxItemSize: 1024, nodeId: id });
    const executor = new Executor({ store, version: 'v' });
    const transport = this.hub.connect(id, peerAddress);
    const membership = new Membership({
      self: { id, peerAddress, incarnation: 1 }, seeds: seeds.map(addressOf), transport, clock: transport.clock, log,
      heartbeatMs: HEARTBEAT, failureTimeoutMs: FAILURE_TIMEOUT,
    });
    const peers = this.network.connect({ id, address: peerAddress });
    const view = new ClusterView(id);
    const quorum = new Quorum(id, options.twoNodes ?? 'available');
    const clocks = membership.clocks;
    const replicator = new Replicator({ store, view, peers, clocks, quorum, log, requestTimeoutMs: 100, giveUpAfterMs: 300 });
    const router = new Router({ executor, view, peers, clocks, quorum, paths: pathsOf(membership, view), replicator, replication: 'sync', log, forwardTimeoutMs: 2000 });
    const sessionIds = new SessionIds({ view, secret: 'a-secret-for-these-tests', loadOf: (member) => membership.loadOf(member) });
    const closed = { links: false };
    const warnings: string[] = [];
    const nodeLog = pino({ level: 'warn' }, { write: (line: string) => { warnings.push(String(JSON.parse(line).msg)); } });
    // The session locks of the node's client connections, as the composition root wires them.
    const locks = new SessionLocks({ sessionPrefix: 'memc.sess.key.', log });
    const node: ClusterNode = new ClusterNode({
      peerAddress, seeds: seeds.map(addressOf), store, view, membership, replicator, router, sessionIds, quorum, log: nodeLog,
      failureTimeoutMs: FAILURE_TIMEOUT, heartbeatMs: HEARTBEAT, drainTimeoutMs: options.drainTimeoutMs ?? 30_000,
      joinTimeoutMs: options.joinTimeoutMs ?? 0, whyNotJoined: () => seeds.map((seed) => `${addressOf(seed)}: no answer`).join('; '),
      closeLinks: async () => {
        this.network.disconnect(peerAddress);
        closed.links = true;
      },
      requests: locks, stopGraceMs: options.stopGraceMs ?? 5000,
    });
    locks.releaseThrough((command) => node.execute(command));
    /** A client connection's commands, its session locks followed as the daemon follows them. */
    const connect = () => locks.forConnection().wrap((command) => node.execute(command));
    const caughtUp: string[] = [];
    const drained: Array<[DrainOutcome, NodeId | null]> = [];
    node.on('caughtUp', (reason) => caughtUp.push(reason));
    node.on('drained', (outcome, replacement) => drained.push([outcome, replacement]));
    const built = { id, node, store, view, membership, quorum, router, closed, caughtUp, drained, warnings, connect };
    this.nodes.set(id, built);
    return built;
  }

  /** A key whose master is `master` as `on` places it now. */
  keyMasteredBy(on: NodeId, master: NodeId, prefix = 's'): string {
    const view = this.nodes.get(on)!.view;
    for (let i = 0; ; i++) {
      const key = `memc.sess.key.${prefix}${i}`;
      if (view.owners(key).master?.id === master) return key;
    }
  }
}

/** Settles `promise` while advancing the fake clock, failing after `limitMs` of virtual time. */
async function settle<T>(promise: Promise<T> | T, limitMs = 10_000): Promise<T> {
  let done = false;
  const result = Promise.resolve(promise).finally(() => { done = true; });
  for (let spent = 0; !done && spent < limitMs; spent += 10) await vi.advanceTimersByTimeAsync(10);
  if (!done) throw new Error(`not settled within ${limitMs} ms of virtual time`);
  return result;
}

/** n1 started alone, n2 joined through it, both caught up and alive in each other's view. */
async function twoNodes(n1Options: { drainTimeoutMs?: number; stopGraceMs?: number } = {}) {
  const farm = new Farm();
  const n1 = farm.build('n1', [], n1Options);
  await settle(n1.node.start());
  const n2 = farm.build('n2', ['n1']);
  await settle(n2.node.start());
  await vi.advanceTimersByTimeAsync(3 * HEARTBEAT);
  return { farm, n1, n2 };
}

beforeEach(() => { vi.useFakeTimers(); });
afterEach(() => { vi.useRealTimers(); });

describe('ClusterNode lifecycle', () => {
  it('a first node starts a cluster and serves at once; a second joins, holds its sessions\' commands until they are handed over, then serves them', async () => {
    const farm = new Farm();
    const n1 = farm.build('n1', []);
    await settle(n1.node.start());
    expect(n1.caughtUp).toEqual(['start']);
    for (let i = 0; i < 50; i++) expect(await n1.node.execute(set(`memc.sess.key.s${i}`, `v${i}`))).toMatchObject({ status: Status.Stored });

    // n2's handoff is held on the wire: n2 has joined but not caught up
    farm.network.hold(addressOf('n2'));
    const n2 = farm.build('n2', ['n1']);
    const started = n2.node.start();
    await vi.advanceTimersByTimeAsync(3 * HEARTBEAT);
    expect(n2.membership.joined).toBe(true);
    expect(n2.caughtUp).toEqual([]);
    const key = farm.keyMasteredBy('n2', 'n2');
    let answer: Reply | null = null;
    void Promise.resolve(n2.node.execute(get(key))).then((reply) => { answer = reply; });
    await vi.advanceTimersByTimeAsync(50);
    expect(answer, 'held while catching up').toBeNull();
    // stats and the like answer at once all the same
    expect(n2.node.execute({ kind: 'version' })).toEqual({ kind: 'version', version: 'v' });

    farm.network.release(addressOf('n2'));
    await settle(started);
    expect(n2.caughtUp).toEqual(['start']);
    await settle(Promise.resolve().then(() => answer !== null));
    expect(valueOf(answer!)).toBe(`v${key.slice('memc.sess.key.s'.length)}`);
    // it took back exactly the sessions it owns, and serves them from its own store
    const owned = [...Array(50).keys()].map((i) => `memc.sess.key.s${i}`).filter((k) => n2.view.owners(k).master?.id === 'n2' || n2.view.owners(k).backup?.id === 'n2');
    expect(n2.store.itemCount).toBe(owned.length);
  });

  it('a join nobody answers: the node does not serve alone; it warns with each seed\'s reason, and fails at the join timeout', async () => {
    const farm = new Farm();
    const lonely = farm.build('lonely', ['nobody'], { joinTimeoutMs: 3000 });
    const started = lonely.node.start();
    const outcome = started.then(() => null, (error: unknown) => error as Error);
    await vi.advanceTimersByTimeAsync(2999);
    expect(lonely.caughtUp).toEqual([]);
    expect(lonely.node.ready).toBe(false);
    expect(lonely.node.notReadyBecause()).toBe('not joined: nobody.test:7000: no answer');
    expect(lonely.warnings).toContain('cannot join the cluster: nobody.test:7000: no answer');
    const error = await settle(outcome);
    expect(error).toMatchObject({ code: 'ERR_JOIN', message: 'cannot join the cluster within --join-timeout-ms (3000 ms): nobody.test:7000: no answer' });
    expect(lonely.caughtUp).toEqual([]);
    expect(lonely.node.ready).toBe(false);
  });

  it('a first node whose seeds are not up yet waits for them (join timeout 0), then joins and serves when one comes up', async () => {
    const farm = new Farm();
    const first = farm.build('n1', ['n2']);
    const started = first.node.start();
    await vi.advanceTimersByTimeAsync(60_000);
    expect(first.node.ready).toBe(false);
    expect(first.caughtUp).toEqual([]);
    const second = farm.build('n2', ['n1']);
    const secondStarted = second.node.start();
    await settle(Promise.all([started, secondStarted]));
    expect(first.caughtUp).toEqual(['start']);
    expect(first.membership.joined && second.membership.joined).toBe(true);
    await vi.advanceTimersByTimeAsync(3 * HEARTBEAT);
    expect(first.node.ready && second.node.ready).toBe(true);
    expect(first.node.notReadyBecause()).toBe('');
  });

  it('a start abandoned while waiting to join rejects with ERR_START_ABORTED, and stops without a leave', async () => {
    const farm = new Farm();
    const lonely = farm.build('lonely', ['nobody']);
    const abort = new AbortController();
    const outcome = lonely.node.start(abort.signal).then(() => null, (error: unknown) => error as Error);
    await vi.advanceTimersByTimeAsync(500);
    abort.abort();
    expect(await settle(outcome)).toMatchObject({ code: 'ERR_START_ABORTED' });
    await settle(lonely.node.stop());
    expect(lonely.drained).toEqual([['skipped', null]]);
    expect(lonely.membership.self.state).toBe(MemberState.Alive);
    expect(lonely.closed.links).toBe(true);
  });

  it('a drain whose copies are not acknowledged ends at the drain timeout; the node leaves anyway, naming its replacement', async () => {
    const { farm, n1, n2 } = await twoNodes({ drainTimeoutMs: 150 });
    for (let i = 0; i < 20; i++) await settle(n1.node.execute(set(`memc.sess.key.d${i}`, 'v')));

    farm.network.hold(addressOf('n2'));
    const stopped = n1.node.stop();
    await vi.advanceTimersByTimeAsync(149);
    expect(n1.drained).toEqual([]);
    await settle(stopped);
    expect(n1.drained).toEqual([['timeout', 'n2']]);
    expect(n1.closed.links).toBe(true);
    await vi.advanceTimersByTimeAsync(HEARTBEAT);
    expect(n2.membership.member('n1')).toMatchObject({ state: MemberState.Left, replacement: 'n2' });
    farm.network.release(addressOf('n2'));
  });

  it('a drain that completes: every session on its new owner before the node leaves', async () => {
    const { n1, n2 } = await twoNodes();
    for (let i = 0; i < 20; i++) await settle(n1.node.execute(set(`memc.sess.key.d${i}`, `v${i}`)));
    await settle(n1.node.stop());
    expect(n1.drained).toEqual([['complete', 'n2']]);
    for (let i = 0; i < 20; i++) expect(n2.store.peek(`memc.sess.key.d${i}`, Date.now())?.value.toString()).toBe(`v${i}`);
  });

  it('a stopping node, its sessions handed over, refuses the forwards of nodes that have not heard it leave: they run on the new owner', async () => {
    const { farm, n1, n2 } = await twoNodes();
    const key = farm.keyMasteredBy('n2', 'n1');
    await settle(n2.node.execute(set(key, 'visits|1;')));
    // n2 hears n1's leave 50 ms late, as a busy node does: its forwards keep going to n1 meanwhile.
    farm.hub.setDelay((from) => (from === 'n1' ? 50 : 0));
    const stopped = n1.node.stop();
    await settle(new Promise<void>((resolve) => { n1.node.once('drained', () => resolve()); }));
    await vi.advanceTimersByTimeAsync(10);
    expect(n2.view.owners(key).master?.id, 'n2 has not heard the leave yet').toBe('n1');
    // A PHP request's write through n2, after the handover: n1 would have run it with no copy to
    // make (its replicator stopped) and answered SERVER_ERROR; refused, it runs on n2 instead.
    expect(await settle(n2.node.execute(set(key, 'visits|2;')))).toMatchObject({ kind: 'status', status: Status.Stored });
    expect(n2.store.peek(key, Date.now())?.value.toString()).toBe('visits|2;');
    await settle(stopped);
  });

  it('an operator\'s drain keeps the process: its clients are refused meanwhile, every session goes over, it leaves and drops its copies; undrain brings it back with its sessions', async () => {
    const { n1, n2 } = await twoNodes();
    const keys = [...Array(20).keys()].map((i) => `memc.sess.key.o${i}`);
    for (const [i, key] of keys.entries()) await settle(n1.node.execute(set(key, `v${i}`)));
    expect(n1.node.drainStatus.state).toBe('serving');

    expect(n1.node.drainNow()).toMatchObject({ state: 'draining', items: 20 });
    expect(n1.node.ready).toBe(false);
    expect(n1.node.notReadyBecause()).toMatch(/^draining/);
    expect(await n1.node.execute(get(keys[0]!))).toMatchObject({ kind: 'serverError' });
    // asked again while it runs, it reports and starts nothing new
    expect(n1.node.drainNow().state).toBe('draining');

    await settle(Promise.resolve().then(async () => { while (n1.node.drainStatus.state !== 'drained') await vi.advanceTimersByTimeAsync(10); }));
    expect(n1.node.drainStatus).toMatchObject({ state: 'drained', outcome: 'complete', replacement: 'n2', copies: 20, acknowledged: 20 });
    expect(n1.node.notReadyBecause()).toMatch(/^drained/);
    expect(n1.store.itemCount, 'its copies go once acknowledged').toBe(0);
    expect(n1.closed.links, 'the process and its links stay').toBe(false);
    await vi.advanceTimersByTimeAsync(2 * HEARTBEAT);
    expect(n2.membership.member('n1')).toMatchObject({ state: MemberState.Left, replacement: 'n2' });
    for (const [i, key] of keys.entries()) expect(valueOf(await settle(n2.node.execute(get(key))))).toBe(`v${i}`);

    expect(n1.node.undrain().state).toBe('rejoining');
    await settle(Promise.resolve().then(async () => { while (n1.node.drainStatus.state !== 'serving') await vi.advanceTimersByTimeAsync(10); }));
    await vi.advanceTimersByTimeAsync(3 * HEARTBEAT);
    expect(n2.membership.member('n1')?.state).toBe(MemberState.Alive);
    expect(n1.node.ready).toBe(true);
    const owned = keys.filter((key) => n1.view.owners(key).master?.id === 'n1' || n1.view.owners(key).backup?.id === 'n1');
    expect(owned.length).toBeGreaterThan(0);
    for (const key of owned) expect(n1.store.peek(key, Date.now())?.value.toString(), key).toBe(`v${keys.indexOf(key)}`);
    for (const [i, key] of keys.entries()) expect(valueOf(await settle(n1.node.execute(get(key))))).toBe(`v${i}`);
  });

  it('an operator\'s drain lets the PHP requests in progress (holding their session\'s lock) write before it hands over; new requests are refused meanwhile', async () => {
    const { farm, n1, n2 } = await twoNodes();
    const key = farm.keyMasteredBy('n1', 'n1');
    const lock = key.replace('memc.sess.key.', 'memc.sess.key.lock.');
    await settle(n1.node.execute(set(key, 'visits|1;')));
    const request = n1.connect();
    expect(await settle(request({ kind: 'store', mode: StoreMode.Add, key: lock, flags: 0, exptime: 30, value: Buffer.from('1'), cas: 0 }))).toMatchObject({ status: Status.Stored });
    expect(valueOf(await settle(request(get(key))))).toBe('visits|1;');

    expect(n1.node.drainNow()).toMatchObject({ state: 'draining' });
    expect(n1.node.ready).toBe(false);
    // A new request (its connection holds no lock) is refused, as during the drain itself.
    expect(await settle(n1.connect()(get(key)))).toMatchObject({ kind: 'serverError', message: expect.stringMatching(/^temporary failure: this node is drained or draining/) });
    await vi.advanceTimersByTimeAsync(1000);
    expect(n1.node.drainStatus.state, 'waits for the request in progress').toBe('draining');
    expect(n1.drained).toEqual([]);
    // The request in progress writes and releases: served, and replicated.
    expect(await settle(request(set(key, 'visits|2;')))).toMatchObject({ status: Status.Stored });
    expect(await settle(request({ kind: 'delete', key: lock, cas: 0 }))).toMatchObject({ status: Status.Deleted });

    await settle(Promise.resolve().then(async () => { while (n1.node.drainStatus.state !== 'drained') await vi.advanceTimersByTimeAsync(10); }));
    expect(n1.node.drainStatus).toMatchObject({ state: 'drained', outcome: 'complete', replacement: 'n2' });
    expect(valueOf(await settle(n2.node.execute(get(key))))).toBe('visits|2;');
    expect(n2.store.peek(lock, Date.now())).toBeUndefined();
  });

  it('an operator\'s drain waits for the requests in progress no longer than --stop-grace-ms', async () => {
    const { farm, n1, n2 } = await twoNodes({ stopGraceMs: 300 });
    const key = farm.keyMasteredBy('n1', 'n1');
    const request = n1.connect();
    expect(await settle(request({ kind: 'store', mode: StoreMode.Add, key: key.replace('memc.sess.key.', 'memc.sess.key.lock.'), flags: 0, exptime: 30, value: Buffer.from('1'), cas: 0 }))).toMatchObject({ status: Status.Stored });
    n1.node.drainNow();
    await vi.advanceTimersByTimeAsync(250);
    expect(n1.drained).toEqual([]);
    await settle(Promise.resolve().then(async () => { while (n1.node.drainStatus.state !== 'drained') await vi.advanceTimersByTimeAsync(10); }));
    expect(n1.node.drainStatus).toMatchObject({ state: 'drained', outcome: 'complete', replacement: 'n2' });
    expect(n1.warnings).toContain('draining: requests still in progress after --stop-grace-ms; their writes are refused');
    // Too late: the write is refused, not lost silently.
    expect(await settle(request(set(key, 'late')))).toMatchObject({ kind: 'serverError' });
    expect(valueOf(await settle(n2.node.execute(get(key))))).not.toBe('late');
  });

  it('an operator\'s drain with no other live node to take the sessions is refused, and the node keeps serving', async () => {
    const farm = new Farm();
    const lonely = farm.build('lonely', []);
    await settle(lonely.node.start());
    expect(() => lonely.node.drainNow()).toThrow(/no other live node/);
    expect(lonely.node.drainStatus.state).toBe('serving');
    expect(lonely.node.ready).toBe(true);
  });

  it('a stall past the failure timeout: the node drops its copies and takes the current ones back before serving again', async () => {
    const { farm, n1, n2 } = await twoNodes();
    const key = farm.keyMasteredBy('n1', 'n2');
    expect(await settle(n1.node.execute(set(key, 'before')))).toMatchObject({ status: Status.Stored });
    expect(n2.store.peek(key, Date.now())?.value.toString()).toBe('before');

    // kill -STOP n2 for longer than the failure timeout; n1 declares it dead and takes over
    farm.hub.pause('n2');
    await vi.advanceTimersByTimeAsync(FAILURE_TIMEOUT + 4 * HEARTBEAT);
    expect(n1.membership.member('n2')?.state).toBe(MemberState.Dead);
    expect(await settle(n1.node.execute(set(key, 'after')))).toMatchObject({ status: Status.Stored });

    // kill -CONT: n2's overdue timers see the stall; its copy of `key` is stale, so it goes
    farm.hub.resume('n2');
    expect(n2.store.peek(key, Date.now())).toBeUndefined();
    const read = n2.node.execute(get(key));
    expect(read, 'held until caught up again').toBeInstanceOf(Promise);
    await settle(read);
    // It caught up for the stall; and, since n1 had left it out meanwhile, which its view then
    // learned, once more on getting the majority back: commands waited for both.
    expect(n2.caughtUp[0]).toBe('start');
    expect(new Set(n2.caughtUp.slice(1)), n2.caughtUp.join()).toEqual(new Set(['stalled past the failure timeout', 'back with a majority']));
    expect(valueOf(await read)).toBe('after');
    expect(n2.store.peek(key, Date.now())?.value.toString()).toBe('after');
  });

  describe('partitions: the members that serve are the same everywhere, and a node without a majority stops', () => {
    /** Three nodes, all serving. */
    async function threeNodes() {
      const farm = new Farm();
      const n0 = farm.build('n0', []);
      await settle(n0.node.start());
      const n1 = farm.build('n1', ['n0']);
      const n2 = farm.build('n2', ['n0']);
      await settle(Promise.all([n1.node.start(), n2.node.start()]));
      await vi.advanceTimersByTimeAsync(3 * HEARTBEAT);
      for (const n of [n0, n1, n2]) expect(n.node.servingIds(), n.id).toEqual(['n0', 'n1', 'n2']);
      return { farm, n0, n1, n2 };
    }

    /** Cuts the pairs `cut` picks, on the membership hub and on the peer network alike. */
    function cutBetween(farm: Farm, cut: ((a: NodeId, b: NodeId) => boolean) | null): void {
      farm.hub.dropIf(cut === null ? null : (from, to) => cut(from, to));
      const idOf = (address: string) => address.split('.')[0]!;
      farm.network.dropIf(cut === null ? null : (from, to) => cut(from, idOf(to)));
    }

    it('two nodes, one gone: available keeps serving on the other; consistent stops until it is back', async () => {
      for (const twoNodes of ['available', 'consistent'] as const) {
        const farm = new Farm();
        const n1 = farm.build('n1', [], { twoNodes });
        await settle(n1.node.start());
        const n2 = farm.build('n2', ['n1'], { twoNodes });
        await settle(n2.node.start());
        await vi.advanceTimersByTimeAsync(3 * HEARTBEAT);
        expect(await settle(n1.node.execute(set('memc.sess.key.two', 'both')))).toMatchObject({ status: Status.Stored });
        farm.hub.kill('n2');
        farm.network.disconnect(addressOf('n2'));
        await vi.advanceTimersByTimeAsync(3 * FAILURE_TIMEOUT);
        expect(n1.node.servingIds(), twoNodes).toEqual(['n1']);
        if (twoNodes === 'available') {
          expect(n1.node.ready).toBe(true);
          expect(valueOf(await settle(n1.node.execute(get('memc.sess.key.two'))))).toBe('both');
          expect(await settle(n1.node.execute(set('memc.sess.key.two', 'alone')))).toMatchObject({ status: Status.Stored });
        } else {
          expect(n1.node.ready).toBe(false);
          expect(n1.node.notReadyBecause()).toBe('this node reaches 1 of the cluster\'s 2 members, not a majority');
          expect(await settle(n1.node.execute(get('memc.sess.key.two')))).toMatchObject({ kind: 'serverError' });
        }
      }
    });

    it('an asymmetric cut (n0 and n2 cannot reach each other, both reach n1) settles: all three serve n0 and n1, stably', async () => {
      const { farm, n0, n1, n2 } = await threeNodes();
      const across = (a: NodeId, b: NodeId) => (a === 'n0' && b === 'n2') || (a === 'n2' && b === 'n0');
      cutBetween(farm, across);
      await vi.advanceTimersByTimeAsync(3 * FAILURE_TIMEOUT);
      for (const n of [n0, n1, n2]) expect(n.node.servingIds(), `${n.id} serves`).toEqual(['n0', 'n1']);
      expect([n0.node.ready, n1.node.ready, n2.node.ready]).toEqual([true, true, false]);
      // and it stays so, while membership underneath keeps arguing about n0 and n2
      for (let i = 0; i < 10; i++) {
        await vi.advanceTimersByTimeAsync(FAILURE_TIMEOUT / 2);
        for (const n of [n0, n1, n2]) expect(n.node.servingIds(), `${n.id} serves, round ${i}`).toEqual(['n0', 'n1']);
      }
      // sessions n2 mastered are served by n0 and n1: written through n1, read through n0
      const key = farm.keyMasteredBy('n1', 'n1', 'asym');
      expect(await settle(n1.node.execute(set(key, 'written across the cut')))).toMatchObject({ status: Status.Stored });
      expect(valueOf(await settle(n0.node.execute(get(key))))).toBe('written across the cut');
      // n2's users are served still: through n1 for the sessions of n0, which n2 cannot reach
      const farKey = farm.keyMasteredBy('n1', 'n0', 'relay');
      expect(await settle(n2.node.execute(set(farKey, 'through n1')))).toMatchObject({ status: Status.Stored });
      expect(n0.store.peek(farKey, Date.now())?.value.toString()).toBe('through n1');
      expect([n2.router.counters.sentThroughRelay, n1.router.counters.relayed]).toEqual([1, 1]);
      // n2, left out, serves nothing itself
      const refused = await settle(n2.router.executeHere(set('memc.sess.key.anything', 'x')));
      expect(refused).toEqual({ kind: 'serverError', message: 'temporary failure: not serving sessions: this node is cut off from the members that reach each other' });

      cutBetween(farm, null);
      await vi.advanceTimersByTimeAsync(3 * FAILURE_TIMEOUT);
      for (const n of [n0, n1, n2]) expect(n.node.servingIds(), `${n.id} serves after the heal`).toEqual(['n0', 'n1', 'n2']);
      expect(n2.node.ready).toBe(true);
      expect(n2.caughtUp).toContain('back with a majority');
      expect(valueOf(await settle(n2.node.execute(get(key))))).toBe('written across the cut');
    });

    it('a node cut off from the others stops (no majority); they take its sessions over; back, it serves their writes, not its old copies', async () => {
      const { farm, n0, n1, n2 } = await threeNodes();
      const key = farm.keyMasteredBy('n1', 'n0', 'iso');
      expect(await settle(n1.node.execute(set(key, 'before')))).toMatchObject({ status: Status.Stored });
      const gone = 'memc.sess.key.iso-deleted';
      await settle(n1.node.execute(set(gone, 'logged in')));

      cutBetween(farm, (a, b) => a === 'n0' || b === 'n0');
      await vi.advanceTimersByTimeAsync(3 * FAILURE_TIMEOUT);
      expect(n0.quorum.ok).toBe(false);
      expect(n0.node.ready).toBe(false);
      expect(n0.node.notReadyBecause()).toBe('this node is cut off from the members that reach each other');
      expect(await settle(n0.node.execute(get(key)))).toMatchObject({ kind: 'serverError' });
      for (const n of [n1, n2]) expect([n.quorum.ok, n.node.servingIds()], n.id).toEqual([true, ['n1', 'n2']]);
      // the majority writes the session n0 mastered, and logs a user out
      expect(await settle(n1.node.execute(set(key, 'after')))).toMatchObject({ status: Status.Stored });
      expect(await settle(n2.node.execute({ kind: 'delete', key: gone, cas: 0 }))).toMatchObject({ status: Status.Deleted });

      cutBetween(farm, null);
      await vi.advanceTimersByTimeAsync(3 * FAILURE_TIMEOUT);
      expect(n0.node.ready).toBe(true);
      expect(n0.caughtUp).toContain('back with a majority');
      for (const via of [n0, n1, n2]) {
        expect(valueOf(await settle(via.node.execute(get(key)))), `${key} via ${via.id}`).toBe('after');
        expect(valueOf(await settle(via.node.execute(get(gone)))), `${gone} via ${via.id}`).toBeNull();
      }
    });
  });
});
