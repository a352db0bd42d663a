/**
 * Cluster harness: starts n real daemons on loopback wired to each other (peer ports picked
 * beforehand, so every node can name the others in --peers), reads their `stats` over a raw
 * socket, waits for membership to converge, and kills / stops / continues / restarts single nodes.
 *
 * Nodes can run behind fault proxies on their peer links (ClusterOptions.behindProxies,
 * integration/fault-proxy.ts) and under a wrapping command such as faketime (ClusterOptions.wrap).
 *
 * Every cluster must be stopped with stopCluster() (afterAll/afterEach). It continues stopped
 * nodes before killing them; a process-exit hook does the same for whatever a crashed test run
 * left behind, so no SIGSTOPped daemon outlives the test run.
 */
import net from 'node:net';
import { FaultNetwork } from './fault-proxy.js';
import { freePort, freePorts, httpGet, signalDaemon, sleep, startDaemon, type RunningServer } from './harness.js';
import { RawClient, rawGet, rawStats } from './raw-client.js';

export type MemberState = 'alive' | 'suspect' | 'dead' | 'left';

export interface ClusterOptions {
  /** shared secret (16+ chars); default: a fixed test secret */
  secret?: string;
  /** node ids whose secret goes in SESSION_CLUSTER_SECRET instead of --cluster-secret */
  secretViaEnv?: string[];
  heartbeatMs?: number;
  failureTimeoutMs?: number;
  replication?: 'sync' | 'async';
  /** node ids are `${idPrefix}${i}`, i from 1; default "node" */
  idPrefix?: string;
  /** the node ids, in order (instead of idPrefix numbering); their count must be n */
  ids?: string[];
  /**
   * Put a fault proxy (integration/fault-proxy.ts) in front of every node: each node announces
   * its proxy (--peer-advertise) and names the others' proxies in --peers, so every peer
   * connection passes through the proxy of the node it dials. The proxies are cluster.faults.
   */
  behindProxies?: boolean;
  /**
   * Runs a node's daemon under a command (`prefix`, e.g. ['faketime', '-f', '+1h']) with more
   * environment variables; also on restart.
   */
  wrap?: (node: { id: string; peerPort: number }) => { prefix?: string[]; env?: Record<string, string> } | undefined;
  /** more flags for every node */
  extraArgs?: string[];
  /** more flags for one node (its certificate, say), after extraArgs; also for startExtraNode */
  perNodeArgs?: (node: { id: string; peerPort: number }) => string[];
  /**
   * the host of each node's --peer-listen; default 127.0.0.1. The others still dial
   * node.peerAddress (127.0.0.1): a wildcard here needs --peer-advertise in perNodeArgs.
   */
  peerListenHost?: string;
}

export const DEFAULT_SECRET = 'integration-test-cluster-secret';

export class ClusterNode {
  server!: RunningServer;
  /** port for PHP clients; fixed after the first start, reused by restart() */
  port = 0;
  readonly host = '127.0.0.1';
  /** SIGSTOPped and not continued yet */
  stopped = false;
  /** every log line of every start of this node (a restart appends), tagged harnessStart: 1, 2, … */
  readonly allLogs: Array<Record<string, unknown>> = [];
  private starts = 0;

  constructor(
    readonly id: string,
    readonly peerPort: number,
    private readonly args: () => string[],
    private readonly env: Record<string, string> | undefined,
    /** a command the daemon runs under (faketime), or none */
    readonly prefix: string[] = [],
  ) {}

  /** the daemon's pid (not a wrapper's, when it runs under one) */
  get pid(): number | undefined { return this.server?.daemonPid ?? this.server?.process.pid; }
  get peerAddress(): string { return `127.0.0.1:${this.peerPort}`; }
  /** the process runs (possibly stopped) */
  get running(): boolean {
    const p = this.server?.process;
    return !!p && p.exitCode === null && p.signalCode === null;
  }
  /** log lines of the current incarnation */
  get logs(): Array<Record<string, unknown>> { return this.server?.logs ?? []; }

  /** the HTTP port of --metrics-listen, when the node has one */
  get metricsPort(): number | undefined { return this.server?.metricsPort; }

