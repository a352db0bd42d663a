/**
 * Settings: defaults < config file < flags, and every bad value reported with the flag
 * (e.g. --max-item-size) or the file's key that gave it.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULTS, FLAG_NAMES, parseEndpoint, parseSize, readConfigFile, resolveSettings, type RawSettings } from '../src/config.js';
import { ConfigError } from '../src/errors.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

/** The ConfigError that `run` throws (fails if it throws something else or nothing). */
function configError(run: () => unknown): ConfigError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).code).toBe('ERR_CONFIG');
    return error as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('parseSize', () => {
  it('reads bytes and binary units, in any case, with spaces around', () => {
    const cases: Array<[unknown, number]> = [
      ['1048576', 1048576], ['1', 1], ['100b', 100], ['512k', 512 * KiB], ['512KB', 512 * KiB], ['2KiB', 2 * KiB],
      ['64m', 64 * MiB], ['64MiB', 64 * MiB], ['3Mb', 3 * MiB], ['1g', GiB], ['2GB', 2 * GiB], ['1gib', GiB],
      [' 8 m ', 8 * MiB], [4096, 4096],
    ];
    for (const [value, expected] of cases) expect(parseSize(value, '--max-item-size'), String(value)).toBe(expected);
  });

  it('refuses anything else, naming the flag', () => {
    for (const value of ['', 'abc', '0', '0k', '-1', '1.5m', '10x', '1 t', 'm', 0, -5, 1.5, Number.NaN, null, true, {}]) {
      const error = configError(() => parseSize(value, '--max-item-size'));
      expect(error.message, String(value)).toMatch(/^--max-item-size: ".*" is not a size; use bytes or a unit, e\.g\. 1048576, 512k, 64m, 1g$/);
    }
    expect(configError(() => parseSize('12 parsecs', '--memory-limit')).message).toContain('--memory-limit: "12 parsecs" is not a size');
  });
});

describe('parseEndpoint', () => {
  it('reads HOST:PORT, [v6]:PORT and :PORT', () => {
    expect(parseEndpoint('127.0.0.1:11211', '--listen')).toEqual({ host: '127.0.0.1', port: 11211 });
    expect(parseEndpoint('localhost:0', '--listen')).toEqual({ host: 'localhost', port: 0 });
    expect(parseEndpoint('[::1]:11212', '--listen')).toEqual({ host: '::1', port: 11212 });
    expect(parseEndpoint(':11211', '--listen')).toEqual({ host: '0.0.0.0', port: 11211 });
    expect(parseEndpoint('10.0.0.1:65535', '--listen')).toEqual({ host: '10.0.0.1', port: 65535 });
  });

  it('refuses anything else, naming the flag', () => {
    for (const value of ['localhost', '127.0.0.1', '127.0.0.1:', 'host:abc', 'host:65536', 'host:123456', '::1:11211', '[::1]', '']) {
      const error = configError(() => parseEndpoint(value, '--listen'));
      expect(error.message).toBe(`--listen: "${value}" is not HOST:PORT, e.g. 127.0.0.1:11211 (port 0 picks a free port)`);
    }
  });

  it('refuses a value that is not a string (a JSON number, say)', () => {
    for (const value of [11211, null, { host: 'a', port: 1 }]) {
      expect(configError(() => parseEndpoint(value, '--listen')).message).toBe('--listen: expected a "HOST:PORT" string, e.g. "127.0.0.1:11211"');
    }
  });
});

