/**
 * The executor: Command -> Reply against the local store. No bytes, no sockets; both
 * protocols call it, and in cluster mode the router sits in front of it. What a command changed
 * in the store (the store's change records) is handed back beside the reply, for the router to
 * pass on to replication: nobody works out a write from its reply.
 */
import { type Command, type Reply, Status, type ValueEntry } from '../protocol/types.js';
import { type Change, Item, type WriteResult } from '../store/change.js';
import { isMemcacheLockKey, MEMCACHE_LOCK_FLAGS } from '../session-locks/lock-keys.js';
import { type MemoryStore, parseCounter } from '../store/memory-store.js';
import { StoreMode, WriteStatus } from '../store/types.js';
import { type CounterDefs, StatsRegistry } from '../stats/registry.js';
import { ITEMS_CLASS, itemsStats } from './stats.js';

const UINT64_MASK = (1n << 64n) - 1n;

/** memcached caps a cachedump reply at 2 MB (items.c, item_cachedump). */
const CACHEDUMP_MAX_BYTES = 2 * 1024 * 1024;

export interface ExecutorOptions {
  store: MemoryStore;
  version: string;
  /** what `stats` answers (catalog.ts fills it); empty when not given */
  stats?: StatsRegistry;
  /** what `stats settings` answers */
  settings?: StatsRegistry;
  now?: () => number;
  /**
   * Why writes must be refused now, before they are applied (disk storage that cannot keep
   * them), or null. A refused write is answered SERVER_ERROR and changes nothing.
   */
  refuseWrites?: () => string | null;
  /** counts a write refused that way */
  onRefused?: () => void;
  /** flush_all turned off (--disable-flush) */
  disableFlush?: boolean;
  /** stats cachedump turned off (--disable-cachedump) */
  disableCachedump?: boolean;
}

/** Counters of commands, named after memcached's `stats` fields. */
export interface CommandCounters {
  cmdGet: number;
  cmdSet: number;
  cmdFlush: number;
  cmdTouch: number;
}

export const COMMAND_STATS: CounterDefs<CommandCounters> = {
  cmdGet: { name: 'cmd_get', type: 'counter', help: 'keys asked for by get, gets, gat, gats (each key of a multi-get counts)' },
  cmdSet: { name: 'cmd_set', type: 'counter', help: 'storage commands: set, add, replace, append, prepend, cas' },
  cmdFlush: { name: 'cmd_flush', type: 'counter', help: 'flush_all commands' },
  cmdTouch: { name: 'cmd_touch', type: 'counter', help: 'touch commands, and keys asked for by gat/gats' },
};

/** The commands that change what the store holds (gat and gats give a new expiry). */
const WRITES: ReadonlySet<Command['kind']> = new Set(['store', 'refuseOversized', 'delete', 'arith', 'touch', 'touchGet', 'flush']);

export class Executor {
  readonly counters: CommandCounters = { cmdGet: 0, cmdSet: 0, cmdFlush: 0, cmdTouch: 0 };
  private readonly store: MemoryStore;
  private readonly now: () => number;
  private readonly stats: StatsRegistry;
  private readonly settings: StatsRegistry;
  private pendingFlush: NodeJS.Timeout | null = null;
  /** verbosity is accepted and reported, as memcached does; logging is set by --log-level */
  verbosity = 0;

  constructor(private readonly options: ExecutorOptions) {
    this.store = options.store;
    this.now = options.now ?? Date.now;
    this.stats = options.stats ?? new StatsRegistry();
    this.settings = options.settings ?? new StatsRegistry();
  }

  /**
   * Runs `command` here. When `changes` is given, what the command changed in the store is
   * appended to it (nothing for reads), in the order it happened.
   */
  execute(command: Command, changes?: Change[]): Reply {
    const now = this.now();
    if (this.options.refuseWrites !== undefined && WRITES.has(command.kind)) {
      const refusal = this.options.refuseWrites();
      if (refusal !== null) {
        this.options.onRefused?.();
        return { kind: 'serverError', message: refusal };
      }
    }
    switch (command.kind) {
      case 'get':
        return this.handleGet(command.keys, now);
      case 'touchGet':
        return this.handleTouchGet(command.keys, command.exptime, now, changes);
      case 'store': {
        this.counters.cmdSet++;
        const result = this.store.store(command.mode, command.key, command.flags, command.exptime, command.value, command.cas, now);
        return writeReply(result, changes);
      }
      case 'refuseOversized':
        this.counters.cmdSet++;
        return writeReply(this.store.refuseOversized(command.mode, command.key, now), changes);
      case 'delete':
        return writeReply(this.store.delete(command.key, command.cas, now), changes);
      case 'arith': {
        const polled = this.pollOfHeldLock(command, now);
        if (polled !== null) return polled;
        const result = this.store.arith(command.key, command.incr, command.delta, command.initial, command.exptime, command.cas, now);
        if (result.value === undefined) return writeReply(result, changes);
        if (result.change !== null) changes?.push(result.change);
        return { kind: 'number', value: result.value, cas: casOf(result) };
      }
      case 'touch': {
        this.counters.cmdTouch++;
        const result = this.store.touch(command.key, command.exptime, now);
        if (result.change === null) return writeReply(result, changes);
        changes?.push(result.change);
        // The binary TOUCH response carries the item's flags and cas (proto_bin.c, process_bin_touch).
        const item = result.change as Item;
        return { kind: 'status', status: Status.Touched, cas: item.cas, flags: item.flags };
      }
      case 'flush':
        if (this.options.disableFlush === true) {
          // Counted all the same, as memcached counts a refused flush_all (proto_text.c).
          this.counters.cmdFlush++;
          return { kind: 'notAllowed', message: 'flush_all not allowed' };
        }
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
      case 'saslList':
      case 'saslAuth':
        // Answered by the connection's authentication (src/security/client-auth.ts) before this.
        return { kind: 'notAllowed', message: 'authentication is not enabled' };
    }
  }

