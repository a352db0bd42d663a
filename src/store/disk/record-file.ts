/**
 * A data file as the place items' values are read back from, when memory let them go (memory as
 * a cache of disk storage: docs/architecture.md, "Disk storage"). Each item remembers the file
 * and offset of its newest record (Item.source, sourceOffset); a value is read back by reading
 * that record again and checking it as recovery does: its checksum, its kind, its key.
 *
 * The file is opened for reading once, when it is created or found at start, and read through
 * that descriptor: a file removed once a compaction copied its records forward stays readable by
 * reads already under way. It is closed when no item points at it any
 * more and its reads have finished.
 */
import type { Item, RecordSource } from '../change.js';
import type { DiskFile } from './disk-files.js';
import { FILE_HEADER_BYTES, itemFrameSize, type LogEntry, RecordKind, tryReadFrame } from './record-codec.js';

/** The bytes of an item's record, its value held or not. */
function itemRecordBytes(item: Item): number {
  return itemFrameSize(item.key.length, item.origin.length, item.valueLength);
}

/** Whole records read from a file in one go (RecordFile.records). */
export interface RecordChunk {
  /** where `data` starts in the file */
  offset: number;
  data: Buffer;
  /** each record: what it holds, and where it starts and ends in `data` */
  records: Array<{ entry: LogEntry; at: number; next: number }>;
}

export class RecordFile implements RecordSource {
  private readsUnderWay = 0;
  private closing = false;
  private closed = false;

  /**
   * @param name the file's name, for messages
   * @param reader the file, opened for reading
   * @param writtenEnd how far the file is written (the log being written grows; others are whole)
   */
  constructor(readonly name: string, private readonly reader: DiskFile, private readonly writtenEnd: () => number = () => Infinity) {}

  get readable(): boolean {
    return !this.closing;
  }

  written(offset: number): boolean {
    return offset < this.writtenEnd();
  }

  readValueSync(item: Item): Buffer {
    if (this.closing) throw new Error(`${item.key}: its record's file ${this.name} was replaced`);
    const frame = Buffer.allocUnsafeSlow(itemRecordBytes(item));
    const got = this.reader.read(frame, item.sourceOffset, frame.length);
    return this.valueIn(item, frame, got);
  }

  async readValue(item: Item): Promise<Buffer> {
    if (this.closing) throw new Error(`${item.key}: its record's file ${this.name} was replaced`);
    // Allocated on its own, not from Node's shared pool: the value it becomes may be held long.
    const frame = Buffer.allocUnsafeSlow(itemRecordBytes(item));
    const offset = item.sourceOffset;
    this.readsUnderWay++;
    try {
      const got = await this.reader.readAsync(frame, offset, frame.length);
      return this.valueIn(item, frame, got, offset);
    } finally {
      this.readsUnderWay--;
      if (this.closing && this.readsUnderWay === 0) this.closeNow();
    }
  }

  /**
   * Reads up to `into.length` bytes at `offset`, without blocking: for a background pass over the
   * whole file. The descriptor stays open until the read is done, even if the file is replaced.
   */
  async readChunk(into: Buffer, offset: number): Promise<number> {
    if (this.closing) throw new Error(`${this.name} was replaced`);
    this.readsUnderWay++;
    try {
      return await this.reader.readAsync(into, offset, into.length);
    } finally {
      this.readsUnderWay--;
      if (this.closing && this.readsUnderWay === 0) this.closeNow();
    }
  }

  /**
   * The file's records from its header on, a chunk of `chunkBytes` at a time, without blocking:
   * for a background pass over the whole file (the warm-up, a compaction). A record larger than
   * the chunk is read whole. The buffer is reused: a chunk's data is good until the next one is
   * asked for. Ends at `end` (default: the end of the file) or once the file is replaced. Bad or
   * cut-short data ends it too: quietly, or with an error when `strict` (every byte up to `end`
   * must be a good record).
   */
  async *records(chunkBytes: number, options: { end?: number; strict?: boolean } = {}): AsyncGenerator<RecordChunk> {
    const end = options.end ?? Infinity;
    const stop = (why: string): void => {
      if (options.strict === true) throw new Error(`${this.name} ${why}`);
    };
    let chunk = Buffer.allocUnsafeSlow(chunkBytes);
    let offset = FILE_HEADER_BYTES;
    while (offset < end && this.readable) {
      const wanted = Math.min(chunk.length, end - offset);
      const got = await this.readChunk(chunk.subarray(0, wanted), offset);
      if (got === 0) return stop(`ends at byte ${offset}, short of its ${end} bytes`);
      const data = chunk.subarray(0, got);
      const records: RecordChunk['records'] = [];
      let at = 0;
      let bad: string | null = null;
      for (;;) {
        const frame = tryReadFrame(data, at);
        if (frame.kind === 'short') break;
        if (frame.kind === 'corrupt') {
          bad = frame.why;
          break;
        }
        records.push({ entry: frame.entry, at, next: frame.next });
        at = frame.next;
      }
      if (records.length === 0 && bad === null) {
        // A record larger than the chunk (a value near --max-item-size): read it whole. Or the
        // file ends in the middle of one.
        const length = got >= 8 ? data.readUInt32LE(0) + 8 : 0;
        if (got < wanted || length <= chunk.length) return stop(`at byte ${offset}: a record cut short`);
        chunk = Buffer.allocUnsafeSlow(length);
        continue;
      }
      yield { offset, data, records };
      if (bad !== null) return stop(`at byte ${offset + at}: ${bad}`);
      offset += at;
    }
  }

  /**
   * No item points here any more (a compaction replaced the file): closed once the reads under
   * way are done. Reads after this fail.
   */
  close(): void {
    this.closing = true;
    if (this.readsUnderWay === 0) this.closeNow();
  }

  private closeNow(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.reader.close();
    } catch {
      // only a read descriptor: nothing to lose
    }
  }

  private valueIn(item: Item, frame: Buffer, got: number, offset = item.sourceOffset): Buffer {
    const where = `${this.name} at byte ${offset}`;
    if (got !== frame.length) throw new Error(`the record of ${item.key} in ${where} is cut short (${got} of ${frame.length} bytes)`);
    const read = tryReadFrame(frame, 0);
    if (read.kind !== 'entry') throw new Error(`the record of ${item.key} in ${where} is damaged: ${read.kind === 'corrupt' ? read.why : 'short'}`);
    const entry = read.entry;
    if (entry.kind !== RecordKind.Item || entry.key !== item.key || entry.value.length !== item.valueLength) {
      throw new Error(`the record in ${where} is not ${item.key}'s`);
    }
    return entry.value;
  }
}
