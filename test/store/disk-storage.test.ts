/**
 * Disk storage over a file layer that loses, on a simulated power cut, whatever was not made
 * durable (test/support/power-loss-files.ts): what each --fsync policy really keeps, recovery
 * of torn and damaged files, compaction, and a disk that fills up.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Executor } from '../../src/command/executor.js';
import type { Reply } from '../../src/protocol/types.js';
import { StoreMode } from '../../src/store/types.js';
import type { FsyncPolicy } from '../../src/store/disk/append-log.js';
import { logName } from '../../src/store/disk/data-files.js';
import { DiskStorage } from '../../src/store/disk/disk-storage.js';
import { DataDirError } from '../../src/store/disk/recovery.js';
import { afterWrite, whenDurable } from '../../src/store/durability.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { capturedLog, type LogLine } from '../support/captured-log.js';
import { PowerLossFiles } from '../support/power-loss-files.js';

const DIR = '/data';
const NO_LOCK = async () => ({ release: async () => undefined });

interface Node {
  disk: DiskStorage;
  store: MemoryStore;
  lines: LogLine[];
  /** runs a command as the daemon does: the reply waits for the disk under --fsync always */
  run(command: Parameters<Executor['execute']>[0]): Promise<Reply>;
}

const open: DiskStorage[] = [];
afterEach(async () => {
  for (const disk of open.splice(0)) await disk.close().catch(() => undefined);
});

async function start(files: PowerLossFiles, fsync: FsyncPolicy, extra: { recoverTruncate?: boolean; compactMinBytes?: number; cluster?: boolean; diskLimit?: number; maxItemSize?: number; memoryLimit?: number } = {}): Promise<Node> {
  const store = new MemoryStore({ memoryLimit: extra.memoryLimit ?? 64 << 20, maxItemSize: extra.maxItemSize ?? 1 << 20, rememberDeletions: extra.cluster ?? false, nodeId: 'n1' });
  const { log, lines } = capturedLog();
  const disk = await DiskStorage.open({
    dir: DIR, fsync, diskLimit: extra.diskLimit ?? null, recoverTruncate: extra.recoverTruncate ?? false, store, log, files, lock: NO_LOCK,
    compactMinBytes: extra.compactMinBytes,
  });
  open.push(disk);
  const executor = new Executor({ store, version: 'test', refuseWrites: () => disk.refusal(), onRefused: () => disk.refused() });
  return {
    disk, store, lines,
    run: async (command) => {
      // Values on disk only are read back first, as the daemon does (src/daemon.ts).
      await executor.readBack(command);
      const seq = disk.nextSeq;
      const reply = whenDurable(executor.execute(command), afterWrite(disk, seq));
      // What a connection does before it sends its replies (src/server/reply-batch.ts).
      disk.writePending();
      return reply;
    },
  };
}

/** A clean stop, as the daemon's: what is queued written and synced, the files closed. */
async function stop(node: Node): Promise<void> {
  open.splice(open.indexOf(node.disk), 1);
  await node.disk.close();
}

/** The node's process is gone (no clean stop): nothing more reaches the files. */
function crash(node: Node): void {
  open.splice(open.indexOf(node.disk), 1);
  // Timers stop; the files are left as they are.
  void node.disk.close().catch(() => undefined);
}

const set = (key: string, value: string, exptime = 0) => ({ kind: 'store' as const, mode: StoreMode.Set, key, flags: 7, exptime, value: Buffer.from(value), cas: 0 });
const value = (node: Node, key: string) => node.store.peek(key, Date.now())?.value.toString() ?? null;

