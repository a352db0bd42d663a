/**
 * An in-process network for membership tests (memberlist's MockNetwork/MockTransport): a hub that
 * connects Membership instances in one process, routes by peer address like the TCP transport
 * dials, and lets a test break the network: partition it, cut one node off, drop or delay chosen
 * messages, pause a node (SIGSTOP/SIGCONT) or kill it.
 *
 * Each node gets its own clock from the hub (transport.clock), built on the hub's base clock (fake
 * timers in tests): pausing a node freezes its timers and holds the messages sent to it, and
 * resuming runs the overdue timers first and then delivers what was held, in the order Node's event
 * loop would (timers phase before the poll phase). Killing a node freezes it for good.
 *
 * Delivery is always asynchronous (a timer, 0 ms by default) so that a handler that sends never
 * re-enters another handler, and each message is a structured clone, as if it had crossed a wire.
 */
import {
  UNKNOWN_NODE_ID, type MembershipMessage, type MembershipTransport, type NodeId,
} from '../types.js';
import { systemClock, type MembershipClock } from './clock.js';

/** Decides, per message, whether the network loses it. */
export type DropRule = (from: NodeId, to: NodeId, message: MembershipMessage) => boolean;
/** Decides, per message, how long the network takes to deliver it. */
export type DelayRule = (from: NodeId, to: NodeId, message: MembershipMessage) => number;

export class MemoryHubCounters {
  sent = 0;
  delivered = 0;
  /** lost to a partition, an isolated node, or a drop rule */
  dropped = 0;
  /** nobody listening at the address, the wrong node there, or the node was killed */
  undeliverable = 0;
}

export class MemoryHub {
  readonly counters = new MemoryHubCounters();
  private readonly byAddress = new Map<string, MemoryTransport>();
  private readonly byId = new Map<NodeId, MemoryTransport>();
  private readonly isolated = new Set<NodeId>();
  private groups: Map<NodeId, number> | null = null;
  private dropRule: DropRule | null = null;
  private delayRule: DelayRule = () => 0;

  constructor(readonly clock: MembershipClock = systemClock) {}

  /**
   * Plugs a node in at `peerAddress`. A node already there, or already using that id, is killed
   * first: this is how a test restarts a node (a fresh Membership on the returned transport).
   */
  connect(id: NodeId, peerAddress: string): MemoryTransport {
    const previous = [this.byId.get(id), this.byAddress.get(peerAddress)];
    for (const node of previous) if (node !== undefined) this.kill(node.self);
    const transport = new MemoryTransport(this, id, peerAddress);
    this.byId.set(id, transport);
    this.byAddress.set(peerAddress, transport);
    return transport;
  }

  /** kill -9: the node's timers never fire again and nothing reaches it or leaves it. */
  kill(id: NodeId): void {
    const node = this.byId.get(id);
    if (node === undefined) return;
    node.killed = true;
    this.byId.delete(id);
    if (this.byAddress.get(node.peerAddress) === node) this.byAddress.delete(node.peerAddress);
  }

  /** kill -STOP: timers freeze and messages to the node wait (as in its socket buffers). */
  pause(id: NodeId): void {
    const node = this.byId.get(id);
    if (node !== undefined) node.paused = true;
  }

  /** kill -CONT: overdue timers run first, then the held messages are delivered in order. */
  resume(id: NodeId): void {
    const node = this.byId.get(id);
    if (node === undefined || !node.paused) return;
    node.paused = false;
    const timers = node.overdueTimers.splice(0);
    for (const callback of timers) if (!node.killed && !node.paused) callback();
    const held = node.heldMessages.splice(0);
    for (const [from, message] of held) this.deliver(node, from, message);
  }

  /** Cuts a node off the network: everything to and from it is lost until restore(). */
  isolate(id: NodeId): void {
    this.isolated.add(id);
  }

  restore(id: NodeId): void {
    this.isolated.delete(id);
  }

