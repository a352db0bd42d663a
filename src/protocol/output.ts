/**
 * Output: the replies of one read batch, gathered into as few socket writes as possible.
 *
 * Replies are written into an arena buffer and handed to the socket as views of it, with no
 * copy; the arena is only replaced when it is full, and a replaced arena lives on until the
 * socket has sent the views that point into it. Large values are queued by reference (item
 * values are never mutated in place, so that is safe while the socket drains).
 *
 * One Output serves every connection: a connection takes all it gathered before it returns
 * to the event loop, so the arena is empty whenever another connection starts.
 */

const ARENA_SIZE = 64 * 1024;
/** Values at least this long are queued by reference instead of copied. */
const COPY_LIMIT = 8 * 1024;

export class Output {
  private chunks: Buffer[] = [];
  private arena = Buffer.allocUnsafeSlow(ARENA_SIZE);
  /** where the bytes not yet taken begin in the arena */
  private start = 0;
  private position = 0;
  private queuedBytes = 0;

  /** Bytes gathered and not yet taken. */
  get size(): number {
    return this.queuedBytes + this.position - this.start;
  }

  writeLatin1(text: string): void {
    // latin1 is one byte per char: keys are kept as latin1 strings so any byte round-trips.
    this.reserve(text.length);
    this.position += this.arena.write(text, this.position, 'latin1');
  }

  writeBytes(bytes: Buffer): void {
    if (bytes.length >= COPY_LIMIT) {
      this.seal();
      this.chunks.push(bytes);
      this.queuedBytes += bytes.length;
      return;
    }
    this.reserve(bytes.length);
    bytes.copy(this.arena, this.position);
    this.position += bytes.length;
  }

  /** Room for `length` more bytes, returning the buffer and offset to write them at. */
  claim(length: number): { buffer: Buffer; offset: number } {
    this.reserve(length);
    const offset = this.position;
    this.position += length;
    return { buffer: this.arena, offset };
  }

  /** Everything gathered, in order; the Output is empty afterwards. */
  take(): Buffer[] {
    this.seal();
    const taken = this.chunks;
    this.chunks = [];
    this.queuedBytes = 0;
    return taken;
  }

  /** Moves the bytes written since the last seal into the list of chunks, as a view. */
  private seal(): void {
    if (this.position === this.start) return;
    const view = this.arena.subarray(this.start, this.position);
    this.chunks.push(view);
    this.queuedBytes += view.length;
    this.start = this.position;
  }

  private reserve(length: number): void {
    if (this.position + length <= this.arena.length) return;
    this.seal();
    this.arena = Buffer.allocUnsafeSlow(Math.max(ARENA_SIZE, length));
    this.start = 0;
    this.position = 0;
  }
}