  /**
   * Starts the daemon; resolves once it is ready, or with `until: 'metrics'` once its metrics
   * listener is open (a node that is not expected to join: it never opens its client port).
   */
  async start(until: 'ready' | 'metrics' = 'ready'): Promise<void> {
    const listen = `127.0.0.1:${this.port}`;
    const server = await startDaemon(['--listen', listen, ...this.args()], { env: this.env, prefix: this.prefix, until });
    this.server = server;
    this.port = server.port;
    this.stopped = false;
    const harnessStart = ++this.starts;
    // Mirror the logs into allLogs, tagged with the start they belong to (startDaemon keeps
    // appending). Not named "incarnation": the daemon's membership lines have a field of that name.
    const own = server.logs;
    for (const l of own) this.allLogs.push({ ...l, harnessStart });
    const push = own.push.bind(own);
    own.push = (...items) => { for (const l of items) this.allLogs.push({ ...l, harnessStart }); return push(...items); };
    live.add(server);
    void server.process.finally(() => live.delete(server));
  }

  /** Sends a signal; SIGSTOP/SIGCONT are tracked so cleanup always continues the process. */
  signal(sig: NodeJS.Signals): void {
    if (!this.running) return;
    signalDaemon(this.server, sig);
    if (sig === 'SIGSTOP') this.stopped = true;
    if (sig === 'SIGCONT') this.stopped = false;
  }

  /** kill -9, and wait until the process is gone. */
  async kill(): Promise<void> {
    if (!this.running) return;
    signalDaemon(this.server, 'SIGKILL');
    this.stopped = false;
    await this.server.process.catch(() => undefined);
  }

  /** SIGTERM (graceful: the node drains), and wait until the process is gone; its exit code. */
  async terminate(timeoutMs = 40_000): Promise<number | null> {
    if (!this.running) return this.server?.process.exitCode ?? null;
    const p = this.server.process;
    signalDaemon(this.server, 'SIGTERM');
    const timer = setTimeout(() => signalDaemon(this.server, 'SIGKILL'), timeoutMs);
    await p.catch(() => undefined);
    clearTimeout(timer);
    return p.exitCode ?? null;
  }

  /** kill -STOP */
  pause(): void { this.signal('SIGSTOP'); }
  /** kill -CONT */
  resume(): void { this.signal('SIGCONT'); }

  /** Starts the node again, same id, same client and peer ports, empty memory. */
  async restart(): Promise<void> {
    if (this.running) await this.kill();
    await this.start();
  }

  /** Continue if stopped, then kill -9 (graceful drain is not what cleanup is for). */
  async cleanup(): Promise<void> {
    if (!this.server) return;
    if (this.running) signalDaemon(this.server, 'SIGCONT');
    this.stopped = false;
    await this.kill();
  }

  /** For failure messages: how the process ended and its last log lines (errors first). */
  describeExit(lines = 6): string {
    const p = this.server?.process;
    if (!p) return `${this.id}: never started`;
    const state = this.running ? (this.stopped ? 'stopped (SIGSTOP)' : 'running') : `exited (code ${p.exitCode}, signal ${p.signalCode})`;
    const logs = this.logs;
    // Errors and non-JSON output (a crash's stack trace) first, else the last lines; and always the
    // line that says which signal stopped it, if one did.
    const bad = logs.filter((l) => Number(l.level) >= 50 || l.raw !== undefined).slice(-lines);
    const picked = bad.length ? bad : logs.slice(-lines);
    const stopping = logs.find((l) => l.msg === 'stopping');
    if (stopping && !picked.includes(stopping)) picked.unshift(stopping);
    const tail = picked.map((l) => JSON.stringify(l).slice(0, 600));
    return `${this.id} pid ${p.pid} ${state}; ${bad.length ? 'error/raw' : 'last'} log lines:\n    ${tail.join('\n    ')}`;
  }

  /** log lines (all incarnations) whose msg contains `text` */
  logsMatching(text: string | RegExp): Array<Record<string, unknown>> {
    return this.allLogs.filter((l) => {
      const msg = typeof l.msg === 'string' ? l.msg : typeof l.raw === 'string' ? l.raw : '';
      return typeof text === 'string' ? msg.includes(text) : text.test(msg);
    });
  }
}

