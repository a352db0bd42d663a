/**
 * The local in-memory store: items with flags, expiry and CAS, a memory cap with
 * least-recently-used eviction, and memcached's counters. It knows nothing of protocols: every
 * write returns a WriteResult, its status (memcached's store result enum) and the change it made
 * (change.ts), and the layers above turn the status into a reply and pass the change on.
 */
import { type ArithResult, type Change, Deletion, ITEM_OVERHEAD_BYTES, Item, type RecordSource, UNCHANGED, type WriteResult } from './change.js';
import { expiresAtFromExptime, isExpired } from './expiry.js';
import { type ItemRecord, isNewer, StoreMode, WriteStatus } from './types.js';
import type { CounterDefs, Stat } from '../stats/registry.js';

/**
 * What one tombstone costs beyond its key, for the memory cap: the Map entry, the Tombstone
 * object and the key string's header; a million of them with 51-byte lock keys took about
 * 213 bytes each on Node 20 x64.
 */
export const TOMBSTONE_OVERHEAD_BYTES = 160;

/**
 * How long a deletion is remembered (its tombstone), so that an older copy of the item cannot
 * bring it back: until the deleted item would have expired anyway (after that any older copy is
 * dead too), and at least a minute, for copies still in flight between nodes (a retried
 * replication, a re-replication scan). So a logged-out session stays deleted for as long as it
 * could have lived, even against a copy from a node that was cut off for that long, while the
 * lock keys php-memcached deletes on every request (30 s expiry) cost a minute each.
 * Never-expiring items, and deletions of items this node did not hold, are remembered for the
 * maximum, a day.
 */
const TOMBSTONE_MIN_MS = 60 * 1000;
const TOMBSTONE_MAX_MS = 24 * 60 * 60 * 1000;

/** Until when a deletion of an item expiring at `expiresAt` (0: never, unknown) is remembered. */
function tombstoneUntil(expiresAt: number, now: number): number {
  if (expiresAt === 0) return now + TOMBSTONE_MAX_MS;
  return Math.min(Math.max(expiresAt, now + TOMBSTONE_MIN_MS), now + TOMBSTONE_MAX_MS);
}

/** Items are bumped to the young end of the LRU at most this often, like memcached's ITEM_UPDATE_INTERVAL. */
const LRU_BUMP_INTERVAL_MS = 1000;

export interface StoreCounters {
  getHits: number;
  getMisses: number;
  getExpired: number;
  getFlushed: number;
  deleteHits: number;
  deleteMisses: number;
  incrHits: number;
  incrMisses: number;
  decrHits: number;
  decrMisses: number;
  casHits: number;
  casMisses: number;
  casBadval: number;
  touchHits: number;
  touchMisses: number;
  totalItems: number;
  evictions: number;
  expiredUnfetched: number;
  reclaimed: number;
  /** tombstones dropped before their time to stay under the memory cap */
  evictedTombstones: number;
}

/** memcached's names (protocol.txt, "General-purpose statistics"), then the tombstones'. */
export const STORE_COUNTER_STATS: CounterDefs<StoreCounters> = {
  getHits: { name: 'get_hits', type: 'counter', help: 'keys read that were found' },
  getMisses: { name: 'get_misses', type: 'counter', help: 'keys read that were not found: a new session, or one that expired or was evicted' },
  getExpired: { name: 'get_expired', type: 'counter', help: 'keys read whose item had expired (counted as misses too)' },
  getFlushed: { name: 'get_flushed', type: 'counter', help: 'keys read whose item a flush_all had invalidated (0: a flush removes items at once)' },
  deleteHits: { name: 'delete_hits', type: 'counter', help: 'deletes that removed an item' },
  deleteMisses: { name: 'delete_misses', type: 'counter', help: 'deletes of keys that were not there' },
  incrHits: { name: 'incr_hits', type: 'counter', help: 'incr of an existing item' },
  incrMisses: { name: 'incr_misses', type: 'counter', help: 'incr of a missing item' },
  decrHits: { name: 'decr_hits', type: 'counter', help: 'decr of an existing item' },
  decrMisses: { name: 'decr_misses', type: 'counter', help: 'decr of a missing item' },
  casHits: { name: 'cas_hits', type: 'counter', help: 'cas commands that stored' },
  casMisses: { name: 'cas_misses', type: 'counter', help: 'cas commands on a missing item' },
  casBadval: { name: 'cas_badval', type: 'counter', help: 'cas commands refused: the item had changed since it was read' },
  touchHits: { name: 'touch_hits', type: 'counter', help: 'touch and gat of an existing item' },
  touchMisses: { name: 'touch_misses', type: 'counter', help: 'touch and gat of a missing item' },
  totalItems: { name: 'total_items', type: 'counter', help: 'items stored since start (writes here and copies from other nodes)' },
  evictions: { name: 'evictions', type: 'counter', help: 'live items evicted to stay under --memory-limit: lost sessions. Should stay 0; raise the limit otherwise' },
  expiredUnfetched: { name: 'expired_unfetched', type: 'counter', help: 'items that expired without being read again, reclaimed in the background' },
  reclaimed: { name: 'reclaimed', type: 'counter', help: 'expired items whose memory the background sweep reclaimed' },
  evictedTombstones: { name: 'evicted_tombstones', type: 'counter', help: 'remembered deletions dropped early to stay under --memory-limit' },
};

