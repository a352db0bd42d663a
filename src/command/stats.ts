/**
 * `stats` and `stats settings`, with memcached's own field names (protocol.txt, "General-purpose
 * statistics" and "Settings statistics") so memcstat, monitoring plugins and dashboards read them.
 */
import type { MemoryStore } from '../store/memory-store.js';
import type { CommandCounters } from './executor.js';

/** What the server layer knows: connections, traffic and the settings it runs with. */
export interface StatsSource {
  readonly startedAtMs: number;
  readonly currConnections: number;
  readonly totalConnections: number;
  readonly rejectedConnections: number;
  readonly bytesRead: number;
  readonly bytesWritten: number;
  readonly maxConnections: number;
  readonly tcpPort: number;
  readonly socketPath: string | null;
  /** the cluster's figures, in cluster mode (members and their states, forwarded, replicated, …) */
  readonly clusterStats?: () => Array<[string, string]>;
}

export function generalStats(source: StatsSource, store: MemoryStore, commands: CommandCounters, version: string, nowMs: number): Array<[string, string]> {
  const usage = process.resourceUsage();
  const c = store.counters;
  const seconds = (micros: number) => (micros / 1e6).toFixed(6);
  const fields: Array<[string, string | number]> = [
    ['pid', process.pid],
    ['uptime', Math.floor((nowMs - source.startedAtMs) / 1000)],
    ['time', Math.floor(nowMs / 1000)],
    ['version', version],
    ['pointer_size', 64],
    ['rusage_user', seconds(usage.userCPUTime)],
    ['rusage_system', seconds(usage.systemCPUTime)],
    ['max_connections', source.maxConnections],
    ['curr_connections', source.currConnections],
    ['total_connections', source.totalConnections],
    ['rejected_connections', source.rejectedConnections],
    ['connection_structures', source.currConnections],
    ['cmd_get', commands.cmdGet],
    ['cmd_set', commands.cmdSet],
    ['cmd_flush', commands.cmdFlush],
    ['cmd_touch', commands.cmdTouch],
    ['get_hits', c.getHits],
    ['get_misses', c.getMisses],
    ['get_expired', c.getExpired],
    ['get_flushed', c.getFlushed],
    ['delete_misses', c.deleteMisses],
    ['delete_hits', c.deleteHits],
    ['incr_misses', c.incrMisses],
    ['incr_hits', c.incrHits],
    ['decr_misses', c.decrMisses],
    ['decr_hits', c.decrHits],
    ['cas_misses', c.casMisses],
    ['cas_hits', c.casHits],
    ['cas_badval', c.casBadval],
    ['touch_hits', c.touchHits],
    ['touch_misses', c.touchMisses],
    ['auth_cmds', 0],
    ['auth_errors', 0],
    ['bytes_read', source.bytesRead],
    ['bytes_written', source.bytesWritten],
    ['limit_maxbytes', store.memoryLimit],
    ['accepting_conns', 1],
    ['threads', 1],
    ['bytes', store.bytes],
    ['curr_items', store.itemCount],
    ['total_items', c.totalItems],
    ['expired_unfetched', c.expiredUnfetched],
    ['evictions', c.evictions],
    ['reclaimed', c.reclaimed],
    ['tombstones', store.tombstoneCount],
    ['tombstone_bytes', store.tombstoneBytesUsed],
    ['evicted_tombstones', c.evictedTombstones],
  ];
  const entries: Array<[string, string]> = fields.map(([name, value]) => [name, String(value)]);
  if (source.clusterStats) entries.push(...source.clusterStats());
  return entries;
}

/** The single "slab class" all items are reported under: memory is not divided into classes here. */
export const ITEMS_CLASS = 1;

/** `stats items`, as memcached lays it out per class; nothing when the store is empty, like memcached. */
export function itemsStats(store: MemoryStore, nowMs: number): Array<[string, string]> {
  if (store.itemCount === 0) return [];
  const oldest = store.oldestItem();
  const prefix = `items:${ITEMS_CLASS}:`;
  return [
    [`${prefix}number`, String(store.itemCount)],
    [`${prefix}age`, String(oldest === undefined ? 0 : Math.max(0, Math.floor((nowMs - oldest.bumpedAt) / 1000)))],
    [`${prefix}evicted`, String(store.counters.evictions)],
    [`${prefix}expired_unfetched`, String(store.counters.expiredUnfetched)],
    [`${prefix}reclaimed`, String(store.counters.reclaimed)],
  ];
}

export function settingsStats(source: StatsSource, store: MemoryStore, verbosity: number): Array<[string, string]> {
  const fields: Array<[string, string | number]> = [
    ['maxbytes', store.memoryLimit],
    ['maxconns', source.maxConnections],
    ['tcpport', source.tcpPort],
    ['udpport', 0],
    ['verbosity', verbosity],
    ['evictions', 'on'],
    ['domain_socket', source.socketPath ?? 'NULL'],
    ['num_threads', 1],
    ['cas_enabled', 'yes'],
    ['binding_protocol', 'auto-negotiate'],
    ['auth_enabled_sasl', 'no'],
    ['item_size_max', store.maxItemSize],
    ['lru_crawler', 'yes'],
  ];
  return fields.map(([name, value]) => [name, String(value)]);
}
