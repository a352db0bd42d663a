/**
 * The pure rules of membership: which news about a member wins, and what a well-formed member and
 * message look like. No state, no clock: membership.ts applies them.
 *
 * The ordering is memberlist's (state.go: aliveNode, suspectNode, deadNode), itself SWIM's
 * (Das, Gupta, Motivala 2002, section 4.2 "suspicion mechanism"):
 * - only the member raises its own incarnation, so news with a higher incarnation is newer, whatever
 *   its state, and news with a lower incarnation is stale and never wins;
 * - at equal incarnation the worse state wins (dead > suspect > alive), so a suspicion can only be
 *   cleared by the member itself refuting it with a higher incarnation;
 * - left ranks above dead: it is final for that incarnation (memberlist turns a node's own "dead"
 *   announcement into StateLeft and nothing at that incarnation revives it), and a graceful leave
 *   that arrives after a death verdict says more about the node than the verdict did.
 * This makes (incarnation, rank) a total order whose maximum every node keeps, so gossiping full
 * member lists converges whatever the order in which the lists arrive.
 */
import { NODE_ID_PATTERN } from '../../node-id.js';
import { MemberState, type MemberInfo, type MembershipMessage } from '../types.js';

const RANK: Record<MemberState, number> = {
  [MemberState.Alive]: 0,
  [MemberState.Suspect]: 1,
  [MemberState.Dead]: 2,
  [MemberState.Left]: 3,
};

/** Alive and suspect members own sessions: a suspect keeps ownership until it is declared dead. */
export function isLive(state: MemberState): boolean {
  return state === MemberState.Alive || state === MemberState.Suspect;
}

/** True when `news` about a member replaces what is `known` about it. */
export function supersedes(news: MemberInfo, known: MemberInfo): boolean {
  if (news.incarnation !== known.incarnation) return news.incarnation > known.incarnation;
  return RANK[news.state] > RANK[known.state];
}

/** Sorts members by id, by code unit, so every node lists them in the same order whatever its locale. */
export function byId(a: MemberInfo, b: MemberInfo): number {
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/** node-id.ts: a node id is [A-Za-z0-9_.-], 1..64 chars. */
const STATES = new Set<string>(Object.values(MemberState));

export function isNodeId(value: unknown): value is string {
  return typeof value === 'string' && NODE_ID_PATTERN.test(value);
}

/**
 * Checks a member as decoded from the wire: the peer codec gives us whatever the other side sent, and
 * one bad entry must be dropped (and counted) rather than poison the member list.
 */
export function isMemberInfo(value: unknown): value is MemberInfo {
  if (typeof value !== 'object' || value === null) return false;
  const m = value as Record<string, unknown>;
  return isNodeId(m.id)
    && typeof m.peerAddress === 'string' && m.peerAddress.length > 0
    && typeof m.state === 'string' && STATES.has(m.state)
    && typeof m.incarnation === 'number' && Number.isSafeInteger(m.incarnation) && m.incarnation >= 0
    && (m.replacement === undefined || isNodeId(m.replacement));
}

/** Checks a message's shape and its sender; the entries of a heartbeat's list are checked one by one. */
export function isMembershipMessage(value: unknown): value is MembershipMessage {
  if (typeof value !== 'object' || value === null) return false;
  const m = value as Record<string, unknown>;
  if (!isMemberInfo(m.member)) return false;
  switch (m.kind) {
    case 'join':
    case 'leave':
      return true;
    case 'heartbeat':
      return Array.isArray(m.members);
    default:
      return false;
  }
}

/** A copy with exactly the MemberInfo fields, so nothing a peer added rides along in our records. */
export function copyMember(m: MemberInfo): MemberInfo {
  const copy: MemberInfo = { id: m.id, peerAddress: m.peerAddress, state: m.state, incarnation: m.incarnation };
  // A replacement only means something for a member that left, and never names the member itself.
  if (m.state === MemberState.Left && m.replacement !== undefined && m.replacement !== m.id) copy.replacement = m.replacement;
  return copy;
}
