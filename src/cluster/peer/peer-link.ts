/**
 * A persistent, pipelined link to one peer address (the dialing side). It connects (over TLS
 * when the node has it, peer-tls.ts), proves the cluster secret, and then carries requests
 * matched to replies by requestId — any number in flight, answered in any order — and one-way
 * messages. When the connection drops it reconnects at once, then with capped exponential
 * backoff and jitter.
 *
 * Failures are fast and typed (PeerError codes, src/errors.ts):
 * - while a connection attempt is under way, requests wait in a bounded queue (ERR_PEER_BUSY when
 *   full); while the link waits out a backoff they fail at once (ERR_PEER_UNAVAILABLE), as do the
 *   queued ones when an attempt fails: none of these were sent;
 * - requests in flight when the link drops fail at once (ERR_PEER_DISCONNECTED), and each request
 *   has its own timeout (ERR_PEER_TIMEOUT), swept by one timer per link (deadline-sweep.ts): for
 *   these, the peer may or may not have acted;
 * - when the socket is above its high water mark, frames wait in the same bounded queue until it
 *   drains, so a slow peer costs bounded memory.
 * One-way sends never throw: a dropped send is counted (sendsDropped) and reported by `false`.
 */
import { EventEmitter } from 'node:events';
import net from 'node:net';
import type { Logger } from '../../log.js';
import type { NodeId } from '../types.js';
import { type Endpoint, matchEndpoint } from '../../address.js';
import { ConfigError, PeerError } from '../../errors.js';
import { DeadlineSweep } from './deadline-sweep.js';
import { DEFAULT_MAX_FRAME_SIZE, FRAME_HEADER_SIZE, type Frame } from './frame.js';
import { HandshakeRole, Refusal, type PeerIdentity } from './handshake.js';
import { Opcode, RemoteErrorCode, opcodeName } from './opcodes.js';
import { decodeError } from './payload.js';
import { PeerConnection, type CloseInfo } from './peer-connection.js';
import { PeerCounters } from './peer-counters.js';
import type { PeerTls } from './peer-tls.js';

export interface PeerLinkOptions {
  /** "host:port" the peer announces (its --peer-advertise, else its --peer-listen) */
  address: string;
  /** this node */
  nodeId: NodeId;
  secret: Buffer | string;
  log: Logger;
  counters?: PeerCounters;
  /** the largest frame this node accepts (replies included); default DEFAULT_MAX_FRAME_SIZE */
  maxFrameSize?: number;
  /** connect + handshake; default 2000 */
  handshakeTimeoutMs?: number;
  /** default for request(); default 5000 */
  requestTimeoutMs?: number;
  /** frames waiting for a connection or for the socket to drain; defaults 4096 frames, 16 MiB */
  maxQueuedFrames?: number;
  maxQueuedBytes?: number;
  /** socket bytes beyond which frames wait in the queue; default 4 MiB */
  writeHighWater?: number;
  /** backoff between attempts: base * 2^n, capped, with jitter; defaults 50 ms and 2000 ms */
  reconnectBaseMs?: number;
  reconnectMaxMs?: number;
  /** after a refused handshake (wrong secret or version, a failed TLS handshake); default 5000 ms */
  refusedBackoffMs?: number;
  /**
   * A drop of an established link is logged at warn unless the peer announced its leave
   * (peerLeft()): the leave message and the drop travel on different connections, so the warning
   * waits this long for a leave that may arrive just after the drop. Default 0: warned at once.
   */
  leaveGraceMs?: number;
  /** in [0, 1); injected in tests */
  random?: () => number;
  /** TLS on the link (mutual); null or absent: plain TCP */
  tls?: PeerTls | null;
}

export interface PeerReply {
  opcode: Opcode | number;
  payload: Buffer;
}

export interface PeerLinkEvents {
  /** authenticated; `peer.nodeId` is the node that proved the secret */
  up: [peer: PeerIdentity];
  /** was up, and is not anymore */
  down: [reason: string];
  /** a handshake failed (either side refused); the link keeps retrying after refusedBackoffMs */
  refused: [reason: Refusal, detail: string];
}

export enum LinkState {
  Idle = 'idle',
  Connecting = 'connecting',
  Up = 'up',
  Backoff = 'backoff',
  Closed = 'closed',
}

