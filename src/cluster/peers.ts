/**
 * How the router and the replicator reach other nodes, and how other nodes reach them: the one
 * seam between this node's cluster logic and the wire (groupcache's PickPeer/ProtoGetter,
 * memberlist's Transport). peer/peer-links.ts carries it over the authenticated peer links, with
 * the command codec and the opcodes; memory-peers.ts connects nodes in one process, for tests.
 *
 * Requests fail with a PeerError whose code says what the caller may assume (errors.ts): never
 * sent (ERR_PEER_UNAVAILABLE, ERR_PEER_BUSY, ERR_PEER_CLOSED, ERR_PEER_TOO_LARGE), sent with an
 * unknown outcome (ERR_PEER_DISCONNECTED, ERR_PEER_TIMEOUT), refused without running
 * (ERR_PEER_REFUSED: a handler throws a PeerError with that code to refuse), or answered with an
 * error (ERR_PEER_REMOTE).
 */

/** What a handler throws to refuse a request without running it: the sender may send it elsewhere. */
export function refusal(message: string): PeerError {
  return new PeerError('ERR_PEER_REFUSED', message);
}

/** The sender's clock as this node estimates it, to judge a Deadline. */
export interface PeerClocks {
  /**
   * `member`'s wall clock now (ms since the epoch), as this node estimates it; undefined before
   * this node has measured it (its first heartbeat has not arrived)
   */
  nowAt(member: NodeId): number | undefined;
}

/** Clocks taken to agree: for tests. */
export const SAME_CLOCKS: PeerClocks = { nowAt: () => Date.now() };

/**
 * How long `deadline` still leaves, by its sender's clock as estimated here (0 or less: past).
 * A sender whose clock is not measured yet (moments after it joined) cannot be judged: its
 * request gets its whole time, as if it had come at once.
 */
export function timeLeft(deadline: Deadline, clocks: PeerClocks): number {
  const senderNow = clocks.nowAt(deadline.from);
  return senderNow === undefined ? deadline.validForMs : deadline.sentAt + deadline.validForMs - senderNow;
}

/** Whether `deadline` has passed, by its sender's clock as estimated here. */
export function isPast(deadline: Deadline, clocks: PeerClocks): boolean {
  return deadline.validForMs > 0 && timeLeft(deadline, clocks) <= 0;
}
import { PeerError } from '../errors.js';
import type { Command, Reply } from '../protocol/types.js';
import type { ItemRecord } from '../store/types.js';
import type { NodeId, Owner } from './types.js';

/**
 * When a request was sent, by whom, and how long the sender waits for its answer. The receiver
 * refuses (Refused) a request it could only run after that: its sender has told its client the
 * request failed, and a write that ran then could replace a newer one (docs/architecture.md,
 * "Replication").
 */
export interface Deadline {
  from: NodeId;
  /** the sender's wall clock when it sent the request, ms since the epoch */
  sentAt: number;
  /** how long after sentAt the request may still run */
  validForMs: number;
}

/** How long a request may take, and how long after it was sent it may still run (0: no deadline). */
export interface RequestLimits {
  timeoutMs: number;
  validForMs: number;
}

/**
 * Runs a command forwarded by another node here, where its session is mastered; `relay`: the
 * sender could not reach the master itself, and asks this node to forward it there, once.
 */
export type ForwardHandler = (command: Command, deadline: Deadline | null, relay: boolean) => Reply | Promise<Reply>;
/** Applies records another node copied here; the copy is acknowledged once this returns. */
export type ReplicateHandler = (records: ItemRecord[], deadline: Deadline | null) => void;
/** A key's version, offered before its record is sent: the receiver says whether it needs it. */
export interface Offer {
  key: string;
  version: number;
  origin: string;
}

/** Which of `offers` this node lacks, or holds in an older version: their indexes, in order. */
export type OfferHandler = (offers: Offer[]) => number[];

/**
 * A (re)joining node asks for the sessions it will own: push them to it, and settle with
 * whether every one was acknowledged.
 */
export type HandoffHandler = (requester: Owner) => Promise<boolean>;

/** What a failed request becomes instead of a rejection (Peers.forward). */
export type Recover<T> = (error: unknown) => T | Promise<T>;

/** `settled` as it is, or, with `recover`, with its rejection turned into what recover makes of it. */
export function settleWith<T>(settled: Promise<T>, recover: Recover<T> | undefined): Promise<T> {
  return recover === undefined ? settled : settled.then(undefined, recover);
}

export interface Peers {
  /**
   * Runs `command` on `owner`, which runs it as the session's owner and never forwards it
   * again, and settles with its reply. With `recover`, a failure settles it with what `recover`
   * makes of the error instead of rejecting it: the router's first attempt hands its retries to
   * recover, so that the reply itself reaches the client with no promise in between.
   */
  forward(owner: Owner, command: Command, limits: RequestLimits & { relay?: boolean }, recover?: Recover<Reply>): Promise<Reply>;
  /** Copies `records` to `owner`; settles once it has applied them. */
  replicate(owner: Owner, records: readonly ItemRecord[], limits: RequestLimits): Promise<void>;
  /**
   * Asks the node at `address` for the sessions this node owns; settles once it pushed them all
   * (as replicate calls to `self`), rejects with ERR_PEER_REMOTE when it could not.
   */
  requestHandoff(address: string, self: Owner, timeoutMs: number): Promise<void>;
  /**
   * Asks `owner` which of `offers` it needs (it lacks the key, or holds an older version), before
   * their records are sent: a node that kept its sessions (on disk) is sent only what changed.
   * Settles with the indexes of those it needs; rejects like any request (an older node answers
   * ERR_PEER_REMOTE, UnknownOpcode: send it everything).
   */
  offer(owner: Owner, offers: readonly Offer[], timeoutMs: number): Promise<number[]>;

  /** How this node answers each kind of request; each is registered once, by its owner. */
  serveForward(handler: ForwardHandler): void;
  serveReplicate(handler: ReplicateHandler): void;
  serveHandoff(handler: HandoffHandler): void;
  serveOffer(handler: OfferHandler): void;
}
