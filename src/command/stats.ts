/**
 * The figures of the process and memcached's settings, with memcached's own field names
 * (protocol.txt, "General-purpose statistics" and "Settings statistics") so memcstat, monitoring
 * plugins and dashboards read them; and `stats items`.
 */
import type { MemoryStore } from '../store/memory-store.js';
import type { Stat } from '../stats/registry.js';

/** What `stats` reads of the process: when it started, its version, and the clock. */
export interface ProcessStatsSource {
  readonly startedAtMs: number;
  readonly version: string;
  now(): number;
}

const seconds = (micros: number) => (micros / 1e6).toFixed(6);

export const PROCESS_STATS: ReadonlyArray<Stat<ProcessStatsSource>> = [
  { name: 'pid', type: 'gauge', help: 'process id', metric: null, read: () => process.pid },
  { name: 'uptime', type: 'gauge', help: 'seconds since the daemon started', read: (s) => Math.floor((s.now() - s.startedAtMs) / 1000) },
  { name: 'time', type: 'gauge', help: 'the daemon\'s clock, unix seconds', metric: null, read: (s) => Math.floor(s.now() / 1000) },
  { name: 'version', type: 'text', help: 'memcached\'s version, then ours (libmemcached reads the first to learn what the server speaks)', metric: 'version', read: (s) => s.version },
  { name: 'pointer_size', type: 'gauge', help: 'bits of a pointer (memcached\'s figure: 64)', metric: null, read: () => 64 },
  { name: 'rusage_user', type: 'counter', help: 'CPU seconds spent in user mode', metric: 'cpu_user_seconds_total', read: () => seconds(process.resourceUsage().userCPUTime) },
  { name: 'rusage_system', type: 'counter', help: 'CPU seconds spent in the kernel', metric: 'cpu_system_seconds_total', read: () => seconds(process.resourceUsage().systemCPUTime) },
  { name: 'threads', type: 'gauge', help: 'threads serving clients (one event loop)', metric: null, read: () => 1 },
  { name: 'accepting_conns', type: 'gauge', help: 'whether client connections are accepted (1)', metric: null, read: () => 1 },
];

/** What `stats settings` reads for memcached's own settings names. */
export interface MemcachedSettingsSource {
  readonly store: MemoryStore;
  readonly maxConnections: number;
  readonly tcpPort: number;
  readonly socketPath: string | null;
  readonly verbosity: number;
}

/** memcached's `stats settings` names, for its tools; the daemon's own settings follow them. */
export const MEMCACHED_SETTINGS: ReadonlyArray<Stat<MemcachedSettingsSource>> = [
  { name: 'maxbytes', type: 'gauge', help: 'memory for items (--memory-limit)', read: (s) => s.store.memoryLimit },
  { name: 'maxconns', type: 'gauge', help: 'client connections accepted at once (--max-connections)', read: (s) => s.maxConnections },
  { name: 'tcpport', type: 'gauge', help: 'the TCP port PHP connects to (--listen)', read: (s) => s.tcpPort },
  { name: 'udpport', type: 'gauge', help: 'UDP port: none (0)', read: () => 0 },
  { name: 'verbosity', type: 'gauge', help: 'as set by the verbosity command (accepted, reported; logging follows --log-level)', read: (s) => s.verbosity },
  { name: 'evictions', type: 'text', help: 'whether items are evicted at the memory limit (on)', read: () => 'on' },
  { name: 'domain_socket', type: 'text', help: 'the unix socket path (--socket), or NULL', read: (s) => s.socketPath ?? 'NULL' },
  { name: 'num_threads', type: 'gauge', help: 'threads serving clients (1)', read: () => 1 },
  { name: 'cas_enabled', type: 'text', help: 'whether CAS uniques are kept (yes)', read: () => 'yes' },
  { name: 'binding_protocol', type: 'text', help: 'the protocols served: ascii and binary, chosen by the first byte (auto-negotiate)', read: () => 'auto-negotiate' },
  { name: 'auth_enabled_sasl', type: 'text', help: 'whether SASL authentication is required (no)', read: () => 'no' },
  { name: 'item_size_max', type: 'gauge', help: 'the largest value stored (--max-item-size)', read: (s) => s.store.maxItemSize },
  { name: 'lru_crawler', type: 'text', help: 'whether expired items are reclaimed in the background (yes)', read: () => 'yes' },
];

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
