/**
 * The Peers seam (../peers.ts) over the real peer links: each request is one frame on the pooled,
 * pipelined link to the owner's address, and each handler answers the frames of its opcodes on
 * the peer listener. The command codec and the opcodes stay here: the router and the replicator
 * see commands, replies, records and deadlines only.
 *
 * Forwards and copies travel timed (ForwardWithin, ReplicateTimed): with the sender's clock and
 * how long the request stays valid, and with expiries relative to the send time, so that a
 * receiver whose clock differs keeps them as long. A peer that does not know those opcodes yet
 * (an older node, during a rolling upgrade) answers UnknownOpcode; it is then sent the untimed
 * ones, and remembered.
 */
import { PeerError } from '../../errors.js';
import type { Command, Reply } from '../../protocol/types.js';
import type { ItemRecord } from '../../store/types.js';
import { type Deadline, type ForwardHandler, type HandoffHandler, type Offer, type OfferHandler, type Peers, type Recover, type ReplicateHandler, type RequestLimits, settleWith } from '../peers.js';
import type { Owner } from '../types.js';
import {
  decodeCommand, decodeItemBatch, decodeReply, decodeTimedBatch, decodeTimedCommand, encodeCommand, encodeItemBatch,
  encodeReply, encodeTimedBatch, encodeTimedCommand, type Timed,
} from './command-codec.js';
import type { PeerIdentity } from './handshake.js';
import { Opcode, RemoteErrorCode } from './opcodes.js';
import { decodeJson, encodeError, encodeJson } from './payload.js';
import type { PeerLink, ReplyHandler } from './peer-link.js';
import type { PeerPool } from './peer-pool.js';
import type { PeerReplyFn, PeerServer } from './peer-server.js';

/** The Handoff request's payload: where the requester is dialed. Its id is the link's own. */
interface HandoffRequest {
  peerAddress: string;
}

/**
 * The Digest request's payload: each offer as [key, version, origin] (a batch of at most a few
 * hundred, low rate: JSON, as membership messages); the DigestReply's: the indexes needed.
 */
interface DigestRequest {
  offers: Array<[string, number, string]>;
}
interface DigestReply {
  need: number[];
}

export class PeerLinks implements Peers {
  /** addresses of peers that answered UnknownOpcode to a timed request: sent untimed ones */
  private readonly untimed = new Set<string>();

  constructor(private readonly pool: PeerPool, private readonly server: PeerServer, private readonly now: () => number = Date.now) {}

  /**
   * The reply's values are views into the received frame (decodeReply 'view'): a forwarded reply
   * goes to a client's output, or back to the node that relayed it, and nothing keeps it. The
   * reply is decoded in the link's dispatch of the frame and settles the returned promise there:
   * no promise or async function between the link and the caller. `recover`, when given, takes
   * a failure instead of a rejection (Peers.forward).
   */
  forward(owner: Owner, command: Command, limits: RequestLimits & { relay?: boolean }, recover?: Recover<Reply>): Promise<Reply> {
    let link: PeerLink;
    try {
      link = this.pool.get(owner.address);
    } catch (error) {
      return settleWith(Promise.reject(error), recover);
    }
    if (this.untimed.has(owner.address)) return settleWith(this.forwardUntimed(link, owner, command, limits), recover);
    let payload: Buffer;
    try {
      payload = encodeTimedCommand({ sentAt: this.now(), validForMs: limits.validForMs }, command);
    } catch (error) {
      return settleWith(Promise.reject(error), recover);
    }
    return new Promise<Reply>((resolve, reject) => {
      link.requestWith(limits.relay === true ? Opcode.ForwardVia : Opcode.ForwardWithin, payload, limits.timeoutMs, new ForwardCall(this, link, owner, command, limits, recover, resolve, reject));
    });
  }

