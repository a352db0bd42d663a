/**
 * Owners of a cluster-minted session id (docs/architecture.md, "Placement"): the id names its master
 * and backup, so while both are live they own it, with no table and no hashing. When one of them is
 * gone, the next candidates take its place, in an order every node computes alike from the id and
 * the member list: the backup acts as master and a new backup is chosen, deterministically, so
 * every node agrees:
 *
 *     named master, named backup, then every other live member in rendezvous order of the routing key
 *
 * with each named owner that left gracefully replaced by the node it named as its replacement
 * (followed through chains of leaves). The first two live candidates are master and backup. So:
 * - master dead: the named backup serves as master, and the rendezvous choice among the rest is the
 *   new backup — the node re-replication copies the session to;
 * - backup dead: the master keeps it, and the same rendezvous choice is the new backup;
 * - a named owner comes back (restart under its id): it owns the session again, and takes it back
 *   through catch-up like any other rejoin;
 * - both named owners dead: the session lives on the two rendezvous nodes that re-replication
 *   kept it on.
 * Pure: the caller passes who is live, the replacements and the ranking; nothing here has state.
 */
import type { Owners } from './rendezvous.js';

export interface NamedOwners {
  master: string;
  /** null for an id minted in a one-node cluster */
  backup: string | null;
}

export interface MintedPlacementInput {
  named: NamedOwners;
  /** is this member counted an owner (alive or suspect)? */
  isLive: (member: string) => boolean;
  /** the node a gracefully departed member named to take its sessions, if any */
  replacementOf: (member: string) => string | undefined;
  /** every live member, heaviest first for the session's routing key (rendezvous rank); only called when a named owner is not live */
  rankLive: () => readonly string[];
}

/** How many graceful leaves in a row a replacement chain follows before it gives up (a cycle guard). */
const MAX_REPLACEMENT_HOPS = 8;

export function mintedOwners(input: MintedPlacementInput): Owners {
  const master = resolve(input.named.master, input);
  const backup = input.named.backup === null ? null : resolve(input.named.backup, input);
  // The common case, and the one that makes sticky reads local: both named owners are live.
  if (master !== null && backup !== null && master !== backup) return { master, backup };

  let first: string | null = master;
  let second: string | null = backup !== null && backup !== first ? backup : null;
  if (first === null) {
    first = second;
    second = null;
  }
  if (second !== null) return { master: first, backup: second };
  for (const member of input.rankLive()) {
    if (first === null) first = member;
    else if (member !== first) return { master: first, backup: member };
  }
  return { master: first, backup: null };
}

/** The live node standing for `member`: itself, or the replacement it named (followed), or null. */
function resolve(member: string, input: MintedPlacementInput): string | null {
  let current = member;
  for (let hop = 0; hop <= MAX_REPLACEMENT_HOPS; hop++) {
    if (input.isLive(current)) return current;
    const next = input.replacementOf(current);
    if (next === undefined || next === current) return null;
    current = next;
  }
  return null;
}
