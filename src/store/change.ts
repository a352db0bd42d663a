/**
 * What a write changed, as the store made it: the item it linked (with its new version and CAS)
 * or the deletion it remembered. The store's write operations return it, and it flows on, one
 * way, to whoever needs it: replication copies it to the other owner, a disk log would append
 * it. Nobody reads the store again, or guesses from a reply, to learn what a write did.
 */
import { type ItemRecord, WriteStatus } from './types.js';

/**
 * What one item costs beyond its key and value, for the memory cap: the Map entry (and the
 * Map's growth), the Item object, the key string's header, the value's Uint8Array, ArrayBuffer
 * and backing store (each its own malloc'd block: values are allocated with allocUnsafeSlow, never
 * from Node's 8 KB pool slabs) and V8's heap headroom for them. bench/memory.sh measures it as the
 * RSS one more item adds, less its key and value: 566 to 588 B with 0.5 to 8 KB values on Node 20
 * x64 (bench/RESULTS.md, "Memory against --memory-limit"). It was 160, which let a daemon hold
 * about 10 % more items than its limit meant.
 */
export const ITEM_OVERHEAD_BYTES = 576;

/**
 * What an item whose value memory let go costs (disk storage: the value stays in its record on
 * disk): the Item object with its fields, the Map entries that index it and the key string's
 * header. An estimate from the object's layout on Node 20 x64; the value and its buffer, which
 * ITEM_OVERHEAD_BYTES is mostly made of, are gone.
 */
export const VALUE_ON_DISK_OVERHEAD_BYTES = 240;

/**
 * Where an item's newest record is on disk (src/store/disk/), so that memory can let its value
 * go and read it back when it is needed. Given to the item by disk storage as it logs the item.
 */
export interface RecordSource {
  /** Whether values can be read from here still: false once a compaction replaced the file. */
  readonly readable: boolean;
  /** Whether the record at `offset` is in its file: not still queued to be written. */
  written(offset: number): boolean;
  /** `item`'s value read back from its record, synchronously; throws if it cannot be read. */
  readValueSync(item: Item): Buffer;
  /** The same, without blocking: for a session read that found its value on disk only. */
  readValue(item: Item): Promise<Buffer>;
}

export class Item {
  /** the value, or null while it is on disk only (source says where) */
  private held: Buffer | null;
  /** the value's length, known whether it is held or not */
  readonly valueLength: number;
  /** where the item's newest record is on disk (null: not logged, memory only) */
  source: RecordSource | null = null;
  sourceOffset = 0;
  /**
   * When this node first held the key's session (ms since the epoch): a new version keeps its
   * predecessor's. Memory only: after a restart from disk, or a copy's arrival, it counts from then.
   */
  createdAt: number;
  /** when this version was written or copied here (ms since the epoch) */
  readonly writtenAt: number;

  constructor(
    readonly key: string,
    /**
     * Never mutated in place: replies may still hold a reference while the socket drains. Null
     * only through onDisk().
     */
    value: Buffer | null,
    readonly flags: number,
    public expiresAt: number,
    public cas: number,
    /** last time this item was moved to the young end of the LRU */
    public bumpedAt: number,
    /**
     * Which write this is, cluster-wide: a Lamport counter, ties broken by the node that wrote it.
     * Replicas, catch-up and conflicts keep the higher (version, origin); never a wall clock.
     */
    public version: number,
    public origin: string,
    valueLength = value!.length,
  ) {
    this.held = value;
    this.valueLength = valueLength;
    this.createdAt = bumpedAt;
    this.writtenAt = bumpedAt;
  }

  /**
   * An item whose value is in its record at `offset` of `source` and not in memory: what
   * recovery loads, so that start-up reads each value once and allocates none (they are warmed
   * into memory afterwards, in the background).
   */
  static onDisk(key: string, valueLength: number, flags: number, expiresAt: number, cas: number, now: number, version: number, origin: string, source: RecordSource, offset: number): Item {
    const item = new Item(key, null, flags, expiresAt, cas, now, version, origin, valueLength);
    item.source = source;
    item.sourceOffset = offset;
    return item;
  }

  /**
   * The value. One that memory let go is read back from disk, synchronously: the request path
   * reads such values back beforehand, without blocking (MemoryStore.readBack), so this is for
   * the background (compactions, copies to other nodes).
   */
  get value(): Buffer {
    return this.held ?? this.source!.readValueSync(this);
  }

  /** Whether the value is in memory. */
  get inMemory(): boolean {
    return this.held !== null;
  }

  /** What the item costs against the memory limit, as it is now. */
  get size(): number {
    return this.held !== null ? this.key.length + this.valueLength + ITEM_OVERHEAD_BYTES : this.key.length + VALUE_ON_DISK_OVERHEAD_BYTES;
  }

  /** Lets the value go: it is on disk (source), and read back from there when needed. */
  dropValue(): void {
    if (this.source !== null) this.held = null;
  }

  /** The value read back from disk is held again. */
  holdValue(value: Buffer): void {
    this.held = value;
  }

  /** This item as it travels between nodes. */
  toRecord(): ItemRecord {
    return { key: this.key, value: this.value, flags: this.flags, expiresAt: this.expiresAt, version: this.version, origin: this.origin };
  }
}

/**
 * A deletion: `key` is gone as of (version, origin), and the deletion is remembered (as a
 * tombstone, in cluster mode) until `until`, so that an older copy cannot bring the item back.
 */
export class Deletion {
  constructor(
    readonly key: string,
    readonly version: number,
    readonly origin: string,
    /** forgotten at this time (ms); sent along with the deletion so replicas keep it as long */
    readonly until: number,
  ) {}

  /** A deletion record's expiresAt says until when the deletion must be remembered. */
  toRecord(): ItemRecord {
    return { key: this.key, value: null, flags: 0, expiresAt: this.until, version: this.version, origin: this.origin };
  }
}

/**
 * What one write changed. Append-only: new kinds (a flush, say) join the union. A consumer takes
 * what it needs (toRecord) when it is handed the change: the Item stays the store's, and a later
 * touch of the same key moves its expiry and version in place.
 */
export type Change = Item | Deletion;

/** What a write operation answered, and what it changed (null: nothing). */
export interface WriteResult {
  readonly status: WriteStatus;
  readonly change: Change | null;
  /**
   * The CAS unique of the item stored, when the change is not that item (an item stored already
   * expired, whose change is its deletion).
   */
  readonly cas?: number;
}

/** incr/decr: the new number too, when there is one. */
export interface ArithResult extends WriteResult {
  readonly value?: bigint;
}

/** The answers that change nothing, allocated once. */
export const UNCHANGED: { readonly [S in WriteStatus]: WriteResult } = {
  [WriteStatus.Stored]: { status: WriteStatus.Stored, change: null },
  [WriteStatus.NotStored]: { status: WriteStatus.NotStored, change: null },
  [WriteStatus.Exists]: { status: WriteStatus.Exists, change: null },
  [WriteStatus.NotFound]: { status: WriteStatus.NotFound, change: null },
  [WriteStatus.Deleted]: { status: WriteStatus.Deleted, change: null },
  [WriteStatus.Touched]: { status: WriteStatus.Touched, change: null },
  [WriteStatus.TooLarge]: { status: WriteStatus.TooLarge, change: null },
  [WriteStatus.NonNumeric]: { status: WriteStatus.NonNumeric, change: null },
};
