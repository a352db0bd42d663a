/**
 * Binary codecs for the high-rate peer payloads:
 * - a client Command forwarded to the session's master (Forward) and its Reply (ForwardReply);
 * - item records, one (Replicate) or many in one frame (Handoff, anti-entropy repair).
 *
 * Built on PayloadWriter / PayloadReader, so everything is big-endian. Layouts (docs/peer-protocol.md
 * notation; `key` = u16 length + latin1 bytes, `str16`/`str32` = u16/u32 length + UTF-8,
 * `bytes32` = u32 length + bytes, `i64` = two's complement u64 holding a safe integer,
 * `bool` = u8 0 or 1, `count` = u32):
 *
 *     Command = u8 CommandTag | fields
 *       Store            u8 mode | key | u32 flags | i64 exptime | u64 cas | bytes32 value
 *       RefuseOversized  u8 mode | key
 *       Get              bool withCas | count | key…
 *       TouchGet         i64 exptime | bool withCas | count | key…
 *       Touch            key | i64 exptime
 *       Delete           key | u64 cas
 *       Arith            bool incr | key | u64 delta | bool hasInitial | [u64 initial] | i64 exptime | u64 cas
 *       Flush            i64 delaySeconds
 *       Verbosity        u64 level
 *       Stats            count | str16 arg…
 *       Version, Quit    (nothing)
 *
 *     Reply = u8 ReplyTag | fields
 *       Status           u8 status | u64 cas | bool hasFlags | [u32 flags]
 *       Values           count | (key | u32 flags | u64 cas | bytes32 value)… | count | key… (missing)
 *       Number           u64 value | u64 cas
 *       Stats            count | (str16 name | str32 value)…
 *       KeyDump          count | (key | u32 bytes | i64 exptime)…
 *       Version          str16 version
 *       ServerError      str32 message
 *       UnknownStats, StatsReset, Quit  (nothing)
 *
 *     ItemRecord = bool hasValue | key | u32 flags | u64 expiresAt | u64 version | str16 origin | [bytes32 value]
 *                  (a deletion has no value; its expiresAt is until when the deletion is to be
 *                  remembered, ms since the epoch, or 0 from nodes that predate that: the
 *                  receiver then decides)
 *     ItemBatch  = count | ItemRecord…
 *
 *     Timed      = u64 sentAt | u32 validForMs
 *                  (the sender's wall clock when it sent the request, ms since the epoch, and how
 *                  long after that the sender still waits for the answer; 0: no deadline)
 *     TimedCommand = Timed | Command                                        (ForwardWithin)
 *     TimedBatch   = Timed | count | TimedRecord…                           (ReplicateTimed)
 *     TimedRecord  = bool hasValue | key | u32 flags | bool expires | i64 expiresInMs | u64 version
 *                    | str16 origin | [bytes32 value]
 *                  (expiresInMs: the expiry, or for a deletion until when it is remembered, as
 *                  ms after sentAt: relative, so that a receiver whose clock differs keeps it
 *                  exactly as long; it may be 0 or negative for what has just expired)
 *
 * The tag numbers, and the wire numbers of StoreMode and Status (which are spelled out here
 * rather than taken from the enums' implicit values), are part of the peer protocol: never
 * renumber, only append. A layout that changes takes a new tag.
 *
 * Decoders are exact: a truncated payload, trailing bytes, an unknown tag, mode or status, a
 * boolean other than 0/1 or a count that the remaining bytes cannot hold throw
 * PeerError('ERR_PEER_PAYLOAD'); lengths and counts are checked against the remaining bytes
 * before anything is allocated. Decoded values are copies in their own (unpooled) memory, never
 * views into the received frame, so a stored item does not keep a socket chunk alive.
 * Encoders throw RangeError for what cannot be encoded (a key with a character above 0xff, a
 * number out of its field's range): that is a bug on the sending side, not a peer's doing.
 */
