/**
 * Prometheus metrics over HTTP (--metrics-listen): GET /metrics answers the `stats` figures in the
 * Prometheus text exposition format 0.0.4 (prometheus.io/docs/instrumenting/exposition_formats),
 * so a farm's monitoring can scrape every daemon without a memcached plugin. Same numbers as
 * `stats`, named `session_cluster_<stats field>`; counters end in `_total`, as Prometheus names
 * them; the member list becomes one series per member and state.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ListenError } from '../errors.js';
import type { Logger } from '../log.js';

/** `stats` fields that only ever grow: exported as counters. Everything numeric else is a gauge. */
const COUNTERS = new Set([
  'total_connections', 'rejected_connections', 'cmd_get', 'cmd_set', 'cmd_flush', 'cmd_touch',
  'get_hits', 'get_misses', 'get_expired', 'get_flushed', 'delete_misses', 'delete_hits',
  'incr_misses', 'incr_hits', 'decr_misses', 'decr_hits', 'cas_misses', 'cas_hits', 'cas_badval',
  'touch_hits', 'touch_misses', 'bytes_read', 'bytes_written', 'total_items', 'expired_unfetched',
  'evictions', 'reclaimed', 'evicted_tombstones', 'session_ids_minted', 'session_ids_rehomed',
  'cluster_forwarded', 'cluster_forwarded_reads', 'cluster_forward_failures', 'cluster_forward_retries', 'cluster_replicated',
  'cluster_rereplicated', 'cluster_rereplication_skipped', 'cluster_replicas_applied', 'cluster_replication_failures',
  'cluster_failovers', 'cluster_handoff_batches', 'cluster_catch_ups',
  'cluster_peer_connect_failures', 'cluster_peer_link_drops', 'cluster_peer_auth_refused', 'cluster_peer_refused_by_peer',
  'cluster_peer_tls_refused', 'cluster_peer_request_timeouts', 'cluster_peer_sends_dropped', 'cluster_peer_bytes_sent',
  'cluster_peer_bytes_received',
]);

/** CPU seconds: counters too, with their unit in the name. */
const SECONDS_COUNTERS = new Map([['rusage_user', 'cpu_user_seconds_total'], ['rusage_system', 'cpu_system_seconds_total']]);

/** Not numbers to chart: the process id and clock, and constants. The text ones go into the info series. */
const SKIPPED = new Set(['pid', 'time', 'pointer_size', 'threads', 'accepting_conns', 'connection_structures', 'auth_cmds', 'auth_errors']);

const PREFIX = 'session_cluster_';

/** `stats` entries -> the exposition text. Pure, so it is tested without a server. */
export function renderMetrics(entries: ReadonlyArray<readonly [string, string]>): string {
  const lines: string[] = [];
  const info: Record<string, string> = {};
  for (const [name, value] of entries) {
    if (SKIPPED.has(name)) continue;
    if (name === 'version') { info.version = value; continue; }
    if (name === 'cluster_node_id') { info.node_id = value; continue; }
    if (name === 'cluster_replication') { info.replication = value; continue; }
    if (name === 'cluster_peer_tls') { info.peer_tls = value; continue; }
    if (name === 'cluster_members') {
      lines.push(...memberSeries(value));
      continue;
    }
    const number = Number(value);
    if (value === '' || !Number.isFinite(number)) continue;
    const seconds = SECONDS_COUNTERS.get(name);
    if (seconds !== undefined) {
      lines.push(`# TYPE ${PREFIX}${seconds} counter`, `${PREFIX}${seconds} ${number}`);
    } else if (COUNTERS.has(name)) {
      lines.push(`# TYPE ${PREFIX}${name}_total counter`, `${PREFIX}${name}_total ${number}`);
    } else {
      lines.push(`# TYPE ${PREFIX}${name} gauge`, `${PREFIX}${name} ${number}`);
    }
  }
  const labels = Object.entries(info).map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(',');
  lines.unshift(`# TYPE ${PREFIX}info gauge`, `${PREFIX}info{${labels}} 1`);
  return `${lines.join('\n')}\n`;
}

/** "a:alive,b:dead" -> one series per member, 1 for its state, plus a count per state. */
function memberSeries(value: string): string[] {
  const states = ['alive', 'suspect', 'dead', 'left'];
  const counts = new Map(states.map((state) => [state, 0]));
  const members: string[] = [];
  for (const part of value.split(',')) {
    const colon = part.lastIndexOf(':');
    if (colon <= 0) continue;
    const node = part.slice(0, colon);
    const state = part.slice(colon + 1);
    counts.set(state, (counts.get(state) ?? 0) + 1);
    members.push(`${PREFIX}cluster_member{node="${escapeLabel(node)}",state="${escapeLabel(state)}"} 1`);
  }
  return [
    `# TYPE ${PREFIX}cluster_members gauge`,
    ...[...counts].map(([state, count]) => `${PREFIX}cluster_members{state="${state}"} ${count}`),
    `# TYPE ${PREFIX}cluster_member gauge`,
    ...members,
  ];
}

/** The exposition format escapes backslash, double quote and newline in label values. */
function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

export class MetricsServer {
  private readonly server: http.Server;

  constructor(private readonly stats: () => ReadonlyArray<readonly [string, string]>, private readonly log: Logger) {
    this.server = http.createServer((request, response) => this.answer(request, response));
    // A scraper holds no connection open for long; these bound what an idle or slow client costs.
    this.server.headersTimeout = 10_000;
    this.server.requestTimeout = 10_000;
    this.server.keepAliveTimeout = 5_000;
  }

  async listen(host: string, port: number): Promise<AddressInfo> {
    await new Promise<void>((resolve, reject) => {
      const failed = (error: NodeJS.ErrnoException) => {
        const reason = error.code === 'EADDRINUSE' ? 'address already in use' : error.code === 'EACCES' ? 'permission denied' : error.message;
        reject(new ListenError(`cannot listen for metrics on ${host}:${port}: ${reason}`));
      };
      this.server.once('error', failed);
      this.server.listen(port, host, () => {
        this.server.off('error', failed);
        resolve();
      });
    });
    const address = this.server.address() as AddressInfo;
    this.log.info({ transport: 'metrics', host: address.address, port: address.port, path: '/metrics' }, 'listening');
    return address;
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private answer(request: http.IncomingMessage, response: http.ServerResponse): void {
    const path = (request.url ?? '').split('?')[0];
    if (path !== '/metrics') {
      response.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' }).end('not found: the metrics are at /metrics\n');
      return;
    }
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain; charset=utf-8' }).end('method not allowed\n');
      return;
    }
    const body = renderMetrics(this.stats());
    response.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8', 'Content-Length': Buffer.byteLength(body) });
    response.end(request.method === 'HEAD' ? undefined : body);
  }
}
