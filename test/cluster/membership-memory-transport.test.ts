import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { MemoryHub, type MemoryTransport } from '../../src/cluster/membership/memory-transport.js';
import { MemberState, UNKNOWN_NODE_ID, type MembershipMessage, type NodeId } from '../../src/cluster/types.js';
import { fakeClock } from '../support/fake-clock.js';

// The in-memory network the membership tests run on: it must route like the TCP transport
// (by address, checking the id), and break the network exactly as asked.

const join = (id: string): MembershipMessage => ({ kind: 'join', member: { id, peerAddress: `${id}:1`, state: MemberState.Alive, incarnation: 1 } });

let hub: MemoryHub;
let inbox: Array<[to: string, from: NodeId, message: MembershipMessage]>;
const node = (id: string): MemoryTransport => {
  const transport = hub.connect(id, `${id}:1`);
  transport.onMessage((from, message) => inbox.push([id, from, message]));
  return transport;
};

beforeEach(() => {
  vi.useFakeTimers();
  hub = new MemoryHub(fakeClock);
  inbox = [];
});
afterEach(() => vi.useRealTimers());

describe('MemoryHub', () => {
  it('delivers asynchronously, a copy, to the node at the address; a seed send need not name it', () => {
    const a = node('a');
    node('b');
    const message = join('a');
    a.send('b', 'b:1', message);
    a.send(UNKNOWN_NODE_ID, 'b:1', message);
    expect(inbox).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(inbox.map(([to, from]) => `${from}->${to}`)).toEqual(['a->b', 'a->b']);
    expect(inbox[0]![2]).toEqual(message);
    expect(inbox[0]![2]).not.toBe(message);
    expect(hub.counters).toMatchObject({ sent: 2, delivered: 2 });
  });

  it('drops what has nobody at the address, or another node than the one named', () => {
    const a = node('a');
    node('b');
    a.send('c', 'c:1', join('a'));
    a.send('c', 'b:1', join('a'));
    vi.advanceTimersByTime(1);
    expect(inbox).toEqual([]);
    expect(hub.counters.undeliverable).toBe(2);
  });

  it('partitions, isolates, drops by rule, and heals', () => {
    const [a, b, c] = [node('a'), node('b'), node('c')];
    const all = (): void => {
      for (const [from, t] of [['a', a], ['b', b], ['c', c]] as const) {
        for (const to of ['a', 'b', 'c']) if (to !== from) t.send(to, `${to}:1`, join(from));
      }
      vi.advanceTimersByTime(1);
    };
    const links = (): string[] => inbox.splice(0).map(([to, from]) => `${from}${to}`).sort();
    hub.partition(['a'], ['b', 'c']);
    all();
    expect(links()).toEqual(['bc', 'cb']);
    hub.heal();
    hub.isolate('b');
    all();
    expect(links()).toEqual(['ac', 'ca']);
    hub.restore('b');
    hub.dropIf((from, to) => from === 'a' && to === 'b');
    all();
    expect(links()).toEqual(['ac', 'ba', 'bc', 'ca', 'cb']);
  });

  it('delays by rule', () => {
    const a = node('a');
    node('b');
    hub.setDelay((from) => (from === 'a' ? 500 : 0));
    a.send('b', 'b:1', join('a'));
    vi.advanceTimersByTime(499);
    expect(inbox).toHaveLength(0);
    vi.advanceTimersByTime(1);
    expect(inbox).toHaveLength(1);
  });

  it('kill freezes the node for good; a new connect under the id is a fresh node', () => {
    const a = node('a');
    const b = node('b');
    let fired = 0;
    b.clock.setTimeout(() => fired++, 10);
    hub.kill('b');
    a.send('b', 'b:1', join('a'));
    b.send('a', 'a:1', join('b'));
    vi.advanceTimersByTime(20);
    expect([fired, inbox.length]).toEqual([0, 0]);
    node('b');
    a.send('b', 'b:1', join('a'));
    vi.advanceTimersByTime(1);
    expect(inbox).toHaveLength(1);
  });

  it('pause holds timers and messages; resume runs the overdue timers, then delivers', () => {
    const a = node('a');
    const b = node('b');
    const order: string[] = [];
    b.onMessage(() => order.push('message'));
    b.clock.setTimeout(() => order.push('timer'), 100);
    const cancelled = b.clock.setTimeout(() => order.push('cancelled'), 100);
    hub.pause('b');
    a.send('b', 'b:1', join('a'));
    vi.advanceTimersByTime(1000);
    b.clock.clearTimeout(cancelled);
    expect(order).toEqual([]);
    hub.resume('b');
    expect(order).toEqual(['timer', 'message']);
  });
});
