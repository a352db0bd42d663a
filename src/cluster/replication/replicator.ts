/**
 * Copies writes to the other owner of a session, and re-copies everything after membership
 * changes so every session is back on two nodes (docs/architecture.md, "Replication"). A write
 * arrives as the store's change record with the owners the router already placed it on: no
 * second placement, no second look at the store. Failures are logged and counted, never thrown
 * (memberlist, Tomcat's LazyReplicatedMap): a write is retried until the target answers or is
 * declared dead.
 */
import type { Logger } from '../../log.js';
import type { CounterDefs } from '../../stats/registry.js';
import { type Change, Deletion } from '../../store/change.js';
import type { Durability } from '../../store/durability.js';
import type { MemoryStore } from '../../store/memory-store.js';
import { isNewer, type ItemRecord } from '../../store/types.js';
import { onlyRemovesMembers, type ClusterView, type Placement } from '../cluster-view.js';
import { type Deadline, isPast, type Offer, type PeerClocks, type Peers, refusal, SAME_CLOCKS, timeLeft } from '../peers.js';
import { ALWAYS_QUORUM, type QuorumCheck } from '../quorum.js';
import type { KeyOwners, Owner } from '../types.js';

/** How long a (re)joining node waits for one peer to hand its sessions over. */
const HANDOFF_TIMEOUT_MS = 60_000;
/**
 * How long one handoff request waits for its answer before it is asked again (at least this, or
 * two request timeouts): an answer lost on a link that stayed open (a silent partition that
 * healed) must not keep the node's sessions held for the whole handoff time. Asking again costs
 * nothing while the peer is still pushing: it joins the handoff in progress.
 */
const HANDOFF_ASK_AGAIN_MS = 2000;

/** Records per Replicate frame during re-replication. */
const BATCH_RECORDS = 256;
/** After a copy was given up: how long until a scan copies everything to its owners again. */
const REPAIR_SCAN_DELAY_MS = 10_000;
/** Pause between attempts to reach a target that is still counted live. */
const RETRY_DELAY_MS = 50;
/** Placements remembered between scans; past this many changes without a scan, the next scan copies everything. */
const MAX_PLACEMENTS = 16;
/** How often a catch-up checks that the peers it waits for still serve. */
const GONE_CHECK_MS = 100;
/** After a write was undone here: how long until this node takes back its copies from its peers. */
const REPAIR_DELAY_MS = 1000;

/**
 * Of a copy's time, what the receiver does not get to apply it in: its answer must travel back,
 * and the receiver reads the sender's clock with an error of a few ms (docs/architecture.md,
 * "Replication"). Never less than a fifth of the time.
 */
export function guardOf(ms: number): number {
  return Math.min(250, Math.ceil(ms / 5));
}

/**
 * How one copy to one owner ended: acknowledged; excused (the owner was declared dead); refused
 * or never sent in time (certainly not applied there); or unanswered (sent, no answer in time:
 * it may have been applied there).
 */
type CopyOutcome = 'acknowledged' | 'owner dead' | 'refused' | 'out of time' | 'unanswered';
const acknowledged = (): CopyOutcome => 'acknowledged';

/** What a write's copies came to: made; certainly not made; or perhaps made somewhere. */
export type CopyResult = 'copied' | 'not copied' | 'maybe copied';

export class ReplicationCounters {
  replicated = 0;
  rereplicated = 0;
  rereplicationSkipped = 0;
  applied = 0;
  failed = 0;
  handedOver = 0;
  caughtUp = 0;
  undone = 0;
  refusedLate = 0;
  repairs = 0;
  handoffRecords = 0;
  offeredHeld = 0;
  received = 0;
}

