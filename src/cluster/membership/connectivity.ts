/**
 * Which members serve, from who hears whom (docs/architecture.md, "Membership"): each member
 * reports the members it heard from directly within the failure timeout, and every node derives
 * from those reports, by the same deterministic rule, the same set of members that all reach
 * each other. Placement ranks over that set; a member outside it owns nothing.
 *
 * Why: with all-to-all heartbeats, each node judges the others alone. When two members cannot
 * reach each other but both reach a third (an asymmetric partition), each declares the other
 * dead, the third sees both alive, and the verdicts flap forever: nobody fails over, and writes
 * across the cut wait and fail. A shared rule over the reported links settles it: one of the two
 * is left out, everywhere, and the rest is a set in which every master reaches its backup.
 *
 * The rule: two members are linked when each heard the other; while the set is not complete,
 * the member with the fewest links within it goes; of those, the one the fewest members report
 * hearing; then the one with the greatest id. A crashed member, which nobody hears, has no link
 * and goes first; of two that cannot reach each other, one goes. Reports relayed from a third
 * member can be a heartbeat old: right after a crash, the crashed member's last report and
 * another's not yet updated one still link it. The second rule makes the member nobody fresh
 * hears go then, rather than one that still hears everyone but it. A member with no report at all
 * is left out before the rule runs: otherwise it would count as hearing nobody, and the member
 * that just met it, which it does not report hearing yet, would go instead.
 * Pure: the reports in, the set out.
 */
import type { NodeId } from '../types.js';

/** For each member, the members it hears (itself included or not: it makes no difference). */
export type Reachability = ReadonlyMap<NodeId, ReadonlySet<NodeId>>;

/** Whether `a` and `b` hear each other. */
function linked(reach: Reachability, a: NodeId, b: NodeId): boolean {
  return (reach.get(a)?.has(b) ?? false) && (reach.get(b)?.has(a) ?? false);
}

/**
 * The members of `candidates` that serve: the largest set this rule finds in which every two hear
 * each other. Every node that has the same reports finds the same set.
 */
export function connectedSet(candidates: Iterable<NodeId>, reach: Reachability): Set<NodeId> {
  // A member that has not reported yet (it just joined) cannot be judged: it does not serve until
  // its first report arrives, and it does not count against the members that did report.
  const set = new Set([...candidates].filter((member) => reach.has(member)));
  for (;;) {
    let worst: NodeId | null = null;
    let worstLinks = Infinity;
    let worstHeard = Infinity;
    let complete = true;
    for (const member of set) {
      let links = 0;
      for (const other of set) if (other !== member && linked(reach, member, other)) links++;
      if (links < set.size - 1) complete = false;
      const heard = heardBy(reach, member, set);
      const worse = links < worstLinks
        || (links === worstLinks && (heard < worstHeard || (heard === worstHeard && worst !== null && member > worst)));
      if (worse) {
        worst = member;
        worstLinks = links;
        worstHeard = heard;
      }
    }
    if (complete || worst === null) return set;
    set.delete(worst);
  }
}

/** How many members of `set` other than `member` report hearing it. */
function heardBy(reach: Reachability, member: NodeId, set: ReadonlySet<NodeId>): number {
  let count = 0;
  for (const other of set) if (other !== member && (reach.get(other)?.has(member) ?? false)) count++;
  return count;
}
