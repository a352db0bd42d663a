/**
 * One client connection: picks the protocol from the first byte (memcached's rule: 0x80 is
 * binary, anything else ascii), feeds it the bytes, and writes the replies of each read in
 * one batch. When a client stops reading its replies, reading from it pauses until the socket
 * drains, so a slow client costs a bounded amount of memory.
 */
import { AsciiProtocol } from '../protocol/ascii/ascii-protocol.js';
import { BinaryProtocol } from '../protocol/binary/binary-protocol.js';
import { REQUEST_MAGIC } from '../protocol/binary/constants.js';
import { type Execute, FeedResult, OUTPUT_HIGH_WATER, type ProtocolHandler, type ProtocolLimits } from '../protocol/handler.js';
import type { Output } from '../protocol/output.js';
import { NOT_MID_REQUEST, StallWatch } from './command-timeout.js';
import type { ClientAuth } from '../security/client-auth.js';
import type { ConnectionLocks, SessionLocks } from '../session-locks/session-locks.js';
import type { ReplyBatch } from './reply-batch.js';
import type { ServerCounters } from './server-counters.js';
import type { ClientSocket, SocketReceiver } from './client-socket.js';

export interface ConnectionContext {
  execute: Execute;
  limits: ProtocolLimits;
  counters: ServerCounters;
  /** shared by all connections: each takes what it gathered before yielding to the event loop */
  output: Output;
  /**
   * With disk storage: holds replies until the log records of the writes they acknowledge are
   * written, so that a reply never leaves before its write reached the kernel (reply-batch.ts).
   */
  replies?: ReplyBatch;
  /** session locks: those a connection took and did not release are released when it closes */
  locks?: SessionLocks;
  /** client authentication (--auth-file): nothing else passes until the connection has authenticated */
  auth?: ClientAuth;
}

/** What the listener that accepted a connection hears of it. */
export interface ConnectionOwner {
  /** Its socket closed, however (the connection has released its session locks). */
  connectionClosed(connection: Connection): void;
  /** Its socket failed (a reset, ...) and is closing. */
  connectionFailed(reason: string): void;
}

/** Input held while a reply is pending elsewhere, before reading pauses (a pipelining client). */
const HELD_INPUT_LIMIT = 64 * 1024;

export class Connection implements SocketReceiver {
  private handler: ProtocolHandler | null = null;
  /** waiting for 'drain' before feeding held-back input */
  private waitingForDrain = false;
  /** a reply is coming from another node; input that arrives meanwhile is held by the protocol */
  private awaitingReply = false;
  /** bytes received while awaitingReply: past HELD_INPUT_LIMIT, reading pauses */
  private heldBytes = 0;
  private closing = false;
  /**
   * The daemon is stopping (finishThenEnd): the connection ends once it is between requests with
   * no request in progress.
   */
  private finishing = false;
  /** what the command-timeout sweep saw of this connection (command-timeout.ts) */
  private readonly stall = new StallWatch();
  /** when the connection was accepted (performance.now()): a client that never sent a byte is silent since then */
  private readonly acceptedAt = performance.now();

  private readonly output: Output;
  private readonly locks: ConnectionLocks | null;
  private readonly execute: Execute;

  /** Starts reading from `socket`. */
  constructor(private readonly socket: ClientSocket, private readonly context: ConnectionContext, private readonly owner: ConnectionOwner) {
    this.output = context.output;
    this.locks = context.locks?.forConnection(() => this.destroy()) ?? null;
    this.execute = this.locks?.wrap(context.execute) ?? context.execute;
    socket.start(this);
  }

  /** What the socket read: lent, valid only until this returns. */
  receive(chunk: Buffer): void {
    if (this.closing) return;
    this.context.counters.bytesRead += chunk.length;
    if (this.awaitingReply) {
      this.heldBytes += chunk.length;
      if (this.heldBytes > HELD_INPUT_LIMIT) this.socket.pause();
    }
    if (this.handler === null) {
      const { limits, auth } = this.context;
      const binary = chunk[0] === REQUEST_MAGIC;
      // Authentication comes first: a command that has not passed it reaches nothing else.
      const execute = auth === undefined ? this.execute : auth.forConnection(binary ? 'binary' : 'ascii', this.socket.remoteAddress ?? 'unix socket').wrap(this.execute);
      this.handler = binary ? new BinaryProtocol(execute, this.output, limits) : new AsciiProtocol(execute, this.output, limits);
    }
    this.process(this.handler.feed(chunk));
  }

  /**
   * Called by the command-timeout sweep: closes the connection, and answers true, if the client
   * has been stuck on the same part of a request for `timeoutMs`. Not while the connection waits
   * on this daemon (a reply from another node, a client that must read its replies first): the
   * input held then is not the client's delay.
   */
  closeIfStuck(now: number, timeoutMs: number): boolean {
    const handler = this.handler;
    const waitingOnUs = this.closing || this.awaitingReply || this.waitingForDrain;
    const mark = handler === null || waitingOnUs || !handler.midRequest ? NOT_MID_REQUEST : handler.partsReceived;
    if (!this.stall.stuck(mark, now, timeoutMs)) return false;
    // No reply: the client is mid-request, and an answer would read as the answer to it.
    this.closing = true;
    this.socket.destroy();
    return true;
  }