/**
 * Where the outcome of a request goes (requestWith): exactly one of the two is called, `reply`
 * from the dispatch of the received frame (its payload a view into the received bytes, valid
 * kept as long as it is referenced), `fail` with the request's PeerError. Neither may throw: they
 * run inside the link's frame dispatch.
 */
export interface ReplyHandler {
  reply(opcode: number, payload: Buffer): void;
  fail(error: PeerError): void;
}

interface Pending {
  handler: ReplyHandler;
  /** when it times out (Date.now() ms) */
  deadline: number;
  timeoutMs: number;
  opcode: number;
}

interface Queued {
  opcode: number;
  requestId: number;
  payload: Buffer;
}

const MAX_REQUEST_ID = 0xffffffff;
/**
 * A link that drops after being up this long reconnects at once; one that drops sooner goes on
 * backing off, so a peer that accepts and then drops us cannot cause a tight reconnect loop.
 */
const STABLE_UP_MS = 1000;

export class PeerLink extends EventEmitter<PeerLinkEvents> {
  readonly address: string;
  private readonly endpoint: Endpoint;
  readonly counters: PeerCounters;
  private linkState = LinkState.Idle;
  private connection: PeerConnection | null = null;
  private identity: PeerIdentity | null = null;
  private readonly pending = new Map<number, Pending>();
  private readonly deadlines = new DeadlineSweep((now) => this.expireRequests(now));
  /** frames not yet handed to a socket (connecting, or socket above high water) */
  private queue: Queued[] = [];
  private queuedBytes = 0;
  private nextRequestId = 1;
  private attempts = 0;
  private upSince = 0;
  private backoffTimer: NodeJS.Timeout | null = null;
  /** why the last connection attempt failed or the link last dropped; null while up, or never tried */
  private lastFailure: CloseInfo | null = null;
  /** the peer announced that it leaves the cluster (peerLeft()), and has not joined again since (peerReturned()) */
  private left = false;
  /** a drop's warning, held for leaveGraceMs in case the peer's leave follows */
  private dropWarning: NodeJS.Timeout | null = null;
  /** the node id of the peer the link was last up to, for the log lines about its drop */
  private lastPeerNodeId: NodeId | null = null;
  private readonly secret: Buffer;
  private readonly log: Logger;
  private readonly settings: Required<Omit<PeerLinkOptions, 'counters' | 'secret' | 'log' | 'address' | 'nodeId' | 'tls'>>;
  private readonly leaveGraceMs: number;

  constructor(private readonly options: PeerLinkOptions) {
    super();
    this.address = options.address;
    this.endpoint = dialable(options.address);
    this.counters = options.counters ?? new PeerCounters();
    this.secret = typeof options.secret === 'string' ? Buffer.from(options.secret, 'utf8') : options.secret;
    if (this.secret.length === 0) throw new RangeError('the cluster secret is empty');
    this.log = options.log.child({ peer: options.address });
    this.settings = {
      maxFrameSize: options.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE,
      handshakeTimeoutMs: options.handshakeTimeoutMs ?? 2000,
      requestTimeoutMs: options.requestTimeoutMs ?? 5000,
      maxQueuedFrames: options.maxQueuedFrames ?? 4096,
      maxQueuedBytes: options.maxQueuedBytes ?? 16 * 1024 * 1024,
      writeHighWater: options.writeHighWater ?? 4 * 1024 * 1024,
      reconnectBaseMs: options.reconnectBaseMs ?? 50,
      reconnectMaxMs: options.reconnectMaxMs ?? 2000,
      refusedBackoffMs: options.refusedBackoffMs ?? 5000,
      random: options.random ?? Math.random,
      leaveGraceMs: options.leaveGraceMs ?? 0,
    };
    this.leaveGraceMs = this.settings.leaveGraceMs;
  }

  get state(): LinkState {
    return this.linkState;
  }

  get isUp(): boolean {
    return this.linkState === LinkState.Up;
  }

  /** The authenticated peer while up (null otherwise). */
  get peer(): PeerIdentity | null {
    return this.identity;
  }

  get inFlight(): number {
    return this.pending.size;
  }

