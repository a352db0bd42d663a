/**
 * Client-port security that needs no daemon: the --allow list (CIDR blocks, IPv4-mapped
 * addresses) and the warning a daemon logs when its client port is open beyond this machine.
 * The daemons are in integration/client-security.test.ts.
 */
import { describe, expect, it } from 'vitest';
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
    ({ listen: { host, port: 11211 }, allow: null, disableFlush: false, disableCachedump: false, ...extra });

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
