import { createHmac } from 'node:crypto';
import * as nodeCrypto from 'node:crypto';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  MAX_REVISION,
  MAX_SESSION_ID_LENGTH,
  RANDOM_BYTES,
  SESSION_ID_ALPHABET,
  mintSessionId,
  parseSessionId,
} from '../../src/cluster/placement/session-id.js';
import { ClusterView } from '../../src/cluster/cluster-view.js';
import { SessionIds } from '../../src/cluster/session-ids.js';
import { MemberState } from '../../src/cluster/types.js';
import { ReservedKeys } from '../../src/reserved-keys.js';

// The module's default CSPRNG is node:crypto's randomBytes; wrap it (still the real one) so tests can
// see that minting draws from it, and how much.
vi.mock('node:crypto', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:crypto')>();
  const randomBytes = vi.fn(actual.randomBytes);
  return { ...actual, default: { ...actual, randomBytes }, randomBytes };
});

const SECRET = 'a cluster secret of decent length';
const ID_CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-';
const ONLY_ALPHABET = /^[0-9a-zA-Z,-]+$/;

/** A fixed "CSPRNG": 0x00, 0x01, 0x02, ... so the random part is predictable. */
const counting = (size: number): Buffer => Buffer.from(Array.from({ length: size }, (_, i) => i & 0xff));

/** Reference encoder written independently of the module: a bit string cut into 6-bit groups. */
function refBits(bytes: Uint8Array, chars: number): string {
  const bits = Array.from(bytes, (b) => b.toString(2).padStart(8, '0')).join('').padEnd(chars * 6, '0');
  let out = '';
  for (let i = 0; i < chars; i++) out += SESSION_ID_ALPHABET[parseInt(bits.slice(i * 6, i * 6 + 6), 2)];
  return out;
}
function refNode(nodeId: string): string {
  return SESSION_ID_ALPHABET[nodeId.length - 1] + refBits(Buffer.from(nodeId, 'latin1'), Math.ceil((nodeId.length * 8) / 6));
}

/** PHP-style random id: `length` characters drawn uniformly from the alphabet. */
function phpStyleId(length: number): string {
  const bytes = nodeCrypto.randomBytes(length);
  let out = '';
  for (let i = 0; i < length; i++) out += SESSION_ID_ALPHABET[bytes[i]! & 63];
  return out;
}

afterEach(() => {
  vi.mocked(nodeCrypto.randomBytes).mockClear();
});

describe('session id format v1', () => {
  it('uses the documented alphabet order: 0-9, a-z, A-Z, ",", "-"', () => {
    expect(SESSION_ID_ALPHABET).toBe('0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ,-');
    expect(new Set(SESSION_ID_ALPHABET).size).toBe(64);
  });

  it('lays out version, master, backup, revision, random, tag exactly as documented', () => {
    const id = mintSessionId({ master: 'node-a', backup: 'b.2', revision: 0x123456, secret: SECRET, random: counting });
    const body =
      '1' +
      refNode('node-a') +
      refNode('b.2') +
      refBits(Uint8Array.of(0x12, 0x34, 0x56), 4) +
      refBits(counting(17), 22);
    const tag = refBits(createHmac('sha256', SECRET).update(body).digest().subarray(0, 6), 8);
    expect(id).toBe(body + tag);
    expect(id.length).toBe(1 + (1 + 8) + (1 + 4) + 4 + 22 + 8);
  });

  it('omits the backup field when there is no backup', () => {
    const id = mintSessionId({ master: 'n', backup: null, revision: 0, secret: SECRET, random: counting });
    const body = '1' + refNode('n') + '0000' + refBits(counting(17), 22);
    expect(id).toBe(body + refBits(createHmac('sha256', SECRET).update(body).digest().subarray(0, 6), 8));
    expect(id.length).toBe(38);
    expect(mintSessionId({ master: 'n', backup: '', revision: 0, secret: SECRET, random: counting })).toBe(id);
  });

  it('is pinned: v1 must never change meaning', () => {
    // Golden vector; if this fails, the v1 layout changed — add a v2 instead.
    const id = mintSessionId({ master: 'web-1', backup: 'web_2', revision: 7, secret: 'golden', random: counting });
    expect(id).toBe('14tSlybj44tSlynP8000700420Mg51ws82gEb30Qe3NstBsBwz5');
    expect(id).toBe(golden());
    expect(parseSessionId(id, 'golden')).toEqual({ master: 'web-1', backup: 'web_2', revision: 7 });
  });
});

