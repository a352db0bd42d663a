/**
 * Every statistic the daemon shows, in the order it shows them: `stats` is the sections below
 * whose source the node has (the cluster sections only in cluster mode), `stats settings` is
 * memcached's settings names and then one line per setting. The definitions live beside the code
 * that counts them; this list only orders them and names what each section is read from, so the
 * composition root binds every section the same way, and docs/stats.md is rendered from it.
 */
import { CLUSTER_STATS, type ClusterStatsSource } from './cluster/cluster-node.js';
import type { ClockOffsets } from './cluster/membership/clock-offsets.js';
import { CLOCK_STATS, MEMBERSHIP_STATS, type MembershipStats } from './cluster/membership/membership-stats.js';
import { PEER_STATS, type PeerCounters } from './cluster/peer/peer-counters.js';
import { REPLICATION_STATS, type ReplicationCounters } from './cluster/replication/replicator.js';
import { ROUTER_STATS, type RouterCounters } from './cluster/router.js';
import { SESSION_ID_STATS, type SessionIdCounters } from './cluster/session-ids.js';
import { COMMAND_STATS, type CommandCounters } from './command/executor.js';
import { MEMCACHED_SETTINGS, type MemcachedSettingsSource, PROCESS_STATS, type ProcessStatsSource } from './command/stats.js';
import { SETTING_STATS, type Settings } from './config.js';
import { SERVER_STATS, type ServerStatsSource } from './server/server-counters.js';
import { SESSION_LOCK_STATS, type SessionLocks } from './session-locks/session-locks.js';
import { type DiskStatsSource, STORAGE_STATS } from './store/disk/disk-storage.js';
import { STORE_COUNTER_STATS, STORE_STATS, type MemoryStore, type StoreCounters } from './store/memory-store.js';
import { countersToStats, type Stat, type StatDef, type StatsRegistry } from './stats/registry.js';

/** What each section of `stats` is read from. */
export interface StatSources {
  process: ProcessStatsSource;
  server: ServerStatsSource;
  commands: CommandCounters;
  storeCounters: StoreCounters;
  store: MemoryStore;
  storage: DiskStatsSource;
  locks: SessionLocks;
  sessionIds: SessionIdCounters;
  cluster: ClusterStatsSource;
  router: RouterCounters;
  replication: ReplicationCounters;
  membership: MembershipStats;
  clocks: ClockOffsets;
  peers: PeerCounters;
}

/** What each section of `stats settings` is read from. */
export interface SettingSources {
  memcached: MemcachedSettingsSource;
  settings: Settings;
}

/** One section of a stats reply: a title for the docs, and its statistics. */
export interface StatSection<Sources> {
  readonly title: string;
  /** every node, or cluster mode only */
  readonly scope: 'node' | 'cluster';
  readonly stats: readonly StatDef[];
  /** adds the section to `registry` if `sources` has what it is read from */
  bind(registry: StatsRegistry, sources: Partial<Sources>): void;
}

function section<Sources, K extends keyof Sources>(
  title: string, scope: 'node' | 'cluster', source: K, stats: ReadonlyArray<Stat<Sources[K]>>,
): StatSection<Sources> {
  return {
    title,
    scope,
    stats,
    bind(registry, sources) {
      const from = sources[source];
      if (from !== undefined) registry.add(stats, from as Sources[K]);
    },
  };
}

/** `stats`, in order: memcached's fields first (pid, uptime, time, version lead, as memcached's do). */
export const STATS_SECTIONS: ReadonlyArray<StatSection<StatSources>> = [
  section<StatSources, 'process'>('Process', 'node', 'process', PROCESS_STATS),
  section<StatSources, 'server'>('Client connections', 'node', 'server', SERVER_STATS),
  section<StatSources, 'commands'>('Commands', 'node', 'commands', countersToStats(COMMAND_STATS)),
  section<StatSources, 'storeCounters'>('Reads and writes', 'node', 'storeCounters', countersToStats(STORE_COUNTER_STATS)),
  section<StatSources, 'store'>('Memory and items', 'node', 'store', STORE_STATS),
  section<StatSources, 'storage'>('Disk storage', 'node', 'storage', STORAGE_STATS),
  section<StatSources, 'locks'>('Session locks', 'node', 'locks', SESSION_LOCK_STATS),
  section<StatSources, 'sessionIds'>('Session ids', 'node', 'sessionIds', countersToStats(SESSION_ID_STATS)),
  section<StatSources, 'cluster'>('Cluster', 'cluster', 'cluster', CLUSTER_STATS),
  section<StatSources, 'router'>('Forwarding', 'cluster', 'router', countersToStats(ROUTER_STATS)),
  section<StatSources, 'replication'>('Replication', 'cluster', 'replication', countersToStats(REPLICATION_STATS)),
  section<StatSources, 'membership'>('Membership', 'cluster', 'membership', countersToStats(MEMBERSHIP_STATS)),
  section<StatSources, 'clocks'>('Clocks', 'cluster', 'clocks', CLOCK_STATS),
  section<StatSources, 'peers'>('Peer links', 'cluster', 'peers', countersToStats(PEER_STATS)),
];

/** `stats settings`, in order: memcached's names (for its tools), then the daemon's settings. */
export const SETTINGS_SECTIONS: ReadonlyArray<StatSection<SettingSources>> = [
  section<SettingSources, 'memcached'>('memcached\'s settings', 'node', 'memcached', MEMCACHED_SETTINGS),
  section<SettingSources, 'settings'>('Settings', 'node', 'settings', SETTING_STATS),
];

/** Adds every section whose source is given to `registry`, in catalog order. */
export function bindSections<Sources>(registry: StatsRegistry, sections: ReadonlyArray<StatSection<Sources>>, sources: Partial<Sources>): StatsRegistry {
  for (const part of sections) part.bind(registry, sources);
  return registry;
}
