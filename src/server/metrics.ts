/**
 * Prometheus metrics over HTTP (--metrics-listen): GET /metrics answers the `stats` figures in the
 * Prometheus text exposition format 0.0.4 (prometheus.io/docs/instrumenting/exposition_formats),
 * so a farm's monitoring can scrape every daemon without a memcached plugin. Same numbers as
 * `stats`, from the same registry, each with the HELP and TYPE its definition gives: named
 * `session_cluster_<stats field>`, counters ending in `_total`, as Prometheus names them; the
 * text fields become labels of one info series, and the member list one series per member.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { formatEndpoint } from '../address.js';
import { ListenError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Sample } from '../stats/registry.js';

const PREFIX = 'session_cluster_';

/** The statistic rendered as one series per member rather than as a label. */
const MEMBERS_STAT = 'cluster_members';

/** Samples -> the exposition text. Pure, so it is tested without a server. */
export function renderMetrics(samples: readonly Sample[]): string {
  const lines: string[] = [];
  const info: Record<string, string> = {};
  for (const { def, value } of samples) {
    if (def.type === 'text') {
      if (def.name === MEMBERS_STAT) lines.push(...memberSeries(String(value)));
      // An empty text (disk_fsync without a data directory) is no label: Prometheus reads "" as absent.
      else if (typeof def.metric === 'string' && String(value) !== '') info[def.metric] = String(value);
      continue;
    }
    if (def.metric === null) continue;
    const number = Number(value);
    if (value === '' || !Number.isFinite(number)) continue;
    const name = `${PREFIX}${def.metric ?? (def.type === 'counter' ? `${def.name}_total` : def.name)}`;
    lines.push(`# HELP ${name} ${escapeHelp(def.help)}`, `# TYPE ${name} ${def.type}`, `${name} ${number}`);
  }
  const labels = Object.entries(info).map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(',');
  lines.unshift(`# HELP ${PREFIX}info the daemon's version, where it keeps sessions (storage, and fsync with a data directory) and, in cluster mode, its node id, replication mode and peer TLS`, `# TYPE ${PREFIX}info gauge`, `${PREFIX}info{${labels}} 1`);
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
    `# HELP ${PREFIX}cluster_members members this node knows, by state`,
    `# TYPE ${PREFIX}cluster_members gauge`,
    ...[...counts].map(([state, count]) => `${PREFIX}cluster_members{state="${state}"} ${count}`),
    `# HELP ${PREFIX}cluster_member each member this node knows, with its state`,
    `# TYPE ${PREFIX}cluster_member gauge`,
    ...members,
  ];
}

/** The exposition format escapes backslash, double quote and newline in label values. */
function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** ... and backslash and newline in HELP text. */
function escapeHelp(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

export class MetricsServer {
  private readonly server: http.Server;

  /**
   * `readiness`: whether the node serves sessions now, and why not; GET /ready and GET /health
   * answer 200 or 503 with it, for a load balancer's or a container's health check.
   */
  constructor(
    private readonly samples: () => readonly Sample[],
    private readonly log: Logger,
    private readonly readiness: () => { ready: boolean; why: string } = () => ({ ready: true, why: '' }),
  ) {
    this.server = http.createServer((request, response) => this.answer(request, response));
    // A scraper holds no connection open for long; these bound what an idle or slow client costs.
    this.server.headersTimeout = 10_000;
    this.server.requestTimeout = 10_000;
    this.server.keepAliveTimeout = 5_000;
  }

  async listen(host: string, port: number): Promise<AddressInfo> {
    await new Promise<void>((resolve, reject) => {
      const failed = (error: NodeJS.ErrnoException) => {
        reject(ListenError.from(`for metrics on ${formatEndpoint(host, port)}`, error));
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
    if (path !== '/metrics' && path !== '/ready' && path !== '/health') {
      response.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' }).end('not found: the metrics are at /metrics, health at /health, readiness at /ready\n');
      return;
    }
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain; charset=utf-8' }).end('method not allowed\n');
      return;
    }
    if (path === '/ready' || path === '/health') {
      // 503 while the node does not serve sessions (not joined to its cluster, catching up, without
      // a majority, draining): a load balancer moves the users to nodes that do, and a container's
      // health check reads the reason. /health says `ok`, /ready `ready`; the rest is the same.
      const { ready, why } = this.readiness();
      // /health also fails on any reason given (the reason is what its body is for).
      const serving = path === '/health' ? ready && why === '' : ready;
      const text = serving ? (path === '/health' ? 'ok\n' : 'ready\n') : `${path === '/health' ? 'unhealthy' : 'not ready'}: ${why || 'not serving'}\n`;
      response.writeHead(serving ? 200 : 503, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
      response.end(request.method === 'HEAD' ? undefined : text);
      return;
    }
    const body = renderMetrics(this.samples());
    response.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8', 'Content-Length': Buffer.byteLength(body) });
    response.end(request.method === 'HEAD' ? undefined : body);
  }
}