  /**
   * Why this link cannot reach its peer, in words that start with the address ("127.0.0.1:7001
   * refused our cluster secret", "127.0.0.1:7002: connection refused"), from its last failed
   * attempt or drop; null while up, and before the first attempt ends.
   */
  get unreachableBecause(): string | null {
    if (this.linkState === LinkState.Up || this.lastFailure === null) return null;
    return describeFailure(this.address, this.lastFailure);
  }

  /**
   * The peer announced that it leaves the cluster: the drop of its link that comes with the leave
   * (before or after it) is expected, and logged at info rather than warned about.
   */
  peerLeft(): void {
    this.left = true;
    if (this.dropWarning === null) return;
    clearTimeout(this.dropWarning);
    this.dropWarning = null;
    this.log.info({ peerNodeId: this.lastPeerNodeId }, 'peer link closed after the peer left the cluster');
  }


  /** The peer is a member again after its leave (a restart, an undrain): a later drop is news again. */
  peerReturned(): void {
    this.left = false;
  }

  /** Starts connecting (idempotent). */
  start(): this {
    if (this.linkState === LinkState.Idle) this.connect();
    return this;
  }

  /** A request; resolves with the reply frame, rejects with a PeerError (see the header). */
  request(opcode: Opcode, payload: Buffer, options: { timeoutMs?: number } = {}): Promise<PeerReply> {
    return new Promise<PeerReply>((resolve, reject) => {
      this.requestWith(opcode, payload, options.timeoutMs, {
        // The payload is only lent to reply(): a view that stays valid as long as it is kept.
        reply: (replyOpcode, replyPayload) => resolve({ opcode: replyOpcode, payload: replyPayload }),
        fail: reject,
      });
    });
  }

  /**
   * A request whose outcome goes to `handler` (once, as for request(); a refusal of a new
   * request is given to handler.fail before this returns) instead of a promise of its own: the
   * forward and copy paths decode the reply in the link's dispatch and settle their caller's
   * promise there, rather than through another promise and its microtask.
   */
  requestWith(opcode: Opcode, payload: Buffer, timeoutMs: number | undefined, handler: ReplyHandler): void {
    this.counters.requests++;
    const refusal = this.refuseNew(payload);
    if (refusal !== null) {
      this.counters.requestsRejected++;
      handler.fail(refusal);
      return;
    }
    const requestId = this.takeRequestId();
    const ms = timeoutMs ?? this.settings.requestTimeoutMs;
    const deadline = Date.now() + ms;
    this.pending.set(requestId, { handler, deadline, timeoutMs: ms, opcode });
    this.deadlines.watch(deadline);
    this.enqueueOrWrite(opcode, requestId, payload);
  }

  /** A one-way message (requestId 0); false if it was dropped (counted, never thrown). */
  send(opcode: Opcode, payload: Buffer): boolean {
    if (this.refuseNew(payload) !== null) {
      this.counters.sendsDropped++;
      return false;
    }
    this.enqueueOrWrite(opcode, 0, payload);
    return true;
  }

  /** Stops for good: fails what is queued and in flight (ERR_PEER_CLOSED), no reconnect. */
  close(): void {
    if (this.linkState === LinkState.Closed) return;
    const wasUp = this.linkState === LinkState.Up;
    this.linkState = LinkState.Closed;
    if (this.backoffTimer !== null) clearTimeout(this.backoffTimer);
    this.backoffTimer = null;
    if (this.dropWarning !== null) clearTimeout(this.dropWarning);
    this.dropWarning = null;
    this.failQueued(() => new PeerError('ERR_PEER_CLOSED', `link to ${this.address} closed`));
    this.failPending('ERR_PEER_CLOSED', `link to ${this.address} closed`);
    this.deadlines.stop();
    const connection = this.connection;
    this.connection = null;
    connection?.close('link closed');
    if (wasUp) {
      this.counters.linksUp--;
      this.log.info('peer link closed');
      this.emit('down', 'link closed');
    }
  }

