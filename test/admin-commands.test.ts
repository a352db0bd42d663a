/**
 * The operator's stats groups (src/admin/admin-commands.ts) over a real store and executor: the
 * member list, a key's owners and this node's copy, the roles count, listings read page by page
 * while the store changes, lock keys held or free, relays to another member and their failures,
 * and ERROR for every malformed group, as memcached answers a stats group it does not know.
 */
import { describe, expect, it } from 'vitest';
import { AdminCommands, type AdminCluster } from '../src/admin/admin-commands.js';
import { SessionListings } from '../src/admin/session-listings.js';
import type { DrainReport } from '../src/cluster/cluster-node.js';
import { MemberState } from '../src/cluster/types.js';
import { Executor } from '../src/command/executor.js';
import { type Command, type Reply, StoreMode } from '../src/protocol/types.js';
import type { Item } from '../src/store/change.js';
import { MemoryStore } from '../src/store/memory-store.js';

const PREFIX = 'memc.sess.key.';

function single(now = () => Date.now()) {
  const store = new MemoryStore({ memoryLimit: 1 << 24, maxItemSize: 1 << 16 });
  const executor = new Executor({ store, version: 'v' });
  const admin = new AdminCommands({ store, nodeId: 'local', sessionPrefix: PREFIX, cluster: null, now });
  const run = (line: string) => admin.execute({ kind: 'stats', args: line.split(' ').filter(Boolean) }, (command) => executor.execute(command)) as Reply;
  const set = (key: string, value: string, exptime = 0) => executor.execute({ kind: 'store', mode: StoreMode.Set, key, flags: 0, exptime, value: Buffer.from(value), cas: 0 } as Command);
  return { store, executor, admin, run, set };
}

const entries = (reply: Reply): Array<[string, string]> => {
  if (reply.kind !== 'stats') throw new Error(`not stats: ${JSON.stringify(reply)}`);
  return reply.entries;
};
const record = (reply: Reply) => Object.fromEntries(entries(reply));

