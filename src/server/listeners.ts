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
import { acceptClients, type ClientSocket, type SocketReceiver } from './client-socket.js';
import { reclaimAfterMs, sweepIntervalMs } from './command-timeout.js';
import { Connection, type ConnectionContext, type ConnectionOwner } from './connection.js';

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
  /** logs failed accepts (out of file descriptors, ...) */
  acceptFailed: ThrottledWarning;
}

/** After a scan at the limit found no stuck connection, the next this much later at the soonest. */
const RECLAIM_RESCAN_MS = 20;

/** For a connection refused at the limit: nothing it sends is used; it closes after the refusal. */
const DISCARD: SocketReceiver = { receive() {}, drained() {}, closed() {}, failed() {} };

const TOO_MANY_CONNECTIONS = Buffer.from('ERROR Too many open connections\r\n');

export class ClientListeners {
  private readonly servers: net.Server[] = [];
  private readonly connections = new Set<Connection>();
  /** finish() and close() wait for the last connection to close */
  private whenAllClosed: Array<() => void> = [];
  /** the listening sockets' closing, once begun (stopAccepting) */
  private serversClosed: Array<Promise<void>> | null = null;
  private socketPath: string | null = null;
  private readonly sweeper: NodeJS.Timeout | null = null;
  /** until when a connection at the limit is refused without a scan (the last one found nothing) */
  private noneStuckUntil = -Infinity;
  tcpPort = 0;
  /** the address of the last connection --allow refused, for the log */
  lastNotAllowed = '';
  /** why the last accept failed, for the log */
  lastAcceptError = '';

  constructor(private readonly context: ConnectionContext, private readonly options: ListenerOptions) {
    const timeoutMs = options.commandTimeoutMs;
    if (timeoutMs > 0) {
      this.sweeper = setInterval(() => this.closeStuck(performance.now(), timeoutMs), sweepIntervalMs(timeoutMs));
      this.sweeper.unref();
    }
  }

  async listenTcp(host: string, port: number): Promise<net.AddressInfo> {
    const server = net.createServer();
    await listen(server, { host, port }, `${host}:${port}`);
    this.accept(server, 'tcp');
    const address = server.address() as net.AddressInfo;
    this.tcpPort = address.port;
    this.options.log.info({ transport: 'tcp', host: address.address, port: address.port }, 'listening');
    return address;
  }

  async listenUnix(path: string, mode: number): Promise<void> {
    await removeStaleSocket(path);
    const server = net.createServer();
    await listen(server, { path }, path);
    this.accept(server, 'unix');
    this.socketPath = path;
    chmodSync(path, mode);
    this.options.log.info({ transport: 'unix', path, mode: mode.toString(8) }, 'listening');
  }

  /**
   * A graceful stop, first step: stops accepting and lets the requests in progress finish. Each
   * connection ends once it is between requests with no request in progress
   * (Connection.finishThenEnd): at once for most, after its write (and its lock release) for a
   * PHP request that had read its session. Settles when every connection has closed, or after graceMs; close() ends
   * those left.
   */
  async finish(graceMs: number): Promise<void> {
    this.stopAccepting();
    for (const connection of this.connections) connection.finishThenEnd();
    if (this.connections.size > 0 && graceMs > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.allClosed(), new Promise<void>((resolve) => { timer = setTimeout(resolve, graceMs); })]);
      clearTimeout(timer);
    }
  }

  /** Stops accepting, lets queued replies go out, and closes every connection. */
  async close(): Promise<void> {
    const closed = this.stopAccepting();
    for (const connection of this.connections) connection.end();
    const deadline = setTimeout(() => { for (const connection of this.connections) connection.destroy(); }, 2000);
    await Promise.all(closed);
    await this.allClosed();
    clearTimeout(deadline);
    if (this.socketPath !== null && existsSync(this.socketPath)) unlinkSync(this.socketPath);
    this.options.refused.flush();
    this.options.timedOut.flush();
    this.options.reclaimed.flush();
    this.options.acceptFailed.flush();
  }

  /** Closes the listening sockets (once); settles as each has closed. */
  private stopAccepting(): Array<Promise<void>> {
    if (this.sweeper !== null) clearInterval(this.sweeper);
    this.serversClosed ??= this.servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve())));
    return this.serversClosed;
  }

  /** Settles once no connection is open. */
  private allClosed(): Promise<void> {
    if (this.connections.size === 0) return Promise.resolve();
    return new Promise<void>((resolve) => { this.whenAllClosed.push(resolve); });
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
    for (const connection of this.connections) {
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
    for (const connection of this.connections) {
      if (connection.closeIfStuck(now, timeoutMs)) closed++;
    }
    if (closed === 0) return;
    this.context.counters.commandTimeouts += closed;
    this.options.timedOut.add(closed);
  }

  /** Takes the connections `server` accepts, now that it listens. */
  private accept(server: net.Server, transport: 'tcp' | 'unix'): void {
    const { counters } = this.context;
    const { log } = this.options;
    const allow = transport === 'tcp' ? this.options.allow ?? null : null;
    const owner: ConnectionOwner = {
      connectionClosed: (connection) => {
        counters.currConnections--;
        this.connections.delete(connection);
        if (this.connections.size === 0) {
          const waiting = this.whenAllClosed;
          this.whenAllClosed = [];
          for (const resolve of waiting) resolve();
        }
      },
      connectionFailed: (reason) => log.debug({ transport, err: reason }, 'client connection error'),
    };
    const handles = acceptClients(server, (socket: ClientSocket) => {
      if (allow !== null && !allow.allows(socket.remoteAddress)) {
        // Not a client of this daemon: closed before a byte is read or a slot is taken.
        counters.notAllowedConnections++;
        this.lastNotAllowed = socket.remoteAddress ?? 'unknown';
        this.options.notAllowed?.add();
        socket.destroy();
        return;
      }
      // The reclaimed connection is counted until it has closed: the count may pass the limit
      // by the connections being closed at this moment, never more.
      if (counters.currConnections >= this.options.maxConnections && !this.reclaimSlot(performance.now())) {
        counters.rejectedConnections++;
        // memcached's own words when it is over its connection limit (memcached.c, conn_new).
        socket.start(DISCARD);
        socket.write(TOO_MANY_CONNECTIONS);
        socket.end();
        this.options.refused.add();
        return;
      }
      counters.currConnections++;
      counters.totalConnections++;
      this.connections.add(new Connection(socket, this.context, owner));
    });
    if (!handles) log.warn({ node: process.version }, 'this Node\'s stream handles are not those session-cluster drives client connections with; using net.Socket instead, which costs more CPU per connection');
    // Node reports a failed accept (EMFILE, ...) on the server and goes on listening.
    server.on('error', (error: NodeJS.ErrnoException) => {
      this.lastAcceptError = `${transport}: ${error.code ?? error.message}`;
      this.options.acceptFailed.add();
    });
    this.servers.push(server);
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
