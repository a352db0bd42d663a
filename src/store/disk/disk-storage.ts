/**
 * Disk storage (--data-dir): the store's changes appended to logs, the oldest compacted away as
 * they fill with stale records, and loaded back at start (docs/architecture.md, "Disk storage").
 * It is the store's journal: the store tells it every change as it makes it (StoreJournal), it
 * frames and queues the record, and the write path asks it, before replying, to write what is
 * queued (writePending) and under --fsync always to wait until it is durable (durable).
 */
import path from 'node:path';
import type { Logger } from '../../log.js';
import { ThrottledWarning } from '../../throttled-log.js';
import type { Stat } from '../../stats/registry.js';
import { Deletion, ITEM_OVERHEAD_BYTES, Item, VALUE_ON_DISK_OVERHEAD_BYTES } from '../change.js';
import type { Durability } from '../durability.js';
import type { KeyState, MemoryStore, StoreJournal } from '../memory-store.js';
import { AppendLog, type FsyncPolicy } from './append-log.js';
import { type DataDirLock, lockDataDir } from './data-dir-lock.js';
import { logName } from './data-files.js';
import { type DiskFile, type DiskFiles, NodeDiskFiles } from './disk-files.js';
import { type DeletionEntry, fileHeader, FILE_HEADER_BYTES, type ItemEntry, type LogEntry, LOG_MAGIC, RecordKind } from './record-codec.js';
import { RecordFile } from './record-file.js';
import { type Cut, recover } from './recovery.js';

/**
 * The oldest log is compacted once the files take more than this many times the live data:
 * they stay within about one and a half times it, plus the log a compaction is copying out of
 * (at most 1 / SEGMENTS_PER_LIVE_DATA of it): within twice the live data at the peak.
 */
const COMPACT_AT = 1.5;
/** The log being written is closed, and the next started, once it holds this share of the live data (and COMPACT_MIN_BYTES). */
const SEGMENTS_PER_LIVE_DATA = 8;
/**
 * Below this, the files are left alone whatever their share of stale records, and a log is not
 * closed for its size: a small store does not compact all the time.
 */
const COMPACT_MIN_BYTES = 16 * 1024 * 1024;
/**
 * A compaction reads this many bytes of a log per turn of the event loop, like the item sweeps'
 * budget: a few milliseconds each, so that serving goes on.
 */
