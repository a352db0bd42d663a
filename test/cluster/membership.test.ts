import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { connectedSet } from '../../src/cluster/membership/connectivity.js';
import { Membership, type MembershipOptions } from '../../src/cluster/membership/membership.js';
import { MemoryHub, type MemoryTransport } from '../../src/cluster/membership/memory-transport.js';
import { MemberState, type MemberInfo, type MembershipMessage, type MembershipTransport } from '../../src/cluster/types.js';
import { fakeClock } from '../support/fake-clock.js';

// Membership over the in-memory hub, on vitest's fake timers: every scenario runs in virtual time,
// deterministically, in a few milliseconds. Defaults as in the daemon: heartbeat 200 ms, suspect
// after 500 ms of silence, dead after 1000 ms.

const HEARTBEAT = 200;
const SUSPECT_AFTER = 500;
const TIMEOUT = 1000;

const address = (id: string): string => `${id}.test:7000`;

interface LogLine { level: number; msg: string; node?: string; peer?: string; [field: string]: unknown }
interface Seen { on: string; event: string; peer: string; state: MemberState; incarnation: number; previousState?: MemberState }

class Cluster {
  readonly hub = new MemoryHub(fakeClock);
  readonly nodes = new Map<string, Membership>();
  readonly logs: LogLine[] = [];
  readonly events: Seen[] = [];
  readonly log = pino({ level: 'debug' }, { write: (line: string) => { this.logs.push(JSON.parse(line) as LogLine); } });

  start(id: string, options: { seeds?: string[]; incarnation?: number } & Partial<MembershipOptions> = {}): Membership {
    const { seeds = [], incarnation = 1, ...rest } = options;
    const transport = this.hub.connect(id, address(id));
    const node = new Membership({
      self: { id, peerAddress: address(id), incarnation }, seeds, transport, clock: transport.clock, log: this.log, ...rest,
    });
    const record = (event: string) => (member: MemberInfo, previous?: MemberInfo) => {
      this.events.push({ on: id, event, peer: member.id, state: member.state, incarnation: member.incarnation, ...(previous ? { previousState: previous.state } : {}) });
    };
    for (const event of ['join', 'update', 'dead', 'leave'] as const) node.on(event, record(event));
    node.start();
    this.nodes.set(id, node);
    return node;
  }

  /** Starts `ids`, the first with no seed and the others through the first. */
  startAll(ids: string[]): void {
    ids.forEach((id, index) => this.start(id, { seeds: index === 0 ? [] : [address(ids[0]!)] }));
  }

  node(id: string): Membership {
    const node = this.nodes.get(id);
    if (node === undefined) throw new Error(`no node ${id}`);
    return node;
  }

  kill(id: string): void {
    this.hub.kill(id);
    this.nodes.delete(id);
  }

  advance(ms: number): void {
    vi.advanceTimersByTime(ms);
  }

  /** Advances in 10 ms steps until `done()`; returns how long that took, failing past `limitMs`. */
  advanceUntil(done: () => boolean, limitMs: number): number {
    let elapsed = 0;
    while (!done()) {
      if (elapsed >= limitMs) throw new Error(`condition not reached within ${limitMs} ms`);
      this.advance(10);
      elapsed += 10;
    }
    return elapsed;
  }

  /** What `on` knows: id -> "state@incarnation". */
  view(on: string): Record<string, string> {
    return Object.fromEntries(this.node(on).members().map((m) => [m.id, `${m.state}@${m.incarnation}`]));
  }

  stateOf(on: string, peer: string): MemberState | undefined {
    return this.node(on).member(peer)?.state;
  }

  converged(ids: string[] = [...this.nodes.keys()]): boolean {
    const first = JSON.stringify(this.view(ids[0]!));
    return ids.every((id) => JSON.stringify(this.view(id)) === first);
  }

  allAlive(ids: string[] = [...this.nodes.keys()]): boolean {
    return ids.every((on) => this.node(on).members().length === ids.length
      && this.node(on).members().every((m) => m.state === MemberState.Alive));
  }

  eventsAbout(peer: string): Seen[] {
    return this.events.filter((e) => e.peer === peer);
  }
}

/** A hand-driven endpoint on the hub, to feed a node exactly the news a test needs. */
function rogue(cluster: Cluster, id = 'rogue'): { transport: MemoryTransport; gossip: (to: string, members: MemberInfo[]) => void } {
  const transport = cluster.hub.connect(id, address(id));
  const me: MemberInfo = { id, peerAddress: address(id), state: MemberState.Alive, incarnation: 1 };
  return {
    transport,
    gossip: (to, members) => transport.send(to, address(to), { kind: 'heartbeat', member: me, members }),
  };
}

