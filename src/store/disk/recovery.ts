/**
 * Recovery: loads what a data directory holds, every log in the order written
 * (docs/architecture.md, "Disk storage").
 *
 * Damage is told apart by where it is. A record that ends past the end of the last log, or a
 * bad record after which no good record follows in that file, is a torn tail: the write a crash
 * interrupted (or a flipped byte in the last record). It is cut, and reported. Bad data followed
 * by good records, or anywhere in an older log, is damage in the middle: loading
 * only what comes before it would silently lose the rest, so recovery stops with a DataDirError
 * unless the operator accepted the loss (--recover-truncate), in which case it is cut there.
 */
import path from 'node:path';
import type { DiskFile, DiskFiles } from './disk-files.js';
import { type DataFile, parseDataFile } from './data-files.js';
import { checkFileHeader, FILE_HEADER_BYTES, type LogEntry, LOG_MAGIC, tryReadFrame } from './record-codec.js';

/** Files are read this much at a time. */
const CHUNK_BYTES = 8 * 1024 * 1024;

export class DataDirError extends Error {
  readonly code = 'DATA_DIR_DAMAGED';
}

export interface Cut {
  file: string;
  /** where the cut was made: the file now ends here */
  offset: number;
  /** bytes dropped after it, in this file and in later logs dropped whole */
  bytes: number;
  /** records dropped: the torn or damaged one, and the good ones after it (in later logs too) */
  records: number;
  why: string;
}

export interface RecoveryResult {
  /** the highest generation found (0: an empty directory) */
  generation: number;
  records: number;
  /** bytes loaded: the size of the files kept */
  bytes: number;
  /** the files loaded, oldest first, with their size once cut */
  files: Array<{ name: string; bytes: number }>;
  cuts: Cut[];
  /** files with nothing to load (a log a crash caught before its header), or dropped after damage, to remove */
  stale: string[];
}

export interface RecoveryOptions {
  files: DiskFiles;
  dir: string;
  /** each record, with the file it is in and its offset there */
  apply: (entry: LogEntry, file: string, offset: number) => void;
  /** cut damage in the middle instead of stopping */
  recoverTruncate: boolean;
  /** called about every 64 MB read */
  progress?: (records: number, bytes: number) => void;
}

export function recover(options: RecoveryOptions): RecoveryResult {
  const { files, dir } = options;
  const chain = files.list(dir).map(parseDataFile).filter((f): f is DataFile => f !== null).sort(byGeneration);
  const stale: string[] = [];
  const result: RecoveryResult = {
    generation: Math.max(0, ...chain.map((f) => f.generation)),
    records: 0, bytes: 0, files: [], cuts: [], stale,
  };
  let nextProgress = 64 * 1024 * 1024;
  for (let i = 0; i < chain.length; i++) {
    const entry = chain[i]!;
    const last = i === chain.length - 1;
    const file = files.open(path.join(dir, entry.name), 'existing');
    try {
      const read = readFile(file, entry, last, options, (records, bytes) => {
        if (result.bytes + bytes >= nextProgress) {
          nextProgress += 64 * 1024 * 1024;
          options.progress?.(result.records + records, result.bytes + bytes);
        }
      });
      if (read.empty === true) {
        stale.push(entry.name);
        continue;
      }
      result.records += read.records;
      result.bytes += read.end;
      result.files.push({ name: entry.name, bytes: read.end });
      if (read.cut !== null) {
        file.truncate(read.cut.offset);
        // Damage in the middle, accepted: what came after it is dropped too, whole logs included.
        if (!last) {
          for (const later of chain.slice(i + 1)) {
            const f = files.open(path.join(dir, later.name), 'existing');
            const size = f.size();
            read.cut.bytes += size;
            read.cut.records += size > FILE_HEADER_BYTES ? countGoodRecords(f, FILE_HEADER_BYTES, size) : 0;
            f.close();
            stale.push(later.name);
          }
          read.cut.why += `; ${chain.length - i - 1} later file(s) dropped`;
        }
        result.cuts.push(read.cut);
        if (!last) break;
      }
    } finally {
      file.close();
    }
  }
  return result;
}

function byGeneration(a: DataFile, b: DataFile): number {
  return a.generation - b.generation;
}

interface FileRead {
  records: number;
  /** a log with not even its header: nothing to load, to remove */
  empty?: boolean;
  /** where the good data ends */
  end: number;
  cut: Cut | null;
}

