import { describe, expect, it } from 'vitest';
import { defaultHash, owners, rank, type PlacementHash } from '../../src/cluster/placement/rendezvous.js';

// docs/architecture.md, "Placement": rendezvous hashing of the routing key over the live members; the first is
// master, the second backup; adding or removing a node moves only the sessions that must move.

/** An injected hash read from a table of `key\0member` -> weight, so owners are worked out by hand. */
function tableHash(table: Record<string, bigint | number>): PlacementHash {
  return (input) => {
    const weight = table[input];
    if (weight === undefined) throw new Error(`unexpected hash input ${JSON.stringify(input)}`);
    return weight;
  };
}

/** Deterministic PRNG (mulberry32) so the statistical tests give the same verdict on every run. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Session ids as stock PHP mints them: php.ini-production (sid_length=26, 5 bits/char: [0-9a-v])
 * and PHP's built-in default (sid_length=32, 4 bits/char: hex), mixed.
 */
function sessionIds(count: number, seed: number): string[] {
  const next = prng(seed);
  const ids: string[] = [];
  for (let n = 0; n < count; n++) {
    const [alphabet, length] = n % 2 === 0 ? ['0123456789abcdefghijklmnopqrstuv', 26] : ['0123456789abcdef', 32];
    let id = '';
    for (let i = 0; i < length; i++) id += alphabet[Math.floor(next() * alphabet.length)];
    ids.push(id);
  }
  return ids;
}

const THREE = ['node-1', 'node-2', 'node-3'] as const;
const FOUR = ['node-1', 'node-2', 'node-3', 'node-4'] as const;

describe('placement with an injected hash (owners worked out by hand)', () => {
  const hash = tableHash({
    's1\0a': 3, 's1\0b': 7, 's1\0c': 5, // s1: b (7) > c (5) > a (3)
    's2\0a': 9, 's2\0b': 1, 's2\0c': 4, // s2: a (9) > c (4) > b (1)
  });

  it('ranks members heaviest first: master, backup, then fallbacks', () => {
    expect(rank('s1', ['a', 'b', 'c'], hash)).toEqual(['b', 'c', 'a']);
    expect(rank('s2', ['a', 'b', 'c'], hash)).toEqual(['a', 'c', 'b']);
  });

  it('owners are the first two of the ranking', () => {
    expect(owners('s1', ['a', 'b', 'c'], hash)).toEqual({ master: 'b', backup: 'c' });
    expect(owners('s2', ['a', 'b', 'c'], hash)).toEqual({ master: 'a', backup: 'c' });
  });

  it('the order of the member list does not matter', () => {
    for (const members of [['c', 'b', 'a'], ['b', 'a', 'c'], ['a', 'c', 'b']]) {
      expect(rank('s1', members, hash)).toEqual(['b', 'c', 'a']);
      expect(owners('s1', members, hash)).toEqual({ master: 'b', backup: 'c' });
    }
  });

  it('a dead master: the backup takes over and the next candidate becomes backup', () => {
    expect(owners('s1', ['a', 'c'], hash)).toEqual({ master: 'c', backup: 'a' });
    expect(owners('s1', ['a', 'b'], hash)).toEqual({ master: 'b', backup: 'a' });
  });

  it('hashes exactly routingKey + "\\0" + member', () => {
    const seen: string[] = [];
    owners('k', ['x', 'yy'], (input) => {
      seen.push(input);
      return input.length;
    });
    expect(seen).toEqual(['k\0x', 'k\0yy']);
  });

  it('breaks ties by member id, lower first, whatever the input order', () => {
    const flat: PlacementHash = () => 42;
    expect(rank('k', ['n3', 'n1', 'n2'], flat)).toEqual(['n1', 'n2', 'n3']);
    expect(owners('k', ['n3', 'n2', 'n1'], flat)).toEqual({ master: 'n1', backup: 'n2' });
    // A tie only between the runners-up.
    const h = tableHash({ 'k\0a': 1, 'k\0b': 5, 'k\0c': 5 });
    expect(rank('k', ['c', 'b', 'a'], h)).toEqual(['b', 'c', 'a']);
    expect(owners('k', ['c', 'a', 'b'], h)).toEqual({ master: 'b', backup: 'c' });
  });

  it('compares bigint weights, also beyond 2^53, and mixed with numbers', () => {
    const h = tableHash({
      'k\0a': (1n << 63n) + 1n,
      'k\0b': 1n << 63n,
      'k\0c': 2 ** 52,
    });
    expect(rank('k', ['c', 'b', 'a'], h)).toEqual(['a', 'b', 'c']);
    expect(owners('k', ['c', 'b', 'a'], h)).toEqual({ master: 'a', backup: 'b' });
    const tie = tableHash({ 'k\0a': 7n, 'k\0b': 7 });
    expect(rank('k', ['b', 'a'], tie)).toEqual(['a', 'b']);
  });

  it('no members, one member', () => {
    expect(rank('k', [])).toEqual([]);
    expect(owners('k', [])).toEqual({ master: null, backup: null });
    expect(owners('k', [], () => 1)).toEqual({ master: null, backup: null });
    expect(rank('k', ['solo'])).toEqual(['solo']);
    expect(owners('k', ['solo'])).toEqual({ master: 'solo', backup: null });
  });

  it('a duplicated member is listed once and is never its own backup', () => {
    const h = tableHash({ 'k\0a': 9, 'k\0b': 1 });
    expect(rank('k', ['a', 'b', 'a'], h)).toEqual(['a', 'b']);
    expect(owners('k', ['a', 'a', 'b'], h)).toEqual({ master: 'a', backup: 'b' });
    expect(owners('k', ['b', 'a', 'a'], h)).toEqual({ master: 'a', backup: 'b' });
    expect(owners('k', ['a', 'a'], h)).toEqual({ master: 'a', backup: null });
    expect(owners('k', ['solo', 'solo'])).toEqual({ master: 'solo', backup: null });
    expect(rank('k', ['solo', 'solo'])).toEqual(['solo']);
  });
});

