/**
 * Cluster membership: who is in the cluster and in what state (docs/architecture.md, "Membership").
 *
 * The model is hashicorp/memberlist (SWIM with incarnation numbers), simplified for clusters of a
 * handful to a few dozen PHP servers, where every node can afford to talk to every other:
 * - Failure detection is all-to-all heartbeats rather than SWIM's random probes: every heartbeatMs a
 *   node sends each live member a heartbeat, and judges each one by the silence since it last heard
 *   from it directly (suspect after suspectAfterMs, dead after failureTimeoutMs). Every node runs its
 *   own detector, so a crash is seen everywhere within one timeout without waiting for gossip:
 *   silence runs from the last heartbeat received and is judged once per period, so a crash is
 *   declared between failureTimeoutMs - heartbeatMs and failureTimeoutMs + heartbeatMs after it.
 * - Dissemination is memberlist's push/pull state sync made continuous: each heartbeat carries the
 *   sender's full member list, merged entry by entry with the incarnation rules (member-rules.ts).
 * - Join goes through seed addresses; the seed answers with a heartbeat, i.e. its full list.
 * Everything is fire-and-forget over MembershipTransport; failures are logged and counted, never
 * thrown. Events go to placement and replication; events are about other members only.
 */
import { EventEmitter } from 'node:events';
import type { Logger } from '../../log.js';
import {
  MemberState, UNKNOWN_NODE_ID, type MemberInfo, type MembershipMessage, type MembershipTransport, type NodeId,
} from '../types.js';
import { systemClock, type MembershipClock } from './clock.js';
import { ClockOffsets } from './clock-offsets.js';
import { MembershipStats } from './membership-stats.js';
import { byId, copyMember, isLive, isMemberInfo, isMembershipMessage, isNodeId, supersedes } from './member-rules.js';

/**
 * How often, at most, members' silence is checked. Checking only once a heartbeat period would
 * see a death up to a whole period after the failure timeout; with the defaults (200 / 800 ms)
 * that put a kill -9's failover at up to 1 s (bench/CLUSTER-RESULTS.md).
 */
const FAILURE_CHECK_MS = 50;

export interface MembershipOptions {
  /**
   * This node. `incarnation` is the starting incarnation, chosen by the caller: it must exceed what
   * the node used in its previous life for a restart to be recognised at once; clockIncarnation()
   * (the wall clock in seconds) does that with nothing persisted, and a lower value still recovers
   * after one round trip by refutation.
   */
  self: { id: NodeId; peerAddress: string; incarnation: number };
  /** peer addresses to join through; this node's own address may be listed (it is skipped) */
  seeds: string[];
  transport: MembershipTransport;
  log: Logger;
  /** how often heartbeats go out (default 200) */
  heartbeatMs?: number;
  /** silence after which a member is declared dead (default 1000) */
  failureTimeoutMs?: number;
  /** silence after which a member becomes suspect (default failureTimeoutMs / 2) */
  suspectAfterMs?: number;
  /** how often dead (not left) members are still sent a heartbeat, so partitions heal (default failureTimeoutMs) */
  deadProbeMs?: number;
  /** dead and left members are forgotten this long after their last change (default 24 h, Serf's reconnect/tombstone timeouts) */
  reapAfterMs?: number;
  /** first join retry delay, doubled per attempt (default heartbeatMs) */
  joinRetryMs?: number;
  /** join retry delay cap (default 5000) */
  joinRetryMaxMs?: number;
  /** a warning is logged every this many failed join attempts (default 5) */
  joinWarnEvery?: number;
  clock?: MembershipClock;
  /** what this node reports as its load in heartbeats (the items it holds); none when absent */
  load?: () => number;
  /**
   * the wall clock heartbeats carry, by which members measure each other's clocks (default
   * Date.now); never used for failure detection, which runs on `clock`
   */
  wallClock?: () => number;
  /** a member whose clock is further than this from ours, either way, is warned about (default 1000 ms) */
  clockWarnMs?: number;
}

export interface MembershipEvents {
  /** this node is in a cluster: a member listed it, or it had no seeds and started one */
  joined: [];
  /** a member appeared, or came back from dead or left */
  join: [member: MemberInfo];
  /**
   * a live member changed: alive <-> suspect, or its incarnation rose. An incarnation rise without a
   * death in between can be a quick restart (an empty node): replication compares incarnations.
   */
  update: [member: MemberInfo, previous: MemberInfo];
  /** a live member was declared dead */
  dead: [member: MemberInfo, previous: MemberInfo];
  /** a live member left on purpose */
  leave: [member: MemberInfo, previous: MemberInfo];
  /**
   * this node's own timer ran `gapMs` late (the process was stopped, or its event loop blocked);
   * when the gap reached the failure timeout the others have likely declared it dead, and it has
   * already announced itself alive again at a higher incarnation
   */
  stall: [gapMs: number];
  /**
   * a dead or left member was forgotten (reapAfterMs after its last change): a replacement it
   * named for its minted sessions is forgotten with it, so their owners change
   */
  forget: [member: MemberInfo];
  /** who hears whom changed: this node's own report, or one from another member (reachability()) */
  reach: [];
}