/** The golden id, built by the reference encoder (kept apart from the module's code). */
function golden(): string {
  const body = '1' + refNode('web-1') + refNode('web_2') + refBits(Uint8Array.of(0, 0, 7), 4) + refBits(counting(17), 22);
  return body + refBits(createHmac('sha256', 'golden').update(body).digest().subarray(0, 6), 8);
}

describe('mintSessionId / parseSessionId round trip', () => {
  const cases: Array<[string, string, string | null, number]> = [
    ['every allowed character in master', ID_CHARS.slice(0, 64), ID_CHARS.slice(1, 65), 1],
    ['".", "_" and "-" alone', '.', '_', 2],
    ['"-" master', '-', '.-_', 3],
    ['1-char ids', 'a', 'Z', 0],
    ['64-char ids', 'x'.repeat(64), '-'.repeat(63) + '.', MAX_REVISION],
    ['64-char master, no backup', 'M'.repeat(64), null, MAX_REVISION],
    ['1-char master, no backup', '9', null, 0],
    ['1-char master, 64-char backup', '_', ID_CHARS.slice(1), 12345],
    ['typical', 'web-01.example', 'web-02.example', 42],
  ];
  it.each(cases)('%s', (_name, master, backup, revision) => {
    const id = mintSessionId({ master, backup, revision, secret: SECRET });
    expect(id).toMatch(ONLY_ALPHABET);
    expect(id.length).toBeLessThanOrEqual(MAX_SESSION_ID_LENGTH);
    expect(parseSessionId(id, SECRET)).toEqual({ master, backup, revision });
  });

  it('round-trips every node id length 1..64 and every allowed character at every offset', () => {
    for (let len = 1; len <= 64; len++) {
      for (let shift = 0; shift < ID_CHARS.length; shift += 7) {
        const rotated = ID_CHARS.slice(shift) + ID_CHARS.slice(0, shift);
        const master = rotated.slice(0, len);
        const backup = rotated.slice(len % 2, (len % 2) + len) + (len < 64 ? 'q' : '');
        const expected = backup === master ? null : backup;
        const id = mintSessionId({ master, backup: expected, revision: len * 1000 + shift, secret: SECRET });
        expect(id).toMatch(ONLY_ALPHABET);
        expect(parseSessionId(id, SECRET)).toEqual({ master, backup: expected, revision: len * 1000 + shift });
      }
    }
  });

  it('round-trips revisions 0, 1, 2^23, 2^24-1', () => {
    for (const revision of [0, 1, 2 ** 23, 2 ** 24 - 1]) {
      const id = mintSessionId({ master: 'a', backup: 'b', revision, secret: SECRET });
      expect(parseSessionId(id, SECRET)?.revision).toBe(revision);
    }
  });

  it('stays within PHP\'s limits at the longest: two 64-char node ids', () => {
    const id = mintSessionId({ master: 'm'.repeat(64), backup: 'b'.repeat(64), revision: MAX_REVISION, secret: SECRET });
    expect(id.length).toBe(209);
    expect(id).toMatch(ONLY_ALPHABET);
  });

  it('accepts a Buffer secret', () => {
    const secret = Buffer.from('binary\0secret\xff', 'latin1');
    const id = mintSessionId({ master: 'a', backup: 'b', revision: 1, secret });
    expect(parseSessionId(id, secret)).toEqual({ master: 'a', backup: 'b', revision: 1 });
  });
});

describe('mintSessionId refuses what it cannot encode', () => {
  const ok = { master: 'a', backup: 'b', revision: 0, secret: SECRET };
  it.each([
    ['empty master', { ...ok, master: '' }],
    ['65-char master', { ...ok, master: 'a'.repeat(65) }],
    ['master with ","', { ...ok, master: 'a,b' }],
    ['master with non-ASCII', { ...ok, master: 'é' }],
    ['65-char backup', { ...ok, backup: 'b'.repeat(65) }],
    ['backup with space', { ...ok, backup: 'b c' }],
    ['backup equal to master', { ...ok, backup: 'a' }],
    ['negative revision', { ...ok, revision: -1 }],
    ['revision 2^24', { ...ok, revision: 2 ** 24 }],
    ['fractional revision', { ...ok, revision: 1.5 }],
    ['NaN revision', { ...ok, revision: NaN }],
    ['empty secret', { ...ok, secret: '' }],
    ['short random', { ...ok, random: (n: number) => Buffer.alloc(n - 1) }],
  ])('%s', (_name, options) => {
    expect(() => mintSessionId(options)).toThrow(RangeError);
  });
});

