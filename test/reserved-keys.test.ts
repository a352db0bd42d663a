/**
 * The reserved key namespace, through the execute seam both protocols use: reads answered here,
 * writes refused, ordinary keys passed through untouched, mixed multi-gets merged in key order.
 */
import { describe, expect, it } from 'vitest';
import { ClusterView } from '../src/cluster/cluster-view.js';
import { parseSessionId, SESSION_ID_ALPHABET } from '../src/cluster/placement/session-id.js';
import { SessionIds } from '../src/cluster/session-ids.js';
import { MemberState } from '../src/cluster/types.js';
import { ReservedKeys } from '../src/reserved-keys.js';
import { type Command, type Reply, Status, StoreMode } from '../src/protocol/types.js';

const SECRET = 'reserved keys secret';

function setup(live = ['node1', 'node2', 'node3'], loads: Record<string, number> = {}) {
  const view = new ClusterView('node1', { secret: SECRET });
  view.update(live.map((id, i) => ({ id, peerAddress: `127.0.0.1:${7000 + i}`, state: MemberState.Alive, incarnation: 1 })));
  const ids = new SessionIds({ view, secret: SECRET, loadOf: (member) => loads[member] });
  const passed: Command[] = [];
  const next = (command: Command): Reply => {
    passed.push(command);
    if (command.kind === 'get') {
      return { kind: 'values', entries: command.keys.filter((k) => k.startsWith('hit')).map((key) => ({ key, flags: 7, value: Buffer.from('v'), cas: 9 })), missing: command.keys.filter((k) => !k.startsWith('hit')) };
    }
    return { kind: 'status', status: Status.Stored, cas: 1 };
  };
  const execute = new ReservedKeys(ids, 'node1').wrap(next);
  const get = (...keys: string[]) => execute({ kind: 'get', keys, withCas: false }) as Reply;
  const value = (key: string): string | null => {
    const reply = get(key);
    if (reply.kind !== 'values') throw new Error(`unexpected ${reply.kind}`);
    return reply.entries[0]?.value.toString('latin1') ?? null;
  };
  return { view, ids, passed, execute, get, value };
}

