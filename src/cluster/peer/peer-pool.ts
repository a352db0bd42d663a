/**
 * One PeerLink per peer address, created on first use and reused by every caller (forwarding,
 * replication, membership), so each pair of nodes holds one outgoing connection per direction.
 * Links keep reconnecting, with backoff, until the pool closes: membership still probes dead
 * members (a healed partition must find its way back), so their links stay.
 */
import { EventEmitter } from 'node:events';
import type { Refusal, PeerIdentity } from './handshake.js';
import { PeerCounters } from './peer-counters.js';
import { PeerLink, type PeerLinkOptions } from './peer-link.js';

export type PeerPoolOptions = Omit<PeerLinkOptions, 'address'>;

export interface PeerPoolEvents {
  up: [address: string, peer: PeerIdentity];
  down: [address: string, reason: string];
  refused: [address: string, reason: Refusal, detail: string];
}

export class PeerPool extends EventEmitter<PeerPoolEvents> {
  readonly counters: PeerCounters;
  private readonly links = new Map<string, PeerLink>();
  private closed = false;

  constructor(private readonly options: PeerPoolOptions) {
    super();
    this.counters = options.counters ?? new PeerCounters();
  }

  /** The link to `address`, connecting if it is new. */
  get(address: string): PeerLink {
    let link = this.links.get(address);
    if (link !== undefined) return link;
    if (this.closed) throw new Error('PeerPool.get after close');
    link = new PeerLink({ ...this.options, address, counters: this.counters });
    link.on('up', (peer) => this.emit('up', address, peer));
    link.on('down', (reason) => this.emit('down', address, reason));
    link.on('refused', (reason, detail) => this.emit('refused', address, reason, detail));
    this.links.set(address, link);
    return link.start();
  }

  /** The link to `address` if there is one, without creating it. */
  find(address: string): PeerLink | undefined {
    return this.links.get(address);
  }

  /**
   * The member at `address` announced its leave: the drop of the link to it is expected (logged
   * at info, not warned about). The link stays and keeps knocking, as for any member.
   */
  departed(address: string): void {
    this.links.get(address)?.peerLeft();
  }

  /** The member at `address` is back after its leave (it joined again): a drop of its link is news again. */
  returned(address: string): void {
    this.links.get(address)?.peerReturned();
  }

  /** Why `address` cannot be reached, from its link's last attempt (PeerLink.unreachableBecause). */
  unreachableBecause(address: string): string | null {
    return this.links.get(address)?.unreachableBecause ?? null;
  }

  /**
   * Why none of `addresses` has let this node join, one phrase each: its link's failure, or that
   * it has not answered yet.
   */
  whyUnanswered(addresses: readonly string[]): string {
    return addresses.map((address) => {
      const link = this.links.get(address);
      if (link === undefined) return `${address}: not tried yet`;
      return link.unreachableBecause ?? (link.isUp ? `${address}: connected, no answer to our join yet` : `${address}: no answer yet`);
    }).join('; ');
  }

  addresses(): string[] {
    return [...this.links.keys()];
  }

  /** Closes and forgets the link (its queued and in-flight requests fail with ERR_PEER_CLOSED). */
  remove(address: string): void {
    const link = this.links.get(address);
    if (link === undefined) return;
    this.links.delete(address);
    link.close();
    link.removeAllListeners();
  }

  close(): void {
    this.closed = true;
    for (const address of [...this.links.keys()]) this.remove(address);
  }
}
