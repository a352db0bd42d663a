/**
 * The disk log's records: what the store changed, framed so that a torn or damaged record is
 * told apart from a good one (docs/architecture.md, "Disk storage").
 *
 *     frame   = length u32le | crc u32le | payload          crc = CRC-32 of the payload
 *     payload = kind u8 | fields of that kind
 *     item     (1): expiresAt f64 | cas f64 | version f64 | flags u32 | keyLength u8 | originLength u8 | key | origin | value
 *     deletion (2): until f64 | version f64 | keyLength u8 | originLength u8 | key | origin
 *     removal  (3): keyLength u8 | key
 *     flush    (4): nothing
 *
 * Numbers are little-endian; keys and node ids are latin1, as the protocols read them (a key is at
 * most 250 bytes, a node id at most 64); the value is the rest of the payload. Kinds are
 * append-only: a file written by this version stays readable by the next.
 *
 * A file starts with an 8-byte header: a 4-byte magic naming the file's role, and a u32le
 * format version.
 */
import { crc32 } from './crc32.js';

export const FRAME_HEADER_BYTES = 8;
export const FILE_HEADER_BYTES = 8;
export const FORMAT_VERSION = 1;
/** No payload is longer: a key, an origin and the largest value the daemon accepts fit in far less. */
export const MAX_PAYLOAD_BYTES = 256 * 1024 * 1024;

export enum RecordKind {
  Item = 1,
  Deletion = 2,
  Removal = 3,
  Flush = 4,
}

/** A live item, as the store holds it. */
export interface ItemEntry {
  kind: RecordKind.Item;
  key: string;
  value: Buffer;
  flags: number;
  /** ms since the epoch; 0 never */
  expiresAt: number;
  cas: number;
  version: number;
  origin: string;
}

/** A deletion remembered as a tombstone (cluster mode), until `until`. */
export interface DeletionEntry {
  kind: RecordKind.Deletion;
  key: string;
  version: number;
  origin: string;
  until: number;
}

/** A key gone with nothing remembered: a single node's delete, an eviction, a copy forgotten. */
export interface RemovalEntry {
  kind: RecordKind.Removal;
  key: string;
}

export interface FlushEntry {
  kind: RecordKind.Flush;
}

export type LogEntry = ItemEntry | DeletionEntry | RemovalEntry | FlushEntry;

/** The magic of a data file (a log). */
export const LOG_MAGIC = 'SCLG';

export function fileHeader(magic: string): Buffer {
  const header = Buffer.alloc(FILE_HEADER_BYTES);
  header.write(magic, 0, 'latin1');
  header.writeUInt32LE(FORMAT_VERSION, 4);
  return header;
}

/** Null when `data` starts with the header of `magic`, else what is wrong with it. */
export function checkFileHeader(data: Buffer, magic: string): string | null {
  if (data.length < FILE_HEADER_BYTES) return `shorter than its ${FILE_HEADER_BYTES}-byte header`;
  const found = data.toString('latin1', 0, 4);
  if (found !== magic) return `does not start with ${magic} (found ${JSON.stringify(found)})`;
  const version = data.readUInt32LE(4);
  if (version !== FORMAT_VERSION) return `format version ${version}, this daemon reads ${FORMAT_VERSION}`;
  return null;
}

/** The framed bytes of one entry. */
export function encodeEntry(entry: LogEntry): Buffer {
  const frame = Buffer.allocUnsafe(frameSize(entry));
  encodeEntryInto(entry, frame, 0);
  return frame;
}

/** How many bytes the frame of an item record takes, from its key's, origin's and value's lengths. */
export function itemFrameSize(keyLength: number, originLength: number, valueLength: number): number {
  return FRAME_HEADER_BYTES + 1 + 28 + 2 + keyLength + originLength + valueLength;
}

/** How many bytes the frame of `entry` takes. */
export function frameSize(entry: LogEntry): number {
  switch (entry.kind) {
    case RecordKind.Item: return itemFrameSize(entry.key.length, entry.origin.length, entry.value.length);
    case RecordKind.Deletion: return FRAME_HEADER_BYTES + 1 + 16 + 2 + entry.key.length + entry.origin.length;
    case RecordKind.Removal: return FRAME_HEADER_BYTES + 1 + 1 + entry.key.length;
    case RecordKind.Flush: return FRAME_HEADER_BYTES + 1;
  }
}

/**
 * Writes the frame of `entry` into `frame` at `offset` (which must have frameSize(entry) bytes
 * of room): the log encodes straight into its write buffer. Returns where the frame ends.
 */