describe('reserved keys', () => {
  it('mint: a minted id whose master is this node and whose backup is another live node', () => {
    const { value } = setup();
    const id = value('__session_cluster__.mint')!;
    expect(id).toMatch(/^[0-9a-zA-Z,-]{38,256}$/);
    expect([...id].every((c) => SESSION_ID_ALPHABET.includes(c))).toBe(true);
    const parsed = parseSessionId(id, SECRET)!;
    expect(parsed.master).toBe('node1');
    expect(['node2', 'node3']).toContain(parsed.backup);
    expect(parsed.revision).toBe(0);
  });

  it('mint picks the least-loaded backup, and spreads a burst between load reports', () => {
    const { value } = setup(['node1', 'node2', 'node3'], { node2: 100, node3: 103 });
    const backups = Array.from({ length: 8 }, () => parseSessionId(value('__session_cluster__.mint')!, SECRET)!.backup);
    // node2 takes the first four (100..103 against 103; a tie goes to the lower id), then they alternate
    expect(backups).toEqual(['node2', 'node2', 'node2', 'node2', 'node3', 'node2', 'node3', 'node2']);
  });

  it('mint alone names no backup', () => {
    const { value } = setup(['node1']);
    expect(parseSessionId(value('__session_cluster__.mint')!, SECRET)).toMatchObject({ master: 'node1', backup: null });
  });

  it('mint.<id> re-homes: revision + 1 for a minted id, 0 for any other', () => {
    const { value, ids } = setup();
    const first = value('__session_cluster__.mint')!;
    const second = value(`__session_cluster__.mint.${first}`)!;
    expect(parseSessionId(second, SECRET)!.revision).toBe(1);
    expect(parseSessionId(value(`__session_cluster__.mint.${second}`)!, SECRET)!.revision).toBe(2);
    expect(parseSessionId(value('__session_cluster__.mint.stockid123')!, SECRET)!.revision).toBe(0);
    expect(ids.counters).toMatchObject({ minted: 1, rehomed: 3 });
  });

  it('owners: named and current owners of a minted id; current owners of a hashed one', () => {
    const { value, view } = setup(['node1', 'node2', 'node3']);
    const id = value('__session_cluster__.mint')!;
    const named = parseSessionId(id, SECRET)!;
    expect(new URLSearchParams(value(`__session_cluster__.owners.${id}`)!).toString()).toBe(
      new URLSearchParams({ id_kind: 'minted', master: 'node1', backup: named.backup!, self: 'node1', named_master: 'node1', named_backup: named.backup!, revision: '0' }).toString());
    // the master dies: the backup serves it
    view.update(['node1', 'node2', 'node3'].map((m, i) => ({ id: m, peerAddress: `127.0.0.1:${7000 + i}`, state: m === 'node1' ? MemberState.Dead : MemberState.Alive, incarnation: 1 })));
    const after = new URLSearchParams(value(`__session_cluster__.owners.${id}`)!);
    expect(after.get('master')).toBe(named.backup);
    expect(after.get('named_master')).toBe('node1');
    const hashed = new URLSearchParams(value('__session_cluster__.owners.abcdef0123456789abcdef0123')!);
    expect(hashed.get('id_kind')).toBe('hashed');
    expect(hashed.has('named_master')).toBe(false);
    expect(['node2', 'node3']).toContain(hashed.get('master'));
  });

  it('valid: 1 for a minted id, a miss for a tampered or stock one; self; unknown names miss', () => {
    const { value } = setup();
    const id = value('__session_cluster__.mint')!;
    expect(value(`__session_cluster__.valid.${id}`)).toBe('1');
    const tampered = id.slice(0, 10) + (id[10] === 'x' ? 'y' : 'x') + id.slice(11);
    expect(value(`__session_cluster__.valid.${tampered}`)).toBeNull();
    expect(value('__session_cluster__.valid.abcdef0123456789abcdef0123')).toBeNull();
    expect(value('__session_cluster__.valid.')).toBeNull();
    expect(value('__session_cluster__.owners.')).toBeNull();
    expect(value('__session_cluster__.self')).toBe('node1');
    expect(value('__session_cluster__.unknown')).toBeNull();
    expect(value('__session_cluster__.')).toBeNull();
  });

  it('a multi-get mixing reserved and ordinary keys: ordinary ones pass through, answers in key order', () => {
    const { get, passed } = setup();
    const reply = get('hit1', '__session_cluster__.self', 'miss1', '__session_cluster__.nope', 'hit2');
    expect(passed).toEqual([{ kind: 'get', keys: ['hit1', 'miss1', 'hit2'], withCas: false }]);
    expect(reply).toMatchObject({ kind: 'values', missing: ['miss1', '__session_cluster__.nope'] });
    if (reply.kind !== 'values') throw new Error('values expected');
    expect(reply.entries.map((e) => [e.key, e.value.toString()])).toEqual([['hit1', 'v'], ['__session_cluster__.self', 'node1'], ['hit2', 'v']]);
  });

  it('writes to the namespace are refused and never reach the store', () => {
    const { execute, passed } = setup();
    const key = '__session_cluster__.mint';
    expect(execute({ kind: 'store', mode: StoreMode.Set, key, flags: 0, exptime: 0, value: Buffer.from('x'), cas: 0 })).toMatchObject({ status: Status.NotStored });
    expect(execute({ kind: 'refuseOversized', mode: StoreMode.Set, key })).toMatchObject({ status: Status.NotStored });
    expect(execute({ kind: 'delete', key, cas: 0 })).toMatchObject({ status: Status.NotFound });
    expect(execute({ kind: 'touch', key, exptime: 0 })).toMatchObject({ status: Status.NotFound });
    expect(execute({ kind: 'arith', key, incr: true, delta: 1n, initial: null, exptime: 0, cas: 0 })).toMatchObject({ status: Status.NotFound });
    expect(passed).toEqual([]);
    // an ordinary key that merely looks alike is not reserved
    execute({ kind: 'delete', key: '__session_cluster_x', cas: 0 });
    expect(passed).toHaveLength(1);
  });

  it('gat on a reserved key answers like get', () => {
    const { execute } = setup();
    const reply = execute({ kind: 'touchGet', keys: ['__session_cluster__.self'], exptime: 10, withCas: true }) as Reply;
    expect(reply).toMatchObject({ kind: 'values', entries: [{ key: '__session_cluster__.self', cas: 0, flags: 0 }] });
  });
});
