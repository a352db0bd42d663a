/**
 * What the cluster's parts share: node identity, member states, and the transport seam
 * between membership/replication and the peer links (memberlist-style: a real TCP transport
 * and an in-memory one for tests implement the same interface).
 */

import type { NodeId } from '../node-id.js';

/** A node's stable identity (--node-id); what it may be is node-id.ts's. */
export type { NodeId };

export enum MemberState {
  /** heartbeats arrive; owns and serves sessions */
  Alive = 'alive',
  /** heartbeats stopped for a while; still counted as an owner until declared dead */
  Suspect = 'suspect',
  /** gone: its sessions are served by the next candidates */
  Dead = 'dead',
  /** left on purpose (drain) */
  Left = 'left',
}

export interface MemberInfo {
  id: NodeId;
  /** peer address, "host:port" */
  peerAddress: string;
  state: MemberState;
  /**
   * Raised only by the member itself (to refute a suspicion, or when it restarts); news about a
   * member with a lower incarnation than what is known never wins (memberlist's rule).
   */
  incarnation: number;
  /**
   * A member that left on purpose (drain): the node it named to take over the sessions whose
   * minted ids name it, which the cluster remembers until the member is forgotten
   * (docs/architecture.md, "Graceful shutdown"). Added after the first release: older nodes drop it.
   */
  replacement?: NodeId;
}

/** A member as routing and replication address it: its id, and the peer address to dial. */
export interface Owner {
  id: NodeId;
  address: string;
}

/** The master and backup of a key, as placement decides them now (null: none live). */
export interface KeyOwners {
  master: Owner | null;
  backup: Owner | null;
}

/** A message between two nodes; the peer codec turns it into bytes. */
export interface PeerEnvelope<T = unknown> {
  from: NodeId;
  to: NodeId;
  body: T;
}

/**
 * The `to` of a send whose node id is not known yet: a join sent to a seed address (`--peers` lists
 * addresses, not ids). The transport must deliver it to whichever node answers at that address
 * without checking the remote's id; every other send names the node it expects, and a transport that
 * finds another node at that address drops the message (logged and counted).
 */
export const UNKNOWN_NODE_ID: NodeId = '';

/**
 * The seam membership uses to reach other nodes. Sends are fire-and-forget: a failed send is
 * logged and counted by the transport, never thrown (a dead peer is membership's business).
 */
export interface MembershipTransport {
  /** this node */
  readonly self: NodeId;
  send(to: NodeId, peerAddress: string, message: MembershipMessage): void;
  onMessage(handler: (from: NodeId, message: MembershipMessage) => void): void;
}

/** Membership's own messages (carried by the peer link's Membership opcode). */
export type MembershipMessage =
  | { kind: 'join'; member: MemberInfo }
  /**
   * `load`: how many items the sender holds (added after the first release: absent from older
   * nodes, ignored by them). Minting reads it to pick the least-loaded backup. `sentAt`: the
   * sender's wall clock when it sent the heartbeat, ms since the epoch (added later, like load):
   * how peers measure each other's clocks (clock-offsets.ts).
   */
  | {
    kind: 'heartbeat'; member: MemberInfo; members: MemberInfo[]; load?: number; sentAt?: number;
    /** whom each member hears, as reported (added later: older nodes neither send nor read it) */
    reach?: Array<{ id: NodeId; incarnation: number; seq: number; hears: NodeId[] }>;
  }
  | { kind: 'leave'; member: MemberInfo };