// ---------------------------------------------------------------------------------------------

const MASK64 = (1n << 64n) - 1n;

/** FNV-1a 64 and murmur3 fmix64 written the obvious way, in BigInt: the reference for the fast path. */
function referenceHash(input: string): number {
  let h = 0xcbf29ce484222325n;
  for (let i = 0; i < input.length; i++) {
    h ^= BigInt(input.charCodeAt(i));
    h = (h * 0x100000001b3n) & MASK64;
  }
  h ^= h >> 33n;
  h = (h * 0xff51afd7ed558ccdn) & MASK64;
  h ^= h >> 33n;
  h = (h * 0xc4ceb9fe1a85ec53n) & MASK64;
  h ^= h >> 33n;
  return Number(h >> 11n);
}

describe('the default hash', () => {
  it('is FNV-1a 64 + fmix64, top 53 bits (BigInt reference, FNV test vectors)', () => {
    // Published FNV-1a 64 vectors: '' -> cbf29ce484222325, 'a' -> af63dc4c8601ec8c, 'foobar' -> 85944171f73967e8;
    // the expected weights were also computed independently (Python) from those FNV values.
    expect(defaultHash('')).toBe(8437669077406501);
    expect(defaultHash('a')).toBe(4596324399134681);
    expect(defaultHash('foobar')).toBe(1552798871476780);
    expect(defaultHash('abc\0node-1')).toBe(5153940457208237);
    const next = prng(7);
    for (let n = 0; n < 2000; n++) {
      let s = '';
      const length = Math.floor(next() * 40);
      for (let i = 0; i < length; i++) s += String.fromCharCode(Math.floor(next() * 256)); // any latin1 byte
      expect(defaultHash(s)).toBe(referenceHash(s));
    }
  });

  it('stays below 2^53, so weights are exact numbers', () => {
    for (const id of sessionIds(1000, 3)) {
      const w = defaultHash(id);
      expect(Number.isSafeInteger(w) && w >= 0).toBe(true);
    }
  });

  it('the per-request fast path gives the same ranking as hashing key + "\\0" + member', () => {
    const slowPath: PlacementHash = (input) => defaultHash(input); // not === defaultHash: forces concatenation
    for (const id of sessionIds(2000, 11)) {
      expect(rank(id, FOUR)).toEqual(rank(id, FOUR, slowPath));
      expect(rank(id, FOUR, defaultHash)).toEqual(rank(id, FOUR, slowPath));
      expect(owners(id, FOUR)).toEqual(owners(id, FOUR, slowPath));
      const r = rank(id, FOUR);
      expect(owners(id, FOUR)).toEqual({ master: r[0], backup: r[1] });
    }
  });

  it('is pinned: every node and every version must place alike (changing it moves every session)', () => {
    expect(rank('abc', FOUR)).toEqual(['node-3', 'node-4', 'node-1', 'node-2']);
    expect(rank('k3f9a0c1b2d4e5f60718293a4b5c6d7e', FOUR)).toEqual(['node-2', 'node-3', 'node-4', 'node-1']);
    expect(rank('memc.sess.key.x', FOUR)).toEqual(['node-4', 'node-3', 'node-1', 'node-2']);
  });

  it('is deterministic and independent of member order', () => {
    const ids = sessionIds(2000, 5);
    const first = ids.map((id) => owners(id, THREE));
    const shuffled = ['node-3', 'node-1', 'node-2'];
    expect(ids.map((id) => owners(id, THREE))).toEqual(first);
    expect(ids.map((id) => owners(id, shuffled))).toEqual(first);
  });
});