/** What the store holds now. */
export const STORE_STATS: ReadonlyArray<Stat<MemoryStore>> = [
  { name: 'limit_maxbytes', type: 'gauge', help: 'the memory limit for items, bytes (--memory-limit)', read: (s) => s.memoryLimit },
  { name: 'bytes', type: 'gauge', help: `memory the items take, bytes (key + value + ${ITEM_OVERHEAD_BYTES} B each); the limit holds bytes + tombstone_bytes`, read: (s) => s.bytes },
  { name: 'curr_items', type: 'gauge', help: 'items held now: sessions and their lock keys (in cluster mode, those this node masters or backs up)', read: (s) => s.itemCount },
  { name: 'tombstones', type: 'gauge', help: 'deletions remembered (cluster mode), so an older copy cannot bring a deleted item back', read: (s) => s.tombstoneCount },
  { name: 'tombstone_bytes', type: 'gauge', help: 'memory the remembered deletions take, bytes; they count against --memory-limit', read: (s) => s.tombstoneBytesUsed },
];

/**
 * Whoever keeps a record of the store's changes besides the store itself: the disk log
 * (src/store/disk/). It is told every change to what a key holds, in the order made, and may
 * ask, before a write, for the state it could restore if that write cannot be kept (restoreKey).
 * Expiry is not a change: an expired item is dropped on the way when read back.
 */
export interface StoreJournal {
  /** A write is about to change `key`: the journal may keep `stateOf(key)` to restore later. */
  before(key: string): void;
  /** `item` is now what `key` holds: written, copied here, or given a new expiry. */
  item(item: Item): void;
  /** `key` was deleted; `remembered` when its deletion is kept as a tombstone. */
  deletion(deletion: Deletion, remembered: boolean): void;
  /** `key` is gone with nothing remembered: forgotten, or evicted for memory. */
  removal(key: string): void;
  /** Everything is gone: flush_all, or a node dropping all its copies. */
  flush(): void;
}

/** What a key held at one moment, to put back (MemoryStore.stateOf, restoreKey). */
export interface KeyState {
  readonly key: string;
  readonly item: Item | undefined;
  /** the item's fields that change in place (touch) */
  readonly expiresAt: number;
  readonly version: number;
  readonly origin: string;
  readonly tombstone: Deletion | undefined;
  /** where the item's record was on disk then: a write undone points back at the record before it */
  readonly source: RecordSource | null;
  readonly sourceOffset: number;
}

/** Reads of values that memory let go (disk storage), for `stats`. */
export interface ReadBackCounters {
  /** values read back from disk for a session read */
  reads: number;
  /** of which failed: the item was dropped */
  errors: number;
}

export interface MemoryStoreOptions {
  memoryLimit: number;
  maxItemSize: number;
  /** called when an item is evicted to stay under the memory limit */
  onEvict?: (count: number) => void;
  /** the node writing here, recorded as the origin of each write's version (default "local") */
  nodeId?: string;
  /**
   * Whether deletions leave tombstones (default true). Only replication needs them, to refuse
   * older copies; a single node, which has no other copies, turns them off.
   */
  rememberDeletions?: boolean;
}

const UINT64_MASK = (1n << 64n) - 1n;

