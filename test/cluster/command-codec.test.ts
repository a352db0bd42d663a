/**
 * The Forward / ForwardReply / Replicate payload codecs: every Command and Reply kind round-trips,
 * decoded values are copies in their own memory, and malformed payloads throw the payload
 * reader's error without allocating. Tag and enum wire numbers are spelled out here, not
 * imported, so a renumbering in src/ fails this test.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  decodeCommand, decodeItemBatch, decodeItemRecord, decodeReply, decodeTimedBatch, decodeTimedCommand, encodeCommand, encodeItemBatch,
  encodeItemRecord, encodeReply, encodeTimedBatch, encodeTimedCommand, type ItemRecord,
} from '../../src/cluster/peer/command-codec.js';
import { PeerError } from '../../src/errors.js';
import { Status, StoreMode, type Command, type Reply } from '../../src/protocol/types.js';

const U64_MAX = (1n << 64n) - 1n;
const MIB = 1024 * 1024;
/** Every byte value, including 0x00, 0x80 and 0xff, as a latin1 key. */
const BINARY_KEY = Buffer.from([0x00, 0xff, 0x80, 0x20, 0x0a, 0x7f, 0x41, 0xc3, 0xa9]).toString('latin1');
const ALL_BYTES_KEY = Buffer.from(Array.from({ length: 256 }, (_, i) => i)).toString('latin1');

function bigValue(length: number): Buffer {
  const value = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) value[i] = (i * 31 + 7) & 0xff;
  return value;
}

const COMMANDS: Array<[string, Command]> = [
  ...[StoreMode.Set, StoreMode.Add, StoreMode.Replace, StoreMode.Append, StoreMode.Prepend, StoreMode.Cas].map(
    (mode): [string, Command] => [`store mode ${StoreMode[mode]}`, { kind: 'store', mode, key: `k${mode}`, flags: 0xffffffff, exptime: 3600, value: Buffer.from('php|session'), cas: mode === StoreMode.Cas ? 42 : 0 }],
  ),
  ['store with a binary key and an empty value', { kind: 'store', mode: StoreMode.Set, key: BINARY_KEY, flags: 0, exptime: 0, value: Buffer.alloc(0), cas: 0 }],
  ['store with a 1 MiB value', { kind: 'store', mode: StoreMode.Set, key: 'big', flags: 7, exptime: 0, value: bigValue(MIB), cas: 0 }],
  ['store with a negative exptime and the largest cas', { kind: 'store', mode: StoreMode.Cas, key: 'x', flags: 1, exptime: -1, value: Buffer.from([0]), cas: Number.MAX_SAFE_INTEGER }],
  ['store with extreme exptimes', { kind: 'store', mode: StoreMode.Set, key: 'x', flags: 1, exptime: Number.MIN_SAFE_INTEGER, value: Buffer.from([1]), cas: 1 }],
  ['store with an absolute exptime', { kind: 'store', mode: StoreMode.Set, key: 'x', flags: 1, exptime: Number.MAX_SAFE_INTEGER, value: Buffer.from([1]), cas: 1 }],
  ...[StoreMode.Set, StoreMode.Add, StoreMode.Replace, StoreMode.Append, StoreMode.Prepend, StoreMode.Cas].map(
    (mode): [string, Command] => [`refuseOversized mode ${StoreMode[mode]}`, { kind: 'refuseOversized', mode, key: BINARY_KEY }],
  ),
  ['get one key', { kind: 'get', keys: ['sess_abc'], withCas: false }],
  ['gets many keys, binary ones too', { kind: 'get', keys: ['a', BINARY_KEY, ALL_BYTES_KEY, ''], withCas: true }],
  ['get no keys', { kind: 'get', keys: [], withCas: false }],
  ['touchGet', { kind: 'touchGet', keys: ['a', BINARY_KEY], exptime: 2592000, withCas: true }],
  ['touchGet no keys, negative exptime', { kind: 'touchGet', keys: [], exptime: -5, withCas: false }],
  ['touch', { kind: 'touch', key: BINARY_KEY, exptime: 0xffffffff }],
  ['delete', { kind: 'delete', key: 'sess_abc', cas: 0 }],
  ['delete with cas', { kind: 'delete', key: BINARY_KEY, cas: 2 ** 40 + 3 }],
  ['incr without initial', { kind: 'arith', key: 'n', incr: true, delta: 1n, initial: null, exptime: 0, cas: 0 }],
  ['decr with initial', { kind: 'arith', key: BINARY_KEY, incr: false, delta: U64_MAX, initial: U64_MAX, exptime: 300, cas: 9 }],
  ['incr with zero initial and no-create exptime', { kind: 'arith', key: 'n', incr: true, delta: 0n, initial: 0n, exptime: 0xffffffff, cas: 0 }],
  ['flush', { kind: 'flush', delaySeconds: 0 }],
  ['flush delayed', { kind: 'flush', delaySeconds: 10 }],
  ['flush negative', { kind: 'flush', delaySeconds: -1 }],
  ['version', { kind: 'version' }],
  ['verbosity', { kind: 'verbosity', level: 1 }],
  ['verbosity large', { kind: 'verbosity', level: 999_999_999_999_999 }],
  ['stats', { kind: 'stats', args: [] }],
  ['stats with args', { kind: 'stats', args: ['cachedump', '1', '100'] }],
  ['stats with latin1 and unicode args', { kind: 'stats', args: ['\xe9\xff', 'ünïcødé ✓', ''] }],
  ['quit', { kind: 'quit' }],
];

