/**
 * The ascii protocol (memcached doc/protocol.txt) driven through the real Executor and
 * MemoryStore, with an injected clock. Every case runs in every feed mode (whole, one byte at a
 * time, random splits) and must give the very same bytes; expected replies were checked against
 * memcached 1.6.18 except where a comment says ours deliberately differs.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { MAX_GET_LINE_LENGTH, MAX_LINE_LENGTH } from '../src/protocol/ascii/ascii-protocol.js';
import { FeedResult, OUTPUT_HIGH_WATER } from '../src/protocol/handler.js';
import { StoreMode } from '../src/protocol/types.js';
import { ITEM_OVERHEAD_BYTES } from '../src/store/change.js';
import { FEED_MODES, feedChunks, feedLent } from './support/feed.js';
import { START_MS, START_SECONDS, VERSION, createRig, type Rig } from './support/rig.js';

const BAD_FORMAT = 'CLIENT_ERROR bad command line format\r\n';
const TOO_LARGE = 'SERVER_ERROR object too large for cache\r\n';
const BAD_CHUNK = 'CLIENT_ERROR bad data chunk\r\n';
const NON_NUMERIC = 'CLIENT_ERROR cannot increment or decrement non-numeric value\r\n';
const BAD_DELTA = 'CLIENT_ERROR invalid numeric delta argument\r\n';
const BAD_EXPTIME = 'CLIENT_ERROR invalid exptime argument\r\n';
const DELETE_USAGE = 'CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n';
const DAY = 24 * 60 * 60;
const MAX_ITEM = 1024;

const value = (key: string, flags: number, data: string, cas?: number) =>
  `VALUE ${key} ${flags} ${data.length}${cas === undefined ? '' : ` ${cas}`}\r\n${data}\r\nEND\r\n`;

describe.each(FEED_MODES)('ascii protocol, fed %s', (mode) => {
  let rig: Rig;

  beforeEach(() => {
    rig = createRig('ascii', mode, { maxItemSize: MAX_ITEM });
  });

  afterEach(() => {
    rig.executor.close();
    vi.useRealTimers();
  });

  /** Sends `request`; the reply must be exactly `expected` and the feed end with `result`. */
  function exchange(request: string | Buffer, expected: string, result = FeedResult.NeedMore): void {
    const outcome = rig.send(request);
    expect(outcome.text).toBe(expected);
    expect(outcome.result).toBe(result);
    expect(outcome.sawOutputFull).toBe(false);
  }

  describe('storage commands', () => {
    it('set stores a value that get returns with its flags', () => {
      exchange('set k 5 0 5\r\nhello\r\n', 'STORED\r\n');
      exchange('get k\r\n', value('k', 5, 'hello'));
    });

    it('set overwrites, and keeps any bytes of the value, "\\r\\n" and NUL included', () => {
      exchange('set k 0 0 3\r\nold\r\n', 'STORED\r\n');
      const data = Buffer.from([0x00, 0x0d, 0x0a, 0xff, 0x20, 0x0a]);
      exchange(Buffer.concat([Buffer.from('set k 1 0 6\r\n'), data, Buffer.from('\r\n')]), 'STORED\r\n');
      const reply = rig.send('get k\r\n');
      expect(reply.bytes).toEqual(Buffer.concat([Buffer.from('VALUE k 1 6\r\n'), data, Buffer.from('\r\nEND\r\n')]));
    });

    it('set takes an empty value and the largest flags', () => {
      exchange('set k 4294967295 0 0\r\n\r\n', 'STORED\r\n');
      exchange('get k\r\n', value('k', 4294967295, ''));
    });

    it('set takes a value of exactly the item size limit', () => {
      const data = 'v'.repeat(MAX_ITEM);
      exchange(`set k 0 0 ${MAX_ITEM}\r\n${data}\r\n`, 'STORED\r\n');
      exchange('get k\r\n', value('k', 0, data));
    });

    it('set ignores a sixth token that is not noreply, as memcached does', () => {
      exchange('set k 0 0 1 2\r\nx\r\n', 'STORED\r\n');
    });

    it('add stores only a missing key', () => {
      exchange('add k 1 0 1\r\na\r\n', 'STORED\r\n');
      exchange('add k 2 0 1\r\nb\r\n', 'NOT_STORED\r\n');
      exchange('get k\r\n', value('k', 1, 'a'));
    });

    it('replace stores only an existing key', () => {
      exchange('replace k 0 0 1\r\na\r\n', 'NOT_STORED\r\n');
      exchange('get k\r\n', 'END\r\n');
      exchange('set k 0 0 1\r\na\r\n', 'STORED\r\n');
      exchange('replace k 3 0 1\r\nb\r\n', 'STORED\r\n');
      exchange('get k\r\n', value('k', 3, 'b'));
    });

    it('append and prepend need an existing key', () => {
      exchange('append k 0 0 1\r\na\r\n', 'NOT_STORED\r\n');
      exchange('prepend k 0 0 1\r\na\r\n', 'NOT_STORED\r\n');
      exchange('get k\r\n', 'END\r\n');
    });

    it('append and prepend join the data and keep the item\'s flags and exptime', () => {
      exchange('set k 7 100 3\r\nmid\r\n', 'STORED\r\n');
      // flags 1/2 and exptime 0 ("never") are ignored (protocol.txt: append/prepend ignore them)
      exchange('append k 1 0 4\r\n-end\r\n', 'STORED\r\n');
      exchange('prepend k 2 0 6\r\nstart-\r\n', 'STORED\r\n');
      exchange('get k\r\n', value('k', 7, 'start-mid-end'));
      rig.advance(99_999);
      exchange('get k\r\n', value('k', 7, 'start-mid-end'));
      rig.advance(1);
      exchange('get k\r\n', 'END\r\n');
    });

    it('cas stores only when the unique still matches', () => {
      exchange('set k 0 0 1\r\na\r\n', 'STORED\r\n');
      exchange('gets k\r\n', value('k', 0, 'a', 1));
      exchange('cas k 0 0 1 2\r\nb\r\n', 'EXISTS\r\n');
      exchange('cas k 3 0 1 1\r\nb\r\n', 'STORED\r\n');
      exchange('gets k\r\n', value('k', 3, 'b', 2));
      exchange('cas k 0 0 1 1\r\nc\r\n', 'EXISTS\r\n');
      exchange('cas nope 0 0 1 1\r\nx\r\n', 'NOT_FOUND\r\n');
      exchange('get k\r\n', value('k', 3, 'b'));
    });

    it('every write gets a new cas unique', () => {
      exchange('set a 0 0 1\r\na\r\nset b 0 0 1\r\nb\r\nappend a 0 0 1\r\nx\r\n', 'STORED\r\nSTORED\r\nSTORED\r\n');
      exchange('gets a b\r\n', 'VALUE a 0 2 3\r\nax\r\nVALUE b 0 1 2\r\nb\r\nEND\r\n');
    });
  });

  describe('retrieval commands', () => {
    it('get of a missing key answers END', () => {
      exchange('get nope\r\n', 'END\r\n');
    });

    it('get of many keys answers the hits in the order asked, repeats included', () => {
      exchange('set a 1 0 2\r\naa\r\nset c 3 0 2\r\ncc\r\n', 'STORED\r\nSTORED\r\n');
      exchange('get a b c a\r\n', 'VALUE a 1 2\r\naa\r\nVALUE c 3 2\r\ncc\r\nVALUE a 1 2\r\naa\r\nEND\r\n');
      exchange('gets c b a\r\n', 'VALUE c 3 2 2\r\ncc\r\nVALUE a 1 2 1\r\naa\r\nEND\r\n');
    });

    it('accepts lines ending in a bare "\\n" and tokens separated by several spaces', () => {
      exchange('set k 0 0 1\nx\r\n', 'STORED\r\n');
      exchange('get   k  \n', value('k', 0, 'x'));
    });

    it('gat returns the value and sets a new exptime', () => {
      exchange('set k 2 10 1\r\nv\r\n', 'STORED\r\n');
      exchange('gat 100 k nope\r\n', value('k', 2, 'v'));
      rig.advance(50_000);
      exchange('get k\r\n', value('k', 2, 'v'));
      rig.advance(50_000);
      exchange('get k\r\n', 'END\r\n');
    });

    it('gats returns the cas unique, and gat with a negative exptime expires the item after returning it', () => {
      exchange('set k 0 0 1\r\nv\r\n', 'STORED\r\n');
      exchange('gats 0 k\r\n', value('k', 0, 'v', 1));
      exchange('gat -1 k\r\n', value('k', 0, 'v'));
      exchange('get k\r\n', 'END\r\n');
    });

    it('gat of a missing key answers END; a bad exptime or no arguments are errors', () => {
      exchange('gat 10 nope\r\n', 'END\r\n');
      // memcached answers a gat without keys with an empty result
      exchange('gat 10\r\n', 'END\r\n');
      exchange('gat abc k\r\n', BAD_EXPTIME);
      exchange('gat\r\n', 'ERROR\r\n');
      exchange('gats\r\n', 'ERROR\r\n');
    });
  });

  describe('delete, incr/decr, touch', () => {
    it('delete removes an item, with or without the legacy hold time of 0', () => {
      exchange('set a 0 0 1\r\na\r\nset b 0 0 1\r\nb\r\n', 'STORED\r\nSTORED\r\n');
      exchange('delete a\r\n', 'DELETED\r\n');
      exchange('delete a\r\n', 'NOT_FOUND\r\n');
      exchange('delete b 0\r\n', 'DELETED\r\n');
      exchange('get a b\r\n', 'END\r\n');
    });

    it('delete refuses a hold time other than 0 and a missing key', () => {
      exchange('set a 0 0 1\r\na\r\n', 'STORED\r\n');
      exchange('delete a 5\r\n', DELETE_USAGE);
      exchange('delete a 0 extra\r\n', DELETE_USAGE);
      exchange('delete\r\n', 'ERROR\r\n');
      exchange('delete a 0 noreply extra\r\n', 'ERROR\r\n');
      exchange('get a\r\n', value('a', 0, 'a'));
    });

    it('incr and decr change a decimal value; decr stops at 0, incr wraps at 2^64', () => {
      exchange('set n 42 0 2\r\n10\r\n', 'STORED\r\n');
      exchange('incr n 5\r\n', '15\r\n');
      exchange('decr n 20\r\n', '0\r\n');
      exchange('incr n 18446744073709551615\r\n', '18446744073709551615\r\n');
      exchange('incr n 2\r\n', '1\r\n');
      exchange('get n\r\n', value('n', 42, '1'));
    });

    it('incr lengthens the value when it gains a digit', () => {
      exchange('set n 0 0 2\r\n99\r\n', 'STORED\r\n');
      exchange('incr n 1\r\n', '100\r\n');
      exchange('gets n\r\n', value('n', 0, '100', 2));
    });

    it('incr and decr of a missing key answer NOT_FOUND and create nothing', () => {
      exchange('incr nope 1\r\n', 'NOT_FOUND\r\n');
      exchange('decr nope 1\r\n', 'NOT_FOUND\r\n');
      exchange('get nope\r\n', 'END\r\n');
    });

    it('incr and decr refuse a non-numeric value and a bad delta', () => {
      exchange('set t 0 0 3\r\nabc\r\nset n 0 0 1\r\n5\r\n', 'STORED\r\nSTORED\r\n');
      exchange('incr t 1\r\n', NON_NUMERIC);
      exchange('decr t 1\r\n', NON_NUMERIC);
      exchange('incr n -1\r\n', BAD_DELTA);
      exchange('incr n abc\r\n', BAD_DELTA);
      exchange('decr n 18446744073709551616\r\n', BAD_DELTA);
      exchange('incr n\r\n', 'ERROR\r\n');
      exchange('get n t\r\n', 'VALUE n 0 1\r\n5\r\nVALUE t 0 3\r\nabc\r\nEND\r\n');
    });

    it('touch sets a new exptime', () => {
      exchange('set k 0 10 1\r\nv\r\n', 'STORED\r\n');
      exchange('touch k 100\r\n', 'TOUCHED\r\n');
      rig.advance(99_999);
      exchange('get k\r\n', value('k', 0, 'v'));
      rig.advance(1);
      exchange('get k\r\n', 'END\r\n');
    });

    it('touch of a missing key, a bad exptime, or too few arguments', () => {
      exchange('touch nope 10\r\n', 'NOT_FOUND\r\n');
      exchange('touch k abc\r\n', BAD_EXPTIME);
      exchange('touch k\r\n', 'ERROR\r\n');
    });
  });

  describe('flush_all, version, verbosity, stats, quit', () => {
    it('flush_all invalidates every item', () => {
      exchange('set a 0 0 1\r\na\r\nset b 0 0 1\r\nb\r\n', 'STORED\r\nSTORED\r\n');
      exchange('flush_all\r\n', 'OK\r\n');
      exchange('get a b\r\n', 'END\r\n');
      exchange('set a 0 0 1\r\na\r\nflush_all 0\r\nget a\r\n', 'STORED\r\nOK\r\nEND\r\n');
    });

    it('flush_all with a delay invalidates items when the delay runs out; a later one replaces it', () => {
      vi.useFakeTimers();
      exchange('set a 0 0 1\r\na\r\n', 'STORED\r\n');
      exchange('flush_all 10\r\n', 'OK\r\n');
      // memcached ignores a word after the delay that is not noreply
      exchange('flush_all 10 foo\r\n', 'OK\r\n');
      vi.advanceTimersByTime(9_999);
      exchange('get a\r\n', value('a', 0, 'a'));
      vi.advanceTimersByTime(1);
      exchange('get a\r\n', 'END\r\n');

      exchange('set a 0 0 1\r\na\r\n', 'STORED\r\n');
      exchange('flush_all 10\r\n', 'OK\r\n');
      exchange('flush_all 20\r\n', 'OK\r\n');
      vi.advanceTimersByTime(10_000);
      exchange('get a\r\n', value('a', 0, 'a'));
      vi.advanceTimersByTime(10_000);
      exchange('get a\r\n', 'END\r\n');
    });

    it('flush_all refuses a delay that is not a number, and more than two arguments', () => {
      exchange('set a 0 0 1\r\na\r\n', 'STORED\r\n');
      exchange('flush_all abc\r\n', BAD_FORMAT);
      exchange('flush_all 1 noreply extra\r\n', 'ERROR\r\n');
      exchange('get a\r\n', value('a', 0, 'a'));
    });

    it('version answers the wire version', () => {
      exchange('version\r\n', `VERSION ${VERSION}\r\n`);
    });

    it('verbosity answers OK and is reported by stats settings', () => {
      exchange('verbosity 1\r\n', 'OK\r\n');
      expect(rig.executor.verbosity).toBe(1);
      expect(rig.send('stats settings\r\n').text).toContain('STAT verbosity 1\r\n');
      exchange('verbosity\r\n', 'ERROR\r\n');
      exchange('verbosity 1 2 3\r\n', 'ERROR\r\n');
      exchange('verbosity abc\r\n', 'CLIENT_ERROR bad command line format\r\n');
    });

    it('stats answers memcached\'s general statistics', () => {
      exchange('set a 0 0 1\r\na\r\nget a b\r\n', `STORED\r\n${value('a', 0, 'a')}`);
      rig.advance(2_000);
      const outcome = rig.send('stats\r\n');
      expect(outcome.result).toBe(FeedResult.NeedMore);
      expect(outcome.text.endsWith('\r\nEND\r\n')).toBe(true);
      const lines = outcome.text.slice(0, -'END\r\n'.length).split('\r\n').slice(0, -1);
      const stats = new Map<string, string>();
      for (const line of lines) {
        const match = /^STAT (\S+) (.*)$/.exec(line);
        expect(match, line).not.toBeNull();
        stats.set(match![1]!, match![2]!);
      }
      expect(stats.size).toBe(lines.length);
      expect([...stats.keys()].slice(0, 4)).toEqual(['pid', 'uptime', 'time', 'version']);
      expect(Object.fromEntries([...stats].filter(([name]) => !/^(pid|rusage_user|rusage_system)$/.test(name)))).toEqual({
        uptime: '7', time: String(START_SECONDS + 2), version: VERSION, pointer_size: '64',
        max_connections: '1024', curr_connections: '3', total_connections: '7', rejected_connections: '0',
        command_timeouts: '0', reclaimed_connections: '0', rejected_connections_not_allowed: '0', connection_structures: '3', cmd_get: '2', cmd_set: '1', cmd_flush: '0', cmd_touch: '0',
        get_hits: '1', get_misses: '1', get_expired: '0', get_flushed: '0', delete_misses: '0', delete_hits: '0',
        incr_misses: '0', incr_hits: '0', decr_misses: '0', decr_hits: '0', cas_misses: '0', cas_hits: '0',
        cas_badval: '0', touch_hits: '0', touch_misses: '0', auth_cmds: '0', auth_errors: '0',
        bytes_read: '100', bytes_written: '200', limit_maxbytes: String(64 * 1024 * 1024), accepting_conns: '1',
        threads: '1', bytes: String(1 + 1 + ITEM_OVERHEAD_BYTES), curr_items: '1', total_items: '1', expired_unfetched: '0',
        evictions: '0', reclaimed: '0', tombstones: '0', tombstone_bytes: '0', evicted_tombstones: '0',
      });
      expect(stats.get('pid')).toBe(String(process.pid));
      expect(stats.get('rusage_user')).toMatch(/^\d+\.\d{6}$/);
    });

    it('stats settings answers the settings; an unknown group is an ERROR', () => {
      exchange('stats settings\r\n', [
        'STAT maxbytes 67108864', 'STAT maxconns 1024', 'STAT tcpport 11211', 'STAT udpport 0', 'STAT verbosity 0',
        'STAT evictions on', 'STAT domain_socket NULL', 'STAT num_threads 1', 'STAT cas_enabled yes',
        'STAT binding_protocol auto-negotiate', 'STAT auth_enabled_sasl no', `STAT item_size_max ${MAX_ITEM}`,
        'STAT lru_crawler yes', 'END', '',
      ].join('\r\n'));
      exchange('stats bogus\r\n', 'ERROR\r\n');
    });

    it('stats items reports the one class, and nothing for an empty store', () => {
      exchange('stats items\r\n', 'END\r\n');
      exchange('set a 0 0 1\r\na\r\nset b 0 0 1\r\nb\r\n', 'STORED\r\nSTORED\r\n');
      rig.advance(3_000);
      exchange('stats items\r\n', [
        'STAT items:1:number 2', 'STAT items:1:age 3', 'STAT items:1:evicted 0', 'STAT items:1:expired_unfetched 0',
        'STAT items:1:reclaimed 0', 'END', '',
      ].join('\r\n'));
    });

    it('stats cachedump lists live keys with size and absolute expiry, up to a limit', () => {
      exchange('set a 0 0 1\r\na\r\nset bb 0 100 2\r\nbb\r\nset gone 0 -1 1\r\ng\r\n', 'STORED\r\nSTORED\r\nSTORED\r\n');
      exchange('stats cachedump 1 0\r\n', `ITEM a [1 b; 0 s]\r\nITEM bb [2 b; ${START_SECONDS + 100} s]\r\nEND\r\n`);
      exchange('stats cachedump 1 1\r\n', 'ITEM a [1 b; 0 s]\r\nEND\r\n');
      exchange('stats cachedump 2 0\r\n', 'END\r\n');
      exchange('stats cachedump 1\r\n', 'ERROR\r\n');
      exchange('stats cachedump x 0\r\n', 'ERROR\r\n');
    });

    it('stats reset zeroes the counters but keeps the items', () => {
      exchange('set a 0 0 1\r\na\r\nget a b\r\n', `STORED\r\n${value('a', 0, 'a')}`);
      exchange('stats reset\r\n', 'RESET\r\n');
      const text = rig.send('stats\r\n').text;
      for (const line of ['cmd_get 0', 'cmd_set 0', 'get_hits 0', 'get_misses 0', 'curr_items 1']) expect(text).toContain(`\r\nSTAT ${line}\r\n`);
      exchange('get a\r\n', value('a', 0, 'a'));
    });

    it('quit closes the connection without a reply and ignores what follows', () => {
      exchange('quit\r\n', '', FeedResult.Close);
    });

    it('quit after pipelined commands: their replies, then close', () => {
      exchange('set k 0 0 1\r\nv\r\nget k\r\nquit\r\nget k\r\n', `STORED\r\n${value('k', 0, 'v')}`, FeedResult.Close);
    });
  });

  describe('noreply', () => {
    it('set', () => {
      exchange('set k 0 0 1 noreply\r\na\r\nget k\r\n', value('k', 0, 'a'));
    });

    it('add, stored or not', () => {
      exchange('add k 0 0 1 noreply\r\na\r\nadd k 0 0 1 noreply\r\nb\r\nget k\r\n', value('k', 0, 'a'));
    });

    it('replace, stored or not', () => {
      exchange('replace k 0 0 1 noreply\r\na\r\nget k\r\n', 'END\r\n');
      exchange('set k 0 0 1 noreply\r\na\r\nreplace k 0 0 1 noreply\r\nb\r\nget k\r\n', value('k', 0, 'b'));
    });

    it('append and prepend, stored or not', () => {
      exchange('append k 0 0 1 noreply\r\na\r\nprepend k 0 0 1 noreply\r\na\r\nget k\r\n', 'END\r\n');
      exchange('set k 0 0 1 noreply\r\nb\r\nappend k 0 0 1 noreply\r\nc\r\nprepend k 0 0 1 noreply\r\na\r\nget k\r\n', value('k', 0, 'abc'));
    });

    it('cas, stored, exists or not found', () => {
      exchange('cas k 0 0 1 1 noreply\r\na\r\nset k 0 0 1 noreply\r\na\r\ncas k 0 0 1 9 noreply\r\nb\r\nget k\r\n', value('k', 0, 'a'));
      exchange('cas k 0 0 1 1 noreply\r\nc\r\ngets k\r\n', value('k', 0, 'c', 2));
    });

    it('delete, with and without the hold time', () => {
      exchange('set a 0 0 1 noreply\r\na\r\nset b 0 0 1 noreply\r\nb\r\ndelete a noreply\r\ndelete b 0 noreply\r\ndelete c noreply\r\nget a b\r\n', 'END\r\n');
    });

    it('incr and decr', () => {
      exchange('set n 0 0 2 noreply\r\n10\r\nincr n 5 noreply\r\ndecr n 3 noreply\r\nincr nope 1 noreply\r\nget n\r\n', value('n', 0, '12'));
    });

    it('touch', () => {
      exchange('set k 0 10 1 noreply\r\nv\r\ntouch k 100 noreply\r\ntouch nope 1 noreply\r\n', '');
      rig.advance(50_000);
      exchange('get k\r\n', value('k', 0, 'v'));
    });

    it('flush_all, with and without a delay', () => {
      exchange('set k 0 0 1 noreply\r\nv\r\nflush_all noreply\r\nget k\r\n', 'END\r\n');
      exchange('set k 0 0 1 noreply\r\nv\r\nflush_all 0 noreply\r\nget k\r\n', 'END\r\n');
      exchange('flush_all abc noreply\r\nversion\r\n', `VERSION ${VERSION}\r\n`);
    });

    it('verbosity, with or without a level', () => {
      exchange('verbosity 2 noreply\r\nverbosity noreply\r\nversion\r\n', `VERSION ${VERSION}\r\n`);
      expect(rig.executor.verbosity).toBe(2);
    });
  });

  describe('pipelining', () => {
    it('answers every request of one buffer in order', () => {
      exchange(
        'set a 1 0 1\r\nx\r\nadd a 0 0 1\r\ny\r\ngets a\r\nset n 0 0 1\r\n7\r\nincr n 3\r\ndelete a\r\nget a n\r\nbogus\r\nversion\r\n',
        'STORED\r\nNOT_STORED\r\nVALUE a 1 1 1\r\nx\r\nEND\r\nSTORED\r\n10\r\nDELETED\r\nVALUE n 0 2\r\n10\r\nEND\r\nERROR\r\n' +
          `VERSION ${VERSION}\r\n`,
      );
    });
  });

  describe('errors', () => {
    it('an empty, blank or unknown line is an ERROR', () => {
      exchange('\r\n', 'ERROR\r\n');
      exchange('\n', 'ERROR\r\n');
      exchange('    \r\n', 'ERROR\r\n');
      exchange('bogus\r\n', 'ERROR\r\n');
      exchange('GET k\r\n', 'ERROR\r\n');
      exchange('get\r\n', 'ERROR\r\n');
    });

    it('storage commands with the wrong number of tokens are an ERROR', () => {
      exchange('set k 0 0\r\n', 'ERROR\r\n');
      exchange('set k 0 0 1 noreply extra\r\n', 'ERROR\r\n');
      exchange('cas k 0 0 1\r\n', 'ERROR\r\n');
    });

    it('a key of 251 bytes is refused, 250 bytes is fine', () => {
      const long = 'k'.repeat(251);
      const ok = 'k'.repeat(250);
      exchange(`get ${long}\r\n`, BAD_FORMAT);
      exchange(`get a ${long}\r\n`, BAD_FORMAT);
      // The data block is not read: it is taken as the next command, as memcached does.
      exchange(`set ${long} 0 0 1\r\nx\r\n`, `${BAD_FORMAT}ERROR\r\n`);
      exchange(`delete ${long}\r\n`, BAD_FORMAT);
      exchange(`incr ${long} 1\r\n`, BAD_FORMAT);
      exchange(`touch ${long} 1\r\n`, BAD_FORMAT);
      exchange(`gat 1 ${long}\r\n`, BAD_FORMAT);
      exchange(`set ${ok} 0 0 1\r\nx\r\nget ${ok}\r\n`, `STORED\r\n${value(ok, 0, 'x')}`);
    });

    it('a key with a control character is refused', () => {
      exchange('get a\x01b\r\n', BAD_FORMAT);
      exchange('get a\tb\r\n', BAD_FORMAT);
      exchange('set a\x7fb 0 0 1\r\nx\r\n', `${BAD_FORMAT}ERROR\r\n`);
      exchange('delete a\x00b\r\n', BAD_FORMAT);
      exchange('incr a\x1bb 1\r\n', BAD_FORMAT);
      exchange('touch a\x7f 1\r\n', BAD_FORMAT);
    });

    it('bad flags, exptime or length are a bad command line; the data block is not read', () => {
      for (const line of [
        'set k abc 0 1', 'set k -1 0 1', 'set k 4294967296 0 1', 'set k 1.5 0 1', 'set k 0 abc 1', 'set k 0 0 abc',
        'add k 0 0 1x', 'cas k 0 0 1 abc', 'cas k 0 0 1 -1',
      ]) {
        exchange(`${line}\r\nx\r\n`, `${BAD_FORMAT}ERROR\r\n`);
      }
      exchange('get k\r\n', 'END\r\n');
    });

    it('a negative or huge length is a bad command line', () => {
      exchange('set k 0 0 -1\r\n', BAD_FORMAT);
      exchange('set k 0 0 2147483646\r\n', BAD_FORMAT);
      exchange('set k 0 0 99999999999999999999\r\n', BAD_FORMAT);
      exchange('version\r\n', `VERSION ${VERSION}\r\n`);
    });

    it('a data block without "\\r\\n" after it is a bad data chunk and stores nothing', () => {
      exchange('set k 0 0 3\r\nold\r\n', 'STORED\r\n');
      // "abc" is the value, "d\r" the bad terminator, and the "\n" left over an empty line.
      exchange('set k 0 0 3\r\nabcd\r\nget k\r\n', `${BAD_CHUNK}ERROR\r\n${value('k', 0, 'old')}`);
      exchange('set k 0 0 1\r\nab\r\nget k\r\n', `${BAD_CHUNK}ERROR\r\n${value('k', 0, 'old')}`);
    });

    it('with noreply a bad data chunk is silent', () => {
      exchange('set k 0 0 3 noreply\r\nabcd\r\nget k\r\n', 'ERROR\r\nEND\r\n');
    });

    it('an oversized set answers SERVER_ERROR, swallows the data and removes the old value', () => {
      exchange('set k 0 0 3\r\nold\r\n', 'STORED\r\n');
      // The data looks like commands: none of it may run.
      const data = 'delete k\r\nversion\r\n'.repeat(100).slice(0, MAX_ITEM + 1);
      exchange(`set k 0 0 ${MAX_ITEM + 1}\r\n${data}\r\nget k\r\n`, `${TOO_LARGE}END\r\n`);
    });

    it('an oversized add, replace, append, prepend or cas keeps the old value', () => {
      exchange('set k 0 0 3\r\nold\r\n', 'STORED\r\n');
      const data = 'x'.repeat(2000);
      for (const line of ['add k 0 0 2000', 'replace k 0 0 2000', 'append k 0 0 2000', 'prepend k 0 0 2000', 'cas k 0 0 2000 1']) {
        exchange(`${line}\r\n${data}\r\n`, TOO_LARGE);
      }
      exchange('get k\r\n', value('k', 0, 'old'));
    });

    it('an oversized set with noreply is silent but still swallowed and still removes the old value', () => {
      exchange('set k 0 0 3\r\nold\r\n', 'STORED\r\n');
      const data = 'get k\r\n'.repeat(400).slice(0, 2000);
      exchange(`set k 0 0 2000 noreply\r\n${data}\r\nget k\r\n`, 'END\r\n');
    });

    it('a length just under 2^31 is refused at once and its data swallowed as it comes', () => {
      exchange('set k 0 0 2147483645\r\n', TOO_LARGE);
      exchange('version\r\nget k\r\n', '');
    });

    it(`a line of more than ${MAX_LINE_LENGTH} bytes without a newline closes the connection`, () => {
      exchange('x'.repeat(MAX_LINE_LENGTH), '');
      exchange('x', '', FeedResult.Close);
    });

    it('a storage line padded past the limit closes the connection too', () => {
      exchange(`set k 0 0 1${' '.repeat(MAX_LINE_LENGTH)}`, '', FeedResult.Close);
    });

    it('a long line with its newline, shorter than the limit, is an ordinary line', () => {
      exchange(`${'x'.repeat(MAX_LINE_LENGTH - 2)}\r\n`, 'ERROR\r\n');
    });

    it('a multi-get line longer than the limit is allowed', () => {
      const keys = Array.from({ length: 40 }, (_, i) => `${String(i).padStart(2, '0')}${'k'.repeat(248)}`);
      rig.store.store(StoreMode.Set, keys[3]!, 3, 0, Buffer.from('three'), 0, START_MS);
      rig.store.store(StoreMode.Set, keys[39]!, 9, 0, Buffer.from('last'), 0, START_MS);
      const line = `get ${keys.join(' ')}\r\n`;
      expect(line.length).toBeGreaterThan(MAX_LINE_LENGTH * 4);
      exchange(line, `VALUE ${keys[3]} 3 5\r\nthree\r\nVALUE ${keys[39]} 9 4\r\nlast\r\nEND\r\n`);
      exchange(`gets ${keys.join(' ')}\r\n`, `VALUE ${keys[3]} 3 5 1\r\nthree\r\nVALUE ${keys[39]} 9 4 2\r\nlast\r\nEND\r\n`);
    });
  });

  describe('exptime', () => {
    it('0 never expires', () => {
      exchange('set k 0 0 1\r\nv\r\n', 'STORED\r\n');
      rig.advance(3650 * DAY * 1000);
      exchange('get k\r\n', value('k', 0, 'v'));
    });

    it('up to 30 days is relative to now', () => {
      exchange('set a 0 10 1\r\na\r\nset b 0 2592000 1\r\nb\r\n', 'STORED\r\nSTORED\r\n');
      rig.advance(9_999);
      exchange('get a\r\n', value('a', 0, 'a'));
      rig.advance(1);
      exchange('get a\r\n', 'END\r\n');
      rig.advance(30 * DAY * 1000 - 10_001);
      exchange('get b\r\n', value('b', 0, 'b'));
      rig.advance(1);
      exchange('get b\r\n', 'END\r\n');
    });

    it('above 30 days is an absolute unix time', () => {
      exchange(`set k 0 ${START_SECONDS + 100} 1\r\nv\r\n`, 'STORED\r\n');
      rig.advance(99_999);
      exchange('get k\r\n', value('k', 0, 'v'));
      rig.advance(1);
      exchange('get k\r\n', 'END\r\n');
    });

    it('an absolute time in the past stores an item that is already expired', () => {
      exchange('set a 0 2592001 1\r\na\r\n', 'STORED\r\n');
      exchange(`set b 0 ${START_SECONDS} 1\r\nb\r\n`, 'STORED\r\n');
      exchange('get a b\r\n', 'END\r\n');
    });

    it('libmemcached\'s existence probe (add with a past time) tells present from missing', () => {
      exchange('add k 0 2678400 0\r\n\r\n', 'STORED\r\n');
      exchange('get k\r\n', 'END\r\n');
      exchange('set k 0 0 1\r\nv\r\n', 'STORED\r\n');
      exchange('add k 0 2678400 0\r\n\r\n', 'NOT_STORED\r\n');
      exchange('get k\r\n', value('k', 0, 'v'));
    });

    it('a negative exptime stores an item that is already expired', () => {
      exchange('set k 0 0 1\r\no\r\n', 'STORED\r\n');
      exchange('set k 0 -1 1\r\nv\r\n', 'STORED\r\n');
      exchange('get k\r\n', 'END\r\n');
    });
  });

  describe('output back-pressure', () => {
    it(`answers OutputFull past ${OUTPUT_HIGH_WATER} bytes and goes on when fed null`, () => {
      rig = createRig('ascii', mode, { maxItemSize: 1024 * 1024 });
      const big = Buffer.alloc(600 * 1024, 0x61);
      rig.store.store(StoreMode.Set, 'big', 0, 0, big, 0, START_MS);
      const outcome = rig.send('get big\r\nget big\r\nget big\r\nversion\r\n');
      expect(outcome.sawOutputFull).toBe(true);
      expect(outcome.result).toBe(FeedResult.NeedMore);
      const one = Buffer.concat([Buffer.from(`VALUE big 0 ${big.length}\r\n`), big, Buffer.from('\r\nEND\r\n')]);
      const expected = Buffer.concat([one, one, one, Buffer.from(`VERSION ${VERSION}\r\n`)]);
      expect(outcome.bytes.length).toBe(expected.length);
      expect(outcome.bytes.equals(expected)).toBe(true);
    });
  });
});