export class MemoryStore {
  private readonly items = new Map<string, Item>();
  private bytesUsed = 0;
  /** the tombstones' share of the memory cap; `bytes` in stats is the items' alone, as memcached's */
  private tombstoneBytes = 0;
  private nextCas = 1;
  readonly counters: StoreCounters = {
    getHits: 0, getMisses: 0, getExpired: 0, getFlushed: 0, deleteHits: 0, deleteMisses: 0,
    incrHits: 0, incrMisses: 0, decrHits: 0, decrMisses: 0, casHits: 0, casMisses: 0, casBadval: 0,
    touchHits: 0, touchMisses: 0, totalItems: 0, evictions: 0, expiredUnfetched: 0, reclaimed: 0,
    evictedTombstones: 0,
  };
  private readonly itemSweep = new ResumableScan(() => this.items.values());
  private readonly tombstoneSweep = new ResumableScan(() => this.tombstones.entries());
  /** the Lamport clock of item versions: above every version written or received here */
  private versionClock = 0;
  /**
   * deletions, by key: the version that deleted the item, and until when (ms) to remember it.
   * In the order they were made (a newer deletion of a key moves it to the end), so the memory
   * cap drops the oldest first.
   */
  private readonly tombstones = new Map<string, Deletion>();
  private readonly nodeId: string;
  /** the disk log, when there is one; attached once recovery has loaded what it holds */
  private journal: StoreJournal | null = null;
  /**
   * With disk storage, memory is a cache of it: the items whose values are in memory, least
   * recently used first. Under the memory limit the oldest let their values go (their records
   * on disk keep them) before anything is evicted. Null: memory only, every value is held.
   */
  private valuesHeld: Set<Item> | null = null;
  /** items whose value is on disk only */
  private valuesOnDisk = 0;
  /** reads of such values under way, so that two readers of one item share one read */
  private readsUnderWay = new Map<Item, Promise<void>>();
  private onReadError: (key: string, error: Error) => void = () => {};
  readonly readBackCounters: ReadBackCounters = { reads: 0, errors: 0 };

  constructor(private readonly options: MemoryStoreOptions) {
    this.nodeId = options.nodeId ?? 'local';
  }

  /** Every change from now on is also told to `journal` (see StoreJournal). */
  attachJournal(journal: StoreJournal | null): void {
    this.journal = journal;
  }

  /**
   * Disk storage keeps every item's record: from now on memory may let the values of the least
   * recently used items go, under the memory limit, and read them back when asked for
   * (readBack). `onReadError` hears of a value that could not be read back (its item is dropped).
   */
  keepValuesOnDisk(onReadError: (key: string, error: Error) => void): void {
    this.onReadError = onReadError;
    if (this.valuesHeld !== null) return;
    this.valuesHeld = new Set();
    for (const item of this.items.values()) if (item.inMemory) this.valuesHeld.add(item);
  }

  /** Items whose value is on disk only. */
  get valuesOnDiskCount(): number {
    return this.valuesOnDisk;
  }

  /**
   * Reads back, without blocking, the values of `keys` that are on disk only, so that a command
   * about to read them finds them in memory; null when there are none (memory only, or all held).
   */
  readBack(keys: readonly string[]): Promise<void> | null {
    if (this.valuesOnDisk === 0) return null;
    let reads: Array<Promise<void>> | null = null;
    for (const key of keys) {
      const item = this.items.get(key);
      if (item === undefined || item.inMemory) continue;
      (reads ??= []).push(this.readBackItem(item));
    }
    if (reads === null) return null;
    return reads.length === 1 ? reads[0]! : Promise.all(reads).then(() => undefined);
  }

  private readBackItem(item: Item): Promise<void> {
    const underWay = this.readsUnderWay.get(item);
    if (underWay !== undefined) return underWay;
    this.readBackCounters.reads++;
    const source = item.source ?? { readValue: () => Promise.reject(new Error('its value was never on disk')) };
    const read = source.readValue(item).then((value) => {
      this.hold(item, value);
      this.evictFor(0);
    }, (error: Error) => {
      this.readBackCounters.errors++;
      // Unreadable (a damaged record, the disk failing): served as a miss from now on, and
      // logged, rather than failing every read of the session.
      if (this.items.get(item.key) === item) this.forget(item.key);
      this.onReadError(item.key, error);
    }).finally(() => this.readsUnderWay.delete(item));
    this.readsUnderWay.set(item, read);
    return read;
  }

  /**
   * Holds `item`'s value in memory from now on, read back synchronously if need be: for an item
   * a write undone could put back once the file its record is in has been replaced.
   */
  holdValueOf(item: Item): void {
    if (!item.inMemory) this.hold(item, item.value);
  }

  /**
   * The item `key` names now, if it is the one whose record is at `offset` of `source` and its
   * value is on disk only: what a background pass over that file may bring into memory.
   */
  onDiskAt(key: string, source: RecordSource, offset: number): Item | null {
    const item = this.items.get(key);
    return item !== undefined && !item.inMemory && item.source === source && item.sourceOffset === offset ? item : null;
  }

  /**
   * The item `key` names now, if its newest record is the one at `offset` of `source` and it has
   * not expired, its value held or not: a record a compaction copies forward.
   */
  currentAt(key: string, source: RecordSource, offset: number, now: number): Item | null {
    const item = this.items.get(key);
    return item !== undefined && item.source === source && item.sourceOffset === offset && !isExpired(item.expiresAt, now) ? item : null;
  }

