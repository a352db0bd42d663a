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
  /** after Waiting: settles once the pending replies are known */
  readonly waiting: Promise<void> | null;
  /**
   * after Waiting: calls `callback` once, when the pending replies are known (as `waiting`
   * settling does, without a promise of its own: a forwarded request's reply reaches the client
   * one microtask sooner)
   */
  whenReplied?(callback: () => void): void;
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
 * Holds the replies a protocol is waiting for, in the order of their requests: usually one; a
 * binary batch of quiet gets (GETQ/GETKQ, as php-memcached's getMulti sends) may have several in
 * flight at once, each key forwarded to its master concurrently instead of one after another.
 * Arrived replies are only remembered: they are written by release(), from the next
 * feed(null), all at once when the last has arrived, so they go out in request order and in the
 * same synchronous step as the connection's flush (the Output is shared between connections).
 */
export class PendingReply {
  /** the replies waited for, in request order; `write` is set once the reply has arrived */
  private readonly replies: Array<{ write: (() => void) | null }> = [];
  private unarrived = 0;
  private promise: Promise<void> | null = null;
  private settle: (() => void) | null = null;
  private callback: (() => void) | null = null;

  /** whether a reply is still to be written (arrived or not) */
  get busy(): boolean {
    return this.replies.length > 0;
  }

  /** how many replies are held */
  get count(): number {
    return this.replies.length;
  }

  get waiting(): Promise<void> | null {
    if (this.replies.length === 0) return null;
    if (this.promise === null) {
      this.promise = this.unarrived === 0 ? Promise.resolve() : new Promise<void>((resolve) => { this.settle = resolve; });
    }
    return this.promise;
  }

  /** Calls `callback` once every held reply has arrived (in a microtask if they all have). */
  whenArrived(callback: () => void): void {
    if (this.unarrived === 0) {
      queueMicrotask(callback);
      return;
    }
    this.callback = callback;
  }

  /**
   * Holds a reply, to be written after those held before it. A reply known already (a read
   * served here while earlier ones are still coming) waits its turn all the same.
   */
  wait(reply: Reply | Promise<Reply>, write: (reply: Reply) => void): void {
    if (!(reply instanceof Promise)) {
      this.replies.push({ write: () => write(reply) });
      return;
    }
    const entry: { write: (() => void) | null } = { write: null };
    this.replies.push(entry);
    this.unarrived++;
    reply.then(
      (value) => this.arrived(entry, () => write(value)),
      // The router answers failures with a reply of their own; a rejection is a bug, but the
      // client still gets an answer in its place rather than a connection that hangs.
      (error: unknown) => this.arrived(entry, () => write({ kind: 'serverError', message: `internal error: ${(error as Error).message}` })),
    );
  }

  /** Writes the held replies once all have arrived; returns false while one has not. */
  release(): boolean {
    if (this.replies.length === 0) return true;
    if (this.unarrived > 0) return false;
    const replies = this.replies.splice(0);
    this.promise = null;
    this.settle = null;
    for (const reply of replies) reply.write!();
    return true;
  }

  private arrived(entry: { write: (() => void) | null }, write: () => void): void {
    entry.write = write;
    if (--this.unarrived > 0) return;
    const settle = this.settle;
    const callback = this.callback;
    this.settle = null;
    this.callback = null;
    settle?.();
    callback?.();
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

  whenReplied(callback: () => void): void {
    this.pending.whenArrived(callback);
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
    return result === FeedResult.NeedMore && this.pending.busy ? FeedResult.Waiting : result;
  }

  /** Consumes `data` from its start; what it cannot consume yet goes back to `this.input`. */
  protected abstract consume(data: Buffer): FeedResult;

  /**
   * Whether the step at `offset` may run while replies are still awaited: only one whose reply
   * is held in order behind them and that changes nothing (the binary protocol's reads).
   */
  protected mayGoOnWhileWaiting(_data: Buffer, _offset: number): boolean {
    return false;
  }

  /** Asked before each step: whether to stop here, holding back the rest of `data`. */
  protected mustPause(data: Buffer, offset: number): FeedResult | null {
    if (this.pending.busy && !this.mayGoOnWhileWaiting(data, offset)) {
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