  /** Why a new frame cannot be taken now, or null. */
  private refuseNew(payload: Buffer): PeerError | null {
    switch (this.linkState) {
      case LinkState.Closed:
        return new PeerError('ERR_PEER_CLOSED', `link to ${this.address} closed`);
      case LinkState.Idle:
      case LinkState.Backoff:
        return new PeerError('ERR_PEER_UNAVAILABLE', `peer ${this.address} is not connected`);
      case LinkState.Connecting:
      case LinkState.Up:
        break;
    }
    const size = FRAME_HEADER_SIZE + payload.length;
    const limit = this.identity?.maxFrameSize ?? this.settings.maxFrameSize;
    if (size > limit) return new PeerError('ERR_PEER_TOO_LARGE', `frame of ${size} bytes exceeds the peer's limit of ${limit}`);
    const mustQueue = this.linkState === LinkState.Connecting || this.queue.length > 0 || this.connection!.isBackedUp(this.settings.writeHighWater);
    if (mustQueue && (this.queue.length >= this.settings.maxQueuedFrames || this.queuedBytes + size > this.settings.maxQueuedBytes)) {
      return new PeerError('ERR_PEER_BUSY', `queue to ${this.address} is full (${this.queue.length} frames, ${this.queuedBytes} bytes)`);
    }
    return null;
  }

  private enqueueOrWrite(opcode: number, requestId: number, payload: Buffer): void {
    const connection = this.connection;
    if (this.linkState === LinkState.Up && this.queue.length === 0 && !connection!.isBackedUp(this.settings.writeHighWater)) {
      connection!.write(opcode, requestId, payload);
      return;
    }
    this.queue.push({ opcode, requestId, payload });
    this.queuedBytes += FRAME_HEADER_SIZE + payload.length;
  }

  /** Hands queued frames to the socket until it is above high water again. */
  private flushQueue(): void {
    const connection = this.connection;
    if (this.linkState !== LinkState.Up || connection === null) return;
    let index = 0;
    while (index < this.queue.length && !connection.isBackedUp(this.settings.writeHighWater)) {
      const frame = this.queue[index++]!;
      this.queuedBytes -= FRAME_HEADER_SIZE + frame.payload.length;
      // A request that timed out while queued is gone from `pending`: never send it.
      if (frame.requestId !== 0 && !this.pending.has(frame.requestId)) continue;
      connection.write(frame.opcode, frame.requestId, frame.payload);
    }
    this.queue = index === this.queue.length ? [] : this.queue.slice(index);
  }

  private takeRequestId(): number {
    // u32, never 0 (one-way); skips an id still in flight after a wrap-around.
    do {
      const id = this.nextRequestId;
      this.nextRequestId = id === MAX_REQUEST_ID ? 1 : id + 1;
      if (!this.pending.has(id)) return id;
    } while (true);
  }

  private connect(): void {
    this.linkState = LinkState.Connecting;
    const { host, port } = this.endpoint;
    const tls = this.options.tls ?? null;
    const socket = tls === null ? net.connect({ host, port }) : tls.connect(host, port);
    this.connection = new PeerConnection(socket, {
      role: HandshakeRole.Dialer,
      nodeId: this.options.nodeId,
      secret: this.secret,
      maxFrameSize: this.settings.maxFrameSize,
      handshakeTimeoutMs: this.settings.handshakeTimeoutMs,
      log: this.log,
      counters: this.counters,
      remote: this.address,
      tls: tls !== null,
    }, {
      onOpen: (peer) => this.onOpen(peer),
      onFrame: (frame) => this.onFrame(frame),
      onDrain: () => this.flushQueue(),
      onClose: (info) => this.onConnectionClose(info),
    });
  }

  private onOpen(peer: PeerIdentity): void {
    this.linkState = LinkState.Up;
    this.identity = peer;
    this.lastPeerNodeId = peer.nodeId;
    this.lastFailure = null;
    // Up again is not back: a peer that announced its leave still runs until it has closed its
    // links, and a link may come up in that moment. Its drop then is still the leave's; only the
    // member's return to the cluster (peerReturned) makes a later drop news again.
    if (this.dropWarning !== null) clearTimeout(this.dropWarning);
    this.dropWarning = null;
    this.upSince = Date.now();
    this.counters.linksUp++;
    this.log.info({ peerNodeId: peer.nodeId }, 'peer link up');
    // Frames queued while connecting may exceed the limit the peer has just announced.
    this.queue = this.queue.filter((frame) => {
      if (FRAME_HEADER_SIZE + frame.payload.length <= peer.maxFrameSize) return true;
      this.queuedBytes -= FRAME_HEADER_SIZE + frame.payload.length;
      if (frame.requestId === 0) this.counters.sendsDropped++;
      else this.settle(frame.requestId, new PeerError('ERR_PEER_TOO_LARGE', `frame of ${FRAME_HEADER_SIZE + frame.payload.length} bytes exceeds the peer's limit of ${peer.maxFrameSize}`));
      return false;
    });
    this.emit('up', peer);
    this.flushQueue();
  }

