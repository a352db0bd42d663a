/**
 * Payload helpers: a compact big-endian binary writer and reader for the high-rate messages
 * (Forward, Replicate, Handoff), a JSON helper for low-rate control messages (Membership), and
 * the Error payload. Readers throw PeerError('ERR_PEER_PAYLOAD') on truncated or malformed input,
 * which a handler turns into an Error reply (RemoteErrorCode.BadPayload).
 *
 * Strings are UTF-8 unless told otherwise; memcached keys travel as 'latin1' so that every byte
 * round-trips (the protocols keep keys as latin1 strings).
 */
import { PeerError } from '../../errors.js';
import type { RemoteErrorCode } from './opcodes.js';

const MAX_U16 = 0xffff;
const MAX_U32 = 0xffffffff;
const MAX_U64 = (1n << 64n) - 1n;

export class PayloadWriter {
  private buffer: Buffer;
  private position = 0;

  constructor(initialCapacity = 256) {
    this.buffer = Buffer.allocUnsafe(Math.max(16, initialCapacity));
  }

  get length(): number {
    return this.position;
  }

  u8(value: number): this {
    checkRange(value, 0xff, 'u8');
    this.reserve(1);
    this.buffer[this.position++] = value;
    return this;
  }

  u16(value: number): this {
    checkRange(value, MAX_U16, 'u16');
    this.reserve(2);
    this.position = this.buffer.writeUInt16BE(value, this.position);
    return this;
  }

  u32(value: number): this {
    checkRange(value, MAX_U32, 'u32');
    this.reserve(4);
    this.position = this.buffer.writeUInt32BE(value, this.position);
    return this;
  }

  /** A u64 from a bigint, or from a safe non-negative integer number. */
  u64(value: bigint | number): this {
    // A number is written as two u32 halves: no bigint made per field on the per-request path.
    if (typeof value === 'number') return this.i64Halves(checkSafe(value));
    const big = value;
    if (big < 0n || big > MAX_U64) throw new RangeError(`${value} is not a u64`);
    this.reserve(8);
    this.position = this.buffer.writeBigUInt64BE(big, this.position);
    return this;
  }

  /** A safe integer as a two's complement 64-bit field. */
  i64(value: number): this {
    if (!Number.isSafeInteger(value)) throw new RangeError(`${value} is not a safe integer`);
    return this.i64Halves(value);
  }

  private i64Halves(value: number): this {
    const high = Math.floor(value / 0x1_0000_0000);
    this.reserve(8);
    this.buffer.writeInt32BE(high, this.position);
    this.buffer.writeUInt32BE(value - high * 0x1_0000_0000, this.position + 4);
    this.position += 8;
    return this;
  }

  /** Raw bytes, no length (for fixed-size fields such as nonces). */
  raw(bytes: Buffer): this {
    this.reserve(bytes.length);
    this.position += bytes.copy(this.buffer, this.position);
    return this;
  }

  /** u32 length, then the bytes. */
  bytes32(bytes: Buffer): this {
    this.u32(bytes.length);
    return this.raw(bytes);
  }

  /** u16 byte length, then the string. */
  string16(text: string, encoding: BufferEncoding = 'utf8'): this {
    return this.string(text, encoding, 2);
  }

  /** u32 byte length, then the string. */
  string32(text: string, encoding: BufferEncoding = 'utf8'): this {
    return this.string(text, encoding, 4);
  }

  /** The payload written so far (a view; the writer must not be used afterwards). */
  finish(): Buffer {
    return this.buffer.subarray(0, this.position);
  }

  private string(text: string, encoding: BufferEncoding, prefix: 2 | 4): this {
    const byteLength = Buffer.byteLength(text, encoding);
    if (prefix === 2 && byteLength > MAX_U16) throw new RangeError(`string of ${byteLength} bytes does not fit a u16 length`);
    this.reserve(prefix + byteLength);
    this.position = prefix === 2 ? this.buffer.writeUInt16BE(byteLength, this.position) : this.buffer.writeUInt32BE(byteLength, this.position);
    this.position += this.buffer.write(text, this.position, byteLength, encoding);
    return this;
  }

  private reserve(length: number): void {
    const needed = this.position + length;
    if (needed <= this.buffer.length) return;
    const grown = Buffer.allocUnsafe(Math.max(needed, this.buffer.length * 2));
    this.buffer.copy(grown, 0, 0, this.position);
    this.buffer = grown;
  }
}