describe('membership changes move only what must move (default hash, 10,000 keys)', () => {
  const ids = sessionIds(10_000, 42);

  it.each(FOUR.map((m) => [m]))('removing %s', (removed) => {
    const remaining = FOUR.filter((m) => m !== removed);
    let moved = 0;
    for (const id of ids) {
      const before = rank(id, FOUR);
      const after = owners(id, remaining);
      if (before[0] !== removed && before[1] !== removed) {
        expect(after).toEqual({ master: before[0], backup: before[1] });
      } else {
        moved++;
        // The survivors keep their relative order: the dead owner's place goes to the next candidate.
        const survivors = before.filter((m) => m !== removed);
        expect(after).toEqual({ master: survivors[0], backup: survivors[1] });
      }
    }
    // The removed node held a master or backup copy of about 2/4 of the keys.
    expect(moved / ids.length).toBeGreaterThan(0.46);
    expect(moved / ids.length).toBeLessThan(0.54);
  });

  it('adding a fourth node moves about 1/4 of masters, all of them to the new node', () => {
    let mastersMoved = 0;
    for (const id of ids) {
      const before = owners(id, THREE);
      const after = owners(id, FOUR);
      if (after.master !== before.master) {
        mastersMoved++;
        expect(after.master).toBe('node-4');
        expect(after.backup).toBe(before.master); // the old master is the new node's runner-up
      }
      if (after.master !== 'node-4' && after.backup !== 'node-4') expect(after).toEqual(before);
    }
    expect(mastersMoved / ids.length).toBeGreaterThan(0.23);
    expect(mastersMoved / ids.length).toBeLessThan(0.27);
  });

  it('adding a node to five moves about 1/6 of masters', () => {
    const five = ['a', 'b', 'c', 'd', 'e'];
    const six = [...five, 'f'];
    const moved = ids.filter((id) => owners(id, five).master !== owners(id, six).master).length;
    expect(Math.abs(moved / ids.length - 1 / 6)).toBeLessThan(0.02);
  });
});

describe('balance across 3 nodes (default hash, 30,000 session ids)', () => {
  // Expected 10,000 masters per node; one standard deviation is ~82 (0.8%), so ±3% is ~3.7 sigma.
  const cases: Array<[string, string[], string[]]> = [
    ['random PHP session ids, node-N names', sessionIds(30_000, 1), [...THREE]],
    ['random PHP session ids, host:port names', sessionIds(30_000, 2), ['10.0.0.1:11311', '10.0.0.2:11311', '10.0.0.3:11311']],
    ['sequential keys (FNV\'s weak avalanche case)', Array.from({ length: 30_000 }, (_, i) => `sess-${i}`), [...THREE]],
  ];

  it.each(cases)('%s', (_name, ids, members) => {
    const masters = new Map<string, number>();
    const backups = new Map<string, number>();
    const pairs = new Map<string, number>();
    for (const id of ids) {
      const { master, backup } = owners(id, members);
      if (master === null || backup === null || backup === master) throw new Error(`bad owners for ${id}`);
      masters.set(master!, (masters.get(master!) ?? 0) + 1);
      backups.set(backup!, (backups.get(backup!) ?? 0) + 1);
      pairs.set(`${master}>${backup}`, (pairs.get(`${master}>${backup}`) ?? 0) + 1);
    }
    for (const m of members) {
      expect(Math.abs(masters.get(m)! / 10_000 - 1)).toBeLessThan(0.03);
      expect(Math.abs(backups.get(m)! / 10_000 - 1)).toBeLessThan(0.03);
    }
    // Every ordered (master, backup) pair gets ~1/6: when a node dies its load spreads evenly.
    expect(pairs.size).toBe(6);
    for (const count of pairs.values()) expect(Math.abs(count / 5_000 - 1)).toBeLessThan(0.05);
  });
});

describe('the backup is never the master', () => {
  it('over many keys and member counts', () => {
    const ids = sessionIds(3000, 9);
    for (let n = 1; n <= 7; n++) {
      const members = Array.from({ length: n }, (_, i) => `node-${i + 1}`);
      for (const id of ids) {
        const { master, backup } = owners(id, members);
        // Plain checks in the hot loop (expect() per key is slow); the message names the key.
        if (master === null) throw new Error(`no master for ${id}`);
        if (n === 1 ? backup !== null : backup === null || backup === master) {
          throw new Error(`bad backup ${backup} (master ${master}) for ${id} over ${n} members`);
        }
      }
    }
  });
});
