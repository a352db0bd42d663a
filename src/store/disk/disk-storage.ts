/**
 * Disk storage (--data-dir): the store's changes appended to a log, compacted into snapshots,
 * and loaded back at start (docs/architecture.md, "Disk storage"). It is the store's journal:
 * the store tells it every change as it makes it (StoreJournal), it frames and queues the record,
 * and the write path asks it, before replying, to write what is queued (writePending) and under
 * --fsync always to wait until it is durable (durable).
 */
import path from 'node:path';
import type { Logger } from '../../log.js';
import { ThrottledWarning } from '../../throttled-log.js';
import type { Stat } from '../../stats/registry.js';
import { Deletion, ITEM_OVERHEAD_BYTES, Item, VALUE_ON_DISK_OVERHEAD_BYTES } from '../change.js';
import { isExpired } from '../expiry.js';
import type { Durability } from '../durability.js';
import type { KeyState, MemoryStore, StoreJournal } from '../memory-store.js';
import { AppendLog, type FsyncPolicy } from './append-log.js';
import { type DataDirLock, lockDataDir } from './data-dir-lock.js';
import { logName, parseDataFile, snapshotName } from './data-files.js';
import { type DiskFile, type DiskFiles, NodeDiskFiles } from './disk-files.js';
import {
  type DeletionEntry, encodeEntry, encodeEntryInto, fileHeader, FILE_HEADER_BYTES, frameSize, type ItemEntry, type LogEntry, LOG_MAGIC,
  RecordKind, SNAPSHOT_MAGIC, tryReadFrame,
} from './record-codec.js';
import { RecordFile } from './record-file.js';
import { type Cut, recover } from './recovery.js';

/**
 * A compaction starts once the logs since the last snapshot are larger than half the live data
 * and than this: the files then stay within about one and a half times the live data between
 * compactions (the snapshot and half of it in logs), and a small store does not compact all the
 * time.
 */
const COMPACT_MIN_BYTES = 16 * 1024 * 1024;
/**
 * A compaction writes this many bytes of snapshot per turn of the event loop, like the item
 * sweeps' budget: a few milliseconds each, so that serving goes on, yet a snapshot of a few
 * hundred megabytes is written within a second or two (while it is, the old and new files coexist).
 */
const COMPACT_SLICE_BYTES = 4 * 1024 * 1024;
/** A compaction starts, whatever their size, once there are more logs than this since the last snapshot. */
const MAX_LOG_FILES = 8;
/** The values left on disk at start are read back this many bytes per turn of the event loop (warmValues): about 10 ms of work. */
const WARM_CHUNK_BYTES = 1024 * 1024;
/** How often the need for a compaction is checked. */
const COMPACT_CHECK_MS = 1000;
/** Disk errors are logged at most this often; stats count each. */
const ERROR_LOG_INTERVAL_MS = 10_000;

export interface DiskStorageOptions {
  dir: string;
  fsync: FsyncPolicy;
  /** bytes the data files may take (null: no limit but the disk's) */
  diskLimit: number | null;
  /** cut damage in the middle of the files at start, instead of refusing to start */
  recoverTruncate: boolean;
  store: MemoryStore;
  log: Logger;
  /** the file layer (tests put their own underneath); the real file system by default */
  files?: DiskFiles;
  /** how the directory is locked (flock by default) */
  lock?: (dir: string) => Promise<DataDirLock>;
  /** compactions start once the logs pass this (default 64 MiB) */
  compactMinBytes?: number;
  now?: () => number;
}

export interface DiskCounters {
  /** records loaded at start */
  recoveredRecords: number;
  /** bytes read at start */
  recoveredBytes: number;
  /** bytes cut at start: torn tails and accepted damage */
  recoveryDroppedBytes: number;
  /** how long loading took, ms */
  recoveryMs: number;
  compactions: number;
  /** writes refused because the disk could not take them */
  writesRefused: number;
  /** writes undone after their records could not be made durable (--fsync always) */
  writesUndone: number;
}