describe('resolveSettings', () => {
  it('gives the defaults when nothing is set', () => {
    expect(resolveSettings({}, {})).toEqual(DEFAULTS);
    expect(DEFAULTS).toEqual({
      listen: { host: '127.0.0.1', port: 11211 }, socket: null, socketMode: 0o660, maxItemSize: MiB,
      memoryLimit: 1024 * MiB, maxConnections: 1024, logLevel: 'info',
    });
  });

  it('file settings override defaults, flags override the file', () => {
    const file: RawSettings = {
      listen: '0.0.0.0:1', maxItemSize: '2m', memoryLimit: 512 * MiB, logLevel: 'debug', socket: '/run/sc.sock', socketMode: '0600',
    };
    const flags: RawSettings = { listen: '127.0.0.1:2', maxItemSize: '4m', maxConnections: '10', socketMode: undefined };
    expect(resolveSettings(file, flags)).toEqual({
      listen: { host: '127.0.0.1', port: 2 }, socket: '/run/sc.sock', socketMode: 0o600, maxItemSize: 4 * MiB,
      memoryLimit: 512 * MiB, maxConnections: 10, logLevel: 'debug',
    });
  });

  it('reads each setting from its flag\'s string', () => {
    expect(resolveSettings({}, {
      listen: '[::]:11311', socket: '/tmp/x.sock', socketMode: '640', maxItemSize: '128k', memoryLimit: '1g',
      maxConnections: ' 50 ', logLevel: 'silent',
    })).toEqual({
      listen: { host: '::', port: 11311 }, socket: '/tmp/x.sock', socketMode: 0o640, maxItemSize: 128 * KiB,
      memoryLimit: GiB, maxConnections: 50, logLevel: 'silent',
    });
  });

  it('an empty socket path means no socket; a JSON number file mode is read as the octal digits written', () => {
    expect(resolveSettings({ socket: '/a.sock', socketMode: 644 }, { socket: '' })).toMatchObject({ socket: null, socketMode: 0o644 });
    expect(resolveSettings({ socketMode: 660 }, {}).socketMode).toBe(0o660);
    expect(resolveSettings({ socket: null }, {}).socket).toBeNull();
  });

  it('a bad flag value names the flag', () => {
    const cases: Array<[keyof RawSettings & string, string, string]> = [
      ['listen', 'nowhere', '--listen: "nowhere" is not HOST:PORT'],
      ['maxItemSize', 'big', '--max-item-size: "big" is not a size'],
      ['memoryLimit', '0', '--memory-limit: "0" is not a size'],
      ['maxConnections', '0', '--max-connections: "0" is not a whole number of at least 1'],
      ['maxConnections', 'many', '--max-connections: "many" is not a whole number of at least 1'],
      ['maxConnections', '1.5', '--max-connections: "1.5" is not a whole number of at least 1'],
      ['socketMode', '999', '--socket-mode: "999" is not an octal file mode, e.g. 0660'],
      ['socketMode', 'rw-rw----', '--socket-mode: "rw-rw----" is not an octal file mode'],
      ['logLevel', 'loud', '--log-level: "loud" is not a log level; use one of fatal, error, warn, info, debug, trace, silent'],
    ];
    for (const [key, value, message] of cases) {
      expect(FLAG_NAMES[key as keyof typeof FLAG_NAMES]).toBe(message.slice(0, message.indexOf(':')));
      expect(configError(() => resolveSettings({}, { [key]: value })).message, `${key}=${value}`).toContain(message);
    }
  });

  it('a bad file value names the file and the key', () => {
    const cases: Array<[string, unknown, string]> = [
      ['listen', 11211, '/etc/sc.json: "listen": expected a "HOST:PORT" string'],
      ['listen', 'nowhere', '/etc/sc.json: "listen": "nowhere" is not HOST:PORT'],
      ['maxItemSize', '1.5m', '/etc/sc.json: "maxItemSize": "1.5m" is not a size'],
      ['memoryLimit', -1, '/etc/sc.json: "memoryLimit": "-1" is not a size'],
      ['maxConnections', 0, '/etc/sc.json: "maxConnections": "0" is not a whole number of at least 1'],
      ['socket', 5, '/etc/sc.json: "socket": expected a file path'],
      ['socketMode', '0888', '/etc/sc.json: "socketMode": "0888" is not an octal file mode'],
      ['socketMode', 888, '/etc/sc.json: "socketMode": "888" is not an octal file mode'],
      ['logLevel', 3, '/etc/sc.json: "logLevel": "3" is not a log level'],
    ];
    for (const [key, value, message] of cases) {
      expect(configError(() => resolveSettings({ [key]: value }, {}, '/etc/sc.json')).message, key).toContain(message);
    }
    expect(configError(() => resolveSettings({ maxItemSize: 'x' }, {})).message).toContain('config file: "maxItemSize": "x" is not a size');
  });
});

describe('item size bounds (memcached: -I at least 1 KiB and at most half of -m)', () => {
  it('accepts the bounds themselves', () => {
    expect(resolveSettings({}, { maxItemSize: '1024' }).maxItemSize).toBe(1024);
    expect(resolveSettings({}, { maxItemSize: '8m', memoryLimit: '16m' })).toMatchObject({ maxItemSize: 8 * MiB, memoryLimit: 16 * MiB });
  });

  it('refuses an item size below 1 KiB, naming --max-item-size', () => {
    expect(configError(() => resolveSettings({}, { maxItemSize: '1023' })).message).toBe('--max-item-size (maxItemSize): 1023 is below the 1024-byte minimum');
  });

  it('refuses an item size over half the memory limit, naming both flags', () => {
    expect(configError(() => resolveSettings({ memoryLimit: '16m' }, { maxItemSize: '9m' })).message).toBe(
      `--max-item-size (maxItemSize): ${9 * MiB} is more than half of --memory-limit (memoryLimit, ${16 * MiB}); raise the memory limit or lower the item size`,
    );
    // the default item size (1 MiB) against a small limit
    expect(configError(() => resolveSettings({}, { memoryLimit: '1m' })).message).toContain('is more than half of --memory-limit (memoryLimit');
  });
});

describe('readConfigFile', () => {
  const dir = mkdtempSync(join(tmpdir(), 'session-cluster-config-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, text: string) => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };

  it('returns the raw settings of a JSON object, which resolveSettings then reads', () => {
    const path = file('good.json', JSON.stringify({ listen: ':11300', maxItemSize: '2m', maxConnections: 20 }));
    const raw = readConfigFile(path);
    expect(raw).toEqual({ listen: ':11300', maxItemSize: '2m', maxConnections: 20 });
    expect(resolveSettings(raw, { maxConnections: '30' }, path)).toMatchObject({
      listen: { host: '0.0.0.0', port: 11300 }, maxItemSize: 2 * MiB, maxConnections: 30,
    });
  });

  it('a missing file names --config', () => {
    const path = join(dir, 'missing.json');
    expect(configError(() => readConfigFile(path)).message).toMatch(new RegExp(`^--config: cannot read ${path}: .*ENOENT`));
  });

  it('bad JSON names --config and the file', () => {
    const path = file('bad.json', '{ "listen": ');
    expect(configError(() => readConfigFile(path)).message).toMatch(new RegExp(`^--config: ${path} is not valid JSON: `));
  });

  it('JSON that is not an object names --config and the file', () => {
    for (const [name, text] of [['array.json', '[1]'], ['null.json', 'null'], ['number.json', '3'], ['string.json', '"x"']]) {
      const path = file(name!, text!);
      expect(configError(() => readConfigFile(path)).message).toBe(`--config: ${path} must hold a JSON object of settings`);
    }
  });

  it('an unknown key names it and lists the known ones', () => {
    const path = file('unknown.json', JSON.stringify({ listen: ':1', maxItemSzie: '1m' }));
    expect(configError(() => readConfigFile(path)).message).toBe(
      `--config: ${path}: unknown setting "maxItemSzie"; known settings: listen, socket, socketMode, maxItemSize, memoryLimit, maxConnections, logLevel`,
    );
  });
});
