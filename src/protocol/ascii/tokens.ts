/**
 * Byte-level helpers for the ascii protocol: tokens are found by scanning for spaces in the
 * received buffer, and numbers are parsed from bytes, so a request costs no string splitting.
 */

/** Positions of the tokens of one command line: starts[i]..ends[i] in the line's buffer. */
export class TokenList {
  starts: number[] = [];
  ends: number[] = [];
  count = 0;

  /** Splits buf[start, end) on spaces (protocol.txt: tokens are separated by one or more spaces). */
  tokenize(buf: Buffer, start: number, end: number): number {
    let count = 0;
    let i = start;
    while (i < end) {
      while (i < end && buf[i] === 0x20) i++;
      if (i >= end) break;
      const tokenStart = i;
      while (i < end && buf[i] !== 0x20) i++;
      this.starts[count] = tokenStart;
      this.ends[count] = i;
      count++;
    }
    this.count = count;
    return count;
  }

  length(index: number): number {
    return this.ends[index]! - this.starts[index]!;
  }

  text(buf: Buffer, index: number): string {
    return buf.toString('latin1', this.starts[index]!, this.ends[index]!);
  }

  equals(buf: Buffer, index: number, word: string): boolean {
    const start = this.starts[index]!;
    if (this.ends[index]! - start !== word.length) return false;
    for (let i = 0; i < word.length; i++) if (buf[start + i] !== word.charCodeAt(i)) return false;
    return true;
  }
}

/**
 * An unsigned decimal of at most 2^53-1, or -1 when the bytes are not one: memcached rejects
 * such a field with "CLIENT_ERROR bad command line format".
 */
export function parseUnsigned(buf: Buffer, start: number, end: number): number {
  if (start >= end || end - start > 15) return -1;
  let value = 0;
  for (let i = start; i < end; i++) {
    const digit = buf[i]! - 0x30;
    if (digit < 0 || digit > 9) return -1;
    value = value * 10 + digit;
  }
  return value;
}

/** A signed decimal, or NaN. */
export function parseSigned(buf: Buffer, start: number, end: number): number {
  if (start < end && buf[start] === 0x2d) {
    const magnitude = parseUnsigned(buf, start + 1, end);
    return magnitude < 0 ? NaN : -magnitude;
  }
  const value = parseUnsigned(buf, start, end);
  return value < 0 ? NaN : value;
}

const UINT64_MAX = (1n << 64n) - 1n;

/** An unsigned 64-bit decimal (incr/decr deltas), or null. */
export function parseUint64(buf: Buffer, start: number, end: number): bigint | null {
  if (start >= end || end - start > 20) return null;
  for (let i = start; i < end; i++) {
    const c = buf[i]!;
    if (c < 0x30 || c > 0x39) return null;
  }
  const value = BigInt(buf.toString('latin1', start, end));
  return value > UINT64_MAX ? null : value;
}

/**
 * A key is 1 to 250 bytes with no control characters (protocol.txt, "Keys"). Spaces cannot
 * occur: they separate tokens.
 */
export function isValidKey(buf: Buffer, start: number, end: number, maxLength: number): boolean {
  const length = end - start;
  if (length === 0 || length > maxLength) return false;
  for (let i = start; i < end; i++) {
    const c = buf[i]!;
    if (c < 0x21 || c === 0x7f) return false;
  }
  return true;
}