export interface DiskStatsSource {
  readonly storage: 'memory' | 'disk';
  readonly disk: DiskStorage | null;
}

/** The `storage` section of `stats`: one line in memory mode, the disk's figures with --data-dir. */
export const STORAGE_STATS: ReadonlyArray<Stat<DiskStatsSource>> = [
  { name: 'storage', type: 'text', help: 'where sessions are kept: memory, or disk (--data-dir) with memory in front', metric: 'storage', read: (s) => s.storage },
  { name: 'disk_fsync', type: 'text', help: 'the --fsync policy (always, everysec, no); empty without --data-dir', metric: 'fsync', read: (s) => s.disk?.policy ?? '' },
  { name: 'disk_log_bytes', type: 'gauge', help: 'size of the logs written since the last snapshot, bytes', read: (s) => s.disk?.logBytes ?? 0 },
  { name: 'disk_snapshot_bytes', type: 'gauge', help: 'size of the newest snapshot, bytes', read: (s) => s.disk?.snapshotBytes ?? 0 },
  { name: 'disk_unsynced_bytes', type: 'gauge', help: 'bytes written but not yet made durable by an fsync (what a power loss could take)', read: (s) => s.disk?.unsyncedBytes ?? 0 },
  { name: 'disk_records', type: 'counter', help: 'records written to the log', read: (s) => s.disk?.appendCounters.records ?? 0 },
  { name: 'disk_fsyncs', type: 'counter', help: 'fdatasync calls made', read: (s) => s.disk?.appendCounters.fsyncs ?? 0 },
  { name: 'disk_fsync_us', type: 'counter', help: 'time spent in fdatasync, µs (divide by disk_fsyncs for the mean)', metric: 'disk_fsync_microseconds', read: (s) => s.disk?.appendCounters.fsyncMicros ?? 0 },
  { name: 'disk_fsync_max_us', type: 'gauge', help: 'the longest fdatasync, µs', metric: 'disk_fsync_max_microseconds', read: (s) => s.disk?.appendCounters.fsyncMaxMicros ?? 0 },
  { name: 'disk_errors', type: 'counter', help: 'write and sync errors (a full disk, an I/O error); each is logged, at most once per 10 s', read: (s) => s.disk?.appendCounters.errors ?? 0 },
  { name: 'disk_writes_refused', type: 'counter', help: 'writes answered SERVER_ERROR without being applied: the disk was failing or --disk-limit was reached', read: (s) => s.disk?.counters.writesRefused ?? 0 },
  { name: 'disk_writes_undone', type: 'counter', help: 'writes applied, then undone and answered SERVER_ERROR: their records could not be made durable (--fsync always)', read: (s) => s.disk?.counters.writesUndone ?? 0 },
  { name: 'disk_compactions', type: 'counter', help: 'snapshots written, each replacing the logs before it', read: (s) => s.disk?.counters.compactions ?? 0 },
  { name: 'disk_values_on_disk_only', type: 'gauge', help: 'sessions whose value memory let go to stay under --memory-limit: on disk only, read back when asked for', read: (s) => s.disk?.store.valuesOnDiskCount ?? 0 },
  { name: 'disk_value_reads', type: 'counter', help: 'values read back from disk for sessions not in memory', read: (s) => s.disk?.store.readBackCounters.reads ?? 0 },
  { name: 'disk_value_read_errors', type: 'counter', help: 'values that could not be read back (a damaged record, a failing disk): their sessions were dropped; each is logged', read: (s) => s.disk?.store.readBackCounters.errors ?? 0 },
  { name: 'disk_recovered_records', type: 'gauge', help: 'records loaded from disk at start', read: (s) => s.disk?.counters.recoveredRecords ?? 0 },
  { name: 'disk_recovered_bytes', type: 'gauge', help: 'bytes read from disk at start', read: (s) => s.disk?.counters.recoveredBytes ?? 0 },
  { name: 'disk_recovery_dropped_bytes', type: 'gauge', help: 'bytes cut at start: a torn tail left by a crash, or damage accepted with --recover-truncate', read: (s) => s.disk?.counters.recoveryDroppedBytes ?? 0 },
  { name: 'disk_recovery_ms', type: 'gauge', help: 'how long loading from disk took at start, ms', read: (s) => s.disk?.counters.recoveryMs ?? 0 },
];

