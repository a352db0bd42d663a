/**
 * The --peer-listen listener: accepts peers, lets only authenticated ones through (the handshake
 * runs in PeerConnection), and dispatches each frame to the handler registered for its opcode.
 * A handler answers through `reply`, at once or later (replies may go out in any order); a frame
 * whose opcode has no handler is answered with Error(UnknownOpcode), so a newer peer can probe
 * for an opcode this node does not have yet. When a peer stops reading its replies, reading from
 * it pauses until its socket drains. With TLS (peer-tls.ts) a connection first completes a
 * mutual TLS handshake, then the same peer handshake runs inside it; a peer that opens in
 * plaintext is told, in plaintext, that TLS is required (Error(TlsRequired)).
 *
 * Connections that have not authenticated are bounded twice: each gets `handshakeTimeoutMs` from
 * the moment it is accepted, and at most `maxHandshakes` are under way at once. When more are, new
 * connections are still admitted and the oldest ones that have sent nothing are closed to make
 * room (handshake-slots.ts), once the sockets just accepted have been read from: a flood of idle
 * connections then costs a node a bounded number of sockets, and never keeps a real peer, which
 * sends its Hello at once, from linking.
 */
import net from 'node:net';
import { ListenError, PeerError } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { NodeId } from '../types.js';
import { formatEndpoint } from '../../address.js';
import { DEFAULT_MAX_FRAME_SIZE, FRAME_HEADER_SIZE, encodeFrame, type Frame } from './frame.js';
import { ThrottledWarning } from '../../throttled-log.js';
import { HandshakeProgress, HandshakeRole, Refusal, type PeerIdentity } from './handshake.js';
import { HandshakeSlots } from './handshake-slots.js';
import { HANDSHAKE_OPCODES, Opcode, RemoteErrorCode, opcodeName } from './opcodes.js';
import { encodeError } from './payload.js';
import { PeerConnection } from './peer-connection.js';
import { PeerCounters } from './peer-counters.js';
import { ONE_SIDED_TLS_ADVICE, TLS_HANDSHAKE_RECORD, describeTlsFailure, type PeerTls, type TlsFailure } from './peer-tls.js';

const EMPTY = Buffer.alloc(0);
/** After the plaintext TlsRequired answer, this long for it to leave before the socket is destroyed. */
const LINGER_MS = 1000;
/** The warnings a flood of connections repeats (closed to make room, silent timeouts): at most one line per this. */
const FLOOD_WARNING_INTERVAL_MS = 10_000;

/** An accepted connection that has not authenticated yet: what holds one of the handshake slots. */
interface Unauthenticated {
  /** closes it, quietly, to make room for a newer one */
  close(): void;
}

/** Answers the frame being handled; one reply per request, none to a one-way message. */
export type PeerReplyFn = (opcode: Opcode, payload?: Buffer) => void;

/**
 * Handles one authenticated frame. `frame.payload` is a view into received bytes: copy what is
 * kept. Throwing is a bug (answered with Error(Internal)), except a PeerError('ERR_PEER_PAYLOAD')
 * from a payload reader, answered with Error(BadPayload).
 */
export type PeerHandler = (frame: Frame, reply: PeerReplyFn, peer: PeerIdentity) => void;

export interface PeerServerOptions {
  nodeId: NodeId;
  secret: Buffer | string;
  log: Logger;
  counters?: PeerCounters;
  /** the largest frame accepted from a peer; default DEFAULT_MAX_FRAME_SIZE */
  maxFrameSize?: number;
  /** how long a connection may take, from its accept, to authenticate (TLS included); default 2000 */
  handshakeTimeoutMs?: number;
  /** connections in their handshake at once; past it the oldest silent one makes room; default 64 */
  maxHandshakes?: number;
  /** reply bytes queued on a socket beyond which reading from that peer pauses; default 4 MiB */
  writeHighWater?: number;
  /** TLS on every accepted connection (mutual); null or absent: plain TCP */
  tls?: PeerTls | null;
}

export class PeerServer {
  readonly counters: PeerCounters;
  private readonly handlers = new Map<number, PeerHandler>();
  private readonly connections = new Set<PeerConnection>();
  /** accepted sockets still in their TLS handshake */
  private readonly tlsHandshakes = new Set<net.Socket>();
  private server: net.Server | null = null;
  private readonly slots: HandshakeSlots<Unauthenticated>;
  /** connections whose handshake succeeded and that are still open */
  private authenticated = 0;
  /** connections closed to make room for newer ones */
  private readonly evictions: ThrottledWarning;
  /** connections that sent nothing at all within the handshake timeout */
  private readonly silentTimeouts: ThrottledWarning;
  private trimScheduled = false;
  private readonly secret: Buffer;
  private readonly maxFrameSize: number;
  private readonly handshakeTimeoutMs: number;
  private readonly maxHandshakes: number;
  private readonly writeHighWater: number;