  /** Whether the deletion of `key` at (`version`, `origin`) is still remembered: a record a compaction copies forward. */
  remembersDeletion(key: string, version: number, origin: string, now: number): boolean {
    const deletion = this.tombstones.get(key);
    return deletion !== undefined && !this.items.has(key) && deletion.version === version && deletion.origin === origin && now < deletion.until;
  }

  /**
   * Holds `value`, read in the background, as the value of `item` (see onDiskAt) if that fits
   * under the memory limit as it is: no other value is let go for it. False when it does not fit.
   */
  warmValue(item: Item, value: Buffer): boolean {
    const growth = item.key.length + item.valueLength + ITEM_OVERHEAD_BYTES - item.size;
    if (this.bytesUsed + this.tombstoneBytes + growth > this.options.memoryLimit) return false;
    this.setValue(item, value);
    return true;
  }

  /** `item`'s value, read back, is held again (at the young end); one replaced meanwhile too, for an undo. */
  private hold(item: Item, value: Buffer): void {
    if (!item.inMemory) this.setValue(item, value);
  }

  /**
   * Holds `value` as `item`'s value, or lets it go to disk (null), keeping what memory counts and
   * the LRU of held values right while the item is in the store.
   */
  private setValue(item: Item, value: Buffer | null): void {
    const indexed = this.items.get(item.key) === item;
    if (indexed) this.bytesUsed -= item.size;
    if (value === null) item.dropValue();
    else item.holdValue(value);
    if (!indexed) return;
    this.bytesUsed += item.size;
    if (value === null) {
      this.valuesOnDisk++;
      this.valuesHeld?.delete(item);
    } else {
      this.valuesOnDisk--;
      this.valuesHeld?.add(item);
    }
  }

  /** What `key` holds now, to put back with restoreKey. */
  stateOf(key: string): KeyState {
    const item = this.items.get(key);
    return {
      key, item, expiresAt: item?.expiresAt ?? 0, version: item?.version ?? 0, origin: item?.origin ?? '', tombstone: this.tombstones.get(key),
      source: item?.source ?? null, sourceOffset: item?.sourceOffset ?? 0,
    };
  }

  /**
   * Puts `key` back as `state` recorded it: a write that could not be made durable is undone
   * (docs/architecture.md, "Disk storage"). Not journaled: the journal is the one undoing.
   */
  restoreKey(state: KeyState): void {
    const { key, item, tombstone } = state;
    this.remove(key);
    this.dropTombstone(key);
    if (item !== undefined) {
      item.expiresAt = state.expiresAt;
      item.version = state.version;
      item.origin = state.origin;
      item.source = state.source;
      item.sourceOffset = state.sourceOffset;
      this.index(item);
    }
    if (tombstone !== undefined) {
      this.tombstones.set(key, tombstone);
      this.tombstoneBytes += key.length + TOMBSTONE_OVERHEAD_BYTES;
    }
  }

  /**
   * Recovery from disk: puts an item read back from the log as it was, unless it has expired
   * since. Its CAS and version keep the counters above them. Not journaled. A null value is on
   * disk only, in the record at `sourceOffset` of `source`, `valueLength` bytes long.
   */
  loadItem(key: string, value: Buffer | null, flags: number, expiresAt: number, cas: number, version: number, origin: string, now: number, source: RecordSource | null = null, sourceOffset = 0, valueLength = value?.length ?? 0): void {
    if (cas >= this.nextCas) this.nextCas = cas + 1;
    if (version > this.versionClock) this.versionClock = version;
    const replaced = this.items.get(key);
    if (this.tombstones.size > 0) this.dropTombstone(key);
    if (isExpired(expiresAt, now)) {
      if (replaced !== undefined) this.unlink(replaced);
      return;
    }
    let item: Item;
    if (value === null) {
      item = Item.onDisk(key, valueLength, flags, expiresAt, cas, now, version, origin, source!, sourceOffset);
    } else {
      item = new Item(key, value, flags, expiresAt, cas, now, version, origin);
      item.source = source;
      item.sourceOffset = sourceOffset;
    }
    this.link(item, replaced);
  }

  /** Recovery from disk: a deletion read back from the log. Not journaled. */
  loadDeletion(key: string, version: number, origin: string, until: number, now: number): void {
    if (version > this.versionClock) this.versionClock = version;
    this.forget(key);
    if (now < until) this.remember(new Deletion(key, version, origin, until));
  }

  get itemCount(): number {
    return this.items.size;
  }

  get bytes(): number {
    return this.bytesUsed;
  }

  /** Deletions remembered (cluster mode: so an older copy cannot bring the item back). */
  get tombstoneCount(): number {
    return this.tombstones.size;
  }

