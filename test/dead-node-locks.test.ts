/**
 * Locks left by a dead node (src/session-locks/dead-node-locks.ts): which locks a member's death
 * releases, over a real store and the real session locks, with the other members' answers and the
 * clock in the test's hands. The real nodes, PHP and kill -9 are in
 * integration/session-locks.test.ts.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Executor } from '../src/command/executor.js';
import { type Command, type Reply, StoreMode } from '../src/protocol/types.js';
import { DeadNodeLocks } from '../src/session-locks/dead-node-locks.js';
import { SessionLocks } from '../src/session-locks/session-locks.js';
import { MemoryStore } from '../src/store/memory-store.js';
import { capturedLog } from './support/captured-log.js';

const PREFIX = 'memc.sess.key.';
const SETTLE_MS = 2000;
const lockOf = (id: string) => `${PREFIX}lock.${id}`;
const add = (key: string, value = '1', flags = 0): Command => ({ kind: 'store', mode: StoreMode.Add, key, flags, exptime: 30, value: Buffer.from(value), cas: 0 });
const set = (key: string, value: string, flags = 0): Command => ({ kind: 'store', mode: StoreMode.Set, key, flags, exptime: 30, value: Buffer.from(value), cas: 0 });

beforeEach(() => { vi.useFakeTimers({ now: 1_700_000_000_000 }); });
afterEach(() => { vi.useRealTimers(); });

function node(options: { mastered?: (key: string) => boolean; others?: Record<string, string[] | Error>; serving?: boolean } = {}) {
  const store = new MemoryStore({ memoryLimit: 64 << 20, maxItemSize: 1 << 20 });
  const executor = new Executor({ store, version: 'test' });
  const { log, lines } = capturedLog();
  const locks = new SessionLocks({ sessionPrefix: PREFIX, log });
  const execute = (command: Command) => executor.execute(command) as Reply;
  locks.releaseThrough(execute);
  const asked: Array<{ member: string; keys: string[] }> = [];
  const others = options.others ?? {};
  const deadNodeLocks = new DeadNodeLocks({
    store, sessionPrefix: PREFIX, log, settleMs: SETTLE_MS,
    mastersHere: options.mastered ?? (() => true),
    serving: () => options.serving ?? true,
    holdsHere: (key) => locks.holds(key),
    liveOthers: () => Object.keys(others),
    askHeld: async (member, keys) => {
      asked.push({ member, keys });
      const answer = others[member]!;
      if (answer instanceof Error) throw answer;
      return new Set(keys.filter((key) => answer.includes(key)));
    },
    release: (key, style, cas, since, deadNode) => locks.releaseOrphaned(key, style, cas, since, deadNode),
  });
  /** A lock taken the way a request through another node takes it: the command reaches the store here. */
  const takeForAnotherNode = (key: string) => execute(add(key));
  const held = (key: string) => store.peek(key, Date.now())?.value.toString() ?? null;
  return { store, locks, lines, execute, deadNodeLocks, asked, takeForAnotherNode, held, connect: () => locks.forConnection().wrap(execute) };
}