  /** A forward to a peer that does not know the timed opcodes (also ForwardCall's, on learning so). */
  async forwardUntimed(link: PeerLink, owner: Owner, command: Command, limits: RequestLimits & { relay?: boolean }): Promise<Reply> {
    // An older peer relays nothing: refused, so the caller tries elsewhere.
    if (limits.relay === true) throw new PeerError('ERR_PEER_REFUSED', `${owner.address} does not relay forwards`);
    const answer = await link.request(Opcode.Forward, encodeCommand(command), { timeoutMs: limits.timeoutMs });
    return decodeReply(answer.payload, 'view');
  }

  /** As forward: the acknowledgement settles the returned promise from the link's dispatch. */
  replicate(owner: Owner, records: readonly ItemRecord[], limits: RequestLimits): Promise<void> {
    let link: PeerLink;
    try {
      link = this.pool.get(owner.address);
    } catch (error) {
      return Promise.reject(error);
    }
    if (this.untimed.has(owner.address)) return this.replicateUntimed(link, records, limits);
    return new Promise<void>((resolve, reject) => {
      const timed: Timed = { sentAt: this.now(), validForMs: limits.validForMs };
      link.requestWith(Opcode.ReplicateTimed, encodeTimedBatch(timed, records), limits.timeoutMs, {
        reply: () => resolve(),
        fail: (error) => {
          if (this.olderPeer(owner.address, error)) resolve(this.replicateUntimed(link, records, limits));
          else reject(refusedOrAsIs(error));
        },
      });
    });
  }

  private async replicateUntimed(link: PeerLink, records: readonly ItemRecord[], limits: RequestLimits): Promise<void> {
    await link.request(Opcode.Replicate, encodeItemBatch(records), { timeoutMs: limits.timeoutMs });
  }

  async requestHandoff(address: string, self: Owner, timeoutMs: number): Promise<void> {
    const request: HandoffRequest = { peerAddress: self.address };
    await this.pool.get(address).request(Opcode.Handoff, encodeJson(request), { timeoutMs });
  }

  async offer(owner: Owner, offers: readonly Offer[], timeoutMs: number): Promise<number[]> {
    const request: DigestRequest = { offers: offers.map((o) => [o.key, o.version, o.origin]) };
    const answer = await this.pool.get(owner.address).request(Opcode.Digest, encodeJson(request), { timeoutMs });
    return decodeJson<DigestReply>(answer.payload).need;
  }

  serveOffer(handler: OfferHandler): void {
    this.server.handle(Opcode.Digest, (frame, reply) => {
      const { offers } = decodeJson<DigestRequest>(frame.payload);
      if (!Array.isArray(offers) || !offers.every((o) => Array.isArray(o) && typeof o[0] === 'string' && typeof o[1] === 'number' && typeof o[2] === 'string')) {
        throw new Error('Digest: offers must be [key, version, origin] entries');
      }
      const need = handler(offers.map(([key, version, origin]) => ({ key, version, origin })));
      reply(Opcode.DigestReply, encodeJson({ need } satisfies DigestReply));
    });
  }

  serveForward(handler: ForwardHandler): void {
    // No closures per request beyond the reply's own: a forwarded request is the master's
    // most frequent peer frame.
    const run = (command: Command, deadline: Deadline | null, relay: boolean, reply: PeerReplyFn) => {
      let result: Reply | Promise<Reply>;
      try {
        result = handler(command, deadline, relay);
      } catch (error) {
        refuseOrThrow(error, reply);
        return;
      }
      if (result instanceof Promise) result.then((settled) => reply(Opcode.ForwardReply, encodeReply(settled)), (error: unknown) => replyFailure(error, reply));
      else reply(Opcode.ForwardReply, encodeReply(result));
    };
    for (const [opcode, relay] of [[Opcode.ForwardWithin, false], [Opcode.ForwardVia, true]] as const) {
      this.server.handle(opcode, (frame, reply, peer) => {
        const { timed, command } = decodeTimedCommand(frame.payload);
        run(command, deadlineOf(timed, peer), relay, reply);
      });
    }
    this.server.handle(Opcode.Forward, (frame, reply) => run(decodeCommand(frame.payload), null, false, reply));
  }

