/**
 * What routing and replication read of the cluster at each request: who is live, their peer
 * addresses, and the owners of a key. Rebuilt on membership events only, so a request costs a
 * routing-key extraction and one placement decision, no allocation of member lists.
 *
 * Placement has two cases (docs/architecture.md, "Placement"): a session id the cluster minted names its
 * owners (minted-placement.ts); any other id is placed by rendezvous hashing (rendezvous.ts).
 */
import { mintedOwners } from './placement/minted-placement.js';
import { owners as rankOwners, rank, type Owners } from './placement/rendezvous.js';
import { routingKey } from './placement/routing-key.js';
import { MIN_SESSION_ID_LENGTH, parseSessionId, SESSION_ID_V1, type ClusterSecret, type ParsedSessionId } from './placement/session-id.js';
import { MemberState, type KeyOwners, type MemberInfo, type NodeId, type Owner } from './types.js';

/**
 * Placement as it was at one moment: who owned a key then. Re-replication compares the
 * placements in effect since its last complete scan, to skip copies an owner already has.
 */
export interface Placement {
  /** the live members and replacements it was computed from, as text: equal text, equal placement */
  readonly signature: string;
  readonly live: ReadonlySet<NodeId>;
  /** members that left -> the replacement each named */
  readonly replacements: ReadonlyMap<NodeId, NodeId>;
  /** the master and backup of `key` then */
  owners(key: string): Owners;
}

/**
 * Whether going from `before` to `after` can only have taken ownership away from members that
 * are gone: no member came (back) to life and no departed member's replacement was forgotten.
 * Removing members never demotes a live owner (rendezvous ranks the rest in the same order; a
 * minted id keeps its live named owners), so every live owner under `after` that owned a key
 * under `before` still owns it.
 */
export function onlyRemovesMembers(before: Placement, after: Placement): boolean {
  for (const id of after.live) if (!before.live.has(id)) return false;
  for (const [left, replacement] of before.replacements) if (after.replacements.get(left) !== replacement) return false;
  return true;
}

export interface ClusterViewOptions {
  /** php-memcached's `memcached.sess_prefix` (routing-key.ts) */
  sessionPrefix?: string;
  /** verifies minted ids' tags; without it every id is placed by hashing */
  secret?: ClusterSecret;
}

/**
 * Verified minted ids are remembered, so the HMAC runs once per session rather than once per
 * request. Bounded: when full it starts over (a re-verification is cheap; memory is not).
 */
const MINTED_CACHE_LIMIT = 50_000;

export class ClusterView {
  private liveIds: string[] = [];
  private members: readonly MemberInfo[] = [];
  /** ownedBy's member lists counting a candidate that is not live yet; rebuilt after update() */
  private withCandidate: { candidate: NodeId; ids: string[]; live: ReadonlySet<NodeId> } | null = null;
  private readonly live = new Set<NodeId>();
  /** the members that serve, as last given to update(); null: alive and suspect ones */
  private serving: ReadonlySet<NodeId> | null = null;
  private readonly addresses = new Map<NodeId, string>();
  /** nodes that left gracefully -> the node each named to take its sessions (membership keeps them until reaped, 24 h) */
  private readonly replacements = new Map<NodeId, NodeId>();
  /** set once this node drains: it owns nothing from then on, and names this replacement */
  private drain: { replacement: NodeId | null } | null = null;
  private readonly mintedCache = new Map<string, ParsedSessionId | null>();
  private readonly sessionPrefix: string | undefined;
  private readonly secret: ClusterSecret | undefined;
  private currentPlacement: Placement | null = null;
  private readonly placementListeners: Array<(placement: Placement) => void> = [];

  constructor(readonly self: NodeId, options: ClusterViewOptions = {}) {
    this.sessionPrefix = options.sessionPrefix;
    this.secret = options.secret;
  }

  /**
   * Takes the member list (membership's snapshot) after every change, and the members that serve:
   * those that reach each other (connectivity.ts). Without that set, the alive and suspect
   * members serve: suspect members still own their sessions until declared dead
   * (docs/architecture.md, "Membership").
   */
  update(members: readonly MemberInfo[], serving?: ReadonlySet<NodeId>): void {
    this.members = members;
    this.serving = serving ?? null;
    this.liveIds = members
      .filter((m) => (this.serving !== null ? this.serving.has(m.id) : m.state === MemberState.Alive || m.state === MemberState.Suspect))
      .filter((m) => !(m.id === this.self && this.drain !== null))
      .map((m) => m.id);
    this.live.clear();
    for (const id of this.liveIds) this.live.add(id);
    this.withCandidate = null;
    this.addresses.clear();
    this.replacements.clear();
    for (const member of members) {
      this.addresses.set(member.id, member.peerAddress);
      if (member.state === MemberState.Left && member.replacement !== undefined) this.replacements.set(member.id, member.replacement);
    }
    if (this.drain?.replacement != null) this.replacements.set(this.self, this.drain.replacement);
    const previous = this.currentPlacement;
    this.currentPlacement = null;
    if (this.placementListeners.length > 0 && this.placement().signature !== previous?.signature) {
      for (const listener of this.placementListeners) listener(this.currentPlacement!);
    }
  }

