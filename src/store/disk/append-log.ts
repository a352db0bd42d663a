/**
 * The append-only log: framed records written in batches, made durable by the --fsync policy
 * (docs/architecture.md, "Disk storage"), in the manner of Redis' appendfsync:
 *
 * - `always`: a write waits for its record's fdatasync. Group commit: the records of every write
 *   that arrived while one fdatasync ran go to disk with the next one, so a busy node syncs once
 *   per round trip to the disk, not once per write.
 * - `everysec`: one fdatasync a second. The records are written to the file (the kernel) before
 *   any reply that depends on them leaves (writePending, called before replies are sent), so a
 *   process crash loses nothing; a machine crash loses at most about the last second.
 * - `no`: written as above, synced when the kernel decides.
 *
 * Each record gets a sequence number. On an I/O error (a full disk, say) under `always`, every
 * record not yet durable is dropped, the file cut back to its durable length and the writes
 * that made them are undone by the caller (onDropped): their clients get SERVER_ERROR, and what
 * the disk holds is what memory holds. Under the other policies the records written are already
 * acknowledged: they stay queued and are written again every second until the disk takes them.
 */
import type { DiskFile } from './disk-files.js';
import { encodeEntryInto, frameSize, type LogEntry } from './record-codec.js';

/** The write buffer starts this large, and goes back to it after a burst made it grow. */
const BUFFER_BYTES = 1024 * 1024;

export type FsyncPolicy = 'always' | 'everysec' | 'no';
export const FSYNC_POLICIES: readonly FsyncPolicy[] = ['always', 'everysec', 'no'];

/** How often `everysec` syncs, and how often a failing log tries again. */
export const SYNC_INTERVAL_MS = 1000;

export interface AppendLogCounters {
  /** fdatasync calls that succeeded */
  fsyncs: number;
  /** their total time, µs */
  fsyncMicros: number;
  /** the longest one, µs */
  fsyncMaxMicros: number;
  /** write or sync errors */
  errors: number;
  /** records written to the file */
  records: number;
  /** bytes written to the file */
  bytes: number;
}

interface OpenFile {
  readonly name: string;
  readonly file: DiskFile;
  /** bytes written to it */
  written: number;
  /** of which durable */
  synced: number;
}

export interface AppendLogOptions {
  policy: FsyncPolicy;
  /** records from `dropped` on were dropped after an I/O error under `always`: undo them */
  onDropped: (fromSeq: number, error: Error) => void;
  /** an I/O error, or the first success after errors */
  onError: (error: Error) => void;
  onRecovered: () => void;
  now?: () => bigint;
}

export class AppendLog {
  readonly counters: AppendLogCounters = { fsyncs: 0, fsyncMicros: 0, fsyncMaxMicros: 0, errors: 0, records: 0, bytes: 0 };
  private current: OpenFile;
  /** rotated out, with data not durable yet: synced, then closed */
  private older: OpenFile[] = [];
  /** records queued, encoded straight into this buffer: one write takes them all */
  private buffer = Buffer.allocUnsafeSlow(BUFFER_BYTES);
  private pendingBytes = 0;
  /** sequence numbers: of the last record appended, written to a file, durable */
  private appendedSeq = 0;
  private writtenSeq = 0;
  private syncedSeq = 0;
  private syncing = false;
  private syncScheduled = false;
  private writeScheduled = false;
  private waiters: Array<{ seq: number; resolve: (ok: boolean) => void }> = [];
  private timer: NodeJS.Timeout | null = null;
  private failure: Error | null = null;
  private closed = false;
  /** sequence numbers of records dropped after I/O errors (never reused), newest last */
  private dropped: Array<{ from: number; to: number }> = [];

  constructor(first: { name: string; file: DiskFile; size: number }, private readonly options: AppendLogOptions) {
    this.current = { name: first.name, file: first.file, written: first.size, synced: first.size };
    this.timer = setInterval(() => this.tick(), SYNC_INTERVAL_MS);
    this.timer.unref();
  }

  get policy(): FsyncPolicy {
    return this.options.policy;
  }

  /** The error that keeps the log from writing, or null. */
  get failing(): Error | null {
    return this.failure;
  }

  /** The last record known durable. */
  get durableSeq(): number {
    return this.syncedSeq;
  }

  /** The sequence number the next record will get. */
  get nextSeq(): number {
    return this.appendedSeq + 1;
  }