export class DiskStorage implements StoreJournal, Durability {
  readonly counters: DiskCounters = {
    recoveredRecords: 0, recoveredBytes: 0, recoveryDroppedBytes: 0, recoveryMs: 0, compactions: 0, writesRefused: 0, writesUndone: 0,
  };
  private log!: AppendLog;
  private generation = 0;
  /** the logs since the newest snapshot (all of them when there is none), and their size before the current one */
  private olderLogBytes = 0;
  private snapshotSize = 0;
  /** the files recovery loaded, in order, until warmValues() has been through them */
  private loadedFiles: string[] = [];
  private warmingUp = false;
  /** warmValues() under way (or done) */
  private warming: Promise<void> = Promise.resolve();
  /** the log files recovery will replay after the snapshot: one per start since it, and the current one */
  private logFiles = 1;
  /** under `always`: what each key held before each write not yet durable, oldest first */
  private captures: Array<{ seq: number; state: KeyState }> = [];
  private compacting = false;
  private compactTimer: NodeJS.Timeout | null = null;
  private readonly files: DiskFiles;
  private readonly errors: ThrottledWarning;
  private lock: DataDirLock | null = null;
  private closed = false;
  /** the data files items' values are read back from, by name */
  private readonly recordFiles = new Map<string, RecordFile>();
  /** the file of the log being written */
  private currentRecords!: RecordFile;
  /** a failed compaction's snapshot: items may point into it; closed by the next compaction that succeeds */
  private abandoned: RecordFile[] = [];
  private readonly readErrors: ThrottledWarning;
  private lastReadError: Record<string, unknown> = {};

  private constructor(private readonly options: DiskStorageOptions) {
    this.files = options.files ?? new NodeDiskFiles();
    this.errors = new ThrottledWarning(options.log, 'disk storage: write failed; writes are refused until the disk takes them again',
      () => ({ dir: options.dir, error: this.log?.failing?.message ?? null, fsync: options.fsync }), ERROR_LOG_INTERVAL_MS);
    this.readErrors = new ThrottledWarning(options.log, 'disk storage: a value could not be read back from disk; its session was dropped',
      () => ({ dir: options.dir, ...this.lastReadError, total: options.store.readBackCounters.errors }), ERROR_LOG_INTERVAL_MS);
  }

  get store(): MemoryStore {
    return this.options.store;
  }

  /**
   * Locks the directory, loads what it holds into the store, and starts a new log: from then on
   * the store's changes are journaled here. Throws DataDirLockedError, DataDirError (damage in
   * the middle), or the I/O error that stopped it.
   */
  static async open(options: DiskStorageOptions): Promise<DiskStorage> {
    const disk = new DiskStorage(options);
    const { dir, log } = options;
    disk.files.makeDir(dir);
    disk.lock = await (options.lock ?? lockDataDir)(dir);
    // Memory becomes a cache: under --memory-limit, values stay on disk only (from recovery on).
    options.store.keepValuesOnDisk((key, error) => disk.readFailed(key, error));
    try {
      disk.load();
      await disk.startLog();
    } catch (error) {
      await disk.lock.release();
      throw error;
    }
    options.store.attachJournal(disk);
    disk.compactTimer = setInterval(() => disk.maybeCompact(), COMPACT_CHECK_MS);
    disk.compactTimer.unref();
    log.info({ dir, fsync: options.fsync, generation: disk.generation }, 'disk storage: logging changes');
    disk.warming = disk.warmValues();
    return disk;
  }

  /** Settles once the values recovery left on disk are in memory, or as many as fit. */
  whenWarm(): Promise<void> {
    return this.warming;
  }

  get policy(): FsyncPolicy {
    return this.options.fsync;
  }

  get syncsEachWrite(): boolean {
    return this.options.fsync === 'always';
  }

  get appendCounters() {
    return this.log.counters;
  }