interface MemberRecord {
  info: MemberInfo;
  /** when a message last came from the member itself (the failure detector's only input) */
  lastHeardAt: number;
  /**
   * when a message last came from the member itself, and only then (lastHeardAt is also moved by
   * news of a new life, and by a stall's fresh window), or when a live member was first heard of
   * through another: what this node reports hearing
   */
  lastDirectAt: number;
  /** when `info` last changed (reaping) */
  changedAt: number;
  /** when a dead member was last probed */
  lastProbeAt: number;
  /** when we last answered the member's own claim out of turn (rate limit) */
  lastReplyAt: number;
}

type Phase = 'idle' | 'running' | 'left' | 'stopped';
type Via = 'direct' | 'gossip';

export class Membership extends EventEmitter<MembershipEvents> {
  readonly stats = new MembershipStats();
  /** how far each member's clock is from ours, from the heartbeats it sends */
  readonly clocks: ClockOffsets;
  private readonly wallClock: () => number;
  private readonly clockWarnMs: number;
  /** members whose clock offset was warned about, until it is back within half the threshold */
  private readonly skewWarned = new Set<NodeId>();
  /** each member's latest report of whom it hears (this node's own included), by member */
  private readonly reports = new Map<NodeId, ReachReport>();
  /**
   * members whose heartbeats carry no reachability reports (an older version, during a rolling
   * upgrade): reachability() assumes each hears those that hear it, so they keep serving
   */
  private readonly unreporting = new Set<NodeId>();
  private selfInfo: MemberInfo;
  private readonly records = new Map<NodeId, MemberRecord>();
  /** the load each member last reported in a heartbeat of its own */
  private readonly loads = new Map<NodeId, number>();
  private readonly load: (() => number) | undefined;
  /** incarnations of reaped members: news at or below them is stale, so reaped members stay forgotten */
  private readonly reaped = new Map<NodeId, number>();
  private readonly seeds: string[];
  private readonly transport: MembershipTransport;
  private readonly clock: MembershipClock;
  private readonly log: Logger;
  private readonly heartbeatMs: number;
  private readonly suspectAfterMs: number;
  private readonly failureTimeoutMs: number;
  private readonly deadProbeMs: number;
  private readonly reapAfterMs: number;
  private readonly joinRetryMs: number;
  private readonly joinRetryMaxMs: number;
  private readonly joinWarnEvery: number;
  /** out-of-turn answers to one member go at most this often (half a period: one per heartbeat it sends) */
  private readonly answerIntervalMs: number;
  private phase: Phase = 'idle';
  private tickTimer: unknown = null;
  private joinTimer: unknown = null;
  private lastTickAt = 0;
  /** failures are looked for this many times per heartbeat period, so a death is seen soon after the timeout */
  private readonly checksPerHeartbeat: number;
  private checksSinceHeartbeat = 0;
  private joinAttempts = 0;
  private joinedFlag = false;

  constructor(options: MembershipOptions) {
    super();
    const { self } = options;
    if (!isNodeId(self.id)) throw new RangeError(`membership: bad node id ${JSON.stringify(self.id)}`);
    if (!Number.isSafeInteger(self.incarnation) || self.incarnation < 0) {
      throw new RangeError(`membership: incarnation must be a non-negative integer, got ${self.incarnation}`);
    }
    this.load = options.load;
    this.heartbeatMs = options.heartbeatMs ?? 200;
    this.failureTimeoutMs = options.failureTimeoutMs ?? 1000;
    this.suspectAfterMs = options.suspectAfterMs ?? this.failureTimeoutMs / 2;
    this.checksPerHeartbeat = Math.max(1, Math.ceil(this.heartbeatMs / FAILURE_CHECK_MS));
    // A member is heard once per heartbeat; suspecting it sooner than that would suspect everyone.
    if (!(this.heartbeatMs > 0 && this.heartbeatMs < this.suspectAfterMs && this.suspectAfterMs < this.failureTimeoutMs)) {
      throw new RangeError(`membership: need 0 < heartbeatMs (${this.heartbeatMs}) < suspectAfterMs (${this.suspectAfterMs}) < failureTimeoutMs (${this.failureTimeoutMs})`);
    }
    this.deadProbeMs = options.deadProbeMs ?? this.failureTimeoutMs;
    this.reapAfterMs = options.reapAfterMs ?? 24 * 60 * 60 * 1000;
    this.joinRetryMs = options.joinRetryMs ?? this.heartbeatMs;
    this.joinRetryMaxMs = options.joinRetryMaxMs ?? 5000;
    this.joinWarnEvery = options.joinWarnEvery ?? 5;
    this.answerIntervalMs = this.heartbeatMs / 2;
    this.selfInfo = { id: self.id, peerAddress: self.peerAddress, state: MemberState.Alive, incarnation: self.incarnation };
    this.seeds = [...new Set(options.seeds)].filter((address) => address !== self.peerAddress);
    this.transport = options.transport;
    this.clock = options.clock ?? systemClock;
    this.wallClock = options.wallClock ?? Date.now;
    this.clocks = new ClockOffsets(this.wallClock);
    this.clockWarnMs = options.clockWarnMs ?? 1000;
    this.log = options.log.child({ component: 'membership', node: self.id });
    this.transport.onMessage((from, message) => this.handleMessage(from, message));
  }