  /** The file records go to now, and its size with what is queued. */
  get currentName(): string {
    return this.current.name;
  }

  get currentBytes(): number {
    return this.current.written + this.pendingBytes;
  }

  /** How much of the current file is written: records past it are still queued. */
  get currentWritten(): number {
    return this.current.written;
  }

  /** Bytes queued, not yet written to the file. */
  get queuedBytes(): number {
    return this.pendingBytes;
  }

  /** Bytes written to files but not durable yet. */
  get unsyncedBytes(): number {
    return [...this.older, this.current].reduce((sum, f) => sum + f.written - f.synced, 0) + this.pendingBytes;
  }

  /** Queues one record; returns its sequence number. */
  append(entry: LogEntry): number {
    this.makeRoom(frameSize(entry));
    this.pendingBytes = encodeEntryInto(entry, this.buffer, this.pendingBytes);
    return this.appended();
  }

  /** Queues one record framed already (a compaction's copy of a record, byte for byte); returns its sequence number. */
  appendFrame(frame: Buffer): number {
    this.makeRoom(frame.length);
    this.pendingBytes += frame.copy(this.buffer, this.pendingBytes);
    return this.appended();
  }

  private makeRoom(size: number): void {
    if (this.pendingBytes + size <= this.buffer.length) return;
    const grown = Buffer.allocUnsafeSlow(Math.max(this.buffer.length * 2, this.pendingBytes + size));
    this.buffer.copy(grown, 0, 0, this.pendingBytes);
    this.buffer = grown;
  }

  private appended(): number {
    // A backstop for records no reply waits on (copies from other nodes, evictions): written
    // by the end of this turn of the event loop.
    if (!this.writeScheduled) {
      this.writeScheduled = true;
      setImmediate(() => {
        this.writeScheduled = false;
        this.writePending();
      });
    }
    return ++this.appendedSeq;
  }

  /**
   * Writes what is queued to the file, synchronously: called before replies go out, so that
   * what they acknowledge is in the kernel. Returns whether nothing is left queued.
   */
  writePending(): boolean {
    if (this.pendingBytes === 0 || this.closed) return this.pendingBytes === 0;
    const data = this.buffer.subarray(0, this.pendingBytes);
    const count = this.appendedSeq - this.writtenSeq;
    try {
      this.current.file.write(data, this.current.written);
    } catch (error) {
      this.failed(error as Error);
      return false;
    }
    this.current.written += data.length;
    this.pendingBytes = 0;
    if (this.buffer.length > 4 * BUFFER_BYTES) this.buffer = Buffer.allocUnsafeSlow(BUFFER_BYTES);
    this.writtenSeq = this.appendedSeq;
    this.counters.records += count;
    this.counters.bytes += data.length;
    if (this.options.policy !== 'always') this.recovered();
    return true;
  }

  /**
   * Under `always`: settles true once the records up to `seq` (default: all appended so far) are
   * durable, false if they were dropped after an I/O error. Under the other policies: whether
   * they are written.
   */
  durable(seq = this.appendedSeq): Promise<boolean> {
    if (this.dropped.some((range) => seq >= range.from && seq <= range.to)) return Promise.resolve(false);
    if (this.options.policy !== 'always') return Promise.resolve(this.writePending());
    if (seq <= this.syncedSeq) return Promise.resolve(true);
    return new Promise((resolve) => {
      this.waiters.push({ seq, resolve });
      this.scheduleSync();
    });
  }

  /**
   * Starts a new file: records from now on go to `next`. The one before is synced in the
   * background (with the next sync) and closed. What is queued goes to the old file first.
   */
  rotate(next: { name: string; file: DiskFile; size: number }): void {
    this.writePending();
    this.older.push(this.current);
    this.current = { name: next.name, file: next.file, written: next.size, synced: next.size };
    this.scheduleSync();
  }

  /**
   * Whatever the policy, settles true once the records up to `seq` are durable: a compaction's
   * copies, before the file they were copied from goes. Writes that keep arriving meanwhile do not
   * hold it up (flush waits for everything). False if the log failed first or dropped them.
   */
  async syncThrough(seq: number): Promise<boolean> {
    if (this.writtenSeq < seq && !this.writePending()) return false;
    while (this.syncedSeq < seq) {
      if (this.failure !== null || this.closed) return false;
      if (this.syncing) await new Promise((resolve) => setTimeout(resolve, 1));
      else await this.syncCycle();
    }
    return !this.dropped.some((range) => seq >= range.from && seq <= range.to) && this.failure === null;
  }

