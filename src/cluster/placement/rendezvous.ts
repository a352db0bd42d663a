/**
 * Rendezvous (highest-random-weight) placement for session ids the cluster did not mint
 * (docs/architecture.md, "Placement"): every member gets a weight hash(routingKey, member); the
 * heaviest is the master, the next the backup, the rest are the fallbacks in order.
 *
 * Why rendezvous: removing a member only re-homes the keys it was master or backup of — every
 * other key keeps its weights, so its top two are untouched ("Adding or removing a node moves only
 * the sessions that must move") — and when the master dies, the old backup becomes the master and the
 * old third becomes the backup: the backup acts as master and a new backup is chosen,
 * deterministically, so every node agrees. No ring, no virtual nodes, no state: a pure function of
 * (routing key, member ids), like groupcache's consistenthash.
 *
 * Members are node ids that every node spells the same way; the caller decides which members are
 * eligible (live, caught up) — placement does not know about membership: it imports only types.
 */

/**
 * A weight function over `routingKey + '\0' + member`. Tests inject one so owners can be worked
 * out by hand; bigint and number weights may be mixed (JS compares them exactly).
 */
export type PlacementHash = (input: string) => bigint | number;

export interface Owners {
  /** null only when there are no members. */
  master: string | null;
  /** null when there are fewer than two distinct members; never equal to master. */
  backup: string | null;
}

/**
 * Separates the routing key from the member id in the hashed input, so ('ab', 'c') and ('a', 'bc')
 * hash differently. NUL cannot occur in ascii-protocol keys; a binary-protocol key may hold one,
 * which is harmless: for a given member, distinct keys still give distinct inputs.
 */
const SEPARATOR = '\0';

// ---------------------------------------------------------------------------------------------
// Default hash: FNV-1a 64 over the latin1 bytes of `routingKey + '\0' + member`, then murmur3's
// fmix64 finalizer; the weight is the top 53 bits.
//
// Why this hash rather than xxhash64:
// - FNV-1a consumes one byte at a time with no block buffering, so it is incremental: the fast
//   path hashes `routingKey + '\0'` once per request and continues from that state for each
//   member, with no string concatenation and no allocation, and still computes exactly
//   defaultHash(routingKey + '\0' + member). xxhash64 consumes 32-byte stripes and finishes short
//   inputs on a separate path, so resuming it per member means copying its buffered state; and for
//   keys this short it is no faster in JS, where every 64-bit multiply is emulated on 32-bit halves.
// - FNV-1a's weakness is avalanche: the last bytes (the member id, often `node-1`/`node-2`) barely
//   reach the high bits, so raw FNV weights of different members are correlated: measured over
//   30,000 keys and node-1/node-2/node-3, raw FNV-1a 64 makes node-1 master of 50% of them and the
//   others 25% each. fmix64 (murmur3's finalizer) is a bijection with full avalanche, which removes
//   the correlation (each node within 3% of a third: test/cluster/rendezvous.test.ts).
// - Both are a few lines, trivial to reproduce in PHP, C or Go for tooling that must predict owners.
// - The weight keeps the top 53 bits because a JS number holds them exactly: comparisons stay on
//   doubles with no BigInt allocation. Two members tie on a key with probability ~2^-53, and a tie
//   is still resolved identically everywhere (by member id).
// Deterministic: fixed constants, no seed, no per-process randomness.
// ---------------------------------------------------------------------------------------------

const FNV_OFFSET_HI = 0xcbf29ce4; // FNV-1a 64 offset basis 0xcbf29ce484222325
const FNV_OFFSET_LO = 0x84222325;
const FNV_PRIME_LOW = 0x1b3; // FNV 64 prime 0x100000001b3 = 2^40 + 0x1b3

// fmix64 multipliers, split into 32-bit halves.
const C1_HI = 0xff51afd7;
const C1_LO = 0xed558ccd;
const C2_HI = 0xc4ceb9fe;
const C2_LO = 0x1a85ec53;

const TWO_POW_21 = 0x200000;

// Result of fnv1a64Update, written here instead of returned as a pair so the hot path allocates
// nothing. Safe: JS is single-threaded and nothing yields between the write and the read.
let stateHi = 0;
let stateLo = 0;

/** Continues FNV-1a 64 from (hi, lo) over `input`; each char code is one byte of a latin1 key. */
function fnv1a64Update(hi: number, lo: number, input: string): void {
  for (let i = 0; i < input.length; i++) {
    lo = (lo ^ input.charCodeAt(i)) >>> 0;
    // (hi·2^32 + lo) · (2^40 + 0x1b3) mod 2^64: hi·2^72 vanishes, lo·2^40 adds (lo << 8) to the
    // high word, and lo·0x1b3 carries into it. The carry is computed on 16-bit halves of lo, in
    // integer ops only (twice as fast as Math.floor(lo * 0x1b3 / 2^32) on V8, measured).
    const carry = ((lo >>> 16) * FNV_PRIME_LOW + (((lo & 0xffff) * FNV_PRIME_LOW) >>> 16)) >>> 16;
    hi = (Math.imul(hi, FNV_PRIME_LOW) + carry + (lo << 8)) >>> 0;
    lo = Math.imul(lo, FNV_PRIME_LOW) >>> 0;
  }
  stateHi = hi;
  stateLo = lo;
}