  /** What the tombstones count against the memory cap. */
  get tombstoneBytesUsed(): number {
    return this.tombstoneBytes;
  }

  get memoryLimit(): number {
    return this.options.memoryLimit;
  }

  get maxItemSize(): number {
    return this.options.maxItemSize;
  }

  /** The live item, or undefined; an expired item found on the way is removed. */
  peek(key: string, now: number): Item | undefined {
    const item = this.items.get(key);
    if (item === undefined) return undefined;
    if (isExpired(item.expiresAt, now)) {
      this.unlink(item);
      this.counters.getExpired++;
      return undefined;
    }
    return item;
  }

  /** The item of `key` unless expired, with nothing counted, moved or dropped: for operators' listings. */
  inspect(key: string, now: number): Item | undefined {
    const item = this.items.get(key);
    return item === undefined || isExpired(item.expiresAt, now) ? undefined : item;
  }

  /** get/gets: counts hits and misses and keeps the item young in the LRU. */
  get(key: string, now: number): Item | undefined {
    const item = this.peek(key, now);
    if (item === undefined) {
      this.counters.getMisses++;
      return undefined;
    }
    this.counters.getHits++;
    this.bump(item, now);
    return item;
  }

  /** gat/gats: get and set a new expiry in one step. The item returned is the change: its new expiry and version. */
  getAndTouch(key: string, exptime: number, now: number): Item | undefined {
    this.journal?.before(key);
    const item = this.get(key, now);
    if (item === undefined) {
      this.counters.touchMisses++;
      return undefined;
    }
    this.counters.touchHits++;
    this.retime(item, exptime, now);
    return item;
  }

  /** touch: a new expiry for the item; the change is the item, with its new expiry and version. */
  touch(key: string, exptime: number, now: number): WriteResult {
    this.journal?.before(key);
    const item = this.peek(key, now);
    if (item === undefined) {
      this.counters.touchMisses++;
      return UNCHANGED[WriteStatus.NotFound];
    }
    this.counters.touchHits++;
    this.retime(item, exptime, now);
    this.bump(item, now);
    return { status: WriteStatus.Touched, change: item };
  }

  /** A new expiry is a write like any other: it gets a new version, so it replicates. */
  private retime(item: Item, exptime: number, now: number): void {
    item.expiresAt = expiresAtFromExptime(exptime, now);
    item.version = ++this.versionClock;
    item.origin = this.nodeId;
    this.journal?.item(item);
  }

  /**
   * What this node holds of `key`, as it would travel: the live item, the deletion it remembers,
   * or null. A read: it changes nothing (but drops an expired item it finds, as every read does).
   */
  record(key: string, now: number): ItemRecord | null {
    const item = this.peek(key, now);
    if (item !== undefined) return item.toRecord();
    return this.tombstones.get(key)?.toRecord() ?? null;
  }

  /**
   * Applies a write replicated from another node, if it is newer than what is here. Returns
   * whether it changed anything. Without tombstones, a deletion cannot stop an older copy that
   * arrives later; re-replication only ever sends owners' current state, which keeps this rare.
   */
  apply(record: ItemRecord, now: number): boolean {
    if (record.version > this.versionClock) this.versionClock = record.version;
    this.journal?.before(record.key);
    const existing = this.items.get(record.key);
    if (existing !== undefined && !isNewer(record.version, record.origin, existing.version, existing.origin)) return false;
    const tombstone = this.tombstones.get(record.key);
    if (tombstone !== undefined && !isNewer(record.version, record.origin, tombstone.version, tombstone.origin)) return false;
    if (record.value === null || isExpired(record.expiresAt, now)) {
      // A deletion, or a write that left an item already expired (an exptime in the past), which
      // is as good as one: remembered as the deleting node says (a deletion record's expiresAt),
      // else as long as the copy held here would have lived (nodes before tombstone lifetimes
      // sent 0), and at least a minute.
      const until = tombstoneUntil(record.value !== null ? now : record.expiresAt !== 0 ? record.expiresAt : existing?.expiresAt ?? 0, now);
      if (existing !== undefined) this.unlink(existing);
      const deletion = new Deletion(record.key, record.version, record.origin, until);
      const remembered = this.remember(deletion);
      this.journal?.deletion(deletion, remembered);
      return existing !== undefined;
    }
    if (record.value.length > this.options.maxItemSize) return false;
    this.link(new Item(record.key, record.value, record.flags, record.expiresAt, this.nextCas++, now, record.version, record.origin), existing);
    return true;
  }

