/**
 * The slots of the peer listener's unauthenticated connections (peer-server.ts): a bound on how
 * many may be in their handshake at once, which never keeps a legitimate peer out.
 *
 * A cap that refuses newcomers once it is full lets anyone who opens connections faster than the
 * handshake timeout frees them hold every slot, and a node that dials in (a restarted peer, a new
 * member) is refused for as long as that goes on. So a full cap makes room instead: newcomers are
 * admitted and the oldest connections that have not shown anything are closed. A real peer sends
 * its Hello the moment it connects (docs/peer-protocol.md, "Handshake"), so it leaves the
 * "silent" tier as soon as its first bytes are read, and once it has proven the cluster secret
 * (or, with TLS, presented a certificate of the cluster's CA) it leaves the slots altogether.
 * Connections that talk but prove nothing are closed, oldest first, only when no silent one is
 * left.
 *
 * Room is made by trim(), which the listener runs after the event loop has read from the sockets
 * it accepted: a flood accepted in the same burst as a real peer must not close the real peer
 * before its Hello has even been read.
 */
export class HandshakeSlots<T> {
  /** admitted, nothing received yet; oldest first (a Set keeps insertion order) */
  private readonly silent = new Set<T>();
  /** sent a Hello, or a TLS record, but has proven nothing yet; oldest first */
  private readonly talking = new Set<T>();
  /** past this many, admit() makes room at once instead of waiting for trim() */
  readonly hardMax: number;

  constructor(readonly max: number) {
    if (!Number.isSafeInteger(max) || max < 1) throw new RangeError(`maxHandshakes must be at least 1, not ${max}`);
    this.hardMax = max * HARD_FACTOR;
  }

  /** Connections holding a slot. */
  get size(): number {
    return this.silent.size + this.talking.size;
  }

  /**
   * Gives `entry` a slot, in the silent tier, even past `max`: trim() brings the count back down
   * once the newcomers have had a chance to be read. Only past `hardMax` is room made at once;
   * the entry that makes room is returned, no longer holding a slot, for the caller to close.
   */
  admit(entry: T): T | null {
    const evicted = this.size >= this.hardMax ? this.oldest() : null;
    if (evicted !== null) this.release(evicted);
    this.silent.add(entry);
    return evicted;
  }

  /** The entries that must make room for the count to be back at `max`, no longer holding slots. */
  trim(): T[] {
    const evicted: T[] = [];
    while (this.size > this.max) {
      const entry = this.oldest()!;
      this.release(entry);
      evicted.push(entry);
    }
    return evicted;
  }

  /** `entry` has said something that belongs to a handshake: it is closed after every silent one. */
  talk(entry: T): void {
    if (this.silent.delete(entry)) this.talking.add(entry);
  }

  /** `entry` authenticated, or closed: its slot is free. */
  release(entry: T): void {
    if (!this.silent.delete(entry)) this.talking.delete(entry);
  }

  /** Who makes room first: the oldest silent connection, else the oldest that talked. */
  private oldest(): T | null {
    return first(this.silent) ?? first(this.talking);
  }
}

/**
 * How far past `max` the slots may run between two trims. Those are the connections accepted in
 * one turn of the event loop, which the listen backlog (511 by default) mostly bounds; this keeps
 * a burst beyond it from costing unbounded sockets.
 */
const HARD_FACTOR = 16;

function first<T>(set: Set<T>): T | null {
  for (const entry of set) return entry;
  return null;
}
