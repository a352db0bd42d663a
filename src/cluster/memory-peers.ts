/**
 * The Peers seam (peers.ts) in one process, for tests (memberlist's MockNetwork, as
 * membership/memory-transport.ts does for membership): nodes join a network at their peer
 * address, and requests reach the handlers the other nodes registered. Each command, reply and
 * record crosses the real command codec, as it would cross the wire, and is delivered
 * asynchronously, so a handler never re-enters its caller.
 *
 * A test watches and breaks the network: every request is logged (`requests`); an address can
 * be made to fail each request with a chosen PeerError code (`fail`), or to hold requests until
 * released (`hold`), which a request's timeout cuts short with ERR_PEER_TIMEOUT for the sender,
 * while the request itself stays held: release() still delivers it, late, as a stalled link
 * would; or requests run and their answers are lost (`loseAnswersIf`). A handler refuses a request by throwing PeerError('ERR_PEER_REFUSED'), which its sender
 * receives as is.
 */
import { PeerError, type PeerErrorCode } from '../errors.js';
import type { Command, Reply } from '../protocol/types.js';
import type { ItemRecord } from '../store/types.js';
import { decodeReply, decodeTimedBatch, decodeTimedCommand, encodeReply, encodeTimedBatch, encodeTimedCommand } from './peer/command-codec.js';
import { type Deadline, type ForwardHandler, type HandoffHandler, type Offer, type OfferHandler, type Peers, type Recover, type ReplicateHandler, type RequestLimits, settleWith } from './peers.js';
import type { NodeId, Owner } from './types.js';

/** One request as the network saw it. */
export type PeerRequest =
  | { kind: 'forward'; from: NodeId; to: string; command: Command; limits: RequestLimits & { relay?: boolean } }
  | { kind: 'replicate'; from: NodeId; to: string; records: ItemRecord[]; limits: RequestLimits }
  | { kind: 'handoff'; from: NodeId; to: string }
  | { kind: 'offer'; from: NodeId; to: string; offers: Offer[] };

export class MemoryPeerNetwork {
  /** every request made, in order, whether it was answered or not */
  readonly requests: PeerRequest[] = [];
  private readonly nodes = new Map<string, MemoryPeers>();
  private readonly failing = new Map<string, PeerErrorCode>();
  private readonly held = new Map<string, Array<() => void>>();
  private dropRule: ((from: NodeId, to: string) => boolean) | null = null;
  private loseAnswersRule: ((from: NodeId, to: string) => boolean) | null = null;

  /** A node joins the network at `self.address`; whoever was there before is gone. */
  connect(self: Owner): MemoryPeers {
    const node = new MemoryPeers(this, self);
    this.nodes.set(self.address, node);
    return node;
  }

  /** The node at `address` leaves: requests to it fail as to a closed port. */
  disconnect(address: string): void {
    this.nodes.delete(address);
  }

  /** Every request to `address` fails with `code` from now on, without reaching it. */
  fail(address: string, code: PeerErrorCode = 'ERR_PEER_UNAVAILABLE'): void {
    this.failing.set(address, code);
  }

  /**
   * Requests from a node to an address that the rule picks fail as to an unreachable peer (a
   * partition between chosen pairs, one way or both); null lets everything through again.
   */
  dropIf(rule: ((from: NodeId, to: string) => boolean) | null): void {
    this.dropRule = rule;
  }

  /**
   * Requests from a node to an address that the rule picks are delivered and run, but their
   * answers never come back: the sender gets ERR_PEER_TIMEOUT at its timeout (a link that went
   * silent one way after the request had passed); null lets answers through again.
   */
  loseAnswersIf(rule: ((from: NodeId, to: string) => boolean) | null): void {
    this.loseAnswersRule = rule;
  }

  /** Requests to `address` get through again. */
  heal(address: string): void {
    this.failing.delete(address);
  }

  /** Requests to `address` wait, undelivered, until release() (or their own timeout). */
  hold(address: string): void {
    if (!this.held.has(address)) this.held.set(address, []);
  }

  /** Delivers what `address` held, in order, and stops holding. */
  release(address: string): void {
    const waiting = this.held.get(address) ?? [];
    this.held.delete(address);
    for (const deliver of waiting) deliver();
  }

  /** How many requests `address` holds now. */
  heldCount(address: string): number {
    return this.held.get(address)?.length ?? 0;
  }

  /** The requests of one kind, typed. */
  requestsOf<K extends PeerRequest['kind']>(kind: K): Array<Extract<PeerRequest, { kind: K }>> {
    return this.requests.filter((request): request is Extract<PeerRequest, { kind: K }> => request.kind === kind);
  }

  /**
   * Carries one request to the node at `to`: fails it as the network says, or, while the address
   * is held, keeps it until release() (the request is still delivered on release, its answer then
   * going nowhere if its sender gave up); then runs `deliver` on the receiving node in a later
   * turn. As over a peer link, the sender gives up at `timeoutMs` with ERR_PEER_TIMEOUT, whether
   * the request is held, its answer lost, or its handler slow.
   */
  carry<T>(from: NodeId, to: string, timeoutMs: number, deliver: (node: MemoryPeers) => T | Promise<T>): Promise<T> {
    if (this.dropRule?.(from, to) === true) return Promise.reject(new PeerError('ERR_PEER_UNAVAILABLE', `${from} -> ${to}: cut (memory network)`));
    const code = this.failing.get(to);
    if (code !== undefined) return Promise.reject(new PeerError(code, `${to}: ${code} (memory network)`));
    const loseAnswer = this.loseAnswersRule?.(from, to) === true;
    return new Promise<T>((resolve, reject) => {
      let answered = false;
      const settle = (outcome: () => void) => {
        if (answered) return;
        answered = true;
        clearTimeout(timer);
        outcome();
      };
      const queue = this.held.get(to);
      const why = queue !== undefined ? 'held' : loseAnswer ? 'answer lost' : 'slow handler';
      const timer = setTimeout(() => settle(() => reject(new PeerError('ERR_PEER_TIMEOUT', `${to}: no reply within ${timeoutMs} ms (${why})`))), timeoutMs);
      const arrive = () => {
        const node = this.nodes.get(to);
        if (node === undefined) {
          settle(() => reject(new PeerError('ERR_PEER_UNAVAILABLE', `${to}: nobody listens there (memory network)`)));
          return;
        }
        const ran = Promise.resolve().then(() => deliver(node));
        if (loseAnswer) {
          ran.catch(() => undefined);
          return;
        }
        ran.then((value) => settle(() => resolve(value)), (error: unknown) => settle(() => reject(error)));
      };
      if (queue === undefined) void Promise.resolve().then(arrive);
      else queue.push(arrive);
    });
  }
}

