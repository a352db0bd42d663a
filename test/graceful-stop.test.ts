/**
 * A stop's first step (ClientListeners.finish, --stop-grace-ms): no new connections; a connection
 * between requests with no request in progress ends at once; a PHP request in progress (its
 * connection holds the session's lock, or without locking read the session, and has not written
 * it yet) is served on until it has written (and released), then its connection ends; one still
 * holding its lock when the grace runs out is closed by close(), which releases the lock. Real listeners on loopback, the real
 * executor, store and session locks.
 */
import net from 'node:net';
import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { Executor } from '../src/command/executor.js';
import { Output } from '../src/protocol/output.js';
import { ClientListeners } from '../src/server/listeners.js';
import { ServerCounters } from '../src/server/server-counters.js';
import { SessionLocks } from '../src/session-locks/session-locks.js';
import { MemoryStore } from '../src/store/memory-store.js';
import { ThrottledWarning } from '../src/throttled-log.js';
import { capturedLog } from './support/captured-log.js';

const PREFIX = 'memc.sess.key.';
const ID = 'gs7q0a1b2c3d4e5f6g7h8i9j0k';
const DATA_KEY = `${PREFIX}${ID}`;
const LOCK_KEY = `${PREFIX}lock.${ID}`;

interface Daemon {
  listeners: ClientListeners;
  store: MemoryStore;
  locks: SessionLocks;
  port: number;
}

const opened: ClientListeners[] = [];
const clients: net.Socket[] = [];

afterEach(async () => {
  for (const client of clients.splice(0)) client.destroy();
  for (const listeners of opened.splice(0)) await listeners.close();
});

async function start(): Promise<Daemon> {
  const store = new MemoryStore({ memoryLimit: 64 << 20, maxItemSize: 1 << 20 });
  const executor = new Executor({ store, version: 'test' });
  const { log } = capturedLog();
  const locks = new SessionLocks({ sessionPrefix: PREFIX, log });
  const execute = (command: Parameters<Executor['execute']>[0]) => executor.execute(command);
  locks.releaseThrough(execute);
  const warning = (what: string) => new ThrottledWarning(log, what, () => ({}));
  const listeners = new ClientListeners(
    { execute, limits: { maxItemSize: 1 << 20 }, counters: new ServerCounters(), output: new Output(), locks },
    { maxConnections: 100, log, refused: warning('refused'), commandTimeoutMs: 0, timedOut: warning('timed out'), reclaimed: warning('reclaimed'), acceptFailed: warning('accept failed') },
  );
  opened.push(listeners);
  await listeners.listenTcp('127.0.0.1', 0);
  return { listeners, store, locks, port: listeners.tcpPort };
}

/** A client that reads what the daemon answers and sees it close. */
class Client {
  private received = '';
  ended = false;
  private readonly waiters = new Set<() => void>();

  constructor(readonly socket: net.Socket) {
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => { this.received += chunk; this.wake(); });
    socket.on('end', () => { this.ended = true; this.wake(); });
    socket.on('close', () => { this.ended = true; this.wake(); });
    socket.on('error', () => undefined);
  }

  static async connect(port: number): Promise<Client> {
    const socket = net.connect({ port, host: '127.0.0.1' });
    clients.push(socket);
    await once(socket, 'connect');
    return new Client(socket);
  }

  /** Sends `request` and answers what came back up to and including `until`. */
  async ask(request: string, until = '\r\n'): Promise<string> {
    this.socket.write(request);
    return this.reply(until);
  }

  async reply(until = '\r\n'): Promise<string> {
    while (!this.received.includes(until)) {
      if (this.ended) throw new Error(`closed before "${until.trim()}"; received ${JSON.stringify(this.received)}`);
      await this.next();
    }
    const end = this.received.indexOf(until) + until.length;
    const reply = this.received.slice(0, end);
    this.received = this.received.slice(end);
    return reply;
  }

  /** Settles once the daemon has closed the connection. */
  async closedByDaemon(): Promise<void> {
    while (!this.ended) await this.next();
  }

  private next(): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => { this.waiters.delete(done); resolve(); }, 2000);
      const done = () => { clearTimeout(timer); resolve(); };
      this.waiters.add(done);
    });
  }

  private wake(): void {
    const waiting = [...this.waiters];
    this.waiters.clear();
    for (const resolve of waiting) resolve();
  }
}

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    socket.on('connect', () => { socket.destroy(); resolve(false); });
    socket.on('error', (error: NodeJS.ErrnoException) => resolve(error.code === 'ECONNREFUSED'));
  });
}

/** php-memcached's request, as far as its read: the lock, then the data. */
async function readSession(client: Client): Promise<void> {
  expect(await client.ask(`add ${LOCK_KEY} 0 30 1\r\n1\r\n`)).toBe('STORED\r\n');
  expect(await client.ask(`get ${DATA_KEY}\r\n`, 'END\r\n')).toBe(`VALUE ${DATA_KEY} 0 9\r\nvisits|1;\r\nEND\r\n`);
}

/** ... and its end: the write, then the release. */
async function writeSession(client: Client): Promise<void> {
  expect(await client.ask(`set ${DATA_KEY} 0 1440 9\r\nvisits|2;\r\n`)).toBe('STORED\r\n');
  expect(await client.ask(`delete ${LOCK_KEY}\r\n`)).toBe('DELETED\r\n');
}