describe('--fsync always', () => {
  it('a power cut loses no acknowledged write; writes that arrive together share one fdatasync', async () => {
    const files = new PowerLossFiles();
    const node = await start(files, 'always');
    const acknowledged = new Map<string, string>();
    const syncsBefore = files.syncs;
    // 200 writes in flight at once, as 200 PHP workers would send them.
    await Promise.all(Array.from({ length: 200 }, async (_, i) => {
      const reply = await node.run(set(`k${i % 50}`, `v${i}`));
      expect(reply).toMatchObject({ kind: 'status' });
      acknowledged.set(`k${i % 50}`, `v${i}`);
    }));
    expect(files.syncs - syncsBefore).toBeLessThan(20);
    // More writes, and the power goes while they are in flight: those not answered may go.
    const inFlight = Array.from({ length: 50 }, (_, i) => node.run(set(`k${i}`, `late${i}`)).then(() => acknowledged.set(`k${i}`, `late${i}`)));
    await Promise.race(inFlight);
    files.powerLoss();
    crash(node);
    const back = await start(files, 'always');
    let lost = 0;
    for (const [key, v] of acknowledged) {
      const got = value(back, key);
      // An unacknowledged later write may have made it: it is newer, not lost.
      if (got !== v && !(got?.startsWith('late') && !v.startsWith('late'))) lost++;
    }
    expect(lost).toBe(0);
    expect(back.disk.counters.recoveredRecords).toBeGreaterThanOrEqual(200);
  });
});

describe('--fsync everysec', () => {
  it('a power cut loses at most the writes of the last second: older ones are durable', async () => {
    const files = new PowerLossFiles();
    const node = await start(files, 'everysec');
    for (let i = 0; i < 100; i++) await node.run(set(`old${i}`, `v${i}`));
    // The writes are in the file (the kernel) at once: a process crash would lose none of them.
    expect(files.contents(`${DIR}/${logName(1)}`).length).toBeGreaterThan(100 * 20);
    // The once-a-second sync.
    await new Promise((resolve) => setTimeout(resolve, 1200));
    for (let i = 0; i < 100; i++) await node.run(set(`new${i}`, `v${i}`));
    files.powerLoss();
    crash(node);
    const back = await start(files, 'everysec');
    const oldKept = Array.from({ length: 100 }, (_, i) => value(back, `old${i}`)).filter((v) => v !== null).length;
    const newKept = Array.from({ length: 100 }, (_, i) => value(back, `new${i}`)).filter((v) => v !== null).length;
    expect(oldKept).toBe(100);
    // The last second's writes were never synced: the power cut took them.
    expect(newKept).toBe(0);
  });

  it('a process crash (the kernel keeps what was written) loses nothing', async () => {
    const files = new PowerLossFiles();
    const node = await start(files, 'everysec');
    for (let i = 0; i < 100; i++) await node.run(set(`k${i}`, `v${i}`));
    crash(node);
    const back = await start(files, 'everysec');
    expect(Array.from({ length: 100 }, (_, i) => value(back, `k${i}`))).toEqual(Array.from({ length: 100 }, (_, i) => `v${i}`));
  });
});