  /** Starts heartbeats and, if there are seeds, joining through them. Listeners should be attached first. */
  start(): void {
    if (this.phase !== 'idle') return;
    this.phase = 'running';
    this.lastTickAt = this.clock.now();
    // This node's own report exists from the start: a member without one does not serve.
    this.updateOwnReach(this.lastTickAt);
    this.scheduleTick();
    if (this.seeds.length === 0) {
      // The first node of a cluster: others join through it.
      this.joinedFlag = true;
      this.log.info({ incarnation: this.selfInfo.incarnation }, 'no seeds: starting a new cluster');
      this.notify('joined');
    } else {
      this.log.info({ seeds: this.seeds, incarnation: this.selfInfo.incarnation }, 'joining the cluster');
      this.attemptJoin();
    }
  }

  /**
   * Marks this node left, tells every live member, and stops heartbeats (memberlist Leave).
   * `replacement`: the node this one handed its sessions to, named in the leave so that sessions
   * whose minted ids name this node are served there (minted-placement.ts).
   */
  leave(replacement?: NodeId): void {
    if (this.phase !== 'running') return;
    this.selfInfo = { ...this.selfInfo, state: MemberState.Left };
    if (replacement !== undefined && replacement !== this.selfInfo.id) this.selfInfo.replacement = replacement;
    this.stopTimers();
    this.phase = 'left';
    for (const record of this.records.values()) {
      if (isLive(record.info.state)) this.sendTo(record.info.id, record.info.peerAddress, this.leaveMessage());
    }
    this.log.info({ incarnation: this.selfInfo.incarnation, replacement: replacement ?? null }, 'left the cluster');
  }

  /**
   * Back after leave() (undrain), in the same process: alive again at a higher incarnation, which
   * beats the leave every member holds (member-rules.ts), announced to every member known. The
   * members it knew get a fresh failure window: they stopped heartbeating a member that left.
   */
  rejoin(): void {
    if (this.phase !== 'left') return;
    const now = this.clock.now();
    this.selfInfo = { id: this.selfInfo.id, peerAddress: this.selfInfo.peerAddress, state: MemberState.Alive, incarnation: this.selfInfo.incarnation + 1 };
    this.phase = 'running';
    for (const record of this.records.values()) {
      record.lastHeardAt = now;
      record.lastDirectAt = now;
    }
    this.lastTickAt = now;
    this.updateOwnReach(now);
    this.scheduleTick();
    this.log.info({ incarnation: this.selfInfo.incarnation }, 'rejoining the cluster');
    const message = this.heartbeatMessage();
    for (const record of this.records.values()) {
      if (record.info.state !== MemberState.Left) this.sendHeartbeat(record.info.id, record.info.peerAddress, message);
    }
  }

  /** Stops everything, without telling anyone (shutdown after leave(), or a test's crash). */
  stop(): void {
    this.stopTimers();
    this.phase = 'stopped';
  }

  /** This node as the cluster should know it. */
  get self(): MemberInfo {
    return copyMember(this.selfInfo);
  }

  /** True once a member has listed this node (or it is the first node). */
  get joined(): boolean {
    return this.joinedFlag;
  }