function readFile(file: DiskFile, entry: DataFile, last: boolean, options: RecoveryOptions, progress: (records: number, bytes: number) => void): FileRead {
  const size = file.size();
  const header = Buffer.alloc(FILE_HEADER_BYTES);
  const headerRead = file.read(header, 0, FILE_HEADER_BYTES);
  // A log that a crash caught before its header reached the disk holds nothing: it is empty.
  if (size < FILE_HEADER_BYTES) return { records: 0, end: 0, cut: null, empty: true };
  const headerProblem = checkFileHeader(header.subarray(0, headerRead), LOG_MAGIC);
  if (headerProblem !== null) return damaged(entry, 0, size, 0, `${entry.name} ${headerProblem}`, false, countGoodRecords(file, FILE_HEADER_BYTES, size), options);
  let buffer = Buffer.alloc(0);
  /** file offset of buffer[0] */
  let base = FILE_HEADER_BYTES;
  let at = 0;
  let records = 0;
  for (;;) {
    const offset = base + at;
    const frame = tryReadFrame(buffer, at);
    if (frame.kind === 'entry') {
      options.apply(frame.entry, entry.name, offset);
      records++;
      at = frame.next;
      if ((records & 0x3fff) === 0) progress(records, base + at);
      continue;
    }
    // Need more bytes: read the next chunk, keeping what is left of this one.
    if (frame.kind === 'short' && offset < size) {
      const rest = buffer.subarray(at);
      const want = Math.max(CHUNK_BYTES, frameLength(rest) + 64);
      const next = Buffer.allocUnsafe(rest.length + Math.min(want, size - offset - rest.length));
      rest.copy(next, 0);
      const got = next.length > rest.length ? file.read(next.subarray(rest.length), offset + rest.length, next.length - rest.length) : 0;
      if (got > 0) {
        buffer = next.subarray(0, rest.length + got);
        base = offset;
        at = 0;
        continue;
      }
    }
    if (offset >= size) return { records, end: size, cut: null };
    // Bad or torn: a tail if nothing good follows in this file.
    const why = frame.kind === 'short' ? 'a record that ends past the end of the file' : frame.why;
    const tail = last && nextGoodRecord(file, offset + 1, size) < 0;
    return damaged(entry, offset, size, records, `${entry.name} at byte ${offset}: ${why}`, tail, tail ? 1 : 1 + countGoodRecords(file, offset + 1, size), options);
  }
}

/** The length a frame at the start of `data` claims, or 0. */
function frameLength(data: Buffer): number {
  return data.length >= 8 ? data.readUInt32LE(0) + 8 : 0;
}

function damaged(entry: DataFile, offset: number, size: number, records: number, why: string, tail: boolean, dropped: number, options: RecoveryOptions): FileRead {
  const cut: Cut = { file: entry.name, offset, bytes: size - offset, records: dropped, why };
  if (tail) return { records, end: offset, cut: { ...cut, why: `torn tail: ${why}` } };
  if (!options.recoverTruncate) {
    throw new DataDirError(`data directory ${options.dir} is damaged in the middle: ${why}; ${size - offset} bytes and ${dropped - 1} good records follow it. `
      + 'Start with --recover-truncate to drop everything from there on and keep what comes before it, '
      + 'or restore the directory from a backup');
  }
  return { records, end: offset, cut: { ...cut, why: `damage in the middle, cut (--recover-truncate): ${why}` } };
}

/**
 * Where the first good record at or after `from` starts, or -1: a good record after bad data is
 * the mark of damage in the middle rather than a torn tail. A random 8 bytes passing as a frame
 * header whose 32-bit checksum matches is a one in four billion chance per position.
 */
function nextGoodRecord(file: DiskFile, from: number, size: number): number {
  const chunk = Buffer.allocUnsafe(CHUNK_BYTES);
  for (let start = from; start + 9 <= size; start += CHUNK_BYTES - 9) {
    const got = file.read(chunk, start, Math.min(CHUNK_BYTES, size - start));
    for (let at = 0; at + 9 <= got; at++) {
      const length = chunk.readUInt32LE(at);
      const kind = chunk[at + 8]!;
      if (length === 0 || kind < 1 || kind > 4 || start + at + 8 + length > size) continue;
      if (goodRecordAt(file, start + at, length)) return start + at;
    }
    if (got < CHUNK_BYTES) break;
  }
  return -1;
}

function goodRecordAt(file: DiskFile, offset: number, length: number): boolean {
  const frame = Buffer.allocUnsafe(8 + length);
  return file.read(frame, offset, frame.length) === frame.length && tryReadFrame(frame, 0).kind === 'entry';
}

/** The good records from `from` to the end of the file, skipping over bad data: what a cut drops. */
function countGoodRecords(file: DiskFile, from: number, size: number): number {
  let count = 0;
  const header = Buffer.allocUnsafe(8);
  let at = nextGoodRecord(file, from, size);
  while (at >= 0) {
    count++;
    file.read(header, at, 8);
    at += 8 + header.readUInt32LE(0);
    if (at + 8 > size) break;
    file.read(header, at, 8);
    const length = header.readUInt32LE(0);
    if (length === 0 || at + 8 + length > size || !goodRecordAt(file, at, length)) at = nextGoodRecord(file, at + 1, size);
  }
  return count;
}