const info = (id: string, state: MemberState, incarnation: number): MemberInfo => ({ id, peerAddress: address(id), state, incarnation });

let cluster: Cluster;
beforeEach(() => {
  vi.useFakeTimers();
  cluster = new Cluster();
});
afterEach(() => {
  for (const node of cluster.nodes.values()) node.stop();
  vi.useRealTimers();
});

describe('joining', () => {
  it('three nodes converge from one seed', () => {
    cluster.startAll(['a', 'b', 'c']);
    cluster.advance(2 * HEARTBEAT);
    expect(cluster.converged()).toBe(true);
    expect(cluster.view('a')).toEqual({ a: 'alive@1', b: 'alive@1', c: 'alive@1' });
    // b and c never named each other: they met through a's member list.
    for (const id of ['a', 'b', 'c']) {
      expect(cluster.events.filter((e) => e.on === id && e.event === 'join').map((e) => e.peer).sort())
        .toEqual(['a', 'b', 'c'].filter((p) => p !== id));
      expect(cluster.node(id).joined).toBe(true);
    }
  });

  it('joins through any seed that answers, skipping dead seeds and its own address', () => {
    cluster.startAll(['a', 'b', 'c']);
    cluster.advance(HEARTBEAT);
    const d = cluster.start('d', { seeds: ['nowhere.test:7000', address('d'), address('c')] });
    cluster.advance(2 * HEARTBEAT);
    expect(d.joined).toBe(true);
    expect(cluster.converged()).toBe(true);
    expect(Object.keys(cluster.view('a'))).toEqual(['a', 'b', 'c', 'd']);
    expect(cluster.allAlive()).toBe(true);
    expect(cluster.hub.counters.undeliverable).toBeGreaterThan(0); // the join to nowhere
  });

  it('retries the join with backoff until a seed answers, at debug, with a warning after several failures', () => {
    const b = cluster.start('b', { seeds: [address('a')] });
    // Attempts at 0, 200, 600, 1400, 3000, 6200 (delays 200, 400, 800, 1600, 3200, then 5000 capped).
    const sentAt = (ms: number): number => { cluster.advance(ms); return b.stats.joinsSent; };
    expect(b.stats.joinsSent).toBe(1);
    expect([sentAt(199), sentAt(1), sentAt(400), sentAt(800), sentAt(1600), sentAt(3199), sentAt(1)]).toEqual([1, 2, 3, 4, 5, 5, 6]);
    const bLogs = cluster.logs.filter((l) => l.node === 'b');
    expect(bLogs.filter((l) => l.msg.startsWith('no seed answered') && l.level === 20)).toHaveLength(5);
    expect(bLogs.filter((l) => l.level === 40 && l.msg.startsWith('still not joined'))).toHaveLength(1);
    expect(b.joined).toBe(false);

    cluster.start('a');
    cluster.advance(5000 + HEARTBEAT); // the next attempt, capped at 5 s
    expect(b.joined).toBe(true);
    expect(cluster.converged()).toBe(true);
    expect(cluster.allAlive()).toBe(true);
    const joinsSent = b.stats.joinsSent;
    cluster.advance(20_000);
    expect(b.stats.joinsSent).toBe(joinsSent); // no more joins once someone lists b
  });

  it('five nodes converge through a chain of seeds', () => {
    const ids = ['n1', 'n2', 'n3', 'n4', 'n5'];
    ids.forEach((id, i) => cluster.start(id, { seeds: i === 0 ? [] : [address(ids[i - 1]!)] }));
    const took = cluster.advanceUntil(() => cluster.converged() && cluster.allAlive(), 2000);
    expect(took).toBeLessThanOrEqual(3 * HEARTBEAT);
    expect(cluster.node('n1').liveMembers().map((m) => m.id)).toEqual(ids);
    cluster.advance(5000);
    expect(cluster.events.filter((e) => e.event !== 'join')).toEqual([]); // and it stays quiet
  });
});