describe('recovery', () => {
  it('loads items with their flags, expiry and CAS; deletions, tombstones and flush_all replay in order; expired items are dropped', async () => {
    const files = new PowerLossFiles();
    const node = await start(files, 'always', { cluster: true });
    await node.run(set('kept', 'a'));
    await node.run(set('short', 'b', 1));
    await node.run(set('gone', 'c'));
    await node.run({ kind: 'delete', key: 'gone', cas: 0 });
    await node.run(set('touched', 'd', 100));
    await node.run({ kind: 'touch', key: 'touched', exptime: 1000 });
    const cas = node.store.peek('kept', Date.now())!.cas;
    const version = node.store.peek('touched', Date.now())!.version;
    await node.disk.close();
    open.splice(0);
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const back = await start(files, 'always', { cluster: true });
    const kept = back.store.peek('kept', Date.now())!;
    expect([kept.value.toString(), kept.flags, kept.cas]).toEqual(['a', 7, cas]);
    expect(value(back, 'short')).toBeNull();
    expect(value(back, 'gone')).toBeNull();
    expect(back.store.record('gone', Date.now())).toMatchObject({ value: null });
    const touched = back.store.peek('touched', Date.now())!;
    expect(touched.expiresAt).toBeGreaterThan(Date.now() + 900_000);
    expect(touched.version).toBe(version);
    // New writes get CAS values and versions above those loaded.
    await back.run(set('fresh', 'e'));
    expect(back.store.peek('fresh', Date.now())!.cas).toBeGreaterThan(cas);
    expect(back.store.peek('fresh', Date.now())!.version).toBeGreaterThan(version);
    await back.run({ kind: 'flush', delaySeconds: 0 });
    await back.disk.close();
    open.splice(0);
    const flushed = await start(files, 'always', { cluster: true });
    expect(flushed.store.itemCount).toBe(0);
  });

  async function logWith(count: number): Promise<{ files: PowerLossFiles; log: string }> {
    const files = new PowerLossFiles();
    const node = await start(files, 'always');
    for (let i = 0; i < count; i++) await node.run(set(`k${i}`, `value ${i}`));
    crash(node);
    return { files, log: `${DIR}/${logName(1)}` };
  }

  it('a torn last record (a crash mid-write) is cut, and the log says where and how much', async () => {
    const { files, log } = await logWith(10);
    const whole = files.contents(log);
    files.setContents(log, whole.subarray(0, whole.length - 5));
    const back = await start(files, 'always');
    expect(back.store.itemCount).toBe(9);
    expect(value(back, 'k8')).toBe('value 8');
    const cut = back.lines.find((l) => String(l.msg).startsWith('disk storage: cut'))!;
    expect(cut).toMatchObject({ level: 40, file: logName(1), droppedRecords: 1 });
    expect(cut.offset as number + (cut.droppedBytes as number)).toBe(whole.length - 5);
    expect(String(cut.why)).toContain('torn tail');
    expect(back.disk.counters.recoveryDroppedBytes).toBeGreaterThan(0);
    // Cut for good: the next start finds nothing to cut.
    crash(back);
    const again = await start(files, 'always');
    expect(again.lines.some((l) => String(l.msg).startsWith('disk storage: cut'))).toBe(false);
    expect(again.store.itemCount).toBe(9);
  });

  it('a flipped byte in the last record is caught by its checksum and cut', async () => {
    const { files, log } = await logWith(10);
    const damaged = Buffer.from(files.contents(log));
    damaged[damaged.length - 2] ^= 0x01;
    files.setContents(log, damaged);
    const back = await start(files, 'always');
    expect(back.store.itemCount).toBe(9);
    expect(value(back, 'k9')).toBeNull();
    const cut = back.lines.find((l) => String(l.msg).startsWith('disk storage: cut'))!;
    expect(String(cut.why)).toMatch(/torn tail: .*checksum/);
  });

  it('damage in the middle stops the start with a message naming the file and the way out; --recover-truncate cuts there', async () => {
    const { files, log } = await logWith(10);
    const damaged = Buffer.from(files.contents(log));
    damaged[60] ^= 0xff;
    files.setContents(log, damaged);
    const error = await start(files, 'always').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DataDirError);
    expect((error as Error).message).toMatch(/damaged in the middle: log-0000000001\.scl at byte \d+: .*good records follow it.*--recover-truncate/);
    const back = await start(files, 'always', { recoverTruncate: true });
    expect(back.store.itemCount).toBeLessThan(10);
    const cut = back.lines.find((l) => String(l.msg).startsWith('disk storage: cut'))!;
    expect(String(cut.why)).toContain('damage in the middle, cut (--recover-truncate)');
    expect(cut.droppedRecords).toBeGreaterThanOrEqual(9 - back.store.itemCount);
  });
});