export function encodeEntryInto(entry: LogEntry, frame: Buffer, offset: number): number {
  let at = offset + FRAME_HEADER_BYTES;
  at = frame.writeUInt8(entry.kind, at);
  switch (entry.kind) {
    case RecordKind.Item:
      at = frame.writeDoubleLE(entry.expiresAt, at);
      at = frame.writeDoubleLE(entry.cas, at);
      at = frame.writeDoubleLE(entry.version, at);
      at = frame.writeUInt32LE(entry.flags >>> 0, at);
      at = frame.writeUInt8(entry.key.length, at);
      at = frame.writeUInt8(entry.origin.length, at);
      at += frame.write(entry.key, at, 'latin1');
      at += frame.write(entry.origin, at, 'latin1');
      at += entry.value.copy(frame, at);
      break;
    case RecordKind.Deletion:
      at = frame.writeDoubleLE(entry.until, at);
      at = frame.writeDoubleLE(entry.version, at);
      at = frame.writeUInt8(entry.key.length, at);
      at = frame.writeUInt8(entry.origin.length, at);
      at += frame.write(entry.key, at, 'latin1');
      at += frame.write(entry.origin, at, 'latin1');
      break;
    case RecordKind.Removal:
      at = frame.writeUInt8(entry.key.length, at);
      at += frame.write(entry.key, at, 'latin1');
      break;
    case RecordKind.Flush:
      break;
  }
  frame.writeUInt32LE(at - offset - FRAME_HEADER_BYTES, offset);
  frame.writeUInt32LE(crc32(frame, offset + FRAME_HEADER_BYTES, at), offset + 4);
  return at;
}

/** What reading one frame found. */
export type FrameRead =
  /** a whole, good record, and where the next one starts */
  | { kind: 'entry'; entry: LogEntry; next: number }
  /** the data ends inside this frame: a torn write at the end of a file */
  | { kind: 'short' }
  /** the frame is there but wrong: its checksum, its length or its fields */
  | { kind: 'corrupt'; why: string };

/**
 * Reads the frame at `offset` of `data`. The value of an item is a view into `data`: a caller
 * that keeps it past `data` copies it.
 */
export function tryReadFrame(data: Buffer, offset: number): FrameRead {
  if (data.length - offset < FRAME_HEADER_BYTES) return { kind: 'short' };
  const length = data.readUInt32LE(offset);
  if (length === 0 || length > MAX_PAYLOAD_BYTES) return { kind: 'corrupt', why: `impossible record length ${length}` };
  const start = offset + FRAME_HEADER_BYTES;
  const end = start + length;
  if (end > data.length) return { kind: 'short' };
  const expected = data.readUInt32LE(offset + 4);
  const actual = crc32(data, start, end);
  if (actual !== expected) return { kind: 'corrupt', why: `checksum ${hex(actual)}, recorded ${hex(expected)}` };
  const entry = decodePayload(data, start, end);
  return typeof entry === 'string' ? { kind: 'corrupt', why: entry } : { kind: 'entry', entry, next: end };
}

function decodePayload(data: Buffer, start: number, end: number): LogEntry | string {
  const kind = data[start]!;
  let at = start + 1;
  switch (kind) {
    case RecordKind.Item: {
      if (end - at < 30) return 'item record too short';
      const expiresAt = data.readDoubleLE(at);
      const cas = data.readDoubleLE(at + 8);
      const version = data.readDoubleLE(at + 16);
      const flags = data.readUInt32LE(at + 24);
      const keyLength = data[at + 28]!;
      const originLength = data[at + 29]!;
      at += 30;
      if (at + keyLength + originLength > end) return 'item record: key and origin longer than the record';
      const key = data.toString('latin1', at, at + keyLength);
      const origin = data.toString('latin1', at + keyLength, at + keyLength + originLength);
      at += keyLength + originLength;
      return { kind: RecordKind.Item, key, origin, expiresAt, cas, version, flags, value: data.subarray(at, end) };
    }
    case RecordKind.Deletion: {
      if (end - at < 18) return 'deletion record too short';
      const until = data.readDoubleLE(at);
      const version = data.readDoubleLE(at + 8);
      const keyLength = data[at + 16]!;
      const originLength = data[at + 17]!;
      at += 18;
      if (at + keyLength + originLength !== end) return 'deletion record: wrong length';
      return { kind: RecordKind.Deletion, key: data.toString('latin1', at, at + keyLength), origin: data.toString('latin1', at + keyLength, end), until, version };
    }
    case RecordKind.Removal: {
      const keyLength = data[at]!;
      if (at + 1 + keyLength !== end) return 'removal record: wrong length';
      return { kind: RecordKind.Removal, key: data.toString('latin1', at + 1, end) };
    }
    case RecordKind.Flush:
      return end === at ? { kind: RecordKind.Flush } : 'flush record: wrong length';
    default:
      return `unknown record kind ${kind}`;
  }
}

function hex(n: number): string {
  return `0x${n.toString(16).padStart(8, '0')}`;
}
