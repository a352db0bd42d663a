/** What a connection needs from a protocol: push bytes in, learn whether to go on. */
import type { Command, Reply } from './types.js';
import type { Output } from './output.js';

export enum FeedResult {
  /** all input consumed; waiting for more bytes */
  NeedMore,
  /** replies piled up: flush them and call feed(null) once the socket has drained */
  OutputFull,
  /** flush what is queued, then close the connection (quit, or input that cannot be framed) */
  Close,
  /**
   * a reply is being computed elsewhere (another node): wait for `waiting`, then feed(null),
   * which writes that reply first; the input after the command is held back until then, so
   * replies keep the order of the requests
   */
  Waiting,
}

export interface ProtocolHandler {
  /**
   * Processes `chunk` (or, with null, the input held back by an earlier OutputFull or Waiting).
   * The chunk is only lent: connections read every socket into one shared buffer, which the
   * next read overwrites, so whatever a protocol keeps past the call it copies.
   */
  feed(chunk: Buffer | null): FeedResult;
  /** after Waiting: settles once the pending reply is known */
  readonly waiting: Promise<void> | null;
  /**
   * Part of a request has arrived and the rest has not: a command line without its newline, a
   * binary header, key or extras cut short, or a value still coming. False between requests.
   * Meaningful after NeedMore only: after Waiting or OutputFull the held input is this side's.
   */
  readonly midRequest: boolean;
  /**
   * Counts the parts of requests that have arrived whole (an ascii command line or data block, a
   * binary header or body). While `midRequest` holds, an unchanged count means the client is
   * still on the same part: what the command timeout (src/server/command-timeout.ts) watches.
   */
  readonly partsReceived: number;
}

/** Local commands answer at once; commands served by another node answer later. */
export type Execute = (command: Command) => Reply | Promise<Reply>;

/**
 * Holds the one reply a protocol is waiting for. When it arrives it is only remembered: it is
 * written by release(), from the next feed(null), so it goes out in the same synchronous step
 * as the connection's flush (the Output is shared between connections).
 */
export class PendingReply {
  private promise: Promise<void> | null = null;
  private writeReply: (() => void) | null = null;

  get waiting(): Promise<void> | null {
    return this.promise;
  }

  wait(reply: Promise<Reply>, write: (reply: Reply) => void): void {
    this.promise = reply.then(
      (value) => { this.writeReply = () => write(value); },
      // The router answers failures with a reply of their own; a rejection is a bug, but the
      // client still gets an answer in its place rather than a connection that hangs.
      (error: unknown) => { this.writeReply = () => write({ kind: 'serverError', message: `internal error: ${(error as Error).message}` }); },
    );
  }

  /** Writes the reply that arrived; returns false while it has not arrived yet. */
  release(): boolean {
    if (this.promise === null) return true;
    if (this.writeReply === null) return false;
    const write = this.writeReply;
    this.writeReply = null;
    this.promise = null;
    write();
    return true;
  }
}

/** Replies gathered beyond this many bytes make a protocol stop and let the socket drain. */
export const OUTPUT_HIGH_WATER = 1024 * 1024;

export interface ProtocolLimits {
  maxItemSize: number;
  /** SASL is on (--auth-file): the binary SASL commands are parsed, not answered "unknown command" */
  sasl?: boolean;
}

/**
 * What both protocols share: input held back between reads, the reply being waited for, and
 * when to stop consuming (a reply pending elsewhere, or replies piling up unread).
 */
export abstract class PushProtocol implements ProtocolHandler {
  /** received bytes not yet consumed */
  protected input: Buffer | null = null;
  protected readonly pending = new PendingReply();
  partsReceived = 0;

  constructor(
    protected readonly execute: Execute,
    protected readonly output: Output,
    protected readonly limits: ProtocolLimits,
  ) {}

  get waiting(): Promise<void> | null {
    return this.pending.waiting;
  }

  abstract get midRequest(): boolean;

  feed(chunk: Buffer | null): FeedResult {
    if (!this.pending.release()) {
      // Still waiting for a reply from another node: keep (a copy of) the bytes for later.
      if (chunk !== null) this.input = this.input === null ? Buffer.from(chunk) : Buffer.concat([this.input, chunk]);
      return FeedResult.Waiting;
    }
    const data = chunk === null ? this.input : this.input === null ? chunk : Buffer.concat([this.input, chunk]);
    this.input = null;
    if (data === null) return FeedResult.NeedMore;
    const result = this.consume(data);
    // The last command of this read may be waiting for its reply too.
    return result === FeedResult.NeedMore && this.pending.waiting !== null ? FeedResult.Waiting : result;
  }

  /** Consumes `data` from its start; what it cannot consume yet goes back to `this.input`. */
  protected abstract consume(data: Buffer): FeedResult;

  /** Asked before each step: whether to stop here, holding back the rest of `data`. */
  protected mustPause(data: Buffer, offset: number): FeedResult | null {
    if (this.pending.waiting !== null) {
      this.input = offset < data.length ? Buffer.from(data.subarray(offset)) : null;
      return FeedResult.Waiting;
    }
    if (this.output.size >= OUTPUT_HIGH_WATER) {
      this.input = Buffer.from(data.subarray(offset));
      return FeedResult.OutputFull;
    }
    return null;
  }
}