describe('failure detection', () => {
  it('a killed node goes suspect, then dead, on every other node within the failure timeout', () => {
    cluster.startAll(['a', 'b', 'c']);
    cluster.advance(3 * HEARTBEAT);
    cluster.kill('c');
    // c's last heartbeat left at most one period before the kill.
    cluster.advance(SUSPECT_AFTER - HEARTBEAT - 10);
    expect([cluster.stateOf('a', 'c'), cluster.stateOf('b', 'c')]).toEqual(['alive', 'alive']);
    cluster.advance(HEARTBEAT + 10 + HEARTBEAT);
    expect([cluster.stateOf('a', 'c'), cluster.stateOf('b', 'c')]).toEqual(['suspect', 'suspect']);
    expect(cluster.node('a').liveMembers().map((m) => m.id)).toEqual(['a', 'b', 'c']); // a suspect still owns
    cluster.advance(TIMEOUT - SUSPECT_AFTER);
    expect([cluster.stateOf('a', 'c'), cluster.stateOf('b', 'c')]).toEqual(['dead', 'dead']);
    expect(cluster.node('a').liveMembers().map((m) => m.id)).toEqual(['a', 'b']);

    for (const on of ['a', 'b']) {
      expect(cluster.eventsAbout('c').filter((e) => e.on === on && e.event !== 'join').map((e) => `${e.event}:${e.state}`))
        .toEqual(['update:suspect', 'dead:dead']);
      expect(cluster.node(on).stats.suspicions).toBe(1);
      expect(cluster.node(on).stats.deaths).toBe(1);
      expect(cluster.logs.some((l) => l.node === on && l.peer === 'c' && l.level === 40 && l.msg === 'member declared dead')).toBe(true);
      expect(cluster.logs.some((l) => l.node === on && l.peer === 'c' && l.msg === 'member suspected')).toBe(true);
    }
    expect(cluster.converged()).toBe(true);
  });

  it('a death is seen right after the failure timeout, not up to a heartbeat period later', () => {
    // c runs its rounds 100 ms out of step with a and b, so a heartbeat from c lands halfway
    // between two of a's heartbeat rounds; a looks for silent members more often than that.
    cluster.start('a');
    cluster.start('b', { seeds: [address('a')] });
    cluster.advance(100);
    cluster.start('c', { seeds: [address('a')] });
    cluster.advance(3 * HEARTBEAT); // t = 700 ms: c has just sent a heartbeat round
    expect(cluster.allAlive()).toBe(true);
    cluster.advance(1);
    cluster.kill('c');
    const seenDeadAfter = cluster.advanceUntil(() => cluster.stateOf('a', 'c') === MemberState.Dead, 2 * TIMEOUT);
    // checked every 50 ms: dead within 1000-1050 ms of c's last word (a check per heartbeat
    // period, 200 ms, saw it only 1100 ms after)
    expect(seenDeadAfter).toBeGreaterThanOrEqual(TIMEOUT - 10);
    expect(seenDeadAfter).toBeLessThanOrEqual(TIMEOUT + 50);
  });

  it('a cut-off node that comes back refutes the suspicion with a higher incarnation', () => {
    cluster.startAll(['a', 'b', 'c']);
    cluster.advance(3 * HEARTBEAT);
    cluster.hub.isolate('c'); // its messages are dropped both ways
    cluster.advanceUntil(() => cluster.stateOf('a', 'c') === 'suspect' && cluster.stateOf('b', 'c') === 'suspect', TIMEOUT);
    cluster.hub.restore('c');
    cluster.advanceUntil(() => cluster.converged() && cluster.allAlive(), 2 * HEARTBEAT);
    expect(cluster.node('c').self.incarnation).toBeGreaterThan(1);
    expect(cluster.node('a').member('c')!.incarnation).toBe(cluster.node('c').self.incarnation);
    expect(cluster.node('c').stats.refutations).toBeGreaterThanOrEqual(1);
    expect(cluster.events.filter((e) => e.event === 'dead')).toEqual([]);
    expect(cluster.logs.some((l) => l.node === 'c' && l.msg === 'refuting: raised own incarnation')).toBe(true);
  });

  it('a stopped process (SIGSTOP) resumed after the timeout blames itself, not its peers, and rejoins', () => {
    cluster.startAll(['a', 'b', 'c']);
    cluster.advance(3 * HEARTBEAT);
    cluster.hub.pause('c');
    cluster.advance(3 * TIMEOUT);
    expect([cluster.stateOf('a', 'c'), cluster.stateOf('b', 'c')]).toEqual(['dead', 'dead']);
    cluster.hub.resume('c');
    cluster.advanceUntil(() => cluster.converged() && cluster.allAlive(), 3 * HEARTBEAT);
    const c = cluster.node('c');
    expect(c.stats.stalls).toBe(1);
    expect(cluster.events.filter((e) => e.on === 'c' && e.event !== 'join')).toEqual([]); // c never judged a or b
    expect(cluster.events.filter((e) => e.peer === 'c' && e.event === 'join' && e.on !== 'c')).toHaveLength(4); // first join, then back
    expect(c.self.incarnation).toBeGreaterThan(1);
  });

  it('a partition heals: both sides meet again, refute their death verdicts and converge', () => {
    const ids = ['n1', 'n2', 'n3', 'n4', 'n5'];
    cluster.startAll(ids);
    cluster.advance(3 * HEARTBEAT);
    cluster.hub.partition(['n1', 'n2'], ['n3', 'n4', 'n5']);
    cluster.advance(3 * TIMEOUT);
    expect(cluster.node('n1').liveMembers().map((m) => m.id)).toEqual(['n1', 'n2']);
    expect(cluster.node('n4').liveMembers().map((m) => m.id)).toEqual(['n3', 'n4', 'n5']);
    const deathsBefore = cluster.events.filter((e) => e.event === 'dead').length;
    expect(deathsBefore).toBe(2 * 3 + 3 * 2);

    cluster.hub.heal();
    cluster.advanceUntil(() => cluster.converged() && cluster.allAlive(), 3 * TIMEOUT);
    // The other side's verdicts arrive as gossip, which only suspects (memberlist mergeState):
    // healing kills nobody.
    expect(cluster.events.filter((e) => e.event === 'dead')).toHaveLength(deathsBefore);
    const settled = cluster.events.length;
    const views = cluster.view('n1');
    cluster.advance(10 * TIMEOUT);
    expect(cluster.events.length).toBe(settled);
    expect(cluster.view('n1')).toEqual(views);
  });

  it('a one-way cut makes the member flap between suspect and alive, but never dead: it keeps its sessions', () => {
    // a no longer hears c, but c hears a, and b hears both. a suspects c; c learns it through a's
    // heartbeats and refutes; a hears the refutation through b, and suspects again after another
    // silence. SWIM's indirect probes (ping-req) would keep a from suspecting c at all; until then,
    // what matters to placement holds: c stays live on every node, and nobody declares it dead.
    cluster.startAll(['a', 'b', 'c']);
    cluster.advance(3 * HEARTBEAT);
    cluster.hub.dropIf((from, to) => from === 'c' && to === 'a');
    for (let t = 0; t < 5 * TIMEOUT; t += 10) {
      cluster.advance(10);
      for (const on of ['a', 'b', 'c']) expect(cluster.node(on).liveMembers().map((m) => m.id)).toEqual(['a', 'b', 'c']);
    }
    expect(cluster.events.filter((e) => e.event === 'dead')).toEqual([]);
    expect(cluster.node('c').stats.refutations).toBeGreaterThan(1);
  });
});

