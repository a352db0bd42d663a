/**
 * Cluster-minted session ids (docs/architecture.md, "Placement"): an id that names its
 * master and backup node, so any node reads the owners from the id itself — no table, no lookup —
 * and carries a tag, so a daemon can tell an id the cluster minted from any other id (strict mode)
 * and nobody without the cluster secret can forge one. This module is only the codec: who the
 * master and backup are, and what the revision means, is decided by the caller.
 *
 * ## Format v1
 *
 * This layout is part of the protocol (ids live in browsers' cookies and in every node's code):
 * never change what a v1 id means. A new layout gets a new version character and its own parser.
 *
 * Alphabet: PHP's session id alphabet, 64 characters, one 6-bit value each, in this order:
 *
 *     value  0..9   10..35  36..61  62  63
 *     char   0-9    a-z     A-Z     ,   -
 *
 * Bytes are written as a big-endian bit stream cut into 6-bit groups, most significant bit first;
 * a last, short group is padded with zero bits on the right (and a parser refuses non-zero padding,
 * so every id has exactly one spelling). An id is, in order:
 *
 *     field     chars            contents
 *     version   1                '1'
 *     master    1 + ceil(8n/6)   length char (value n - 1, so n = 1..64 bytes), then the n bytes
 *     backup    0 or 1+ceil(8n/6) as master; the whole field is absent when there is no backup
 *     revision  4                unsigned 24-bit integer, big-endian
 *     random    22               the first 132 bits of 17 bytes from crypto.randomBytes
 *     tag       8                the first 48 bits (6 bytes) of HMAC-SHA256(cluster secret,
 *                                every character before the tag, as ASCII)
 *
 * Node ids are `[A-Za-z0-9_.-]{1,64}` (NODE_ID_PATTERN, node-id.ts), so n is 1..64 and the length char covers it by
 * storing n - 1. The ids parse by lengths alone: after the master field exactly 34 characters
 * (revision + random + tag) remain when there is no backup, and at least 37 when there is one
 * (its length char plus at least two characters of bytes), so "no backup" needs no marker. A backup
 * equal to the master is not a backup: it is never minted and never parsed.
 *
 * Lengths: 38 characters at least (1-byte master, no backup), 209 at most (two 64-byte node ids),
 * always within PHP's 256. Every id starts with '1'; stock PHP ids can too, but only ids whose tag
 * verifies under the cluster secret are taken as minted — anything else is routed by hashing.
 */

import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { NODE_ID_PATTERN, NODE_ID_RULE } from '../../node-id.js';

/** PHP's session id alphabet `[0-9a-zA-Z,-]`, in value order (value = index). */
export const SESSION_ID_ALPHABET = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ,-';

/** The version character of format v1. */
export const SESSION_ID_V1 = '1';

/** The largest revision v1 can carry (unsigned 24 bits). */
export const MAX_REVISION = 0xff_ffff;

/** Random bits per id (22 characters of 6 bits). */
export const RANDOM_BITS = 132;

/** Bytes drawn from the CSPRNG per id: enough for RANDOM_BITS. */
export const RANDOM_BYTES = Math.ceil(RANDOM_BITS / 8);

/** The shortest v1 id: version, a 1-byte master (length char + 2 chars), no backup, the tail. */
export const MIN_SESSION_ID_LENGTH = 38;

/** The longest id PHP accepts. */
export const MAX_SESSION_ID_LENGTH = 256;

const MAX_NODE_ID_BYTES = 64;
const REVISION_CHARS = 4;
const RANDOM_CHARS = RANDOM_BITS / 6;
const TAG_BYTES = 6;
const TAG_CHARS = (TAG_BYTES * 8) / 6;
/** revision + random + tag: what follows the node fields. */
const TAIL_CHARS = REVISION_CHARS + RANDOM_CHARS + TAG_CHARS;
if (MIN_SESSION_ID_LENGTH !== 1 + 3 + TAIL_CHARS) throw new Error('session-id: MIN_SESSION_ID_LENGTH does not match the layout');

/** char code -> 6-bit value, -1 outside the alphabet. */
const VALUE = new Int8Array(128).fill(-1);
for (let i = 0; i < SESSION_ID_ALPHABET.length; i++) VALUE[SESSION_ID_ALPHABET.charCodeAt(i)] = i;

/** byte -> allowed in a node id. */
const NODE_ID_BYTE = new Uint8Array(256);
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-') NODE_ID_BYTE[c.charCodeAt(0)] = 1;

export type ClusterSecret = string | Uint8Array;

export interface MintSessionIdOptions {
  /** The minting node's id. */
  master: string;
  /** The backup node's id; null (or '') in a one-node cluster. Must differ from master. */
  backup: string | null;
  /** 0..MAX_REVISION. */
  revision: number;
  /** The cluster secret; must not be empty. */
  secret: ClusterSecret;
  /** The CSPRNG, crypto.randomBytes unless a test injects one; called once with RANDOM_BYTES. */
  random?: (size: number) => Uint8Array;
}

export interface ParsedSessionId {
  master: string;
  /** null when the id names no backup (minted in a one-node cluster). */
  backup: string | null;
  revision: number;
}