describe('operator stats groups on a single node', () => {
  it('members lists the node itself; key says it masters everything and what its copy is', () => {
    const { run, set } = single();
    expect(entries(run('members'))).toEqual([['member', 'local alive -']]);
    set(`${PREFIX}abc`, 'user_id|i:1;', 600);
    const key = record(run(`key ${PREFIX}abc`));
    expect(key).toMatchObject({ node: 'local', master: 'local', backup: 'none', held: 'yes', role: 'master', bytes: '12', flags: '0', version: '1', origin: 'local' });
    expect(Number(key.exptime)).toBeGreaterThan(Date.now() / 1000 + 590);
    expect(Math.abs(Number(key.created) - Date.now() / 1000)).toBeLessThan(5);
    expect(key.lock).toBeUndefined();
    expect(record(run(`key ${PREFIX}missing`))).toEqual({ node: 'local', master: 'local', backup: 'none', held: 'no' });
  });

  it('locks held names which of the keys asked about a client connection here holds, and no other key', () => {
    const store = new MemoryStore({ memoryLimit: 1 << 24, maxItemSize: 1 << 16 });
    const held = new Set([`${PREFIX}lock.a`, 'b.lock', `${PREFIX}lock.secret`]);
    const admin = new AdminCommands({ store, nodeId: 'local', sessionPrefix: PREFIX, cluster: null, holdsLock: (key) => held.has(key) });
    const run = (line: string) => admin.execute({ kind: 'stats', args: line.split(' ') }, (): Reply => ({ kind: 'unknownStats' })) as Reply;
    expect(entries(run(`locks held ${PREFIX}lock.a b.lock ${PREFIX}lock.c`))).toEqual([['held', `${PREFIX}lock.a`], ['held', 'b.lock']]);
    expect(entries(run(`locks held ${PREFIX}lock.c`))).toEqual([]);
    expect(run('locks held')).toEqual({ kind: 'unknownStats' });
    expect(run('locks')).toEqual({ kind: 'unknownStats' });
  });

  it('roles counts sessions and lock keys apart', () => {
    const { run, set } = single();
    set(`${PREFIX}a`, 'x');
    set(`${PREFIX}b`, 'y');
    set(`${PREFIX}lock.a`, '1');
    set('pecl.lock', '0');
    expect(record(run('roles'))).toEqual({
      node: 'local', sessions_mastered: '2', sessions_backed_up: '0', sessions_other: '0', locks_mastered: '2', locks_backed_up: '0', copies_pending: 'no',
    });
  });

  it('a listing fixed at its start is read page by page: what goes meanwhile is left out, what comes is not listed, and the end drops it', () => {
    const { run, set, executor } = single();
    for (let i = 0; i < 5; i++) set(`${PREFIX}s${i}`, `v${i}`);
    const started = record(run('sessions'));
    expect(started).toEqual({ listing: '1', keys: '5' });
    executor.execute({ kind: 'delete', key: `${PREFIX}s1`, cas: 0 });
    set(`${PREFIX}late`, 'v');
    const first = entries(run('sessions 1 2'));
    expect(first.map(([name, value]) => [name, value.split(' ')[0]])).toEqual([['item', `${PREFIX}s0`], ['item', `${PREFIX}s2`], ['remaining', '2']]);
    const [key, role, bytes, exptime, created, version] = first[0]![1].split(' ');
    expect([key, role, bytes, exptime, version]).toEqual([`${PREFIX}s0`, 'master', '2', '0', '1']);
    expect(Number(created)).toBeGreaterThan(0);
    expect(entries(run('sessions 1 10')).map(([, value]) => value.split(' ')[0])).toEqual([`${PREFIX}s3`, `${PREFIX}s4`, '0']);
    expect(run('sessions 1 10')).toMatchObject({ kind: 'serverError', message: expect.stringMatching(/no listing 1/) });
  });

  it('a lock key is held or free: php-memcached\'s while it exists, pecl memcache\'s while it is not 0', () => {
    const { run, set } = single();
    set(`${PREFIX}lock.a`, '1');
    set('b.lock', '1');
    set('c.lock', '0');
    expect(record(run(`key ${PREFIX}lock.a`)).lock).toBe('held');
    expect(record(run('key b.lock')).lock).toBe('held');
    expect(record(run('key c.lock')).lock).toBe('free');
    run('sessions');
    const listed = entries(run('sessions 1 10')).filter(([name]) => name === 'item').map(([, value]) => [value.split(' ')[0], value.split(' ')[6]]);
    expect(listed).toEqual([[`${PREFIX}lock.a`, 'held'], ['b.lock', 'held'], ['c.lock', 'free']]);
  });

  it('a session keeps the time it was first held across rewrites; a pecl memcache lock counts from its newest take', async () => {
    const { run, set } = single();
    set(`${PREFIX}s`, 'v1');
    set('s.lock', '1');
    const firstHeld = record(run(`key ${PREFIX}s`)).created;
    await new Promise((resolve) => setTimeout(resolve, 1100));
    set(`${PREFIX}s`, 'v2');
    set('s.lock', '0');
    set('s.lock', '1');
    expect(record(run(`key ${PREFIX}s`)).created).toBe(firstHeld);
    expect(Number(record(run('key s.lock')).created)).toBeGreaterThan(Number(firstHeld));
  });

  it('--disable-cachedump turns listings off too: they name every session id', () => {
    const store = new MemoryStore({ memoryLimit: 1 << 24, maxItemSize: 1 << 16 });
    const executor = new Executor({ store, version: 'v' });
    const admin = new AdminCommands({ store, nodeId: 'local', sessionPrefix: PREFIX, cluster: null, disableListings: true });
    const run = (line: string) => admin.execute({ kind: 'stats', args: line.split(' ') }, (command) => executor.execute(command));
    expect(run('sessions')).toEqual({ kind: 'notAllowed', message: 'stats sessions not allowed' });
    expect(run('sessions 1 10')).toEqual({ kind: 'notAllowed', message: 'stats sessions not allowed' });
    // counts and one named key reveal no id
    expect(run('roles')).toMatchObject({ kind: 'stats' });
    expect(run(`key ${PREFIX}x`)).toMatchObject({ kind: 'stats' });
  });

  it('drain on a single node, a relay to an unknown member, and malformed groups', () => {
    const { run } = single();
    expect(run('drain')).toMatchObject({ kind: 'serverError', message: expect.stringMatching(/single node has nothing to drain to/) });
    expect(run('undrain')).toMatchObject({ kind: 'serverError' });
    expect(run('node other roles')).toMatchObject({ kind: 'serverError', message: expect.stringMatching(/no member other/) });
    expect(record(run('node local roles')).node).toBe('local');
    for (const line of ['node', 'node local node local roles', 'key', 'key a b', 'roles x', 'members x', 'sessions 1', 'sessions x 10', 'sessions 1 0', 'sessions 1 -5']) {
      expect(run(line), line).toEqual({ kind: 'unknownStats' });
    }
    // plain stats, memcached's own groups and every other command pass through
    const { admin } = single();
    const passed: Command[] = [];
    const next = (command: Command): Reply => { passed.push(command); return { kind: 'statsReset' }; };
    for (const args of [[], ['items'], ['settings'], ['nonsense']]) expect(admin.execute({ kind: 'stats', args }, next)).toEqual({ kind: 'statsReset' });
    admin.execute({ kind: 'version' }, next);
    expect(passed).toEqual([{ kind: 'stats', args: [] }, { kind: 'stats', args: ['items'] }, { kind: 'stats', args: ['settings'] }, { kind: 'stats', args: ['nonsense'] }, { kind: 'version' }]);
  });
});