describe('compaction', () => {
  /** Runs the once-a-second check now, and waits for what it started. */
  async function check(node: Node): Promise<void> {
    const internals = node.disk as unknown as { maybeCompact(): void; compacting: boolean };
    internals.maybeCompact();
    await vi.waitFor(() => expect(internals.compacting).toBe(false), { timeout: 10_000, interval: 1 });
  }
  /** key + value of every session: what a file of records of them must at least take */
  const bytesOf = (live: Map<string, string>) => [...live].reduce((sum, [k, v]) => sum + k.length + v.length, 0);

  it('keeps the files within twice the live data under churn, a compaction\'s copies included, and loses nothing: a power cut after it keeps every acknowledged write (--fsync always)', async () => {
    const files = new PowerLossFiles();
    const node = await start(files, 'always', { compactMinBytes: 4096 });
    const live = new Map<string, string>();
    files.resetPeak();
    let highest = 0;
    // 100 sessions of about 200 bytes (20 KB live), rewritten 40 times: 800 KB written.
    for (let round = 0; round < 40; round++) {
      for (let i = 0; i < 100; i++) {
        const v = `r${round}-${String(i).padStart(3, '0')}-${'x'.repeat(190)}`;
        expect(await node.run(set(`k${i}`, v))).toMatchObject({ kind: 'status' });
        live.set(`k${i}`, v);
        if (i % 10 === 9) {
          await check(node);
          // The files at their largest since the last look (copies not yet followed by their
          // file's removal included), against the live data then: after the first lifetime.
          if (round > 0) highest = Math.max(highest, files.peakBytes / bytesOf(live));
          files.resetPeak();
        }
      }
    }
    expect(node.disk.counters.compactions).toBeGreaterThan(20);
    expect(highest).toBeGreaterThan(1);
    expect(highest).toBeLessThanOrEqual(2);
    // Everything before the newest logs went: at most a few logs are left.
    expect(node.disk.logFiles).toBeLessThan(16);
    files.powerLoss();
    crash(node);
    const back = await start(files, 'always');
    for (const [key, v] of live) expect(value(back, key), key).toBe(v);
    expect(back.store.itemCount).toBe(100);
  });

  it('a power cut just after a compaction keeps what was durable before it: the copies are synced before their log goes (--fsync everysec)', async () => {
    const files = new PowerLossFiles();
    const node = await start(files, 'everysec', { compactMinBytes: 1 });
    for (let i = 0; i < 300; i++) await node.run(set(`k${i % 100}`, `v${i}`));
    // Synced by the once-a-second fdatasync: what a power cut must keep from here on.
    await new Promise((resolve) => setTimeout(resolve, 1200));
    // The next log started (and its start synced), then the first compacted into it.
    const internals = node.disk as unknown as { rotate(): Promise<void>; maintain(work: () => Promise<void>): Promise<void>; compactOldest(): Promise<void> };
    await internals.rotate();
    await new Promise((resolve) => setTimeout(resolve, 10));
    const before = node.disk.counters.compactions;
    await internals.maintain(() => internals.compactOldest());
    expect(node.disk.counters.compactions).toBe(before + 1);
    files.powerLoss();
    crash(node);
    const back = await start(files, 'everysec');
    for (let i = 0; i < 100; i++) expect(value(back, `k${i}`), `k${i}`).toBe(`v${200 + i}`);
  });

  it('a compaction ends while writes keep coming: it waits for its own copies to be durable, not for everything written after them', async () => {
    const files = new PowerLossFiles();
    files.syncDelayMs = 5;
    const node = await start(files, 'everysec', { compactMinBytes: 1 });
    for (let i = 0; i < 1000; i++) await node.run(set(`k${i % 200}`, `v${i}`));
    let writing = true;
    let written = 0;
    const writer = (async () => {
      while (writing) {
        await node.run(set(`w${written % 50}`, `x${written}`));
        written++;
        await new Promise((resolve) => setImmediate(resolve));
      }
    })();
    await node.disk.compact();
    writing = false;
    await writer;
    expect(written).toBeGreaterThan(0);
    expect(node.lines.filter((l) => String(l.msg).startsWith('disk storage: compaction failed')).map((l) => l.err)).toEqual([]);
    expect(node.disk.counters.compactions).toBeGreaterThan(0);
    for (let i = 800; i < 1000; i++) expect(value(node, `k${i % 200}`)).toBe(`v${i}`);
  });

  it('a write while a log is compacted wins over the copy the compaction makes of its key, before and after a restart', async () => {
    const files = new PowerLossFiles();
    const node = await start(files, 'everysec', { compactMinBytes: 1 });
    for (let i = 0; i < 2000; i++) await node.run(set(`k${i % 500}`, `v${i}-${'y'.repeat(300)}`));
    const compaction = node.disk.compact();
    // A slice per turn of the event loop: these writes land between the compaction's slices.
    for (let i = 0; i < 500; i += 5) await node.run(set(`k${i}`, `during${i}`));
    await compaction;
    expect(node.disk.counters.compactions).toBeGreaterThan(0);
    const expected = (i: number) => (i % 5 === 0 ? `during${i}` : `v${1500 + i}-${'y'.repeat(300)}`);
    for (let i = 0; i < 500; i++) expect(value(node, `k${i}`), `k${i}`).toBe(expected(i));
    await stop(node);
    const back = await start(files, 'everysec');
    for (let i = 0; i < 500; i++) expect(value(back, `k${i}`), `k${i}`).toBe(expected(i));
  });

  it('a value larger than a compaction\'s slice, and remembered deletions, are copied forward and load back; removals and expired items are not', async () => {
    const files = new PowerLossFiles();
    const big = 'b'.repeat(5 << 20);
    const node = await start(files, 'everysec', { cluster: true, maxItemSize: 8 << 20 });
    await node.run(set('small', 'a'));
    await node.run(set('big', big));
    await node.run(set('gone', 'c'));
    await node.run({ kind: 'delete', key: 'gone', cas: 0 });
    await node.run(set('short-lived', 'd', 1));
    node.store.forget('small-forgotten');
    await new Promise((resolve) => setTimeout(resolve, 1100));
    await node.disk.compact();
    expect(node.disk.counters.compactions).toBe(1);
    // small, big and the deletion of gone: what is left of the first log, in the second.
    expect(node.disk.counters.compactionCopiedRecords).toBe(3);
    await stop(node);
    expect(files.list(DIR).filter((n) => n.startsWith('log-'))).toEqual([logName(2)]);
    const back = await start(files, 'everysec', { cluster: true, maxItemSize: 8 << 20 });
    expect([value(back, 'small'), value(back, 'big')?.length, value(back, 'gone'), value(back, 'short-lived')]).toEqual(['a', big.length, null, null]);
    expect(back.store.record('gone', Date.now())).toMatchObject({ value: null });
  });

  it('a compaction whose copies cannot be made durable keeps the log it was compacting, its items pointed back into it; the next one succeeds', async () => {
    const files = new PowerLossFiles();
    const node = await start(files, 'everysec', { memoryLimit: 128 * 1024, compactMinBytes: 1 });
    const session = (i: number) => `${i}:`.padEnd(1000, 'z');
    for (let i = 0; i < 300; i++) await node.run(set(`s${i}`, session(i)));
    expect(node.store.valuesOnDiskCount).toBeGreaterThan(100);
    const internals = node.disk as unknown as { rotate(): Promise<void>; maintain(work: () => Promise<void>): Promise<void>; compactOldest(): Promise<void> };
    await internals.rotate();
    // The copies are written, and their fdatasync fails: the first log must stay.
    files.syncError = 'EIO';
    await internals.maintain(() => internals.compactOldest());
    files.syncError = null;
    expect(node.disk.counters.compactions).toBe(0);
    expect(node.disk.counters.compactionCopiedRecords).toBe(300);
    expect(node.lines.some((l) => String(l.msg).startsWith('disk storage: compaction failed'))).toBe(true);
    expect(files.list(DIR)).toContain(logName(1));
    const cold = node.store.peek('s0', Date.now());
    expect(cold?.inMemory).toBe(false);
    expect((cold?.source as { name?: string } | null)?.name).toBe(logName(1));
    const get = (key: string) => ({ kind: 'get' as const, keys: [key], withCas: false });
    const read = async (i: number) => {
      const reply = await node.run(get(`s${i}`));
      return reply.kind === 'values' ? reply.entries[0]?.value.toString() : reply.kind;
    };
    for (let i = 0; i < 300; i += 7) expect(await read(i)).toBe(session(i));
    // The disk is back (the log's once-a-second retry syncs again): the next compaction removes the first log.
    await vi.waitFor(() => expect(node.disk.refusal()).toBeNull(), { timeout: 5000, interval: 50 });
    await node.disk.compact();
    expect(files.list(DIR)).not.toContain(logName(1));
    for (let i = 0; i < 300; i++) expect(await read(i)).toBe(session(i));
    expect(node.store.readBackCounters.errors).toBe(0);
  });
});

