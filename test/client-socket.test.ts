/**
 * Client sockets over real loopback and unix sockets (src/server/client-socket.ts): the Node
 * running the tests gives the listeners libuv handles, which read into one shared buffer, and
 * everything a Connection relies on works on them as on a net.Socket: writes the kernel takes at
 * once and writes it does not (then drained), cork, pause and resume, end after the replies, the
 * client's end of file and its reset, destroy.
 */
import net from 'node:net';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, onTestFinished } from 'vitest';
import { acceptClients, type ClientSocket, HandleSocket, type SocketReceiver, StreamSocket } from '../src/server/client-socket.js';

/** What a socket told its receiver, in order. */
class Recorder implements SocketReceiver {
  chunks: Buffer[] = [];
  /** the memory each chunk was a view of */
  backing: ArrayBufferLike[] = [];
  events: string[] = [];
  receive(chunk: Buffer): void {
    // copied: the chunk is only lent
    this.chunks.push(Buffer.from(chunk));
    this.backing.push(chunk.buffer);
  }
  drained(): void { this.events.push('drained'); }
  closed(): void { this.events.push('closed'); }
  failed(reason: string): void { this.events.push(`failed ${reason}`); }
  get text(): string { return Buffer.concat(this.chunks).toString(); }
}

interface Accepted {
  socket: ClientSocket;
  receiver: Recorder;
}

let server: net.Server | null = null;
const clients: net.Socket[] = [];

afterEach(async () => {
  for (const client of clients.splice(0)) client.destroy();
  if (server !== null) {
    const closing = once(server, 'close');
    server.close();
    await closing;
    server = null;
  }
});

async function listen(options: { path?: string; streams?: boolean } = {}) {
  const accepted: Accepted[] = [];
  const waiters: Array<(a: Accepted) => void> = [];
  const take = (socket: ClientSocket): void => {
    const entry = { socket, receiver: new Recorder() };
    socket.start(entry.receiver);
    accepted.push(entry);
    waiters.shift()?.(entry);
  };
  server = net.createServer();
  if (options.path === undefined) server.listen(0, '127.0.0.1');
  else server.listen(options.path);
  await once(server, 'listening');
  const handles = options.streams ? false : acceptClients(server, take);
  if (options.streams) server.on('connection', (socket: net.Socket) => take(new StreamSocket(socket)));
  const port = options.path === undefined ? (server.address() as net.AddressInfo).port : 0;
  let taken = 0;
  const next = (): Promise<Accepted> => new Promise((resolve) => {
    if (taken < accepted.length) resolve(accepted[taken]!);
    else waiters.push(resolve);
    taken++;
  });
  return { port, handles, next };
}

async function connect(port: number, options: { allowHalfOpen?: boolean } = {}): Promise<net.Socket> {
  const client = net.connect({ port, host: '127.0.0.1', allowHalfOpen: options.allowHalfOpen ?? false });
  clients.push(client);
  await once(client, 'connect');
  return client;
}

/** Everything `client` receives, as it arrives. */
function collect(client: net.Socket): Buffer[] {
  const received: Buffer[] = [];
  client.on('data', (chunk: Buffer) => received.push(chunk));
  return received;
}

async function until(condition: () => boolean): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met within 5 s');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Several turns of the event loop in which a socket that kept reading would have delivered. */
const settle = () => new Promise((resolve) => setTimeout(resolve, 100));