// Safety net: a test run that dies mid-test must not leave daemons behind, least of all stopped
// ones (a SIGSTOPped process ignores SIGTERM until continued).
const live = new Set<RunningServer>();
process.once('exit', () => {
  for (const s of live) {
    signalDaemon(s, 'SIGCONT');
    signalDaemon(s, 'SIGKILL');
    try { s.process.kill('SIGKILL'); } catch { /* gone */ }
  }
});

export interface Cluster {
  nodes: ClusterNode[];
  secret: string;
  /** the fault proxies in front of the nodes (ClusterOptions.behindProxies), closed by stopCluster */
  faults?: FaultNetwork;
  /** node by id */
  node(id: string): ClusterNode;
}

const started = new Set<Cluster>();

function nodeArgs(id: string, peerPort: number, peers: string[], o: ClusterOptions, secret: string, viaEnv: boolean, advertise?: string): string[] {
  return [
    '--peer-listen', `${o.peerListenHost ?? '127.0.0.1'}:${peerPort}`,
    ...(advertise ? ['--peer-advertise', advertise] : []),
    ...(peers.length > 0 ? ['--peers', peers.join(',')] : []),
    '--node-id', id,
    ...(viaEnv ? [] : ['--cluster-secret', secret]),
    '--heartbeat-ms', String(o.heartbeatMs ?? 100),
    '--failure-timeout-ms', String(o.failureTimeoutMs ?? 600),
    ...(o.replication ? ['--replication', o.replication] : []),
    ...(o.extraArgs ?? []),
    ...(o.perNodeArgs?.({ id, peerPort }) ?? []),
  ];
}

/**
 * Starts n daemons that name each other as seed peers (each gets the others' peer addresses),
 * in parallel. Resolves when every one logged "ready"; membership may still be converging — use
 * waitForMembers.
 */
export async function startCluster(n: number, opts: ClusterOptions = {}): Promise<Cluster> {
  const secret = opts.secret ?? DEFAULT_SECRET;
  const prefix = opts.idPrefix ?? 'node';
  if (opts.ids && opts.ids.length !== n) throw new Error(`${opts.ids.length} ids for ${n} nodes`);
  const ids = opts.ids ?? Array.from({ length: n }, (_, i) => `${prefix}${i + 1}`);
  const peerPorts = await freePorts(n);
  const faults = opts.behindProxies ? await FaultNetwork.start(Object.fromEntries(ids.map((id, i) => [id, peerPorts[i]!]))) : undefined;
  // Behind proxies a node is dialed, and named as a seed, at its proxy's address only.
  const dialed = (i: number) => (faults ? faults.addressOf(ids[i]!) : `127.0.0.1:${peerPorts[i]}`);
  const nodes = peerPorts.map((peerPort, i) => {
    const id = ids[i]!;
    const viaEnv = opts.secretViaEnv?.includes(id) ?? false;
    const peers = peerPorts.flatMap((_, j) => (j === i ? [] : [dialed(j)]));
    const wrap = opts.wrap?.({ id, peerPort });
    const env = { ...(viaEnv ? { SESSION_CLUSTER_SECRET: secret } : {}), ...(wrap?.env ?? {}) };
    return new ClusterNode(id, peerPort, () => nodeArgs(id, peerPort, peers, opts, secret, viaEnv, faults?.addressOf(id)),
      Object.keys(env).length ? env : undefined, wrap?.prefix);
  });
  const cluster: Cluster = {
    nodes, secret, ...(faults ? { faults } : {}),
    node(id) {
      const found = nodes.find((x) => x.id === id);
      if (!found) throw new Error(`no node ${id}`);
      return found;
    },
  };
  started.add(cluster);
  const results = await Promise.allSettled(nodes.map((x) => x.start()));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    await stopCluster(cluster);
    throw failed.reason;
  }
  return cluster;
}

/** startCluster, then waits until every node lists every node alive. */
export async function startLiveCluster(n: number, opts: ClusterOptions = {}): Promise<Cluster> {
  const cluster = await startCluster(n, opts);
  await waitForMembers(cluster.nodes, allAlive(cluster.nodes), 10_000);
  return cluster;
}

/**
 * Starts one more daemon that names `seeds` as its peers (for joining a running cluster). It is
 * not part of any Cluster: stop it with node.cleanup(). Resolves once it is ready.
 */
