/**
 * One peer TCP connection, either role: frames the bytes, runs the handshake (no other frame
 * gets through before it succeeds), and batches writes: the frames written during one turn of
 * the event loop (every client read of a poll phase, every reply a read of the link's input
 * produced) are copied into one buffer, which leaves in one socket write in the check phase of
 * that turn. A write per frame would cost a system call and, on the other node, a read and a
 * wakeup per request. Used by PeerLink (dialer) and PeerServer (acceptor), which own what the
 * frames mean. Refusals are logged (warn, with the remote address and the claimed node id) and
 * counted here, and so are the TLS failures a dialer sees under the handshake (peer-tls.ts).
 */
import type { Socket } from 'node:net';
import type { Logger } from '../../log.js';
import type { NodeId } from '../types.js';
import { FRAME_HEADER_SIZE, FrameDecoder, FrameStatus, HANDSHAKE_MAX_FRAME_SIZE, writeFrameHeader, type Frame } from './frame.js';
import { Handshake, HandshakeProgress, HandshakeRole, Refusal, type HandshakeStep, type OutgoingFrame, type PeerIdentity } from './handshake.js';
import { Opcode, RemoteErrorCode } from './opcodes.js';
import { encodeError } from './payload.js';
import type { PeerCounters } from './peer-counters.js';
import { ONE_SIDED_TLS_ADVICE, TLS_HANDSHAKE_RECORD, describeTlsFailure, type TlsFailure } from './peer-tls.js';

/** Payloads at least this long are written beside their header instead of copied into one buffer. */
const LARGE_PAYLOAD = 16 * 1024;
/** After a refusal the Error frame gets this long to leave before the socket is destroyed. */
const LINGER_MS = 1000;
const KEEPALIVE_MS = 10_000;

export interface PeerConnectionOptions {
  role: HandshakeRole;
  nodeId: NodeId;
  secret: Buffer;
  /** the largest frame this node accepts once authenticated */
  maxFrameSize: number;
  /** from the connection's creation (so, for a dialer, including the TCP connect) */
  handshakeTimeoutMs: number;
  log: Logger;
  counters: PeerCounters;
  /** "host:port" of the other end, for logs */
  remote: string;
  /**
   * The socket is TLS: a dialer's is still handshaking (tls.connect), an acceptor's is verified
   * already (PeerServer). Without it the socket is plain TCP.
   */
  tls?: boolean;
  /** injected in tests */
  nonce?: Buffer;
  /**
   * Called instead of logging when the handshake times out before the other side sent a single
   * byte (counted all the same): a listener flooded with idle connections logs those throttled.
   */
  onSilentTimeout?: () => void;
}

/** The frames written in one turn, and their size with headers. */
interface OutgoingBatch {
  frames: Array<{ opcode: number; requestId: number; payload: Buffer }>;
  bytes: number;
}

export interface CloseInfo {
  /** whether the connection had been authenticated */
  wasOpen: boolean;
  reason: string;
  /** set when the handshake was refused, by either side */
  refusal?: Refusal;
  /** with a refusal: what was refused, in words */
  detail?: string;
  /** with Refusal.RefusedByPeer: the code of the other side's Error frame (RemoteErrorCode) */
  remoteCode?: number;
}

export interface PeerConnectionHooks {
  onOpen(peer: PeerIdentity): void;
  /** the other side got further in the handshake (a Hello, a verified proof); not yet open */
  onProgress?(progress: HandshakeProgress): void;
  /** an authenticated frame; its payload is a view into the received bytes */
  onFrame(frame: Frame): void;
  /** the socket took what was queued (see isBackedUp) */
  onDrain(): void;
  /** exactly once, as soon as the connection is known to be over */
  onClose(info: CloseInfo): void;
}

