/**
 * The file access of disk storage, behind an interface so that a test can put a file layer of its
 * own underneath: one that loses, on a simulated power cut, everything not yet made durable
 * (test/support/power-loss-files.ts). Everything here is what POSIX promises and no more: a
 * file's data is durable once fdatasync'd, a new name or a rename once its directory is fsync'd.
 *
 * Writes are synchronous (the log writes a batch from the event loop, as Redis writes its AOF
 * from its event loop: a page-cache write takes microseconds); syncs are asynchronous, so a
 * slow disk never blocks the loop.
 */
import fs from 'node:fs';
import path from 'node:path';

export interface DiskFile {
  /** Writes all of `data` at `position`; throws on an I/O error (a partial write may remain). */
  write(data: Buffer, position: number): void;
  /** Reads up to `length` bytes at `position` into `into`; returns how many were read. */
  read(into: Buffer, position: number, length: number): number;
  /** The same without blocking the event loop (a session's value read back from disk). */
  readAsync(into: Buffer, position: number, length: number): Promise<number>;
  /** Makes the data written so far durable (fdatasync). */
  sync(): Promise<void>;
  truncate(size: number): void;
  size(): number;
  close(): void;
}

export interface DiskFiles {
  /** Creates the directory and its parents if missing. */
  makeDir(dir: string): void;
  /** The names in `dir`. */
  list(dir: string): string[];
  /**
   * Opens `file` for reading and writing; `create` makes a new empty file (replacing one there),
   * `read` opens an existing one for reading only.
   */
  open(file: string, mode: 'create' | 'existing' | 'read'): DiskFile;
  rename(from: string, to: string): void;
  remove(file: string): void;
  /** Makes the names in `dir` (new files, renames, removals) durable (fsync of the directory). */
  syncDir(dir: string): Promise<void>;
  /** Free bytes on the file system that holds `dir`, when known. */
  freeBytes(dir: string): number | null;
}

/** The real file system, through node:fs. */
export class NodeDiskFiles implements DiskFiles {
  makeDir(dir: string): void {
    fs.mkdirSync(dir, { recursive: true });
  }

  list(dir: string): string[] {
    return fs.readdirSync(dir);
  }

  open(file: string, mode: 'create' | 'existing' | 'read'): DiskFile {
    return new NodeDiskFile(fs.openSync(file, mode === 'create' ? 'w+' : mode === 'read' ? 'r' : 'r+'));
  }

  rename(from: string, to: string): void {
    fs.renameSync(from, to);
  }

  remove(file: string): void {
    fs.rmSync(file, { force: true });
  }

  syncDir(dir: string): Promise<void> {
    return new Promise((resolve, reject) => {
      fs.open(dir, 'r', (openError, fd) => {
        if (openError) return reject(openError);
        fs.fsync(fd, (syncError) => fs.close(fd, () => (syncError ? reject(syncError) : resolve())));
      });
    });
  }

  freeBytes(dir: string): number | null {
    try {
      const s = fs.statfsSync(path.resolve(dir));
      return s.bavail * s.bsize;
    } catch {
      return null;
    }
  }
}

class NodeDiskFile implements DiskFile {
  constructor(private readonly fd: number) {}

  write(data: Buffer, position: number): void {
    let done = 0;
    while (done < data.length) done += fs.writeSync(this.fd, data, done, data.length - done, position + done);
  }

  read(into: Buffer, position: number, length: number): number {
    return fs.readSync(this.fd, into, 0, length, position);
  }

  readAsync(into: Buffer, position: number, length: number): Promise<number> {
    return new Promise((resolve, reject) => fs.read(this.fd, into, 0, length, position, (error, bytes) => (error ? reject(error) : resolve(bytes))));
  }

  sync(): Promise<void> {
    return new Promise((resolve, reject) => fs.fdatasync(this.fd, (error) => (error ? reject(error) : resolve())));
  }

  truncate(size: number): void {
    fs.ftruncateSync(this.fd, size);
  }

  size(): number {
    return fs.fstatSync(this.fd).size;
  }

  close(): void {
    fs.closeSync(this.fd);
  }
}
