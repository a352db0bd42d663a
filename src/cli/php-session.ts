/**
 * What a PHP session holds, read back: session data is written by PHP's serialize handler
 * (session.serialize_handler): `php` (the default: `name|<serialized value>` for each variable),
 * `php_serialize` (one serialized array) or `php_binary`/igbinary (not text). Values are decoded
 * with php-serialize; this file only finds where each `php` variable's value ends, which
 * php-serialize does not say (PHP's var_unserializer.re is the grammar).
 */
import { unserialize } from 'php-serialize';

export type SessionFormat = 'php' | 'php_serialize' | 'igbinary' | 'unknown';

export interface DecodedSession {
  format: SessionFormat;
  /** the session's variables by name; null when the format is not one we read */
  data: Record<string, unknown> | null;
}

/** php-serialize's options: classes PHP knows and we do not become plain objects, never an error. */
const LENIENT = { strict: false, encoding: 'utf8' as const };

export function decodeSession(value: Buffer): DecodedSession {
  // igbinary's header is a 4-byte big-endian version, 1 or 2 (igbinary.c, igbinary_serialize_header).
  if (value.length >= 4 && value[0] === 0 && value[1] === 0 && value[2] === 0 && (value[3] === 1 || value[3] === 2)) return { format: 'igbinary', data: null };
  if (value.length === 0) return { format: 'php', data: {} };
  const text = value.toString('latin1');
  if (text.startsWith('a:') && valueEnd(value, 0) === value.length) {
    try {
      const data = unserialize(value, {}, LENIENT) as unknown;
      if (typeof data === 'object' && data !== null) return { format: 'php_serialize', data: data as Record<string, unknown> };
    } catch {
      // not php_serialize after all: try the default handler's format
    }
  }
  const data = decodePhpHandler(value);
  return data === null ? { format: 'unknown', data: null } : { format: 'php', data };
}

/** `name|value` pairs to the end (php_session.c, PS_SERIALIZER_DECODE_FUNC(php)); null if malformed. */
function decodePhpHandler(value: Buffer): Record<string, unknown> | null {
  const data: Record<string, unknown> = {};
  let at = 0;
  while (at < value.length) {
    const bar = value.indexOf(0x7c /* | */, at);
    if (bar <= at) return null;
    const name = value.toString('utf8', at, bar);
    const end = valueEnd(value, bar + 1);
    if (end < 0) return null;
    try {
      data[name] = unserialize(value.subarray(bar + 1, end), {}, LENIENT) as unknown;
    } catch {
      return null;
    }
    at = end;
  }
  return data;
}

/**
 * Where the serialized value starting at `at` ends (the index after it), or -1 when it is not
 * one. Follows serialize()'s output: N; b:0; i:1; d:0.5; s:3:"abc"; a:1:{...} O:8:"stdClass":1:{...}
 * C:3:"Foo":2:{..} E:7:"Foo:Bar"; r:1; R:1;
 */
export function valueEnd(buf: Buffer, at: number): number {
  const type = String.fromCharCode(buf[at] ?? 0);
  if (type === 'N') return buf[at + 1] === 0x3b ? at + 2 : -1;
  if (buf[at + 1] !== 0x3a /* : */) return -1;
  switch (type) {
    case 'b': case 'i': case 'd': case 'r': case 'R': {
      const semi = buf.indexOf(0x3b, at + 2);
      return semi < 0 ? -1 : semi + 1;
    }
    case 's': case 'E': {
      const quoted = lengthPrefixed(buf, at + 2);
      return quoted < 0 || buf[quoted] !== 0x3b ? -1 : quoted + 1;
    }
    case 'a':
      return pairsEnd(buf, at + 2);
    case 'O': {
      const name = lengthPrefixed(buf, at + 2);
      return name < 0 || buf[name] !== 0x3a ? -1 : pairsEnd(buf, name + 1);
    }
    case 'C': {
      const name = lengthPrefixed(buf, at + 2);
      if (name < 0 || buf[name] !== 0x3a) return -1;
      const { length, next } = readLength(buf, name + 1);
      if (length < 0 || buf[next] !== 0x7b) return -1;
      const close = next + 1 + length;
      return buf[close] === 0x7d ? close + 1 : -1;
    }
    default:
      return -1;
  }
}

/** `N:"<N bytes>"` at `at`: the index after the closing quote, or -1. */
function lengthPrefixed(buf: Buffer, at: number): number {
  const { length, next } = readLength(buf, at);
  if (length < 0 || buf[next] !== 0x22) return -1;
  const close = next + 1 + length;
  return buf[close] === 0x22 ? close + 1 : -1;
}

/** `N:{` then N key/value pairs then `}`: the index after the brace, or -1. */
function pairsEnd(buf: Buffer, at: number): number {
  const { length, next } = readLength(buf, at);
  if (length < 0 || buf[next] !== 0x7b) return -1;
  let position = next + 1;
  for (let i = 0; i < length * 2; i++) {
    position = valueEnd(buf, position);
    if (position < 0) return -1;
  }
  return buf[position] === 0x7d ? position + 1 : -1;
}

/** Decimal digits then ':' at `at`: the number and the index after the colon. */
function readLength(buf: Buffer, at: number): { length: number; next: number } {
  let position = at;
  let length = 0;
  while (position < buf.length && buf[position]! >= 0x30 && buf[position]! <= 0x39 && position - at < 10) {
    length = length * 10 + buf[position]! - 0x30;
    position++;
  }
  if (position === at || buf[position] !== 0x3a) return { length: -1, next: at };
  return { length, next: position + 1 };
}

/** `auth.user.id=42`: a path into the session's variables, and the value it must have. */
export interface Where {
  path: string[];
  value: string;
}

/** Parses `--where PATH=VALUE`; null when it is not one. */
export function parseWhere(text: string): Where | null {
  const equals = text.indexOf('=');
  if (equals <= 0) return null;
  const path = text.slice(0, equals).split('.');
  if (path.some((part) => part === '')) return null;
  return { path, value: text.slice(equals + 1) };
}

/**
 * Whether the session's variable at `where.path` reads as `where.value`: PHP's loose view of
 * scalars (42 and "42" alike, true as "1" or "true", null as "null" or "").
 */
export function matches(data: Record<string, unknown>, where: Where): boolean {
  let current: unknown = data;
  for (const part of where.path) {
    if (typeof current !== 'object' || current === null || !Object.prototype.hasOwnProperty.call(current, part)) return false;
    current = (current as Record<string, unknown>)[part];
  }
  switch (typeof current) {
    case 'string': return current === where.value;
    case 'number': case 'bigint': return String(current) === where.value;
    case 'boolean': return current ? where.value === '1' || where.value === 'true' : where.value === '' || where.value === '0' || where.value === 'false';
    default: return current === null && (where.value === 'null' || where.value === '');
  }
}

/** A hex dump for values we cannot decode: 16 bytes a line, offset, hex and printable text. */
export function hexDump(value: Buffer, maxBytes = 512): string {
  const lines: string[] = [];
  for (let at = 0; at < Math.min(value.length, maxBytes); at += 16) {
    const row = value.subarray(at, Math.min(at + 16, value.length));
    const hex = [...row].map((b) => b.toString(16).padStart(2, '0')).join(' ');
    const text = [...row].map((b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '.')).join('');
    lines.push(`${at.toString(16).padStart(8, '0')}  ${hex.padEnd(47)}  ${text}`);
  }
  if (value.length > maxBytes) lines.push(`... ${value.length - maxBytes} more bytes`);
  return lines.join('\n');
}