export const REPLICATION_STATS: CounterDefs<ReplicationCounters> = {
  replicated: { name: 'cluster_replicated', type: 'counter', help: 'writes this node copied to the session\'s other owner (one per owner copied to)' },
  rereplicated: { name: 'cluster_rereplicated', type: 'counter', help: 'records copied by re-replication scans after membership changes' },
  rereplicationSkipped: { name: 'cluster_rereplication_skipped', type: 'counter', help: 'copies scans left out: the target owned the item all along, so it has it' },
  applied: { name: 'cluster_replicas_applied', type: 'counter', help: 'copies from other nodes applied here (newer than what was here)' },
  failed: { name: 'cluster_replication_failures', type: 'counter', help: 'copies given up on: the target stayed unreachable yet was never declared dead' },
  handedOver: { name: 'cluster_handoff_batches', type: 'counter', help: 'batches of sessions pushed to (re)joining nodes' },
  caughtUp: { name: 'cluster_catch_ups', type: 'counter', help: 'catch-ups this node completed (at start, and after a stall)' },
  undone: { name: 'cluster_writes_undone', type: 'counter', help: 'writes undone here because their copy could not be made in time: the client got SERVER_ERROR, the other owner keeps the previous state' },
  refusedLate: { name: 'cluster_copies_refused_late', type: 'counter', help: 'copies of a write refused here because they arrived after their writer gave up on them' },
  repairs: { name: 'cluster_repairs', type: 'counter', help: 'times this node took its copies back from its peers after undoing a write' },
  handoffRecords: { name: 'cluster_handoff_records', type: 'counter', help: 'records pushed to (re)joining nodes by handoffs' },
  offeredHeld: { name: 'cluster_copies_already_held', type: 'counter', help: 'records not sent by handoffs and copy-everything scans: offered first, the receiver already held them (it kept its sessions on disk)' },
  received: { name: 'cluster_records_received', type: 'counter', help: 'records other nodes copied here (writes, scans, handoffs), applied or not' },
};

export interface ReplicatorOptions {
  store: MemoryStore;
  view: ClusterView;
  peers: Peers;
  /** the other nodes' clocks as this node estimates them, to judge a copy's deadline (default: the same as ours) */
  clocks?: PeerClocks;
  /**
   * whether this node has a majority (default: always): an owner declared dead excuses its copy
   * only then; otherwise this node may be the one cut off, and the owner alive and serving
   */
  quorum?: QuorumCheck;
  log: Logger;
  /** how long one copy may take before it is retried */
  requestTimeoutMs: number;
  /** how long to keep retrying a live target before giving up (logged, counted) */
  giveUpAfterMs: number;
  now?: () => number;
  /** disk storage: copies are written to its log before they are acknowledged (default: none) */
  durability?: Durability;
}

export class Replicator {
  readonly counters = new ReplicationCounters();
  private scanTimer: NodeJS.Timeout | null = null;
  private scanning: Promise<boolean> | null = null;
  /** when the running scan ends: scan again at this time (a change or a give-up came meanwhile) */
  private scanAgainAt: number | null = null;
  private scanDueAt = 0;
  /** this node's peer address, known once it has caught up: what repairs ask peers to push to */
  private selfAddress: string | null = null;
  private stopped = false;
  private scanProgress: { copies: number; acknowledged: number } | null = null;
  private repairTimer: NodeJS.Timeout | null = null;
  private readonly now: () => number;
  private readonly clocks: PeerClocks;
  /**
   * The placements in effect since the start of the last scan whose every copy was acknowledged
   * (the first is the one it ran under); null when no such scan vouches for the owners' copies:
   * at start, after a copy was given up, or after too many changes.
   */
  private vouched: Placement[] | null = null;
  /** the placements since the running scan started, which vouch once it completes */
  private sinceScanStart: Placement[] | null = null;
  /** handoffs this node is pushing, by requester: a request repeated meanwhile joins its own */
  private readonly handoffs = new Map<string, Promise<boolean>>();
  /** handoffs waiting for their requester to serve in this node's view, woken by placement changes */
  private readonly awaitingServing = new Set<() => void>();