export async function startExtraNode(id: string, seeds: ClusterNode[], opts: ClusterOptions = {}): Promise<ClusterNode> {
  const node = await extraNode(id, seeds, opts, []);
  await node.start();
  return node;
}

/**
 * Starts one more daemon that names `seeds` as its peers but is not expected to join them (a
 * wrong secret, TLS on one side only): such a node never serves, so it never opens its client
 * port. It gets a --metrics-listen port (its /health, /metrics) and the join timeout given
 * (default 0: it waits, until cleanup()). Resolves once its metrics listener is open.
 */
export async function startOutsiderNode(id: string, seeds: Array<{ peerAddress: string }>, opts: ClusterOptions & { joinTimeoutMs?: number } = {}): Promise<ClusterNode> {
  const node = await extraNode(id, seeds, opts, ['--metrics-listen', '127.0.0.1:0', '--join-timeout-ms', String(opts.joinTimeoutMs ?? 0)]);
  // A client port chosen beforehand, so that a test can see that nothing listens on it.
  node.port = await freePort();
  await node.start('metrics');
  return node;
}

async function extraNode(id: string, seeds: Array<{ peerAddress: string }>, opts: ClusterOptions, more: string[]): Promise<ClusterNode> {
  const peerPort = await freePort();
  const secret = opts.secret ?? DEFAULT_SECRET;
  return new ClusterNode(id, peerPort,
    () => [...nodeArgs(id, peerPort, seeds.map((s) => s.peerAddress), opts, secret, false), ...more], undefined);
}

/**
 * `stats` as GET /metrics shows it, for a node whose client port is closed (startOutsiderNode):
 * each series by its metric name (labels included, as written), and the member list as
 * cluster_members would give it.
 */
export async function scrapeMetrics(node: ClusterNode): Promise<{ series: Map<string, number>; members: Record<string, string> }> {
  const { status, body } = await httpGet(node, '/metrics');
  if (status !== 200) throw new Error(`GET /metrics on ${node.id}: ${status} ${body}`);
  const series = new Map<string, number>();
  const members: Record<string, string> = {};
  for (const line of body.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const space = line.lastIndexOf(' ');
    const name = line.slice(0, space);
    series.set(name, Number(line.slice(space + 1)));
    const member = /^session_cluster_cluster_member\{node="([^"]*)",state="([^"]*)"\}$/.exec(name);
    if (member !== null) members[member[1]!] = member[2]!;
  }
  return { series, members };
}

/** Continues stopped nodes, then kills every node of every cluster given (default: all started). */
export async function stopCluster(cluster?: Cluster): Promise<void> {
  const clusters = cluster ? [cluster] : [...started];
  for (const c of clusters) {
    for (const x of c.nodes) if (x.stopped && x.running) x.signal('SIGCONT');
    await Promise.all(c.nodes.map((x) => x.cleanup()));
    await c.faults?.close();
    started.delete(c);
  }
}

/** `stats` over a fresh raw ascii connection: the STAT lines as a map. */
export function stats(node: { host: string; port: number; id?: string; running?: boolean }, timeoutMs = 2000): Promise<Record<string, string>> {
  const who = `${node.id ?? ''}@${node.host}:${node.port}${node.running === false ? ' (process has exited)' : ''}`;
  return rawStats(node, { timeoutMs, label: `stats on ${who}` });
}

/** "node1:alive,node2:dead" -> { node1: 'alive', node2: 'dead' } */
export function parseMembers(value: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!value) return out;
  for (const part of value.split(',')) {
    const i = part.lastIndexOf(':');
    if (i > 0) out[part.slice(0, i)] = part.slice(i + 1);
  }
  return out;
}

export async function members(node: ClusterNode): Promise<Record<string, string>> {
  return parseMembers((await stats(node, 1000)).cluster_members);
}

/** A stat as a number (NaN when missing). */
export async function statNumber(node: ClusterNode, name: string): Promise<number> {
  return Number((await stats(node, 1000))[name]);
}

/**
 * expected: member id -> state it must have, or a list of acceptable states, or 'absent' (must not
 * be listed). Ids not named are not checked.
 */
export type ExpectedMembers = Record<string, MemberState | 'absent' | Array<MemberState | 'absent'>>;