  /**
   * Whom each member hears, as it last reported (this node's own report is always current): what
   * connectivity.ts decides the serving members from. A member with no report hears nobody (a
   * crashed one, or one that just joined, until its first heartbeat), except one whose heartbeats
   * carry no reports at all (an older version): it is taken to hear every member that hears it,
   * which is what placement assumed before members reported, so a rolling upgrade keeps it serving.
   */
  reachability(): Map<NodeId, ReadonlySet<NodeId>> {
    const reach = new Map<NodeId, ReadonlySet<NodeId>>();
    for (const [id, report] of this.reports) reach.set(id, new Set(report.hears));
    for (const id of this.unreporting) {
      if (this.reports.has(id)) continue;
      const hearers = new Set<NodeId>();
      for (const [other, report] of this.reports) if (report.hears.includes(id)) hearers.add(other);
      reach.set(id, hearers);
    }
    return reach;
  }

  /** Whether this node heard from `id` directly within the failure timeout (its own report). */
  hears(id: NodeId): boolean {
    return this.reports.get(this.selfInfo.id)?.hears.includes(id) ?? false;
  }

  /** The load `id` last reported in its own heartbeat; undefined before its first one. */
  loadOf(id: NodeId): number | undefined {
    return this.loads.get(id);
  }

  /** Every known member, this node included, dead and left ones too (until reaped), sorted by id. */
  members(): MemberInfo[] {
    const all = [copyMember(this.selfInfo)];
    for (const record of this.records.values()) all.push(copyMember(record.info));
    return all.sort(byId);
  }

  /** Alive and suspect members, sorted by id: what placement ranks over. */
  liveMembers(): MemberInfo[] {
    return this.members().filter((m) => isLive(m.state));
  }

  member(id: NodeId): MemberInfo | undefined {
    if (id === this.selfInfo.id) return copyMember(this.selfInfo);
    const record = this.records.get(id);
    return record === undefined ? undefined : copyMember(record.info);
  }

  // ---- joining -------------------------------------------------------------------------------

  /**
   * Sends join to every seed; any one that answers suffices. An attempt that is not answered before
   * the next one is a failure: retried with exponential backoff (joinRetryMs doubling, capped), each
   * failure logged at debug and every joinWarnEvery-th at warn, until someone lists this node.
   */
  private attemptJoin(): void {
    this.joinTimer = null;
    if (this.phase !== 'running' || this.joinedFlag) return;
    if (this.joinAttempts > 0) {
      const fields = { attempts: this.joinAttempts, seeds: this.seeds };
      this.log.debug(fields, 'no seed answered the join yet; retrying');
      if (this.joinAttempts % this.joinWarnEvery === 0) this.log.warn(fields, 'still not joined: no seed answers');
    }
    this.joinAttempts++;
    const message: MembershipMessage = { kind: 'join', member: copyMember(this.selfInfo) };
    for (const address of this.seeds) {
      this.stats.joinsSent++;
      this.sendTo(UNKNOWN_NODE_ID, address, message);
    }
    const delay = Math.min(this.joinRetryMaxMs, this.joinRetryMs * 2 ** Math.min(this.joinAttempts - 1, 30));
    this.joinTimer = this.clock.setTimeout(() => this.attemptJoin(), delay);
  }

  private noteJoined(through: MemberInfo): void {
    if (this.joinedFlag) return;
    this.joinedFlag = true;
    if (this.joinTimer !== null) this.clock.clearTimeout(this.joinTimer);
    this.joinTimer = null;
    this.log.info({ peer: through.id, peerAddress: through.peerAddress, attempts: this.joinAttempts }, 'joined the cluster');
    this.notify('joined');
  }

  // ---- the periodic round --------------------------------------------------------------------

  private scheduleTick(): void {
    this.tickTimer = this.clock.setTimeout(() => this.tick(), this.heartbeatMs / this.checksPerHeartbeat);
  }

  private tick(): void {
    this.tickTimer = null;
    if (this.phase !== 'running') return;
    const now = this.clock.now();
    const gap = now - this.lastTickAt;
    this.lastTickAt = now;
    if (gap >= this.suspectAfterMs) {
      // Our own timer came this late: the process was stopped or its event loop blocked, and
      // Node runs overdue timers before reading the sockets where the peers' heartbeats wait. The
      // silence is ours, not theirs: give every peer a fresh window rather than declare the cluster
      // dead (the idea of Lifeguard's local health awareness, memberlist's "awareness").
      this.stats.stalls++;
      this.log.warn({ gapMs: Math.round(gap), heartbeatMs: this.heartbeatMs }, 'membership timer stalled; not judging peers this round');
      for (const record of this.records.values()) record.lastHeardAt = now;
      if (gap >= this.failureTimeoutMs) this.reannounce(now);
      this.notify('stall', gap);
      // and let the peers hear from us at once, as they may be suspecting us by now
      this.checksSinceHeartbeat = this.checksPerHeartbeat - 1;
    } else {
      this.detectFailures(now);
    }
    // Heartbeats (and reaping) once a period; failures are checked on every tick in between.
    if (++this.checksSinceHeartbeat >= this.checksPerHeartbeat) {
      this.checksSinceHeartbeat = 0;
      this.sendHeartbeats(now);
      this.reap(now);
    }
    this.scheduleTick();
  }

