/**
 * A file layer in memory that keeps, beside what each file holds now, what it would hold after a
 * power cut: only what was made durable. POSIX's promise, and no more: a file's data is durable
 * once synced (fdatasync); a directory's names (new files, renames, removals) once the directory
 * is synced. powerLoss() throws away the rest, as a machine that lost power does; a kill -9
 * could not show it, since the kernel keeps what the process wrote.
 *
 * Writes can be made to fail (failWrites: a full disk), as can syncs.
 */
import path from 'node:path';
import type { DiskFile, DiskFiles } from '../../src/store/disk/disk-files.js';

class Inode {
  data = Buffer.alloc(0);
  durable = Buffer.alloc(0);
}

export class PowerLossFiles implements DiskFiles {
  /** names as the running system sees them */
  private names = new Map<string, Inode>();
  /** names as a power cut would leave them */
  private durableNames = new Map<string, Inode>();
  private dirs = new Set<string>();
  /** an error code each write throws (ENOSPC, EIO), or null */
  writeError: string | null = null;
  syncError: string | null = null;
  /** how many syncs were made */
  syncs = 0;
  /** the most the files took together, bytes, since resetPeak(): a compaction's copies included */
  peakBytes = 0;
  /** how long each fdatasync takes, ms (0: a turn of the microtask queue), as a real disk takes time */
  syncDelayMs = 0;
  /** counts power cuts: a file opened before the last one belongs to a process that is gone */
  epoch = 0;

  failWrites(code: string | null): void {
    this.writeError = code;
  }

  /** What the files take together now, bytes. */
  totalBytes(): number {
    let bytes = 0;
    for (const inode of new Set(this.names.values())) bytes += inode.data.length;
    return bytes;
  }

  resetPeak(): void {
    this.peakBytes = this.totalBytes();
  }

  /** Called as a file grows. */
  noteGrowth(): void {
    this.peakBytes = Math.max(this.peakBytes, this.totalBytes());
  }

  /**
   * The machine loses power: everything not durable is gone. Files opened before it change
   * nothing any more: whatever their process still tries to write (a stop that ran on) is lost.
   */
  powerLoss(): void {
    this.epoch++;
    this.names = new Map(this.durableNames);
    for (const inode of new Set(this.names.values())) inode.data = Buffer.from(inode.durable);
  }

  /** What `file` holds now (for tests that damage it). */
  contents(file: string): Buffer {
    const inode = this.names.get(path.resolve(file));
    if (inode === undefined) throw new Error(`no file ${file}`);
    return inode.data;
  }

  /** Replaces what `file` holds, durably (a test damaging a file). */
  setContents(file: string, data: Buffer): void {
    const inode = this.names.get(path.resolve(file));
    if (inode === undefined) throw new Error(`no file ${file}`);
    inode.data = Buffer.from(data);
    inode.durable = Buffer.from(data);
  }

  makeDir(dir: string): void {
    this.dirs.add(path.resolve(dir));
  }

  list(dir: string): string[] {
    const prefix = `${path.resolve(dir)}/`;
    return [...this.names.keys()].filter((name) => name.startsWith(prefix)).map((name) => name.slice(prefix.length));
  }

  open(file: string, mode: 'create' | 'existing' | 'read'): DiskFile {
    const name = path.resolve(file);
    let inode = this.names.get(name);
    if (mode === 'create' || inode === undefined) {
      if (mode !== 'create') throw Object.assign(new Error(`ENOENT: ${file}`), { code: 'ENOENT' });
      inode = new Inode();
      this.names.set(name, inode);
    }
    return new MemoryFile(inode, this, this.epoch);
  }

  rename(from: string, to: string): void {
    const inode = this.names.get(path.resolve(from));
    if (inode === undefined) throw Object.assign(new Error(`ENOENT: ${from}`), { code: 'ENOENT' });
    this.names.delete(path.resolve(from));
    this.names.set(path.resolve(to), inode);
  }

  remove(file: string): void {
    this.names.delete(path.resolve(file));
  }

  async syncDir(dir: string): Promise<void> {
    await Promise.resolve();
    if (this.syncError !== null) throw Object.assign(new Error(`${this.syncError}: sync failed`), { code: this.syncError });
    const prefix = `${path.resolve(dir)}/`;
    for (const name of [...this.durableNames.keys()]) if (name.startsWith(prefix) && !this.names.has(name)) this.durableNames.delete(name);
    for (const [name, inode] of this.names) if (name.startsWith(prefix)) this.durableNames.set(name, inode);
  }

  freeBytes(): number | null {
    return null;
  }
}

class MemoryFile implements DiskFile {
  constructor(private readonly inode: Inode, private readonly owner: PowerLossFiles, private readonly epoch: number) {}

  /** Opened before the last power cut: its process is gone. */
  private get dead(): boolean {
    return this.epoch !== this.owner.epoch;
  }

  write(data: Buffer, position: number): void {
    if (this.dead) return;
    if (this.owner.writeError !== null) throw Object.assign(new Error(`${this.owner.writeError}: write failed`), { code: this.owner.writeError });
    const end = position + data.length;
    if (end > this.inode.data.length) {
      const grown = Buffer.alloc(end);
      this.inode.data.copy(grown);
      this.inode.data = grown;
    }
    data.copy(this.inode.data, position);
    this.owner.noteGrowth();
  }

  read(into: Buffer, position: number, length: number): number {
    if (position >= this.inode.data.length) return 0;
    return this.inode.data.copy(into, 0, position, Math.min(this.inode.data.length, position + length));
  }

  async readAsync(into: Buffer, position: number, length: number): Promise<number> {
    await Promise.resolve();
    return this.read(into, position, length);
  }

  async sync(): Promise<void> {
    await (this.owner.syncDelayMs > 0 ? new Promise((resolve) => setTimeout(resolve, this.owner.syncDelayMs)) : Promise.resolve());
    if (this.dead) return;
    if (this.owner.syncError !== null) throw Object.assign(new Error(`${this.owner.syncError}: sync failed`), { code: this.owner.syncError });
    this.owner.syncs++;
    this.inode.durable = Buffer.from(this.inode.data);
  }

  truncate(size: number): void {
    if (this.dead) return;
    this.inode.data = Buffer.from(this.inode.data.subarray(0, size));
  }

  size(): number {
    return this.inode.data.length;
  }

  close(): void {
    // nothing to release
  }
}
