/** Membership's counters, read by `stats`. Background failures are counted here, never thrown. */
export class MembershipStats {
  heartbeatsSent = 0;
  heartbeatsReceived = 0;
  joinsSent = 0;
  joinsReceived = 0;
  leavesReceived = 0;
  /** members this node marked suspect (its own failure detector, or adopted from gossip) */
  suspicions = 0;
  /** members this node declared dead */
  deaths = 0;
  /** times this node raised its own incarnation to refute news about itself */
  refutations = 0;
  /** news ignored because what is known about the member is newer (lower incarnation, or weaker state) */
  staleIgnored = 0;
  /** messages or list entries dropped because they were not well formed */
  malformed = 0;
  /** ticks that came so late this node judged itself stalled and gave every peer a fresh window */
  stalls = 0;
  /** sends the transport threw on (it should not: sends are fire-and-forget) */
  sendErrors = 0;
  /** event listeners that threw */
  listenerErrors = 0;
}