describe('incarnations', () => {
  it('stale news (a lower incarnation, or a weaker state at the same one) never wins', () => {
    for (const id of ['a', 'b', 'c']) cluster.start(id, { incarnation: 5, seeds: id === 'a' ? [] : [address('a')] });
    cluster.advance(3 * HEARTBEAT);
    cluster.kill('c');
    cluster.advance(TIMEOUT + 2 * HEARTBEAT);
    expect(cluster.view('a')).toEqual({ a: 'alive@5', b: 'alive@5', c: 'dead@5' });
    const before = cluster.events.length;
    const { gossip } = rogue(cluster);
    gossip('a', [
      info('a', MemberState.Dead, 4), info('b', MemberState.Left, 4), info('b', MemberState.Dead, 3),
      info('b', MemberState.Suspect, 4), info('c', MemberState.Alive, 5), info('c', MemberState.Alive, 4),
    ]);
    cluster.advance(HEARTBEAT);
    expect(cluster.view('a')).toMatchObject({ a: 'alive@5', b: 'alive@5', c: 'dead@5' });
    expect(cluster.node('a').stats.refutations).toBe(0); // news about a below its incarnation is not worth refuting
    expect(cluster.node('a').stats.staleIgnored).toBeGreaterThanOrEqual(4);
    expect(cluster.events.slice(before).filter((e) => e.peer !== 'rogue')).toEqual([]);
  });

  it("a restarted node's old messages, delivered late, do not override its new life", () => {
    cluster.startAll(['a', 'b', 'c']);
    cluster.advance(3 * HEARTBEAT);
    cluster.hub.setDelay((from) => (from === 'c' ? 3000 : 0)); // c's old life is still on the wire
    cluster.advance(2 * HEARTBEAT);
    cluster.kill('c');
    cluster.hub.setDelay(0);
    cluster.start('c', { incarnation: 9, seeds: [address('a')] });
    cluster.advance(2 * HEARTBEAT);
    expect(cluster.view('a').c).toBe('alive@9');
    cluster.advance(4000); // the old heartbeats (c alive@1) land now
    expect(cluster.view('a').c).toBe('alive@9');
    expect(cluster.view('b').c).toBe('alive@9');
    expect(cluster.converged()).toBe(true);
  });

  it('a restarted node (higher incarnation) is alive again after being declared dead', () => {
    cluster.startAll(['a', 'b', 'c']);
    cluster.advance(3 * HEARTBEAT);
    cluster.kill('c');
    cluster.advance(TIMEOUT + 2 * HEARTBEAT);
    expect([cluster.stateOf('a', 'c'), cluster.stateOf('b', 'c')]).toEqual(['dead', 'dead']);
    cluster.start('c', { incarnation: 2, seeds: [address('b')] });
    cluster.advanceUntil(() => cluster.converged() && cluster.allAlive(), 2 * HEARTBEAT);
    expect(cluster.view('a').c).toBe('alive@2');
    for (const on of ['a', 'b']) {
      expect(cluster.eventsAbout('c').filter((e) => e.on === on).map((e) => `${e.event}:${e.state}@${e.incarnation}`))
        .toEqual(['join:alive@1', 'update:suspect@1', 'dead:dead@1', 'join:alive@2']);
    }
  });

  it('a node restarted before it was declared dead is an update with a higher incarnation', () => {
    cluster.startAll(['a', 'b', 'c']);
    cluster.advance(3 * HEARTBEAT);
    cluster.kill('c');
    cluster.start('c', { incarnation: 2, seeds: [address('a')] });
    cluster.advance(3 * HEARTBEAT);
    expect(cluster.converged() && cluster.allAlive()).toBe(true);
    expect(cluster.eventsAbout('c').filter((e) => e.on === 'a').map((e) => `${e.event}:${e.state}@${e.incarnation}`))
      .toEqual(['join:alive@1', 'update:alive@2']);
  });

  it('a node restarted with a lower incarnation than its previous life refutes past it', () => {
    cluster.start('a');
    cluster.start('c', { incarnation: 7, seeds: [address('a')] });
    cluster.advance(3 * HEARTBEAT);
    cluster.kill('c');
    cluster.advance(TIMEOUT + 2 * HEARTBEAT);
    const c = cluster.start('c', { incarnation: 3, seeds: [address('a')] }); // e.g. the clock stepped back
    cluster.advanceUntil(() => cluster.converged() && cluster.allAlive(), 2 * HEARTBEAT);
    expect(c.self.incarnation).toBe(8);
    expect(c.stats.refutations).toBe(1);
  });

  it('a node refutes news that it left or is dead at its own incarnation', () => {
    cluster.startAll(['a', 'b']);
    cluster.advance(3 * HEARTBEAT);
    const { gossip } = rogue(cluster);
    gossip('a', [info('a', MemberState.Left, 1)]);
    cluster.advance(1);
    expect(cluster.node('a').self).toMatchObject({ state: 'alive', incarnation: 2 });
    cluster.advance(HEARTBEAT);
    expect(cluster.view('b').a).toBe('alive@2');
  });
});

