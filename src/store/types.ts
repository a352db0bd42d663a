/**
 * The store's own vocabulary: how a write treats an existing item, what a write answered, and
 * the records that carry a key's state between nodes (and, later, to a disk log). Protocols speak
 * in these terms and translate them into their own replies; the store imports nothing above it.
 */

/** How a storage command treats an existing item (memcached protocol.txt, "Storage commands"). */
export enum StoreMode {
  Set,
  Add,
  Replace,
  Append,
  Prepend,
  /** set only if the item's cas unique still matches ("cas" command, or binary SET with a cas) */
  Cas,
}

/**
 * What a write answered: memcached's store result enum (items.c, do_store_item: STORED, EXISTS,
 * NOT_FOUND, NOT_STORED, TOO_LARGE), plus the answers of delete, touch and incr/decr.
 */
export enum WriteStatus {
  Stored,
  NotStored,
  Exists,
  NotFound,
  Deleted,
  Touched,
  TooLarge,
  NonNumeric,
}

/** A key's state as it travels between nodes: value null means deleted. */
export interface ItemRecord {
  key: string;
  value: Buffer | null;
  flags: number;
  /** ms since the epoch, 0 = never; for a deletion, until when it must be remembered */
  expiresAt: number;
  version: number;
  origin: string;
}

/** Whether (version, origin) a is newer than b: the order of writes cluster-wide, never a clock. */
export function isNewer(aVersion: number, aOrigin: string, bVersion: number, bOrigin: string): boolean {
  return aVersion > bVersion || (aVersion === bVersion && aOrigin > bOrigin);
}
