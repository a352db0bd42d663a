/**
 * Client-port security that needs no daemon: the --auth-file users, each connection's
 * authentication over the real executor (SASL PLAIN, memcached -Y's ascii credentials), the
 * --allow list (CIDR blocks, IPv4-mapped addresses) and the warning a daemon logs when its client
 * port is open beyond this machine.
 * The daemons are in integration/client-security.test.ts.
 */
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Executor } from '../src/command/executor.js';
import type { Command, Reply } from '../src/protocol/types.js';
import { StoreMode } from '../src/protocol/types.js';
import { AuthFile, ClientAuth } from '../src/security/client-auth.js';
import { MemoryStore } from '../src/store/memory-store.js';
import { resolveSettings } from '../src/config.js';
import { ConfigError } from '../src/errors.js';
import { AllowList, parseBlock } from '../src/security/allow-list.js';
import { warnIfExposed } from '../src/security/exposure.js';
import { capturedLog } from './support/captured-log.js';

describe('--allow', () => {
  it('takes CIDR blocks and single addresses, IPv4 and IPv6; refuses anything else with the example', () => {
    const allow = resolveSettings({}, { allow: '10.0.0.0/24, 192.168.1.5,fd00::/8' }).allow!;
    expect(allow.toString()).toBe('10.0.0.0/24,192.168.1.5/32,fd00::/8');
    for (const bad of ['10.0.0.0/33', 'web1', '10.0.0/24', '10.0.0.0/24/1', '']) {
      let error: unknown;
      try { resolveSettings({}, { allow: bad }); } catch (e) { error = e; }
      expect(error, bad).toBeInstanceOf(ConfigError);
      expect((error as Error).message, bad).toContain('--allow');
    }
    expect(resolveSettings({}, {}).allow).toBe(null);
    expect(resolveSettings({ allow: ['127.0.0.2/32'] }, {}).allow?.toString()).toBe('127.0.0.2/32');
  });

  it('allows the addresses inside its blocks only, whether the listener shows them as IPv4 or IPv4-mapped IPv6', () => {
    const allow = new AllowList([parseBlock('10.0.0.0/24')!, parseBlock('fd00::1')!]);
    expect(allow.allows('10.0.0.7')).toBe(true);
    expect(allow.allows('::ffff:10.0.0.7')).toBe(true);
    expect(allow.allows('10.0.1.7')).toBe(false);
    expect(allow.allows('fd00::1')).toBe(true);
    expect(allow.allows('fd00::2')).toBe(false);
    expect(allow.allows(undefined)).toBe(false);
  });
});

describe('the warning for an exposed client port', () => {
  const settings = (host: string, extra: Partial<{ allow: AllowList | null; disableFlush: boolean; disableCachedump: boolean }> = {}) =>
    ({ listen: { host, port: 11211 }, allow: null, authFile: null, disableFlush: false, disableCachedump: false, ...extra });

  it('is logged for a non-loopback address with no --allow, naming what is exposed', () => {
    const { log, lines } = capturedLog();
    warnIfExposed(settings('0.0.0.0'), log);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 40, listen: '0.0.0.0:11211' });
    expect(lines[0]!.msg).toContain('list every session id');
    expect(lines[0]!.msg).toContain('log everyone out (flush_all)');
    const guarded = capturedLog();
    warnIfExposed(settings('10.0.0.5', { disableFlush: true, disableCachedump: true }), guarded.log);
    expect(guarded.lines[0]!.msg).not.toContain('flush_all');
    expect(guarded.lines[0]!.msg).not.toContain('cachedump');
  });

  it('is not logged on loopback, or with an --allow list', () => {
    const { log, lines } = capturedLog();
    for (const host of ['127.0.0.1', '::1', 'localhost', '127.0.0.2']) warnIfExposed(settings(host), log);
    warnIfExposed(settings('0.0.0.0', { allow: new AllowList([parseBlock('10.0.0.0/8')!]) }), log);
    expect(lines).toEqual([]);
  });
});

function authFile(text: string, mode = 0o600): string {
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'session-cluster-auth-')), 'users');
  writeFileSync(file, text);
  chmodSync(file, mode);
  return file;
}

