/** What a connection needs from a protocol: push bytes in, learn whether to go on. */
import type { Command, Reply } from './types.js';

export enum FeedResult {
  /** all input consumed; waiting for more bytes */
  NeedMore,
  /** replies piled up: flush them and call feed(null) once the socket has drained */
  OutputFull,
  /** flush what is queued, then close the connection (quit, or input that cannot be framed) */
  Close,
}

export interface ProtocolHandler {
  /** Processes `chunk` (or, with null, the input held back by an earlier OutputFull). */
  feed(chunk: Buffer | null): FeedResult;
}

export type Execute = (command: Command) => Reply;

/** Replies gathered beyond this many bytes make a protocol stop and let the socket drain. */
export const OUTPUT_HIGH_WATER = 1024 * 1024;

export interface ProtocolLimits {
  maxItemSize: number;
}