describe('leaving', () => {
  it('leave is seen by all, as left rather than dead, and stops heartbeats', () => {
    cluster.startAll(['a', 'b', 'c']);
    cluster.advance(3 * HEARTBEAT);
    const c = cluster.node('c');
    c.leave();
    const sent = c.stats.heartbeatsSent;
    cluster.advance(1);
    expect([cluster.stateOf('a', 'c'), cluster.stateOf('b', 'c')]).toEqual(['left', 'left']);
    expect(c.self.state).toBe('left');
    expect(c.liveMembers().map((m) => m.id)).toEqual(['a', 'b']);
    cluster.advance(5 * TIMEOUT);
    expect(c.stats.heartbeatsSent).toBe(sent);
    expect([cluster.stateOf('a', 'c'), cluster.stateOf('b', 'c')]).toEqual(['left', 'left']);
    expect(cluster.eventsAbout('c').filter((e) => e.event !== 'join').map((e) => `${e.on}:${e.event}`).sort()).toEqual(['a:leave', 'b:leave']);
    expect(cluster.node('a').liveMembers().map((m) => m.id)).toEqual(['a', 'b']);
  });

  it('a member that missed the leave message learns it through gossip', () => {
    cluster.startAll(['a', 'b', 'c']);
    cluster.advance(3 * HEARTBEAT);
    cluster.hub.dropIf((from, to, m) => from === 'c' && to === 'a' && m.kind === 'leave');
    cluster.node('c').leave();
    cluster.advance(HEARTBEAT + 1);
    expect(cluster.stateOf('a', 'c')).toBe('left');
    expect(cluster.eventsAbout('c').filter((e) => e.on === 'a').map((e) => e.event)).toEqual(['join', 'leave']);
  });

  it('the replacement a leaving node names reaches every member, directly and through gossip', () => {
    cluster.startAll(['a', 'b', 'c']);
    cluster.advance(3 * HEARTBEAT);
    cluster.hub.dropIf((from, to, m) => from === 'c' && to === 'a' && m.kind === 'leave');
    cluster.node('c').leave('b');
    cluster.advance(HEARTBEAT + 1);
    for (const on of ['a', 'b']) expect(cluster.node(on).member('c')).toMatchObject({ state: 'left', replacement: 'b' });
  });

  it('a replacement is dropped from members that are not left, and a malformed one rejects the entry', () => {
    cluster.startAll(['a']);
    const { gossip } = rogue(cluster);
    gossip('a', [{ ...info('x', MemberState.Alive, 1), replacement: 'a' }, { ...info('y', MemberState.Left, 1), replacement: 'bad id!' }]);
    cluster.advance(10);
    expect(cluster.node('a').member('x')).toEqual(info('x', MemberState.Alive, 1));
    expect(cluster.node('a').member('y')).toBeUndefined();
  });

  it('a node that left answers a member still heartbeating it with its leave', () => {
    cluster.startAll(['a', 'c']);
    cluster.advance(3 * HEARTBEAT);
    cluster.hub.dropIf((from, _to, m) => from === 'c' && m.kind === 'leave');
    cluster.node('c').leave();
    cluster.advance(1);
    expect(cluster.stateOf('a', 'c')).toBe('alive');
    cluster.hub.dropIf(null);
    cluster.advance(HEARTBEAT + 2); // a's next heartbeat, and c's answer (each hop takes 1 ms, as in Node)
    expect(cluster.stateOf('a', 'c')).toBe('left');
  });
});