describe('--auth-file', () => {
  it('reads user:password lines, skipping blanks and comments; checks passwords', () => {
    const users = AuthFile.read(authFile('# web servers\nphp:s3cret:with:colons\n\nops:other\n'), '--auth-file');
    expect(users.verify('php', 's3cret:with:colons')).toBe(true);
    expect(users.verify('php', 's3cret')).toBe(false);
    expect(users.verify('ops', 'other')).toBe(true);
    expect(users.verify('nobody', 'other')).toBe(false);
  });

  it('refuses a file every user may read, one with no user, and a line that is not user:password', () => {
    expect(() => AuthFile.read(authFile('php:x\n', 0o644), '--auth-file')).toThrow(/readable by every user \(mode 0644\).*chmod 0600/);
    expect(() => AuthFile.read(authFile('# none\n'), '--auth-file')).toThrow(/names no user/);
    expect(() => AuthFile.read(authFile('php\n'), '--auth-file')).toThrow(/line 1 is not user:password/);
    expect(() => AuthFile.read('/nonexistent/users', '--auth-file')).toThrow(/cannot read \/nonexistent\/users: ENOENT/);
  });
});

describe('a connection\'s authentication', () => {
  function gate(protocol: 'ascii' | 'binary') {
    const store = new MemoryStore({ memoryLimit: 1 << 20, maxItemSize: 1 << 16 });
    const executor = new Executor({ store, version: 'test' });
    const { log, lines } = capturedLog();
    const auth = new ClientAuth(AuthFile.read(authFile('php:s3cret\n'), '--auth-file'), log);
    const run = auth.forConnection(protocol, '10.0.0.9').wrap((command) => executor.execute(command)) as (command: Command) => Reply | Promise<Reply>;
    return { auth, run, lines, store };
  }
  const plain = (user: string, password: string): Command => ({ kind: 'saslAuth', mechanism: 'PLAIN', data: Buffer.from(`\0${user}\0${password}`) });
  const get: Command = { kind: 'get', keys: ['k'], withCas: false };
  const set = (value: string): Command => ({ kind: 'store', mode: StoreMode.Set, key: 'k', flags: 0, exptime: 0, value: Buffer.from(value), cas: 0 });

  it('binary: every command before SASL AUTH is refused; a wrong password is refused late, counted and logged without it; the right one lets commands through', async () => {
    const { auth, run, lines } = gate('binary');
    expect(run(get)).toEqual({ kind: 'notAllowed', message: 'unauthenticated' });
    expect(run(set('x'))).toEqual({ kind: 'notAllowed', message: 'unauthenticated' });
    expect(run({ kind: 'saslList' })).toEqual({ kind: 'saslMechs', mechanisms: 'PLAIN' });
    const started = Date.now();
    expect(await run(plain('php', 'guess'))).toEqual({ kind: 'authFailed' });
    expect(await run(plain('php', 'guess2'))).toEqual({ kind: 'authFailed' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    expect(auth.counters).toMatchObject({ attempts: 2, failures: 2 });
    expect(lines.filter((l) => l.msg === 'client authentication failed')).toHaveLength(2);
    expect(JSON.stringify(lines)).not.toContain('guess');
    expect(await run(plain('php', 's3cret'))).toEqual({ kind: 'authenticated' });
    expect(run(set('x'))).toMatchObject({ kind: 'status' });
    expect(run(get)).toMatchObject({ kind: 'values', entries: [{ key: 'k' }] });
  });

  it('ascii: the first set carries "user password" (memcached -Y) and stores nothing; after it, sets are sets', async () => {
    const { run, store } = gate('ascii');
    expect(run(get)).toEqual({ kind: 'notAllowed', message: 'unauthenticated' });
    expect(await run(set('php wrong'))).toEqual({ kind: 'authFailed' });
    expect(await run(set('php s3cret'))).toEqual({ kind: 'authenticated' });
    expect(store.itemCount).toBe(0);
    expect(run(set('value'))).toMatchObject({ kind: 'status' });
    expect(store.peek('k', Date.now())?.value.toString()).toBe('value');
  });

  it('a failed attempt after a good one leaves the connection unauthenticated', async () => {
    const { run } = gate('binary');
    expect(await run(plain('php', 's3cret'))).toEqual({ kind: 'authenticated' });
    expect(await run(plain('php', 'nope'))).toEqual({ kind: 'authFailed' });
    expect(run(get)).toEqual({ kind: 'notAllowed', message: 'unauthenticated' });
  });
});