  get logBytes(): number {
    return this.olderLogBytes + this.log.currentBytes;
  }

  get snapshotBytes(): number {
    return this.snapshotSize;
  }

  get unsyncedBytes(): number {
    return this.log.unsyncedBytes;
  }

  /**
   * Why a write must be refused now, before it is applied, or null: the disk is failing (its
   * records could not be kept), or the files reached --disk-limit.
   */
  refusal(): string | null {
    const failing = this.log.failing;
    if (failing !== null) return `disk storage failing (${describe(failing)}); write not applied`;
    const limit = this.options.diskLimit;
    if (limit !== null && this.snapshotSize + this.logBytes >= limit) return `disk storage full (--disk-limit ${limit} bytes reached); write not applied`;
    return null;
  }

  /** A value that could not be read back from disk: logged (throttled) with the key's first characters only, a session id being a credential. */
  private readFailed(key: string, error: Error): void {
    this.lastReadError = { key: `${key.slice(0, 8)}…`, err: error.message };
    this.readErrors.add();
  }

  /** Counts a refusal that refusal() answered. */
  refused(): void {
    this.counters.writesRefused++;
  }

  /** The next record's sequence number: a write that moved it appended records. */
  get nextSeq(): number {
    return this.log.nextSeq;
  }

  /** Whether records are queued, not yet written to the file. */
  get recordsWaiting(): boolean {
    return this.log.queuedBytes > 0;
  }

  /** Writes what is queued to the file, before the replies that acknowledge it go out. */
  writePending(): void {
    this.log.writePending();
  }

  /** Under `always`: settles true once the records up to `seq` are durable, false if they were undone. */
  durable(seq: number): Promise<boolean> {
    return this.log.durable(seq);
  }

  /** Writes and syncs everything, stops, releases the directory (a clean stop). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.compactTimer !== null) clearInterval(this.compactTimer);
    await this.warming;
    this.options.store.attachJournal(null);
    const complete = await this.log.flush();
    if (!complete) this.options.log.error({ dir: this.options.dir, unsyncedBytes: this.log.unsyncedBytes }, 'disk storage: stopped with changes not on disk (the disk was failing)');
    this.log.close();
    for (const file of [...this.recordFiles.values(), ...this.abandoned]) file.close();
    this.errors.flush();
    this.readErrors.flush();
    await this.lock?.release();
  }

  // StoreJournal: called by the store, in the order it changes things.

  before(key: string): void {
    if (this.options.fsync !== 'always') return;
    if (this.captures.length >= 1024 && this.captures[0]!.seq <= this.log.durableSeq) this.trimCaptures();
    this.captures.push({ seq: this.log.nextSeq, state: this.options.store.stateOf(key) });
  }

  item(item: Item): void {
    // Where the record lands, for the value to be read back from once memory lets it go.
    const offset = this.log.currentBytes;
    this.append(itemEntry(item));
    item.source = this.currentRecords;
    item.sourceOffset = offset;
  }

  deletion(deletion: Deletion, remembered: boolean): void {
    this.append(remembered ? deletionEntry(deletion) : { kind: RecordKind.Removal, key: deletion.key });
  }

  removal(key: string): void {
    this.append({ kind: RecordKind.Removal, key });
  }

  flush(): void {
    this.append({ kind: RecordKind.Flush });
  }

  private append(entry: LogEntry): void {
    this.log.append(entry);
  }

  private trimCaptures(): void {
    const durable = this.log.durableSeq;
    let drop = 0;
    while (drop < this.captures.length && this.captures[drop]!.seq <= durable) drop++;
    if (drop > 0) this.captures.splice(0, drop);
  }

  /** Records from `fromSeq` on were dropped: put back what each key held before them, newest first. */
  private undo(fromSeq: number): void {
    let undone = 0;
    for (let i = this.captures.length - 1; i >= 0; i--) {
      const capture = this.captures[i]!;
      if (capture.seq < fromSeq) break;
      this.options.store.restoreKey(capture.state);
      undone++;
    }
    this.captures = this.captures.filter((c) => c.seq < fromSeq);
    this.counters.writesUndone += undone;
  }

