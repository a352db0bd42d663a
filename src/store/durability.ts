/**
 * What a write's reply waits for besides the store: with disk storage (--data-dir), the write's
 * log records. The store's journal queues them; whoever runs a command as its session's owner
 * asks, after it ran, what the reply must wait for (docs/architecture.md, "Disk storage").
 */
import type { Reply } from '../protocol/types.js';

export interface Durability {
  /** the sequence number the next log record will get: a command that moved it wrote records */
  readonly nextSeq: number;
  /** whether replies wait for the records' fdatasync (--fsync always) */
  readonly syncsEachWrite: boolean;
  /** writes the queued records to the file (the kernel), synchronously */
  writePending(): void;
  /** settles true once the records up to `seq` are durable; false: they were undone */
  durable(seq: number): Promise<boolean>;
}

/** The answer to a write whose records could not be made durable: it was undone. */
export const NOT_DURABLE: Reply = {
  kind: 'serverError',
  message: 'temporary failure: disk storage could not make the write durable; not stored',
};

/**
 * After a command ran (`seqBefore` being `nextSeq` before it): under --fsync always, a promise
 * that settles with whether its records became durable; null when there is nothing to wait for.
 * The records reach the file before any reply goes to a socket (src/server/reply-batch.ts),
 * in one write for all the commands of a read.
 */
export function afterWrite(durability: Durability | undefined, seqBefore: number): Promise<boolean> | null {
  if (durability === undefined || !durability.syncsEachWrite || durability.nextSeq === seqBefore) return null;
  return durability.durable(durability.nextSeq - 1);
}

/** `reply`, once `durable` says its write is on disk; NOT_DURABLE if it was undone. */
export function whenDurable(reply: Reply, durable: Promise<boolean> | null): Reply | Promise<Reply> {
  return durable === null ? reply : durable.then((ok) => (ok ? reply : NOT_DURABLE));
}