export class PayloadReader {
  private position = 0;

  constructor(private readonly payload: Buffer) {}

  get remaining(): number {
    return this.payload.length - this.position;
  }

  u8(): number {
    this.need(1, 'u8');
    return this.payload[this.position++]!;
  }

  u16(): number {
    this.need(2, 'u16');
    const value = this.payload.readUInt16BE(this.position);
    this.position += 2;
    return value;
  }

  u32(): number {
    this.need(4, 'u32');
    const value = this.payload.readUInt32BE(this.position);
    this.position += 4;
    return value;
  }

  u64(): bigint {
    this.need(8, 'u64');
    const value = this.payload.readBigUInt64BE(this.position);
    this.position += 8;
    return value;
  }

  /** A u64 that must fit a JS number exactly (counters, versions below 2^53). */
  u64Number(): number {
    this.need(8, 'u64');
    const high = this.payload.readUInt32BE(this.position);
    if (high > 0x1f_ffff) throw new PeerError('ERR_PEER_PAYLOAD', `u64 ${this.payload.readBigUInt64BE(this.position)} exceeds 2^53 - 1`);
    const value = high * 0x1_0000_0000 + this.payload.readUInt32BE(this.position + 4);
    this.position += 8;
    return value;
  }

  /** A two's complement 64-bit field that must hold a safe integer; null when it does not. */
  i64Safe(): number | null {
    this.need(8, 'i64');
    const value = this.payload.readInt32BE(this.position) * 0x1_0000_0000 + this.payload.readUInt32BE(this.position + 4);
    if (!Number.isSafeInteger(value)) return null;
    this.position += 8;
    return value;
  }

  /** `length` raw bytes, as a view into the payload. */
  raw(length: number): Buffer {
    this.need(length, `${length} bytes`);
    const bytes = this.payload.subarray(this.position, this.position + length);
    this.position += length;
    return bytes;
  }

  bytes32(): Buffer {
    return this.raw(this.u32());
  }

  string16(encoding: BufferEncoding = 'utf8'): string {
    return this.raw(this.u16()).toString(encoding);
  }

  string32(encoding: BufferEncoding = 'utf8'): string {
    return this.raw(this.u32()).toString(encoding);
  }

  /** For fixed-layout payloads: anything left over is malformed. */
  end(): void {
    if (this.remaining !== 0) throw new PeerError('ERR_PEER_PAYLOAD', `${this.remaining} unexpected trailing bytes`);
  }

  private need(length: number, what: string): void {
    if (this.remaining < length) throw new PeerError('ERR_PEER_PAYLOAD', `payload truncated: ${what} needed at offset ${this.position}, ${this.remaining} bytes left`);
  }
}

/** JSON for low-rate control messages (Membership); bigints are not allowed. */
export function encodeJson(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value), 'utf8');
}

/** Parses; the caller still checks the shape (it came from another process). */
export function decodeJson<T = unknown>(payload: Buffer): T {
  try {
    return JSON.parse(payload.toString('utf8')) as T;
  } catch (error) {
    throw new PeerError('ERR_PEER_PAYLOAD', `payload is not JSON: ${(error as Error).message}`);
  }
}

/** Error frame payload: u16 code | string16 message. */
export interface ErrorPayload {
  code: RemoteErrorCode | number;
  message: string;
}

export function encodeError(code: RemoteErrorCode, message: string): Buffer {
  // Messages are for logs; a long one is cut rather than refused, and stays well inside the
  // handshake's frame limit (300 chars are at most 900 UTF-8 bytes).
  const text = message.length > 300 ? `${message.slice(0, 299)}…` : message;
  return new PayloadWriter(8 + text.length).u16(code).string16(text).finish();
}

export function decodeError(payload: Buffer): ErrorPayload {
  const reader = new PayloadReader(payload);
  return { code: reader.u16(), message: reader.string16() };
}

function checkRange(value: number, max: number, what: string): void {
  if (!Number.isInteger(value) || value < 0 || value > max) throw new RangeError(`${value} is not a ${what}`);
}

function checkSafe(value: number): number {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`${value} is not a safe non-negative integer`);
  return value;
}