  /** Loads the directory's snapshot and logs into the store. */
  private load(): void {
    const { dir, store, log } = this.options;
    const now = this.options.now ?? Date.now;
    const started = Date.now();
    const at = now();
    log.info({ dir }, 'disk storage: loading');
    const result = recover({
      files: this.files,
      dir,
      recoverTruncate: this.options.recoverTruncate,
      apply: (entry, file, offset) => loadEntry(store, entry, at, this.recordFile(file), offset),
      progress: (records, bytes) => log.info({ dir, records, bytes, seconds: (Date.now() - started) / 1000 }, 'disk storage: loading'),
    });
    for (const cut of result.cuts) logCut(log, dir, cut);
    this.loadedFiles = result.files;
    this.generation = result.generation;
    this.snapshotSize = result.snapshotBytes;
    this.olderLogBytes = result.logBytes;
    this.logFiles = result.files.length - (result.snapshotBytes > 0 ? 1 : 0) + 1;
    this.counters.recoveredRecords = result.records;
    this.counters.recoveredBytes = result.bytes;
    this.counters.recoveryDroppedBytes = result.cuts.reduce((sum, c) => sum + c.bytes, 0);
    this.counters.recoveryMs = Date.now() - started;
    for (const name of result.stale) this.files.remove(path.join(dir, name));
    log.info({
      dir, records: result.records, bytes: result.bytes, files: result.files.length, items: store.itemCount,
      droppedBytes: this.counters.recoveryDroppedBytes, seconds: this.counters.recoveryMs / 1000,
    }, 'disk storage: loaded');
  }

  /** The file `name` as items' values are read back from it, opened for reading once. */
  private recordFile(name: string, writtenEnd?: () => number): RecordFile {
    let file = this.recordFiles.get(name);
    if (file === undefined) {
      file = new RecordFile(name, this.files.open(path.join(this.options.dir, name), 'read'), writtenEnd);
      this.recordFiles.set(name, file);
    }
    return file;
  }

  /**
   * A new log file, durable with its header, and the file its items' values are read back from
   * (as far as it is written). The caller makes it current once records go to it: while the file
   * is being created, records still go to the log before it.
   */
  private async createLog(generation: number): Promise<{ file: DiskFile; records: RecordFile }> {
    const name = logName(generation);
    const file = await this.createFile(name, LOG_MAGIC);
    return { file, records: this.recordFile(name, () => (this.log.currentName === name ? this.log.currentWritten : Infinity)) };
  }

  /** A fresh log for this run: a crash's torn tail stays behind in the file before it. */
  private async startLog(): Promise<void> {
    this.generation++;
    const first = await this.createLog(this.generation);
    this.currentRecords = first.records;
    this.log = new AppendLog({ name: logName(this.generation), file: first.file, size: FILE_HEADER_BYTES }, {
      policy: this.options.fsync,
      onDropped: (fromSeq) => this.undo(fromSeq),
      onError: () => this.errors.add(),
      onRecovered: () => this.options.log.info({ dir: this.options.dir }, 'disk storage: writing again'),
    });
  }

  /** A new file with its header, durable with its name. */
  private async createFile(name: string, magic: string): Promise<DiskFile> {
    const file = this.files.open(path.join(this.options.dir, name), 'create');
    file.write(fileHeader(magic), 0);
    await file.sync();
    await this.files.syncDir(this.options.dir);
    return file;
  }

  /**
   * Closes the files a compaction replaced (and the snapshots of failed ones): every live item
   * points into the new snapshot or a later log now. Under `always`, a write not yet durable may
   * still be undone, putting back an item whose record was in one of them: its value is held in
   * memory first.
   */
  private closeReplaced(generation: number): void {
    const replaced = new Set<RecordFile>(this.abandoned);
    for (const [name, file] of this.recordFiles) {
      const parsed = parseDataFile(name);
      if (parsed !== null && parsed.generation < generation) {
        replaced.add(file);
        this.recordFiles.delete(name);
      }
    }
    for (const { state } of this.captures) {
      const item = state.item;
      if (item === undefined || item.inMemory) continue;
      if ((item.source !== null && replaced.has(item.source as RecordFile)) || (state.source !== null && replaced.has(state.source as RecordFile))) {
        try {
          this.options.store.holdValueOf(item);
        } catch {
          // unreadable already: an undo would put back a session that reads as lost
        }
      }
    }
    for (const file of replaced) file.close();
    this.abandoned = [];
  }

