/**
 * The client listeners: TCP and, optionally, a unix socket. Both hand each accepted socket to
 * a Connection. Connections stuck mid-request for --command-timeout-ms are closed by one periodic
 * sweep (command-timeout.ts), so the read path carries no timer. At --max-connections a new
 * connection takes the slot of the connection stuck the longest (mid-request, or silent since it
 * connected) if one has been stuck for reclaimAfterMs; otherwise it gets memcached's refusal line
 * and is closed.
 */
import net from 'node:net';
import { chmodSync, existsSync, lstatSync, type Stats, unlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from '../log.js';
import type { ThrottledWarning } from '../throttled-log.js';
import { ListenError } from '../errors.js';
import type { AllowList } from '../security/allow-list.js';
import { adoptAccepted } from './accept.js';
import { reclaimAfterMs, sweepIntervalMs } from './command-timeout.js';
import { Connection, type ConnectionContext } from './connection.js';

export interface ListenerOptions {
  maxConnections: number;
  log: Logger;
  /** counts and logs connections refused for --max-connections */
  refused: ThrottledWarning;
  /** --command-timeout-ms; 0: connections stuck mid-request are never closed */
  commandTimeoutMs: number;
  /** logs connections closed for --command-timeout-ms */
  timedOut: ThrottledWarning;
  /** logs stuck connections closed to admit a new one at --max-connections */
  reclaimed: ThrottledWarning;
  /** --allow: the addresses TCP clients may connect from (null: any) */
  allow?: AllowList | null;
  /** logs connections closed because their address is not in --allow */
  notAllowed?: ThrottledWarning;
}

/** After a scan at the limit found no stuck connection, the next this much later at the soonest. */
const RECLAIM_RESCAN_MS = 20;

export class ClientListeners {
  private readonly servers: net.Server[] = [];
  private readonly connections = new Map<net.Socket, Connection>();
  private socketPath: string | null = null;
  private readonly sweeper: NodeJS.Timeout | null = null;
  /** until when a connection at the limit is refused without a scan (the last one found nothing) */
  private noneStuckUntil = -Infinity;
  tcpPort = 0;
  /** the address of the last connection --allow refused, for the log */
  lastNotAllowed = '';

  constructor(private readonly context: ConnectionContext, private readonly options: ListenerOptions) {
    const timeoutMs = options.commandTimeoutMs;
    if (timeoutMs > 0) {
      this.sweeper = setInterval(() => this.closeStuck(performance.now(), timeoutMs), sweepIntervalMs(timeoutMs));
      this.sweeper.unref();
    }
  }

  async listenTcp(host: string, port: number): Promise<net.AddressInfo> {
    const server = this.createServer('tcp');
    await listen(server, { host, port }, `${host}:${port}`);
    const address = server.address() as net.AddressInfo;
    this.tcpPort = address.port;
    this.options.log.info({ transport: 'tcp', host: address.address, port: address.port }, 'listening');
    return address;
  }

  async listenUnix(path: string, mode: number): Promise<void> {
    await removeStaleSocket(path);
    const server = this.createServer('unix');
    await listen(server, { path }, path);
    this.socketPath = path;
    chmodSync(path, mode);
    this.options.log.info({ transport: 'unix', path, mode: mode.toString(8) }, 'listening');
  }

  /** Stops accepting, lets queued replies go out, and closes every connection. */
  async close(): Promise<void> {
    if (this.sweeper !== null) clearInterval(this.sweeper);
    const closed = this.servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve())));
    for (const socket of this.connections.keys()) socket.end();
    const deadline = setTimeout(() => { for (const socket of this.connections.keys()) socket.destroy(); }, 2000);
    await Promise.all(closed);
    clearTimeout(deadline);
    if (this.socketPath !== null && existsSync(this.socketPath)) unlinkSync(this.socketPath);
    this.options.refused.flush();
    this.options.timedOut.flush();
    this.options.reclaimed.flush();
  }

  /**
   * At the limit: closes the connection stuck the longest, if it has been stuck for
   * reclaimAfterMs, so the new one can have its slot. Off with --command-timeout-ms 0 (nothing
   * stuck is ever closed then). A scan reads every connection; one that finds none stuck keeps
   * the next at least RECLAIM_RESCAN_MS away, so a flood of refused connections costs no more.
   */
  private reclaimSlot(now: number): boolean {
    const timeoutMs = this.options.commandTimeoutMs;
    if (timeoutMs === 0 || now < this.noneStuckUntil) return false;
    const latest = now - reclaimAfterMs(timeoutMs);
    let victim: Connection | null = null;
    let oldest = Infinity;
    for (const connection of this.connections.values()) {
      const since = connection.stuckSince();
      if (since !== null && since <= latest && since < oldest) {
        oldest = since;
        victim = connection;
      }
    }
    if (victim === null) {
      this.noneStuckUntil = now + RECLAIM_RESCAN_MS;
      return false;
    }
    victim.reclaim();
    this.context.counters.reclaimedConnections++;
    this.options.reclaimed.add();
    return true;
  }

  /** The sweep: closes the connections stuck mid-request for the timeout, counts and logs them. */
  private closeStuck(now: number, timeoutMs: number): void {
    let closed = 0;
    for (const connection of this.connections.values()) {
      if (connection.closeIfStuck(now, timeoutMs)) closed++;
    }
    if (closed === 0) return;
    this.context.counters.commandTimeouts += closed;
    this.options.timedOut.add(closed);
  }

  private streamedReadsWarned = false;

  private warnStreamedReads(): void {
    if (this.streamedReadsWarned) return;
    this.streamedReadsWarned = true;
    this.options.log.warn({ node: process.version }, 'this Node cannot read client sockets into a shared buffer; reading through streams instead, which is slower');
  }

  private createServer(transport: 'tcp' | 'unix'): net.Server {
    const counters = this.context.counters;
    // Paused until adoptAccepted has given the socket its reading path.
    const allow = transport === 'tcp' ? this.options.allow ?? null : null;
    const server = net.createServer({ pauseOnConnect: true }, (socket) => {
      if (allow !== null && !allow.allows(socket.remoteAddress)) {
        // Not a client of this daemon: closed before a byte is read or a slot is taken.
        counters.notAllowedConnections++;
        this.lastNotAllowed = socket.remoteAddress ?? 'unknown';
        this.options.notAllowed?.add();
        socket.destroy();
        return;
      }
      // The reclaimed connection is counted until its close event: the count may pass the limit
      // by the connections being closed at this moment, never more.
      if (counters.currConnections >= this.options.maxConnections && !this.reclaimSlot(performance.now())) {
        counters.rejectedConnections++;
        // memcached's own words when it is over its connection limit (memcached.c, conn_new).
        // Reading resumes so the client's close is seen; what it sends is discarded.
        socket.on('error', () => socket.destroy());
        socket.resume();
        socket.end('ERROR Too many open connections\r\n');
        this.options.refused.add();
        return;
      }
      counters.currConnections++;
      counters.totalConnections++;
      const connection = new Connection(socket, this.context);
      if (!adoptAccepted(socket, (chunk) => connection.receive(chunk))) this.warnStreamedReads();
      socket.on('error', (error: NodeJS.ErrnoException) => {
        this.options.log.debug({ transport, err: error.code ?? error.message }, 'client connection error');
        socket.destroy();
      });
      socket.on('close', () => {
        counters.currConnections--;
        this.connections.delete(socket);
        connection.closed();
      });
      this.connections.set(socket, connection);
    });
    this.servers.push(server);
    return server;
  }
}

function listen(server: net.Server, options: net.ListenOptions, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => {
      reject(ListenError.from(`on ${what}`, error));
    });
    server.listen(options, () => resolve());
  });
}

/**
 * A socket file left by a daemon that died is removed; one that a live process answers on is not,
 * and nothing that is not a socket ever is: a --socket that names a config file by mistake must
 * not delete it. A missing directory is said to be missing.
 */
async function removeStaleSocket(path: string): Promise<void> {
  const dir = dirname(path);
  if (!existsSync(dir)) throw new ListenError(`cannot listen on ${path}: the directory ${dir} does not exist`);
  let found: Stats;
  try {
    found = lstatSync(path);
  } catch {
    return;
  }
  if (!found.isSocket()) throw new ListenError(`cannot listen on ${path}: a ${found.isDirectory() ? 'directory' : 'file that is not a socket'} is there; it is left alone`);
  const alive = await new Promise<boolean>((resolve) => {
    const probe = net.connect({ path }, () => { probe.destroy(); resolve(true); });
    probe.on('error', () => resolve(false));
  });
  if (alive) throw new ListenError(`cannot listen on ${path}: another process is serving it`);
  unlinkSync(path);
}
