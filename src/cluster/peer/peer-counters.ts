/**
 * What the peer layer counts, for `stats` and for tests. Background failures (a refused peer, a
 * dropped link, a reply that came too late) are logged and counted here, never thrown.
 * One instance is shared by a node's PeerServer and all of its links.
 */
export class PeerCounters {
  /** outgoing links currently authenticated */
  linksUp = 0;
  /** incoming connections currently authenticated */
  connectionsUp = 0;
  connectionsAccepted = 0;
  /** incoming connections closed at once: too many handshakes under way */
  connectionsRejected = 0;
  /** handshakes this node refused (wrong secret or version, timeout, frames before auth) */
  authRefused = 0;
  /** of those, the ones that timed out */
  handshakeTimeouts = 0;
  /** handshakes the other side refused */
  refusedByPeer = 0;
  /** TLS handshakes that failed, either role: TLS on one side only, an untrusted certificate, a timeout */
  tlsRefused = 0;
  /** connections to ourselves (a seed list naming this node), closed */
  selfConnections = 0;
  /** outgoing connection attempts that failed before authenticating */
  connectFailures = 0;
  /** links that went down after having been up */
  linkDrops = 0;
  framesSent = 0;
  framesReceived = 0;
  bytesSent = 0;
  bytesReceived = 0;
  /** frames above the limit: the link was closed */
  oversizeFrames = 0;
  /** frames that break the protocol once authenticated (a second Hello, a reply nobody asked for) */
  protocolErrors = 0;
  requests = 0;
  requestTimeouts = 0;
  /** in flight when their link dropped */
  requestsDisconnected = 0;
  /** refused at once: link unavailable, queue full, frame too large for the peer */
  requestsRejected = 0;
  /** replies answered with an Error frame */
  remoteErrors = 0;
  /** one-way sends dropped (link unavailable or queue full) */
  sendsDropped = 0;
  /** replies to requests that had already timed out */
  lateReplies = 0;
  /** frames for which no handler is registered */
  unknownOpcodes = 0;
  /** handlers that threw (a bug), answered with Error(Internal) */
  handlerErrors = 0;
  /** membership messages dropped: malformed, misaddressed, or a sender that is not the authenticated peer */
  membershipDropped = 0;
}
