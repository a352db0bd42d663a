/**
 * How the router and the replicator reach other nodes, and how other nodes reach them: the one
 * seam between this node's cluster logic and the wire (groupcache's PickPeer/ProtoGetter,
 * memberlist's Transport). peer/peer-links.ts carries it over the authenticated peer links, with
 * the command codec and the opcodes; memory-peers.ts connects nodes in one process, for tests.
 *
 * Requests fail with a PeerError whose code says what the caller may assume (errors.ts): never
 * sent (ERR_PEER_UNAVAILABLE, ERR_PEER_BUSY, ERR_PEER_CLOSED, ERR_PEER_TOO_LARGE), sent with an
 * unknown outcome (ERR_PEER_DISCONNECTED, ERR_PEER_TIMEOUT), or answered with an error
 * (ERR_PEER_REMOTE).
 */
import type { Command, Reply } from '../protocol/types.js';
import type { ItemRecord } from '../store/types.js';
import type { Owner } from './types.js';

/** Runs a command forwarded by another node here, where its session is mastered. */
export type ForwardHandler = (command: Command) => Reply | Promise<Reply>;
/** Applies records another node copied here; the copy is acknowledged once this returns. */
export type ReplicateHandler = (records: ItemRecord[]) => void;
/**
 * A (re)joining node asks for the sessions it will own: push them to it, and settle with
 * whether every one was acknowledged.
 */
export type HandoffHandler = (requester: Owner) => Promise<boolean>;

export interface Peers {
  /**
   * Runs `command` on `owner`, which runs it as the session's owner and never forwards it
   * again, and settles with its reply.
   */
  forward(owner: Owner, command: Command, timeoutMs: number): Promise<Reply>;
  /** Copies `records` to `owner`; settles once it has applied them. */
  replicate(owner: Owner, records: readonly ItemRecord[], timeoutMs: number): Promise<void>;
  /**
   * Asks the node at `address` for the sessions this node owns; settles once it pushed them all
   * (as replicate calls to `self`), rejects with ERR_PEER_REMOTE when it could not.
   */
  requestHandoff(address: string, self: Owner, timeoutMs: number): Promise<void>;

  /** How this node answers each kind of request; each is registered once, by its owner. */
  serveForward(handler: ForwardHandler): void;
  serveReplicate(handler: ReplicateHandler): void;
  serveHandoff(handler: HandoffHandler): void;
}