describe('a failing disk', () => {
  it('--fsync always: a write whose record cannot be written is undone and refused; writes work again once the disk does', async () => {
    const files = new PowerLossFiles();
    const node = await start(files, 'always');
    expect(await node.run(set('k', 'before'))).toMatchObject({ kind: 'status' });
    files.failWrites('ENOSPC');
    const failed = await node.run(set('k', 'after'));
    expect(failed).toMatchObject({ kind: 'serverError' });
    expect(value(node, 'k')).toBe('before');
    expect(node.disk.counters.writesUndone).toBeGreaterThan(0);
    // Refused, without being applied, while the disk fails; reads go on.
    expect(await node.run(set('other', 'x'))).toMatchObject({ kind: 'serverError', message: expect.stringContaining('ENOSPC') });
    expect(value(node, 'other')).toBeNull();
    expect(await node.run({ kind: 'get', keys: ['k'], withCas: false })).toMatchObject({ kind: 'values' });
    expect(node.lines.filter((l) => l.level === 40 && String(l.msg).includes('write failed'))).toHaveLength(1);
    files.failWrites(null);
    await new Promise((resolve) => setTimeout(resolve, 1200));
    expect(await node.run(set('k', 'again'))).toMatchObject({ kind: 'status' });
    files.powerLoss();
    crash(node);
    const back = await start(files, 'always');
    expect(value(back, 'k')).toBe('again');
    expect(value(back, 'other')).toBeNull();
  });

  it('--fsync everysec: writes are refused while the disk fails; what was acknowledged is written once it takes them again', async () => {
    const files = new PowerLossFiles();
    const node = await start(files, 'everysec');
    files.failWrites('ENOSPC');
    // Acknowledged (the reply goes before the write is tried), then the write fails: kept in memory.
    expect(await node.run(set('acked', 'v'))).toMatchObject({ kind: 'status' });
    node.disk.writePending();
    expect(await node.run(set('refused', 'v'))).toMatchObject({ kind: 'serverError' });
    files.failWrites(null);
    await new Promise((resolve) => setTimeout(resolve, 2200));
    expect(await node.run(set('later', 'v'))).toMatchObject({ kind: 'status' });
    await new Promise((resolve) => setTimeout(resolve, 1200));
    files.powerLoss();
    crash(node);
    const back = await start(files, 'everysec');
    expect([value(back, 'acked'), value(back, 'refused'), value(back, 'later')]).toEqual(['v', null, 'v']);
  });

  it('--disk-limit: writes are refused once the files reach it, and served again once a compaction gives room back', async () => {
    const files = new PowerLossFiles();
    const node = await start(files, 'everysec', { diskLimit: 4000 });
    let refused = 0;
    // Ten sessions, rewritten over and over: the log grows, the live data does not.
    for (let i = 0; i < 60; i++) if ((await node.run(set(`k${i % 10}`, 'x'.repeat(100)))).kind === 'serverError') refused++;
    expect(refused).toBeGreaterThan(0);
    expect(node.disk.counters.writesRefused).toBe(refused);
    // The once-a-second check compacts: ten sessions copied forward, the stale records gone.
    await new Promise((resolve) => setTimeout(resolve, 1300));
    expect(node.disk.counters.compactions).toBeGreaterThan(0);
    expect(await node.run(set('k0', 'after'))).toMatchObject({ kind: 'status' });
  });
});