  /** SWIM's suspicion: silence first makes a member suspect, and only a longer one dead. */
  private detectFailures(now: number): void {
    this.updateOwnReach(now);
    for (const record of this.records.values()) {
      const silence = now - record.lastHeardAt;
      if (record.info.state === MemberState.Alive && silence >= this.suspectAfterMs) {
        this.transition(record, { ...record.info, state: MemberState.Suspect }, now, { silenceMs: silence });
      }
      if (record.info.state === MemberState.Suspect && silence >= this.failureTimeoutMs) {
        this.transition(record, { ...record.info, state: MemberState.Dead }, now, { silenceMs: silence });
      }
    }
  }

  private sendHeartbeats(now: number): void {
    const message = this.heartbeatMessage();
    for (const record of this.records.values()) {
      const { id, peerAddress, state } = record.info;
      if (isLive(state)) {
        this.sendHeartbeat(id, peerAddress, message);
      } else if (state === MemberState.Dead && now - record.lastProbeAt >= this.deadProbeMs) {
        // Like Serf's reconnect: keep knocking on dead members' doors at a slower pace, so that
        // when a partition heals the two sides hear each other and refute their death verdicts.
        record.lastProbeAt = now;
        this.sendHeartbeat(id, peerAddress, message);
      }
    }
  }

  private reap(now: number): void {
    for (const [id, record] of this.records) {
      if (!isLive(record.info.state) && now - record.changedAt >= this.reapAfterMs) {
        this.records.delete(id);
        this.loads.delete(id);
        if (this.reports.delete(id)) this.notify('reach');
        this.unreporting.delete(id);
        this.clocks.forget(id);
        this.skewWarned.delete(id);
        this.reaped.set(id, record.info.incarnation);
        this.log.debug({ peer: id, state: record.info.state, incarnation: record.info.incarnation }, 'forgot member');
        this.notify('forget', copyMember(record.info));
      }
    }
  }

  // ---- receiving -----------------------------------------------------------------------------

  private handleMessage(from: NodeId, message: MembershipMessage): void {
    if (this.phase === 'idle' || this.phase === 'stopped') return;
    if (!isMembershipMessage(message) || message.member.id !== from) {
      this.stats.malformed++;
      this.log.warn({ peer: from }, 'dropped a malformed membership message');
      return;
    }
    const sender = message.member;
    if (sender.id === this.selfInfo.id) {
      // Our own join came back: one of the seeds is this node under another address.
      this.log.debug({ peerAddress: sender.peerAddress }, 'a seed address leads to this node');
      return;
    }
    const now = this.clock.now();
    if (this.phase === 'left') {
      this.answerAfterLeaving(message, now);
      return;
    }
    switch (message.kind) {
      case 'join':
        this.stats.joinsReceived++;
        this.apply(sender, 'direct', now);
        this.heard(sender.id, now);
        // The answer is a heartbeat: our full list, so the joiner learns everyone at once, and, if
        // what we know of it beats its claim, it learns that too and refutes.
        this.sendHeartbeat(sender.id, sender.peerAddress, this.heartbeatMessage());
        break;
      case 'heartbeat':
        this.stats.heartbeatsReceived++;
        this.apply(sender, 'direct', now);
        this.heard(sender.id, now);
        if (typeof message.load === 'number' && Number.isSafeInteger(message.load) && message.load >= 0) {
          this.loads.set(sender.id, message.load);
        }
        if (typeof message.sentAt === 'number' && Number.isSafeInteger(message.sentAt) && message.sentAt > 0) {
          this.clocks.observe(sender.id, message.sentAt);
          this.checkSkew(sender.id);
        }
        if (Array.isArray(message.reach)) {
          if (this.unreporting.delete(sender.id)) this.notify('reach');
          this.mergeReports(message.reach, from);
        } else if (!this.unreporting.has(sender.id)) {
          this.unreporting.add(sender.id);
          this.log.info({ peer: sender.id }, 'member sends no reachability reports (an older version?): assuming it hears those that hear it');
          this.notify('reach');
        }
        for (const entry of message.members) {
          if (!isMemberInfo(entry)) {
            this.stats.malformed++;
            this.log.warn({ peer: from }, 'dropped a malformed member list entry');
            continue;
          }
          if (entry.id === this.selfInfo.id) this.noteJoined(sender);
          this.apply(entry, 'gossip', now);
        }
        this.answerIfBehind(sender, now);
        break;
      case 'leave':
        this.stats.leavesReceived++;
        this.apply(sender, 'direct', now);
        break;
    }
  }

