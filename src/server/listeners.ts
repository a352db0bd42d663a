/**
 * The client listeners: TCP and, optionally, a unix socket. Both hand each accepted socket to
 * a Connection; connections over --max-connections get memcached's refusal line and are closed.
 */
import net from 'node:net';
import { chmodSync, existsSync, unlinkSync } from 'node:fs';
import type { Logger } from '../log.js';
import type { ThrottledWarning } from '../throttled-log.js';
import { ListenError } from '../errors.js';
import { adoptAccepted } from './accept.js';
import { Connection, type ConnectionContext } from './connection.js';

export interface ListenerOptions {
  maxConnections: number;
  log: Logger;
  /** counts and logs connections refused for --max-connections */
  refused: ThrottledWarning;
}

export class ClientListeners {
  private readonly servers: net.Server[] = [];
  private readonly sockets = new Set<net.Socket>();
  private socketPath: string | null = null;
  tcpPort = 0;

  constructor(private readonly context: ConnectionContext, private readonly options: ListenerOptions) {}

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
    const closed = this.servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve())));
    for (const socket of this.sockets) socket.end();
    const deadline = setTimeout(() => { for (const socket of this.sockets) socket.destroy(); }, 2000);
    await Promise.all(closed);
    clearTimeout(deadline);
    if (this.socketPath !== null && existsSync(this.socketPath)) unlinkSync(this.socketPath);
    this.options.refused.flush();
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
    const server = net.createServer({ pauseOnConnect: true }, (accepted) => {
      if (counters.currConnections >= this.options.maxConnections) {
        counters.rejectedConnections++;
        // memcached's own words when it is over its connection limit (memcached.c, conn_new).
        // Reading resumes so the client's close is seen; what it sends is discarded.
        accepted.on('error', () => accepted.destroy());
        accepted.resume();
        accepted.end('ERROR Too many open connections\r\n');
        this.options.refused.add();
        return;
      }
      counters.currConnections++;
      counters.totalConnections++;
      let connection: Connection | null = null;
      const socket = adoptAccepted(accepted, (chunk) => connection!.receive(chunk));
      if (socket === accepted) this.warnStreamedReads();
      this.sockets.add(socket);
      socket.on('error', (error: NodeJS.ErrnoException) => {
        this.options.log.debug({ transport, err: error.code ?? error.message }, 'client connection error');
        socket.destroy();
      });
      socket.on('close', () => {
        counters.currConnections--;
        this.sockets.delete(socket);
      });
      connection = new Connection(socket, this.context);
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

/** A socket file left by a daemon that died is removed; one that a live process answers on is not. */
async function removeStaleSocket(path: string): Promise<void> {
  if (!existsSync(path)) return;
  const alive = await new Promise<boolean>((resolve) => {
    const probe = net.connect({ path }, () => { probe.destroy(); resolve(true); });
    probe.on('error', () => resolve(false));
  });
  if (alive) throw new ListenError(`cannot listen on ${path}: another process is serving it`);
  unlinkSync(path);
}