  /** Nodes in different groups cannot reach each other; nodes in no group reach everyone. */
  partition(...groups: NodeId[][]): void {
    this.groups = new Map();
    groups.forEach((group, index) => group.forEach((id) => this.groups!.set(id, index)));
  }

  heal(): void {
    this.groups = null;
  }

  /** Loses every message the rule picks (null: none). Covers one-way cuts and lossy links. */
  dropIf(rule: DropRule | null): void {
    this.dropRule = rule;
  }

  /** Delays messages: a fixed latency, or one per message. */
  setDelay(delay: number | DelayRule): void {
    this.delayRule = typeof delay === 'number' ? () => delay : delay;
  }

  /** @internal MemoryTransport.send */
  route(sender: MemoryTransport, to: NodeId, peerAddress: string, message: MembershipMessage): void {
    this.counters.sent++;
    if (sender.killed) {
      this.counters.undeliverable++;
      return;
    }
    const target = this.byAddress.get(peerAddress);
    // Like the TCP transport: nobody at the address is a refused connection, and another node at
    // the address than the one named is a failed handshake (only a seed's id is not known).
    if (target === undefined || (to !== UNKNOWN_NODE_ID && target.self !== to)) {
      this.counters.undeliverable++;
      return;
    }
    if (!this.reachable(sender.self, target.self) || (this.dropRule?.(sender.self, target.self, message) ?? false)) {
      this.counters.dropped++;
      return;
    }
    const copy = structuredClone(message);
    const delay = this.delayRule(sender.self, target.self, message);
    this.clock.setTimeout(() => this.deliver(target, sender.self, copy), delay);
  }

  private reachable(from: NodeId, to: NodeId): boolean {
    if (this.isolated.has(from) || this.isolated.has(to)) return false;
    if (this.groups === null) return true;
    const a = this.groups.get(from);
    const b = this.groups.get(to);
    return a === undefined || b === undefined || a === b;
  }

  private deliver(target: MemoryTransport, from: NodeId, message: MembershipMessage): void {
    if (target.killed) {
      this.counters.undeliverable++;
      return;
    }
    if (target.paused) {
      target.heldMessages.push([from, message]);
      return;
    }
    this.counters.delivered++;
    target.handler?.(from, message);
  }
}

/** A timer on a node's clock: cancelling it also covers a callback held while the node was paused. */
interface NodeTimer {
  cancelled: boolean;
  handle: unknown;
}

export class MemoryTransport implements MembershipTransport {
  /** @internal */ killed = false;
  /** @internal */ paused = false;
  /** @internal */ handler: ((from: NodeId, message: MembershipMessage) => void) | null = null;
  /** @internal */ readonly overdueTimers: Array<() => void> = [];
  /** @internal */ readonly heldMessages: Array<[NodeId, MembershipMessage]> = [];
  /** This node's clock: hand it to Membership so pause() and kill() freeze its timers. */
  readonly clock: MembershipClock;

  constructor(private readonly hub: MemoryHub, readonly self: NodeId, readonly peerAddress: string) {
    const base = hub.clock;
    this.clock = {
      now: () => base.now(),
      setTimeout: (callback, ms) => {
        const timer: NodeTimer = { cancelled: false, handle: null };
        const run = (): void => {
          if (!timer.cancelled && !this.killed) callback();
        };
        timer.handle = base.setTimeout(() => {
          if (this.paused) this.overdueTimers.push(run);
          else run();
        }, ms);
        return timer;
      },
      clearTimeout: (handle) => {
        const timer = handle as NodeTimer;
        timer.cancelled = true;
        base.clearTimeout(timer.handle);
      },
    };
  }

  send(to: NodeId, peerAddress: string, message: MembershipMessage): void {
    this.hub.route(this, to, peerAddress, message);
  }

  onMessage(handler: (from: NodeId, message: MembershipMessage) => void): void {
    this.handler = handler;
  }
}
