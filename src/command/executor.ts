/**
 * The executor: Command -> Reply against the local store. No bytes, no sockets; both
 * protocols call it, and the cluster's router will sit in front of it.
 */
import { type Command, type Reply, Status, type ValueEntry } from '../protocol/types.js';
import type { MemoryStore } from '../store/memory-store.js';
import { ITEMS_CLASS, type StatsSource, generalStats, itemsStats, settingsStats } from './stats.js';

/** memcached caps a cachedump reply at 2 MB (items.c, item_cachedump). */
const CACHEDUMP_MAX_BYTES = 2 * 1024 * 1024;

export interface ExecutorOptions {
  store: MemoryStore;
  stats: StatsSource;
  version: string;
  now?: () => number;
}

/** Counters of commands, named after memcached's `stats` fields. */
export interface CommandCounters {
  cmdGet: number;
  cmdSet: number;
  cmdFlush: number;
  cmdTouch: number;
}

export class Executor {
  readonly counters: CommandCounters = { cmdGet: 0, cmdSet: 0, cmdFlush: 0, cmdTouch: 0 };
  private readonly store: MemoryStore;
  private readonly now: () => number;
  private pendingFlush: NodeJS.Timeout | null = null;
  /** verbosity is accepted and reported, as memcached does; logging is set by --log-level */
  verbosity = 0;

  constructor(private readonly options: ExecutorOptions) {
    this.store = options.store;
    this.now = options.now ?? Date.now;
  }

  execute(command: Command): Reply {
    const now = this.now();
    switch (command.kind) {
      case 'get':
        return this.handleGet(command.keys, now);
      case 'touchGet':
        return this.handleTouchGet(command.keys, command.exptime, now);
      case 'store': {
        this.counters.cmdSet++;
        const status = this.store.store(command.mode, command.key, command.flags, command.exptime, command.value, command.cas, now);
        return statusReply(status, status === Status.Stored ? this.store.lastCas : 0);
      }
      case 'refuseOversized':
        this.counters.cmdSet++;
        return statusReply(this.store.refuseOversized(command.mode, command.key), 0);
      case 'delete':
        return statusReply(this.store.delete(command.key, command.cas, now), 0);
      case 'arith': {
        const result = this.store.arith(command.key, command.incr, command.delta, command.initial, command.exptime, command.cas, now);
        if (typeof result === 'bigint') return { kind: 'number', value: result, cas: this.store.lastCas };
        return statusReply(result, 0);
      }
      case 'touch': {
        this.counters.cmdTouch++;
        const item = this.store.touch(command.key, command.exptime, now);
        // The binary TOUCH response carries the item's flags and cas (proto_bin.c, process_bin_touch).
        return item === undefined ? statusReply(Status.NotFound, 0) : { kind: 'status', status: Status.Touched, cas: item.cas, flags: item.flags };
      }
      case 'flush':
        this.handleFlush(command.delaySeconds);
        return statusReply(Status.Ok, 0);
      case 'version':
        return { kind: 'version', version: this.options.version };
      case 'verbosity':
        this.verbosity = command.level;
        return statusReply(Status.Ok, 0);
      case 'stats':
        return this.handleStats(command.args, now);
      case 'quit':
        return { kind: 'quit' };
    }
  }

  /** Cancels a delayed flush, so a stopping daemon leaves no timer behind. */
  close(): void {
    if (this.pendingFlush !== null) clearTimeout(this.pendingFlush);
    this.pendingFlush = null;
  }

  private handleGet(keys: string[], now: number): Reply {
    const entries: ValueEntry[] = [];
    const missing: string[] = [];
    for (const key of keys) {
      this.counters.cmdGet++;
      const item = this.store.get(key, now);
      if (item === undefined) missing.push(key);
      else entries.push({ key, flags: item.flags, value: item.value, cas: item.cas });
    }
    return { kind: 'values', entries, missing };
  }

  private handleTouchGet(keys: string[], exptime: number, now: number): Reply {
    const entries: ValueEntry[] = [];
    const missing: string[] = [];
    for (const key of keys) {
      this.counters.cmdTouch++;
      this.counters.cmdGet++;
      const item = this.store.getAndTouch(key, exptime, now);
      if (item === undefined) missing.push(key);
      else entries.push({ key, flags: item.flags, value: item.value, cas: item.cas });
    }
    return { kind: 'values', entries, missing };
  }

  /**
   * flush_all [delay] (protocol.txt, "flush_all"): with a delay, every item that exists when the
   * delay runs out is invalidated then; a later flush_all replaces a pending one.
   */
  private handleFlush(delaySeconds: number): void {
    this.counters.cmdFlush++;
    if (this.pendingFlush !== null) clearTimeout(this.pendingFlush);
    this.pendingFlush = null;
    if (delaySeconds <= 0) {
      this.store.flush();
      return;
    }
    this.pendingFlush = setTimeout(() => {
      this.pendingFlush = null;
      this.store.flush();
    }, delaySeconds * 1000);
    this.pendingFlush.unref();
  }

  private handleStats(args: string[], now: number): Reply {
    switch (args[0] ?? '') {
      case '':
        return { kind: 'stats', entries: generalStats(this.options.stats, this.store, this.counters, this.options.version, now) };
      case 'settings':
        return { kind: 'stats', entries: settingsStats(this.options.stats, this.store, this.verbosity) };
      case 'items':
        return { kind: 'stats', entries: itemsStats(this.store, now) };
      case 'cachedump':
        return this.handleCacheDump(args, now);
      case 'reset':
        this.resetCounters();
        return { kind: 'statsReset' };
      default:
        return { kind: 'unknownStats' };
    }
  }

  /**
   * `stats cachedump <class> <limit>` lists keys, which is how memcdump finds them. All items
   * live in one class here, class 1; like memcached, a reply stops at about 2 MB.
   */
  private handleCacheDump(args: string[], now: number): Reply {
    const slabClass = Number(args[1]);
    const limit = Number(args[2] ?? 0);
    if (args.length !== 3 || !Number.isInteger(slabClass) || !Number.isInteger(limit) || limit < 0) return { kind: 'unknownStats' };
    if (slabClass !== ITEMS_CLASS) return { kind: 'keyDump', entries: [] };
    const entries: Array<{ key: string; bytes: number; exptime: number }> = [];
    let replyBytes = 0;
    for (const item of this.store.liveItems(now)) {
      if ((limit > 0 && entries.length >= limit) || replyBytes >= CACHEDUMP_MAX_BYTES) break;
      entries.push({ key: item.key, bytes: item.value.length, exptime: Math.ceil(item.expiresAt / 1000) });
      replyBytes += item.key.length + 32;
    }
    return { kind: 'keyDump', entries };
  }

  private resetCounters(): void {
    for (const key of Object.keys(this.counters) as Array<keyof CommandCounters>) this.counters[key] = 0;
    this.store.resetCounters();
  }
}

function statusReply(status: Status, cas: number): Reply {
  return { kind: 'status', status, cas };
}