  /**
   * Drops what this node holds of `key`, item or remembered deletion, with no version: nothing
   * is replicated. For a copy this node no longer owns, and for a write undone here (whose other
   * owner keeps the state before it).
   */
  forget(key: string): void {
    const held = this.items.has(key) || this.tombstones.has(key);
    if (held) this.journal?.before(key);
    this.remove(key);
    this.dropTombstone(key);
    if (held) this.journal?.removal(key);
  }

  /** Whether `change` is still what this node holds of its key: no later write replaced it. */
  holds(change: Change): boolean {
    if (change instanceof Item) return this.items.get(change.key) === change;
    return !this.items.has(change.key) && this.tombstones.get(change.key) === change;
  }

  /** Every item, expired or not, for re-replication scans. */
  allItems(): IterableIterator<Item> {
    return this.items.values();
  }

  /** Every deletion remembered, forgotten or not yet, for handoffs. */
  allDeletions(): IterableIterator<Deletion> {
    return this.tombstones.values();
  }

  /**
   * A value over the item size limit. memcached (proto_text.c, process_update_command): a failed
   * set must not leave the old value behind, or a reader would see data the client replaced. So
   * a refused set is a deletion, which the other owner must make too, whether or not this node
   * held the item.
   */
  refuseOversized(mode: StoreMode, key: string, now: number): WriteResult {
    if (mode !== StoreMode.Set) return UNCHANGED[WriteStatus.TooLarge];
    this.journal?.before(key);
    const existing = this.items.get(key);
    let deletion: Deletion;
    if (existing !== undefined) {
      this.unlink(existing);
      deletion = this.bury(key, now, existing.expiresAt);
    } else {
      // Nothing to delete here: the deletion already remembered, if any, else a fresh one.
      deletion = this.tombstones.get(key) ?? this.bury(key, now, now);
    }
    return { status: WriteStatus.TooLarge, change: deletion };
  }

  store(mode: StoreMode, key: string, flags: number, exptime: number, value: Buffer, cas: number, now: number): WriteResult {
    if (value.length > this.options.maxItemSize) return this.refuseOversized(mode, key, now);
    this.journal?.before(key);
    const existing = this.peek(key, now);
    switch (mode) {
      case StoreMode.Set:
        if (cas !== 0) return this.store(StoreMode.Cas, key, flags, exptime, value, cas, now);
        break;
      case StoreMode.Add:
        if (existing !== undefined) {
          // memcached bumps an item that an add found, so a hot lock key stays resident.
          this.bump(existing, now);
          return UNCHANGED[WriteStatus.NotStored];
        }
        break;
      case StoreMode.Replace:
        if (existing === undefined) return UNCHANGED[WriteStatus.NotStored];
        if (cas !== 0 && existing.cas !== cas) return UNCHANGED[WriteStatus.Exists];
        break;
      case StoreMode.Append:
      case StoreMode.Prepend: {
        if (existing === undefined) return UNCHANGED[WriteStatus.NotStored];
        if (cas !== 0 && existing.cas !== cas) return UNCHANGED[WriteStatus.Exists];
        const joined = mode === StoreMode.Append ? Buffer.concat([existing.value, value]) : Buffer.concat([value, existing.value]);
        if (joined.length > this.options.maxItemSize) return UNCHANGED[WriteStatus.TooLarge];
        // append/prepend keep the item's flags and exptime (protocol.txt: "ignores" them).
        return this.stored(new Item(key, joined, existing.flags, existing.expiresAt, this.nextCas++, now, ++this.versionClock, this.nodeId), existing, now);
      }
      case StoreMode.Cas:
        if (existing === undefined) {
          this.counters.casMisses++;
          return UNCHANGED[WriteStatus.NotFound];
        }
        if (existing.cas !== cas) {
          this.counters.casBadval++;
          return UNCHANGED[WriteStatus.Exists];
        }
        this.counters.casHits++;
        break;
    }
    return this.stored(new Item(key, value, flags, expiresAtFromExptime(exptime, now), this.nextCas++, now, ++this.versionClock, this.nodeId), existing, now);
  }

  delete(key: string, cas: number, now: number): WriteResult {
    this.journal?.before(key);
    const item = this.peek(key, now);
    if (item === undefined) {
      this.counters.deleteMisses++;
      return UNCHANGED[WriteStatus.NotFound];
    }
    if (cas !== 0 && item.cas !== cas) return UNCHANGED[WriteStatus.Exists];
    this.counters.deleteHits++;
    this.unlink(item);
    return { status: WriteStatus.Deleted, change: this.bury(key, now, item.expiresAt) };
  }