  /** Placement now, frozen: later membership changes do not alter what it answers. */
  placement(): Placement {
    if (this.currentPlacement !== null) return this.currentPlacement;
    const liveIds = [...this.liveIds];
    const live: ReadonlySet<NodeId> = new Set(liveIds);
    const replacements = new Map(this.replacements);
    const signature = `${[...liveIds].sort().join(',')}|${[...replacements].map(([from, to]) => `${from}>${to}`).sort().join(',')}`;
    this.currentPlacement = {
      signature,
      live,
      replacements,
      owners: (key) => this.place(routingKey(key, this.sessionPrefix), liveIds, live, replacements),
    };
    return this.currentPlacement;
  }

  /** Calls `listener` with the new placement each time a membership change alters it. */
  onPlacementChange(listener: (placement: Placement) => void): void {
    this.placementListeners.push(listener);
  }

  /**
   * Drain: from now on this node owns nothing, and the sessions whose ids name it go to
   * `replacement` (null: none named; placement falls back to the other owner and rendezvous).
   * Placement then answers as the rest of the cluster will once the leave is announced.
   */
  leave(replacement: NodeId | null): void {
    this.drain = { replacement };
    this.update(this.members, this.serving ?? undefined);
  }

  /** Undrain: this node owns sessions again, as placement decides. */
  rejoin(): void {
    this.drain = null;
    this.update(this.members, this.serving ?? undefined);
  }

  get leaving(): boolean {
    return this.drain !== null;
  }

  isLive(id: NodeId): boolean {
    return this.live.has(id);
  }

  /** The member whose peer address is `address`, or null. */
  memberAt(address: string): NodeId | null {
    for (const [id, at] of this.addresses) if (at === address) return id;
    return null;
  }

  /** The peer address of a member ('' when unknown). */
  addressOf(id: NodeId): string {
    return this.addresses.get(id) ?? '';
  }

  /** Live members other than this node, in id order. */
  liveOthers(): NodeId[] {
    return this.liveIds.filter((id) => id !== this.self).sort();
  }

  owners(key: string): KeyOwners {
    const { master, backup } = this.place(routingKey(key, this.sessionPrefix), this.liveIds, this.live);
    return { master: this.owner(master), backup: this.owner(backup) };
  }

  /**
   * Whether `candidate` masters or backs up `key` once it is counted live: how a node that is
   * (re)joining learns which sessions to take back before others may already count it.
   */
  ownedBy(key: string, candidate: NodeId): boolean {
    const routing = routingKey(key, this.sessionPrefix);
    let ids = this.liveIds;
    let live: ReadonlySet<NodeId> = this.live;
    if (!live.has(candidate)) {
      // A handoff asks this for every item: the member lists with the candidate are made once.
      if (this.withCandidate?.candidate !== candidate) {
        const withIt = [...this.liveIds, candidate];
        this.withCandidate = { candidate, ids: withIt, live: new Set(withIt) };
      }
      ({ ids, live } = this.withCandidate);
    }
    const { master, backup } = this.place(routing, ids, live);
    return master === candidate || backup === candidate;
  }

  /**
   * A session id the cluster minted (its tag verifies under the cluster secret), read; null for any
   * other id. `id` is a session id or a routing key, never a whole memcached key.
   */
  minted(id: string): ParsedSessionId | null {
    // Stock PHP ids (26 to 32 characters by default) and most plain keys end here, with no lookup.
    if (this.secret === undefined || id.length < MIN_SESSION_ID_LENGTH || id[0] !== SESSION_ID_V1) return null;
    const cached = this.mintedCache.get(id);
    if (cached !== undefined) return cached;
    const parsed = parseSessionId(id, this.secret);
    if (this.mintedCache.size >= MINTED_CACHE_LIMIT) this.mintedCache.clear();
    this.mintedCache.set(id, parsed);
    return parsed;
  }

  /** Master and backup of a session id (or any routing key) as placement decides them now. */
  ownersOfId(id: string): Owners {
    return this.place(id, this.liveIds, this.live);
  }

  private place(routing: string, liveIds: readonly string[], live: ReadonlySet<string>, replacements: ReadonlyMap<NodeId, NodeId> = this.replacements): Owners {
    const named = this.minted(routing);
    if (named === null) return rankOwners(routing, liveIds);
    return mintedOwners({
      named,
      isLive: (member) => live.has(member),
      replacementOf: (member) => replacements.get(member),
      rankLive: () => rank(routing, liveIds),
    });
  }

  private owner(id: NodeId | null): Owner | null {
    if (id === null) return null;
    return { id, address: this.addresses.get(id) ?? '' };
  }
}
