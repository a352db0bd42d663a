/**
 * Whether this node may acknowledge session writes: while it serves (it is in the set of
 * members that reach each other, connectivity.ts) and that set holds a majority of the members
 * the cluster last agreed on (docs/architecture.md, "Guarantees"). A node cut off from the
 * majority stops acknowledging, so that the majority can take its sessions over without two
 * sides writing the same sessions; a partition then costs availability on the small side, never
 * acknowledged writes.
 *
 * The members agreed on (the voters): every member that served since this node started, less
 * those that stopped serving while this node had a majority, and those that left. So a cluster
 * that loses members one at a time keeps going as long as each loss leaves a majority of the
 * membership before it: five nodes can lose two, one after the other, then two more if each loss
 * left a majority (3 of 5, then 2 of 3). A cluster of two cannot have a majority of two after a
 * loss: `twoNodes` says what it does then.
 */
import type { TwoNodeMode } from '../config.js';
import type { NodeId } from './types.js';


/** What the router and the replicator ask. */
export interface QuorumCheck {
  /** whether this node may acknowledge session writes now */
  readonly ok: boolean;
  /** why not, for replies and logs */
  describe(): string;
}

/** Always ok: a single node, and tests that do not exercise the majority rule. */
export const ALWAYS_QUORUM: QuorumCheck = { ok: true, describe: () => 'a single node' };

export class Quorum implements QuorumCheck {
  private readonly voters = new Set<NodeId>();
  private serving: ReadonlySet<NodeId>;
  private hasIt = true;

  /**
   * `twoNodes`: with two voters, one of them not serving, `available` keeps acknowledging on the
   * one left (a partition between the two then loses the writes made on one side); `consistent`
   * stops until both serve again (no write is lost, but nothing is served meanwhile).
   */
  constructor(readonly self: NodeId, private readonly twoNodes: TwoNodeMode = 'available') {
    this.voters.add(self);
    this.serving = new Set([self]);
  }

  get ok(): boolean {
    return this.hasIt;
  }

  /** The members counted for the majority. */
  get voterIds(): NodeId[] {
    return [...this.voters].sort();
  }

  /** How many voters serve now. */
  get servingVoters(): number {
    let count = 0;
    for (const id of this.voters) if (this.serving.has(id)) count++;
    return count;
  }

  describe(): string {
    if (!this.serving.has(this.self)) return 'this node is cut off from the members that reach each other';
    return `this node reaches ${this.servingVoters} of the cluster's ${this.voters.size} members, not a majority`;
  }

  /**
   * After each change of the serving set, or of the members that left: whether this node has a
   * majority now. A member that stopped serving while this node had one no longer counts.
   */
  update(serving: ReadonlySet<NodeId>, left: Iterable<NodeId>): boolean {
    this.serving = serving;
    for (const id of left) if (id !== this.self) this.voters.delete(id);
    for (const id of serving) this.voters.add(id);
    this.hasIt = this.judge();
    if (this.hasIt) for (const id of [...this.voters]) if (!serving.has(id)) this.voters.delete(id);
    return this.hasIt;
  }

  private judge(): boolean {
    if (!this.serving.has(this.self)) return false;
    const serving = this.servingVoters;
    if (this.voters.size === 2 && this.twoNodes === 'available') return serving >= 1;
    return serving * 2 > this.voters.size;
  }
}