import type { ItemRecord } from '../../store/types.js';
import { PeerError } from '../../errors.js';
import { Status, StoreMode, type Command, type Reply, type ValueEntry } from '../../protocol/types.js';
import { PayloadReader, PayloadWriter } from './payload.js';

/** The leading u8 of a Command payload. Numbers are part of the peer protocol; never renumber. 0 is never sent. */
export enum CommandTag {
  Store = 1,
  RefuseOversized = 2,
  Get = 3,
  TouchGet = 4,
  Touch = 5,
  Delete = 6,
  Arith = 7,
  Flush = 8,
  Version = 9,
  Verbosity = 10,
  Stats = 11,
  Quit = 12,
}

/** The leading u8 of a Reply payload. Numbers are part of the peer protocol; never renumber. 0 is never sent. */
export enum ReplyTag {
  Status = 1,
  Values = 2,
  Number = 3,
  Stats = 4,
  UnknownStats = 5,
  StatsReset = 6,
  KeyDump = 7,
  Version = 8,
  Quit = 9,
  ServerError = 10,
  NotAllowed = 11,
}

/** StoreMode on the wire. Numbers are part of the peer protocol; never renumber. */
const STORE_MODE_WIRE: Readonly<Record<StoreMode, number>> = {
  [StoreMode.Set]: 0,
  [StoreMode.Add]: 1,
  [StoreMode.Replace]: 2,
  [StoreMode.Append]: 3,
  [StoreMode.Prepend]: 4,
  [StoreMode.Cas]: 5,
};

/** Status on the wire. Numbers are part of the peer protocol; never renumber. */
const STATUS_WIRE: Readonly<Record<Status, number>> = {
  [Status.Stored]: 0,
  [Status.NotStored]: 1,
  [Status.Exists]: 2,
  [Status.NotFound]: 3,
  [Status.Deleted]: 4,
  [Status.Touched]: 5,
  [Status.Ok]: 6,
  [Status.TooLarge]: 7,
  [Status.NoMemory]: 8,
  [Status.NonNumeric]: 9,
  [Status.InvalidArguments]: 10,
};

const STORE_MODE_FROM_WIRE = invert<StoreMode>(STORE_MODE_WIRE);
const STATUS_FROM_WIRE = invert<Status>(STATUS_WIRE);

/** One item as replication and handoff carry it: the store's own record (memory-store.ts). */
export type { ItemRecord };

// Smallest encoded size of one element of each list, to refuse a count the payload cannot hold.
const MIN_KEY = 2;
const MIN_VALUE_ENTRY = MIN_KEY + 4 + 8 + 4;
const MIN_STATS_ARG = 2;
const MIN_STATS_ENTRY = 2 + 4;
const MIN_KEY_DUMP_ENTRY = MIN_KEY + 4 + 8;
const MIN_ITEM_RECORD = 1 + MIN_KEY + 4 + 8 + 8 + 2;
const MIN_TIMED_RECORD = MIN_ITEM_RECORD + 1;
const TIMED_SIZE = 8 + 4;

// ---------------------------------------------------------------------------------------------
// Commands

export function encodeCommand(command: Command): Buffer {
  return writeCommand(command, (capacity) => new PayloadWriter(capacity)).finish();
}

/**
 * Writes `command` into the writer `make` gives for about `capacity` bytes: a fresh one
 * (encodeCommand), or one with the Timed fields before it (encodeTimedCommand), so a forward's
 * payload is encoded once, into its one buffer.
 */
