/**
 * The binary protocol (memcached's binary protocol spec, protocol_binary.h) driven through the
 * real Executor and MemoryStore, with an injected clock. Every case runs in every feed mode
 * (whole, one byte at a time, random splits) and must give the very same bytes.
 * Opcodes and statuses are spelled out from protocol_binary.h, not imported, so a renumbering
 * in src/ fails here.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { FeedResult } from '../src/protocol/handler.js';
import { StoreMode } from '../src/protocol/types.js';
import { FEED_MODES } from './support/feed.js';
import { START_MS, VERSION, createRig, type Rig } from './support/rig.js';
import { arithExtras, parsePackets, request, response, storeExtras, u32, u64, type PacketSpec } from './support/binary-packets.js';

const OP = {
  GET: 0x00, SET: 0x01, ADD: 0x02, REPLACE: 0x03, DELETE: 0x04, INCREMENT: 0x05, DECREMENT: 0x06, QUIT: 0x07,
  FLUSH: 0x08, GETQ: 0x09, NOOP: 0x0a, VERSION: 0x0b, GETK: 0x0c, GETKQ: 0x0d, APPEND: 0x0e, PREPEND: 0x0f,
  STAT: 0x10, SETQ: 0x11, ADDQ: 0x12, REPLACEQ: 0x13, DELETEQ: 0x14, INCREMENTQ: 0x15, DECREMENTQ: 0x16,
  QUITQ: 0x17, FLUSHQ: 0x18, APPENDQ: 0x19, PREPENDQ: 0x1a, VERBOSITY: 0x1b, TOUCH: 0x1c, GAT: 0x1d, GATQ: 0x1e,
  SASL_LIST_MECHS: 0x20, SASL_AUTH: 0x21, SASL_STEP: 0x22, GATK: 0x23, GATKQ: 0x24,
} as const;

const ST = {
  SUCCESS: 0x00, KEY_ENOENT: 0x01, KEY_EEXISTS: 0x02, E2BIG: 0x03, EINVAL: 0x04, NOT_STORED: 0x05, DELTA_BADVAL: 0x06,
  UNKNOWN_COMMAND: 0x81,
} as const;

/** memcached's error texts (proto_bin.c, write_bin_error) */
const MESSAGES: Record<number, string> = {
  [ST.KEY_ENOENT]: 'Not found',
  [ST.KEY_EEXISTS]: 'Data exists for key.',
  [ST.E2BIG]: 'Too large.',
  [ST.EINVAL]: 'Invalid arguments',
  [ST.NOT_STORED]: 'Not stored.',
  [ST.DELTA_BADVAL]: 'Non-numeric server-side value for incr or decr',
  [ST.UNKNOWN_COMMAND]: 'Unknown command',
};

const MAX_ITEM = 1024;
const cat = (...buffers: Buffer[]) => Buffer.concat(buffers);
const error = (opcode: number, status: number, opaque = 0) => response({ opcode, status, opaque, value: MESSAGES[status]! });
const ok = (opcode: number, opaque = 0, cas = 0) => response({ opcode, opaque, cas });
const NOOP = request({ opcode: OP.NOOP, opaque: 0xabcdef01 });
const NOOP_REPLY = ok(OP.NOOP, 0xabcdef01);

const set = (key: string, value: string, flags = 0, exptime = 0, more: Partial<PacketSpec> = {}) =>
  request({ opcode: OP.SET, key, value, extras: storeExtras(flags, exptime), ...more });
const get = (key: string, more: Partial<PacketSpec> = {}) => request({ opcode: OP.GET, key, ...more });
const hit = (opcode: number, flags: number, value: string | Buffer, cas: number, more: Partial<PacketSpec> = {}) =>
  response({ opcode, extras: u32(flags), value, cas, ...more });