  /**
   * Clocks further apart than the threshold do not endanger sessions (expiries travel relative,
   * deadlines are judged with the measured offset), but they say NTP is not running somewhere:
   * warned once per member, again only after it came back within half the threshold.
   */
  private checkSkew(member: NodeId): void {
    const offset = this.clocks.offsetOf(member)!;
    if (Math.abs(offset) > this.clockWarnMs && !this.skewWarned.has(member)) {
      this.skewWarned.add(member);
      this.log.warn({ peer: member, offsetMs: Math.round(offset), thresholdMs: this.clockWarnMs },
        `the clock of ${member} is ${Math.abs(Math.round(offset))} ms ${offset > 0 ? 'ahead of' : 'behind'} this node's: sessions expire correctly regardless, but check that NTP runs on both`);
    } else if (Math.abs(offset) <= this.clockWarnMs / 2) {
      this.skewWarned.delete(member);
    }
  }

  /** Any message from a member proves it alive: the failure detector's clock restarts. */
  private heard(id: NodeId, now: number): void {
    const record = this.records.get(id);
    if (record === undefined) return;
    const wasHeard = now - record.lastDirectAt < this.failureTimeoutMs;
    record.lastHeardAt = now;
    record.lastDirectAt = now;
    // A member heard again after a silence, or for the first time, is reported at once rather
    // than at the next tick: the sooner every node has the same reports, the sooner they agree
    // on who serves.
    if (!wasHeard) this.updateOwnReach(now);
  }

  /**
   * The sender claims to be alive but we hold it suspect, dead or left at an incarnation its claim
   * does not beat: tell it now rather than at our next round (we do not heartbeat dead members),
   * so that it refutes (memberlist: a node learns it is suspected from the gossip about it).
   */
  private answerIfBehind(sender: MemberInfo, now: number): void {
    const record = this.records.get(sender.id);
    if (record === undefined || record.info.state === MemberState.Alive || sender.state !== MemberState.Alive) return;
    if (now - record.lastReplyAt < this.answerIntervalMs) return;
    record.lastReplyAt = now;
    this.sendHeartbeat(sender.id, sender.peerAddress, this.heartbeatMessage());
  }

  /** After leave(): a member that still counts us in hears again that we left, so it stops waiting. */
  private answerAfterLeaving(message: MembershipMessage, now: number): void {
    if (message.kind !== 'heartbeat') return;
    const aboutUs = message.members.find((m) => isMemberInfo(m) && m.id === this.selfInfo.id);
    if (aboutUs !== undefined && aboutUs.state === MemberState.Left) return;
    const record = this.records.get(message.member.id);
    if (record !== undefined) {
      if (now - record.lastReplyAt < this.answerIntervalMs) return;
      record.lastReplyAt = now;
    }
    this.sendTo(message.member.id, message.member.peerAddress, this.leaveMessage());
  }

  // ---- merging news --------------------------------------------------------------------------

  /** Applies what a message says about one member, under the incarnation rules. */
  private apply(news: MemberInfo, via: Via, now: number): void {
    if (news.id === this.selfInfo.id) {
      this.applyAboutSelf(news);
      return;
    }
    const reapedAt = this.reaped.get(news.id);
    if (reapedAt !== undefined && news.incarnation <= reapedAt) return;
    const record = this.records.get(news.id);
    let incoming = copyMember(news);
    if (via === 'gossip' && incoming.state === MemberState.Dead && record !== undefined && isLive(record.info.state)) {
      // memberlist mergeState: "if the remote node believes a node is dead, we prefer to suspect
      // that node instead of declaring it dead instantly". A member we still count as live gets
      // the chance to refute, and our own detector declares it dead if we do not hear it either.
      // Without this, a healed partition would kill healthy members with the other side's verdicts.
      incoming = { ...incoming, state: MemberState.Suspect };
    }
    if (record === undefined) {
      this.reaped.delete(news.id);
      // Dead and left members are learned too (tombstones), so that every list converges and stale
      // news about them cannot resurrect them.
      // A live member first heard of through another is reported as heard for one failure
      // timeout, the grace the failure detector gives it too: a node that joins learns most
      // members from its seed's list before they have reached it, and reporting them unheard
      // meanwhile would make them look cut off from it (connectivity.ts).
      const lastDirectAt = via === 'gossip' && isLive(incoming.state) ? now : -Infinity;
      this.records.set(news.id, { info: incoming, lastHeardAt: now, lastDirectAt, changedAt: now, lastProbeAt: now, lastReplyAt: -Infinity });
      if (lastDirectAt === now) this.updateOwnReach(now);
      if (incoming.state === MemberState.Suspect) this.stats.suspicions++;
      if (isLive(incoming.state)) {
        this.log.info({ peer: incoming.id, peerAddress: incoming.peerAddress, incarnation: incoming.incarnation, state: incoming.state, via }, 'member joined');
        this.notify('join', copyMember(incoming));
      }
      return;
    }
    if (!supersedes(incoming, record.info)) {
      if (incoming.incarnation < record.info.incarnation || incoming.state !== record.info.state) this.stats.staleIgnored++;
      return;
    }
    this.transition(record, incoming, now, { via });
  }