function writeCommand(command: Command, make: (capacity: number) => PayloadWriter): PayloadWriter {
  switch (command.kind) {
    case 'store': {
      const writer = make(32 + command.key.length + command.value.length);
      writer.u8(CommandTag.Store).u8(STORE_MODE_WIRE[command.mode]);
      writeKey(writer, command.key);
      writer.u32(command.flags);
      writeInt(writer, command.exptime);
      return writer.u64(command.cas).bytes32(command.value);
    }
    case 'refuseOversized': {
      const writer = make(8 + command.key.length).u8(CommandTag.RefuseOversized).u8(STORE_MODE_WIRE[command.mode]);
      return writeKey(writer, command.key);
    }
    case 'get': {
      const writer = make(8 + keysSize(command.keys)).u8(CommandTag.Get).u8(bool(command.withCas));
      return writeKeys(writer, command.keys);
    }
    case 'touchGet': {
      const writer = make(16 + keysSize(command.keys)).u8(CommandTag.TouchGet);
      writeInt(writer, command.exptime);
      writer.u8(bool(command.withCas));
      return writeKeys(writer, command.keys);
    }
    case 'touch': {
      const writer = make(16 + command.key.length).u8(CommandTag.Touch);
      writeKey(writer, command.key);
      return writeInt(writer, command.exptime);
    }
    case 'delete': {
      const writer = make(16 + command.key.length).u8(CommandTag.Delete);
      return writeKey(writer, command.key).u64(command.cas);
    }
    case 'arith': {
      const writer = make(48 + command.key.length).u8(CommandTag.Arith).u8(bool(command.incr));
      writeKey(writer, command.key).u64(command.delta);
      if (command.initial === null) writer.u8(0);
      else writer.u8(1).u64(command.initial);
      writeInt(writer, command.exptime);
      return writer.u64(command.cas);
    }
    case 'flush':
      return writeInt(make(16).u8(CommandTag.Flush), command.delaySeconds);
    case 'version':
      return make(1).u8(CommandTag.Version);
    case 'verbosity':
      return make(16).u8(CommandTag.Verbosity).u64(command.level);
    case 'stats': {
      const writer = make(8 + command.args.reduce((sum, arg) => sum + 2 + arg.length * 3, 0)).u8(CommandTag.Stats);
      writer.u32(command.args.length);
      for (const arg of command.args) writer.string16(arg);
      return writer;
    }
    case 'quit':
      return make(1).u8(CommandTag.Quit);
    case 'saslList':
    case 'saslAuth':
      // Authentication is between a client and the node it connected to: never forwarded.
      throw new PeerError('ERR_PEER_PAYLOAD', `${command.kind} is not sent between nodes`);
    default:
      return unreachable(command);
  }
}

export function decodeCommand(payload: Buffer): Command {
  const reader = new PayloadReader(payload);
  const tag = reader.u8();
  let command: Command;
  switch (tag) {
    case CommandTag.Store: {
      const mode = readStoreMode(reader);
      const key = readKey(reader);
      const flags = reader.u32();
      const exptime = readInt(reader);
      const cas = reader.u64Number();
      command = { kind: 'store', mode, key, flags, exptime, value: copyOf(reader.bytes32()), cas };
      break;
    }
    case CommandTag.RefuseOversized: {
      const mode = readStoreMode(reader);
      command = { kind: 'refuseOversized', mode, key: readKey(reader) };
      break;
    }
    case CommandTag.Get: {
      const withCas = readBool(reader);
      command = { kind: 'get', keys: readKeys(reader), withCas };
      break;
    }
    case CommandTag.TouchGet: {
      const exptime = readInt(reader);
      const withCas = readBool(reader);
      command = { kind: 'touchGet', keys: readKeys(reader), exptime, withCas };
      break;
    }
    case CommandTag.Touch: {
      const key = readKey(reader);
      command = { kind: 'touch', key, exptime: readInt(reader) };
      break;
    }
    case CommandTag.Delete: {
      const key = readKey(reader);
      command = { kind: 'delete', key, cas: reader.u64Number() };
      break;
    }
    case CommandTag.Arith: {
      const incr = readBool(reader);
      const key = readKey(reader);
      const delta = reader.u64();
      const initial = readBool(reader) ? reader.u64() : null;
      const exptime = readInt(reader);
      command = { kind: 'arith', key, incr, delta, initial, exptime, cas: reader.u64Number() };
      break;
    }
    case CommandTag.Flush:
      command = { kind: 'flush', delaySeconds: readInt(reader) };
      break;
    case CommandTag.Version:
      command = { kind: 'version' };
      break;
    case CommandTag.Verbosity:
      command = { kind: 'verbosity', level: reader.u64Number() };
      break;
    case CommandTag.Stats: {
      const count = readCount(reader, MIN_STATS_ARG, 'stats args');
      const args: string[] = [];
      for (let i = 0; i < count; i++) args.push(reader.string16());
      command = { kind: 'stats', args };
      break;
    }
    case CommandTag.Quit:
      command = { kind: 'quit' };
      break;
    default:
      throw new PeerError('ERR_PEER_PAYLOAD', `unknown command tag ${tag}`);
  }
  reader.end();
  return command;
}

