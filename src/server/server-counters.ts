/** Connection and traffic counters of the listeners, read by `stats`. */
import type { AuthCounters } from '../security/client-auth.js';
import type { Stat } from '../stats/registry.js';

export class ServerCounters {
  currConnections = 0;
  totalConnections = 0;
  rejectedConnections = 0;
  /** connections closed by --command-timeout-ms */
  commandTimeouts = 0;
  /** connections closed to give their slot to a new one at --max-connections */
  reclaimedConnections = 0;
  /** connections closed at once because their address is not in --allow */
  notAllowedConnections = 0;
  bytesRead = 0;
  bytesWritten = 0;
}

/** What `stats` reads of the client listeners: their counters and the limit they run with. */
export interface ServerStatsSource {
  readonly counters: ServerCounters;
  readonly maxConnections: number;
  /** client authentication's counters, with --auth-file */
  readonly auth?: AuthCounters;
}

/** memcached's names (protocol.txt, "General-purpose statistics"). */
export const SERVER_STATS: ReadonlyArray<Stat<ServerStatsSource>> = [
  { name: 'max_connections', type: 'gauge', help: 'client connections accepted at once (--max-connections)', read: (s) => s.maxConnections },
  { name: 'curr_connections', type: 'gauge', help: 'client connections open now', read: (s) => s.counters.currConnections },
  { name: 'total_connections', type: 'counter', help: 'client connections accepted since start (PHP connects once per request unless its connections are persistent)', read: (s) => s.counters.totalConnections },
  { name: 'rejected_connections', type: 'counter', help: 'client connections refused because --max-connections were open: each a PHP request that could not open its session', read: (s) => s.counters.rejectedConnections },
  { name: 'command_timeouts', type: 'counter', help: 'client connections closed because a request stopped arriving midway (a partial command line or header, or a value whose bytes stopped coming) for --command-timeout-ms; idle connections are never closed', read: (s) => s.counters.commandTimeouts },
  { name: 'reclaimed_connections', type: 'counter', help: 'client connections closed to admit a new one at --max-connections: the one stuck the longest in the middle of a request, or silent since it connected, for at least a quarter of a second (or --command-timeout-ms if shorter); never one idle between requests', read: (s) => s.counters.reclaimedConnections },
  { name: 'rejected_connections_not_allowed', type: 'counter', help: 'client connections closed at once because their address is not in --allow (unix socket clients are never counted here)', read: (s) => s.counters.notAllowedConnections },
  { name: 'connection_structures', type: 'gauge', help: 'connection structures allocated (memcached\'s name; here the open connections)', metric: null, read: (s) => s.counters.currConnections },
  { name: 'auth_cmds', type: 'counter', help: 'client authentication attempts (--auth-file: SASL AUTH, or an ascii connection\'s credentials)', read: (s) => s.auth?.attempts ?? 0 },
  { name: 'auth_errors', type: 'counter', help: 'failed client authentications: a wrong user or password; each is logged, without the password', read: (s) => s.auth?.failures ?? 0 },
  { name: 'bytes_read', type: 'counter', help: 'bytes read from client connections', read: (s) => s.counters.bytesRead },
  { name: 'bytes_written', type: 'counter', help: 'bytes written to client connections', read: (s) => s.counters.bytesWritten },
];