describe('parseSessionId: null for anything the cluster did not mint', () => {
  const id = mintSessionId({ master: 'web-1', backup: 'web-2', revision: 99, secret: SECRET });
  const noBackup = mintSessionId({ master: 'solo', backup: null, revision: 5, secret: SECRET });

  it('parses the originals', () => {
    expect(parseSessionId(id, SECRET)).toEqual({ master: 'web-1', backup: 'web-2', revision: 99 });
    expect(parseSessionId(noBackup, SECRET)).toEqual({ master: 'solo', backup: null, revision: 5 });
  });

  it('a wrong secret', () => {
    for (const secret of ['another secret', SECRET + ' ', SECRET.slice(1), Buffer.from('x')]) {
      expect(parseSessionId(id, secret)).toBeNull();
      expect(parseSessionId(noBackup, secret)).toBeNull();
    }
  });

  it('an empty secret verifies nothing (and does not throw)', () => {
    expect(parseSessionId(id, '')).toBeNull();
    expect(parseSessionId(id, Buffer.alloc(0))).toBeNull();
    expect(parseSessionId(id, 42 as unknown as string)).toBeNull();
  });

  it('any single changed character, to every other character of the alphabet', () => {
    for (const original of [id, noBackup]) {
      for (let i = 0; i < original.length; i++) {
        for (const c of SESSION_ID_ALPHABET) {
          if (c === original[i]) continue;
          const changed = original.slice(0, i) + c + original.slice(i + 1);
          expect(parseSessionId(changed, SECRET), changed).toBeNull();
        }
      }
    }
  });

  it('any single deleted or inserted character', () => {
    for (const original of [id, noBackup]) {
      for (let i = 0; i <= original.length; i++) {
        if (i < original.length) expect(parseSessionId(original.slice(0, i) + original.slice(i + 1), SECRET)).toBeNull();
        for (const c of SESSION_ID_ALPHABET) {
          expect(parseSessionId(original.slice(0, i) + c + original.slice(i), SECRET)).toBeNull();
        }
      }
    }
  });

  it('truncation to any length', () => {
    for (const original of [id, noBackup]) {
      for (let n = 0; n < original.length; n++) expect(parseSessionId(original.slice(0, n), SECRET)).toBeNull();
    }
  });

  it('extension by any suffix', () => {
    for (const original of [id, noBackup]) {
      for (const c of SESSION_ID_ALPHABET) expect(parseSessionId(original + c, SECRET)).toBeNull();
      expect(parseSessionId(original + original, SECRET)).toBeNull();
      expect(parseSessionId(original + '0'.repeat(256 - original.length), SECRET)).toBeNull();
    }
  });

  it('100,000 PHP-style random ids of 26 and of 32 characters', () => {
    for (const length of [26, 32]) {
      for (let i = 0; i < 100_000; i++) expect(parseSessionId(phpStyleId(length), SECRET)).toBeNull();
    }
  });

  it('100,000 random strings shaped like a minted id (only the tag can tell)', () => {
    const prefix = id.slice(0, id.length - 34); // version, master, backup: structurally valid
    let structural = 0;
    for (let i = 0; i < 100_000; i++) {
      const candidate = prefix + phpStyleId(34);
      expect(parseSessionId(candidate, SECRET)).toBeNull();
      if (parseSessionId(candidate.slice(0, -8) + mintTagFor(candidate.slice(0, -8)), SECRET) !== null) structural++;
    }
    expect(structural).toBe(100_000); // the same strings with a correct tag do parse: the tag is what refused them
  });

  it('random strings of the alphabet, of every length up to 256 and starting with "1"', () => {
    for (let length = 0; length <= 300; length++) {
      for (let i = 0; i < 50; i++) {
        expect(parseSessionId(length === 0 ? '' : '1' + phpStyleId(length - 1), SECRET)).toBeNull();
      }
    }
  });

  it('never throws on arbitrary input', () => {
    const inputs: unknown[] = [
      '', '1', 'é'.repeat(40), '1' + '\u{1F600}'.repeat(40), id.slice(0, 5) + '\0' + id.slice(6), id.slice(0, -1) + 'é', ' ' + id, id + '\n',
      id.replace(/^1/, '2'), ' '.repeat(40), 'x'.repeat(100_000), undefined, null, 42, {}, [],
    ];
    for (const input of inputs) expect(parseSessionId(input as string, SECRET)).toBeNull();
  });

  it('a correctly tagged id with a bad node id, non-canonical padding or master = backup', () => {
    // Tagged with the real secret, so only the structure check can refuse them.
    const tagged = (body: string) => body + mintTagFor(body);
    const tail = '0000' + '0'.repeat(22);
    expect(parseSessionId(tagged('1' + refNode('ok') + tail), SECRET)).toEqual({ master: 'ok', backup: null, revision: 0 });
    expect(parseSessionId(tagged('1' + refNode('a,b') + tail), SECRET)).toBeNull(); // ',' not in node ids
    expect(parseSessionId(tagged('1' + refNode('a b') + tail), SECRET)).toBeNull();
    expect(parseSessionId(tagged('1' + '0' + 'o1' + tail), SECRET)).toBeNull(); // 'o' = 24: padding bits set
    expect(parseSessionId(tagged('1' + refNode('a') + refNode('a') + tail), SECRET)).toBeNull();
    expect(parseSessionId(tagged('1' + refNode('a') + refNode('b') + '0' + tail), SECRET)).toBeNull(); // one char too many
  });
});