const REPLIES: Array<[string, Reply]> = [
  ...Object.values(Status).filter((s): s is Status => typeof s === 'number').map(
    (status): [string, Reply] => [`status ${Status[status]}`, { kind: 'status', status, cas: status }],
  ),
  ['status with flags', { kind: 'status', status: Status.Touched, cas: Number.MAX_SAFE_INTEGER, flags: 0xffffffff }],
  ['status with zero flags', { kind: 'status', status: Status.Touched, cas: 0, flags: 0 }],
  ['values none', { kind: 'values', entries: [], missing: [] }],
  ['values missing only', { kind: 'values', entries: [], missing: ['a', BINARY_KEY, ''] }],
  [
    'values',
    {
      kind: 'values',
      entries: [
        { key: 'a', flags: 1, value: Buffer.from('hello'), cas: 5 },
        { key: BINARY_KEY, flags: 0xffffffff, value: Buffer.alloc(0), cas: Number.MAX_SAFE_INTEGER },
        { key: ALL_BYTES_KEY, flags: 0, value: bigValue(MIB), cas: 0 },
      ],
      missing: ['gone'],
    },
  ],
  ['number', { kind: 'number', value: 0n, cas: 0 }],
  ['number max', { kind: 'number', value: U64_MAX, cas: 77 }],
  ['stats none', { kind: 'stats', entries: [] }],
  ['stats', { kind: 'stats', entries: [['pid', '1234'], ['version', '1.6.0 ✓'], ['empty', '']] }],
  ['unknownStats', { kind: 'unknownStats' }],
  ['statsReset', { kind: 'statsReset' }],
  ['keyDump none', { kind: 'keyDump', entries: [] }],
  ['keyDump', { kind: 'keyDump', entries: [{ key: BINARY_KEY, bytes: MIB, exptime: 0 }, { key: 'b', bytes: 0, exptime: 1_900_000_000 }] }],
  ['version', { kind: 'version', version: '0.1.0' }],
  ['quit', { kind: 'quit' }],
  ['serverError', { kind: 'serverError', message: 'owner node unreachable: ünïcødé' }],
  ['notAllowed', { kind: 'notAllowed', message: 'flush_all not allowed' }],
  ['serverError empty', { kind: 'serverError', message: '' }],
];

const RECORDS: Array<[string, ItemRecord]> = [
  ['a value', { key: 'sess_abc', value: Buffer.from('a|s:1:"b";'), flags: 0, expiresAt: 1_700_000_000_000, version: 1, origin: 'node-1' }],
  ['a deletion', { key: BINARY_KEY, value: null, flags: 0xffffffff, expiresAt: 0, version: Number.MAX_SAFE_INTEGER, origin: 'n_2' }],
  ['an empty value', { key: '', value: Buffer.alloc(0), flags: 3, expiresAt: 1, version: 0, origin: 'x' }],
  ['a 1 MiB value', { key: ALL_BYTES_KEY, value: bigValue(MIB), flags: 9, expiresAt: 0, version: 2 ** 52, origin: 'A'.repeat(64) }],
];

/** Every prefix of a small payload, and the payload with a trailing byte. */
function expectMalformedVariants(payload: Buffer, decode: (payload: Buffer) => unknown): void {
  for (let length = 0; length < payload.length; length++) expectPayloadError(() => decode(Buffer.from(payload.subarray(0, length))));
  expectPayloadError(() => decode(Buffer.concat([payload, Buffer.from([0])])));
}

