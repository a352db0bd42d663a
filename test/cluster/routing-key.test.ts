import { describe, expect, it } from 'vitest';
import { DEFAULT_SESSION_PREFIX, routingKey } from '../../src/cluster/placement/routing-key.js';

// docs/architecture.md, "Routing key": a session and its lock keys must route together, whichever extension sent them.
const SID = 'k3f9a0c1b2d4e5f60718293a4b5c6d7e';

describe('routingKey: the four shapes of one session route together', () => {
  it.each([
    ['php-memcached session key', `memc.sess.key.${SID}`],
    ['php-memcached lock key', `memc.sess.key.lock.${SID}`],
    ['pecl memcache session key', SID],
    ['pecl memcache lock key', `${SID}.lock`],
  ])('%s -> the session id', (_name, key) => {
    expect(routingKey(key)).toBe(SID);
  });

  it('defaults to php-memcached\'s memcached.sess_prefix', () => {
    expect(DEFAULT_SESSION_PREFIX).toBe('memc.sess.key.');
    expect(routingKey(`memc.sess.key.${SID}`, DEFAULT_SESSION_PREFIX)).toBe(SID);
  });

  it('works for every character of PHP\'s session id alphabet [a-zA-Z0-9,-]', () => {
    const sid = 'aZ09,-' + 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789,-';
    for (const key of [`memc.sess.key.${sid}`, `memc.sess.key.lock.${sid}`, sid, `${sid}.lock`]) {
      expect(routingKey(key)).toBe(sid);
    }
  });
});

describe('routingKey: a configured prefix', () => {
  it('strips the configured prefix, not the default one', () => {
    expect(routingKey(`app1.${SID}`, 'app1.')).toBe(SID);
    expect(routingKey(`app1.lock.${SID}`, 'app1.')).toBe(SID);
    expect(routingKey(`memc.sess.key.${SID}`, 'app1.')).toBe(`memc.sess.key.${SID}`);
  });

  it('an empty prefix (memcached.sess_prefix="") makes a bare lock.<sid> a session lock', () => {
    expect(routingKey(`lock.${SID}`, '')).toBe(SID);
    expect(routingKey(SID, '')).toBe(SID);
    expect(routingKey(`${SID}.lock`, '')).toBe(SID);
  });

  it('strips .lock after a prefix too', () => {
    expect(routingKey(`memc.sess.key.${SID}.lock`)).toBe(SID);
  });
});

describe('routingKey: other keys route by themselves', () => {
  it.each([
    'foo',
    'user:42:profile',
    'lock.jobs', // lock. is only a session lock right after the session prefix
    'lock',
    'memc.sess.keyX', // not the prefix
    'memc.sess.ke',
    'MEMC.SESS.KEY.abc', // case-sensitive, like memcached keys
    'abc.LOCK',
    'abc.locked',
    'abc.lockx',
    'abclock',
    'abc-lock',
    'lock.', // unprefixed: not a lock key; and no .lock suffix
  ])('%j', (key) => {
    expect(routingKey(key)).toBe(key);
  });
});

describe('routingKey: edge cases (documented in routing-key.ts)', () => {
  it.each([
    ['', ''],
    ['memc.sess.key.', 'memc.sess.key.'],
    ['memc.sess.key.lock.', 'memc.sess.key.lock.'],
    ['.lock', '.lock'],
    ['memc.sess.key..lock', 'memc.sess.key..lock'],
    ['memc.sess.key.lock..lock', 'memc.sess.key.lock..lock'],
  ])('an empty remainder routes by the whole key: %j', (key, expected) => {
    expect(routingKey(key)).toBe(expected);
  });

  it('each step strips at most once', () => {
    expect(routingKey('abc.lock.lock')).toBe('abc.lock');
    expect(routingKey('memc.sess.key.lock.lock.abc')).toBe('lock.abc');
    expect(routingKey('memc.sess.key.memc.sess.key.abc')).toBe('memc.sess.key.abc');
  });

  it('the .lock suffix must lie after what the prefix steps stripped', () => {
    // prefix stripped leaves `lock`: neither `lock.` nor `.lock` applies.
    expect(routingKey('memc.sess.key.lock')).toBe('lock');
    expect(routingKey('memc.sess.key.lock.lock')).toBe('lock');
  });

  it('a key with both lock forms loses both', () => {
    expect(routingKey(`memc.sess.key.lock.${SID}.lock`)).toBe(SID);
  });

  it('keeps latin1 bytes as they are', () => {
    const raw = 'caf\u00e9\u00ff\u0080\u0000x';
    expect(routingKey(raw)).toBe(raw);
    expect(routingKey(`memc.sess.key.${raw}`)).toBe(raw);
    expect(routingKey(`${raw}.lock`)).toBe(raw);
    expect(routingKey(Buffer.from([0x80, 0xff, 0x2e, 0x6c, 0x6f, 0x63, 0x6b]).toString('latin1'))).toBe('\u0080\u00ff');
  });

  it('returns the very same string when nothing is stripped', () => {
    const key = 'plain-key';
    expect(routingKey(key)).toBe(key);
  });
});
