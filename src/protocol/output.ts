/**
 * Output: replies of one read batch gathered into as few socket writes as possible.
 * Small pieces are copied into one growing buffer; large values are queued by reference
 * (item values are never mutated in place, so that is safe while the socket drains).
 */

const INITIAL_CAPACITY = 16 * 1024;
/** Values at least this long are queued by reference instead of copied. */
const COPY_LIMIT = 8 * 1024;

export class Output {
  private chunks: Buffer[] = [];
  private buffer = Buffer.allocUnsafe(INITIAL_CAPACITY);
  private position = 0;
  private queuedBytes = 0;

  /** Bytes gathered and not yet taken. */
  get size(): number {
    return this.queuedBytes + this.position;
  }

  writeLatin1(text: string): void {
    // latin1 is one byte per char: keys are kept as latin1 strings so any byte round-trips.
    this.reserve(text.length);
    this.position += this.buffer.write(text, this.position, 'latin1');
  }

  writeBytes(bytes: Buffer): void {
    if (bytes.length >= COPY_LIMIT) {
      this.sealBuffer();
      this.chunks.push(bytes);
      this.queuedBytes += bytes.length;
      return;
    }
    this.reserve(bytes.length);
    bytes.copy(this.buffer, this.position);
    this.position += bytes.length;
  }

  /** Room for `length` more bytes in the buffer, returning the offset to write at. */
  claim(length: number): { buffer: Buffer; offset: number } {
    this.reserve(length);
    const offset = this.position;
    this.position += length;
    return { buffer: this.buffer, offset };
  }

  /** Everything gathered, in order; the Output is empty afterwards. */
  take(): Buffer[] {
    this.sealBuffer();
    const taken = this.chunks;
    this.chunks = [];
    this.queuedBytes = 0;
    return taken;
  }

  private sealBuffer(): void {
    if (this.position === 0) return;
    // Small batches are copied out so the big buffer can be reused; large ones are handed
    // over whole (the socket keeps a reference) and a new buffer starts.
    let piece: Buffer;
    if (this.position <= INITIAL_CAPACITY / 2) {
      piece = Buffer.allocUnsafe(this.position);
      this.buffer.copy(piece, 0, 0, this.position);
    } else {
      piece = this.buffer.subarray(0, this.position);
      this.buffer = Buffer.allocUnsafe(INITIAL_CAPACITY);
    }
    this.chunks.push(piece);
    this.queuedBytes += piece.length;
    this.position = 0;
  }

  private reserve(length: number): void {
    if (this.position + length <= this.buffer.length) return;
    if (this.position > 0) this.sealBuffer();
    if (length > this.buffer.length) this.buffer = Buffer.allocUnsafe(length);
  }
}
