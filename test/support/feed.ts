/**
 * Feeding helpers for the protocol tests, node-redis style: every request is fed whole, one
 * byte at a time and in random splits, and each way must give the very same reply bytes.
 * OutputFull is handled as the connection does: take the output (the socket "drains") and feed
 * null until the protocol asks for more.
 */
import { FeedResult, type ProtocolHandler } from '../../src/protocol/handler.js';
import type { Output } from '../../src/protocol/output.js';

export type FeedMode = 'whole' | 'bytes' | 'random-1' | 'random-2' | 'random-3';

/** All modes each case runs in; the random splits use fixed seeds so a failure replays. */
export const FEED_MODES: FeedMode[] = ['whole', 'bytes', 'random-1', 'random-2', 'random-3'];

/** mulberry32: a small seeded generator, so "random" splits are the same on every run. */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Splits `request` into the chunks a socket might deliver in the given mode. */
export function split(request: Buffer, mode: FeedMode, seedSalt = 0): Buffer[] {
  if (request.length === 0) return [];
  switch (mode) {
    case 'whole':
      return [request];
    case 'bytes': {
      const chunks: Buffer[] = [];
      for (let i = 0; i < request.length; i++) chunks.push(request.subarray(i, i + 1));
      return chunks;
    }
    default: {
      const random = seededRandom(Number(mode.slice('random-'.length)) * 7919 + seedSalt);
      const chunks: Buffer[] = [];
      let offset = 0;
      while (offset < request.length) {
        // mostly short pieces, now and then a long one, so boundaries land everywhere
        const max = random() < 0.2 ? 64 : 7;
        const length = 1 + Math.floor(random() * max);
        chunks.push(request.subarray(offset, offset + length));
        offset += length;
      }
      return chunks;
    }
  }
}

export interface FeedOutcome {
  /** everything the protocol wrote, concatenated */
  bytes: Buffer;
  /** bytes as latin1 text, for the ascii protocol */
  text: string;
  /** the result of the last feed: NeedMore, or Close (feeding stops there) */
  result: FeedResult;
  /** whether any feed answered OutputFull */
  sawOutputFull: boolean;
}

/** The one buffer every chunk is read into, as connections share one (src/server/client-socket.ts). */
let readBuffer = Buffer.alloc(64 * 1024);

/**
 * Feeds `chunk` as a connection does: lent, in the shared read buffer, which is overwritten as
 * soon as feed() returns. A protocol that keeps a view of a chunk instead of a copy finds
 * garbage in it later, and the test that fed it fails.
 */
export function feedLent(protocol: ProtocolHandler, chunk: Buffer): FeedResult {
  if (chunk.length > readBuffer.length) readBuffer = Buffer.alloc(chunk.length);
  chunk.copy(readBuffer);
  const lent = readBuffer.subarray(0, chunk.length);
  try {
    return protocol.feed(lent);
  } finally {
    lent.fill(0xee);
  }
}

/** Feeds the chunks in order, draining the output on OutputFull; stops at Close. */
export function feedChunks(protocol: ProtocolHandler, output: Output, chunks: Buffer[]): FeedOutcome {
  const taken: Buffer[] = [];
  let result = FeedResult.NeedMore;
  let sawOutputFull = false;
  for (const chunk of chunks) {
    result = feedLent(protocol, chunk);
    while (result === FeedResult.OutputFull) {
      sawOutputFull = true;
      taken.push(...output.take());
      result = protocol.feed(null);
    }
    if (result === FeedResult.Close) break;
  }
  taken.push(...output.take());
  const bytes = Buffer.concat(taken);
  return { bytes, text: bytes.toString('latin1'), result, sawOutputFull };
}

/** Feeds `request` in the given mode. */
export function feed(protocol: ProtocolHandler, output: Output, request: Buffer | string, mode: FeedMode): FeedOutcome {
  const bytes = typeof request === 'string' ? Buffer.from(request, 'latin1') : request;
  return feedChunks(protocol, output, split(bytes, mode));
}