describe('operator stats groups on a cluster node', () => {
  const DRAIN: DrainReport = { state: 'draining', items: 3, copies: 6, acknowledged: 2, outcome: null, replacement: null };
  function clustered(ask: AdminCluster['ask']) {
    const store = new MemoryStore({ memoryLimit: 1 << 24, maxItemSize: 1 << 16, nodeId: 'n1' });
    const executor = new Executor({ store, version: 'v' });
    const cluster: AdminCluster = {
      self: 'n1',
      members: () => [
        { id: 'n2', peerAddress: '10.0.0.2:7000', state: MemberState.Alive, incarnation: 1 },
        { id: 'n1', peerAddress: '10.0.0.1:7000', state: MemberState.Alive, incarnation: 1 },
        { id: 'n3', peerAddress: '10.0.0.3:7000', state: MemberState.Dead, incarnation: 1 },
      ],
      // keys ending in 1 are mastered here, in 2 backed up here, others elsewhere
      owners: (key) => key.endsWith('1') ? { master: { id: 'n1', address: '' }, backup: { id: 'n2', address: '' } }
        : key.endsWith('2') ? { master: { id: 'n2', address: '' }, backup: { id: 'n1', address: '' } }
          : { master: { id: 'n2', address: '' }, backup: { id: 'n3', address: '' } },
      ask,
      copiesPending: () => true,
      drain: () => DRAIN,
      drainStatus: () => DRAIN,
      undrain: () => ({ ...DRAIN, state: 'drained' }),
    };
    const admin = new AdminCommands({ store, nodeId: 'n1', sessionPrefix: PREFIX, cluster });
    const run = (line: string) => admin.execute({ kind: 'stats', args: line.split(' ').filter(Boolean) }, (command) => executor.execute(command));
    const set = (key: string) => executor.execute({ kind: 'store', mode: StoreMode.Set, key, flags: 0, exptime: 0, value: Buffer.from('v'), cas: 0 } as Command);
    return { run, set };
  }

  it('members puts this node first; roles follow placement; drain reports', async () => {
    const { run, set } = clustered(async () => ({ kind: 'stats', entries: [] }));
    expect(entries(await run('members'))).toEqual([['member', 'n1 alive 10.0.0.1:7000'], ['member', 'n2 alive 10.0.0.2:7000'], ['member', 'n3 dead 10.0.0.3:7000']]);
    for (const key of ['s1', 's2', 's3', 't1']) set(`${PREFIX}${key}`);
    expect(record(await run('roles'))).toMatchObject({ sessions_mastered: '2', sessions_backed_up: '1', sessions_other: '1', copies_pending: 'yes' });
    expect(record(await run('drain'))).toEqual({ state: 'draining', items: '3', copies: '6', acknowledged: '2', outcome: 'none', replacement: 'none' });
    expect(record(await run('drain status')).state).toBe('draining');
    expect(record(await run('undrain')).state).toBe('drained');
    for (const line of ['drain now', 'drain status x', 'undrain x']) expect(await run(line), line).toEqual({ kind: 'unknownStats' });
  });

  it('node <id> relays the question to that member and answers its reply; a dead member or a failed relay is SERVER_ERROR', async () => {
    const asked: Array<[string, string, string[]]> = [];
    const { run } = clustered(async (member, args) => {
      asked.push([member.id, member.address, args]);
      if (args[0] === 'fail') throw new Error('link down');
      return { kind: 'stats', entries: [['answered', member.id]] };
    });
    expect(await run('node n2 roles')).toEqual({ kind: 'stats', entries: [['answered', 'n2']] });
    expect(asked).toEqual([['n2', '10.0.0.2:7000', ['roles']]]);
    expect(await run('node n3 roles')).toMatchObject({ kind: 'serverError', message: 'member n3 is dead' });
    expect(await run('node n2 fail')).toMatchObject({ kind: 'serverError', message: 'member n2 did not answer: link down' });
    expect(record(await run('node n1 members')).member).toBe('n3 dead 10.0.0.3:7000');
  });
});

describe('SessionListings', () => {
  it('drops a listing left unread for a minute, and the least recently read beyond eight', () => {
    let now = 0;
    const listings = new SessionListings(() => now);
    const id = listings.start(['a']);
    now = 61_000;
    expect(listings.page(id, 10, () => undefined)).toBeNull();
    const ids = Array.from({ length: 9 }, () => listings.start(['a', 'b']));
    const held = (key: string) => ({ key }) as unknown as Item;
    expect(listings.page(ids[0]!, 1, held)).toBeNull();
    expect(listings.page(ids[8]!, 1, held)).toEqual({ items: [{ key: 'a' }], remaining: 1 });
    // keys gone since the start are skipped, and do not end a page early
    expect(listings.page(ids[7]!, 1, (key) => (key === 'a' ? undefined : held(key)))).toEqual({ items: [{ key: 'b' }], remaining: 0 });
  });
});