/** High 32 bits of the 64-bit product of two uint32, in 16-bit limbs so every step is exact. */
function mulHigh32(a: number, b: number): number {
  const a0 = a & 0xffff;
  const a1 = a >>> 16;
  const b0 = b & 0xffff;
  const b1 = b >>> 16;
  const low = a0 * b0;
  const cross1 = a1 * b0;
  const cross2 = a0 * b1;
  const mid = (low >>> 16) + (cross1 & 0xffff) + (cross2 & 0xffff);
  return (a1 * b1 + (cross1 >>> 16) + (cross2 >>> 16) + (mid >>> 16)) >>> 0;
}

/** murmur3 fmix64 of (hi, lo), returned as its top 53 bits. */
function fmix64Top53(hi: number, lo: number): number {
  let h = hi;
  let l = lo;
  l = (l ^ (h >>> 1)) >>> 0; // k ^= k >>> 33
  let nh = (mulHigh32(l, C1_LO) + Math.imul(l, C1_HI) + Math.imul(h, C1_LO)) >>> 0;
  l = Math.imul(l, C1_LO) >>> 0;
  h = nh;
  l = (l ^ (h >>> 1)) >>> 0;
  nh = (mulHigh32(l, C2_LO) + Math.imul(l, C2_HI) + Math.imul(h, C2_LO)) >>> 0;
  l = Math.imul(l, C2_LO) >>> 0;
  h = nh;
  l = (l ^ (h >>> 1)) >>> 0;
  return h * TWO_POW_21 + (l >>> 11);
}

/**
 * The default weight: top 53 bits of fmix64(FNV-1a 64(input)), input read as latin1 bytes (char
 * codes above 0xff, which latin1 keys never hold, are folded in as 16-bit values).
 */
export function defaultHash(input: string): number {
  fnv1a64Update(FNV_OFFSET_HI, FNV_OFFSET_LO, input);
  return fmix64Top53(stateHi, stateLo);
}

type Weight = bigint | number;

/** Heavier first; equal weights by member id, lower first, so every node orders alike. */
function outranks(weight: Weight, member: string, otherWeight: Weight, other: string): boolean {
  if (weight > otherWeight) return true;
  if (weight < otherWeight) return false;
  return member < other;
}

/**
 * Hashes `routingKey + '\0'` once; memberWeight() then continues from that state for each
 * member, so it returns exactly defaultHash(routingKey + '\0' + member) with no concatenation.
 */
function seedKey(routingKey: string): void {
  fnv1a64Update(FNV_OFFSET_HI, FNV_OFFSET_LO, routingKey);
  fnv1a64Update(stateHi, stateLo, SEPARATOR);
}

function memberWeight(keyHi: number, keyLo: number, member: string): number {
  fnv1a64Update(keyHi, keyLo, member);
  return fmix64Top53(stateHi, stateLo);
}

function weigh(routingKey: string, members: readonly string[], hash?: PlacementHash): Weight[] {
  const weights = new Array<Weight>(members.length);
  if (hash === undefined || hash === defaultHash) {
    seedKey(routingKey);
    const keyHi = stateHi;
    const keyLo = stateLo;
    for (let i = 0; i < members.length; i++) weights[i] = memberWeight(keyHi, keyLo, members[i]!);
  } else {
    for (let i = 0; i < members.length; i++) weights[i] = hash(routingKey + SEPARATOR + members[i]!);
  }
  return weights;
}

/**
 * All members, heaviest first: [master, backup, then the fallbacks in the order they take over].
 * Duplicate ids appear once. Ranking the full member list and skipping dead members gives the same
 * answer as ranking the live members only — that is what makes failover deterministic.
 */
export function rank(routingKey: string, members: readonly string[], hash?: PlacementHash): string[] {
  const weights = weigh(routingKey, members, hash);
  const order = members.map((_, i) => i);
  order.sort((a, b) => {
    if (outranks(weights[a]!, members[a]!, weights[b]!, members[b]!)) return -1;
    if (outranks(weights[b]!, members[b]!, weights[a]!, members[a]!)) return 1;
    return 0;
  });
  const ranked: string[] = [];
  for (const i of order) {
    const member = members[i]!;
    // Duplicates carry the same weight and id, so they sort next to each other.
    if (ranked.length === 0 || ranked[ranked.length - 1] !== member) ranked.push(member);
  }
  return ranked;
}

/**
 * Master and backup of a routing key among `liveMembers`: rank()'s first two, found in one pass
 * with no sort and, with the default hash, no allocation but the result — this runs per request.
 */
export function owners(routingKey: string, liveMembers: readonly string[], hash?: PlacementHash): Owners {
  const custom = hash === defaultHash ? undefined : hash;
  let keyHi = 0;
  let keyLo = 0;
  if (custom === undefined) {
    seedKey(routingKey);
    keyHi = stateHi;
    keyLo = stateLo;
  }
  let master: string | null = null;
  let masterWeight: Weight = 0;
  let backup: string | null = null;
  let backupWeight: Weight = 0;
  for (let i = 0; i < liveMembers.length; i++) {
    const member = liveMembers[i]!;
    const weight =
      custom === undefined ? memberWeight(keyHi, keyLo, member) : custom(routingKey + SEPARATOR + member);
    if (master === null || outranks(weight, member, masterWeight, master)) {
      backup = master;
      backupWeight = masterWeight;
      master = member;
      masterWeight = weight;
    } else if (member !== master && (backup === null || outranks(weight, member, backupWeight, backup))) {
      // A duplicate of the master ties with it and never outranks it; it must not become backup.
      backup = member;
      backupWeight = weight;
    }
  }
  return { master, backup };
}