describe('ascii protocol, single cases', () => {
  it('OutputFull holds the rest of the input until feed(null), which then answers it', () => {
    const rig = createRig('ascii', 'whole', { maxItemSize: 1024 * 1024 });
    rig.store.store(StoreMode.Set, 'big', 0, 0, Buffer.alloc(700 * 1024, 0x62), 0, START_MS);
    expect(feedLent(rig.protocol, Buffer.from('get big\r\nget big\r\nversion\r\n'))).toBe(FeedResult.OutputFull);
    expect(rig.output.size).toBeGreaterThanOrEqual(OUTPUT_HIGH_WATER);
    const first = Buffer.concat(rig.output.take());
    expect(first.subarray(-5).toString()).toBe('END\r\n');
    expect(first.includes('VERSION')).toBe(false);
    expect(rig.protocol.feed(null)).toBe(FeedResult.NeedMore);
    expect(Buffer.concat(rig.output.take()).toString()).toBe(`VERSION ${VERSION}\r\n`);
    // nothing held back: feed(null) is a no-op
    expect(rig.protocol.feed(null)).toBe(FeedResult.NeedMore);
    expect(rig.output.size).toBe(0);
  });

  it(`a multi-get line over ${MAX_GET_LINE_LENGTH} bytes without a newline closes the connection`, () => {
    // Too long to feed one byte at a time (each feed copies the partial line): whole and in 4 KiB pieces.
    const line = Buffer.from(`get ${'k '.repeat(MAX_GET_LINE_LENGTH / 2)}`);
    for (const size of [line.length, 4096]) {
      const rig = createRig('ascii', 'whole');
      const chunks: Buffer[] = [];
      for (let i = 0; i < line.length; i += size) chunks.push(line.subarray(i, i + size));
      const outcome = feedChunks(rig.protocol, rig.output, chunks);
      expect(outcome.result).toBe(FeedResult.Close);
      expect(outcome.text).toBe('');
    }
  });
});