export class PeerConnection {
  private readonly decoder = new FrameDecoder(HANDSHAKE_MAX_FRAME_SIZE);
  private readonly handshake: Handshake;
  private handshakeTimer: NodeJS.Timeout | null;
  private identity: PeerIdentity | null = null;
  private closed = false;
  private socketError: string | null = null;
  /** frames written this turn, not yet handed to the socket (see flushBatch) */
  private batch: OutgoingBatch = { frames: [], bytes: 0 };
  private flushScheduled = false;
  private readPaused = false;
  private received = false;
  private progress = HandshakeProgress.None;
  /** a TLS dialer, from its TCP connect until its peer handshake ends */
  private tlsDialing: { tcpConnected: boolean; verified: boolean } | null = null;

  constructor(private readonly socket: Socket, private readonly options: PeerConnectionOptions, private readonly hooks: PeerConnectionHooks) {
    this.handshake = new Handshake(options.role, { nodeId: options.nodeId, secret: options.secret, maxFrameSize: options.maxFrameSize, ...(options.nonce ? { nonce: options.nonce } : {}) });
    socket.setNoDelay(true);
    socket.setKeepAlive(true, KEEPALIVE_MS);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => { if (this.open) this.hooks.onDrain(); });
    socket.on('error', (error: NodeJS.ErrnoException) => this.onSocketError(error));
    socket.on('close', () => this.onSocketClose());
    this.handshakeTimer = setTimeout(() => this.applyStep(this.handshake.timeout()), options.handshakeTimeoutMs);
    this.handshakeTimer.unref();
    if (options.tls === true && options.role === HandshakeRole.Dialer) {
      // The Hello waits until the peer's certificate has been verified: nothing, not even this
      // node's id, goes to a peer the CA does not vouch for.
      const dialing = { tcpConnected: false, verified: false };
      this.tlsDialing = dialing;
      socket.once('connect', () => { dialing.tcpConnected = true; });
      socket.once('secureConnect', () => {
        dialing.verified = true;
        this.writeFrames([this.handshake.hello()]);
      });
    } else {
      // Written before the socket has connected, a dialer's Hello simply waits in the socket.
      this.writeFrames([this.handshake.hello()]);
    }
  }

  get open(): boolean {
    return this.identity !== null && !this.closed;
  }

  /** The authenticated peer, once open. */
  get peer(): PeerIdentity | null {
    return this.identity;
  }

  /**
   * Whether the socket holds at least `highWater` unsent bytes. Never below the socket's own high
   * water mark: only above it does the socket promise a 'drain' event (onDrain) to wait for.
   */
  isBackedUp(highWater: number): boolean {
    // The frames of this turn's batch are as good as in the socket: they leave before anything else.
    return this.socket.writableLength + this.batch.bytes >= Math.max(highWater, this.socket.writableHighWaterMark);
  }

  /**
   * Queues one frame for the end of this turn; false if the connection is closed. `payload` must
   * not change until then (it is copied into the turn's buffer, or written as it is when large).
   */
  write(opcode: number, requestId: number, payload: Buffer): boolean {
    if (this.closed) return false;
    this.batch.frames.push({ opcode, requestId, payload });
    this.batch.bytes += FRAME_HEADER_SIZE + payload.length;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flushBatch);
    }
    this.options.counters.framesSent++;
    this.options.counters.bytesSent += FRAME_HEADER_SIZE + payload.length;
    return true;
  }

  /** Stops reading (and dispatching already-read frames) until resumeReading. */
  pauseReading(): void {
    if (this.readPaused || this.closed) return;
    this.readPaused = true;
    this.socket.pause();
  }

  resumeReading(): void {
    if (!this.readPaused || this.closed) return;
    this.readPaused = false;
    this.socket.resume();
    this.processInput();
  }

  /** Drops the connection now; onClose follows at once. */
  close(reason: string): void {
    if (this.closed) return;
    this.socket.destroy();
    this.finish({ wasOpen: this.identity !== null, reason });
  }

  /**
   * Hands the turn's frames to the socket: small ones copied into one buffer, a large payload
   * (LARGE_PAYLOAD and up) written beside its header rather than copied. One write in the common
   * case; a corked writev when a large payload is among them.
   */
  private readonly flushBatch = (): void => {
    this.flushScheduled = false;
    const { frames, bytes } = this.batch;
    if (frames.length === 0) return;
    this.batch = { frames: [], bytes: 0 };
    if (this.closed || this.socket.destroyed) return;
    const chunks: Buffer[] = [];
    let largeBytes = 0;
    for (const frame of frames) if (frame.payload.length >= LARGE_PAYLOAD) largeBytes += frame.payload.length;
    let joined = Buffer.allocUnsafe(bytes - largeBytes);
    let offset = 0;
    for (const frame of frames) {
      const { payload } = frame;
      writeFrameHeader(joined, offset, frame.opcode, frame.requestId, payload.length);
      offset += FRAME_HEADER_SIZE;
      if (payload.length < LARGE_PAYLOAD) {
        offset += payload.copy(joined, offset);
        continue;
      }
      chunks.push(joined.subarray(0, offset), payload);
      joined = joined.subarray(offset);
      offset = 0;
    }
    if (offset > 0) chunks.push(joined.subarray(0, offset));
    if (chunks.length === 1) {
      this.socket.write(chunks[0]!);
      return;
    }
    this.socket.cork();
    for (const chunk of chunks) this.socket.write(chunk);
    this.socket.uncork();
  };

  private onSocketError(error: NodeJS.ErrnoException): void {
    this.socketError ??= error.code ?? error.message;
    const tlsFailure = this.tlsDialerFailure(error);
    if (tlsFailure !== null) this.tlsFailed(tlsFailure);
  }

  private onSocketClose(): void {
    const tlsFailure = this.tlsDialerFailure(null);
    if (tlsFailure !== null) this.tlsFailed(tlsFailure);
    else this.finish({ wasOpen: this.identity !== null, reason: this.socketError ?? 'connection closed' });
  }

  /**
   * Why a TLS dialer's connection failed, if it failed in TLS: after the TCP connect and before
   * anything from the peer arrived inside TLS. Either the TLS handshake failed, or the peer
   * dropped the connection right after it: with TLS 1.3 that is how a client learns that its own
   * certificate was not trusted. Null for any other failure.
   */
  private tlsDialerFailure(error: Error | null): TlsFailure | null {
    const dialing = this.tlsDialing;
    if (dialing === null || this.closed || this.identity !== null || !dialing.tcpConnected || this.received) return null;
    if (dialing.verified) {
      return { mismatch: false, detail: 'the peer closed the TLS connection before its Hello: it likely does not trust this node\'s certificate (it must chain to the peer\'s --peer-tls-ca)' };
    }
    return describeTlsFailure(error, (this.socket as Socket & { authorizationError?: unknown }).authorizationError, 'dialer');
  }

  private tlsFailed(failure: TlsFailure): void {
    const { counters, log, remote, role } = this.options;
    counters.tlsRefused++;
    log.warn({ remote, role, reason: Refusal.Tls, detail: failure.detail }, failure.mismatch ? 'peer refused: TLS is on on one side only' : 'peer refused: TLS handshake failed');
    this.socket.destroy();
    this.finish({ wasOpen: false, reason: `TLS: ${failure.detail}`, refusal: Refusal.Tls, detail: failure.detail });
  }

  private onData(chunk: Buffer): void {
    if (this.closed) return;
    if (!this.received) {
      this.received = true;
      // A plain connection whose peer opens with a TLS record: that peer has TLS on, this node off.
      if (this.options.tls !== true && chunk[0] === TLS_HANDSHAKE_RECORD) {
        this.tlsFailed({ mismatch: true, detail: `the peer speaks TLS and this node does not; ${ONE_SIDED_TLS_ADVICE}` });
        return;
      }
    }
    this.options.counters.bytesReceived += chunk.length;
    this.decoder.push(chunk);
    this.processInput();
  }

  private processInput(): void {
    while (!this.closed && !this.readPaused) {
      const read = this.decoder.next();
      if (read.status === FrameStatus.NeedMore) return;
      if (read.status === FrameStatus.TooLarge) {
        this.onTooLarge(read.size);
        return;
      }
      this.options.counters.framesReceived++;
      if (this.identity !== null) this.hooks.onFrame(read.frame);
      else this.applyStep(this.handshake.receive(read.frame.opcode, read.frame.payload));
    }
  }

  private applyStep(step: HandshakeStep): void {
    if (this.closed) return;
    this.writeFrames(step.send);
    if (step.refused !== undefined) {
      this.refused(step.refused.reason, step.refused.detail, step.refused.remoteCode);
    } else if (step.done !== undefined) {
      clearTimeout(this.handshakeTimer!);
      this.handshakeTimer = null;
      this.decoder.maxFrameSize = this.options.maxFrameSize;
      this.identity = step.done;
      this.hooks.onOpen(step.done);
    } else if (this.handshake.progress !== this.progress) {
      this.progress = this.handshake.progress;
      this.hooks.onProgress?.(this.progress);
    }
  }

  private onTooLarge(size: number): void {
    if (this.identity === null) {
      this.applyStep(this.handshake.garbage(`a ${size}-byte frame before authentication`));
      return;
    }
    const { counters, log, remote, maxFrameSize } = this.options;
    counters.oversizeFrames++;
    log.warn({ remote, peerNodeId: this.identity.nodeId, size, maxFrameSize }, 'peer sent a frame above the maximum frame size; closing the link');
    this.write(Opcode.Error, 0, encodeError(RemoteErrorCode.FrameTooLarge, `frame of ${size} bytes exceeds ${maxFrameSize}`));
    this.endAndClose(`frame of ${size} bytes exceeds the maximum frame size`);
  }

  private refused(reason: Refusal, detail: string, remoteCode?: number): void {
    const { counters, log, remote, role } = this.options;
    const fields = { remote, claimedNodeId: this.handshake.claimedNodeId, role, reason, detail };
    if (reason === Refusal.RefusedByPeer) {
      counters.refusedByPeer++;
      log.warn(fields, 'peer refused our handshake');
    } else if (reason === Refusal.SelfConnection) {
      counters.selfConnections++;
      log.info(fields, 'peer connection to this node itself; closed');
    } else {
      counters.authRefused++;
      if (reason === Refusal.Timeout) counters.handshakeTimeouts++;
      if (reason === Refusal.Timeout && !this.received && this.options.onSilentTimeout !== undefined) this.options.onSilentTimeout();
      else log.warn(fields, 'peer refused: handshake failed');
    }
    this.endAndClose(`handshake refused: ${reason}`, { refusal: reason, detail, ...(remoteCode !== undefined ? { remoteCode } : {}) });
  }

  /** Lets the queued Error frame leave, then closes; the owner learns of the close at once. */
  private endAndClose(reason: string, refused?: Pick<CloseInfo, 'refusal' | 'detail' | 'remoteCode'>): void {
    if (this.socket.connecting) {
      this.socket.destroy(); // nothing to say to a peer we never reached
    } else {
      this.flushBatch(); // the Error frame just written, and whatever came before it
      this.socket.pause();
      this.socket.end();
      setTimeout(() => this.socket.destroy(), LINGER_MS).unref();
    }
    this.finish({ wasOpen: this.identity !== null, reason, ...refused });
  }

  private writeFrames(frames: OutgoingFrame[]): void {
    for (const frame of frames) this.write(frame.opcode, 0, frame.payload);
  }

  private finish(info: CloseInfo): void {
    if (this.closed) return;
    this.closed = true;
    if (this.handshakeTimer !== null) clearTimeout(this.handshakeTimer);
    this.handshakeTimer = null;
    this.hooks.onClose(info);
  }
}