function matches(seen: Record<string, string>, expected: ExpectedMembers): boolean {
  return Object.entries(expected).every(([id, want]) => {
    const wants = Array.isArray(want) ? want : [want];
    return wants.includes((seen[id] ?? 'absent') as MemberState);
  });
}

/**
 * Polls `stats` on every node until each reports the expected member states. Throws with what
 * each node last reported when the time runs out.
 */
export async function waitForMembers(nodes: ClusterNode[], expected: ExpectedMembers, timeoutMs = 10_000): Promise<number> {
  const t0 = Date.now();
  const deadline = t0 + timeoutMs;
  const last = new Map<string, string>();
  for (;;) {
    const ok = await Promise.all(nodes.map(async (x) => {
      try {
        const value = (await stats(x, 1000)).cluster_members;
        last.set(x.id, `cluster_members ${value}`);
        return matches(parseMembers(value), expected);
      } catch (e) {
        last.set(x.id, String(e));
        return false;
      }
    }));
    if (ok.every(Boolean)) return Date.now() - t0;
    if (Date.now() > deadline) {
      const seen = nodes.map((x) => `  ${x.id}: ${last.get(x.id)}${x.running ? '' : `\n  ${x.describeExit()}`}`).join('\n');
      throw new Error(`members did not reach ${JSON.stringify(expected)} within ${timeoutMs} ms; last seen:\n${seen}`);
    }
    await sleep(50);
  }
}

/**
 * Polls until every node given serves sessions (`cluster_ready` 1: caught up, with a majority),
 * as after a fault it may still be catching up while every member already looks alive; returns
 * how long that took.
 */
export async function waitForReady(nodes: ClusterNode[], timeoutMs = 10_000): Promise<number> {
  const t0 = Date.now();
  const last = new Map<string, string>();
  for (;;) {
    const ready = await Promise.all(nodes.map(async (x) => {
      try {
        const s = await stats(x, 1000);
        last.set(x.id, `cluster_ready ${s.cluster_ready}, cluster_serving ${s.cluster_serving}, cluster_majority ${s.cluster_majority}`);
        return s.cluster_ready === '1';
      } catch (e) {
        last.set(x.id, String(e));
        return false;
      }
    }));
    if (ready.every(Boolean)) return Date.now() - t0;
    if (Date.now() - t0 > timeoutMs) {
      throw new Error(`not every node serves within ${timeoutMs} ms; last seen:\n${nodes.map((x) => `  ${x.id}: ${last.get(x.id)}`).join('\n')}`);
    }
    await sleep(50);
  }
}

/** Everyone alive, on every node given. */
export function allAlive(nodes: ClusterNode[]): ExpectedMembers {
  return Object.fromEntries(nodes.map((x) => [x.id, 'alive' as const]));
}

/**
 * Polls until `read()` returns the same value for `quietMs` in a row (and `ready(value)` holds);
 * returns the settled value. For counters like cluster_rereplicated.
 */
export async function waitForSettled<T>(read: () => Promise<T>, opts: { quietMs: number; timeoutMs: number; ready?: (v: T) => boolean; intervalMs?: number }): Promise<T> {
  const deadline = Date.now() + opts.timeoutMs;
  let value = await read();
  let since = Date.now();
  for (;;) {
    await sleep(opts.intervalMs ?? 100);
    const next = await read();
    if (JSON.stringify(next) !== JSON.stringify(value)) { value = next; since = Date.now(); }
    if (Date.now() - since >= opts.quietMs && (opts.ready?.(value) ?? true)) return value;
    if (Date.now() > deadline) throw new Error(`did not settle within ${opts.timeoutMs} ms; last ${JSON.stringify(value)}`);
  }
}

/**
 * A TCP relay on 127.0.0.1 that forwards each connection to 127.0.0.1:`target` and keeps every
 * byte it carries, one stream per connection and direction: a node that advertises the relay's
 * address (--peer-advertise) is dialed through it, so a test sees who dials that address and
 * what travels on the wire. `target` may be set after start, before the first connection.
 */
export class TcpRelay {
  target = 0;
  /** connections accepted so far */
  connections = 0;
  /** per connection: what the dialer sent, then what the target answered */
  readonly streams: Array<{ sent: Buffer[]; answered: Buffer[] }> = [];
  private readonly sockets = new Set<net.Socket>();
  private constructor(private readonly server: net.Server, readonly port: number) {}