function mintTagFor(body: string): string {
  return refBits(createHmac('sha256', SECRET).update(body).digest().subarray(0, 6), 8);
}

describe('randomness', () => {
  it('draws the random part from crypto.randomBytes, enough bytes for 132 bits', () => {
    const spy = vi.mocked(nodeCrypto.randomBytes);
    spy.mockClear();
    mintSessionId({ master: 'a', backup: 'b', revision: 0, secret: SECRET });
    expect(spy).toHaveBeenCalledTimes(1);
    expect(spy.mock.calls[0]![0]).toBeGreaterThanOrEqual(17);
    expect(RANDOM_BYTES).toBe(17);
  });

  it('puts the injected generator\'s bytes in the random part', () => {
    const random = vi.fn((size: number) => Buffer.alloc(size, 0xff));
    const id = mintSessionId({ master: 'a', backup: null, revision: 0, secret: SECRET, random });
    expect(random).toHaveBeenCalledWith(17);
    expect(id.slice(-30, -8)).toBe('-'.repeat(22)); // all 132 bits set
    const zeros = mintSessionId({ master: 'a', backup: null, revision: 0, secret: SECRET, random: (n) => Buffer.alloc(n) });
    expect(zeros.slice(-30, -8)).toBe('0'.repeat(22));
  });

  it('1,000,000 ids minted the way the daemon mints them: no repeats, every random part from the CSPRNG and different', () => {
    const spy = vi.mocked(nodeCrypto.randomBytes);
    // The daemon's path: `get __session_cluster__.mint` -> ReservedKeys -> SessionIds.mint -> mintSessionId.
    const view = new ClusterView('web-1', { secret: SECRET });
    view.update(['web-1', 'web-2', 'web-3'].map((id) => ({ id, peerAddress: `${id}:11212`, state: MemberState.Alive, incarnation: 1 })));
    const reserved = new ReservedKeys(new SessionIds({ view, secret: SECRET, loadOf: () => 0 }), 'web-1');
    const ids = new Set<string>();
    const randoms = new Set<string>();
    const n = 1_000_000;
    for (let i = 0; i < n; i++) {
      const id = reserved.answer('__session_cluster__.mint')!;
      ids.add(id);
      randoms.add(id.slice(-30, -8));
      if (i % 100_000 === 99_999) {
        expect(spy).toHaveBeenCalledTimes(100_000); // every id drew from the CSPRNG, the default one
        expect(spy).toHaveBeenLastCalledWith(RANDOM_BYTES);
        expect(parseSessionId(id, SECRET)).toMatchObject({ master: 'web-1' });
        spy.mockClear(); // keep the spy's call log small
      }
    }
    expect(ids.size).toBe(n);
    expect(randoms.size).toBe(n);
  }, 180_000);
});
