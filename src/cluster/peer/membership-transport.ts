/**
 * The MembershipTransport seam (src/cluster/types.ts) over real peer links: membership messages
 * travel as one-way Membership frames with a JSON PeerEnvelope payload. The sender is the node
 * that authenticated the connection, never what the payload claims. A message addressed to
 * another node id (the address now belongs to someone else) is dropped; one addressed to ''
 * (a seed whose id is not known yet) is taken.
 */
import type { Logger } from '../../log.js';
import { NODE_ID_PATTERN } from '../../node-id.js';
import type { MembershipMessage, MembershipTransport, NodeId, PeerEnvelope } from '../types.js';
import type { PeerIdentity } from './handshake.js';
import { Opcode } from './opcodes.js';
import { decodeJson, encodeJson } from './payload.js';
import type { PeerPool } from './peer-pool.js';
import type { PeerServer } from './peer-server.js';

const KINDS: ReadonlySet<string> = new Set(['join', 'heartbeat', 'leave']);

export class PeerMembershipTransport implements MembershipTransport {
  private handler: ((from: NodeId, message: MembershipMessage) => void) | null = null;

  constructor(readonly self: NodeId, private readonly pool: PeerPool, server: PeerServer, private readonly log: Logger) {
    server.handle(Opcode.Membership, (frame, _reply, peer) => this.receive(frame.payload, peer));
  }

  send(to: NodeId, peerAddress: string, message: MembershipMessage): void {
    const envelope: PeerEnvelope<MembershipMessage> = { from: this.self, to, body: message };
    // A dropped send is counted by the link (sendsDropped); failure detection is membership's.
    this.pool.get(peerAddress).send(Opcode.Membership, encodeJson(envelope));
  }

  onMessage(handler: (from: NodeId, message: MembershipMessage) => void): void {
    this.handler = handler;
  }

  private receive(payload: Buffer, peer: PeerIdentity): void {
    const envelope = decodeJson<PeerEnvelope<MembershipMessage>>(payload);
    const kind = (envelope?.body as { kind?: unknown } | undefined)?.kind;
    if (typeof envelope !== 'object' || envelope === null || typeof kind !== 'string' || !KINDS.has(kind)) {
      this.drop(peer, 'not a membership envelope');
      return;
    }
    if (envelope.from !== peer.nodeId) {
      this.drop(peer, `envelope claims to be from ${String(envelope.from)}`);
      return;
    }
    if (typeof envelope.to === 'string' && NODE_ID_PATTERN.test(envelope.to) && envelope.to !== this.self) {
      this.drop(peer, `addressed to ${envelope.to}`);
      return;
    }
    this.handler?.(peer.nodeId, envelope.body);
  }

  private drop(peer: PeerIdentity, detail: string): void {
    this.pool.counters.membershipDropped++;
    this.log.warn({ peerNodeId: peer.nodeId, detail }, 'membership message dropped');
  }
}
