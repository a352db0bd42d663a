/**
 * Reading PHP session data back (src/cli/php-session.ts): both text serialize handlers, with the
 * values real PHP 8.2 writes (nested arrays, objects, floats, booleans, null, multi-byte strings),
 * igbinary and garbage named and not decoded, where each `php` variable ends, and --where paths.
 */
import { describe, expect, it } from 'vitest';
import { candidateKeys } from '../src/cli/sessions.js';
import { decodeSession, hexDump, matches, parseWhere, valueEnd } from '../src/cli/php-session.js';

const decode = (text: string) => decodeSession(Buffer.from(text, 'utf8'));

describe('decodeSession', () => {
  it('the php handler: name|value pairs, nested arrays, objects, scalars and multi-byte strings', () => {
    // What PHP 8.2 writes for $_SESSION = ['user_id' => 42, 'name' => 'zoë', 'ok' => true, 'none' => null,
    // 'ratio' => 0.5, 'auth' => ['user' => ['id' => 42]], 'o' => (object) ['a' => 1]]
    const data = 'user_id|i:42;name|s:4:"zoë";ok|b:1;none|N;ratio|d:0.5;auth|a:1:{s:4:"user";a:1:{s:2:"id";i:42;}}o|O:8:"stdClass":1:{s:1:"a";i:1;}';
    expect(decode(data)).toEqual({
      format: 'php',
      data: { user_id: 42, name: 'zoë', ok: true, none: null, ratio: 0.5, auth: { user: { id: 42 } }, o: { __PHP_Incomplete_Class_Name: 'stdClass', a: 1 } },
    });
  });

  it('the php_serialize handler: one serialized array', () => {
    expect(decode('a:2:{s:7:"user_id";i:42;s:4:"cart";a:2:{s:5:"items";i:3;s:5:"total";d:9.5;}}')).toEqual({
      format: 'php_serialize', data: { user_id: 42, cart: { items: 3, total: 9.5 } },
    });
  });

  it('a php-handler session whose first variable is named "a" is not taken for php_serialize', () => {
    expect(decode('a|i:1;b|i:2;')).toEqual({ format: 'php', data: { a: 1, b: 2 } });
  });

  it('an empty session is an empty php session', () => {
    expect(decodeSession(Buffer.alloc(0))).toEqual({ format: 'php', data: {} });
  });

  it('igbinary and anything else are named, not decoded', () => {
    expect(decodeSession(Buffer.from([0, 0, 0, 2, 0x14, 0x01]))).toEqual({ format: 'igbinary', data: null });
    for (const garbage of ['hello', 'x|i:1', 'x|s:5:"ab";', 'a:1:{s:1:"a";}', '|i:1;', 'x|Z:1;']) expect(decode(garbage), garbage).toEqual({ format: 'unknown', data: null });
    expect(decodeSession(Buffer.from([0xff, 0x00, 0x7c]))).toEqual({ format: 'unknown', data: null });
  });

  it('valueEnd finds where each serialized value ends, byte lengths included', () => {
    const cases: Array<[string, number]> = [
      ['N;', 2], ['b:0;', 4], ['i:-12;', 6], ['d:1.5E+25;', 10], ['s:4:"zoë";', Buffer.byteLength('s:4:"zoë";')], ['a:0:{}', 6],
      ['a:1:{i:0;s:1:"x";}', 18], ['O:3:"Foo":0:{}', 14], ['C:3:"Foo":3:{abc}', 17], ['E:7:"Foo:Bar";', 14], ['r:1;', 4],
    ];
    for (const [text, end] of cases) expect(valueEnd(Buffer.from(`${text}rest`), 0), text).toBe(end);
    for (const bad of ['s:9:"short";', 'a:2:{i:0;i:1;}', 'x:1;', 'i1;', 's:99999999999:"x";']) expect(valueEnd(Buffer.from(bad), 0), bad).toBe(-1);
  });
});

describe('--where', () => {
  const data = { user_id: 42, name: 'alice', admin: true, banned: false, note: null, auth: { user: { id: '42' } } };

  it('parses PATH=VALUE, refusing what is not one', () => {
    expect(parseWhere('auth.user.id=42')).toEqual({ path: ['auth', 'user', 'id'], value: '42' });
    expect(parseWhere('note=')).toEqual({ path: ['note'], value: '' });
    expect(parseWhere('a=b=c')).toEqual({ path: ['a'], value: 'b=c' });
    for (const bad of ['', 'user_id', '=42', 'a..b=1', '.a=1', 'a.=1']) expect(parseWhere(bad), bad).toBeNull();
  });

  it('compares scalars as PHP prints them, and follows paths into arrays', () => {
    const where = (text: string) => matches(data, parseWhere(text)!);
    expect(where('user_id=42')).toBe(true);
    expect(where('user_id=420')).toBe(false);
    expect(where('name=alice')).toBe(true);
    expect(where('admin=true')).toBe(true);
    expect(where('admin=1')).toBe(true);
    expect(where('banned=false')).toBe(true);
    expect(where('note=null')).toBe(true);
    expect(where('auth.user.id=42')).toBe(true);
    expect(where('auth.user=42')).toBe(false);
    expect(where('auth.user.id.x=42')).toBe(false);
    expect(where('missing=42')).toBe(false);
    expect(where('toString=42')).toBe(false);
  });
});

describe('sessions: naming a session', () => {
  it('a bare id is tried as php-memcached\'s key, then pecl memcache\'s; a full key as given', () => {
    expect(candidateKeys('abc', 'memc.sess.key.').map((c) => [c.key, c.lockKey, c.extension])).toEqual([
      ['memc.sess.key.abc', 'memc.sess.key.lock.abc', 'php-memcached'], ['abc', 'abc.lock', 'pecl memcache'],
    ]);
    expect(candidateKeys('memc.sess.key.abc', 'memc.sess.key.')[0]).toMatchObject({ key: 'memc.sess.key.abc', id: 'abc' });
    expect(candidateKeys('abc', '').map((c) => c.key)).toEqual(['abc']);
  });

  it('refuses what cannot be a key, and lock keys', () => {
    for (const bad of ['', 'a b', 'a\tb', 'x'.repeat(251), 'memc.sess.key.lock.abc', 'abc.lock']) expect(() => candidateKeys(bad, 'memc.sess.key.'), bad).toThrow();
  });
});

describe('hexDump', () => {
  it('offsets, hex and printable text, cut after the limit', () => {
    const dump = hexDump(Buffer.from('hello\x00world, a longer line'), 16);
    expect(dump.split('\n')).toEqual([
      '00000000  68 65 6c 6c 6f 00 77 6f 72 6c 64 2c 20 61 20 6c  hello.world, a l',
      '... 10 more bytes',
    ]);
  });
});