  private onFrame(frame: Frame): void {
    if (frame.requestId === 0) {
      // The acceptor answers; it does not start conversations on our link.
      if (frame.opcode === Opcode.Error) this.log.warn({ peerNodeId: this.identity?.nodeId, error: safeError(frame.payload) }, 'peer reported an error');
      else this.protocolError(`unsolicited ${opcodeName(frame.opcode)} frame`);
      return;
    }
    const pending = this.pending.get(frame.requestId);
    if (pending === undefined) {
      this.counters.lateReplies++;
      return;
    }
    this.pending.delete(frame.requestId);
    if (frame.opcode === Opcode.Error) {
      this.counters.remoteErrors++;
      const error = safeError(frame.payload);
      pending.handler.fail(new PeerError('ERR_PEER_REMOTE', `peer ${this.address} answered ${opcodeName(pending.opcode)} with error ${error.code}: ${error.message}`, error.code));
      return;
    }
    pending.handler.reply(frame.opcode, frame.payload);
  }

  private protocolError(detail: string): void {
    this.counters.protocolErrors++;
    this.log.warn({ peerNodeId: this.identity?.nodeId, detail }, 'peer broke the protocol; closing the link');
    this.connection?.close(`protocol error: ${detail}`);
  }

  private onConnectionClose(info: CloseInfo): void {
    if (this.linkState === LinkState.Closed) return;
    this.connection = null;
    this.identity = null;
    this.lastFailure = info;
    // Sent, unanswered: the peer may or may not have acted on these.
    this.failPending('ERR_PEER_DISCONNECTED', `link to ${this.address} dropped (${info.reason})`);
    if (info.wasOpen) {
      this.counters.linksUp--;
      this.counters.linkDrops++;
      this.logDrop(info.reason);
      this.emit('down', info.reason);
      if (this.state === LinkState.Closed) return; // a listener closed the link
      if (Date.now() - this.upSince >= STABLE_UP_MS) {
        // First retry at once: a dropped link to a live peer (its restart, a reset) comes back fast.
        this.attempts = 0;
        this.connect();
        return;
      }
    } else {
      this.counters.connectFailures++;
      if (info.refusal !== undefined) this.emit('refused', info.refusal, info.reason);
      else this.log.debug({ reason: info.reason, attempt: this.attempts }, 'peer connect failed');
      if (this.state === LinkState.Closed) return;
    }
    // Never sent: the caller may try elsewhere at once.
    this.failQueued(() => new PeerError('ERR_PEER_UNAVAILABLE', `peer ${this.address} is not reachable (${info.reason})`));
    this.scheduleReconnect(info.refusal !== undefined ? this.settings.refusedBackoffMs : this.backoffDelay());
  }

  /**
   * A dropped link is a warning, unless its peer said it leaves: then the drop is what a planned
   * leave looks like from here. A leave that may still follow the drop gets leaveGraceMs.
   */
  private logDrop(reason: string): void {
    const fields = { peerNodeId: this.lastPeerNodeId, reason };
    if (this.left) {
      this.log.info(fields, 'peer link closed after the peer left the cluster');
      return;
    }
    if (this.leaveGraceMs === 0) {
      this.log.warn(fields, 'peer link down');
      return;
    }
    if (this.dropWarning !== null) clearTimeout(this.dropWarning);
    this.dropWarning = setTimeout(() => {
      this.dropWarning = null;
      this.log.warn(fields, 'peer link down');
    }, this.leaveGraceMs);
    this.dropWarning.unref();
  }

  private backoffDelay(): number {
    const { reconnectBaseMs, reconnectMaxMs, random } = this.settings;
    const ceiling = Math.min(reconnectMaxMs, reconnectBaseMs * 2 ** Math.min(this.attempts, 30));
    this.attempts++;
    // "Equal jitter": at least half the step, so attempts stay spread out but never bunch at 0.
    return Math.round(ceiling / 2 + random() * (ceiling / 2));
  }