  /**
   * News about this node. Whoever holds it suspect, dead or left (or alive at a higher incarnation,
   * from a previous life) at an incarnation not below ours must hear otherwise: we refute by raising
   * our incarnation above it and announcing ourselves alive (SWIM 4.2; memberlist refute()). Only
   * this node ever raises its incarnation, so a refutation cannot be outbid by anyone else's news.
   */
  private applyAboutSelf(news: MemberInfo): void {
    if (this.phase !== 'running') return;
    const own = this.selfInfo;
    if (news.incarnation < own.incarnation) return;
    if (news.incarnation === own.incarnation && news.state === MemberState.Alive && news.peerAddress === own.peerAddress) return;
    if (news.peerAddress !== own.peerAddress) {
      this.log.warn({ heardAddress: news.peerAddress, incarnation: news.incarnation }, 'another address is gossiped for this node id: is the id used twice?');
    }
    this.selfInfo = { ...own, state: MemberState.Alive, incarnation: news.incarnation + 1 };
    this.stats.refutations++;
    this.log.info({ heardState: news.state, heardIncarnation: news.incarnation, incarnation: this.selfInfo.incarnation }, 'refuting: raised own incarnation');
    const message = this.heartbeatMessage();
    for (const record of this.records.values()) {
      if (isLive(record.info.state)) this.sendHeartbeat(record.info.id, record.info.peerAddress, message);
    }
  }

  /**
   * Back from a silence long enough to have been declared dead: rather than wait for a dead-member
   * probe to refute, raise our incarnation and tell every member, dead ones included, at once.
   */
  private reannounce(now: number): void {
    this.selfInfo = { ...this.selfInfo, state: MemberState.Alive, incarnation: this.selfInfo.incarnation + 1 };
    this.stats.refutations++;
    this.log.info({ incarnation: this.selfInfo.incarnation }, 'announcing this node alive again after a stall');
    const message = this.heartbeatMessage();
    for (const record of this.records.values()) {
      if (record.info.state !== MemberState.Left) {
        record.lastProbeAt = now;
        this.sendHeartbeat(record.info.id, record.info.peerAddress, message);
      }
    }
  }

  /** Replaces a member's record (the rules already said `next` wins), then logs, counts and notifies. */
  private transition(record: MemberRecord, next: MemberInfo, now: number, context: Record<string, unknown>): void {
    const previous = record.info;
    const member = copyMember(next);
    record.info = member;
    record.changedAt = now;
    const wasLive = isLive(previous.state);
    const nowLive = isLive(member.state);
    if (member.incarnation > previous.incarnation || (nowLive && !wasLive)) {
      // A higher incarnation was raised by the member itself, moments ago: fresh evidence of life,
      // so its silence is measured from now (else a revived member would be re-declared dead at once).
      record.lastHeardAt = now;
      record.lastProbeAt = now;
    }
    const fields = {
      peer: member.id, peerAddress: member.peerAddress, state: member.state, previousState: previous.state,
      incarnation: member.incarnation, previousIncarnation: previous.incarnation, ...context,
      ...(member.replacement !== undefined ? { replacement: member.replacement } : {}),
    };
    if (member.state === MemberState.Suspect && previous.state !== MemberState.Suspect) this.stats.suspicions++;
    if (member.state === MemberState.Dead && previous.state !== MemberState.Dead) this.stats.deaths++;
    if (!wasLive && nowLive) {
      this.log.info(fields, 'member joined');
      this.notify('join', copyMember(member));
    } else if (wasLive && member.state === MemberState.Dead) {
      this.log.warn(fields, 'member declared dead');
      this.notify('dead', copyMember(member), copyMember(previous));
    } else if (wasLive && member.state === MemberState.Left) {
      this.log.info(fields, 'member left');
      this.notify('leave', copyMember(member), copyMember(previous));
    } else if (wasLive) {
      this.log.info(fields, member.state === MemberState.Suspect ? 'member suspected' : 'member alive');
      this.notify('update', copyMember(member), copyMember(previous));
    } else {
      // dead -> left, or a tombstone at a higher incarnation: nothing owned changes hands.
      this.log.debug(fields, 'member record updated');
    }
  }

