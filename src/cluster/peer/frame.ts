/**
 * The peer frame (docs/peer-protocol.md, "Frame"), big-endian:
 *
 *     u32 length | u8 opcode | u32 requestId | payload (length bytes)
 *
 * `length` counts the payload only, so a frame is FRAME_HEADER_SIZE + length bytes. requestId 0
 * marks a one-way message; a reply carries the id of its request. Like memcached's framing
 * functions, tryReadFrame answers "need more bytes" or hands over one frame and where the next
 * begins; a length above the limit is reported as soon as the 4 length bytes are in, so a peer
 * can never make us buffer more than the limit.
 */

export const FRAME_HEADER_SIZE = 9;
/** Room for a command's key, flags, version and other fields beside the largest item value. */
export const FRAME_OVERHEAD_ALLOWANCE = 64 * 1024;
export const DEFAULT_MAX_ITEM_SIZE = 1024 * 1024;

/** The largest frame (header included) a node accepts, given its --max-item-size. */
export function maxFrameSizeFor(maxItemSize: number): number {
  return maxItemSize + FRAME_OVERHEAD_ALLOWANCE;
}

export const DEFAULT_MAX_FRAME_SIZE = maxFrameSizeFor(DEFAULT_MAX_ITEM_SIZE);
/** Before authentication only handshake frames are valid, and they are tiny. */
export const HANDSHAKE_MAX_FRAME_SIZE = 1024;
/** No node may announce a smaller limit than this (it could not carry a useful item). */
export const MIN_MAX_FRAME_SIZE = 4096;

const MAX_U32 = 0xffffffff;
const EMPTY = Buffer.alloc(0);

export interface Frame {
  /** an Opcode, or a number this node does not know (from a newer peer) */
  opcode: number;
  requestId: number;
  /** a view into the received bytes: copy it before keeping it beyond the handler */
  payload: Buffer;
}

export enum FrameStatus {
  /** no whole frame yet */
  NeedMore,
  /** one frame, and the offset just past it */
  Frame,
  /** the announced length exceeds the limit: close the link */
  TooLarge,
}

export type FrameRead =
  | { status: FrameStatus.NeedMore }
  | { status: FrameStatus.Frame; frame: Frame; next: number }
  | { status: FrameStatus.TooLarge; size: number };

const NEED_MORE: FrameRead = Object.freeze({ status: FrameStatus.NeedMore });

/** Reads one frame from `buf` at `offset`, if it is all there. */
export function tryReadFrame(buf: Buffer, offset: number, maxFrameSize: number = DEFAULT_MAX_FRAME_SIZE): FrameRead {
  const available = buf.length - offset;
  if (available < 4) return NEED_MORE;
  const size = FRAME_HEADER_SIZE + buf.readUInt32BE(offset);
  if (size > maxFrameSize) return { status: FrameStatus.TooLarge, size };
  if (available < size) return NEED_MORE;
  const frame: Frame = {
    opcode: buf[offset + 4]!,
    requestId: buf.readUInt32BE(offset + 5),
    payload: buf.subarray(offset + FRAME_HEADER_SIZE, offset + size),
  };
  return { status: FrameStatus.Frame, frame, next: offset + size };
}

/** The 9 header bytes of a frame whose payload is `payloadLength` bytes. */
export function encodeFrameHeader(opcode: number, requestId: number, payloadLength: number): Buffer {
  checkHeaderFields(opcode, requestId, payloadLength);
  const header = Buffer.allocUnsafe(FRAME_HEADER_SIZE);
  header.writeUInt32BE(payloadLength, 0);
  header[4] = opcode;
  header.writeUInt32BE(requestId, 5);
  return header;
}

/** Writes the 9 header bytes of a frame into `target` at `offset` (a batch of frames being built). */
export function writeFrameHeader(target: Buffer, offset: number, opcode: number, requestId: number, payloadLength: number): void {
  checkHeaderFields(opcode, requestId, payloadLength);
  target.writeUInt32BE(payloadLength, offset);
  target[offset + 4] = opcode;
  target.writeUInt32BE(requestId, offset + 5);
}

/** A whole frame in one buffer. */
export function encodeFrame(opcode: number, requestId: number, payload: Buffer = EMPTY): Buffer {
  checkHeaderFields(opcode, requestId, payload.length);
  const frame = Buffer.allocUnsafe(FRAME_HEADER_SIZE + payload.length);
  frame.writeUInt32BE(payload.length, 0);
  frame[4] = opcode;
  frame.writeUInt32BE(requestId, 5);
  payload.copy(frame, FRAME_HEADER_SIZE);
  return frame;
}

function checkHeaderFields(opcode: number, requestId: number, payloadLength: number): void {
  // Out-of-range values are bugs in the caller, not peer input.
  if (!Number.isInteger(opcode) || opcode < 0 || opcode > 0xff) throw new RangeError(`opcode ${opcode} is not a u8`);
  if (!Number.isInteger(requestId) || requestId < 0 || requestId > MAX_U32) throw new RangeError(`requestId ${requestId} is not a u32`);
  if (payloadLength > MAX_U32 - FRAME_HEADER_SIZE) throw new RangeError(`payload of ${payloadLength} bytes cannot be framed`);
}

/**
 * A push decoder over a socket's chunks. Chunks are kept as they come and joined only when a
 * frame is complete (or its 4 length bytes straddle chunks), so a 1 MiB frame arriving in 64 KiB
 * pieces is copied once, not once per piece.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  /** where the first unread byte of chunks[0] is: frames are read in place, not cut off the chunk */
  private head = 0;
  private buffered = 0;

  /** The limit can change: small during the handshake, the configured one afterwards. */
  constructor(public maxFrameSize: number = DEFAULT_MAX_FRAME_SIZE) {}

  /** Bytes received and not yet handed out as frames. */
  get bufferedBytes(): number {
    return this.buffered;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
  }

  /**
   * The next whole frame, NeedMore, or TooLarge (after which the decoder must not be used). A
   * frame's `next` is where the following one starts in the decoder's own chunk.
   */
  next(): FrameRead {
    if (this.buffered < 4) return NEED_MORE;
    if (this.chunks[0]!.length - this.head < 4) this.coalesce();
    const size = FRAME_HEADER_SIZE + this.chunks[0]!.readUInt32BE(this.head);
    if (size > this.maxFrameSize) return { status: FrameStatus.TooLarge, size };
    if (this.buffered < size) return NEED_MORE;
    if (this.chunks[0]!.length - this.head < size) this.coalesce();
    const chunk = this.chunks[0]!;
    const at = this.head;
    const frame: Frame = {
      opcode: chunk[at + 4]!,
      requestId: chunk.readUInt32BE(at + 5),
      payload: chunk.subarray(at + FRAME_HEADER_SIZE, at + size),
    };
    this.head = at + size;
    if (this.head === chunk.length) {
      this.chunks.shift();
      this.head = 0;
    }
    this.buffered -= size;
    return { status: FrameStatus.Frame, frame, next: this.head };
  }

  private coalesce(): void {
    const first = this.chunks[0]!;
    if (this.head > 0) this.chunks[0] = first.subarray(this.head);
    this.head = 0;
    this.chunks = [Buffer.concat(this.chunks, this.buffered)];
  }
}