  /**
   * Brings the values recovery left on disk into memory, in the background: the files loaded,
   * in the order loaded, a chunk per turn of the event loop, each value whose item still points
   * at that record held again, until every value is in memory or the next would not fit under
   * --memory-limit (then the rest stay on disk, read back when asked for). Sequential reads of
   * whole chunks: far cheaper than reading each value back on its first request.
   */
  private async warmValues(): Promise<void> {
    const { store, log, dir } = this.options;
    if (store.valuesOnDiskCount === 0) return;
    this.warmingUp = true;
    const started = Date.now();
    let values = 0;
    let bytes = 0;
    let full = false;
    try {
      for (const name of this.loadedFiles) {
        const source = this.recordFiles.get(name);
        let offset = FILE_HEADER_BYTES;
        let chunk = Buffer.allocUnsafeSlow(WARM_CHUNK_BYTES);
        while (source !== undefined && source.readable && !this.closed && !full && store.valuesOnDiskCount > 0) {
          const got = await source.readChunk(chunk, offset);
          if (got === 0 || this.closed || !source.readable) break;
          const data = chunk.subarray(0, got);
          let at = 0;
          for (;;) {
            const frame = tryReadFrame(data, at);
            if (frame.kind !== 'entry') break;
            const entry = frame.entry;
            const item = entry.kind === RecordKind.Item ? store.onDiskAt(entry.key, source, offset + at) : null;
            if (item !== null && entry.kind === RecordKind.Item) {
              const value = Buffer.allocUnsafeSlow(entry.value.length);
              entry.value.copy(value);
              if (!store.warmValue(item, value)) {
                full = true;
                break;
              }
              values++;
              bytes += value.length;
            }
            at = frame.next;
          }
          if (full) break;
          if (at === 0) {
            // A record larger than the chunk (a value near --max-item-size): read it whole. Or
            // the end of what recovery read.
            const length = got >= 8 ? data.readUInt32LE(0) + 8 : 0;
            if (got < chunk.length || length <= chunk.length) break;
            chunk = Buffer.allocUnsafeSlow(length);
            continue;
          }
          offset += at;
          if (got < chunk.length && at === got) break;
        }
      }
    } catch (error) {
      // The values stay on disk, read back when asked for (and reported then if they cannot be).
      if (!this.closed) log.warn({ dir, err: describe(error as Error) }, 'disk storage: warming values into memory stopped');
    }
    this.loadedFiles = [];
    this.warmingUp = false;
    if (values > 0 || full) {
      log.info({ dir, values, bytes, onDiskOnly: store.valuesOnDiskCount, seconds: (Date.now() - started) / 1000 },
        full ? 'disk storage: values warmed into memory up to --memory-limit; the rest are read back when asked for' : 'disk storage: values warmed into memory');
    }
  }

  private maybeCompact(): void {
    // Not while the values are warmed: a snapshot would read each value still on disk back on
    // its own, and move the items' records out of the files the warm-up reads in sequence.
    if (this.compacting || this.closed || this.log.failing !== null || this.warmingUp) return;
    const store = this.options.store;
    // What the live data takes on disk: key and value and about 40 bytes of record each.
    const held = store.itemCount - store.valuesOnDiskCount;
    const live = store.bytes - held * (ITEM_OVERHEAD_BYTES - 40) - store.valuesOnDiskCount * (VALUE_ON_DISK_OVERHEAD_BYTES - 40) + store.tombstoneCount * 60;
    const grown = this.logBytes >= Math.max(this.options.compactMinBytes ?? COMPACT_MIN_BYTES, live / 2);
    // Also when restarts left many small logs, each a file for recovery to open; and when the
    // files near --disk-limit, if a snapshot would give back a good part of the logs.
    const limit = this.options.diskLimit;
    const nearLimit = limit !== null && this.snapshotSize + this.logBytes >= limit * 0.75 && this.logBytes > live / 4;
    if (!grown && !nearLimit && this.logFiles <= MAX_LOG_FILES) return;
    void this.compact();
  }