  /**
   * With disk storage, the values `command` will read that memory let go are read back first,
   * without blocking other connections: run it once this settles. Null when there are none.
   * Commands that only replace or remove a value (set, add, delete...) need none.
   */
  readBack(command: Command): Promise<void> | null {
    switch (command.kind) {
      case 'get':
      case 'touchGet':
        return this.store.readBack(command.keys);
      case 'arith':
      case 'touch':
        return this.store.readBack([command.key]);
      case 'store':
        return command.mode === StoreMode.Append || command.mode === StoreMode.Prepend ? this.store.readBack([command.key]) : null;
      default:
        return null;
    }
  }

  /** Cancels a delayed flush, so a stopping daemon leaves no timer behind. */
  close(): void {
    if (this.pendingFlush !== null) clearTimeout(this.pendingFlush);
    this.pendingFlush = null;
  }

  /**
   * pecl memcache polls a held session lock with `incr <id>.lock 1`, and takes it only when the
   * answer is 1: the lock was released (set to "0"). memcached counts the lock up with every poll;
   * here the poll gets the same number but nothing is stored, so the lock keeps the CAS its holder
   * took it with, which its release on disconnect checks (src/session-locks/), and a poll is no
   * write to log or copy. Only for a lock pecl memcache stored (its integer flags, 768).
   */
  private pollOfHeldLock(command: Extract<Command, { kind: 'arith' }>, now: number): Reply | null {
    if (!command.incr || command.cas !== 0 || !isMemcacheLockKey(command.key)) return null;
    const lock = this.store.peek(command.key, now);
    if (lock === undefined || lock.flags !== MEMCACHE_LOCK_FLAGS) return null;
    const value = parseCounter(lock.value);
    if (value === null || value === 0n) return null;
    this.store.counters.incrHits++;
    return { kind: 'number', value: (value + command.delta) & UINT64_MASK, cas: lock.cas };
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

  /** gat: each item found gets a new expiry, a write whose change is the item itself. */
  private handleTouchGet(keys: string[], exptime: number, now: number, changes: Change[] | undefined): Reply {
    const entries: ValueEntry[] = [];
    const missing: string[] = [];
    for (const key of keys) {
      this.counters.cmdTouch++;
      this.counters.cmdGet++;
      const item = this.store.getAndTouch(key, exptime, now);
      if (item === undefined) {
        missing.push(key);
        continue;
      }
      entries.push({ key, flags: item.flags, value: item.value, cas: item.cas });
      changes?.push(item);
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
        return { kind: 'stats', entries: this.stats.entries() };
      case 'settings':
        return { kind: 'stats', entries: this.settings.entries() };
      case 'items':
        return { kind: 'stats', entries: itemsStats(this.store, now) };
      case 'cachedump':
        if (this.options.disableCachedump === true) return { kind: 'notAllowed', message: 'stats cachedump not allowed' };
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
      entries.push({ key: item.key, bytes: item.valueLength, exptime: Math.ceil(item.expiresAt / 1000) });
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

/** The store's answers as the protocols' reply statuses. */
const REPLY_STATUS: { readonly [S in WriteStatus]: Status } = {
  [WriteStatus.Stored]: Status.Stored,
  [WriteStatus.NotStored]: Status.NotStored,
  [WriteStatus.Exists]: Status.Exists,
  [WriteStatus.NotFound]: Status.NotFound,
  [WriteStatus.Deleted]: Status.Deleted,
  [WriteStatus.Touched]: Status.Touched,
  [WriteStatus.TooLarge]: Status.TooLarge,
  [WriteStatus.NonNumeric]: Status.NonNumeric,
};

/** The CAS unique a write gave its item (0 when it left none), which the reply carries. */
function casOf(result: WriteResult): number {
  return result.cas ?? (result.change instanceof Item ? result.change.cas : 0);
}

/** A write's reply; its change, if any, goes to `changes`. */
function writeReply(result: WriteResult, changes: Change[] | undefined): Reply {
  if (result.change !== null) changes?.push(result.change);
  return { kind: 'status', status: REPLY_STATUS[result.status], cas: result.status === WriteStatus.Stored ? casOf(result) : 0 };
}