describe('locks left by a dead node', () => {
  it('a lock no live member\'s request holds is released, counted and logged; one held here or by a live member is kept', async () => {
    const n = node({ others: { n2: [lockOf('heldbyn2')] } });
    n.takeForAnotherNode(lockOf('orphaned01'));
    n.takeForAnotherNode(lockOf('heldbyn2'));
    const here = n.connect();
    here(add(lockOf('heldhere')));
    vi.setSystemTime(Date.now() + SETTLE_MS);
    await n.deadNodeLocks.scan('n3');
    expect(n.held(lockOf('orphaned01'))).toBeNull();
    expect(n.held(lockOf('heldbyn2'))).toBe('1');
    expect(n.held(lockOf('heldhere'))).toBe('1');
    expect(n.asked).toEqual([{ member: 'n2', keys: [lockOf('orphaned01'), lockOf('heldbyn2')] }]);
    expect(n.locks.counters.releasedNodeDied).toBe(1);
    expect(n.lines.filter((l) => l.msg === 'session lock released: the node its request came through died')).toMatchObject([{ session: 'orphan…', deadNode: 'n3', style: 'php-memcached' }]);
    expect(JSON.stringify(n.lines)).not.toContain('orphaned01');
  });

  it('only locks: sessions, and locks this node does not master, are left alone', async () => {
    const n = node({ mastered: (key) => !key.includes('elsewhere') });
    n.execute(set(`${PREFIX}sessiondata`, 'a|i:1;'));
    n.takeForAnotherNode(lockOf('elsewhere'));
    n.takeForAnotherNode(lockOf('mine'));
    vi.setSystemTime(Date.now() + SETTLE_MS);
    await n.deadNodeLocks.scan('n3');
    expect(n.held(`${PREFIX}sessiondata`)).toBe('a|i:1;');
    expect(n.held(lockOf('elsewhere'))).toBe('1');
    expect(n.held(lockOf('mine'))).toBeNull();
  });

  it('pecl memcache: a held lock (<id>.lock) is released; a released one ("0") is left as pecl memcache left it', async () => {
    const n = node();
    n.execute(set('heldpm.lock', '1', 768));
    n.execute(set('freepm.lock', '0', 768));
    vi.setSystemTime(Date.now() + SETTLE_MS);
    await n.deadNodeLocks.scan('n3');
    expect(n.held('heldpm.lock')).toBeNull();
    expect(n.held('freepm.lock')).toBe('0');
    expect(n.lines.find((l) => l.msg.startsWith('session lock released'))).toMatchObject({ style: 'pecl-memcache' });
  });

  it('a lock taken less than the settle time ago is looked at once it is that old (its answer may still be on its way)', async () => {
    const n = node({ others: { n2: [] } });
    n.takeForAnotherNode(lockOf('young'));
    vi.setSystemTime(Date.now() + 500);
    n.deadNodeLocks.memberDied('n3');
    await vi.advanceTimersByTimeAsync(0);
    expect(n.held(lockOf('young'))).toBe('1');
    expect(n.asked).toEqual([]);
    await vi.advanceTimersByTimeAsync(SETTLE_MS - 500 - 10);
    expect(n.held(lockOf('young'))).toBe('1');
    await vi.advanceTimersByTimeAsync(20);
    expect(n.held(lockOf('young'))).toBeNull();
  });

  it('a live member that cannot say which locks it holds (an older version, no answer): every lock is kept, and that is logged', async () => {
    const n = node({ others: { n2: [], n4: new Error('it answered ERROR') } });
    n.takeForAnotherNode(lockOf('maybe'));
    vi.setSystemTime(Date.now() + SETTLE_MS);
    await n.deadNodeLocks.scan('n3');
    expect(n.held(lockOf('maybe'))).toBe('1');
    expect(n.lines.find((l) => l.msg.startsWith('locks left by a dead node kept'))).toMatchObject({ member: 'n4', locks: 1, err: 'it answered ERROR' });
  });

  it('a node without a majority (cut off, it sees the others dead) releases nothing', async () => {
    const n = node({ serving: false });
    n.takeForAnotherNode(lockOf('cutoffside'));
    vi.setSystemTime(Date.now() + SETTLE_MS);
    await n.deadNodeLocks.scan('n3');
    expect(n.held(lockOf('cutoffside'))).toBe('1');
    expect(n.asked).toEqual([]);
  });

  it('a lock retaken since it was found (another CAS) is not released', async () => {
    const n = node({ others: { n2: [] } });
    n.takeForAnotherNode(lockOf('retaken'));
    vi.setSystemTime(Date.now() + SETTLE_MS);
    // While the live member is asked, the lock expires and another request takes it.
    const scanning = n.deadNodeLocks.scan('n3');
    n.execute({ kind: 'delete', key: lockOf('retaken'), cas: 0 });
    n.execute(add(lockOf('retaken'), '2'));
    await scanning;
    expect(n.asked).toHaveLength(1);
    expect(n.held(lockOf('retaken'))).toBe('2');
    expect(n.locks.counters.releasedNodeDied).toBe(0);
  });
});