  /**
   * For a new connection at --max-connections (listeners.ts): since when this one has been stuck
   * in the middle of a request (as the sweeps saw it), or silent since it was accepted without
   * sending a byte; null if it is idle between requests, waiting on this daemon, or closing.
   */
  stuckSince(): number | null {
    if (this.closing || this.awaitingReply || this.waitingForDrain) return null;
    const handler = this.handler;
    if (handler === null) return this.acceptedAt;
    return this.stall.stuckSince(handler.midRequest ? handler.partsReceived : NOT_MID_REQUEST);
  }

  /** The socket closed, however: the session locks it still held are released. */
  closed(): void {
    this.closing = true;
    this.locks?.close();
    this.owner.connectionClosed(this);
  }

  failed(reason: string): void {
    this.owner.connectionFailed(reason);
  }

  /** Closes the connection to give its slot to a new one; no reply (it is mid-request or silent). */
  reclaim(): void {
    this.closing = true;
    this.socket.destroy();
  }

  /** What is queued goes out, then the connection closes (a quit, or the daemon stops). */
  end(): void {
    this.closing = true;
    // A net.Socket's end uncorks: what it sends must be on disk first.
    this.context.replies?.release();
    this.socket.end();
  }

  /**
   * The daemon is stopping: a request in progress may finish. The connection ends once it is
   * between requests with no request in progress (requestInProgress): at once for most, after the
   * write (and the lock's release) for a PHP request that had read its session.
   */
  finishThenEnd(): void {
    this.finishing = true;
    this.endIfFinished();
  }

  /**
   * A PHP request is in progress on it: between its read and its write, it holds its session's
   * lock, or without locking it read a session it has not written yet (session-locks.ts).
   */
  get requestInProgress(): boolean {
    return this.locks?.inProgress ?? false;
  }

  /** The daemon stops and the connection did not end in time. */
  destroy(): void {
    this.closing = true;
    this.socket.destroy();
  }

  drained(): void {
    if (!this.waitingForDrain || this.closing) return;
    this.waitingForDrain = false;
    this.process(this.handler!.feed(null));
    if (!this.waitingForDrain && !this.closing) this.socket.resume();
  }

  private process(result: FeedResult): void {
    for (;;) {
      this.flush();
      if (result === FeedResult.Close) {
        // Send what is queued, then drop the connection instead of reading more of its input.
        this.end();
        return;
      }
      if (result === FeedResult.NeedMore) break;
      if (result === FeedResult.Waiting) {
        this.waitForReply();
        return;
      }
      // OutputFull: go on only once the client has taken what it was sent.
      if (this.socket.writableLength >= OUTPUT_HIGH_WATER) {
        this.pauseUntilDrained();
        return;
      }
      result = this.handler!.feed(null);
    }
    if (this.socket.writableLength >= OUTPUT_HIGH_WATER) this.pauseUntilDrained();
    else if (this.finishing) this.endIfFinished();
  }

  private endIfFinished(): void {
    if (this.closing || this.awaitingReply || this.waitingForDrain || this.requestInProgress) return;
    if (this.handler?.midRequest === true) return;
    this.end();
  }

  /**
   * A reply is coming from another node. Reading goes on: a client with one request in flight
   * (PHP, most load tools) sends nothing meanwhile, and pausing and resuming the socket would
   * cost two system calls per forwarded request. What a pipelining client sends meanwhile is
   * held by the protocol until the reply is written; past HELD_INPUT_LIMIT, reading pauses.
   */
  private waitForReply(): void {
    if (this.awaitingReply) return;
    this.awaitingReply = true;
    this.heldBytes = 0;
    const replied = () => {
      this.awaitingReply = false;
      if (this.closing || this.socket.destroyed) return;
      this.process(this.handler!.feed(null));
      if (!this.waitingForDrain && !this.closing && !this.awaitingReply && this.socket.paused) this.socket.resume();
    };
    const handler = this.handler!;
    if (handler.whenReplied !== undefined) handler.whenReplied(replied);
    else void handler.waiting!.then(replied);
  }

  private pauseUntilDrained(): void {
    this.waitingForDrain = true;
    this.socket.pause();
  }

  private flush(): void {
    if (this.output.size === 0) return;
    this.context.replies?.hold(this.socket);
    const chunks = this.output.take();
    let bytes = 0;
    if (chunks.length === 1) {
      bytes = chunks[0]!.length;
      this.socket.write(chunks[0]!);
    } else {
      this.socket.cork();
      for (const chunk of chunks) {
        bytes += chunk.length;
        this.socket.write(chunk);
      }
      this.socket.uncork();
    }
    this.context.counters.bytesWritten += bytes;
  }
}