// ---------------------------------------------------------------------------------------------
// Replies

export function encodeReply(reply: Reply): Buffer {
  switch (reply.kind) {
    case 'status': {
      const writer = new PayloadWriter(24).u8(ReplyTag.Status).u8(STATUS_WIRE[reply.status]).u64(reply.cas);
      if (reply.flags === undefined) writer.u8(0);
      else writer.u8(1).u32(reply.flags);
      return writer.finish();
    }
    case 'values': {
      let size = 16 + keysSize(reply.missing);
      for (const entry of reply.entries) size += MIN_VALUE_ENTRY + entry.key.length + entry.value.length;
      const writer = new PayloadWriter(size).u8(ReplyTag.Values).u32(reply.entries.length);
      for (const entry of reply.entries) {
        writeKey(writer, entry.key).u32(entry.flags).u64(entry.cas).bytes32(entry.value);
      }
      return writeKeys(writer, reply.missing).finish();
    }
    case 'number':
      return new PayloadWriter(24).u8(ReplyTag.Number).u64(reply.value).u64(reply.cas).finish();
    case 'stats': {
      let size = 8;
      for (const [name, value] of reply.entries) size += MIN_STATS_ENTRY + (name.length + value.length) * 3;
      const writer = new PayloadWriter(size).u8(ReplyTag.Stats).u32(reply.entries.length);
      for (const [name, value] of reply.entries) writer.string16(name).string32(value);
      return writer.finish();
    }
    case 'unknownStats':
      return tagOnly(ReplyTag.UnknownStats);
    case 'statsReset':
      return tagOnly(ReplyTag.StatsReset);
    case 'keyDump': {
      let size = 8;
      for (const entry of reply.entries) size += MIN_KEY_DUMP_ENTRY + entry.key.length;
      const writer = new PayloadWriter(size).u8(ReplyTag.KeyDump).u32(reply.entries.length);
      for (const entry of reply.entries) {
        writeKey(writer, entry.key).u32(entry.bytes);
        writeInt(writer, entry.exptime);
      }
      return writer.finish();
    }
    case 'version':
      return new PayloadWriter(8 + reply.version.length * 3).u8(ReplyTag.Version).string16(reply.version).finish();
    case 'quit':
      return tagOnly(ReplyTag.Quit);
    case 'serverError':
      return new PayloadWriter(8 + reply.message.length * 3).u8(ReplyTag.ServerError).string32(reply.message).finish();
    case 'notAllowed':
      return new PayloadWriter(8 + reply.message.length * 3).u8(ReplyTag.NotAllowed).string32(reply.message).finish();
    case 'saslMechs':
    case 'authenticated':
    case 'authFailed':
      throw new PeerError('ERR_PEER_PAYLOAD', `a ${reply.kind} reply is not sent between nodes`);
    default:
      return unreachable(reply);
  }
}

