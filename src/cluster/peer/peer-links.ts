/**
 * The Peers seam (../peers.ts) over the real peer links: each request is one frame on the pooled,
 * pipelined link to the owner's address (Forward, Replicate, Handoff), and each handler answers
 * the frames of its opcode on the peer listener. The command codec and the opcodes stay here:
 * the router and the replicator see commands, replies and records only.
 */
import { Opcode, RemoteErrorCode } from './opcodes.js';
import { decodeCommand, decodeItemBatch, decodeReply, encodeCommand, encodeItemBatch, encodeReply } from './command-codec.js';
import { decodeJson, encodeError, encodeJson } from './payload.js';
import type { PeerPool } from './peer-pool.js';
import type { PeerServer } from './peer-server.js';
import type { Command, Reply } from '../../protocol/types.js';
import type { ItemRecord } from '../../store/types.js';
import type { ForwardHandler, HandoffHandler, Peers, ReplicateHandler } from '../peers.js';
import type { Owner } from '../types.js';

/** The Handoff request's payload: where the requester is dialed. Its id is the link's own. */
interface HandoffRequest {
  peerAddress: string;
}

export class PeerLinks implements Peers {
  constructor(private readonly pool: PeerPool, private readonly server: PeerServer) {}

  async forward(owner: Owner, command: Command, timeoutMs: number): Promise<Reply> {
    const answer = await this.pool.get(owner.address).request(Opcode.Forward, encodeCommand(command), { timeoutMs });
    return decodeReply(answer.payload);
  }

  async replicate(owner: Owner, records: readonly ItemRecord[], timeoutMs: number): Promise<void> {
    await this.pool.get(owner.address).request(Opcode.Replicate, encodeItemBatch(records), { timeoutMs });
  }

  async requestHandoff(address: string, self: Owner, timeoutMs: number): Promise<void> {
    const request: HandoffRequest = { peerAddress: self.address };
    await this.pool.get(address).request(Opcode.Handoff, encodeJson(request), { timeoutMs });
  }

  serveForward(handler: ForwardHandler): void {
    this.server.handle(Opcode.Forward, (frame, reply) => {
      const answer = handler(decodeCommand(frame.payload));
      if (answer instanceof Promise) void answer.then((settled) => reply(Opcode.ForwardReply, encodeReply(settled)));
      else reply(Opcode.ForwardReply, encodeReply(answer));
    });
  }

  serveReplicate(handler: ReplicateHandler): void {
    this.server.handle(Opcode.Replicate, (frame, reply) => {
      handler(decodeItemBatch(frame.payload));
      reply(Opcode.ReplicateAck);
    });
  }

  serveHandoff(handler: HandoffHandler): void {
    this.server.handle(Opcode.Handoff, (frame, reply, peer) => {
      const { peerAddress } = decodeJson<HandoffRequest>(frame.payload);
      void handler({ id: peer.nodeId, address: peerAddress }).then((complete) => {
        // An incomplete handoff is an error for the requester, which logs it (and serves what it has).
        if (complete) reply(Opcode.HandoffAck);
        else reply(Opcode.Error, encodeError(RemoteErrorCode.Internal, 'handoff incomplete: some sessions could not be pushed'));
      });
    });
  }
}