  constructor(private readonly options: PeerServerOptions) {
    this.counters = options.counters ?? new PeerCounters();
    this.secret = typeof options.secret === 'string' ? Buffer.from(options.secret, 'utf8') : options.secret;
    if (this.secret.length === 0) throw new RangeError('the cluster secret is empty');
    this.maxFrameSize = options.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE;
    this.handshakeTimeoutMs = options.handshakeTimeoutMs ?? 2000;
    this.maxHandshakes = options.maxHandshakes ?? 64;
    this.writeHighWater = options.writeHighWater ?? 4 * 1024 * 1024;
    this.slots = new HandshakeSlots(this.maxHandshakes);
    // One line per connection would let a flood of them flood the log too.
    this.evictions = new ThrottledWarning(options.log,
      'peer connections closed before authenticating, to make room for new ones: too many handshakes under way (a flood on the peer port?)',
      () => ({ maxHandshakes: this.maxHandshakes, totalClosed: this.counters.connectionsRejected }), FLOOD_WARNING_INTERVAL_MS);
    this.silentTimeouts = new ThrottledWarning(options.log,
      'peer connections closed: nothing received within the handshake timeout',
      () => ({ handshakeTimeoutMs: this.handshakeTimeoutMs }), FLOOD_WARNING_INTERVAL_MS);
  }

  /** Registers the handler of one opcode (one per opcode; handshake opcodes are not handled). */
  handle(opcode: Opcode, handler: PeerHandler): this {
    if (HANDSHAKE_OPCODES.has(opcode) || opcode === Opcode.Error) throw new Error(`${opcodeName(opcode)} frames are the peer layer's own`);
    if (this.handlers.has(opcode)) throw new Error(`a handler for ${opcodeName(opcode)} is already registered`);
    this.handlers.set(opcode, handler);
    return this;
  }

  /** Authenticated connections open now. */
  get openConnections(): number {
    return this.authenticated;
  }

  /** Connections in their handshake now (plain or TLS), each holding a slot. */
  get handshakesUnderWay(): number {
    return this.slots.size;
  }

