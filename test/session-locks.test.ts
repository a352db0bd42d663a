/**
 * Session locks the daemon understands: which keys are locks, which connection holds one, and
 * the release of a lock whose connection closed without releasing it, over the real executor
 * and store (the PHP processes and daemons are in integration/session-locks.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { Executor } from '../src/command/executor.js';
import type { Execute } from '../src/protocol/handler.js';
import { type Command, type Reply, Status, StoreMode } from '../src/protocol/types.js';
import { idForLog, LockStyle, lockStyleOf, sessionIdOfLock } from '../src/session-locks/lock-keys.js';
import { SessionLocks } from '../src/session-locks/session-locks.js';
import type { LockHandoff } from '../src/session-locks/lock-handoff.js';
import { MemoryStore } from '../src/store/memory-store.js';
import { capturedLog } from './support/captured-log.js';

const PREFIX = 'memc.sess.key.';
const ID = 'k3v9q0a1b2c3d4e5f6g7h8i9j0kl';

describe('lock keys', () => {
  it('php-memcached\'s <prefix>lock.<id> and pecl memcache\'s <id>.lock are locks; nothing else is', () => {
    expect(lockStyleOf(`${PREFIX}lock.${ID}`, PREFIX)).toBe(LockStyle.Memcached);
    expect(lockStyleOf(`${ID}.lock`, PREFIX)).toBe(LockStyle.Memcache);
    expect(lockStyleOf(`lock.${ID}`, '')).toBe(LockStyle.Memcached);
    for (const other of [`${PREFIX}${ID}`, ID, `${PREFIX}lock.`, '.lock', 'lock.jobs', `${ID}.LOCK`, `other.lock.${ID}`]) expect(lockStyleOf(other, PREFIX), other).toBe(null);
    expect(sessionIdOfLock(`${PREFIX}lock.${ID}`, LockStyle.Memcached, PREFIX)).toBe(ID);
    expect(sessionIdOfLock(`${ID}.lock`, LockStyle.Memcache, PREFIX)).toBe(ID);
    expect(idForLog(ID)).toBe('k3v9q0…');
  });
});

function node(lockWaitMs = 0) {
  const store = new MemoryStore({ memoryLimit: 64 << 20, maxItemSize: 1 << 20 });
  const executor = new Executor({ store, version: 'test' });
  const { log, lines } = capturedLog();
  const locks = new SessionLocks({ sessionPrefix: PREFIX, log, lockWaitMs, lockExpiresAt: (key) => store.peek(key, Date.now())?.expiresAt ?? null });
  // As a single node runs commands (src/daemon.ts): through the lock handoff when it is on.
  const handoff = locks.handoff;
  const execute: Execute = handoff === null ? (command) => executor.execute(command) : (command) => handoff.execute(command, (c) => executor.execute(c));
  locks.releaseThrough(execute);
  return { store, locks, lines, execute, connect: () => { const c = locks.forConnection(); return { run: c.wrap(execute) as (command: Command) => Reply, close: () => c.close() }; } };
}

const add = (key: string, value = '1', flags = 0): Command => ({ kind: 'store', mode: StoreMode.Add, key, flags, exptime: 30, value: Buffer.from(value), cas: 0 });
const set = (key: string, value: string, flags = 0): Command => ({ kind: 'store', mode: StoreMode.Set, key, flags, exptime: 15, value: Buffer.from(value), cas: 0 });
const del = (key: string): Command => ({ kind: 'delete', key, cas: 0 });
const incr = (key: string): Command => ({ kind: 'arith', key, incr: true, delta: 1n, initial: null, exptime: 0, cas: 0 });
const held = (n: ReturnType<typeof node>, key: string) => n.store.peek(key, Date.now())?.value.toString() ?? null;

describe('php-memcached locks', () => {
  const LOCK = `${PREFIX}lock.${ID}`;

  it('a lock whose connection closes without releasing it is released, counted and logged with the id\'s first characters only', () => {
    const n = node();
    const worker = n.connect();
    expect(worker.run(add(LOCK))).toMatchObject({ status: Status.Stored });
    expect(n.locks.heldNow).toBe(1);
    // Another request waits on it: php-memcached's add fails.
    const waiter = n.connect();
    expect(waiter.run(add(LOCK))).toMatchObject({ status: Status.NotStored });
    expect(n.locks.counters.contended).toBe(1);
    worker.close();
    expect(held(n, LOCK)).toBe(null);
    expect(n.locks.heldNow).toBe(0);
    expect(n.locks.counters.releasedOnDisconnect).toBe(1);
    expect(waiter.run(add(LOCK))).toMatchObject({ status: Status.Stored });
    const line = n.lines.find((l) => l.msg.includes('closed without releasing'));
    expect(line).toMatchObject({ session: 'k3v9q0…', style: 'php-memcached' });
    expect(JSON.stringify(n.lines)).not.toContain(ID);
  });

  it('a lock released by its holder is not released again: the next holder keeps it when the first connection closes', () => {
    const n = node();
    const first = n.connect();
    first.run(add(LOCK));
    expect(first.run(del(LOCK))).toMatchObject({ status: Status.Deleted });
    expect(n.locks.heldNow).toBe(0);
    const second = n.connect();
    second.run(add(LOCK));
    first.close();
    expect(held(n, LOCK)).toBe('1');
    expect(n.locks.counters.releasedOnDisconnect).toBe(0);
    expect(n.locks.counters.acquired).toBe(2);
  });

  it('a lock that expired and was taken by another request is left to that one (its CAS differs)', () => {
    const n = node();
    const slow = n.connect();
    slow.run(add(LOCK));
    // Expired meanwhile, and taken by another worker.
    n.execute(del(LOCK));
    const next = n.connect();
    next.run(add(LOCK));
    slow.close();
    expect(held(n, LOCK)).toBe('1');
    expect(n.locks.counters.releasedOnDisconnect).toBe(0);
    // A holder whose own release finds its lock gone: a lock that expired while held.
    next.run(del(LOCK));
    const late = n.connect();
    expect(late.run(add(LOCK, '1'))).toMatchObject({ status: Status.Stored });
    n.execute(del(LOCK));
    late.run(del(LOCK));
    expect(n.locks.counters.expiredWhileHeld).toBe(1);
  });

  it('a take whose answer arrives after its connection closed is released at once', async () => {
    const n = node();
    let answer: (reply: Reply) => void = () => {};
    const c = n.locks.forConnection();
    // The command went to the lock's master on another node: its answer comes later.
    const run = c.wrap((command) => new Promise<Reply>((resolve) => { answer = () => resolve(n.execute(command) as Reply); }));
    const reply = run(add(LOCK));
    c.close();
    answer({ kind: 'quit' });
    expect(await reply).toMatchObject({ status: Status.Stored });
    expect(held(n, LOCK)).toBe(null);
    expect(n.locks.heldNow).toBe(0);
    expect(n.locks.counters.releasedOnDisconnect).toBe(1);
  });

  it('after a stall past the failure timeout, the connections holding a lock are closed, and only those; their close releases only locks nobody retook', () => {
    const n = node();
    const closedConnections: string[] = [];
    const open = (name: string) => {
      const c = n.locks.forConnection(() => { closedConnections.push(name); c.close(); });
      return c.wrap(n.execute) as (command: Command) => Reply;
    };
    const holder = open('holder');
    const released = open('released');
    const idle = open('idle');
    const other = `${PREFIX}lock.another${ID}`;
    holder(add(LOCK));
    released(add(other));
    released(del(other));
    idle({ kind: 'get', keys: [`${PREFIX}${ID}`], withCas: false });
    // Meanwhile the others released the holder's lock as their dead node's, and a request took it.
    n.execute(del(LOCK));
    n.execute(add(LOCK, '2'));
    expect(n.locks.abandonHolders()).toBe(1);
    expect(closedConnections).toEqual(['holder']);
    expect(held(n, LOCK), 'the newer holder keeps it').toBe('2');
    expect(n.locks.abandonHolders()).toBe(0);
  });
});

describe('pecl memcache locks', () => {
  const LOCK = `${ID}.lock`;

  it('taken by incr answering 1 or by add; polls of a held lock get a number above 1 and leave the lock as its holder took it', () => {
    const n = node();
    const worker = n.connect();
    expect(worker.run(incr(LOCK))).toMatchObject({ kind: 'status', status: Status.NotFound });
    expect(worker.run(add(LOCK, '1', 768))).toMatchObject({ status: Status.Stored });
    const cas = n.store.peek(LOCK, Date.now())!.cas;
    const waiter = n.connect();
    for (let poll = 0; poll < 3; poll++) expect(waiter.run(incr(LOCK))).toMatchObject({ kind: 'number', value: 2n });
    expect(held(n, LOCK)).toBe('1');
    expect(n.store.peek(LOCK, Date.now())!.cas).toBe(cas);
    expect(n.locks.counters.contended).toBe(3);
    worker.close();
    expect(held(n, LOCK)).toBe(null);
    expect(n.locks.counters.releasedOnDisconnect).toBe(1);
    // The waiter's next poll misses, and its add takes the lock.
    expect(waiter.run(incr(LOCK))).toMatchObject({ kind: 'status', status: Status.NotFound });
    expect(waiter.run(add(LOCK, '1', 768))).toMatchObject({ status: Status.Stored });
    expect(n.locks.heldNow).toBe(1);
  });

  it('released by its holder setting "0"; a released lock is taken by an incr that answers 1', () => {
    const n = node();
    const first = n.connect();
    first.run(add(LOCK, '1', 768));
    first.run(set(LOCK, '0', 768));
    expect(n.locks.heldNow).toBe(0);
    const second = n.connect();
    expect(second.run(incr(LOCK))).toMatchObject({ kind: 'number', value: 1n });
    expect(n.locks.heldNow).toBe(1);
    first.close();
    expect(held(n, LOCK)).toBe('1');
    second.close();
    expect(held(n, LOCK)).toBe(null);
    expect(n.locks.counters.releasedOnDisconnect).toBe(1);
  });

  it('a counter that is not pecl memcache\'s lock (other flags) counts up as memcached counts', () => {
    const n = node();
    n.execute(set('jobs.lock', '5', 0));
    expect(n.execute(incr('jobs.lock'))).toMatchObject({ kind: 'number', value: 6n });
    expect(held(n, 'jobs.lock')).toBe('6');
  });
});

describe('lock handoff (--lock-wait-ms)', () => {
  const LOCK = `${PREFIX}lock.${ID}`;
  const PECL_LOCK = `${ID}.lock`;
  const pending = (reply: Reply | Promise<Reply>) => reply as Promise<Reply>;
  const settled = async (reply: Promise<Reply>) => Promise.race([reply, new Promise<'waiting'>((resolve) => setTimeout(() => resolve('waiting'), 20))]);

  it('a refused take waits in line and gets the lock the moment it is released, first come first served', async () => {
    const n = node(10_000);
    const handoff = n.locks.handoff as LockHandoff;
    const holder = n.connect();
    holder.run(add(LOCK));
    const first = pending(n.connect().run(add(LOCK)));
    const second = pending(n.connect().run(add(LOCK)));
    expect(await settled(first)).toBe('waiting');
    expect(handoff.waitingNow).toBe(2);
    holder.run(del(LOCK));
    expect(await first).toMatchObject({ status: Status.Stored });
    expect(await settled(second)).toBe('waiting');
    n.execute(del(LOCK));
    expect(await second).toMatchObject({ status: Status.Stored });
    expect(handoff.handedOff).toBe(2);
    expect(handoff.waitingNow).toBe(0);
    expect(handoff.waitPercentileMs(0.99)).toBeGreaterThan(0);
  });

  it('after the wait, the take is refused as memcached refuses it: the client\'s own retries go on', async () => {
    const n = node(30);
    const handoff = n.locks.handoff as LockHandoff;
    n.connect().run(add(LOCK));
    expect(await pending(n.connect().run(add(LOCK)))).toMatchObject({ status: Status.NotStored });
    expect(handoff.timedOut).toBe(1);
    expect(handoff.waitingNow).toBe(0);
  });

  it('pecl memcache: a poll of a held lock waits, and answers 1 once the holder sets it to 0', async () => {
    const n = node(10_000);
    const holder = n.connect();
    holder.run(add(PECL_LOCK, '1', 768));
    const waiter = n.connect();
    const poll = pending(waiter.run(incr(PECL_LOCK)));
    expect(await settled(poll)).toBe('waiting');
    holder.run(set(PECL_LOCK, '0', 768));
    expect(await poll).toMatchObject({ kind: 'number', value: 1n });
    expect(n.locks.heldNow).toBe(1);
  });

  it('a held lock that expires (its holder hung) goes to the first waiter then, not after the wait', async () => {
    const n = node(10_000);
    const handoff = n.locks.handoff as LockHandoff;
    // Taken for one second, and never released.
    n.connect().run({ kind: 'store', mode: StoreMode.Add, key: LOCK, flags: 0, exptime: 1, value: Buffer.from('1'), cas: 0 });
    const first = pending(n.connect().run({ kind: 'store', mode: StoreMode.Add, key: LOCK, flags: 0, exptime: 1, value: Buffer.from('1'), cas: 0 }));
    const second = pending(n.connect().run(add(LOCK)));
    expect(await first).toMatchObject({ status: Status.Stored });
    // The first waiter hangs too: its lock expires after its second, and the next gets it then.
    expect(await second).toMatchObject({ status: Status.Stored });
    // Handed over at each expiry, never given up on after the 10 s wait.
    expect(handoff.handedOff).toBe(2);
    expect(handoff.timedOut).toBe(0);
  });

  it('pecl memcache: a poll waits at most 800 ms whatever the setting, inside pecl memcache\'s 1 s read timeout', async () => {
    const n = node(10_000);
    const handoff = n.locks.handoff as LockHandoff;
    n.connect().run(add(PECL_LOCK, '1', 768));
    const started = Date.now();
    expect(await pending(n.connect().run(incr(PECL_LOCK)))).toMatchObject({ kind: 'number', value: 2n });
    expect(handoff.timedOut).toBe(1);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('a lock released because its holder disconnected goes to the first waiter; a waiter that disconnected passes it on', async () => {
    const n = node(10_000);
    const holder = n.connect();
    holder.run(add(LOCK));
    const gone = n.connect();
    const goneTake = pending(gone.run(add(LOCK)));
    const next = n.connect();
    const nextTake = pending(next.run(add(LOCK)));
    // The first waiter's client goes away while it waits, then the holder dies.
    gone.close();
    holder.close();
    // The lock went to the departed waiter, whose closed connection released it at once.
    expect(await goneTake).toMatchObject({ status: Status.Stored });
    expect(await nextTake).toMatchObject({ status: Status.Stored });
    expect(n.locks.counters.releasedOnDisconnect).toBe(2);
    expect(n.locks.heldNow).toBe(1);
    expect(held(n, LOCK)).toBe('1');
  });
});