async function withSession(daemon: Daemon): Promise<void> {
  const setup = await Client.connect(daemon.port);
  expect(await setup.ask(`set ${DATA_KEY} 0 1440 9\r\nvisits|1;\r\n`)).toBe('STORED\r\n');
  setup.socket.end();
  await setup.closedByDaemon();
}

const stored = (daemon: Daemon, key: string) => daemon.store.peek(key, Date.now())?.value.toString() ?? null;

describe('a stop lets the requests in progress finish', () => {
  it('connections between requests without a lock end at once, and no new connection is accepted', async () => {
    const daemon = await start();
    const idle = await Client.connect(daemon.port);
    expect(await idle.ask('version\r\n')).toMatch(/^VERSION /);
    const finishing = daemon.listeners.finish(10_000);
    await idle.closedByDaemon();
    await finishing;
    expect(await refused(daemon.port)).toBe(true);
  });

  it('a request holding its session\'s lock is served until it has written and released, then its connection ends', async () => {
    const daemon = await start();
    await withSession(daemon);
    const request = await Client.connect(daemon.port);
    const idle = await Client.connect(daemon.port);
    await readSession(request);
    expect(daemon.locks.inProgressNow).toBe(1);

    let finished = false;
    const finishing = daemon.listeners.finish(10_000).then(() => { finished = true; });
    await idle.closedByDaemon();
    expect(await refused(daemon.port)).toBe(true);
    expect(finished).toBe(false);
    expect(request.ended).toBe(false);

    await writeSession(request);
    await request.closedByDaemon();
    await finishing;
    expect(stored(daemon, DATA_KEY)).toBe('visits|2;');
    expect(stored(daemon, LOCK_KEY)).toBe(null);
    expect(daemon.locks.counters.releasedOnDisconnect).toBe(0);
  });

  it('without locking (php-memcached\'s sess_locking=0), a connection that read a session is served until it writes it', async () => {
    const daemon = await start();
    await withSession(daemon);
    const request = await Client.connect(daemon.port);
    const other = await Client.connect(daemon.port);
    expect(await request.ask(`get ${DATA_KEY}\r\n`, 'END\r\n')).toBe(`VALUE ${DATA_KEY} 0 9\r\nvisits|1;\r\nEND\r\n`);
    // A read of anything but a session is no request in progress.
    expect(await other.ask('get somethingelse\r\n', 'END\r\n')).toBe('END\r\n');
    expect(daemon.locks.inProgressNow).toBe(1);
    const finishing = daemon.listeners.finish(10_000);
    await other.closedByDaemon();
    expect(request.ended).toBe(false);
    expect(await request.ask(`set ${DATA_KEY} 0 1440 9\r\nvisits|2;\r\n`)).toBe('STORED\r\n');
    await request.closedByDaemon();
    await finishing;
    expect(stored(daemon, DATA_KEY)).toBe('visits|2;');
  });

  it('pecl memcache\'s lock (<id>.lock, released by setting "0") is a request in progress too', async () => {
    const daemon = await start();
    await withSession(daemon);
    const request = await Client.connect(daemon.port);
    const lock = `${DATA_KEY}.lock`;
    expect(await request.ask(`add ${lock} 768 15 1\r\n1\r\n`)).toBe('STORED\r\n');
    expect(daemon.locks.inProgressNow).toBe(1);
    const finishing = daemon.listeners.finish(10_000);
    expect(await request.ask(`set ${DATA_KEY} 0 1440 9\r\nvisits|2;\r\n`)).toBe('STORED\r\n');
    expect(request.ended).toBe(false);
    expect(await request.ask(`set ${lock} 768 15 1\r\n0\r\n`)).toBe('STORED\r\n');
    await request.closedByDaemon();
    await finishing;
    expect(stored(daemon, DATA_KEY)).toBe('visits|2;');
  });

  it('a command half sent when the stop begins is answered before its connection ends', async () => {
    const daemon = await start();
    const client = await Client.connect(daemon.port);
    client.socket.write(`set ${DATA_KEY} 0 1440 9\r\nvisi`);
    await new Promise((resolve) => setTimeout(resolve, 50));
    const finishing = daemon.listeners.finish(10_000);
    expect(await client.ask('ts|7;\r\n')).toBe('STORED\r\n');
    await client.closedByDaemon();
    await finishing;
    expect(stored(daemon, DATA_KEY)).toBe('visits|7;');
  });

  it('a request still holding its lock when the grace runs out is closed by close(), which releases its lock', async () => {
    const daemon = await start();
    await withSession(daemon);
    const request = await Client.connect(daemon.port);
    await readSession(request);
    const started = Date.now();
    await daemon.listeners.finish(300);
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    expect(request.ended).toBe(false);
    expect(daemon.locks.inProgressNow).toBe(1);
    await daemon.listeners.close();
    await request.closedByDaemon();
    expect(stored(daemon, LOCK_KEY)).toBe(null);
    expect(daemon.locks.counters.releasedOnDisconnect).toBe(1);
    expect(stored(daemon, DATA_KEY)).toBe('visits|1;');
  });

  it('with no grace (--stop-grace-ms 0) nothing waits: the holder stays open only until close()', async () => {
    const daemon = await start();
    await withSession(daemon);
    const request = await Client.connect(daemon.port);
    await readSession(request);
    await daemon.listeners.finish(0);
    expect(daemon.locks.inProgressNow).toBe(1);
    await daemon.listeners.close();
    await request.closedByDaemon();
    expect(daemon.locks.counters.releasedOnDisconnect).toBe(1);
  });
});
