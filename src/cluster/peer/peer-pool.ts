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