/**
 * A Reply. With `values` 'view' the values of a Values reply are views into `payload` rather
 * than copies: for a forwarded read, whose reply is written to the client's output and dropped,
 * the copy would be made only to be copied again. Only a caller that keeps nothing of the reply
 * asks for views.
 */
export function decodeReply(payload: Buffer, values: 'copy' | 'view' = 'copy'): Reply {
  const reader = new PayloadReader(payload);
  const tag = reader.u8();
  let reply: Reply;
  switch (tag) {
    case ReplyTag.Status: {
      const status = readStatus(reader);
      const cas = reader.u64Number();
      reply = readBool(reader) ? { kind: 'status', status, cas, flags: reader.u32() } : { kind: 'status', status, cas };
      break;
    }
    case ReplyTag.Values: {
      const count = readCount(reader, MIN_VALUE_ENTRY, 'value entries');
      const entries: ValueEntry[] = [];
      for (let i = 0; i < count; i++) {
        const key = readKey(reader);
        const flags = reader.u32();
        const cas = reader.u64Number();
        const value = reader.bytes32();
        entries.push({ key, flags, value: values === 'view' ? value : copyOf(value), cas });
      }
      reply = { kind: 'values', entries, missing: readKeys(reader) };
      break;
    }
    case ReplyTag.Number: {
      const value = reader.u64();
      reply = { kind: 'number', value, cas: reader.u64Number() };
      break;
    }
    case ReplyTag.Stats: {
      const count = readCount(reader, MIN_STATS_ENTRY, 'stats entries');
      const entries: Array<[string, string]> = [];
      for (let i = 0; i < count; i++) {
        const name = reader.string16();
        entries.push([name, reader.string32()]);
      }
      reply = { kind: 'stats', entries };
      break;
    }
    case ReplyTag.UnknownStats:
      reply = { kind: 'unknownStats' };
      break;
    case ReplyTag.StatsReset:
      reply = { kind: 'statsReset' };
      break;
    case ReplyTag.KeyDump: {
      const count = readCount(reader, MIN_KEY_DUMP_ENTRY, 'key dump entries');
      const entries: Array<{ key: string; bytes: number; exptime: number }> = [];
      for (let i = 0; i < count; i++) {
        const key = readKey(reader);
        const bytes = reader.u32();
        entries.push({ key, bytes, exptime: readInt(reader) });
      }
      reply = { kind: 'keyDump', entries };
      break;
    }
    case ReplyTag.Version:
      reply = { kind: 'version', version: reader.string16() };
      break;
    case ReplyTag.Quit:
      reply = { kind: 'quit' };
      break;
    case ReplyTag.ServerError:
      reply = { kind: 'serverError', message: reader.string32() };
      break;
    case ReplyTag.NotAllowed:
      reply = { kind: 'notAllowed', message: reader.string32() };
      break;
    default:
      throw new PeerError('ERR_PEER_PAYLOAD', `unknown reply tag ${tag}`);
  }
  reader.end();
  return reply;
}

// ---------------------------------------------------------------------------------------------
// Item records (replication, handoff)

export function encodeItemRecord(record: ItemRecord): Buffer {
  return writeItemRecord(new PayloadWriter(itemRecordSize(record)), record).finish();
}

export function decodeItemRecord(payload: Buffer): ItemRecord {
  const reader = new PayloadReader(payload);
  const record = readItemRecord(reader);
  reader.end();
  return record;
}

export function encodeItemBatch(records: readonly ItemRecord[]): Buffer {
  let size = 4;
  for (const record of records) size += itemRecordSize(record);
  const writer = new PayloadWriter(size).u32(records.length);
  for (const record of records) writeItemRecord(writer, record);
  return writer.finish();
}

export function decodeItemBatch(payload: Buffer): ItemRecord[] {
  const reader = new PayloadReader(payload);
  const count = readCount(reader, MIN_ITEM_RECORD, 'item records');
  const records: ItemRecord[] = [];
  for (let i = 0; i < count; i++) records.push(readItemRecord(reader));
  reader.end();
  return records;
}