  // ---- who hears whom ------------------------------------------------------------------------

  /**
   * This node's report: the members it heard from directly within the failure timeout. A new
   * report (a higher seq) goes out with the next heartbeats.
   */
  private updateOwnReach(now: number): void {
    const hears: NodeId[] = [];
    for (const [id, record] of this.records) {
      if (record.info.state !== MemberState.Left && now - record.lastDirectAt < this.failureTimeoutMs) hears.push(id);
    }
    hears.sort();
    const self = this.selfInfo;
    const previous = this.reports.get(self.id);
    if (previous !== undefined && previous.incarnation === self.incarnation && sameIds(previous.hears, hears)) return;
    this.reports.set(self.id, { id: self.id, incarnation: self.incarnation, seq: (previous?.seq ?? 0) + 1, hears });
    this.notify('reach');
  }

  /** Reports relayed in a heartbeat: each replaces what is known of its member if it is newer. */
  private mergeReports(reports: unknown[], from: NodeId): void {
    let changed = false;
    for (const report of reports) {
      if (!isReachReport(report)) {
        this.stats.malformed++;
        this.log.warn({ peer: from }, 'dropped a malformed reachability report');
        continue;
      }
      // Our own report is ours to make; a reaped member's is stale.
      if (report.id === this.selfInfo.id || (this.reaped.get(report.id) ?? -1) >= report.incarnation) continue;
      const known = this.reports.get(report.id);
      if (known !== undefined && (known.incarnation > report.incarnation || (known.incarnation === report.incarnation && known.seq >= report.seq))) continue;
      this.reports.set(report.id, { id: report.id, incarnation: report.incarnation, seq: report.seq, hears: [...report.hears].sort() });
      changed = true;
    }
    if (changed) this.notify('reach');
  }

  // ---- sending -------------------------------------------------------------------------------

  private heartbeatMessage(): MembershipMessage {
    const message: MembershipMessage = {
      kind: 'heartbeat', member: copyMember(this.selfInfo), members: this.members(), sentAt: this.wallClock(), reach: [...this.reports.values()],
    };
    if (this.load !== undefined) message.load = this.load();
    return message;
  }

  private leaveMessage(): MembershipMessage {
    return { kind: 'leave', member: copyMember(this.selfInfo) };
  }

  private sendHeartbeat(id: NodeId, peerAddress: string, message: MembershipMessage): void {
    this.stats.heartbeatsSent++;
    this.sendTo(id, peerAddress, message);
  }

  private sendTo(id: NodeId, peerAddress: string, message: MembershipMessage): void {
    try {
      this.transport.send(id, peerAddress, message);
    } catch (error) {
      // The transport's contract is never to throw; if it does, a timer callback must not crash the daemon.
      this.stats.sendErrors++;
      this.log.error({ peer: id, peerAddress, err: error }, 'membership transport threw on send');
    }
  }

  private notify<K extends keyof MembershipEvents>(event: K, ...args: MembershipEvents[K]): void {
    try {
      // (the cast: TypeScript cannot see that K and its argument tuple go together)
      (this.emit as (event: K, ...args: MembershipEvents[K]) => boolean)(event, ...args);
    } catch (error) {
      // A listener's bug must not leave membership half-updated or kill the heartbeat timer.
      this.stats.listenerErrors++;
      this.log.error({ event, err: error }, 'membership event listener threw');
    }
  }

  private stopTimers(): void {
    if (this.tickTimer !== null) this.clock.clearTimeout(this.tickTimer);
    if (this.joinTimer !== null) this.clock.clearTimeout(this.joinTimer);
    this.tickTimer = null;
    this.joinTimer = null;
  }
}

/** One member's report of whom it hears, newest by (incarnation, seq). */
interface ReachReport {
  id: NodeId;
  incarnation: number;
  seq: number;
  hears: NodeId[];
}

function isReachReport(value: unknown): value is ReachReport {
  if (typeof value !== 'object' || value === null) return false;
  const r = value as Record<string, unknown>;
  return isNodeId(r.id) && Number.isSafeInteger(r.incarnation) && Number.isSafeInteger(r.seq)
    && Array.isArray(r.hears) && r.hears.length <= 1024 && r.hears.every(isNodeId);
}

function sameIds(a: readonly NodeId[], b: readonly NodeId[]): boolean {
  return a.length === b.length && a.every((id, i) => id === b[i]);
}