  constructor(private readonly options: ReplicatorOptions) {
    this.now = options.now ?? Date.now;
    this.clocks = options.clocks ?? SAME_CLOCKS;
    options.view.onPlacementChange((placement) => {
      this.vouched = appendPlacement(this.vouched, placement);
      this.sinceScanStart = appendPlacement(this.sinceScanStart, placement);
      for (const wake of [...this.awaitingServing]) wake();
    });
    options.peers.serveReplicate((records, deadline) => this.handleReplicate(records, deadline));
    options.peers.serveHandoff((requester) => this.handOverOnce(requester));
    options.peers.serveOffer((offers) => this.handleOffer(offers));
  }

  /**
   * Copies what a write changed to the key's owners other than this node. null when there is
   * nobody to copy to; else settles with what came of it: copied (every such owner has it, or was
   * declared dead while this node had a majority), not copied, or maybe copied.
   *
   * With `deadlineAt` (a client waits for the answer: sync replication) the copy must be made by
   * then, and each owner refuses it after that. When it is not, the write is undone here (the
   * other owner keeps the state before it, unless the copy did reach it and only its answer was
   * lost: maybe copied), so that a write its client was told failed is not served, nor copied on
   * later; this node then takes its copies back from its peers. Without (async), copies are
   * retried as long as the owner lives, and count as copied.
   */
  replicate(change: Change, owners: KeyOwners, deadlineAt?: number): Promise<CopyResult> | null {
    const self = this.options.view.self;
    const targets = [owners.master, owners.backup].filter((owner): owner is Owner => owner !== null && owner.id !== self);
    if (targets.length === 0) return null;
    const records = [change.toRecord()];
    this.counters.replicated += targets.length;
    if (deadlineAt === undefined) {
      return Promise.all(targets.map((target) => this.send(target, records))).then(() => 'copied');
    }
    const judge = (outcomes: CopyOutcome[]): CopyResult => {
      const quorum = this.options.quorum ?? ALWAYS_QUORUM;
      if (outcomes.every((outcome) => outcome === 'acknowledged' || (outcome === 'owner dead' && quorum.ok))) return 'copied';
      this.undo(change, targets, outcomes);
      return outcomes.includes('unanswered') ? 'maybe copied' : 'not copied';
    };
    // One other owner (the common case): its acknowledgement settles the result directly.
    if (targets.length === 1) return this.sendBy(targets[0]!, records, deadlineAt).then((outcome) => (outcome === 'acknowledged' ? 'copied' : judge([outcome])));
    return Promise.all(targets.map((target) => this.sendBy(target, records, deadlineAt))).then(judge);
  }

  /**
   * Another node's copies: applies the records that are newer than what is here. A write's copy
   * that comes after its writer gave up on it is refused, not applied: the writer undid it.
   */
  private handleReplicate(records: ItemRecord[], deadline: Deadline | null): void {
    if (deadline !== null && isPast(deadline, this.clocks)) {
      this.counters.refusedLate++;
      throw refusal(`a copy from ${deadline.from} arrived ${deadline.validForMs - timeLeft(deadline, this.clocks)} ms after it was sent, past its ${deadline.validForMs} ms`);
    }
    const now = this.now();
    this.counters.received += records.length;
    for (const record of records) {
      if (this.options.store.apply(record, now)) this.counters.applied++;
    }
    // In the kernel before the acknowledgement leaves: a crash of both owners keeps the copy.
    this.options.durability?.writePending();
  }

  /** Which offered records this node needs: it lacks the key, or holds an older version of it. */
  private handleOffer(offers: Offer[]): number[] {
    const { store } = this.options;
    const now = this.now();
    const need: number[] = [];
    offers.forEach((offer, i) => {
      const held = store.record(offer.key, now);
      if (held === null || isNewer(offer.version, offer.origin, held.version, held.origin)) need.push(i);
    });
    return need;
  }