  static async start(target = 0): Promise<TcpRelay> {
    const server = net.createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const relay = new TcpRelay(server, (server.address() as net.AddressInfo).port);
    relay.target = target;
    server.on('connection', (inbound) => relay.relay(inbound));
    return relay;
  }

  get address(): string { return `127.0.0.1:${this.port}`; }

  /** Bytes carried, both directions, all connections. */
  get bytesCarried(): number {
    return this.streams.reduce((sum, stream) => sum + [...stream.sent, ...stream.answered].reduce((n, chunk) => n + chunk.length, 0), 0);
  }

  /** Each direction of each connection as one buffer, in order. */
  carried(): Buffer[] {
    return this.streams.flatMap((stream) => [Buffer.concat(stream.sent), Buffer.concat(stream.answered)]);
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private relay(inbound: net.Socket): void {
    this.connections++;
    const stream = { sent: [] as Buffer[], answered: [] as Buffer[] };
    this.streams.push(stream);
    const outbound = net.connect({ host: '127.0.0.1', port: this.target });
    for (const socket of [inbound, outbound]) {
      this.sockets.add(socket);
      socket.on('error', () => { inbound.destroy(); outbound.destroy(); });
      socket.on('close', () => { this.sockets.delete(socket); inbound.destroy(); outbound.destroy(); });
    }
    inbound.on('data', (chunk: Buffer) => { stream.sent.push(chunk); outbound.write(chunk); });
    outbound.on('data', (chunk: Buffer) => { stream.answered.push(chunk); inbound.write(chunk); });
  }
}

/** A reserved key (`__session_cluster__.<name>`), answered by the node itself; null on a miss. */
export async function reservedValue(node: { host: string; port: number; id?: string }, name: string): Promise<string | null> {
  return (await rawGet(node, `__session_cluster__.${name}`))?.value ?? null;
}

/** `__session_cluster__.owners.<id>`, parsed: id_kind, master, backup, self, named_master, … */
export async function sessionOwners(node: { host: string; port: number; id?: string }, id: string): Promise<Record<string, string>> {
  const answer = await reservedValue(node, `owners.${id}`);
  if (answer === null) throw new Error(`owners.${id} via ${node.id ?? node.port}: miss`);
  return Object.fromEntries(new URLSearchParams(answer));
}

/**
 * Sets each key to `valueOf(key)` through the first node, then reads every key back through each
 * of the others; throws, naming the key, the node and the reply, on anything but STORED and
 * exactly that value.
 */
export async function writeThroughFirstReadThroughOthers(nodes: ClusterNode[], keys: string[], valueOf: (key: string) => string): Promise<void> {
  const writer = await RawClient.connect(nodes[0]!.host, nodes[0]!.port);
  try {
    for (const key of keys) {
      const value = valueOf(key);
      const reply = (await writer.request(`set ${key} 0 0 ${value.length}\r\n${value}\r\n`, '\r\n')).data.toString();
      if (reply !== 'STORED\r\n') throw new Error(`set ${key} via ${nodes[0]!.id}: ${JSON.stringify(reply)}`);
    }
  } finally {
    writer.destroy();
  }
  for (const node of nodes.slice(1)) {
    const reader = await RawClient.connect(node.host, node.port);
    try {
      for (const key of keys) {
        const value = valueOf(key);
        const reply = (await reader.request(`get ${key}\r\n`, 'END\r\n')).data.toString();
        const expected = `VALUE ${key} 0 ${value.length}\r\n${value}\r\nEND\r\n`;
        if (reply !== expected) throw new Error(`get ${key} via ${node.id}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(reply)}`);
      }
    } finally {
      reader.destroy();
    }
  }
}

/** Each named `stats` field summed over `nodes` (NaN where a node lacks it). */
export async function sumStats(nodes: Array<{ host: string; port: number; id?: string; running?: boolean }>, names: string[], timeoutMs?: number): Promise<Record<string, number>> {
  const all = await Promise.all(nodes.map((x) => stats(x, timeoutMs)));
  return Object.fromEntries(names.map((name) => [name, all.reduce((sum, s) => sum + Number(s[name] ?? NaN), 0)]));
}