function itemRecordSize(record: ItemRecord): number {
  return MIN_ITEM_RECORD + 4 + record.key.length + record.origin.length * 3 + (record.value?.length ?? 0);
}

function writeItemRecord(writer: PayloadWriter, record: ItemRecord): PayloadWriter {
  writer.u8(bool(record.value !== null));
  writeKey(writer, record.key).u32(record.flags).u64(record.expiresAt).u64(record.version).string16(record.origin);
  if (record.value !== null) writer.bytes32(record.value);
  return writer;
}

function readItemRecord(reader: PayloadReader): ItemRecord {
  const hasValue = readBool(reader);
  const key = readKey(reader);
  const flags = reader.u32();
  const expiresAt = reader.u64Number();
  const version = reader.u64Number();
  const origin = reader.string16();
  const value = hasValue ? copyOf(reader.bytes32()) : null;
  return { key, value, flags, expiresAt, version, origin };
}

// ---------------------------------------------------------------------------------------------
// Timed requests (a forward or a copy with its send time and deadline; expiries relative)

/** When a request was sent (the sender's wall clock, ms) and how long it stays valid (0: no deadline). */
export interface Timed {
  sentAt: number;
  validForMs: number;
}

export function encodeTimedCommand(timed: Timed, command: Command): Buffer {
  return writeCommand(command, (capacity) => writeTimed(new PayloadWriter(TIMED_SIZE + capacity), timed)).finish();
}

export function decodeTimedCommand(payload: Buffer): { timed: Timed; command: Command } {
  const reader = new PayloadReader(payload);
  const timed = readTimed(reader);
  return { timed, command: decodeCommand(payload.subarray(TIMED_SIZE)) };
}

/** Records whose expiries travel relative to `timed.sentAt`. */
export function encodeTimedBatch(timed: Timed, records: readonly ItemRecord[]): Buffer {
  let size = TIMED_SIZE + 4;
  for (const record of records) size += itemRecordSize(record) + 1;
  const writer = writeTimed(new PayloadWriter(size), timed).u32(records.length);
  for (const record of records) {
    writer.u8(bool(record.value !== null));
    writeKey(writer, record.key).u32(record.flags).u8(bool(record.expiresAt !== 0));
    writeInt(writer, record.expiresAt === 0 ? 0 : record.expiresAt - timed.sentAt);
    writer.u64(record.version).string16(record.origin);
    if (record.value !== null) writer.bytes32(record.value);
  }
  return writer.finish();
}

/** The records, their expiries made absolute on this node's clock: `receivedAt` + what was left. */
export function decodeTimedBatch(payload: Buffer, receivedAt: number): { timed: Timed; records: ItemRecord[] } {
  const reader = new PayloadReader(payload);
  const timed = readTimed(reader);
  const count = readCount(reader, MIN_TIMED_RECORD, 'item records');
  const records: ItemRecord[] = [];
  for (let i = 0; i < count; i++) {
    const hasValue = readBool(reader);
    const key = readKey(reader);
    const flags = reader.u32();
    const expires = readBool(reader);
    const expiresIn = readInt(reader);
    const version = reader.u64Number();
    const origin = reader.string16();
    const value = hasValue ? copyOf(reader.bytes32()) : null;
    // An expiry that lands on 0 would read as "never": one ms is as expired.
    records.push({ key, value, flags, expiresAt: expires ? Math.max(1, receivedAt + expiresIn) : 0, version, origin });
  }
  reader.end();
  return { timed, records };
}

function writeTimed(writer: PayloadWriter, timed: Timed): PayloadWriter {
  return writer.u64(timed.sentAt).u32(timed.validForMs);
}

function readTimed(reader: PayloadReader): Timed {
  return { sentAt: reader.u64Number(), validForMs: reader.u32() };
}

// ---------------------------------------------------------------------------------------------
// Field helpers