  private scheduleReconnect(delayMs: number): void {
    this.linkState = LinkState.Backoff;
    this.backoffTimer = setTimeout(() => {
      this.backoffTimer = null;
      if (this.linkState === LinkState.Backoff) this.connect();
    }, delayMs);
    this.backoffTimer.unref();
  }

  /** The deadline sweep: fails the requests due at `now`; returns the earliest deadline left. */
  private expireRequests(now: number): number {
    let next = Infinity;
    const due: Array<[number, Pending]> = [];
    for (const entry of this.pending) {
      const deadline = entry[1].deadline;
      if (deadline <= now) due.push(entry);
      else if (deadline < next) next = deadline;
    }
    for (const [requestId, pending] of due) {
      this.pending.delete(requestId);
      this.counters.requestTimeouts++;
      pending.handler.fail(new PeerError('ERR_PEER_TIMEOUT', `no reply from ${this.address} to ${opcodeName(pending.opcode)} within ${pending.timeoutMs} ms`));
    }
    return next;
  }

  private settle(requestId: number, error: PeerError): void {
    const pending = this.pending.get(requestId);
    if (pending === undefined) return;
    this.pending.delete(requestId);
    this.counters.requestsRejected++;
    pending.handler.fail(error);
  }

  private failQueued(makeError: () => PeerError): void {
    const queue = this.queue;
    this.queue = [];
    this.queuedBytes = 0;
    for (const frame of queue) {
      if (frame.requestId === 0) this.counters.sendsDropped++;
      else this.settle(frame.requestId, makeError());
    }
  }

  private failPending(code: 'ERR_PEER_DISCONNECTED' | 'ERR_PEER_CLOSED', message: string): void {
    // Queued requests are pending too, but were never sent: failQueued gives them their own error.
    const queuedIds = new Set(this.queue.map((frame) => frame.requestId));
    for (const [requestId, pending] of this.pending) {
      if (queuedIds.has(requestId)) continue;
      this.pending.delete(requestId);
      if (code === 'ERR_PEER_DISCONNECTED') this.counters.requestsDisconnected++;
      pending.handler.fail(new PeerError(code, message));
    }
  }
}

function safeError(payload: Buffer): { code: number; message: string } {
  try {
    return decodeError(payload);
  } catch {
    return { code: 0, message: 'unreadable Error payload' };
  }
}

/** Socket error codes as an operator reads them. */
const SOCKET_ERRORS: Readonly<Record<string, string>> = {
  ECONNREFUSED: 'connection refused (nothing listens there)',
  ECONNRESET: 'connection reset',
  ETIMEDOUT: 'connection timed out',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ENOTFOUND: 'host name not found',
  EAI_AGAIN: 'host name lookup failed',
};

/** Why a link to `address` failed, as one phrase that names the address. */
export function describeFailure(address: string, failure: CloseInfo): string {
  switch (failure.refusal) {
    case undefined:
      return `${address}: ${SOCKET_ERRORS[failure.reason] ?? failure.reason}`;
    case Refusal.RefusedByPeer:
      if (failure.remoteCode === RemoteErrorCode.AuthFailed) return `${address} refused our cluster secret`;
      return `${address} refused our handshake (${failure.detail ?? failure.reason})`;
    case Refusal.BadSecret:
      return `${address} does not prove our cluster secret`;
    case Refusal.Timeout:
      return `${address}: no handshake answer in time (a stopped process, or not a session-cluster peer port)`;
    case Refusal.Tls:
      return `${address}: TLS: ${failure.detail ?? failure.reason}`;
    case Refusal.SelfConnection:
      return `${address} is this node itself`;
    default:
      return `${address}: handshake failed (${failure.refusal}: ${failure.detail ?? failure.reason})`;
  }
}

/** A peer address a link can dial: HOST:PORT with a host and a port from 1 to 65535. */
function dialable(address: string): Endpoint {
  const endpoint = matchEndpoint(address);
  if (endpoint === null || endpoint.port === 0 || address.startsWith(':')) {
    throw new ConfigError(`peer address ${JSON.stringify(address)} is not HOST:PORT (port 1-65535; IPv6 as [ADDR]:PORT)`);
  }
  return endpoint;
}