const COMPACT_SLICE_BYTES = 4 * 1024 * 1024;
/** The oldest log is compacted, whatever the sizes, while there are more logs than this (restarts each start one). */
const MAX_LOG_FILES = 32;
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
  /** files below this are not compacted, and a log is not closed for its size below it (default 16 MiB) */
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
  /** logs compacted (each removed once its current records were copied forward) */
  compactions: number;
  /** records, and their bytes, that compactions copied forward */
  compactionCopiedRecords: number;
  compactionCopiedBytes: number;
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
  { name: 'disk_log_bytes', type: 'gauge', help: 'size of the data files (the logs), bytes', read: (s) => s.disk?.logBytes ?? 0 },
  { name: 'disk_log_files', type: 'gauge', help: 'logs in the data directory, the one being written included', read: (s) => s.disk?.logFiles ?? 0 },
  { name: 'disk_unsynced_bytes', type: 'gauge', help: 'bytes written but not yet made durable by an fsync (what a power loss could take)', read: (s) => s.disk?.unsyncedBytes ?? 0 },
  { name: 'disk_records', type: 'counter', help: 'records written to the log', read: (s) => s.disk?.appendCounters.records ?? 0 },
  { name: 'disk_fsyncs', type: 'counter', help: 'fdatasync calls made', read: (s) => s.disk?.appendCounters.fsyncs ?? 0 },
  { name: 'disk_fsync_us', type: 'counter', help: 'time spent in fdatasync, µs (divide by disk_fsyncs for the mean)', metric: 'disk_fsync_microseconds', read: (s) => s.disk?.appendCounters.fsyncMicros ?? 0 },
  { name: 'disk_fsync_max_us', type: 'gauge', help: 'the longest fdatasync, µs', metric: 'disk_fsync_max_microseconds', read: (s) => s.disk?.appendCounters.fsyncMaxMicros ?? 0 },
  { name: 'disk_errors', type: 'counter', help: 'write and sync errors (a full disk, an I/O error); each is logged, at most once per 10 s', read: (s) => s.disk?.appendCounters.errors ?? 0 },
  { name: 'disk_writes_refused', type: 'counter', help: 'writes answered SERVER_ERROR without being applied: the disk was failing or --disk-limit was reached', read: (s) => s.disk?.counters.writesRefused ?? 0 },
  { name: 'disk_writes_undone', type: 'counter', help: 'writes applied, then undone and answered SERVER_ERROR: their records could not be made durable (--fsync always)', read: (s) => s.disk?.counters.writesUndone ?? 0 },
  { name: 'disk_compactions', type: 'counter', help: 'logs compacted: their records still current copied to the newest log, the file removed', read: (s) => s.disk?.counters.compactions ?? 0 },
  { name: 'disk_compaction_copied_bytes', type: 'counter', help: 'bytes of records compactions copied forward (what they cost the disk beyond the writes)', read: (s) => s.disk?.counters.compactionCopiedBytes ?? 0 },
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
    recoveredRecords: 0, recoveredBytes: 0, recoveryDroppedBytes: 0, recoveryMs: 0, compactions: 0, compactionCopiedRecords: 0, compactionCopiedBytes: 0,
    writesRefused: 0, writesUndone: 0,
  };
  private log!: AppendLog;
  private generation = 0;
  /** the logs before the one being written, oldest first, with their sizes */
  private older: Array<{ name: string; bytes: number }> = [];
  /** the bytes of the logs compactions removed */
  private removedBytes = 0;
  /**
   * No compaction for size below this: set when a pass found its logs nearly all live, so that an
   * estimate of the live data that is too low cannot have every check copy everything again.
   */
  private noCompactionBelow = 0;
  /** the files recovery loaded, in order, until warmValues() has been through them */
  private loadedFiles: string[] = [];
  private warmingUp = false;
  /** warmValues() under way (or done) */
  private warming: Promise<void> = Promise.resolve();
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

  /** What the data files take: every log, the one being written with what is queued for it. */
  get logBytes(): number {
    let bytes = this.log.currentBytes;
    for (const file of this.older) bytes += file.bytes;
    return bytes;
  }

  get logFiles(): number {
    return this.older.length + 1;
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
    if (limit !== null && this.logBytes >= limit) return `disk storage full (--disk-limit ${limit} bytes reached); write not applied`;
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
    for (const file of this.recordFiles.values()) file.close();
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

  /** Loads the directory's logs into the store. */
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
    this.loadedFiles = result.files.map((file) => file.name);
    this.older = result.files;
    this.generation = result.generation;
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
   * Closes a log a compaction removed: every live item points into a later log now. Under
   * `always`, a write not yet durable may still be undone, putting back an item whose record was
   * in it: its value is held in memory first.
   */
  private closeReplaced(replaced: RecordFile): void {
    for (const { state } of this.captures) {
      const item = state.item;
      if (item === undefined || item.inMemory) continue;
      if (item.source === replaced || state.source === replaced) {
        try {
          this.options.store.holdValueOf(item);
        } catch {
          // unreadable already: an undo would put back a session that reads as lost
        }
      }
    }
    replaced.close();
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
        if (source === undefined) continue;
        for await (const { offset, records } of source.records(WARM_CHUNK_BYTES)) {
          if (this.closed || !source.readable || store.valuesOnDiskCount === 0) break;
          for (const { entry, at } of records) {
            const item = entry.kind === RecordKind.Item ? store.onDiskAt(entry.key, source, offset + at) : null;
            if (item === null || entry.kind !== RecordKind.Item) continue;
            const value = Buffer.allocUnsafeSlow(entry.value.length);
            entry.value.copy(value);
            if (!store.warmValue(item, value)) {
              full = true;
              break;
            }
            values++;
            bytes += value.length;
          }
          if (full) break;
        }
        if (full || this.closed) break;
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

  private now(): number {
    return (this.options.now ?? Date.now)();
  }

  /** What the live data takes on disk, about: key and value and about 40 bytes of record each. */
  private liveBytes(): number {
    const store = this.options.store;
    const held = store.itemCount - store.valuesOnDiskCount;
    return store.bytes - held * (ITEM_OVERHEAD_BYTES - 40) - store.valuesOnDiskCount * (VALUE_ON_DISK_OVERHEAD_BYTES - 40) + store.tombstoneCount * 60;
  }

  private get compactMinBytes(): number {
    return this.options.compactMinBytes ?? COMPACT_MIN_BYTES;
  }

  /** The log being written has reached its size: the next is started, and this one can be compacted later. */
  private rotationDue(live: number): boolean {
    return this.log.currentBytes >= Math.max(this.compactMinBytes, live / SEGMENTS_PER_LIVE_DATA);
  }

  /**
   * A compaction is due: the files take more than COMPACT_AT times the live data; or they near
   * --disk-limit and a good part of them is not live; or restarts left more logs than
   * MAX_LOG_FILES, each a file for recovery to open.
   */
  private compactionDue(live: number): boolean {
    const total = this.logBytes;
    if (total >= Math.max(this.compactMinBytes, live * COMPACT_AT, this.noCompactionBelow)) return true;
    const limit = this.options.diskLimit;
    if (limit !== null && total >= limit * 0.75 && total - live > live / 4) return true;
    return this.older.length + 1 > MAX_LOG_FILES;
  }

  private maybeCompact(): void {
    // Not while the values are warmed: a compaction would read each value still on disk back on
    // its own, and move the items' records out of the files the warm-up reads in sequence.
    if (this.compacting || this.closed || this.log.failing !== null || this.warmingUp) return;
    const live = this.liveBytes();
    if (!this.rotationDue(live) && !this.compactionDue(live)) return;
    void this.maintain(async () => {
      // The log being written is never compacted: with nothing before it, it is closed first.
      if (this.rotationDue(this.liveBytes()) || this.older.length === 0) await this.rotate();
      // One pass at most: should the estimate of the live data be off, a compaction that gives
      // nothing back does not run on and on; the next check goes on.
      for (let files = this.older.length; files > 0 && !this.closed && this.compactionDue(this.liveBytes()); files--) {
        await this.compactOldest();
        // The copies and the writes meanwhile fill the log being written: closed at its size, as ever.
        if (this.rotationDue(this.liveBytes())) await this.rotate();
      }
    });
  }

  /**
   * Starts a new log and compacts every one before it, oldest first: afterwards the newest log
   * holds everything live. The once-a-second check does the same a file at a time, as needed.
   */
  async compact(): Promise<void> {
    await this.maintain(async () => {
      await this.rotate();
      for (let files = this.older.length; files > 0 && !this.closed; files--) await this.compactOldest();
    });
  }

  /** Runs `work` as the one compaction under way, and reports what it did (or why it failed). */
  private async maintain(work: () => Promise<void>): Promise<void> {
    if (this.compacting || this.closed) return;
    this.compacting = true;
    const { dir, log } = this.options;
    const before = { files: this.counters.compactions, records: this.counters.compactionCopiedRecords, bytes: this.counters.compactionCopiedBytes, removed: this.removedBytes };
    const started = Date.now();
    try {
      await work();
    } catch (error) {
      if (!this.closed) log.warn({ dir, err: describe(error as Error) }, 'disk storage: compaction failed; the logs are kept, and it is tried again later');
    } finally {
      this.compacting = false;
    }
    const files = this.counters.compactions - before.files;
    const copied = this.counters.compactionCopiedBytes - before.bytes;
    const removed = this.removedBytes - before.removed;
    this.noCompactionBelow = removed > 0 && copied > removed * 0.9 ? this.logBytes * 1.25 : 0;
    if (files > 0) {
      log.info({
        dir, files, copiedRecords: this.counters.compactionCopiedRecords - before.records, copiedBytes: copied, removedBytes: removed, bytesNow: this.logBytes, logFiles: this.older.length + 1, seconds: (Date.now() - started) / 1000,
      }, 'disk storage: compacted');
    }
  }

  /** Starts the next log: the one being written joins the older ones, whole. */
  private async rotate(): Promise<void> {
    const generation = this.generation + 1;
    const next = await this.createLog(generation);
    this.generation = generation;
    // What is queued goes to the old file first: its size is then all of it. Should the disk not
    // take it, the log stays as it is (its queue goes to it once the disk takes writes again),
    // and the new file goes unused.
    if (!this.log.writePending()) {
      next.file.close();
      next.records.close();
      this.recordFiles.delete(logName(generation));
      this.files.remove(path.join(this.options.dir, logName(generation)));
      throw this.log.failing ?? new Error('the log could not be written');
    }
    this.older.push({ name: this.log.currentName, bytes: this.log.currentBytes });
    this.log.rotate({ name: logName(generation), file: next.file, size: FILE_HEADER_BYTES });
    // From here on, records go to the new file: so do the items' pointers.
    this.currentRecords = next.records;
  }

  /**
   * Compacts the oldest log: its records still current (an item's newest record, a deletion
   * still remembered) are copied, byte for byte, to the end of the log being written, the items
   * pointed at their copies, the copies made durable, and the file removed. Every other record in
   * it is dropped: one a later record replaced, an expired item, a deletion no longer remembered,
   * a removal or a flush (nothing older is left for them to undo). A slice per turn of the event
   * loop, so that serving goes on; a write meanwhile makes its key's record in the file stale, and
   * one not yet copied is not copied. Each key's records stay in the order written, so recovery
   * still ends each key as its last change says. The files grow by the copies until the file
   * goes: by a log's size at most (SEGMENTS_PER_LIVE_DATA).
   */
  private async compactOldest(): Promise<void> {
    const { dir, store } = this.options;
    const oldest = this.older[0]!;
    const source = this.recordFile(oldest.name);
    /** items pointed at their copies: pointed back should the copies not reach the disk */
    const moved: Array<{ item: Item; from: number; into: RecordFile; to: number }> = [];
    /** the sequence number of the last copy */
    let lastCopy = 0;
    try {
      for await (const { offset, data, records } of source.records(COMPACT_SLICE_BYTES, { end: oldest.bytes, strict: true })) {
        if (this.closed) throw new Error('stopping');
        const now = this.now();
        const into = this.currentRecords;
        const placed: Array<{ item: Item; from: number; to: number }> = [];
        for (const { entry, at, next } of records) {
          const item = entry.kind === RecordKind.Item ? store.currentAt(entry.key, source, offset + at, now) : null;
          if (item !== null || (entry.kind === RecordKind.Deletion && store.remembersDeletion(entry.key, entry.version, entry.origin, now))) {
            const to = this.log.currentBytes;
            lastCopy = this.log.appendFrame(data.subarray(at, next));
            this.counters.compactionCopiedRecords++;
            this.counters.compactionCopiedBytes += next - at;
            if (item !== null) placed.push({ item, from: offset + at, to });
          }
        }
        // In the file before the items point at their copies: a value on disk only is read from there.
        if (!this.log.writePending()) throw this.log.failing ?? new Error('the log could not be written');
        for (const { item, from, to } of placed) {
          item.source = into;
          item.sourceOffset = to;
          moved.push({ item, from, into, to });
        }
        await new Promise((resolve) => setImmediate(resolve));
      }
      // Durable before the file goes, whatever --fsync says: a power cut finds each record in
      // one file or the other.
      if (lastCopy > 0 && !(await this.log.syncThrough(lastCopy))) throw this.log.failing ?? new Error('the copies could not be made durable');
      if (this.closed) throw new Error('stopping');
      this.files.remove(path.join(dir, oldest.name));
      await this.files.syncDir(dir);
    } catch (error) {
      // The file stays, and each item not written since points back into it.
      for (const { item, from, into, to } of moved) {
        if (item.source === into && item.sourceOffset === to) {
          item.source = source;
          item.sourceOffset = from;
        }
      }
      throw error;
    }
    this.older.shift();
    this.recordFiles.delete(oldest.name);
    this.closeReplaced(source);
    this.removedBytes += oldest.bytes;
    this.counters.compactions++;
  }
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