  async listen(host: string, port: number): Promise<net.AddressInfo> {
    const server = net.createServer((socket) => this.accept(socket));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (error: NodeJS.ErrnoException) => {
        reject(ListenError.from(`for peers on ${formatEndpoint(host, port)}`, error));
      });
      server.listen({ host, port }, () => resolve());
    });
    const address = server.address() as net.AddressInfo;
    // The daemon logs the bound peer address with its other listeners ("listening", transport peer).
    this.options.log.debug({ transport: 'peer', host: address.address, port: address.port }, 'listening for peers');
    return address;
  }

  /** Stops accepting and drops every peer connection (their links fail in-flight requests at once). */
  async close(): Promise<void> {
    const server = this.server;
    this.server = null;
    for (const connection of [...this.connections]) connection.close('peer server closing');
    for (const raw of [...this.tlsHandshakes]) raw.destroy();
    if (server !== null) await new Promise<void>((resolve) => server.close(() => resolve()));
    this.evictions.flush();
    this.silentTimeouts.flush();
  }

  private accept(socket: net.Socket): void {
    const remote = formatEndpoint(socket.remoteAddress ?? '?', socket.remotePort ?? 0);
    this.counters.connectionsAccepted++;
    const pending: Unauthenticated = { close: () => socket.destroy() };
    // Admitting the newcomer and closing the oldest silent connection, rather than refusing the
    // newcomer: a refusal would keep out every real peer for as long as a flood fills the slots.
    const evicted = this.slots.admit(pending);
    if (evicted !== null) this.makeRoom([evicted]);
    if (this.slots.size > this.maxHandshakes) this.scheduleTrim();
    const tls = this.options.tls ?? null;
    if (tls === null) this.startHandshake(socket, remote, this.handshakeTimeoutMs, false, pending);
    else this.acceptTls(tls, socket, remote, pending);
  }

  /**
   * Brings the handshakes under way back to maxHandshakes once the connections accepted in this
   * turn of the event loop have been read from: the poll phase that accepted them comes before
   * this turn's check phase, their first reads before the next turn's (Node's event loop), so the
   * trim runs in the second check phase from now. A real peer's Hello has been read by then, and
   * it is no longer among the silent ones that make room.
   */
  private scheduleTrim(): void {
    if (this.trimScheduled) return;
    this.trimScheduled = true;
    setImmediate(() => setImmediate(() => {
      this.trimScheduled = false;
      this.makeRoom(this.slots.trim());
    }));
  }

  /** Closes connections that lost their slot to newer ones; counted, logged throttled. */
  private makeRoom(evicted: Unauthenticated[]): void {
    if (evicted.length === 0) return;
    this.counters.connectionsRejected += evicted.length;
    this.evictions.add(evicted.length);
    for (const connection of evicted) connection.close();
  }

  /**
   * The TLS handshake of an accepted connection (holding one of the handshake slots), then the
   * peer handshake inside it, in what is left of the handshake timeout. A first byte that is not
   * a TLS record is a peer with TLS off: it gets an Error(TlsRequired) frame in plaintext, which
   * it can read, and the connection is closed. Once the peer's certificate is verified the
   * connection leaves the slots: only the cluster's CA vouches for such peers.
   */
  private acceptTls(tls: PeerTls, raw: net.Socket, remote: string, pending: Unauthenticated): void {
    const started = Date.now();
    let settled = false;
    /** the first byte has arrived */
    let spoke = false;
    this.tlsHandshakes.add(raw);
    const settle = () => {
      settled = true;
      clearTimeout(timer);
      this.tlsHandshakes.delete(raw);
      this.slots.release(pending);
    };
    pending.close = () => {
      if (settled) return;
      settle();
      raw.destroy();
    };
    /** Logs and counts the failure; `answer` is written before the close. */
    const refuse = (failure: TlsFailure & { timeout?: boolean }, answer?: Buffer) => {
      if (settled) return;
      settle();
      if (this.server === null) {
        raw.destroy(); // closing: not a refusal
        return;
      }
      this.counters.tlsRefused++;
      if (!spoke && failure.timeout === true) this.silentTimeouts.add();
      else this.options.log.warn({ remote, role: HandshakeRole.Acceptor, reason: Refusal.Tls, detail: failure.detail },
        failure.mismatch ? 'peer refused: TLS is on on one side only' : 'peer refused: TLS handshake failed');
      if (answer === undefined) {
        raw.destroy();
        return;
      }
      raw.end(answer);
      raw.resume(); // what the peer still sends is dropped, so its close is seen at once
      setTimeout(() => raw.destroy(), LINGER_MS).unref();
    };
    const timer = setTimeout(() => refuse({ mismatch: false, detail: 'the TLS handshake did not finish in time', timeout: true }), this.handshakeTimeoutMs);
    timer.unref();
    // Errors are reported once, by the TLS server's events or by 'close' below.
    raw.on('error', () => undefined);
    // The TLS server reports a failure as the connection closes; the next turn is late enough.
    raw.once('close', () => setImmediate(() => refuse({ mismatch: false, detail: 'the connection closed during the TLS handshake' })));
    raw.once('readable', () => {
      if (settled) return;
      const first = raw.read() as Buffer | null;
      if (first === null) return; // closed before a byte: 'close' reports it
      raw.unshift(first);
      spoke = true;
      if (first[0] !== TLS_HANDSHAKE_RECORD) {
        refuse(
          { mismatch: true, detail: `the peer spoke plaintext (TLS is off there) and was answered Error(TlsRequired); ${ONE_SIDED_TLS_ADVICE}` },
          encodeFrame(Opcode.Error, 0, encodeError(RemoteErrorCode.TlsRequired, `this node requires TLS on peer links; ${ONE_SIDED_TLS_ADVICE}`)),
        );
        return;
      }
      this.slots.talk(pending);
      const server = tls.serverForOneConnection();
      server.once('secureConnection', (socket: net.Socket) => {
        if (settled) {
          socket.destroy();
          return;
        }
        settle();
        this.startHandshake(socket, remote, Math.max(1, this.handshakeTimeoutMs - (Date.now() - started)), true, null);
      });
      server.once('tlsClientError', (error: Error, socket: { authorizationError?: unknown }) => {
        refuse(describeTlsFailure(error, socket.authorizationError, 'acceptor'));
      });
      server.emit('connection', raw);
    });
  }

  /**
   * The peer handshake on an accepted connection; `pending` is the slot it holds (null: it holds
   * none, having passed TLS already), freed once the peer has proven the secret or the
   * connection closes.
   */
  private startHandshake(socket: net.Socket, remote: string, handshakeTimeoutMs: number, tls: boolean, pending: Unauthenticated | null): void {
    let open = false;
    const connection: PeerConnection = new PeerConnection(socket, {
      role: HandshakeRole.Acceptor,
      nodeId: this.options.nodeId,
      secret: this.secret,
      maxFrameSize: this.maxFrameSize,
      handshakeTimeoutMs,
      log: this.options.log,
      counters: this.counters,
      remote,
      tls,
      onSilentTimeout: () => this.silentTimeouts.add(),
    }, {
      onOpen: (peer) => {
        open = true;
        if (pending !== null) this.slots.release(pending);
        this.authenticated++;
        this.counters.connectionsUp++;
        this.options.log.info({ remote, peerNodeId: peer.nodeId }, 'peer connected');
      },
      onProgress: (progress) => {
        if (pending === null) return;
        if (progress === HandshakeProgress.Hello) this.slots.talk(pending);
        else if (progress === HandshakeProgress.Proven) this.slots.release(pending);
      },
      onFrame: (frame) => this.dispatch(connection, frame, remote),
      onDrain: () => connection.resumeReading(),
      onClose: (info) => {
        this.connections.delete(connection);
        if (!open) {
          if (pending !== null) this.slots.release(pending);
          return;
        }
        this.authenticated--;
        this.counters.connectionsUp--;
        this.options.log.info({ remote, peerNodeId: connection.peer?.nodeId, reason: info.reason }, 'peer disconnected');
      },
    });
    if (pending !== null) pending.close = () => connection.close('closed to make room for newer handshakes');
    this.connections.add(connection);
  }

  private dispatch(connection: PeerConnection, frame: Frame, remote: string): void {
    const peer = connection.peer!;
    const log = this.options.log;
    const counters = this.counters;
    if (HANDSHAKE_OPCODES.has(frame.opcode)) {
      counters.protocolErrors++;
      log.warn({ remote, peerNodeId: peer.nodeId, opcode: opcodeName(frame.opcode) }, 'peer sent a handshake frame after authentication; closing');
      connection.close('handshake frame after authentication');
      return;
    }
    if (frame.opcode === Opcode.Error) {
      log.warn({ remote, peerNodeId: peer.nodeId }, 'peer reported an error');
      return;
    }
    let replied = false;
    const reply: PeerReplyFn = (opcode, payload = EMPTY) => {
      if (replied || frame.requestId === 0) return;
      replied = true;
      if (FRAME_HEADER_SIZE + payload.length > peer.maxFrameSize) {
        counters.handlerErrors++;
        log.error({ remote, peerNodeId: peer.nodeId, opcode: opcodeName(opcode), size: FRAME_HEADER_SIZE + payload.length, limit: peer.maxFrameSize }, 'peer reply above the peer\'s frame limit; answered with an error');
        opcode = Opcode.Error;
        payload = encodeError(RemoteErrorCode.FrameTooLarge, `reply of ${FRAME_HEADER_SIZE + payload.length} bytes exceeds your limit of ${peer.maxFrameSize}`);
      }
      // After the connection closed the reply has nowhere to go; the requester has failed it already.
      if (!connection.write(opcode, frame.requestId, payload)) return;
      if (connection.isBackedUp(this.writeHighWater)) connection.pauseReading();
    };
    const handler = this.handlers.get(frame.opcode);
    if (handler === undefined) {
      counters.unknownOpcodes++;
      reply(Opcode.Error, encodeError(RemoteErrorCode.UnknownOpcode, `no handler for opcode ${frame.opcode} (${opcodeName(frame.opcode)})`));
      return;
    }
    try {
      handler(frame, reply, peer);
    } catch (error) {
      if (error instanceof PeerError && error.code === 'ERR_PEER_PAYLOAD') {
        counters.protocolErrors++;
        log.warn({ remote, peerNodeId: peer.nodeId, opcode: opcodeName(frame.opcode), err: error.message }, 'peer sent a malformed payload');
        reply(Opcode.Error, encodeError(RemoteErrorCode.BadPayload, error.message));
        return;
      }
      counters.handlerErrors++;
      log.error({ remote, peerNodeId: peer.nodeId, opcode: opcodeName(frame.opcode), err: error }, 'peer handler failed');
      reply(Opcode.Error, encodeError(RemoteErrorCode.Internal, error instanceof Error ? error.message : String(error)));
    }
  }
}