describe('forgetting', () => {
  it('a member that left is forgotten reapAfterMs later, with its replacement, and listeners are told', () => {
    for (const id of ['a', 'b', 'c']) cluster.start(id, { reapAfterMs: 10_000, seeds: id === 'a' ? [] : [address('a')] });
    cluster.advance(3 * HEARTBEAT);
    const forgotten: MemberInfo[] = [];
    cluster.node('a').on('forget', (member) => forgotten.push(member));
    cluster.node('c').leave('b');
    cluster.kill('c');
    cluster.advance(1);
    expect(cluster.node('a').member('c')).toMatchObject({ state: 'left', replacement: 'b' });
    cluster.advance(10_000 + 2 * HEARTBEAT);
    expect(cluster.node('a').member('c')).toBeUndefined();
    expect(forgotten).toEqual([{ id: 'c', peerAddress: address('c'), state: MemberState.Left, incarnation: 1, replacement: 'b' }]);
  });
});

describe('robustness', () => {
  it('forgets dead members after reapAfterMs, and stale news does not bring them back', () => {
    for (const id of ['a', 'b', 'c']) cluster.start(id, { reapAfterMs: 10_000, seeds: id === 'a' ? [] : [address('a')] });
    cluster.advance(3 * HEARTBEAT);
    cluster.kill('c');
    cluster.advance(TIMEOUT + 2 * HEARTBEAT);
    expect(cluster.stateOf('a', 'c')).toBe('dead');
    cluster.advance(10_000);
    expect(cluster.view('a')).toEqual({ a: 'alive@1', b: 'alive@1' });
    rogue(cluster).gossip('a', [info('c', MemberState.Alive, 1)]);
    cluster.advance(1);
    expect(cluster.stateOf('a', 'c')).toBeUndefined();
    cluster.start('c', { incarnation: 2, seeds: [address('a')] });
    cluster.advance(2 * HEARTBEAT);
    expect(cluster.view('b').c).toBe('alive@2');
  });

  it('a transport that throws and a listener that throws are logged and counted, never thrown', () => {
    const throwing: MembershipTransport = { self: 'x', send: () => { throw new Error('boom'); }, onMessage: () => {} };
    const x = new Membership({
      self: { id: 'x', peerAddress: address('x'), incarnation: 1 }, seeds: [address('a')], transport: throwing, log: cluster.log,
    });
    x.start();
    expect(() => cluster.advance(2000)).not.toThrow();
    expect(x.stats.sendErrors).toBeGreaterThan(0);
    expect(cluster.logs.some((l) => l.node === 'x' && l.level === 50)).toBe(true);
    x.stop();

    const a = cluster.start('a');
    a.on('join', () => { throw new Error('listener bug'); });
    cluster.start('b', { seeds: [address('a')] });
    expect(() => cluster.advance(3 * HEARTBEAT)).not.toThrow();
    expect(a.stats.listenerErrors).toBe(1);
    expect(cluster.converged() && cluster.allAlive()).toBe(true);
  });

  it('malformed messages and list entries are dropped and counted; good entries still count', () => {
    cluster.startAll(['a']);
    const { transport, gossip } = rogue(cluster);
    transport.send('a', address('a'), { kind: 'nonsense' } as unknown as MembershipMessage);
    transport.send('a', address('a'), { kind: 'join', member: info('someone-else', MemberState.Alive, 1) });
    gossip('a', [{ id: 'bad id!', peerAddress: 'x', state: MemberState.Alive, incarnation: 1 }, info('d', MemberState.Alive, 1),
      { ...info('e', MemberState.Alive, 1), incarnation: -1 }]);
    cluster.advance(1);
    const a = cluster.node('a');
    expect(a.stats.malformed).toBe(4);
    expect(Object.keys(cluster.view('a'))).toEqual(['a', 'd', 'rogue']);
  });

  it('members() is a sorted snapshot', () => {
    cluster.startAll(['m', 'b', 'z', 'a']);
    cluster.advance(2 * HEARTBEAT);
    const node = cluster.node('z');
    const members = node.members();
    expect(members.map((m) => m.id)).toEqual(['a', 'b', 'm', 'z']);
    members[0]!.state = MemberState.Dead;
    expect(node.member('a')!.state).toBe('alive');
  });

  it('heartbeats carry each node\'s load; a peer keeps the last one it heard directly, ignoring bad values', () => {
    let itemsOnB = 5;
    cluster.start('a');
    cluster.start('b', { seeds: [address('a')], load: () => itemsOnB });
    cluster.advance(2 * HEARTBEAT);
    expect(cluster.node('a').loadOf('b')).toBe(5);
    expect(cluster.node('b').loadOf('a')).toBeUndefined(); // a reports none
    itemsOnB = 42;
    cluster.advance(2 * HEARTBEAT);
    expect(cluster.node('a').loadOf('b')).toBe(42);
    const { transport } = rogue(cluster);
    for (const load of [-1, 1.5, 'many', Number.MAX_VALUE]) {
      transport.send('a', address('a'), { kind: 'heartbeat', member: { id: 'rogue', peerAddress: address('rogue'), state: MemberState.Alive, incarnation: 1 }, members: [], load } as unknown as MembershipMessage);
    }
    cluster.advance(10);
    expect(cluster.node('a').loadOf('rogue')).toBeUndefined();
  });

  it('rejects timings that would suspect every member between two heartbeats', () => {
    const transport = cluster.hub.connect('q', address('q'));
    const base = { self: { id: 'q', peerAddress: address('q'), incarnation: 1 }, seeds: [], transport, log: cluster.log };
    expect(() => new Membership({ ...base, heartbeatMs: 600, failureTimeoutMs: 1000 })).toThrow(RangeError);
    expect(() => new Membership({ ...base, suspectAfterMs: 1000 })).toThrow(RangeError);
    expect(() => new Membership({ ...base, self: { ...base.self, id: 'no spaces' } })).toThrow(RangeError);
    expect(() => new Membership({ ...base, self: { ...base.self, incarnation: 1.5 } })).toThrow(RangeError);
  });
});

