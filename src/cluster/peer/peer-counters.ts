/**
 * What the peer layer counts, for `stats` and for tests. Background failures (a refused peer, a
 * dropped link, a reply that came too late) are logged and counted here, never thrown.
 * One instance is shared by a node's PeerServer and all of its links.
 */
import type { CounterDefs } from '../../stats/registry.js';

export class PeerCounters {
  linksUp = 0;
  connectionsUp = 0;
  connectionsAccepted = 0;
  connectionsRejected = 0;
  authRefused = 0;
  handshakeTimeouts = 0;
  refusedByPeer = 0;
  tlsRefused = 0;
  selfConnections = 0;
  connectFailures = 0;
  linkDrops = 0;
  framesSent = 0;
  framesReceived = 0;
  bytesSent = 0;
  bytesReceived = 0;
  oversizeFrames = 0;
  protocolErrors = 0;
  requests = 0;
  requestTimeouts = 0;
  requestsDisconnected = 0;
  requestsRejected = 0;
  remoteErrors = 0;
  sendsDropped = 0;
  lateReplies = 0;
  unknownOpcodes = 0;
  handlerErrors = 0;
  membershipDropped = 0;
}

export const PEER_STATS: CounterDefs<PeerCounters> = {
  linksUp: { name: 'cluster_peer_links_up', type: 'gauge', help: 'authenticated peer links this node dialled, now; N - 1 in a healthy cluster of N nodes' },
  connectionsUp: { name: 'cluster_peer_connections_up', type: 'gauge', help: 'authenticated peer connections other nodes dialled, now; N - 1 in a healthy cluster of N nodes' },
  connectionsAccepted: { name: 'cluster_peer_connections_accepted', type: 'counter', help: 'incoming peer connections accepted' },
  connectionsRejected: { name: 'cluster_peer_connections_rejected', type: 'counter', help: 'incoming peer connections closed before authenticating to make room for newer ones: too many handshakes under way (the oldest that sent nothing go first)' },
  authRefused: { name: 'cluster_peer_auth_refused', type: 'counter', help: 'handshakes this node refused: wrong cluster secret or protocol version, timeout, frames before authentication' },
  handshakeTimeouts: { name: 'cluster_peer_handshake_timeouts', type: 'counter', help: 'of those, handshakes that did not finish in time' },
  refusedByPeer: { name: 'cluster_peer_refused_by_peer', type: 'counter', help: 'handshakes the other node refused (it logs why)' },
  tlsRefused: { name: 'cluster_peer_tls_refused', type: 'counter', help: 'TLS handshakes that failed, either role: TLS on one side only, an untrusted certificate, a timeout' },
  selfConnections: { name: 'cluster_peer_self_connections', type: 'counter', help: 'connections to this node itself (a seed list naming it), closed' },
  connectFailures: { name: 'cluster_peer_connect_failures', type: 'counter', help: 'outgoing connection attempts that failed before authenticating (peer down, wrong address, firewall)' },
  linkDrops: { name: 'cluster_peer_link_drops', type: 'counter', help: 'outgoing links that went down after having been up' },
  framesSent: { name: 'cluster_peer_frames_sent', type: 'counter', help: 'peer frames sent' },
  framesReceived: { name: 'cluster_peer_frames_received', type: 'counter', help: 'peer frames received' },
  bytesSent: { name: 'cluster_peer_bytes_sent', type: 'counter', help: 'bytes sent on peer links and connections' },
  bytesReceived: { name: 'cluster_peer_bytes_received', type: 'counter', help: 'bytes received on peer links and connections' },
  oversizeFrames: { name: 'cluster_peer_oversize_frames', type: 'counter', help: 'frames above the size limit: the connection was closed' },
  protocolErrors: { name: 'cluster_peer_protocol_errors', type: 'counter', help: 'frames that broke the peer protocol once authenticated (a second Hello, a reply nobody asked for)' },
  requests: { name: 'cluster_peer_requests', type: 'counter', help: 'requests sent to peers (forwards, copies, handoffs)' },
  requestTimeouts: { name: 'cluster_peer_request_timeouts', type: 'counter', help: 'requests that got no reply in time' },
  requestsDisconnected: { name: 'cluster_peer_requests_disconnected', type: 'counter', help: 'requests in flight when their link dropped (outcome unknown)' },
  requestsRejected: { name: 'cluster_peer_requests_rejected', type: 'counter', help: 'requests refused at once: link down, queue full, or too large for the peer' },
  remoteErrors: { name: 'cluster_peer_remote_errors', type: 'counter', help: 'requests the peer answered with an error' },
  sendsDropped: { name: 'cluster_peer_sends_dropped', type: 'counter', help: 'one-way messages (heartbeats) dropped: link down or queue full' },
  lateReplies: { name: 'cluster_peer_late_replies', type: 'counter', help: 'replies that came after their request had timed out' },
  unknownOpcodes: { name: 'cluster_peer_unknown_opcodes', type: 'counter', help: 'frames of a kind this node has no handler for (a newer peer probing)' },
  handlerErrors: { name: 'cluster_peer_handler_errors', type: 'counter', help: 'peer requests whose handler failed (a bug), answered with an error' },
  membershipDropped: { name: 'cluster_peer_membership_dropped', type: 'counter', help: 'membership messages dropped: malformed, misaddressed, or not from the authenticated peer' },
};