describe.each(FEED_MODES)('binary protocol, fed %s', (mode) => {
  let rig: Rig;

  beforeEach(() => {
    rig = createRig('binary', mode, { maxItemSize: MAX_ITEM });
  });

  afterEach(() => {
    rig.executor.close();
    vi.useRealTimers();
  });

  /** Sends `packets`; the reply must be exactly `expected` and the feed end with `result`. */
  function exchange(packets: Buffer | Buffer[], expected: Buffer | Buffer[], result = FeedResult.NeedMore): void {
    const outcome = rig.send(Array.isArray(packets) ? cat(...packets) : packets);
    const want = Array.isArray(expected) ? cat(...expected) : expected;
    // hex, so a failure shows where the bytes part
    expect(outcome.bytes.toString('hex')).toBe(want.toString('hex'));
    expect(outcome.result).toBe(result);
    expect(outcome.sawOutputFull).toBe(false);
  }

  describe('GET, GETQ, GETK, GETKQ', () => {
    it('GET of a missing key answers Not found with the opaque echoed', () => {
      exchange(get('nope', { opaque: 0x11223344 }), error(OP.GET, ST.KEY_ENOENT, 0x11223344));
    });

    it('GET of a stored key answers flags, value and cas', () => {
      exchange(set('k', 'hello', 0xdeadbeef, 0, { opaque: 7 }), ok(OP.SET, 7, 1));
      exchange(get('k', { opaque: 8 }), hit(OP.GET, 0xdeadbeef, 'hello', 1, { opaque: 8 }));
    });

    it('GETQ answers hits only; a multi-get ends with NOOP', () => {
      exchange([set('a', 'A', 1), set('b', 'B', 2)], [ok(OP.SET, 0, 1), ok(OP.SET, 0, 2)]);
      exchange(
        [request({ opcode: OP.GETQ, key: 'a', opaque: 1 }), request({ opcode: OP.GETQ, key: 'x', opaque: 2 }),
          request({ opcode: OP.GETKQ, key: 'b', opaque: 3 }), request({ opcode: OP.GETKQ, key: 'y', opaque: 4 }), NOOP],
        [hit(OP.GETQ, 1, 'A', 1, { opaque: 1 }), hit(OP.GETKQ, 2, 'B', 2, { opaque: 3, key: 'b' }), NOOP_REPLY],
      );
    });

    it('GETK carries the key on a hit and on a miss (with no message)', () => {
      exchange(set('k', 'v', 5), ok(OP.SET, 0, 1));
      exchange(request({ opcode: OP.GETK, key: 'k', opaque: 9 }), hit(OP.GETK, 5, 'v', 1, { key: 'k', opaque: 9 }));
      exchange(request({ opcode: OP.GETK, key: 'nope', opaque: 10 }), response({ opcode: OP.GETK, status: ST.KEY_ENOENT, key: 'nope', opaque: 10 }));
    });

    it('keeps any bytes of key and value', () => {
      const key = Buffer.from([0x01, 0x20, 0xff, 0x0a]);
      const value = Buffer.from([0x00, 0x0d, 0x0a, 0x80]);
      exchange(request({ opcode: OP.SET, key, value, extras: storeExtras(0, 0) }), ok(OP.SET, 0, 1));
      exchange(request({ opcode: OP.GETK, key }), hit(OP.GETK, 0, value, 1, { key }));
    });

    it('a key of 250 bytes is fine', () => {
      const key = 'k'.repeat(250);
      exchange(set(key, 'v'), ok(OP.SET, 0, 1));
      exchange(get(key), hit(OP.GET, 0, 'v', 1));
    });
  });

  describe('SET, ADD, REPLACE, APPEND, PREPEND', () => {
    it('SET stores and answers the new cas; an empty value is fine', () => {
      exchange(set('k', 'one', 1, 0, { opaque: 1 }), ok(OP.SET, 1, 1));
      exchange(set('k', '', 2, 0, { opaque: 2 }), ok(OP.SET, 2, 2));
      exchange(get('k'), hit(OP.GET, 2, '', 2));
    });

    it('ADD stores a missing key; an existing one is Data exists (0x02)', () => {
      const add = (value: string, opcode: number = OP.ADD) => request({ opcode, key: 'k', value, extras: storeExtras(0, 0), opaque: 3 });
      exchange(add('a'), ok(OP.ADD, 3, 1));
      exchange(add('b'), error(OP.ADD, ST.KEY_EEXISTS, 3));
      exchange(add('b', OP.ADDQ), error(OP.ADDQ, ST.KEY_EEXISTS, 3));
      exchange(get('k'), hit(OP.GET, 0, 'a', 1));
    });

    it('REPLACE stores an existing key; a missing one is Not found (0x01)', () => {
      const replace = (value: string, opcode: number = OP.REPLACE) => request({ opcode, key: 'k', value, extras: storeExtras(4, 0), opaque: 4 });
      exchange(replace('a'), error(OP.REPLACE, ST.KEY_ENOENT, 4));
      exchange(replace('a', OP.REPLACEQ), error(OP.REPLACEQ, ST.KEY_ENOENT, 4));
      exchange(set('k', 'old'), ok(OP.SET, 0, 1));
      exchange(replace('b'), ok(OP.REPLACE, 4, 2));
      exchange(get('k'), hit(OP.GET, 4, 'b', 2));
    });

    it('APPEND and PREPEND of a missing key are Not stored (0x05)', () => {
      for (const opcode of [OP.APPEND, OP.PREPEND, OP.APPENDQ, OP.PREPENDQ]) {
        exchange(request({ opcode, key: 'k', value: 'x', opaque: opcode }), error(opcode, ST.NOT_STORED, opcode));
      }
      exchange(get('k'), error(OP.GET, ST.KEY_ENOENT));
    });

    it('APPEND and PREPEND join the data and keep flags and expiry', () => {
      exchange(set('k', 'mid', 7, 100), ok(OP.SET, 0, 1));
      exchange(request({ opcode: OP.APPEND, key: 'k', value: '-end' }), ok(OP.APPEND, 0, 2));
      exchange(request({ opcode: OP.PREPEND, key: 'k', value: 'start-' }), ok(OP.PREPEND, 0, 3));
      exchange(get('k'), hit(OP.GET, 7, 'start-mid-end', 3));
      rig.advance(100_000);
      exchange(get('k'), error(OP.GET, ST.KEY_ENOENT));
    });

    it('the quiet variants send nothing on success', () => {
      exchange(
        [request({ opcode: OP.SETQ, key: 'a', value: 'b', extras: storeExtras(1, 0) }),
          request({ opcode: OP.ADDQ, key: 'n', value: 'new', extras: storeExtras(2, 0) }),
          request({ opcode: OP.REPLACEQ, key: 'a', value: 'B', extras: storeExtras(3, 0) }),
          request({ opcode: OP.APPENDQ, key: 'a', value: 'c' }),
          request({ opcode: OP.PREPENDQ, key: 'a', value: 'a' }), NOOP],
        NOOP_REPLY,
      );
      exchange([get('a'), get('n')], [hit(OP.GET, 3, 'aBc', 5), hit(OP.GET, 2, 'new', 2)]);
    });

    it('SET with a cas stores only when it matches', () => {
      exchange(set('k', 'a', 0, 0, { cas: 1 }), error(OP.SET, ST.KEY_ENOENT));
      exchange(set('k', 'a'), ok(OP.SET, 0, 1));
      exchange(set('k', 'b', 0, 0, { cas: 99, opaque: 5 }), error(OP.SET, ST.KEY_EEXISTS, 5));
      exchange(set('k', 'c', 0, 0, { cas: 1, opaque: 6 }), ok(OP.SET, 6, 2));
      exchange(set('k', 'd', 0, 0, { cas: 1 }), error(OP.SET, ST.KEY_EEXISTS));
      exchange(get('k'), hit(OP.GET, 0, 'c', 2));
    });

    it('SET with an exptime: relative, absolute, and in the past', () => {
      exchange([set('rel', 'r', 0, 10), set('abs', 'a', 0, START_MS / 1000 + 20), set('past', 'p', 0, 2592001)],
        [ok(OP.SET, 0, 1), ok(OP.SET, 0, 2), ok(OP.SET, 0, 3)]);
      exchange(get('past'), error(OP.GET, ST.KEY_ENOENT));
      rig.advance(10_000);
      exchange([get('rel'), get('abs')], [error(OP.GET, ST.KEY_ENOENT), hit(OP.GET, 0, 'a', 2)]);
      rig.advance(10_000);
      exchange(get('abs'), error(OP.GET, ST.KEY_ENOENT));
    });
  });

  describe('DELETE', () => {
    it('deletes, and a missing key is Not found', () => {
      exchange(set('k', 'v'), ok(OP.SET, 0, 1));
      exchange(request({ opcode: OP.DELETE, key: 'k', opaque: 1 }), ok(OP.DELETE, 1));
      exchange(request({ opcode: OP.DELETE, key: 'k', opaque: 2 }), error(OP.DELETE, ST.KEY_ENOENT, 2));
      exchange(get('k'), error(OP.GET, ST.KEY_ENOENT));
    });

    it('DELETEQ is silent on success but not on a miss', () => {
      exchange(set('k', 'v'), ok(OP.SET, 0, 1));
      exchange([request({ opcode: OP.DELETEQ, key: 'k' }), request({ opcode: OP.DELETEQ, key: 'k', opaque: 3 }), NOOP],
        [error(OP.DELETEQ, ST.KEY_ENOENT, 3), NOOP_REPLY]);
    });

    it('with a cas deletes only when it matches', () => {
      exchange(set('k', 'v'), ok(OP.SET, 0, 1));
      exchange(request({ opcode: OP.DELETE, key: 'k', cas: 2 }), error(OP.DELETE, ST.KEY_EEXISTS));
      exchange(get('k'), hit(OP.GET, 0, 'v', 1));
      exchange(request({ opcode: OP.DELETE, key: 'k', cas: 1 }), ok(OP.DELETE));
      exchange(get('k'), error(OP.GET, ST.KEY_ENOENT));
    });
  });

  describe('INCREMENT, DECREMENT', () => {
    const incr = (key: string, delta: bigint, initial = 0n, exptime = 0, more: Partial<PacketSpec> = {}) =>
      request({ opcode: OP.INCREMENT, key, extras: arithExtras(delta, initial, exptime), ...more });
    const decr = (key: string, delta: bigint, initial = 0n, exptime = 0, more: Partial<PacketSpec> = {}) =>
      request({ opcode: OP.DECREMENT, key, extras: arithExtras(delta, initial, exptime), ...more });
    const number = (opcode: number, value: bigint, cas: number, opaque = 0) => response({ opcode, value: u64(value), cas, opaque });

    it('changes a decimal value and answers it as 64 bits', () => {
      exchange(set('n', '10', 3), ok(OP.SET, 0, 1));
      exchange(incr('n', 5n, 0n, 0, { opaque: 4 }), number(OP.INCREMENT, 15n, 2, 4));
      exchange(decr('n', 20n), number(OP.DECREMENT, 0n, 3));
      exchange(get('n'), hit(OP.GET, 3, '0', 3));
    });

    it('wraps at 2^64', () => {
      exchange(set('n', '18446744073709551615'), ok(OP.SET, 0, 1));
      exchange(incr('n', 2n), number(OP.INCREMENT, 1n, 2));
    });

    it('creates a missing item with the initial value unless the exptime is 0xffffffff', () => {
      exchange(incr('a', 5n, 42n, 0), number(OP.INCREMENT, 42n, 1));
      exchange(decr('b', 5n, 7n, 10), number(OP.DECREMENT, 7n, 2));
      exchange([get('a'), get('b')], [hit(OP.GET, 0, '42', 1), hit(OP.GET, 0, '7', 2)]);
      exchange(incr('c', 1n, 1n, 0xffffffff, { opaque: 5 }), error(OP.INCREMENT, ST.KEY_ENOENT, 5));
      exchange(decr('c', 1n, 1n, 0xffffffff), error(OP.DECREMENT, ST.KEY_ENOENT));
      exchange(get('c'), error(OP.GET, ST.KEY_ENOENT));
      rig.advance(10_000);
      exchange([get('a'), get('b')], [hit(OP.GET, 0, '42', 1), error(OP.GET, ST.KEY_ENOENT)]);
    });

    it('a non-numeric value is 0x06', () => {
      exchange(set('t', 'abc'), ok(OP.SET, 0, 1));
      exchange(incr('t', 1n), error(OP.INCREMENT, ST.DELTA_BADVAL));
      exchange(decr('t', 1n), error(OP.DECREMENT, ST.DELTA_BADVAL));
      exchange(request({ opcode: OP.INCREMENTQ, key: 't', extras: arithExtras(1n, 0n, 0) }), error(OP.INCREMENTQ, ST.DELTA_BADVAL));
    });

    it('with a cas changes only when it matches', () => {
      exchange(set('n', '1'), ok(OP.SET, 0, 1));
      exchange(incr('n', 1n, 0n, 0, { cas: 5 }), error(OP.INCREMENT, ST.KEY_EEXISTS));
      exchange(incr('n', 1n, 0n, 0, { cas: 1 }), number(OP.INCREMENT, 2n, 2));
    });

    it('the quiet variants send nothing on success', () => {
      exchange(set('n', '10'), ok(OP.SET, 0, 1));
      exchange([request({ opcode: OP.INCREMENTQ, key: 'n', extras: arithExtras(5n, 0n, 0) }),
        request({ opcode: OP.DECREMENTQ, key: 'n', extras: arithExtras(2n, 0n, 0) }),
        request({ opcode: OP.INCREMENTQ, key: 'new', extras: arithExtras(2n, 100n, 0) }), NOOP], NOOP_REPLY);
      exchange([get('n'), get('new')], [hit(OP.GET, 0, '13', 3), hit(OP.GET, 0, '100', 4)]);
    });
  });

  describe('FLUSH, NOOP, VERSION, VERBOSITY', () => {
    it('FLUSH without extras, or with a delay of 0, invalidates every item', () => {
      exchange([set('a', 'a'), set('b', 'b')], [ok(OP.SET, 0, 1), ok(OP.SET, 0, 2)]);
      exchange(request({ opcode: OP.FLUSH, opaque: 1 }), ok(OP.FLUSH, 1));
      exchange([get('a'), get('b')], [error(OP.GET, ST.KEY_ENOENT), error(OP.GET, ST.KEY_ENOENT)]);
      exchange(set('a', 'a'), ok(OP.SET, 0, 3));
      exchange(request({ opcode: OP.FLUSH, extras: u32(0) }), ok(OP.FLUSH));
      exchange(get('a'), error(OP.GET, ST.KEY_ENOENT));
    });

    it('FLUSH with a delay invalidates items when it runs out', () => {
      vi.useFakeTimers();
      exchange(set('a', 'a'), ok(OP.SET, 0, 1));
      exchange(request({ opcode: OP.FLUSH, extras: u32(5) }), ok(OP.FLUSH));
      vi.advanceTimersByTime(4_999);
      exchange(get('a'), hit(OP.GET, 0, 'a', 1));
      vi.advanceTimersByTime(1);
      exchange(get('a'), error(OP.GET, ST.KEY_ENOENT));
    });

    it('FLUSHQ is silent', () => {
      exchange(set('a', 'a'), ok(OP.SET, 0, 1));
      exchange([request({ opcode: OP.FLUSHQ }), request({ opcode: OP.FLUSHQ, extras: u32(0) }), get('a')], error(OP.GET, ST.KEY_ENOENT));
    });

    it('NOOP and VERSION', () => {
      exchange(NOOP, NOOP_REPLY);
      exchange(request({ opcode: OP.VERSION, opaque: 77 }), response({ opcode: OP.VERSION, opaque: 77, value: VERSION }));
    });

    it('VERBOSITY sets the level', () => {
      exchange(request({ opcode: OP.VERBOSITY, extras: u32(3), opaque: 2 }), ok(OP.VERBOSITY, 2));
      expect(rig.executor.verbosity).toBe(3);
    });
  });

  describe('STAT', () => {
    it('answers one packet per statistic, ended by an empty one', () => {
      exchange(set('a', 'a'), ok(OP.SET, 0, 1));
      const outcome = rig.send(request({ opcode: OP.STAT, opaque: 0x5151 }));
      expect(outcome.result).toBe(FeedResult.NeedMore);
      const packets = parsePackets(outcome.bytes);
      const last = packets.pop()!;
      expect(outcome.bytes.subarray(-24).toString('hex')).toBe(ok(OP.STAT, 0x5151).toString('hex'));
      expect(last.key).toBe('');
      expect(packets.length).toBe(50);
      for (const packet of packets) {
        expect([packet.magic, packet.opcode, packet.status, packet.opaque, packet.cas, packet.extras.length])
          .toEqual([0x81, OP.STAT, 0, 0x5151, 0n, 0]);
      }
      const stats = new Map(packets.map((p) => [p.key, p.value.toString('latin1')]));
      expect(stats.get('pid')).toBe(String(process.pid));
      expect(stats.get('version')).toBe(VERSION);
      expect(stats.get('curr_items')).toBe('1');
      expect(stats.get('cmd_set')).toBe('1');
      expect(stats.get('time')).toBe(String(START_MS / 1000));
    });

    it('answers the settings group', () => {
      const outcome = rig.send(request({ opcode: OP.STAT, key: 'settings' }));
      const packets = parsePackets(outcome.bytes);
      expect(packets.map((p) => `${p.key}=${p.value.toString('latin1')}`)).toEqual([
        'maxbytes=67108864', 'maxconns=1024', 'tcpport=11211', 'udpport=0', 'verbosity=0', 'evictions=on',
        'domain_socket=NULL', 'num_threads=1', 'cas_enabled=yes', 'binding_protocol=auto-negotiate',
        'auth_enabled_sasl=no', `item_size_max=${MAX_ITEM}`, 'lru_crawler=yes', '=',
      ]);
    });

    it('answers the items group; reset answers one empty packet and zeroes the counters', () => {
      exchange(set('a', 'a'), ok(OP.SET, 0, 1));
      const packets = parsePackets(rig.send(request({ opcode: OP.STAT, key: 'items' })).bytes);
      expect(packets.map((p) => `${p.key}=${p.value.toString('latin1')}`)).toEqual([
        'items:1:number=1', 'items:1:age=0', 'items:1:evicted=0', 'items:1:expired_unfetched=0', 'items:1:reclaimed=0', '=',
      ]);
      exchange(request({ opcode: OP.STAT, key: 'reset', opaque: 4 }), ok(OP.STAT, 4));
      const stats = new Map(parsePackets(rig.send(request({ opcode: OP.STAT })).bytes).map((p) => [p.key, p.value.toString()]));
      expect([stats.get('cmd_set'), stats.get('curr_items')]).toEqual(['0', '1']);
    });

    it('cachedump, which binary cannot carry, is Not found', () => {
      exchange(request({ opcode: OP.STAT, key: 'cachedump 1 0', opaque: 5 }), error(OP.STAT, ST.KEY_ENOENT, 5));
    });

    it('an unknown group is Not found', () => {
      exchange(request({ opcode: OP.STAT, key: 'bogus', opaque: 3 }), error(OP.STAT, ST.KEY_ENOENT, 3));
    });
  });

  describe('TOUCH, GAT, GATQ, GATK, GATKQ', () => {
    it('TOUCH sets a new exptime and answers with the flags and cas, like memcached; a missing key is Not found', () => {
      exchange(set('k', 'v', 7, 10), ok(OP.SET, 0, 1));
      exchange(request({ opcode: OP.TOUCH, key: 'k', extras: u32(100), opaque: 1 }), response({ opcode: OP.TOUCH, opaque: 1, cas: 1, extras: u32(7) }));
      exchange(request({ opcode: OP.TOUCH, key: 'x', extras: u32(100) }), error(OP.TOUCH, ST.KEY_ENOENT));
      rig.advance(99_999);
      exchange(get('k'), hit(OP.GET, 7, 'v', 1));
      rig.advance(1);
      exchange(get('k'), error(OP.GET, ST.KEY_ENOENT));
    });

    it('GAT returns the value and sets a new exptime', () => {
      exchange(set('k', 'v', 6, 10), ok(OP.SET, 0, 1));
      exchange(request({ opcode: OP.GAT, key: 'k', extras: u32(100), opaque: 2 }), hit(OP.GAT, 6, 'v', 1, { opaque: 2 }));
      rig.advance(50_000);
      exchange(get('k'), hit(OP.GET, 6, 'v', 1));
      exchange(request({ opcode: OP.GAT, key: 'x', extras: u32(100) }), error(OP.GAT, ST.KEY_ENOENT));
    });

    it('GATQ and GATKQ answer hits only; GATK carries the key', () => {
      exchange(set('k', 'v', 6), ok(OP.SET, 0, 1));
      exchange(
        [request({ opcode: OP.GATQ, key: 'x', extras: u32(0) }), request({ opcode: OP.GATKQ, key: 'x', extras: u32(0) }),
          request({ opcode: OP.GATQ, key: 'k', extras: u32(0) }), request({ opcode: OP.GATKQ, key: 'k', extras: u32(0) }),
          request({ opcode: OP.GATK, key: 'k', extras: u32(0) }), request({ opcode: OP.GATK, key: 'x', extras: u32(0) }), NOOP],
        [hit(OP.GATQ, 6, 'v', 1), hit(OP.GATKQ, 6, 'v', 1, { key: 'k' }), hit(OP.GATK, 6, 'v', 1, { key: 'k' }),
          response({ opcode: OP.GATK, status: ST.KEY_ENOENT, key: 'x' }), NOOP_REPLY],
      );
    });
  });

  describe('QUIT, SASL, unknown opcodes', () => {
    it('QUIT answers and closes; what follows is ignored', () => {
      exchange([request({ opcode: OP.QUIT, opaque: 4 }), NOOP], ok(OP.QUIT, 4), FeedResult.Close);
    });

    it('QUITQ closes without an answer', () => {
      exchange([NOOP, request({ opcode: OP.QUITQ }), NOOP], NOOP_REPLY, FeedResult.Close);
    });

    it('SASL opcodes are unknown commands and their bodies are swallowed', () => {
      exchange(
        [request({ opcode: OP.SASL_LIST_MECHS, opaque: 1 }),
          request({ opcode: OP.SASL_AUTH, key: 'PLAIN', value: '\0user\0secret', opaque: 2 }),
          request({ opcode: OP.SASL_STEP, key: 'PLAIN', value: NOOP, opaque: 3 }), NOOP],
        [error(OP.SASL_LIST_MECHS, ST.UNKNOWN_COMMAND, 1), error(OP.SASL_AUTH, ST.UNKNOWN_COMMAND, 2),
          error(OP.SASL_STEP, ST.UNKNOWN_COMMAND, 3), NOOP_REPLY],
      );
    });

    it('an unknown opcode is 0x81 and its body is swallowed', () => {
      exchange([request({ opcode: 0x50, extras: u32(1), key: 'k', value: get('k'), opaque: 9 }), request({ opcode: 0xff }), NOOP],
        [error(0x50, ST.UNKNOWN_COMMAND, 9), error(0xff, ST.UNKNOWN_COMMAND), NOOP_REPLY]);
    });
  });

  describe('packets that cannot be trusted', () => {
    it('a bad magic byte closes the connection without an answer', () => {
      exchange([NOOP, request({ opcode: OP.NOOP, magic: 0x81 }), NOOP], NOOP_REPLY, FeedResult.Close);
      rig = createRig('binary', mode);
      exchange(Buffer.concat([Buffer.from('get k\r\n'), Buffer.alloc(24)]), Buffer.alloc(0), FeedResult.Close);
    });

    it('key and extras longer than the body are Invalid arguments, then close', () => {
      exchange([request({ opcode: OP.GET, key: 'abcde', bodyLength: 3, opaque: 6 }), NOOP], error(OP.GET, ST.EINVAL, 6), FeedResult.Close);
    });

    it('wrong extras are Invalid arguments, then close', () => {
      const cases: Buffer[] = [
        request({ opcode: OP.GET, key: 'k', extras: u32(0) }),
        request({ opcode: OP.SET, key: 'k', value: 'v' }),
        request({ opcode: OP.SET, key: 'k', value: 'v', extras: u32(0) }),
        request({ opcode: OP.INCREMENT, key: 'k', extras: u64(1n) }),
        request({ opcode: OP.TOUCH, key: 'k' }),
        request({ opcode: OP.FLUSH, extras: u64(0n) }),
        request({ opcode: OP.VERBOSITY }),
        request({ opcode: OP.APPEND, key: 'k', value: 'v', extras: u32(0) }),
      ];
      for (const packet of cases) {
        rig = createRig('binary', mode);
        exchange([packet, NOOP], error(packet[1]!, ST.EINVAL), FeedResult.Close);
      }
    });

    it('a missing key, an unwanted key or an unwanted value are Invalid arguments, then close', () => {
      const cases: Buffer[] = [
        request({ opcode: OP.GET }),
        request({ opcode: OP.SET, value: 'v', extras: storeExtras(0, 0) }),
        request({ opcode: OP.NOOP, key: 'k' }),
        request({ opcode: OP.VERSION, value: 'v' }),
        request({ opcode: OP.GET, key: 'k', value: 'v' }),
        request({ opcode: OP.DELETE, key: 'k', value: 'v' }),
      ];
      for (const packet of cases) {
        rig = createRig('binary', mode);
        exchange([packet, NOOP], error(packet[1]!, ST.EINVAL), FeedResult.Close);
      }
    });

    it('a key over 250 bytes is Invalid arguments, then close', () => {
      exchange([get('k'.repeat(251), { opaque: 8 }), NOOP], error(OP.GET, ST.EINVAL, 8), FeedResult.Close);
    });
  });

  describe('oversized values', () => {
    it('SET of a value over the limit is Too large; the value is swallowed and the old one removed', () => {
      exchange(set('k', 'old'), ok(OP.SET, 0, 1));
      // the value is made of packets: none of them may run
      const value = Buffer.concat(Array.from({ length: 60 }, () => get('k'))).subarray(0, MAX_ITEM + 1);
      exchange([request({ opcode: OP.SET, key: 'k', value, extras: storeExtras(0, 0), opaque: 3 }), get('k')],
        [error(OP.SET, ST.E2BIG, 3), error(OP.GET, ST.KEY_ENOENT)]);
    });

    it('a value of exactly the limit is fine', () => {
      const value = 'v'.repeat(MAX_ITEM);
      exchange(set('k', value), ok(OP.SET, 0, 1));
      exchange(get('k'), hit(OP.GET, 0, value, 1));
    });

    it('ADD, REPLACE, APPEND over the limit keep the old value; the quiet ones still answer', () => {
      exchange(set('k', 'old'), ok(OP.SET, 0, 1));
      const value = 'x'.repeat(MAX_ITEM + 1);
      exchange(
        [request({ opcode: OP.ADD, key: 'k', value, extras: storeExtras(0, 0) }),
          request({ opcode: OP.REPLACEQ, key: 'k', value, extras: storeExtras(0, 0) }),
          request({ opcode: OP.APPEND, key: 'k', value }), get('k')],
        [error(OP.ADD, ST.E2BIG), error(OP.REPLACEQ, ST.E2BIG), error(OP.APPEND, ST.E2BIG), hit(OP.GET, 0, 'old', 1)],
      );
      exchange(request({ opcode: OP.SETQ, key: 'k', value, extras: storeExtras(0, 0) }), error(OP.SETQ, ST.E2BIG));
      exchange(get('k'), error(OP.GET, ST.KEY_ENOENT));
    });

    it('a body length of 0xffffffff is Too large at once, and the body is swallowed as it comes', () => {
      const header = request({ opcode: OP.SET, key: 'k', extras: storeExtras(0, 0), bodyLength: 0xffffffff, opaque: 12 });
      exchange(header, error(OP.SET, ST.E2BIG, 12));
      exchange([NOOP, get('k'), NOOP], Buffer.alloc(0));
    });
  });

  describe('output back-pressure', () => {
    it('answers OutputFull past the high-water mark and goes on when fed null', () => {
      rig = createRig('binary', mode, { maxItemSize: 1024 * 1024 });
      const big = Buffer.alloc(600 * 1024, 0x61);
      rig.store.store(StoreMode.Set, 'big', 0, 0, big, 0, START_MS);
      const outcome = rig.send(cat(get('big'), get('big'), get('big'), NOOP));
      expect(outcome.sawOutputFull).toBe(true);
      expect(outcome.result).toBe(FeedResult.NeedMore);
      const one = hit(OP.GET, 0, big, 1);
      expect(outcome.bytes.equals(cat(one, one, one, NOOP_REPLY))).toBe(true);
    });
  });
});