  /**
   * Writes a snapshot of everything live and drops the files it replaces, a slice per turn of the
   * event loop, so that serving goes on meanwhile. The log is rotated first: every change from
   * then on is in the new generation's log, which recovery replays after the snapshot, so a key
   * changed while the snapshot is written ends as its last change says.
   */
  async compact(): Promise<void> {
    if (this.compacting || this.closed) return;
    this.compacting = true;
    const { dir, log, store } = this.options;
    const generation = this.generation + 1;
    const tmpName = snapshotName(generation, true);
    let snapshot: DiskFile | null = null;
    let snapshotRecords: RecordFile | null = null;
    const started = Date.now();
    const errorsBefore = this.log.counters.errors;
    try {
      const nextLog = await this.createLog(generation);
      const olderBytes = this.logBytes;
      this.olderLogBytes += this.log.currentBytes;
      this.log.rotate({ name: logName(generation), file: nextLog.file, size: FILE_HEADER_BYTES });
      // From here on, records go to the new file: so do the items' pointers.
      this.currentRecords = nextLog.records;
      this.generation = generation;
      this.logFiles++;
      const file = this.files.open(path.join(dir, tmpName), 'create');
      snapshot = file;
      file.write(fileHeader(SNAPSHOT_MAGIC), 0);
      // Read through a descriptor of its own, which the rename below leaves valid.
      snapshotRecords = new RecordFile(snapshotName(generation), this.files.open(path.join(dir, tmpName), 'read'));
      let size = FILE_HEADER_BYTES;
      let records = 0;
      // Every live item, then every deletion still remembered, encoded straight into one buffer
      // that goes to the file each time it fills: a slice per turn of the event loop. A value
      // memory let go is read back from its record for it.
      let sliceNow = Date.now();
      const entries = liveEntries(store, () => sliceNow);
      const buffer = Buffer.allocUnsafeSlow(COMPACT_SLICE_BYTES);
      /** the items in the buffer, and their offsets in the snapshot */
      const placed: Array<{ item: Item; offset: number }> = [];
      const into = snapshotRecords;
      const writeOut = (data: Buffer) => {
        file.write(data, size);
        size += data.length;
        // From now on their values are read back from the snapshot: the files it replaces go.
        for (const { item, offset } of placed) {
          item.source = into;
          item.sourceOffset = offset;
        }
        placed.length = 0;
      };
      for (;;) {
        let used = 0;
        let done = false;
        while (used < COMPACT_SLICE_BYTES) {
          const next = entries.next();
          if (next.done === true) {
            done = true;
            break;
          }
          const held = next.value;
          let entry: LogEntry;
          try {
            entry = held instanceof Item ? itemEntry(held) : deletionEntry(held);
          } catch (error) {
            // Left out of the snapshot; a session read of it drops it.
            this.readFailed(held.key, error as Error);
            continue;
          }
          records++;
          const need = frameSize(entry);
          if (need > buffer.length - used) {
            if (used > 0) writeOut(buffer.subarray(0, used));
            used = 0;
            // A record larger than the buffer (a value near --max-item-size) goes on its own.
            if (need > buffer.length) {
              if (held instanceof Item) placed.push({ item: held, offset: size });
              writeOut(encodeEntry(entry));
              continue;
            }
          }
          if (held instanceof Item) placed.push({ item: held, offset: size + used });
          used = encodeEntryInto(entry, buffer, used);
        }
        if (used > 0) writeOut(buffer.subarray(0, used));
        if (done) break;
        await new Promise((resolve) => setImmediate(resolve));
        if (this.closed) throw new Error('stopping');
        sliceNow = Date.now();
      }
      await snapshot.sync();
      // A write undone meanwhile (--fsync always, the disk failing) may be in the snapshot: drop it.
      if (this.log.counters.errors !== errorsBefore) throw new Error('the disk failed while the snapshot was written');
      snapshot.close();
      snapshot = null;
      this.files.rename(path.join(dir, tmpName), path.join(dir, snapshotName(generation)));
      await this.files.syncDir(dir);
      // The snapshot holds everything before this generation: its files are done with.
      for (const name of this.files.list(dir)) {
        const file = parseDataFile(name);
        if (file !== null && file.generation < generation) this.files.remove(path.join(dir, name));
      }
      await this.files.syncDir(dir);
      this.recordFiles.set(snapshotName(generation), snapshotRecords);
      this.closeReplaced(generation);
      this.snapshotSize = size;
      this.olderLogBytes = 0;
      this.logFiles = 1;
      this.counters.compactions++;
      log.info({ dir, generation, records, snapshotBytes: size, logBytesReplaced: olderBytes, seconds: (Date.now() - started) / 1000 }, 'disk storage: compacted');
    } catch (error) {
      if (snapshot !== null) {
        try { snapshot.close(); } catch { /* being dropped anyway */ }
        this.files.remove(path.join(dir, tmpName));
      }
      // Items may point into it already: read through its descriptor until a compaction succeeds.
      if (snapshotRecords !== null && !this.recordFiles.has(snapshotName(generation))) this.abandoned.push(snapshotRecords);
      if (!this.closed) log.warn({ dir, err: describe(error as Error) }, 'disk storage: compaction failed; the logs are kept, and it is tried again later');
    } finally {
      this.compacting = false;
    }
  }
}