describe('clocks', () => {
  it('heartbeats carry their send time: each node measures the others\' clocks, and warns of one far off', () => {
    const hourAhead = () => Date.now() + 3_600_000;
    cluster.start('a');
    cluster.start('b', { seeds: [address('a')], wallClock: hourAhead });
    cluster.start('c', { seeds: [address('a')], wallClock: () => Date.now() - 40 });
    cluster.advanceUntil(() => cluster.allAlive(), 2000);
    cluster.advance(3 * HEARTBEAT);
    const a = cluster.node('a');
    // each estimate is the true offset less the time a heartbeat took (a timer tick on the hub)
    const near = (value: number | undefined, offset: number) => value !== undefined && value <= offset && value >= offset - 5;
    expect(near(a.clocks.offsetOf('b'), 3_600_000), String(a.clocks.offsetOf('b'))).toBe(true);
    expect(near(a.clocks.offsetOf('c'), -40), String(a.clocks.offsetOf('c'))).toBe(true);
    expect(near(cluster.node('b').clocks.offsetOf('a'), -3_600_000), String(cluster.node('b').clocks.offsetOf('a'))).toBe(true);
    const warnings = cluster.logs.filter((line) => line.node === 'a' && /clock of/.test(line.msg));
    expect(warnings.map((line) => line.peer)).toEqual(['b']);
    expect(warnings[0]!.msg).toContain('ahead of');
  });
});

