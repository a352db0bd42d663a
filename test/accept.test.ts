/**
 * adoptAccepted over real loopback sockets: accepted sockets read into the one shared buffer,
 * and everything the connections rely on still works: writes, pause and resume for
 * back-pressure, the client's close, and the server's count of its connections.
 */
import net from 'node:net';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, onTestFinished } from 'vitest';
import { adoptAccepted } from '../src/server/accept.js';

interface Accepted {
  socket: net.Socket;
  /** whether adoptAccepted gave it the shared buffer */
  shared: boolean;
  chunks: Buffer[];
  /** the buffer each chunk was a view of */
  backing: ArrayBufferLike[];
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

async function listen(path?: string): Promise<{ port: number; accepted: Accepted[]; next: () => Promise<Accepted> }> {
  const accepted: Accepted[] = [];
  const waiters: Array<(a: Accepted) => void> = [];
  server = net.createServer({ pauseOnConnect: true }, (socket) => {
    const entry: Accepted = { socket, shared: false, chunks: [], backing: [] };
    entry.shared = adoptAccepted(socket, (chunk) => {
      // copied: the chunk is only lent
      entry.chunks.push(Buffer.from(chunk));
      entry.backing.push(chunk.buffer);
    });
    accepted.push(entry);
    waiters.shift()?.(entry);
  });
  if (path === undefined) server.listen(0, '127.0.0.1');
  else server.listen(path);
  await once(server, 'listening');
  const port = path === undefined ? (server.address() as net.AddressInfo).port : 0;
  let taken = 0;
  const next = (): Promise<Accepted> => new Promise((resolve) => {
    if (taken < accepted.length) resolve(accepted[taken]!);
    else waiters.push(resolve);
    taken++;
  });
  return { port, accepted, next };
}

async function connect(port: number): Promise<net.Socket> {
  const client = net.connect({ port, host: '127.0.0.1' });
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

describe('adoptAccepted', () => {
  it('makes the accepted socket read into one buffer shared by all connections', async () => {
    const { port, next } = await listen();
    const first = await connect(port);
    const a = await next();
    const second = await connect(port);
    const b = await next();
    expect(a.shared).toBe(true);
    expect(b.shared).toBe(true);

    first.write('one\r\n');
    await until(() => a.chunks.length > 0);
    second.write('two\r\n');
    await until(() => b.chunks.length > 0);
    expect(Buffer.concat(a.chunks).toString()).toBe('one\r\n');
    expect(Buffer.concat(b.chunks).toString()).toBe('two\r\n');
    expect(a.backing[0]).toBe(b.backing[0]);
    // No 'data' event: the chunks went to the callback alone, not through the stream.
    expect(a.socket.listenerCount('data')).toBe(0);
    expect(a.socket.readableLength).toBe(0);
  });

  it('does the same for unix socket connections (--socket)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'accept-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const path = join(dir, 'daemon.sock');
    const { next } = await listen(path);
    const client = net.connect({ path });
    clients.push(client);
    await once(client, 'connect');
    const a = await next();
    expect(a.shared).toBe(true);
    const received = collect(client);
    client.write('over unix\r\n');
    await until(() => a.chunks.length > 0);
    a.socket.write('reply\r\n');
    await until(() => Buffer.concat(received).toString() === 'reply\r\n');
    expect(Buffer.concat(a.chunks).toString()).toBe('over unix\r\n');
  });

  it('writes replies, and the server counts the socket as closed once the client goes', async () => {
    const { port, next } = await listen();
    const client = await connect(port);
    const a = await next();
    const received = collect(client);
    a.socket.write('hello\r\n');
    await until(() => Buffer.concat(received).toString() === 'hello\r\n');

    const closed = once(a.socket, 'close');
    client.end();
    await closed;
    const count = await new Promise<number>((resolve, reject) => server!.getConnections((error, n) => (error ? reject(error) : resolve(n))));
    expect(count).toBe(0);
  });

  it('stops delivering while paused and delivers what arrived meanwhile on resume', async () => {
    const { port, next } = await listen();
    const client = await connect(port);
    const a = await next();
    client.write('first\r\n');
    await until(() => a.chunks.length === 1);

    a.socket.pause();
    client.write('held\r\n');
    // The bytes reach the server's kernel buffer at once over loopback; give the event loop
    // several turns in which a socket that kept reading would have delivered them.
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(a.chunks).toHaveLength(1);

    a.socket.resume();
    await until(() => Buffer.concat(a.chunks).toString() === 'first\r\nheld\r\n');
  });

  it('ends the connection from the server side: the client sees the reply and the close', async () => {
    const { port, next } = await listen();
    const client = await connect(port);
    const a = await next();
    const received = collect(client);
    const ended = once(client, 'end');
    a.socket.end('bye\r\n');
    await ended;
    expect(Buffer.concat(received).toString()).toBe('bye\r\n');
  });

  it('falls back to reading through data events when the socket has no handle to give the buffer to', () => {
    const socket = new net.Socket();
    const chunks: string[] = [];
    expect(adoptAccepted(socket, (chunk) => chunks.push(chunk.toString()))).toBe(false);
    socket.push(Buffer.from('streamed'));
    return until(() => chunks.length === 1).then(() => {
      expect(chunks).toEqual(['streamed']);
      socket.destroy();
    });
  });
});