export class MemoryPeers implements Peers {
  private forwardHandler: ForwardHandler | null = null;
  private replicateHandler: ReplicateHandler | null = null;
  private handoffHandler: HandoffHandler | null = null;
  private offerHandler: OfferHandler | null = null;

  constructor(private readonly network: MemoryPeerNetwork, readonly self: Owner) {}

  forward(owner: Owner, command: Command, limits: RequestLimits & { relay?: boolean }, recover?: Recover<Reply>): Promise<Reply> {
    return settleWith(this.forwardOnce(owner, command, limits), recover);
  }

  private async forwardOnce(owner: Owner, command: Command, limits: RequestLimits & { relay?: boolean }): Promise<Reply> {
    this.network.requests.push({ kind: 'forward', from: this.self.id, to: owner.address, command, limits });
    const payload = encodeTimedCommand({ sentAt: Date.now(), validForMs: limits.validForMs }, command);
    const answer = await this.network.carry(this.self.id, owner.address, limits.timeoutMs, async (node) => {
      const { timed, command: received } = decodeTimedCommand(payload);
      return encodeReply(await node.receiveForward(received, this.deadline(timed), limits.relay === true));
    });
    return decodeReply(answer);
  }

  async replicate(owner: Owner, records: readonly ItemRecord[], limits: RequestLimits): Promise<void> {
    this.network.requests.push({ kind: 'replicate', from: this.self.id, to: owner.address, records: [...records], limits });
    const payload = encodeTimedBatch({ sentAt: Date.now(), validForMs: limits.validForMs }, records);
    await this.network.carry(this.self.id, owner.address, limits.timeoutMs, (node) => {
      const { timed, records: received } = decodeTimedBatch(payload, Date.now());
      node.receiveReplicate(received, this.deadline(timed));
    });
  }

  async requestHandoff(address: string, self: Owner, timeoutMs: number): Promise<void> {
    this.network.requests.push({ kind: 'handoff', from: this.self.id, to: address });
    const complete = await this.network.carry(this.self.id, address, timeoutMs, (node) => node.receiveHandoff({ ...self }));
    if (!complete) throw new PeerError('ERR_PEER_REMOTE', `${address}: handoff incomplete: some sessions could not be pushed`);
  }

  async offer(owner: Owner, offers: readonly Offer[], timeoutMs: number): Promise<number[]> {
    const copy = offers.map((offer) => ({ ...offer }));
    this.network.requests.push({ kind: 'offer', from: this.self.id, to: owner.address, offers: copy });
    return this.network.carry(this.self.id, owner.address, timeoutMs, (node) => node.receiveOffer(copy));
  }

  serveOffer(handler: OfferHandler): void {
    if (this.offerHandler !== null) throw new Error('an Offer handler is already registered');
    this.offerHandler = handler;
  }

  serveForward(handler: ForwardHandler): void {
    if (this.forwardHandler !== null) throw new Error('a Forward handler is already registered');
    this.forwardHandler = handler;
  }

  serveReplicate(handler: ReplicateHandler): void {
    if (this.replicateHandler !== null) throw new Error('a Replicate handler is already registered');
    this.replicateHandler = handler;
  }

  serveHandoff(handler: HandoffHandler): void {
    if (this.handoffHandler !== null) throw new Error('a Handoff handler is already registered');
    this.handoffHandler = handler;
  }

  private receiveForward(command: Command, deadline: Deadline | null, relay: boolean): Reply | Promise<Reply> {
    if (this.forwardHandler === null) throw this.unhandled('Forward');
    return this.forwardHandler(command, deadline, relay);
  }

  private receiveReplicate(records: ItemRecord[], deadline: Deadline | null): void {
    if (this.replicateHandler === null) throw this.unhandled('Replicate');
    this.replicateHandler(records, deadline);
  }

  /** The deadline a request from this node carries, as its receiver reads it. */
  private deadline(timed: { sentAt: number; validForMs: number }): Deadline | null {
    return timed.validForMs === 0 ? null : { from: this.self.id, sentAt: timed.sentAt, validForMs: timed.validForMs };
  }

  private receiveHandoff(requester: Owner): Promise<boolean> {
    if (this.handoffHandler === null) throw this.unhandled('Handoff');
    return this.handoffHandler(requester);
  }

  private receiveOffer(offers: Offer[]): number[] {
    if (this.offerHandler === null) throw this.unhandled('Offer');
    return this.offerHandler(offers);
  }

  /** What a real node without the handler answers: Error(UnknownOpcode). */
  private unhandled(kind: string): PeerError {
    return new PeerError('ERR_PEER_REMOTE', `${this.self.address}: no ${kind} handler`);
  }
}