describe('reachability reports', () => {
  it('a member whose heartbeats carry no reports (an older version) is taken to hear those that hear it, and serves; once silent it goes', () => {
    cluster.startAll(['a', 'b']);
    cluster.advance(HEARTBEAT * 3);
    const old = rogue(cluster, 'old');
    const beat = () => { for (const to of ['a', 'b']) old.gossip(to, cluster.node(to).members()); };
    const timer = setInterval(beat, HEARTBEAT);
    beat();
    cluster.advance(HEARTBEAT * 5);
    for (const on of ['a', 'b']) {
      const reach = cluster.node(on).reachability();
      expect([...(reach.get('old') ?? [])].sort()).toEqual(['a', 'b']);
      expect([...connectedSet(['a', 'b', 'old'], reach)].sort()).toEqual(['a', 'b', 'old']);
    }
    expect(cluster.logs.filter((line) => line.node === 'a' && /no reachability reports/.test(line.msg))).toHaveLength(1);

    clearInterval(timer);
    cluster.advance(TIMEOUT + HEARTBEAT * 2);
    for (const on of ['a', 'b']) {
      const reach = cluster.node(on).reachability();
      expect([...(reach.get('old') ?? [])]).toEqual([]);
      expect([...connectedSet(['a', 'b', 'old'], reach)].sort()).toEqual(['a', 'b']);
    }
  });

  it('a member that just joined and has not reported yet hears nobody until its first report arrives', () => {
    cluster.startAll(['a', 'b']);
    cluster.advance(HEARTBEAT * 3);
    expect([...(cluster.node('a').reachability().get('b') ?? [])]).toEqual(['a']);
    expect(cluster.node('a').reachability().has('c')).toBe(false);
    cluster.start('c', { seeds: [address('a')] });
    cluster.advance(1); // the join is delivered: a knows c, but c has sent no heartbeat, so no report
    expect(cluster.node('a').member('c')?.state).toBe(MemberState.Alive);
    expect(cluster.node('a').reachability().get('c')).toBeUndefined();
    expect([...connectedSet(['a', 'b', 'c'], cluster.node('a').reachability())].sort()).toEqual(['a', 'b']);
    cluster.advance(HEARTBEAT * 6);
    expect([...(cluster.node('a').reachability().get('c') ?? [])].sort()).toEqual(['a', 'b']);
    expect([...connectedSet(['a', 'b', 'c'], cluster.node('a').reachability())].sort()).toEqual(['a', 'b', 'c']);
  });
});

describe('who serves while a cluster forms', () => {
  it('three nodes started together: once a node counts itself among the serving members, it never drops out while all are up', () => {
    // b and c know only a; each learns the third through a's list before it has heard it directly
    for (const seeds of [['a', 'b', 'c'], ['c', 'b', 'a']]) {
      cluster = new Cluster();
      cluster.startAll(seeds);
      const servedOnce = new Set<string>();
      const drops: string[] = [];
      for (let ms = 0; ms < 3000; ms += 10) {
        cluster.advance(10);
        for (const id of seeds) {
          const node = cluster.node(id);
          const serving = connectedSet(node.members().filter((m) => m.state !== MemberState.Left).map((m) => m.id), node.reachability());
          if (serving.has(id)) servedOnce.add(id);
          else if (servedOnce.has(id)) drops.push(`${id} at ${ms} ms: serving ${[...serving].sort().join(',')}`);
        }
      }
      expect(drops).toEqual([]);
      expect([...servedOnce].sort()).toEqual(['a', 'b', 'c']);
    }
  });
});