/** What a snapshot holds: every item not expired, then every deletion still to be remembered. */
function* liveEntries(store: MemoryStore, now: () => number): Generator<Item | Deletion> {
  for (const item of store.allItems()) if (!isExpired(item.expiresAt, now())) yield item;
  for (const deletion of store.allDeletions()) if (now() < deletion.until) yield deletion;
}

/** An item as its log record: what the store holds of it now. */
function itemEntry(item: Item): ItemEntry {
  return { kind: RecordKind.Item, key: item.key, value: item.value, flags: item.flags, expiresAt: item.expiresAt, cas: item.cas, version: item.version, origin: item.origin };
}

/** A remembered deletion as its log record. */
function deletionEntry(deletion: Deletion): DeletionEntry {
  return { kind: RecordKind.Deletion, key: deletion.key, version: deletion.version, origin: deletion.origin, until: deletion.until };
}

/** Applies one record read back from disk to the store, as it was when written; `source` and `offset` are where it is. */
function loadEntry(store: MemoryStore, entry: LogEntry, now: number, source: RecordFile, offset: number): void {
  switch (entry.kind) {
    case RecordKind.Item:
      // Loaded with its value on disk only: allocating and copying a million values is most of
      // what start-up would cost. warmValues() brings them into memory once the node serves.
      store.loadItem(entry.key, null, entry.flags, entry.expiresAt, entry.cas, entry.version, entry.origin, now, source, offset, entry.value.length);
      return;
    case RecordKind.Deletion:
      store.loadDeletion(entry.key, entry.version, entry.origin, entry.until, now);
      return;
    case RecordKind.Removal:
      store.forget(entry.key);
      return;
    case RecordKind.Flush:
      store.flush();
      return;
  }
}

function logCut(log: Logger, dir: string, cut: Cut): void {
  log.warn({ dir, file: cut.file, offset: cut.offset, droppedBytes: cut.bytes, droppedRecords: cut.records, why: cut.why },
    `disk storage: cut ${cut.records} record(s), ${cut.bytes} bytes, at byte ${cut.offset} of ${cut.file}`);
}

function describe(error: Error): string {
  const code = (error as NodeJS.ErrnoException).code;
  return code !== undefined ? `${code}: ${error.message}` : error.message;
}