describe('memory as a cache of disk', () => {
  const get = (key: string) => ({ kind: 'get' as const, keys: [key], withCas: false });
  const valueOf = (reply: Reply) => (reply.kind === 'values' ? reply.entries[0]?.value.toString() ?? null : `not values: ${reply.kind}`);
  const sessionValue = (i: number, round = 0) => `${round}:${i}:`.padEnd(1000, String.fromCharCode(97 + (i % 26)));

  it('under --memory-limit, values stay on disk only and are read back when asked for: nothing is evicted', async () => {
    const files = new PowerLossFiles();
    // 2,000 sessions of 1 KB (about 3.2 MB as memory counts them) under a 512 KB limit.
    const node = await start(files, 'everysec', { memoryLimit: 512 * 1024 });
    for (let i = 0; i < 2000; i++) await node.run(set(`s${i}`, sessionValue(i)));
    expect(node.store.counters.evictions).toBe(0);
    expect(node.store.itemCount).toBe(2000);
    expect(node.store.valuesOnDiskCount).toBeGreaterThan(1500);
    expect(node.store.bytes).toBeLessThanOrEqual(512 * 1024);
    for (let i = 0; i < 2000; i++) expect(valueOf(await node.run(get(`s${i}`)))).toBe(sessionValue(i));
    expect(node.store.readBackCounters.reads).toBeGreaterThan(1500);
    expect(node.store.readBackCounters.errors).toBe(0);
    expect(node.store.counters.evictions).toBe(0);
    expect(node.store.bytes).toBeLessThanOrEqual(512 * 1024);
    // append, incr and touch on a value on disk only read it back first.
    const late = node.store.valuesOnDiskCount;
    expect(late).toBeGreaterThan(0);
    await node.run({ kind: 'store', mode: StoreMode.Append, key: 's0', flags: 0, exptime: 0, value: Buffer.from('+tail'), cas: 0 });
    expect(valueOf(await node.run(get('s0')))).toBe(`${sessionValue(0)}+tail`);
  });

  it('a compaction copies the values on disk only forward; they read back from their copies, and after a restart under the same limit', async () => {
    const files = new PowerLossFiles();
    const node = await start(files, 'everysec', { memoryLimit: 256 * 1024, compactMinBytes: 1 });
    for (let round = 0; round < 2; round++) for (let i = 0; i < 1000; i++) await node.run(set(`s${i}`, sessionValue(i, round)));
    expect(node.store.valuesOnDiskCount).toBeGreaterThan(500);
    await node.disk.compact();
    expect(node.disk.counters.compactions).toBe(1);
    // The log compacted is gone: the values come from their copies in the next one now.
    expect(files.list(DIR).filter((name) => name.startsWith('log-'))).toEqual([logName(2)]);
    for (let i = 0; i < 1000; i++) expect(valueOf(await node.run(get(`s${i}`)))).toBe(sessionValue(i, 1));
    expect(node.store.readBackCounters.errors).toBe(0);
    await stop(node);

    const again = await start(files, 'everysec', { memoryLimit: 256 * 1024 });
    expect(again.store.itemCount).toBe(1000);
    expect(again.store.valuesOnDiskCount).toBeGreaterThan(500);
    expect(again.store.counters.evictions).toBe(0);
    for (let i = 999; i >= 0; i--) expect(valueOf(await again.run(get(`s${i}`)))).toBe(sessionValue(i, 1));
    expect(again.store.readBackCounters.errors).toBe(0);
  });

  it('a restart loads the values on disk only, then warms them into memory in the background: all when they fit', async () => {
    const files = new PowerLossFiles();
    const node = await start(files, 'everysec', { compactMinBytes: 1 });
    for (let round = 0; round < 2; round++) for (let i = 0; i < 1000; i++) await node.run(set(`s${i}`, sessionValue(i, round)));
    await node.disk.compact();
    // Newer versions of a hundred after the compaction, and one deleted.
    for (let i = 0; i < 100; i++) await node.run(set(`s${i}`, sessionValue(i, 2)));
    await node.run({ kind: 'delete', key: 's999', cas: 0 });
    await stop(node);

    const again = await start(files, 'everysec');
    // Loaded with no value in memory: start-up read each record once and allocated no value.
    expect(again.store.itemCount).toBe(999);
    expect(again.store.valuesOnDiskCount).toBe(999);
    // A read before the warm-up got to it reads back as it always did.
    expect(valueOf(await again.run(get('s500')))).toBe(sessionValue(500, 1));
    await again.disk.whenWarm();
    expect(again.store.valuesOnDiskCount).toBe(0);
    const readsBefore = again.store.readBackCounters.reads;
    for (let i = 0; i < 999; i++) expect(valueOf(await again.run(get(`s${i}`)))).toBe(sessionValue(i, i < 100 ? 2 : 1));
    expect(valueOf(await again.run(get('s999')))).toBe(null);
    expect(again.store.readBackCounters.reads).toBe(readsBefore);
    expect(again.store.counters.evictions).toBe(0);
    const warmed = again.lines.find((line) => line.msg === 'disk storage: values warmed into memory') as { values?: number } | undefined;
    // Each value once: the older versions of the hundred rewritten, copied forward, were skipped
    // (and s500 too if its read back finished first).
    expect(warmed?.values).toBeGreaterThanOrEqual(998);
    expect(warmed?.values).toBeLessThanOrEqual(999);
  });

  it('no compaction starts while the values are warmed; the next check after it does start one', async () => {
    const files = new PowerLossFiles();
    const node = await start(files, 'everysec');
    // Each session written twice: half of what the log holds is stale.
    for (let round = 0; round < 2; round++) for (let i = 0; i < 1000; i++) await node.run(set(`s${i}`, sessionValue(i)));
    await stop(node);

    // Any check compacts a store this size (compactMinBytes 1): but not during the warm-up.
    const again = await start(files, 'everysec', { compactMinBytes: 1 });
    const internals = again.disk as unknown as { maybeCompact(): void; compacting: boolean };
    expect(again.store.valuesOnDiskCount).toBe(1000);
    internals.maybeCompact();
    expect(internals.compacting).toBe(false);
    await again.disk.whenWarm();
    expect(again.store.valuesOnDiskCount).toBe(0);
    internals.maybeCompact();
    expect(internals.compacting).toBe(true);
    await vi.waitFor(() => expect(again.disk.counters.compactions).toBe(1));
    for (let i = 0; i < 1000; i += 97) expect(valueOf(await again.run(get(`s${i}`)))).toBe(sessionValue(i));
  });

  it('the warm-up stops at --memory-limit: the rest stay on disk, nothing is evicted, everything reads back', async () => {
    const files = new PowerLossFiles();
    const node = await start(files, 'everysec');
    for (let i = 0; i < 1000; i++) await node.run(set(`s${i}`, sessionValue(i)));
    await stop(node);

    const again = await start(files, 'everysec', { memoryLimit: 256 * 1024 });
    await again.disk.whenWarm();
    const onDisk = again.store.valuesOnDiskCount;
    expect(onDisk).toBeGreaterThan(500);
    expect(onDisk).toBeLessThan(1000);
    expect(again.store.bytes).toBeLessThanOrEqual(256 * 1024);
    expect(again.lines.some((line) => line.msg.startsWith('disk storage: values warmed into memory up to --memory-limit'))).toBe(true);
    for (let i = 0; i < 1000; i++) expect(valueOf(await again.run(get(`s${i}`)))).toBe(sessionValue(i));
    expect(again.store.counters.evictions).toBe(0);
    expect(again.store.readBackCounters.errors).toBe(0);
  });

  it('a value whose record is damaged is not served: its session reads as a miss, and the error is counted and logged', async () => {
    const files = new PowerLossFiles();
    const node = await start(files, 'everysec', { memoryLimit: 128 * 1024 });
    for (let i = 0; i < 500; i++) await node.run(set(`s${i}`, sessionValue(i)));
    const cold = node.store.peek('s0', Date.now())!;
    expect(cold.inMemory).toBe(false);
    // A byte of its value flipped in the file.
    const path = `${DIR}/${logName(1)}`;
    const data = files.contents(path);
    data[cold.sourceOffset + 100] ^= 0xff;
    files.setContents(path, data);
    expect(valueOf(await node.run(get('s0')))).toBe(null);
    expect(node.store.readBackCounters.errors).toBe(1);
    expect(node.lines.some((line) => line.msg.includes('could not be read back'))).toBe(true);
    // The others still read back.
    expect(valueOf(await node.run(get('s1')))).toBe(sessionValue(1));
  });
});