  serveReplicate(handler: ReplicateHandler): void {
    const run = (records: ItemRecord[], deadline: Deadline | null, reply: PeerReplyFn) => {
      // A handler returns nothing (applied) or, should one ever wait, a promise of it.
      let result: unknown;
      try {
        result = handler(records, deadline);
      } catch (error) {
        refuseOrThrow(error, reply);
        return;
      }
      if (result instanceof Promise) result.then(() => reply(Opcode.ReplicateAck), (error: unknown) => replyFailure(error, reply));
      else reply(Opcode.ReplicateAck);
    };
    this.server.handle(Opcode.ReplicateTimed, (frame, reply, peer) => {
      const { timed, records } = decodeTimedBatch(frame.payload, this.now());
      run(records, deadlineOf(timed, peer), reply);
    });
    this.server.handle(Opcode.Replicate, (frame, reply) => run(decodeItemBatch(frame.payload), null, reply));
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

  /** Whether `error` says the peer does not know the timed opcodes; it is remembered if so. */
  olderPeer(address: string, error: unknown): boolean {
    if (!(error instanceof PeerError) || error.code !== 'ERR_PEER_REMOTE' || error.remoteCode !== RemoteErrorCode.UnknownOpcode) return false;
    this.untimed.add(address);
    return true;
  }
}

/**
 * One forward under way: the link's reply handler, which settles the caller's promise with the
 * decoded reply (one object per forward rather than a closure per outcome).
 */
class ForwardCall implements ReplyHandler {
  constructor(
    private readonly links: PeerLinks,
    private readonly link: PeerLink,
    private readonly owner: Owner,
    private readonly command: Command,
    private readonly limits: RequestLimits & { relay?: boolean },
    private readonly recover: Recover<Reply> | undefined,
    private readonly resolve: (reply: Reply | Promise<Reply>) => void,
    private readonly reject: (error: unknown) => void,
  ) {}

  reply(_opcode: number, payload: Buffer): void {
    let reply: Reply;
    try {
      reply = decodeReply(payload, 'view');
    } catch (error) {
      this.failWith(error);
      return;
    }
    this.resolve(reply);
  }

  fail(error: PeerError): void {
    if (this.links.olderPeer(this.owner.address, error)) this.resolve(settleWith(this.links.forwardUntimed(this.link, this.owner, this.command, this.limits), this.recover));
    else this.failWith(refusedOrAsIs(error));
  }

  private failWith(error: unknown): void {
    if (this.recover === undefined) this.reject(error);
    else this.resolve(this.recover(error));
  }
}

function deadlineOf(timed: Timed, peer: PeerIdentity): Deadline | null {
  return timed.validForMs === 0 ? null : { from: peer.nodeId, sentAt: timed.sentAt, validForMs: timed.validForMs };
}

/**
 * A handler's synchronous failure: a refusal is answered Error(Refused), so the sender knows the
 * request did not run; anything else is rethrown, the peer server's to answer (a bug, or a
 * malformed payload).
 */
function refuseOrThrow(error: unknown, reply: PeerReplyFn): void {
  if (!isRefusal(error)) throw error;
  reply(Opcode.Error, encodeError(RemoteErrorCode.Refused, error.message));
}

/** A handler's rejection: a refusal as Error(Refused), anything else as Error(Internal). */
function replyFailure(error: unknown, reply: PeerReplyFn): void {
  if (isRefusal(error)) reply(Opcode.Error, encodeError(RemoteErrorCode.Refused, error.message));
  else reply(Opcode.Error, encodeError(RemoteErrorCode.Internal, error instanceof Error ? error.message : String(error)));
}

function isRefusal(error: unknown): error is PeerError {
  return error instanceof PeerError && error.code === 'ERR_PEER_REFUSED';
}

/** The peer's Error(Refused) as ERR_PEER_REFUSED: certainly not run. */
function refusedOrAsIs(error: unknown): unknown {
  if (error instanceof PeerError && error.code === 'ERR_PEER_REMOTE' && error.remoteCode === RemoteErrorCode.Refused) {
    return new PeerError('ERR_PEER_REFUSED', error.message);
  }
  return error;
}
