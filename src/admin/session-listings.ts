/**
 * Listings of the sessions a node holds, read page by page by the operator's subcommands
 * (`stats sessions`). A listing fixes the keys at its start, so pages neither skip nor repeat a
 * session while others are written; each page looks its keys up again and leaves out what has
 * gone since. Listings are few and short-lived: an abandoned one is dropped after a minute idle.
 */
import type { Item } from '../store/change.js';

/** At most this many listings at once: a new one drops the least recently read. */
const MAX_LISTINGS = 8;
/** A listing nobody read for this long is dropped. */
const IDLE_MS = 60_000;
/** At most this many sessions a page: a page must fit a peer frame when another node relays it. */
export const MAX_PAGE = 2000;

interface Listing {
  keys: string[];
  next: number;
  readAt: number;
}

export class SessionListings {
  private readonly listings = new Map<number, Listing>();
  private nextId = 1;

  constructor(private readonly now: () => number = Date.now) {}

  /** Starts a listing of `keys`; its id. */
  start(keys: string[]): number {
    this.dropIdle();
    if (this.listings.size >= MAX_LISTINGS) {
      const oldest = [...this.listings].sort((a, b) => a[1].readAt - b[1].readAt)[0]!;
      this.listings.delete(oldest[0]);
    }
    const id = this.nextId++;
    this.listings.set(id, { keys, next: 0, readAt: this.now() });
    return id;
  }

  /**
   * The next page of listing `id`: up to `count` items still held (`find` gives each key's item,
   * or undefined when it has gone), and how many keys are left after it. null: no such listing.
   * A listing read to its end is dropped.
   */
  page(id: number, count: number, find: (key: string) => Item | undefined): { items: Item[]; remaining: number } | null {
    this.dropIdle();
    const listing = this.listings.get(id);
    if (listing === undefined) return null;
    listing.readAt = this.now();
    const items: Item[] = [];
    while (items.length < Math.min(count, MAX_PAGE) && listing.next < listing.keys.length) {
      const item = find(listing.keys[listing.next++]!);
      if (item !== undefined) items.push(item);
    }
    const remaining = listing.keys.length - listing.next;
    if (remaining === 0) this.listings.delete(id);
    return { items, remaining };
  }

  private dropIdle(): void {
    const now = this.now();
    for (const [id, listing] of this.listings) if (now - listing.readAt > IDLE_MS) this.listings.delete(id);
  }
}