  /**
   * A write that could not be copied in time: this node forgets the key, unless a later write
   * changed it meanwhile (that write answers for itself), and takes its copies back from its
   * peers a little later, which returns the other owner's state of the key.
   */
  private undo(change: Change, targets: Owner[], outcomes: CopyOutcome[]): void {
    const { store, log } = this.options;
    this.counters.undone++;
    if (store.holds(change)) store.forget(change.key);
    log.warn({ key: change.key.slice(0, 24), owners: targets.map((t, i) => `${t.id}:${outcomes[i]}`) }, 'a write was not copied in time: undone here, the client was answered SERVER_ERROR');
    this.scheduleRepair();
  }

  /** Takes this node's copies back from its live peers, soon (coalesced). */
  private scheduleRepair(): void {
    if (this.repairTimer !== null || this.stopped) return;
    this.repairTimer = setTimeout(() => {
      this.repairTimer = null;
      const { view } = this.options;
      const peers = view.liveOthers().map((id) => view.addressOf(id));
      if (this.selfAddress === null || peers.length === 0) return;
      this.counters.repairs++;
      void this.catchUp(peers, this.selfAddress, 'repair');
    }, REPAIR_DELAY_MS);
    this.repairTimer.unref();
  }

  /**
   * After a membership change: every item goes to the owners that may lack it, and copies this
   * node no longer owns are dropped once handed over. Changes that come quickly are coalesced.
   */
  scheduleScan(delayMs = 100): void {
    if (this.stopped) return;
    const dueAt = Date.now() + delayMs;
    if (this.scanning !== null) {
      // After the running scan, at the earliest time asked for.
      this.scanAgainAt = Math.min(this.scanAgainAt ?? Infinity, dueAt);
      return;
    }
    // A scan already due sooner stays as it is.
    if (this.scanTimer !== null) {
      if (this.scanDueAt <= dueAt) return;
      clearTimeout(this.scanTimer);
    }
    this.scanDueAt = dueAt;
    this.scanTimer = setTimeout(() => {
      this.scanTimer = null;
      void this.runScan();
    }, delayMs);
    this.scanTimer.unref();
  }

  /**
   * Catch-up: asks each peer for the sessions this node owns and waits until every peer that
   * answers has handed them over. A peer that cannot be reached is skipped (logged): when the
   * whole cluster starts together, nobody has anything to hand over yet. A request left
   * unanswered is asked again (HANDOFF_ASK_AGAIN_MS), within the handoff time.
   */
  async catchUp(peerAddresses: readonly string[], selfAddress: string, reason: 'start' | 'repair' = 'start'): Promise<void> {
    const { log, view } = this.options;
    this.selfAddress = selfAddress;
    const self: Owner = { id: view.self, address: selfAddress };
    await Promise.all(peerAddresses.map(async (address) => {
      try {
        await this.unlessGone(address, this.askForHandoff(address, self));
      } catch (error) {
        // Unreachable is normal when the cluster starts together; anything else means copies may be missing.
        const unreachable = (error as { code?: string }).code === 'ERR_PEER_UNAVAILABLE';
        log[unreachable ? 'info' : 'warn']({ peerAddress: address, err: (error as Error).message }, 'catch-up: peer did not hand over (unreachable, starting, or incomplete)');
      }
    }));
    if (reason === 'start') this.counters.caughtUp++;
  }

  /** One peer's handoff, asked again each time an answer does not come, until the handoff time is up. */
  private async askForHandoff(address: string, self: Owner): Promise<void> {
    const { peers, requestTimeoutMs } = this.options;
    const deadline = Date.now() + HANDOFF_TIMEOUT_MS;
    const askAgainMs = Math.max(HANDOFF_ASK_AGAIN_MS, 2 * requestTimeoutMs);
    for (;;) {
      const left = deadline - Date.now();
      try {
        await peers.requestHandoff(address, self, Math.min(askAgainMs, left));
        return;
      } catch (error) {
        if ((error as { code?: string }).code !== 'ERR_PEER_TIMEOUT' || left <= askAgainMs || this.stopped) throw error;
      }
    }
  }

