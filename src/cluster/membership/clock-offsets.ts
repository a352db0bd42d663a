/**
 * How far each member's wall clock is from this node's, measured from the heartbeats it sends:
 * each carries the sender's clock when it was sent. A heartbeat's sample (its send time minus
 * this node's clock when it arrived) is the offset less the time it took to arrive, so the
 * largest sample of the last few seconds is the best estimate: the one that took least, on a
 * LAN a fraction of a millisecond (NTP's minimum-delay filter, one way). It can only be below
 * the true offset, by that delay: a deadline judged with it looks a little further away than it
 * is, which senders leave room for (docs/architecture.md, "Replication").
 *
 * The estimate judges forwarded commands' deadlines and is shown in `stats`; expiries never
 * depend on it (they travel relative to the send time).
 */
import type { NodeId } from '../types.js';

/** Samples older than this no longer count: clocks drift, and are stepped. */
const WINDOW_MS = 10_000;

interface Sample {
  /** this node's clock when the heartbeat arrived */
  at: number;
  /** its send time minus `at` */
  offset: number;
}

export class ClockOffsets {
  private readonly samples = new Map<NodeId, Sample[]>();

  constructor(private readonly wallClock: () => number = Date.now) {}

  /** A heartbeat from `member`, sent at `sentAt` by its clock, arrived now. */
  observe(member: NodeId, sentAt: number): void {
    const at = this.wallClock();
    let list = this.samples.get(member);
    if (list === undefined) this.samples.set(member, (list = []));
    list.push({ at, offset: sentAt - at });
    // The newest always stays, however old the rest: an estimate from the last heartbeat heard
    // beats none.
    while (list.length > 1 && at - list[0]!.at > WINDOW_MS) list.shift();
  }

  /** How far `member`'s clock is ahead of this node's (negative: behind), ms; undefined before its first heartbeat. */
  offsetOf(member: NodeId): number | undefined {
    const list = this.samples.get(member);
    if (list === undefined || list.length === 0) return undefined;
    let best = -Infinity;
    for (const sample of list) if (sample.offset > best) best = sample.offset;
    return best;
  }

  /** `member`'s wall clock now, as estimated here; undefined before its first heartbeat. */
  nowAt(member: NodeId): number | undefined {
    const offset = this.offsetOf(member);
    return offset === undefined ? undefined : this.wallClock() + offset;
  }

  forget(member: NodeId): void {
    this.samples.delete(member);
  }

  /** Every measured member and its offset, rounded to the ms. */
  offsets(): Array<[NodeId, number]> {
    const all: Array<[NodeId, number]> = [];
    for (const member of this.samples.keys()) all.push([member, Math.round(this.offsetOf(member)!)]);
    return all.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  }
}