  /** Writes and syncs everything (a clean stop); true if it all got there. */
  async flush(): Promise<boolean> {
    if (!this.writePending()) return false;
    while (this.syncing) await new Promise((resolve) => setTimeout(resolve, 1));
    await this.syncCycle();
    return this.failure === null && this.unsyncedBytes === 0;
  }

  /** Stops the timer and closes the files (after flush, for a clean stop). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.timer !== null) clearInterval(this.timer);
    for (const f of [...this.older, this.current]) {
      try {
        f.file.close();
      } catch {
        // closing is best effort: the data that mattered was synced or is reported lost
      }
    }
    for (const w of this.waiters.splice(0)) w.resolve(false);
  }

  private tick(): void {
    if (this.closed) return;
    // everysec syncs once a second; a failing log tries again once a second, whatever the policy.
    if (this.failure !== null && this.options.policy === 'always') {
      this.recovered();
      return;
    }
    if (!this.writePending()) return;
    if (this.options.policy === 'everysec' || this.failure !== null || this.older.length > 0) void this.syncCycle();
  }

  private scheduleSync(): void {
    if (this.syncScheduled || this.syncing) return;
    this.syncScheduled = true;
    // After this turn of the event loop: every write that arrived in it shares the fdatasync.
    setImmediate(() => {
      this.syncScheduled = false;
      void this.syncCycle();
    });
  }

  private async syncCycle(): Promise<void> {
    if (this.syncing || this.closed) return;
    if (!this.writePending()) return;
    const target = this.writtenSeq;
    const files = [...this.older, this.current].filter((f) => f.written > f.synced);
    const marks = files.map((f) => f.written);
    this.syncing = true;
    const started = this.options.now?.() ?? process.hrtime.bigint();
    try {
      await Promise.all(files.map((f) => f.file.sync()));
    } catch (error) {
      this.syncing = false;
      this.failed(error as Error);
      return;
    }
    this.syncing = false;
    if (this.closed) return;
    if (files.length > 0) {
      const micros = Number(((this.options.now?.() ?? process.hrtime.bigint()) - started) / 1000n);
      this.counters.fsyncs++;
      this.counters.fsyncMicros += micros;
      this.counters.fsyncMaxMicros = Math.max(this.counters.fsyncMaxMicros, micros);
    }
    files.forEach((f, i) => { f.synced = Math.max(f.synced, marks[i]!); });
    this.syncedSeq = Math.max(this.syncedSeq, target);
    // Files rotated out and now durable are done with.
    this.older = this.older.filter((f) => {
      if (f.written > f.synced) return true;
      try { f.file.close(); } catch { /* nothing left to lose */ }
      return false;
    });
    if (this.options.policy !== 'always' || this.failure === null) this.recovered();
    const done = this.waiters.filter((w) => w.seq <= this.syncedSeq);
    this.waiters = this.waiters.filter((w) => w.seq > this.syncedSeq);
    for (const w of done) w.resolve(true);
    // Writes that arrived during that sync go with the next one (group commit).
    if (this.waiters.length > 0) this.scheduleSync();
  }

  private failed(error: Error): void {
    this.counters.errors++;
    const first = this.failure === null;
    this.failure = error;
    if (first) this.options.onError(error);
    if (this.options.policy !== 'always') return;
    // Nothing that is not durable stays: cut every file back to what was synced, forget what is
    // queued, and have the writes undone. What the disk holds is then what memory holds.
    const from = this.syncedSeq + 1;
    for (const f of [...this.older, this.current]) {
      try {
        f.file.truncate(f.synced);
      } catch {
        // The next write overwrites from the durable length all the same.
      }
      f.written = f.synced;
    }
    this.pendingBytes = 0;
    if (this.appendedSeq >= from) {
      this.dropped.push({ from, to: this.appendedSeq });
      if (this.dropped.length > 64) this.dropped.shift();
    }
    this.writtenSeq = this.appendedSeq;
    // The dropped records count as settled, never as durable.
    this.syncedSeq = this.appendedSeq;
    for (const w of this.waiters.splice(0)) w.resolve(false);
    this.options.onDropped(from, error);
  }

  private recovered(): void {
    if (this.failure === null) return;
    this.failure = null;
    this.options.onRecovered();
  }
}
