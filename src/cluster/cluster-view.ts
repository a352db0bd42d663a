/**
 * What routing and replication read of the cluster at each request: who is live, their peer
 * addresses, and the owners of a key. Rebuilt on membership events only, so a request costs a
 * routing-key extraction and one rendezvous ranking, no allocation of member lists.
 */
import { owners as rankOwners } from './placement/rendezvous.js';
import { routingKey } from './placement/routing-key.js';
import { MemberState, type MemberInfo, type NodeId } from './types.js';

export interface Owner {
  id: NodeId;
  address: string;
}

export interface KeyOwners {
  master: Owner | null;
  backup: Owner | null;
}

export class ClusterView {
  private liveIds: string[] = [];
  private readonly addresses = new Map<NodeId, string>();

  constructor(readonly self: NodeId, private readonly sessionPrefix?: string) {}

  /** Takes the member list (membership's snapshot) after every change. */
  update(members: readonly MemberInfo[]): void {
    // Suspect members still own their sessions until declared dead (DESIGN.md, "Membership").
    this.liveIds = members.filter((m) => m.state === MemberState.Alive || m.state === MemberState.Suspect).map((m) => m.id);
    this.addresses.clear();
    for (const member of members) this.addresses.set(member.id, member.peerAddress);
  }

  isLive(id: NodeId): boolean {
    return this.liveIds.includes(id);
  }

  owners(key: string): KeyOwners {
    const { master, backup } = rankOwners(routingKey(key, this.sessionPrefix), this.liveIds);
    return { master: this.owner(master), backup: this.owner(backup) };
  }

  /**
   * Whether `candidate` masters or backs up `key` once it is counted live: how a node that is
   * (re)joining learns which sessions to take back before others may already count it.
   */
  ownedBy(key: string, candidate: NodeId): boolean {
    const members = this.liveIds.includes(candidate) ? this.liveIds : [...this.liveIds, candidate];
    const { master, backup } = rankOwners(routingKey(key, this.sessionPrefix), members);
    return master === candidate || backup === candidate;
  }

  /** The owners of `key` other than this node: where its writes must be copied. */
  otherOwners(key: string): Owner[] {
    const { master, backup } = this.owners(key);
    const others: Owner[] = [];
    if (master !== null && master.id !== this.self) others.push(master);
    if (backup !== null && backup.id !== this.self) others.push(backup);
    return others;
  }

  private owner(id: NodeId | null): Owner | null {
    if (id === null) return null;
    return { id, address: this.addresses.get(id) ?? '' };
  }
}