  /** A handoff to `target`, or the one already under way for it (the requester asked again). */
  private handOverOnce(target: Owner): Promise<boolean> {
    const requester = `${target.id}@${target.address}`;
    const running = this.handoffs.get(requester);
    if (running !== undefined) return running;
    const handoff = this.untilServing(target.id).then(() => this.handOver(target)).finally(() => this.handoffs.delete(requester));
    this.handoffs.set(requester, handoff);
    return handoff;
  }

  /**
   * Settles once `id` serves in this node's view, or after the give-up time. A node that joins asks
   * for its sessions as soon as it has joined, usually before this node counts it among the
   * serving members (that takes its first reachability report): handed over then, its share would
   * be empty, and it would serve sessions it lacks until a scan brought them.
   */
  private untilServing(id: string): Promise<void> {
    const { view, giveUpAfterMs } = this.options;
    if (view.isLive(id)) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.awaitingServing.delete(check);
        resolve();
      };
      const check = () => { if (view.isLive(id)) done(); };
      const timer = setTimeout(done, giveUpAfterMs);
      this.awaitingServing.add(check);
    });
  }

  /**
   * `request`, given up on once the member at `address` has not been serving for the give-up time
   * (it crashed, or was left out): a catch-up must not wait the whole handoff time for a dead peer
   * while session commands wait for the catch-up. A peer not known as a member yet (a seed) is
   * waited for.
   */
  private unlessGone<T>(address: string, request: Promise<T>): Promise<T> {
    const { view, giveUpAfterMs } = this.options;
    const member = view.memberAt(address);
    if (member === null) return request;
    let watch: NodeJS.Timeout | undefined;
    const gone = new Promise<never>((_, reject) => {
      let lastServing = Date.now();
      watch = setInterval(() => {
        if (view.isLive(member)) lastServing = Date.now();
        else if (Date.now() - lastServing >= giveUpAfterMs) reject(new Error(`${member} has not been serving for ${giveUpAfterMs} ms`));
      }, GONE_CHECK_MS);
      watch.unref();
    });
    return Promise.race([request, gone]).finally(() => clearInterval(watch));
  }

  /**
   * A node that is (re)joining asked for the sessions it will own: they are pushed to it as
   * Replicate batches; settles with whether it acknowledged them all.
   */
  private async handOver(target: Owner): Promise<boolean> {
    const { store, view } = this.options;
    const now = this.now();
    let records: ItemRecord[] = [];
    const sends: Array<Promise<boolean>> = [];
    // Deletions too: a node that comes back after others took its sessions over must learn what
    // was deleted meanwhile (a logout), or its old copy would be served again.
    for (const held of [...store.allItems(), ...store.allDeletions()]) {
      const until = held instanceof Deletion ? held.until : held.expiresAt;
      if (until !== 0 && until <= now) continue;
      if (!view.ownedBy(held.key, target.id)) continue;
      records.push(held.toRecord());
      if (records.length >= BATCH_RECORDS) {
        sends.push(this.sendChanged(target, records, 'handoff'));
        records = [];
      }
    }
    if (records.length > 0) sends.push(this.sendChanged(target, records, 'handoff'));
    this.counters.handedOver += sends.length;
    const delivered = await Promise.all(sends);
    return delivered.every(Boolean);
  }

  /**
   * Drain (docs/architecture.md, "Graceful shutdown"): once the view no longer counts this node as an owner,
   * one scan sends every item to its owners and waits for their acknowledgements. Settles with
   * whether every copy was acknowledged; the caller bounds how long it waits.
   */
  /** Whether copies are still to be made: a scan runs or is due, or a repair of given-up copies is. */
  get pending(): boolean {
    return this.scanning !== null || this.scanTimer !== null || this.repairTimer !== null;
  }

  /**
   * How far the newest scan is: copies batched for their owners, and of those acknowledged (a
   * drain's progress). Null before the first scan.
   */
  get progress(): { readonly copies: number; readonly acknowledged: number } | null {
    return this.scanProgress;
  }

  async handOverAll(): Promise<boolean> {
    if (this.scanTimer !== null) clearTimeout(this.scanTimer);
    this.scanTimer = null;
    while (this.scanning !== null) await this.scanning;
    this.scanAgainAt = null;
    // The last handover this node makes copies everything, whatever earlier scans vouch for.
    this.vouched = null;
    return this.runScan();
  }

  stop(): void {
    this.stopped = true;
    if (this.scanTimer !== null) clearTimeout(this.scanTimer);
    if (this.repairTimer !== null) clearTimeout(this.repairTimer);
    this.scanTimer = null;
    this.repairTimer = null;
  }

  private runScan(): Promise<boolean> {
    const scan = this.scan();
    this.scanning = scan;
    void scan.finally(() => {
      if (this.scanning === scan) this.scanning = null;
      if (this.scanAgainAt !== null) {
        const delayMs = Math.max(0, this.scanAgainAt - Date.now());
        this.scanAgainAt = null;
        this.scheduleScan(delayMs);
      }
    });
    return scan;
  }

  /**
   * One pass over the store; whether every copy it sent was acknowledged.
   *
   * A copy is left out when its target owned the item under every placement since the start of
   * the last complete scan: that scan gave the target the item (or left it out by the same rule),
   * and every write since was copied to the target as an owner, or a copy was given up, which
   * makes the next scan copy everything (send). So after a death or a join, only the items whose
   * owners changed travel, not the whole store.
   */
  private async scan(): Promise<boolean> {
    try {
      const { view, store } = this.options;
      const now = this.now();
      const vouched = this.vouched;
      this.sinceScanStart = [view.placement()];
      let skipped = 0;
      let copied = 0;
      const batches = new Map<string, { target: Owner; records: ItemRecord[] }>();
      const handedOver: string[] = [];
      const sends: Array<Promise<boolean>> = [];
      /** the keys of each send, in order, to know which copies did not arrive */
      const sentKeys: string[][] = [];
      const progress = { copies: 0, acknowledged: 0 };
      this.scanProgress = progress;
      const flush = (batch: { target: Owner; records: ItemRecord[] }) => {
        // Offered first: a member back with its sessions on disk is sent only what changed while
        // it was away (and that, once, whichever of the scans its return sets off).
        const count = batch.records.length;
        progress.copies += count;
        sends.push(this.sendChanged(batch.target, batch.records, 'scan').then((ok) => {
          if (ok) progress.acknowledged += count;
          return ok;
        }));
        sentKeys.push(batch.records.map((record) => record.key));
        copied += batch.records.length;
        batch.records = [];
      };
      for (const item of store.allItems()) {
        if (item.expiresAt !== 0 && item.expiresAt <= now) continue;
        const { master, backup } = view.owners(item.key);
        const owned = master?.id === view.self || backup?.id === view.self;
        const earlier = vouched?.map((placement) => placement.owners(item.key)) ?? null;
        for (const target of [master, backup]) {
          if (target === null || target.id === view.self) continue;
          if (earlier !== null && earlier.every((owners) => owners.master === target.id || owners.backup === target.id)) {
            skipped++;
            continue;
          }
          let batch = batches.get(target.id);
          if (batch === undefined) batches.set(target.id, (batch = { target, records: [] }));
          batch.records.push(item.toRecord());
          if (batch.records.length >= BATCH_RECORDS) flush(batch);
        }
        if (!owned) handedOver.push(item.key);
      }
      for (const batch of batches.values()) if (batch.records.length > 0) flush(batch);
      this.counters.rereplicationSkipped += skipped;
      const delivered = await Promise.all(sends);
      const complete = delivered.every(Boolean);
      this.vouched = complete ? this.sinceScanStart : null;
      // copied: records batched for their owners, offered first (cluster_copies_already_held: those not needed).
      this.options.log.info({ copied, skipped, complete, everything: vouched === null }, 're-replication scan done');
      // A copy this node no longer owns is dropped once its owners have it: a draining node keeps
      // its copies until it exits (a peer may still read through it meanwhile), and a node left out
      // of the serving members keeps all of them: if no side of a partition has a majority, nobody
      // took its sessions over, and its copies may be the only ones.
      if (!view.leaving && view.isLive(view.self)) {
        const undelivered = new Set<string>();
        delivered.forEach((ok, i) => { if (!ok) for (const key of sentKeys[i]!) undelivered.add(key); });
        for (const key of handedOver) {
          if (undelivered.has(key)) continue;
          // Only if it still is not ours: the view may have changed during the scan.
          const { master, backup } = view.owners(key);
          if (master?.id !== view.self && backup?.id !== view.self) store.forget(key);
        }
      }
      return complete;
    } catch (error) {
      this.vouched = null;
      this.options.log.error({ err: (error as Error).message }, 're-replication scan failed');
      return false;
    }
  }

  /**
   * Sends records to one target until it acknowledges, is declared dead, or we give up. A node
   * that is catching up asked us itself, so it is up even if not live in our view yet, and our
   * link to it may still be backing off from when it was down: a handoff keeps trying it for
   * as long as the requester waits (HANDOFF_TIMEOUT_MS), whatever our view says.
   */
  private async send(target: Owner, records: ItemRecord[], handoff = false): Promise<boolean> {
    const { peers, view, requestTimeoutMs, giveUpAfterMs } = this.options;
    const deadline = Date.now() + (handoff ? HANDOFF_TIMEOUT_MS : giveUpAfterMs);
    for (let attempt = 1; ; attempt++) {
      try {
        await peers.replicate(target, records, { timeoutMs: requestTimeoutMs, validForMs: 0 });
        return true;
      } catch (error) {
        if (!handoff && !view.isLive(target.id)) return false;
        if (Date.now() >= deadline || this.stopped) return this.gaveUp(target, records.length, handoff, error, attempt);
        await new Promise((resolve) => setTimeout(resolve, RETRY_DELAY_MS));
      }
    }
  }

  /**
   * Copies to `target` given up: it stayed unreachable, yet was never declared dead. Logged and
   * counted; the peer lacks these copies, so a whole scan tries again a while later (coalesced),
   * by when it is reachable again or declared dead (which scans anyway). No earlier scan vouches
   * for its copies any more. Returns false, the outcome of the send.
   */
  private gaveUp(target: Owner, records: number, handoff: boolean, error: unknown, attempts?: number): false {
    this.counters.failed += records;
    this.options.log.warn({ peer: target.id, records, attempts, handoff, err: (error as Error).message }, 'replication gave up: peer unreachable but not declared dead');
    this.vouched = null;
    this.sinceScanStart = null;
    if (!handoff) this.scheduleScan(REPAIR_SCAN_DELAY_MS);
    return false;
  }

  /**
   * send(), after offering the records: only those the target needs are sent (it may hold the
   * others already: a node that kept its sessions on disk). The offer is retried as a send is (a
   * member that just came back may not be linked yet), and given up as a send is; a target that
   * cannot answer offers (an older node: ERR_PEER_REMOTE) is sent them all.
   */
  private async sendChanged(target: Owner, records: ItemRecord[], kind: 'handoff' | 'scan'): Promise<boolean> {
    const { peers, view, requestTimeoutMs, giveUpAfterMs } = this.options;
    const handoff = kind === 'handoff';
    const deadline = Date.now() + (handoff ? HANDOFF_TIMEOUT_MS : giveUpAfterMs);
    let needed = records;
    for (;;) {
      try {
        const need = await peers.offer(target, records.map((r) => ({ key: r.key, version: r.version, origin: r.origin })), requestTimeoutMs);
        needed = need.filter((i) => Number.isInteger(i) && i >= 0 && i < records.length).map((i) => records[i]!);
        this.counters.offeredHeld += records.length - needed.length;
        break;
      } catch (error) {
        // An older node, or one that cannot say: everything goes, as before offers existed.
        if ((error as { code?: string }).code === 'ERR_PEER_REMOTE') break;
        // Declared dead meanwhile: as send() would, drop it (a scan follows its return).
        if (!handoff && !view.isLive(target.id)) return false;
        // Out of time: given up as a copy is, and offered again by the repair scan.
        if (Date.now() >= deadline || this.stopped) return this.gaveUp(target, records.length, handoff, error);
        await new Promise((resolve) => setTimeout(resolve, RETRY_DELAY_MS));
      }
    }
    if (handoff) this.counters.handoffRecords += needed.length;
    else this.counters.rereplicated += needed.length;
    return needed.length === 0 ? true : this.send(target, needed, handoff);
  }

  /**
   * A write's copy to one owner, to be made by `deadlineAt`: tried until the owner acknowledges
   * it, is declared dead, refuses it (it came too late), or the time is up. Each attempt tells
   * the owner how long it may still apply it.
   */
  private sendBy(target: Owner, records: ItemRecord[], deadlineAt: number): Promise<CopyOutcome> {
    // The first attempt without an async function around it: the acknowledgement settles the
    // outcome in one step; a failure goes on to sendAgain, which judges it and retries.
    const left = deadlineAt - Date.now();
    const validForMs = left - guardOf(left);
    if (validForMs < 1 || this.stopped) return this.sendAgain(target, records, deadlineAt, null);
    return this.options.peers.replicate(target, records, { timeoutMs: Math.min(this.options.requestTimeoutMs, left), validForMs })
      .then(acknowledged, (error: unknown) => this.sendAgain(target, records, deadlineAt, { error }));
  }

  /** The rest of sendBy: from its first attempt's failure (`failed`), or with none made (null). */
  private async sendAgain(target: Owner, records: ItemRecord[], deadlineAt: number, failed: { error: unknown } | null): Promise<CopyOutcome> {
    const { peers, view, requestTimeoutMs } = this.options;
    /** an attempt went out and got no answer: it may have been applied */
    let unanswered = false;
    for (;;) {
      try {
        if (failed !== null) {
          // sendBy's attempt failed: judged below as this loop's own attempts are.
          const { error } = failed;
          failed = null;
          throw error;
        }
        const left = deadlineAt - Date.now();
        const validForMs = left - guardOf(left);
        if (validForMs < 1 || this.stopped) return unanswered ? 'unanswered' : 'out of time';
        await peers.replicate(target, records, { timeoutMs: Math.min(requestTimeoutMs, left), validForMs });
        return 'acknowledged';
      } catch (error) {
        if (!view.isLive(target.id)) return 'owner dead';
        const code = (error as { code?: string }).code;
        if (code === 'ERR_PEER_REFUSED') return unanswered ? 'unanswered' : 'refused';
        if (code !== 'ERR_PEER_UNAVAILABLE' && code !== 'ERR_PEER_CLOSED' && code !== 'ERR_PEER_BUSY') unanswered = true;
        if (deadlineAt - Date.now() <= RETRY_DELAY_MS) return unanswered ? 'unanswered' : 'out of time';
        await new Promise((resolve) => setTimeout(resolve, RETRY_DELAY_MS));
      }
    }
  }
}

/**
 * `placements` with `placement` added; null stays null, and so does a list grown too long or a
 * change that may have demoted an owner. Nodes learn of changes at different moments: a member
 * that came (back) may have taken an item from an owner in that owner's view, which then
 * dropped its copy, although in this node's view it never stopped owning it. Only a scan that
 * copies everything covers that, and this node runs one once it learns of the change too.
 */
function appendPlacement(placements: Placement[] | null, placement: Placement): Placement[] | null {
  if (placements === null || placements.length >= MAX_PLACEMENTS) return null;
  if (!onlyRemovesMembers(placements[placements.length - 1]!, placement)) return null;
  return [...placements, placement];
}