describe('client sockets on libuv handles', () => {
  it('are what this Node gives the listeners, and read into one buffer shared by all connections', async () => {
    const { port, handles, next } = await listen();
    expect(handles).toBe(true);
    const first = await connect(port);
    const a = await next();
    const second = await connect(port);
    const b = await next();
    expect(a.socket).toBeInstanceOf(HandleSocket);
    expect(a.socket.remoteAddress).toBe('127.0.0.1');

    first.write('one\r\n');
    await until(() => a.receiver.chunks.length > 0);
    second.write('two\r\n');
    await until(() => b.receiver.chunks.length > 0);
    expect(a.receiver.text).toBe('one\r\n');
    expect(b.receiver.text).toBe('two\r\n');
    expect(a.receiver.backing[0]).toBe(b.receiver.backing[0]);
  });

  it('do the same for unix socket connections (--socket), which have no address', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'client-socket-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const path = join(dir, 'daemon.sock');
    const { next } = await listen({ path });
    const client = net.connect({ path });
    clients.push(client);
    await once(client, 'connect');
    const a = await next();
    expect(a.socket).toBeInstanceOf(HandleSocket);
    expect(a.socket.remoteAddress).toBeUndefined();
    const received = collect(client);
    client.write('over unix\r\n');
    await until(() => a.receiver.chunks.length > 0);
    a.socket.write(Buffer.from('reply\r\n'));
    await until(() => Buffer.concat(received).toString() === 'reply\r\n');
    expect(a.receiver.text).toBe('over unix\r\n');
  });

  it('close when the client ends the connection, and say so once', async () => {
    const { port, next } = await listen();
    const client = await connect(port);
    const a = await next();
    const received = collect(client);
    a.socket.write(Buffer.from('hello\r\n'));
    await until(() => Buffer.concat(received).toString() === 'hello\r\n');
    client.end();
    await until(() => a.receiver.events.includes('closed'));
    await settle();
    expect(a.receiver.events).toEqual(['closed']);
    expect(a.socket.destroyed).toBe(true);
  });

  it('stop delivering while paused and deliver what arrived meanwhile on resume', async () => {
    const { port, next } = await listen();
    const client = await connect(port);
    const a = await next();
    client.write('first\r\n');
    await until(() => a.receiver.chunks.length === 1);

    a.socket.pause();
    expect(a.socket.paused).toBe(true);
    client.write('held\r\n');
    await settle();
    expect(a.receiver.chunks).toHaveLength(1);

    a.socket.resume();
    await until(() => a.receiver.text === 'first\r\nheld\r\n');
  });

  it('end from the server side: the client gets every reply, then the end of the stream', async () => {
    const { port, next } = await listen();
    const client = await connect(port);
    const a = await next();
    const received = collect(client);
    const ended = once(client, 'end');
    a.socket.write(Buffer.from('one\r\n'));
    a.socket.write(Buffer.from('bye\r\n'));
    a.socket.end();
    a.socket.write(Buffer.from('after the end\r\n'));
    await ended;
    expect(Buffer.concat(received).toString()).toBe('one\r\nbye\r\n');
    await until(() => a.receiver.events.includes('closed'));
  });

  it('keep what the kernel did not take, count it, and say drained once the client has read it', async () => {
    const { port, next } = await listen();
    const client = await connect(port);
    const a = await next();
    client.pause();
    // Far more than loopback's socket buffers hold: the write cannot complete at once.
    const big = Buffer.alloc(16 * 1024 * 1024, 'x');
    big.write('start', 0);
    big.write('end', big.length - 3);
    a.socket.write(big);
    a.socket.write(Buffer.from('next'));
    expect(a.socket.writableLength).toBeGreaterThan(0);
    expect(a.receiver.events).toEqual([]);

    const received = collect(client);
    client.resume();
    await until(() => a.receiver.events.includes('drained'));
    expect(a.socket.writableLength).toBe(0);
    await until(() => received.reduce((n, chunk) => n + chunk.length, 0) === big.length + 4);
    const all = Buffer.concat(received);
    expect(all.subarray(0, 5).toString()).toBe('start');
    expect(all.subarray(big.length - 3).toString()).toBe('endnext');
  });

  it('hold corked writes until the last uncork, then send them together and in order', async () => {
    const { port, next } = await listen();
    const client = await connect(port);
    const a = await next();
    const received = collect(client);
    a.socket.cork();
    a.socket.cork();
    a.socket.write(Buffer.from('a'));
    a.socket.write(Buffer.from('b'));
    a.socket.uncork();
    a.socket.write(Buffer.from('c'));
    await settle();
    expect(received).toEqual([]);
    a.socket.uncork();
    await until(() => Buffer.concat(received).toString() === 'abc');
  });

  it('end after corked replies only once they are uncorked (they wait for the disk log)', async () => {
    const { port, next } = await listen();
    const client = await connect(port);
    const a = await next();
    const received = collect(client);
    a.socket.cork();
    a.socket.write(Buffer.from('STORED\r\n'));
    a.socket.end();
    await settle();
    expect(received).toEqual([]);
    expect(a.receiver.events).toEqual([]);
    const ended = once(client, 'end');
    a.socket.uncork();
    await ended;
    expect(Buffer.concat(received).toString()).toBe('STORED\r\n');
  });

  it('answer a client that half-closes after its request: the corked reply still reaches it', async () => {
    const { port, next } = await listen();
    const client = await connect(port, { allowHalfOpen: true });
    const a = await next();
    const received = collect(client);
    client.write('set k 0 0 1\r\nv\r\n');
    await until(() => a.receiver.chunks.length > 0);
    a.socket.cork();
    a.socket.write(Buffer.from('STORED\r\n'));
    const ended = once(client, 'end');
    client.end();
    await settle();
    expect(a.receiver.events).toEqual([]);
    a.socket.uncork();
    await ended;
    expect(Buffer.concat(received).toString()).toBe('STORED\r\n');
    await until(() => a.receiver.events.includes('closed'));
  });

  it('report a reset by the client as a failure, then close', async () => {
    const { port, next } = await listen();
    const client = await connect(port);
    const a = await next();
    client.write('get k\r\n');
    await until(() => a.receiver.chunks.length > 0);
    client.resetAndDestroy();
    await until(() => a.receiver.events.includes('closed'));
    expect(a.receiver.events).toEqual(['failed ECONNRESET', 'closed']);
  });

  it('drop what is pending on destroy, and say closed, not drained', async () => {
    const { port, next } = await listen();
    const client = await connect(port);
    const a = await next();
    client.pause();
    a.socket.write(Buffer.alloc(16 * 1024 * 1024));
    expect(a.socket.writableLength).toBeGreaterThan(0);
    const closed = once(client, 'close');
    a.socket.destroy();
    a.socket.write(Buffer.from('ignored'));
    client.resume();
    await closed;
    await until(() => a.receiver.events.includes('closed'));
    await settle();
    expect(a.receiver.events).toEqual(['closed']);
  });
});

describe('client sockets on net.Socket (a Node whose handles cannot be driven)', () => {
  it('read, write, pause, end and close as the handle sockets do', async () => {
    const { port, next } = await listen({ streams: true });
    const client = await connect(port);
    const a = await next();
    expect(a.socket).toBeInstanceOf(StreamSocket);
    expect(a.socket.remoteAddress).toBe('127.0.0.1');
    const received = collect(client);
    client.write('one\r\n');
    await until(() => a.receiver.text === 'one\r\n');
    a.socket.pause();
    client.write('two\r\n');
    await settle();
    expect(a.receiver.text).toBe('one\r\n');
    a.socket.resume();
    await until(() => a.receiver.text === 'one\r\ntwo\r\n');

    a.socket.cork();
    a.socket.write(Buffer.from('re'));
    a.socket.write(Buffer.from('ply\r\n'));
    a.socket.uncork();
    const ended = once(client, 'end');
    a.socket.end();
    await ended;
    expect(Buffer.concat(received).toString()).toBe('reply\r\n');
    await until(() => a.receiver.events.includes('closed'));
    expect(a.receiver.events).toEqual(['closed']);
  });
});