/** Keys are latin1: one byte per character, so every byte 0x00-0xff round-trips. */
function writeKey(writer: PayloadWriter, key: string): PayloadWriter {
  for (let i = 0; i < key.length; i++) {
    if (key.charCodeAt(i) > 0xff) throw new RangeError(`key has a character above 0xff at ${i}; keys are latin1`);
  }
  return writer.string16(key, 'latin1');
}

function readKey(reader: PayloadReader): string {
  return reader.string16('latin1');
}

function writeKeys(writer: PayloadWriter, keys: readonly string[]): PayloadWriter {
  writer.u32(keys.length);
  for (const key of keys) writeKey(writer, key);
  return writer;
}

function readKeys(reader: PayloadReader): string[] {
  const count = readCount(reader, MIN_KEY, 'keys');
  const keys: string[] = [];
  for (let i = 0; i < count; i++) keys.push(readKey(reader));
  return keys;
}

function keysSize(keys: readonly string[]): number {
  let size = 4;
  for (const key of keys) size += MIN_KEY + key.length;
  return size;
}

/** A u32 element count, refused when the remaining bytes cannot hold that many elements. */
function readCount(reader: PayloadReader, minElementSize: number, what: string): number {
  const count = reader.u32();
  if (count * minElementSize > reader.remaining) {
    throw new PeerError('ERR_PEER_PAYLOAD', `${count} ${what} cannot fit in the ${reader.remaining} bytes left`);
  }
  return count;
}

/** A safe integer that may be negative (exptimes: memcached's negative exptime means "expired"). */
function writeInt(writer: PayloadWriter, value: number): PayloadWriter {
  return writer.i64(value);
}

function readInt(reader: PayloadReader): number {
  const safe = reader.i64Safe();
  if (safe !== null) return safe;
  const value = BigInt.asIntN(64, reader.u64());
  if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < BigInt(Number.MIN_SAFE_INTEGER)) {
    throw new PeerError('ERR_PEER_PAYLOAD', `i64 ${value} is not a safe integer`);
  }
  return Number(value);
}

function bool(value: boolean): number {
  return value ? 1 : 0;
}

function readBool(reader: PayloadReader): boolean {
  const value = reader.u8();
  if (value > 1) throw new PeerError('ERR_PEER_PAYLOAD', `boolean byte ${value} is neither 0 nor 1`);
  return value === 1;
}

function readStoreMode(reader: PayloadReader): StoreMode {
  const wire = reader.u8();
  const mode = STORE_MODE_FROM_WIRE[wire];
  if (mode === undefined) throw new PeerError('ERR_PEER_PAYLOAD', `unknown store mode ${wire}`);
  return mode;
}

function readStatus(reader: PayloadReader): Status {
  const wire = reader.u8();
  const status = STATUS_FROM_WIRE[wire];
  if (status === undefined) throw new PeerError('ERR_PEER_PAYLOAD', `unknown status ${wire}`);
  return status;
}

/** A copy in its own memory (not the shared pool), so the caller may keep it for as long as it likes. */
function copyOf(view: Buffer): Buffer {
  const copy = Buffer.allocUnsafeSlow(view.length);
  view.copy(copy);
  return copy;
}

function tagOnly(tag: number): Buffer {
  return Buffer.from([tag]);
}

/** wire number -> enum value; a duplicate wire number is a bug caught at load time. */
function invert<E extends number>(table: Readonly<Record<E, number>>): Array<E | undefined> {
  const inverse: Array<E | undefined> = [];
  for (const [value, wire] of Object.entries(table) as Array<[string, number]>) {
    if (inverse[wire] !== undefined) throw new Error(`wire number ${wire} used twice`);
    inverse[wire] = Number(value) as E;
  }
  return inverse;
}

function unreachable(value: never): never {
  throw new RangeError(`unknown kind ${(value as { kind?: unknown }).kind}`);
}