/** Mints a v1 id. Throws (RangeError) on arguments that cannot be encoded — a caller's bug. */
export function mintSessionId(options: MintSessionIdOptions): string {
  const { master, revision, secret } = options;
  const backup = options.backup === '' ? null : options.backup;
  if (!isNodeId(master)) throw new RangeError(`master: "${String(master)}" is not a node id (${NODE_ID_RULE})`);
  if (backup !== null && !isNodeId(backup)) {
    throw new RangeError(`backup: "${String(backup)}" is not a node id (${NODE_ID_RULE})`);
  }
  if (backup === master) throw new RangeError('backup: must differ from master');
  if (!Number.isInteger(revision) || revision < 0 || revision > MAX_REVISION) {
    throw new RangeError(`revision: ${String(revision)} is not an integer in 0..${MAX_REVISION}`);
  }
  if (secretLength(secret) === 0) throw new RangeError('secret: must not be empty');
  const bytes = (options.random ?? randomBytes)(RANDOM_BYTES);
  if (!(bytes instanceof Uint8Array) || bytes.length < RANDOM_BYTES) {
    throw new RangeError(`random: expected at least ${RANDOM_BYTES} bytes`);
  }

  let body = SESSION_ID_V1 + encodeNodeId(master);
  if (backup !== null) body += encodeNodeId(backup);
  body += encodeBits(Uint8Array.of(revision >>> 16, (revision >>> 8) & 0xff, revision & 0xff), REVISION_CHARS);
  body += encodeBits(bytes, RANDOM_CHARS);
  return body + encodeBits(tagOf(secret, body), TAG_CHARS);
}

/**
 * Reads a v1 id, or null for anything that is not one: another shape, another version, a bad
 * character, a non-canonical encoding, a bad node id, or a tag that does not verify under `secret`.
 * Never throws on any `id` (it is what a browser sent); an empty secret verifies nothing.
 */
export function parseSessionId(id: string, secret: ClusterSecret): ParsedSessionId | null {
  if (typeof id !== 'string') return null;
  const length = id.length;
  if (length < MIN_SESSION_ID_LENGTH || length > MAX_SESSION_ID_LENGTH || id[0] !== SESSION_ID_V1) return null;
  for (let i = 0; i < length; i++) {
    const code = id.charCodeAt(i);
    if (code >= 128 || VALUE[code] === -1) return null;
  }

  const master = decodeNodeId(id, 1, length - TAIL_CHARS);
  if (master === null) return null;
  let pos = master.end;
  let backup: string | null = null;
  if (pos !== length - TAIL_CHARS) {
    const field = decodeNodeId(id, pos, length - TAIL_CHARS);
    if (field === null || field.end !== length - TAIL_CHARS || field.nodeId === master.nodeId) return null;
    backup = field.nodeId;
    pos = field.end;
  }
  let revision = 0;
  for (let i = 0; i < REVISION_CHARS; i++) revision = (revision << 6) | VALUE[id.charCodeAt(pos + i)]!;

  let expected: Uint8Array;
  try {
    if (secretLength(secret) === 0) return null;
    expected = tagOf(secret, id.slice(0, length - TAG_CHARS));
  } catch {
    return null; // a secret of the wrong type: nothing verifies
  }
  const got = decodeBits(id, length - TAG_CHARS, TAG_CHARS, TAG_BYTES);
  if (got === null || !timingSafeEqual(got, expected)) return null;
  return { master: master.nodeId, backup, revision };
}

function isNodeId(value: unknown): value is string {
  return typeof value === 'string' && NODE_ID_PATTERN.test(value);
}

function secretLength(secret: ClusterSecret): number {
  return typeof secret === 'string' ? secret.length : secret instanceof Uint8Array ? secret.length : 0;
}

function tagOf(secret: ClusterSecret, body: string): Buffer {
  return createHmac('sha256', secret).update(body, 'latin1').digest().subarray(0, TAG_BYTES);
}

function encodeNodeId(nodeId: string): string {
  const bytes = Buffer.from(nodeId, 'latin1'); // ASCII only, checked by isNodeId
  return SESSION_ID_ALPHABET[bytes.length - 1]! + encodeBits(bytes, Math.ceil((bytes.length * 8) / 6));
}

/** The node id field starting at `start`, which must end by `limit`; null if malformed. */
function decodeNodeId(id: string, start: number, limit: number): { nodeId: string; end: number } | null {
  if (start >= limit) return null;
  const n = VALUE[id.charCodeAt(start)]! + 1;
  const chars = Math.ceil((n * 8) / 6);
  const end = start + 1 + chars;
  if (n > MAX_NODE_ID_BYTES || end > limit) return null;
  const bytes = decodeBits(id, start + 1, chars, n);
  if (bytes === null) return null;
  for (const b of bytes) if (NODE_ID_BYTE[b] !== 1) return null;
  return { nodeId: bytes.toString('latin1'), end };
}

/** The first `chars * 6` bits of `bytes` (zero-padded on the right if `bytes` is shorter). */
function encodeBits(bytes: Uint8Array, chars: number): string {
  let out = '';
  let acc = 0;
  let bits = 0;
  let i = 0;
  while (out.length < chars) {
    if (bits < 6) {
      acc = ((acc << 8) | (i < bytes.length ? bytes[i++]! : 0)) & 0xffff;
      bits += 8;
    }
    bits -= 6;
    out += SESSION_ID_ALPHABET[(acc >>> bits) & 63];
  }
  return out;
}

/**
 * `chars` characters from `start` (all in the alphabet) back to `n` bytes; null unless the bits
 * past the n bytes are zero (the only spelling encodeBits produces).
 */
function decodeBits(id: string, start: number, chars: number, n: number): Buffer | null {
  const out = Buffer.allocUnsafe(n);
  let acc = 0;
  let bits = 0;
  let o = 0;
  for (let i = 0; i < chars; i++) {
    acc = ((acc << 6) | VALUE[id.charCodeAt(start + i)]!) & 0xffff;
    bits += 6;
    if (bits >= 8 && o < n) {
      bits -= 8;
      out[o++] = (acc >>> bits) & 0xff;
    }
  }
  if (o !== n || (acc & ((1 << bits) - 1)) !== 0) return null;
  return out;
}