function expectPayloadError(action: () => unknown): void {
  let thrown: unknown;
  try {
    action();
  } catch (error) {
    thrown = error;
  }
  expect(thrown).toBeInstanceOf(PeerError);
  expect((thrown as PeerError).code).toBe('ERR_PEER_PAYLOAD');
}

/** Owned, unpooled memory: not a view into anything else. */
function expectOwnMemory(value: Buffer, payload: Buffer): void {
  expect(value.buffer).not.toBe(payload.buffer);
  expect(value.byteOffset).toBe(0);
  expect(value.buffer.byteLength).toBe(value.length);
}

afterEach(() => {
  vi.restoreAllMocks();
});

// Deep-equality of 1 MiB buffers byte by byte takes seconds; Buffer.equals is a memcmp.
expect.addEqualityTesters([(a: unknown, b: unknown) => (Buffer.isBuffer(a) && Buffer.isBuffer(b) ? a.equals(b) : undefined)]);

describe('command codec', () => {
  it.each(COMMANDS)('round-trips %s', (_name, command) => {
    const payload = encodeCommand(command);
    expect(decodeCommand(payload)).toEqual(command);
    // from a copy sitting inside a larger buffer, as a frame payload does
    const framed = Buffer.concat([Buffer.from([1, 2, 3]), payload, Buffer.from([4])]).subarray(3, 3 + payload.length);
    expect(decodeCommand(framed)).toEqual(command);
  });

  it.each(COMMANDS.filter(([, command]) => encodeCommand(command).length < 4096))('refuses truncated and over-long %s', (_name, command) => {
    expectMalformedVariants(encodeCommand(command), decodeCommand);
  });

  it('keeps the wire numbers of tags and store modes', () => {
    const tags = (['store', 'refuseOversized', 'get', 'touchGet', 'touch', 'delete', 'arith', 'flush', 'version', 'verbosity', 'stats', 'quit'] as const).map(
      (kind) => encodeCommand(COMMANDS.find(([, c]) => c.kind === kind)![1])[0],
    );
    expect(tags).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    const modes = [StoreMode.Set, StoreMode.Add, StoreMode.Replace, StoreMode.Append, StoreMode.Prepend, StoreMode.Cas].map(
      (mode) => encodeCommand({ kind: 'refuseOversized', mode, key: '' })[1],
    );
    expect(modes).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it('lays out a store command as documented', () => {
    const payload = encodeCommand({ kind: 'store', mode: StoreMode.Add, key: '\xff\x00', flags: 0x01020304, exptime: -2, value: Buffer.from('v'), cas: 0x0a0b });
    expect(payload.toString('hex')).toBe(
      ['01', '01', '0002ff00', '01020304', 'fffffffffffffffe', '0000000000000a0b', '0000000176'].join(''),
    );
  });

  it('encodes keys as latin1, one byte per character', () => {
    const payload = encodeCommand({ kind: 'touch', key: '\xe9', exptime: 0 });
    expect(payload.subarray(1, 4)).toEqual(Buffer.from([0, 1, 0xe9]));
    expect(() => encodeCommand({ kind: 'touch', key: 'ā', exptime: 0 })).toThrow(RangeError);
    expect(() => encodeCommand({ kind: 'get', keys: ['ok', '✓'], withCas: false })).toThrow(RangeError);
  });

  it('refuses to encode numbers outside their fields', () => {
    const store: Command = { kind: 'store', mode: StoreMode.Set, key: 'k', flags: 0, exptime: 0, value: Buffer.alloc(0), cas: 0 };
    expect(() => encodeCommand({ ...store, cas: 2 ** 53 })).toThrow(RangeError);
    expect(() => encodeCommand({ ...store, flags: 2 ** 32 })).toThrow(RangeError);
    expect(() => encodeCommand({ ...store, exptime: 1.5 })).toThrow(RangeError);
    expect(() => encodeCommand({ kind: 'arith', key: 'n', incr: true, delta: U64_MAX + 1n, initial: null, exptime: 0, cas: 0 })).toThrow(RangeError);
    expect(() => encodeCommand({ kind: 'arith', key: 'n', incr: true, delta: 1n, initial: -1n, exptime: 0, cas: 0 })).toThrow(RangeError);
  });

  it('decodes values into copies of their own', () => {
    const value = Buffer.from('session data');
    const payload = encodeCommand({ kind: 'store', mode: StoreMode.Set, key: 'k', flags: 0, exptime: 0, value, cas: 0 });
    const decoded = decodeCommand(payload);
    if (decoded.kind !== 'store') throw new Error('not a store');
    payload.fill(0);
    value.fill(0);
    expect(decoded.value.toString()).toBe('session data');
    expectOwnMemory(decoded.value, payload);
  });

  it('allocates decoded values with allocUnsafeSlow', () => {
    const spy = vi.spyOn(Buffer, 'allocUnsafeSlow');
    decodeCommand(encodeCommand({ kind: 'store', mode: StoreMode.Set, key: 'k', flags: 0, exptime: 0, value: Buffer.alloc(100, 1), cas: 0 }));
    expect(spy).toHaveBeenCalledWith(100);
  });

  it('refuses unknown tags, modes and booleans', () => {
    for (const tag of [0, 13, 0x80, 0xff]) expectPayloadError(() => decodeCommand(Buffer.from([tag])));
    expectPayloadError(() => decodeCommand(Buffer.alloc(0)));
    expectPayloadError(() => decodeCommand(Buffer.from([2, 6, 0, 0]))); // refuseOversized, mode 6
    expectPayloadError(() => decodeCommand(Buffer.from([2, 0xff, 0, 0])));
    expectPayloadError(() => decodeCommand(Buffer.from([3, 2, 0, 0, 0, 0]))); // get, withCas 2
    const arith = encodeCommand({ kind: 'arith', key: 'n', incr: true, delta: 1n, initial: null, exptime: 0, cas: 0 });
    const badIncr = Buffer.from(arith);
    badIncr[1] = 7;
    expectPayloadError(() => decodeCommand(badIncr));
    const badHasInitial = Buffer.from(arith);
    badHasInitial[1 + 1 + 3 + 8] = 2;
    expectPayloadError(() => decodeCommand(badHasInitial));
  });

  it('refuses numbers that do not fit a JS number exactly', () => {
    const store = encodeCommand({ kind: 'store', mode: StoreMode.Set, key: 'k', flags: 0, exptime: 0, value: Buffer.alloc(0), cas: 0 });
    const casAt = 1 + 1 + 3 + 4 + 8;
    const bigCas = Buffer.from(store);
    bigCas.writeBigUInt64BE(1n << 53n, casAt);
    expectPayloadError(() => decodeCommand(bigCas));
    const bigExptime = Buffer.from(store);
    bigExptime.writeBigInt64BE(-(1n << 53n), casAt - 8);
    expectPayloadError(() => decodeCommand(bigExptime));
    bigExptime.writeBigInt64BE(1n << 53n, casAt - 8);
    expectPayloadError(() => decodeCommand(bigExptime));
  });

  it('refuses a huge claimed length or count without allocating for it', () => {
    const spy = vi.spyOn(Buffer, 'allocUnsafeSlow');
    // store whose value claims 4 GiB - 1 with 3 bytes present
    const store = Buffer.concat([
      Buffer.from([1, 0, 0, 1, 0x6b]), Buffer.alloc(4), Buffer.alloc(8), Buffer.alloc(8), Buffer.from([0xff, 0xff, 0xff, 0xff, 1, 2, 3]),
    ]);
    expectPayloadError(() => decodeCommand(store));
    // get with 2^32 - 1 keys
    expectPayloadError(() => decodeCommand(Buffer.from([3, 0, 0xff, 0xff, 0xff, 0xff, 0, 0])));
    // stats with 2^32 - 1 args
    expectPayloadError(() => decodeCommand(Buffer.from([11, 0xff, 0xff, 0xff, 0xff])));
    // a key claiming 65535 bytes
    expectPayloadError(() => decodeCommand(Buffer.from([5, 0xff, 0xff, 0x41])));
    expect(spy).not.toHaveBeenCalled();
  });
});

describe('reply codec', () => {
  it.each(REPLIES)('round-trips %s', (_name, reply) => {
    const decoded = decodeReply(encodeReply(reply));
    expect(decoded).toEqual(reply);
    if (reply.kind === 'status') expect('flags' in decoded).toBe(reply.flags !== undefined);
  });

  it.each(REPLIES.filter(([, reply]) => encodeReply(reply).length < 4096))('refuses truncated and over-long %s', (_name, reply) => {
    expectMalformedVariants(encodeReply(reply), decodeReply);
  });

  it('keeps the wire numbers of tags and statuses', () => {
    const tags = (['status', 'values', 'number', 'stats', 'unknownStats', 'statsReset', 'keyDump', 'version', 'quit', 'serverError'] as const).map(
      (kind) => encodeReply(REPLIES.find(([, r]) => r.kind === kind)![1])[0],
    );
    expect(tags).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    const statuses = [
      Status.Stored, Status.NotStored, Status.Exists, Status.NotFound, Status.Deleted, Status.Touched, Status.Ok,
      Status.TooLarge, Status.NoMemory, Status.NonNumeric, Status.InvalidArguments,
    ].map((status) => encodeReply({ kind: 'status', status, cas: 0 })[1]);
    expect(statuses).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  });

  it('decodes values into copies of their own', () => {
    const payload = encodeReply({ kind: 'values', entries: [{ key: 'a', flags: 0, value: Buffer.from('abc'), cas: 1 }, { key: 'b', flags: 0, value: Buffer.from('de'), cas: 2 }], missing: [] });
    const decoded = decodeReply(payload);
    if (decoded.kind !== 'values') throw new Error('not values');
    payload.fill(0);
    expect(decoded.entries.map((entry) => entry.value.toString())).toEqual(['abc', 'de']);
    for (const entry of decoded.entries) expectOwnMemory(entry.value, payload);
  });

  it('refuses unknown tags, statuses and booleans', () => {
    for (const tag of [0, 11, 0x80, 0xff]) expectPayloadError(() => decodeReply(Buffer.from([tag])));
    expectPayloadError(() => decodeReply(Buffer.alloc(0)));
    const status = encodeReply({ kind: 'status', status: Status.Ok, cas: 0 });
    const badStatus = Buffer.from(status);
    badStatus[1] = 11;
    expectPayloadError(() => decodeReply(badStatus));
    const badFlag = Buffer.from(status);
    badFlag[10] = 2;
    expectPayloadError(() => decodeReply(badFlag));
  });

  it('refuses a huge claimed length or count without allocating for it', () => {
    const spy = vi.spyOn(Buffer, 'allocUnsafeSlow');
    expectPayloadError(() => decodeReply(Buffer.from([2, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0])));
    // one entry whose value claims 4 GiB - 1
    const entry = Buffer.concat([Buffer.from([2, 0, 0, 0, 1, 0, 1, 0x61]), Buffer.alloc(4), Buffer.alloc(8), Buffer.from([0xff, 0xff, 0xff, 0xff]), Buffer.alloc(8)]);
    expectPayloadError(() => decodeReply(entry));
    expectPayloadError(() => decodeReply(Buffer.from([4, 0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0])));
    expectPayloadError(() => decodeReply(Buffer.from([7, 0x10, 0, 0, 0])));
    expectPayloadError(() => decodeReply(Buffer.from([10, 0xff, 0xff, 0xff, 0xff, 0x41])));
    expect(spy).not.toHaveBeenCalled();
  });
});

describe('item records', () => {
  it.each(RECORDS)('round-trips %s', (_name, record) => {
    expect(decodeItemRecord(encodeItemRecord(record))).toEqual(record);
  });

  it.each(RECORDS.filter(([, record]) => (record.value?.length ?? 0) < 1000))('refuses truncated and over-long %s', (_name, record) => {
    expectMalformedVariants(encodeItemRecord(record), decodeItemRecord);
  });

  it('round-trips batches, empty and mixed', () => {
    expect(decodeItemBatch(encodeItemBatch([]))).toEqual([]);
    const records = RECORDS.map(([, record]) => record);
    expect(decodeItemBatch(encodeItemBatch(records))).toEqual(records);
    const small = records.filter((record) => (record.value?.length ?? 0) < 1000);
    expectMalformedVariants(encodeItemBatch(small), decodeItemBatch);
  });

  it('decodes values into copies of their own', () => {
    const payload = encodeItemBatch([RECORDS[0]![1], RECORDS[1]![1], RECORDS[2]![1]]);
    const decoded = decodeItemBatch(payload);
    payload.fill(0xee);
    expect(decoded[0]!.value!.toString()).toBe('a|s:1:"b";');
    expect(decoded[1]!.value).toBeNull();
    expectOwnMemory(decoded[0]!.value!, payload);
    expect(decoded[2]!.value!.length).toBe(0);
  });

  it('refuses bad presence bytes, unsafe versions and impossible counts', () => {
    const payload = encodeItemRecord(RECORDS[0]![1]);
    const badPresence = Buffer.from(payload);
    badPresence[0] = 2;
    expectPayloadError(() => decodeItemRecord(badPresence));
    const versionAt = 1 + 2 + 'sess_abc'.length + 4 + 8;
    const badVersion = Buffer.from(payload);
    badVersion.writeBigUInt64BE(U64_MAX, versionAt);
    expectPayloadError(() => decodeItemRecord(badVersion));
    const spy = vi.spyOn(Buffer, 'allocUnsafeSlow');
    expectPayloadError(() => decodeItemBatch(Buffer.from([0xff, 0xff, 0xff, 0xff, 1, 0, 0])));
    // a record whose value claims 4 GiB - 1 with 1 byte present
    const huge = Buffer.concat([Buffer.from([1, 0, 0]), Buffer.alloc(4 + 8 + 8), Buffer.from([0, 1, 0x6e, 0xff, 0xff, 0xff, 0xff, 0x00])]);
    expectPayloadError(() => decodeItemRecord(huge));
    expect(spy).not.toHaveBeenCalled();
  });

  it('refuses to encode what the fields cannot hold', () => {
    const record = RECORDS[0]![1];
    expect(() => encodeItemRecord({ ...record, version: 2 ** 53 })).toThrow(RangeError);
    expect(() => encodeItemRecord({ ...record, expiresAt: -1 })).toThrow(RangeError);
    expect(() => encodeItemRecord({ ...record, key: 'κ' })).toThrow(RangeError);
  });
});

describe('timed requests', () => {
  const SENT = 1_700_000_000_000;

  it('a timed command carries its send time and validity, then the command as Forward has it', () => {
    const command: Command = { kind: 'delete', key: 'sess_abc', cas: 7 };
    const payload = encodeTimedCommand({ sentAt: SENT, validForMs: 1750 }, command);
    expect(payload.readBigUInt64BE(0)).toBe(BigInt(SENT));
    expect(payload.readUInt32BE(8)).toBe(1750);
    expect(payload.subarray(12)).toEqual(encodeCommand(command));
    expect(decodeTimedCommand(payload)).toEqual({ timed: { sentAt: SENT, validForMs: 1750 }, command });
    expectMalformedVariants(payload, decodeTimedCommand);
  });

  it('a timed batch carries expiries relative to its send time: a receiver keeps each as long, whatever its clock', () => {
    const records: ItemRecord[] = [
      { key: 'session', value: Buffer.from('v'), flags: 2, expiresAt: SENT + 1_440_000, version: 3, origin: 'n1' },
      { key: 'forever', value: Buffer.from('w'), flags: 0, expiresAt: 0, version: 4, origin: 'n1' },
      { key: 'gone', value: null, flags: 0, expiresAt: SENT + 60_000, version: 5, origin: 'n1' },
      { key: 'just expired', value: Buffer.from('x'), flags: 0, expiresAt: SENT - 5, version: 6, origin: 'n1' },
    ];
    const payload = encodeTimedBatch({ sentAt: SENT, validForMs: 0 }, records);
    // a receiver an hour behind the sender, which got the batch 3 ms after it was sent
    const receivedAt = SENT - 3_600_000 + 3;
    const { timed, records: decoded } = decodeTimedBatch(payload, receivedAt);
    expect(timed).toEqual({ sentAt: SENT, validForMs: 0 });
    expect(decoded.map((record) => record.expiresAt)).toEqual([receivedAt + 1_440_000, 0, receivedAt + 60_000, receivedAt - 5]);
    expect(decoded.map(({ expiresAt: _, ...rest }) => rest)).toEqual(records.map(({ expiresAt: _, ...rest }) => rest));
    expectMalformedVariants(payload, (bytes) => decodeTimedBatch(bytes, receivedAt));
  });

  it('an expiry that would land on 0 (never) is kept as expired', () => {
    const payload = encodeTimedBatch({ sentAt: SENT, validForMs: 0 }, [{ key: 'k', value: Buffer.from('v'), flags: 0, expiresAt: SENT - 10, version: 1, origin: 'a' }]);
    expect(decodeTimedBatch(payload, 10).records[0]!.expiresAt).toBe(1);
  });
});