  /**
   * incr/decr (protocol.txt, "Increment/Decrement"): the value must be the decimal
   * representation of a 64-bit unsigned integer; incr wraps around at 2^64, decr stops at 0.
   * Stored with the new value when there is one.
   */
  arith(key: string, incr: boolean, delta: bigint, initial: bigint | null, exptime: number, cas: number, now: number): ArithResult {
    this.journal?.before(key);
    const item = this.peek(key, now);
    if (item === undefined) {
      if (incr) this.counters.incrMisses++;
      else this.counters.decrMisses++;
      if (initial === null) return UNCHANGED[WriteStatus.NotFound];
      const created = this.store(StoreMode.Add, key, 0, exptime, Buffer.from(initial.toString(), 'latin1'), 0, now);
      return created.status === WriteStatus.Stored ? { ...created, value: initial } : created;
    }
    if (cas !== 0 && item.cas !== cas) return UNCHANGED[WriteStatus.Exists];
    const current = parseCounter(item.value);
    if (current === null) return UNCHANGED[WriteStatus.NonNumeric];
    let next: bigint;
    if (incr) {
      this.counters.incrHits++;
      next = (current + delta) & UINT64_MASK;
    } else {
      this.counters.decrHits++;
      next = current > delta ? current - delta : 0n;
    }
    const changed = new Item(key, Buffer.from(next.toString(), 'latin1'), item.flags, item.expiresAt, this.nextCas++, now, ++this.versionClock, this.nodeId);
    this.link(changed, item);
    return { status: WriteStatus.Stored, change: changed, value: next };
  }

  /** Items that have not expired, oldest first (for `stats cachedump`). */
  *liveItems(now: number): IterableIterator<Item> {
    for (const item of this.items.values()) if (!isExpired(item.expiresAt, now)) yield item;
  }

  /** The least recently used item (for `stats items` age). */
  oldestItem(): Item | undefined {
    return this.items.values().next().value;
  }

  /** `stats reset`: counters go back to zero; items and their totals stay. */
  resetCounters(): void {
    for (const key of Object.keys(this.counters) as Array<keyof StoreCounters>) this.counters[key] = 0;
  }

  /** flush_all: every item stored so far becomes invalid. */
  flush(): void {
    this.journal?.flush();
    this.items.clear();
    this.valuesHeld?.clear();
    this.valuesOnDisk = 0;
    this.tombstones.clear();
    this.bytesUsed = 0;
    this.tombstoneBytes = 0;
    this.itemSweep.restart();
    this.tombstoneSweep.restart();
  }

  /**
   * Reclaims expired items in the background so their memory comes back without a read
   * (memcached's LRU crawler). Scans at most `budget` items per call, resuming where it stopped.
   */
  sweepExpired(now: number, budget: number): number {
    let reclaimed = 0;
    this.itemSweep.visit(budget, (item) => {
      if (!isExpired(item.expiresAt, now)) return;
      this.unlink(item);
      this.counters.expiredUnfetched++;
      reclaimed++;
    });
    this.counters.reclaimed += reclaimed;
    // Tombstones take turns too: with a large cap there can be millions of them.
    this.tombstoneSweep.visit(budget, ([key, tombstone]) => {
      if (now >= tombstone.until) this.dropTombstone(key);
    });
    return reclaimed;
  }

  private bump(item: Item, now: number): void {
    if (now - item.bumpedAt < LRU_BUMP_INTERVAL_MS) return;
    item.bumpedAt = now;
    // A Map keeps insertion order: re-inserting moves the item to the young end.
    this.items.delete(item.key);
    this.items.set(item.key, item);
    if (this.valuesHeld !== null && item.inMemory) {
      this.valuesHeld.delete(item);
      this.valuesHeld.add(item);
    }
  }

  /**
   * Remembers that `key`, expiring at `expiresAt` (0: never or unknown), was deleted here, with a
   * version newer than any write of it so far.
   */
  private bury(key: string, now: number, expiresAt: number): Deletion {
    const deletion = new Deletion(key, ++this.versionClock, this.nodeId, tombstoneUntil(expiresAt, now));
    // Remembered first: an optional call would skip evaluating its arguments without a journal.
    const remembered = this.remember(deletion);
    this.journal?.deletion(deletion, remembered);
    return deletion;
  }

  /**
   * Keeps `deletion` as the tombstone of its key, as the newest, making room for it under the
   * memory cap. Returns whether it is kept (a single node keeps none).
   */
  private remember(deletion: Deletion): boolean {
    if (this.options.rememberDeletions === false) return false;
    const { key } = deletion;
    this.dropTombstone(key);
    const cost = key.length + TOMBSTONE_OVERHEAD_BYTES;
    this.evictFor(cost);
    this.tombstones.set(key, deletion);
    this.tombstoneBytes += cost;
    return true;
  }

  private dropTombstone(key: string): void {
    if (this.tombstones.delete(key)) this.tombstoneBytes -= key.length + TOMBSTONE_OVERHEAD_BYTES;
  }

  /**
   * Links a new item written here: the write's change. An item stored already expired (an exptime
   * in the past: libmemcached's existence probe) is linked as memcached links it, unreadable, but
   * what it changed is a deletion: remembered briefly, so the other owner drops its copy and no
   * older copy can bring the key back.
   */
  private stored(item: Item, replaced: Item | undefined, now: number): WriteResult {
    this.link(item, replaced);
    if (!isExpired(item.expiresAt, now)) return { status: WriteStatus.Stored, change: item };
    return { status: WriteStatus.Stored, change: this.bury(item.key, now, now), cas: item.cas };
  }

  private link(item: Item, replaced: Item | undefined): void {
    if (replaced !== undefined) {
      item.createdAt = replaced.createdAt;
      this.unlink(replaced);
    }
    this.dropTombstone(item.key);
    this.evictFor(item.size);
    this.index(item);
    this.counters.totalItems++;
    this.journal?.item(item);
  }

  /** Puts `item` in the maps and counts what it costs. */
  private index(item: Item): void {
    this.items.set(item.key, item);
    this.bytesUsed += item.size;
    if (!item.inMemory) this.valuesOnDisk++;
    else this.valuesHeld?.add(item);
  }

  private remove(key: string): void {
    const item = this.items.get(key);
    if (item !== undefined) this.unlink(item);
  }

  private unlink(item: Item): void {
    if (this.items.get(item.key) !== item) return;
    this.items.delete(item.key);
    this.bytesUsed -= item.size;
    if (!item.inMemory) this.valuesOnDisk--;
    else this.valuesHeld?.delete(item);
  }

  /**
   * Makes `size` more bytes fit under the memory limit: the oldest tombstones go first, then
   * items from the old end of the LRU. A tombstone lost early matters only if an older copy of
   * that deleted item arrives before it would have expired; an evicted item is a lost session.
   */
  private evictFor(size: number): void {
    const limit = this.options.memoryLimit - size;
    if (this.bytesUsed + this.tombstoneBytes <= limit) return;
    // With disk storage, values go first: they stay on disk, nothing is lost.
    if (this.valuesHeld !== null) {
      for (const item of this.valuesHeld) {
        if (this.bytesUsed + this.tombstoneBytes <= limit) return;
        // Nowhere to read it back from (never logged, or its file replaced): it stays held.
        if (item.source === null || !item.source.readable) {
          this.valuesHeld.delete(item);
          continue;
        }
        // A record still queued belongs to a write of this turn: the items after it were used
        // later still. The rest waits for the next write, when it is in the file.
        if (!item.source.written(item.sourceOffset)) break;
        this.setValue(item, null);
      }
    }
    for (const key of this.tombstones.keys()) {
      if (this.bytesUsed + this.tombstoneBytes <= limit) return;
      this.dropTombstone(key);
      this.counters.evictedTombstones++;
    }
    let evicted = 0;
    for (const oldest of this.items.values()) {
      if (this.bytesUsed <= limit) break;
      this.journal?.before(oldest.key);
      this.unlink(oldest);
      this.journal?.removal(oldest.key);
      evicted++;
    }
    if (evicted > 0) {
      this.counters.evictions += evicted;
      this.options.onEvict?.(evicted);
    }
  }
}

/**
 * A scan of a Map that goes on where the last call stopped, a budget of entries at a time. Map
 * iterators stay valid while entries are deleted, and see entries added behind them.
 */
class ResumableScan<T> {
  private cursor: Iterator<T> | null = null;

  constructor(private readonly begin: () => Iterator<T>) {}

  /** Visits up to `budget` entries; after the last one, the next call starts over. */
  visit(budget: number, visitor: (entry: T) => void): void {
    for (let visited = 0; visited < budget; visited++) {
      this.cursor ??= this.begin();
      const next = this.cursor.next();
      if (next.done === true) {
        this.cursor = null;
        return;
      }
      visitor(next.value);
    }
  }

  restart(): void {
    this.cursor = null;
  }
}

/** Parses a counter value as memcached's safe_strtoull does: digits, optionally padded with spaces. */
export function parseCounter(value: Buffer): bigint | null {
  let start = 0;
  let end = value.length;
  while (start < end && value[start] === 0x20) start++;
  while (end > start && value[end - 1] === 0x20) end--;
  if (start === end || end - start > 20) return null;
  let result = 0n;
  for (let i = start; i < end; i++) {
    const digit = value[i]! - 0x30;
    if (digit < 0 || digit > 9) return null;
    result = result * 10n + BigInt(digit);
  }
  return result > UINT64_MASK ? null : result;
}
