/**
 * Peer links over real loopback TCP (port 0): authentication both ways, refusals, pipelining,
 * failure and reconnection, oversize frames, garbage, backpressure of the bounded queue, the pool
 * and the membership transport. Every server, link and socket a test opens is closed after it.
 */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { capturedLog } from '../support/captured-log.js';
import { PeerError } from '../../src/errors.js';
import { DEFAULT_MAX_FRAME_SIZE, FrameDecoder, FrameStatus, encodeFrame, encodeFrameHeader, type Frame } from '../../src/cluster/peer/frame.js';
import { Handshake, HandshakeRole, Refusal, encodeHello } from '../../src/cluster/peer/handshake.js';
import { Opcode, RemoteErrorCode } from '../../src/cluster/peer/opcodes.js';
import { PayloadReader, PayloadWriter, decodeError } from '../../src/cluster/peer/payload.js';
import { PeerCounters } from '../../src/cluster/peer/peer-counters.js';
import { LinkState, PeerLink, type PeerLinkOptions } from '../../src/cluster/peer/peer-link.js';
import { PeerPool } from '../../src/cluster/peer/peer-pool.js';
import { PeerServer, type PeerServerOptions } from '../../src/cluster/peer/peer-server.js';
import { PeerMembershipTransport } from '../../src/cluster/peer/membership-transport.js';
import { MemberState, type MembershipMessage } from '../../src/cluster/types.js';

const SECRET = 'correct horse battery staple';

// ---- helpers ------------------------------------------------------------------------------



const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function startServer(options: Partial<PeerServerOptions> = {}, port = 0) {
  const { log, lines } = capturedLog();
  const server = new PeerServer({ nodeId: 'node-b', secret: SECRET, log, handshakeTimeoutMs: 1000, ...options });
  const address = await server.listen('127.0.0.1', port);
  cleanups.push(() => server.close());
  return { server, port: address.port, address: `127.0.0.1:${address.port}`, lines };
}

function startLink(address: string, options: Partial<PeerLinkOptions> = {}) {
  const { log, lines } = capturedLog();
  const link = new PeerLink({
    address, nodeId: 'node-a', secret: SECRET, log,
    handshakeTimeoutMs: 1000, requestTimeoutMs: 5000, reconnectBaseMs: 10, reconnectMaxMs: 50, refusedBackoffMs: 200,
    ...options,
  });
  cleanups.push(() => link.close());
  return { link, lines };
}

function once<T>(emitter: { once(event: string, listener: (...args: never[]) => void): unknown }, event: string, timeoutMs = 3000): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} within ${timeoutMs} ms`)), timeoutMs);
    emitter.once(event, ((...args: unknown[]) => { clearTimeout(timer); resolve(args[0] as T); }) as (...args: never[]) => void);
  });
}

async function until(check: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** A port nothing listens on: bound by the kernel's choice, then released. */
async function closedPort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', () => resolve()));
  const { port } = probe.address() as net.AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

async function rejection(promise: Promise<unknown>): Promise<PeerError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(PeerError);
    return error as PeerError;
  }
  throw new Error('expected a rejection');
}

const u32 = (value: number) => new PayloadWriter().u32(value).finish();

/** A bare socket speaking frames, to play a peer that misbehaves. */
class RawPeer {
  readonly frames: Frame[] = [];
  closed = false;
  private readonly decoder = new FrameDecoder(1 << 30);
  private waiters: Array<() => void> = [];

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.decoder.push(chunk);
      for (let read = this.decoder.next(); read.status === FrameStatus.Frame; read = this.decoder.next()) this.frames.push(read.frame);
      this.wake();
    });
    socket.on('error', () => {});
    socket.on('close', () => { this.closed = true; this.wake(); });
    cleanups.push(() => socket.destroy());
  }

  static connect(port: number): Promise<RawPeer> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: '127.0.0.1', port }, () => resolve(new RawPeer(socket)));
      socket.once('error', reject);
    });
  }

  static wrap(socket: net.Socket): RawPeer {
    return new RawPeer(socket);
  }

  send(opcode: number, requestId: number, payload: Buffer = Buffer.alloc(0)): void {
    if (!this.socket.destroyed) this.socket.write(encodeFrame(opcode, requestId, payload));
  }

  async next(timeoutMs = 2000): Promise<Frame> {
    await this.waitFor(() => this.frames.length > 0 || this.closed, timeoutMs);
    const frame = this.frames.shift();
    if (frame === undefined) throw new Error('connection closed');
    return frame;
  }

  async whenClosed(timeoutMs = 2000): Promise<void> {
    await this.waitFor(() => this.closed, timeoutMs);
  }

  /** Runs the dialer's side of the handshake with `secret`. */
  async authenticate(secret = SECRET, nodeId = 'raw'): Promise<void> {
    const handshake = new Handshake(HandshakeRole.Dialer, { nodeId, secret: Buffer.from(secret), maxFrameSize: DEFAULT_MAX_FRAME_SIZE });
    const hello = handshake.hello();
    this.send(hello.opcode, 0, hello.payload);
    for (;;) {
      const frame = await this.next();
      const step = handshake.receive(frame.opcode, frame.payload);
      for (const out of step.send) this.send(out.opcode, 0, out.payload);
      if (step.refused) throw new Error(`refused: ${step.refused.reason}`);
      if (step.done) return;
    }
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  private async waitFor(check: () => boolean, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!check()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('timed out waiting on a raw peer');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => { clearTimeout(timer); resolve(); });
      });
    }
  }
}

/** An echo handler: the reply payload is the request payload. */
function echo(server: PeerServer): void {
  server.handle(Opcode.Forward, (frame, reply) => reply(Opcode.ForwardReply, Buffer.from(frame.payload)));
}

// ---- tests --------------------------------------------------------------------------------

describe('peer authentication', () => {
  it('links two nodes that share the secret', async () => {
    const { server, address } = await startServer();
    echo(server);
    const { link } = startLink(address);
    const up = once<{ nodeId: string }>(link, 'up');
    link.start();
    expect((await up).nodeId).toBe('node-b');
    expect(link.peer?.nodeId).toBe('node-b');
    const reply = await link.request(Opcode.Forward, Buffer.from('ping'));
    expect(reply.opcode).toBe(Opcode.ForwardReply);
    expect(reply.payload.toString()).toBe('ping');
    await until(() => server.openConnections === 1);
    expect(server.counters.authRefused).toBe(0);
  });

  it('the acceptor refuses a dialer with a wrong secret, logs and counts it', async () => {
    const { server, address, lines } = await startServer();
    let handled = 0;
    server.handle(Opcode.Forward, () => { handled++; });
    const { link } = startLink(address, { secret: 'wrong secret' });
    let wentUp = false;
    link.on('up', () => { wentUp = true; });
    const refused = once<Refusal>(link, 'refused');
    link.start();
    expect(await refused).toBe(Refusal.RefusedByPeer);
    expect(link.state).toBe(LinkState.Backoff);
    expect((await rejection(link.request(Opcode.Forward, Buffer.from('x')))).code).toBe('ERR_PEER_UNAVAILABLE');
    expect(server.counters.authRefused).toBe(1);
    expect(link.counters.refusedByPeer).toBe(1);
    const warning = lines.find((line) => line.msg === 'peer refused: handshake failed');
    expect(warning).toMatchObject({ level: 40, claimedNodeId: 'node-a', reason: Refusal.BadSecret });
    expect(warning?.remote).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(wentUp).toBe(false);
    expect(handled).toBe(0);
  });

  it('a link says why it cannot reach its peer: a refused secret, or nothing listening; nothing while up', async () => {
    const { address } = await startServer();
    const { link } = startLink(address, { secret: 'wrong secret' });
    expect(link.unreachableBecause).toBeNull();
    const refused = once<Refusal>(link, 'refused');
    link.start();
    await refused;
    expect(link.unreachableBecause).toBe(`${address} refused our cluster secret`);

    const nobody = `127.0.0.1:${await closedPort()}`;
    const { link: toNobody } = startLink(nobody);
    toNobody.start();
    await until(() => toNobody.unreachableBecause !== null);
    expect(toNobody.unreachableBecause).toBe(`${nobody}: connection refused (nothing listens there)`);

    const { link: good } = startLink(address);
    good.start();
    await once(good, 'up');
    expect(good.unreachableBecause).toBeNull();
  });

  it('the dialer refuses an acceptor that cannot prove the secret', async () => {
    // A fake acceptor: answers Hello and then a made-up proof and AuthOk.
    const fake = net.createServer((socket) => {
      const peer = RawPeer.wrap(socket);
      peer.send(Opcode.Hello, 0, encodeHello({ protocolVersion: 1, nonce: Buffer.alloc(32, 7), maxFrameSize: DEFAULT_MAX_FRAME_SIZE, nodeId: 'impostor' }));
      void (async () => {
        while ((await peer.next()).opcode !== Opcode.Auth) { /* wait for the dialer's proof */ }
        peer.send(Opcode.Auth, 0, Buffer.alloc(32, 9));
        peer.send(Opcode.AuthOk, 0);
      })().catch(() => {});
    });
    await new Promise<void>((resolve) => fake.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise((resolve) => fake.close(resolve)));
    const { link, lines } = startLink(`127.0.0.1:${(fake.address() as net.AddressInfo).port}`);
    let wentUp = false;
    link.on('up', () => { wentUp = true; });
    const refused = once<Refusal>(link, 'refused');
    link.start();
    expect(await refused).toBe(Refusal.BadSecret);
    expect(wentUp).toBe(false);
    expect(link.counters.authRefused).toBe(1);
    expect(lines.find((line) => line.msg === 'peer refused: handshake failed')).toMatchObject({ level: 40, claimedNodeId: 'impostor', reason: Refusal.BadSecret });
  });

  it('refuses any frame before authentication', async () => {
    const { server, port } = await startServer();
    let handled = 0;
    server.handle(Opcode.Forward, () => { handled++; });

    const first = await RawPeer.connect(port);
    first.send(Opcode.Forward, 1, Buffer.from('sneaky'));
    expect((await first.next()).opcode).toBe(Opcode.Hello);
    const error = await first.next();
    expect(error.opcode).toBe(Opcode.Error);
    expect(decodeError(error.payload).code).toBe(RemoteErrorCode.NotAuthenticated);
    await first.whenClosed();

    // Hello, then a request instead of the proof.
    const second = await RawPeer.connect(port);
    second.send(Opcode.Hello, 0, new Handshake(HandshakeRole.Dialer, { nodeId: 'raw', secret: Buffer.from('x'), maxFrameSize: DEFAULT_MAX_FRAME_SIZE }).hello().payload);
    second.send(Opcode.Forward, 2, Buffer.from('sneaky'));
    await second.whenClosed();

    expect(handled).toBe(0);
    expect(server.counters.authRefused).toBe(2);
  });

  it('refuses another protocol version and a handshake that does not finish in time', async () => {
    const { server, port, lines } = await startServer({ handshakeTimeoutMs: 150 });
    const future = await RawPeer.connect(port);
    future.send(Opcode.Hello, 0, encodeHello({ protocolVersion: 2, nonce: Buffer.alloc(32, 1), maxFrameSize: DEFAULT_MAX_FRAME_SIZE, nodeId: 'future' }));
    await future.next();
    expect(decodeError((await future.next()).payload).code).toBe(RemoteErrorCode.VersionMismatch);
    await future.whenClosed();

    const silent = await RawPeer.connect(port);
    const started = Date.now();
    await silent.whenClosed();
    expect(Date.now() - started).toBeLessThan(1000);
    expect(server.counters.handshakeTimeouts).toBe(1);
    expect(server.counters.authRefused).toBe(2);
    expect(lines.filter((line) => line.msg === 'peer refused: handshake failed').map((line) => line.reason)).toEqual([Refusal.VersionMismatch]);
    // A connection that sent nothing is what a flood is made of: its timeout is logged throttled.
    expect(lines.filter((line) => line.msg === 'peer connections closed: nothing received within the handshake timeout'))
      .toEqual([expect.objectContaining({ level: 40, count: 1, handshakeTimeoutMs: 150 })]);
  });

  it('a connection that sent part of a handshake and stalled is refused for the timeout, one line each', async () => {
    const { server, port, lines } = await startServer({ handshakeTimeoutMs: 150 });
    const stalled = await RawPeer.connect(port);
    stalled.send(Opcode.Hello, 0, new Handshake(HandshakeRole.Dialer, { nodeId: 'stalled', secret: Buffer.from('x'), maxFrameSize: DEFAULT_MAX_FRAME_SIZE }).hello().payload);
    await stalled.whenClosed();
    expect(server.counters.handshakeTimeouts).toBe(1);
    expect(lines.filter((line) => line.msg === 'peer refused: handshake failed'))
      .toEqual([expect.objectContaining({ reason: Refusal.Timeout, claimedNodeId: 'stalled' })]);
  });

  it('closes a connection to itself', async () => {
    const { server, address } = await startServer();
    const { link } = startLink(address, { nodeId: 'node-b' });
    const refused = once<Refusal>(link, 'refused');
    link.start();
    expect(await refused).toBe(Refusal.SelfConnection);
    await until(() => server.counters.selfConnections === 1);
  });
});

describe('a flood of idle connections on the peer port', () => {
  /** Opens `n` connections that never send anything; they stay open until the test ends. */
  async function flood(port: number, n: number): Promise<RawPeer[]> {
    return Promise.all(Array.from({ length: n }, () => RawPeer.connect(port)));
  }

  it('a real peer links at once while 300 idle connections stay open; each costs a bounded slot', async () => {
    const { server, port, address, lines } = await startServer({ handshakeTimeoutMs: 60_000, maxHandshakes: 16 });
    const idle = await flood(port, 300);
    await until(() => server.counters.connectionsAccepted === 300 && server.handshakesUnderWay === 16);
    // Only the newest 16 hold a slot; the others were closed to make room, and told nothing.
    expect(server.counters.connectionsRejected).toBe(300 - 16);
    await until(() => idle.filter((peer) => peer.closed).length === 300 - 16);
    const started = performance.now();
    const { link } = startLink(address);
    const up = once(link, 'up');
    link.start();
    await up;
    console.log(`peer link up ${(performance.now() - started).toFixed(1)} ms after dialling, with 300 idle connections to its peer port`);
    await until(() => server.openConnections === 1);
    // The link was admitted like any newcomer and holds no slot once authenticated; whether one
    // idle connection made room for it depends on whether it authenticated before the trim.
    expect([300 - 16, 300 - 16 + 1]).toContain(server.counters.connectionsRejected);
    expect(server.handshakesUnderWay).toBe(300 - server.counters.connectionsRejected);
    expect(server.counters.handshakeTimeouts).toBe(0);
    // One line at once, with the count of the first batch closed; the rest go into the next (throttled).
    expect(lines.filter((line) => line.msg.includes('to make room for new ones'))).toEqual([expect.objectContaining({ level: 40, maxHandshakes: 16 })]);
    await server.close();
    expect(lines.filter((line) => line.msg.includes('to make room for new ones')).reduce((sum, line) => sum + Number(line.count), 0))
      .toBe(server.counters.connectionsRejected);
  });

  it('a peer that has sent its Hello keeps its slot while silent newcomers come and go', async () => {
    const { server, port } = await startServer({ handshakeTimeoutMs: 60_000, maxHandshakes: 4 });
    const slow = await RawPeer.connect(port);
    const handshake = new Handshake(HandshakeRole.Dialer, { nodeId: 'slow', secret: Buffer.from(SECRET), maxFrameSize: DEFAULT_MAX_FRAME_SIZE });
    slow.send(Opcode.Hello, 0, handshake.hello().payload);
    // The server's Hello; once the server has read ours, the slow peer counts as talking.
    const serverHello = await slow.next();
    await until(() => server.counters.framesReceived === 1);
    await flood(port, 100);
    await until(() => server.counters.connectionsAccepted === 101 && server.handshakesUnderWay === 4);
    expect(slow.closed).toBe(false);
    expect(server.counters.connectionsRejected).toBe(100 - 3);
    // It finishes its handshake afterwards, and leaves the slots.
    let step = handshake.receive(serverHello.opcode, serverHello.payload);
    while (step.done === undefined) {
      expect(step.refused).toBeUndefined();
      for (const out of step.send) slow.send(out.opcode, 0, out.payload);
      const frame = await slow.next();
      step = handshake.receive(frame.opcode, frame.payload);
    }
    for (const out of step.send) slow.send(out.opcode, 0, out.payload);
    await until(() => server.openConnections === 1);
    expect(server.handshakesUnderWay).toBe(3);
  });

  it('idle connections that never make room for anyone are closed after the handshake timeout, counted, logged once', async () => {
    const { server, port, lines } = await startServer({ handshakeTimeoutMs: 150, maxHandshakes: 64 });
    const idle = await flood(port, 20);
    await until(() => idle.every((peer) => peer.closed), 2000);
    expect(server.counters.handshakeTimeouts).toBe(20);
    expect(server.counters.connectionsRejected).toBe(0);
    expect(server.handshakesUnderWay).toBe(0);
    expect(lines.filter((line) => line.msg === 'peer refused: handshake failed')).toEqual([]);
    expect(lines.filter((line) => line.msg === 'peer connections closed: nothing received within the handshake timeout').map((line) => line.count)).toEqual([1]);
  });
});

describe('peer link requests', () => {
  it('pipelines 1000 concurrent requests answered out of order', async () => {
    const { server, address } = await startServer();
    const held: Array<{ n: number; reply: (opcode: Opcode, payload?: Buffer) => void }> = [];
    server.handle(Opcode.Forward, (frame, reply) => {
      held.push({ n: new PayloadReader(frame.payload).u32(), reply });
      if (held.length < 1000) return;
      // Reply to all of them, in a scrambled order.
      for (let i = held.length - 1; i > 0; i--) {
        const j = (i * 7919) % (i + 1);
        [held[i], held[j]] = [held[j]!, held[i]!];
      }
      for (const { n, reply } of held) reply(Opcode.ForwardReply, u32(n * 2));
    });
    const { link } = startLink(address);
    link.start();
    await once(link, 'up');
    const replies = await Promise.all(Array.from({ length: 1000 }, (_, n) => link.request(Opcode.Forward, u32(n))));
    expect(replies.map((reply) => new PayloadReader(reply.payload).u32())).toEqual(Array.from({ length: 1000 }, (_, n) => n * 2));
    expect(link.inFlight).toBe(0);
    expect(server.counters.framesReceived).toBeGreaterThanOrEqual(1000);
  });

  it('fails in-flight requests at once when the server dies, and reconnects when it is back', async () => {
    const first = await startServer();
    first.server.handle(Opcode.Forward, () => { /* never answers */ });
    const { link, lines } = startLink(first.address, { requestTimeoutMs: 10_000 });
    link.start();
    await once(link, 'up');
    const inFlight = Array.from({ length: 20 }, () => rejection(link.request(Opcode.Forward, Buffer.from('x'))));
    await until(() => first.server.counters.framesReceived >= 23); // handshake (3) + 20 requests
    const down = once<string>(link, 'down');
    const killedAt = Date.now();
    await first.server.close();
    const errors = await Promise.all(inFlight);
    expect(Date.now() - killedAt).toBeLessThan(1000);
    expect(new Set(errors.map((error) => error.code))).toEqual(new Set(['ERR_PEER_DISCONNECTED']));
    await down;
    expect(link.counters.requestsDisconnected).toBe(20);
    expect(lines.some((line) => line.msg === 'peer link down' && line.level === 40)).toBe(true);

    // While nothing listens, requests fail fast instead of waiting.
    await until(() => link.state === LinkState.Backoff);
    const failFastAt = Date.now();
    expect((await rejection(link.request(Opcode.Forward, Buffer.from('x')))).code).toBe('ERR_PEER_UNAVAILABLE');
    expect(Date.now() - failFastAt).toBeLessThan(100);

    const second = await startServer({}, first.port);
    echo(second.server);
    await once(link, 'up');
    expect((await link.request(Opcode.Forward, Buffer.from('back'))).payload.toString()).toBe('back');
    expect(link.counters.linkDrops).toBe(1);
  });

  it('times a request out, and counts the reply that comes too late', async () => {
    const { server, address } = await startServer();
    server.handle(Opcode.Forward, (_frame, reply) => { setTimeout(() => reply(Opcode.ForwardReply), 150); });
    const { link } = startLink(address);
    link.start();
    await once(link, 'up');
    const error = await rejection(link.request(Opcode.Forward, Buffer.alloc(0), { timeoutMs: 50 }));
    expect(error.code).toBe('ERR_PEER_TIMEOUT');
    await until(() => link.counters.lateReplies === 1);
    expect(link.isUp).toBe(true);
  });

  it('answers unknown opcodes, malformed payloads and failing handlers with typed errors', async () => {
    const { server, address } = await startServer();
    server.handle(Opcode.Replicate, (frame) => { new PayloadReader(frame.payload).u64(); });
    server.handle(Opcode.Handoff, () => { throw new Error('a bug'); });
    const { link } = startLink(address);
    link.start();
    await once(link, 'up');
    const codes = await Promise.all([Opcode.Digest, Opcode.Replicate, Opcode.Handoff].map(async (opcode) => {
      const error = await rejection(link.request(opcode, Buffer.from('ab')));
      expect(error.code).toBe('ERR_PEER_REMOTE');
      return error.remoteCode;
    }));
    expect(codes).toEqual([RemoteErrorCode.UnknownOpcode, RemoteErrorCode.BadPayload, RemoteErrorCode.Internal]);
    expect(server.counters).toMatchObject({ unknownOpcodes: 1, handlerErrors: 1 });
    expect(link.isUp).toBe(true);
  });

  it('delivers one-way messages', async () => {
    const { server, address } = await startServer();
    const got: string[] = [];
    server.handle(Opcode.Membership, (frame, reply) => { got.push(frame.payload.toString()); reply(Opcode.ForwardReply); });
    const { link } = startLink(address);
    link.start();
    expect(link.send(Opcode.Membership, Buffer.from('queued while connecting'))).toBe(true);
    await once(link, 'up');
    expect(link.send(Opcode.Membership, Buffer.from('sent while up'))).toBe(true);
    await until(() => got.length === 2);
    expect(got).toEqual(['queued while connecting', 'sent while up']);
    expect(link.counters.protocolErrors).toBe(0);
  });

  it('bounds the queue while connecting, and fails it when the attempt fails', async () => {
    // Accepts TCP and then says nothing: the link stays in its handshake.
    const mute = net.createServer((socket) => { socket.on('error', () => {}); cleanups.push(() => socket.destroy()); });
    await new Promise<void>((resolve) => mute.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise((resolve) => mute.close(resolve)));
    const { link } = startLink(`127.0.0.1:${(mute.address() as net.AddressInfo).port}`, { maxQueuedFrames: 3, handshakeTimeoutMs: 200 });
    link.start();
    const queued = Array.from({ length: 3 }, () => rejection(link.request(Opcode.Forward, Buffer.from('x'))));
    expect((await rejection(link.request(Opcode.Forward, Buffer.from('x')))).code).toBe('ERR_PEER_BUSY');
    expect(link.send(Opcode.Membership, Buffer.from('x'))).toBe(false);
    expect((await Promise.all(queued)).map((error) => error.code)).toEqual(['ERR_PEER_UNAVAILABLE', 'ERR_PEER_UNAVAILABLE', 'ERR_PEER_UNAVAILABLE']);
    expect(link.counters).toMatchObject({ requestsRejected: 4, sendsDropped: 1, connectFailures: 1, authRefused: 1, handshakeTimeouts: 1 });
  });
  it('holds frames in its bounded queue while the socket is backed up, and sends them on drain', async () => {
    const { server, address } = await startServer();
    server.handle(Opcode.Forward, (frame, reply) => reply(Opcode.ForwardReply, u32(frame.payload.length)));
    const { link } = startLink(address, { writeHighWater: 1, maxQueuedFrames: 3 });
    link.start();
    await once(link, 'up');
    const big = Buffer.alloc(512 * 1024, 1);
    // The first goes to the empty socket, which is then above high water: three wait, two are refused.
    const outcomes = await Promise.all(Array.from({ length: 6 }, () => link.request(Opcode.Forward, big).then(
      (reply) => new PayloadReader(reply.payload).u32(),
      (error: PeerError) => error.code)));
    expect(outcomes).toEqual([big.length, big.length, big.length, big.length, 'ERR_PEER_BUSY', 'ERR_PEER_BUSY']);
  });
});

describe('a link dropped by a peer that leaves', () => {
  it('is logged at info when the leave came first, with no "peer link down" warning', async () => {
    const first = await startServer();
    const { link, lines } = startLink(first.address, { leaveGraceMs: 200 });
    link.start();
    await once(link, 'up');
    link.peerLeft();
    const down = once(link, 'down');
    await first.server.close();
    await down;
    expect(lines.find((line) => line.msg === 'peer link closed after the peer left the cluster')).toMatchObject({ level: 30, peerNodeId: 'node-b' });
    // past the grace: still no warning
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(lines.filter((line) => line.msg === 'peer link down')).toEqual([]);
  });

  it('is logged at info when the leave follows the drop within the grace', async () => {
    const first = await startServer();
    const { link, lines } = startLink(first.address, { leaveGraceMs: 5000 });
    link.start();
    await once(link, 'up');
    const down = once(link, 'down');
    await first.server.close();
    await down;
    link.peerLeft();
    expect(lines.find((line) => line.msg === 'peer link closed after the peer left the cluster')).toMatchObject({ level: 30 });
    expect(lines.filter((line) => line.msg === 'peer link down')).toEqual([]);
  });

  it('is logged at info when the link came up only after the leave (the peer was still closing its links)', async () => {
    const first = await startServer();
    const { link, lines } = startLink(first.address, { leaveGraceMs: 50 });
    // The leave arrives while this link is still connecting; it comes up in the peer's last moment.
    link.peerLeft();
    link.start();
    await once(link, 'up');
    const down = once(link, 'down');
    await first.server.close();
    await down;
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(lines.find((line) => line.msg === 'peer link closed after the peer left the cluster')).toMatchObject({ level: 30 });
    expect(lines.filter((line) => line.msg === 'peer link down')).toEqual([]);
  });

  it('is warned about again once the peer has returned to the cluster after its leave', async () => {
    const first = await startServer();
    const { link, lines } = startLink(first.address, { leaveGraceMs: 50 });
    link.start();
    await once(link, 'up');
    link.peerLeft();
    link.peerReturned();
    const down = once(link, 'down');
    await first.server.close();
    await down;
    await until(() => lines.some((line) => line.msg === 'peer link down'));
    expect(lines.filter((line) => line.msg === 'peer link closed after the peer left the cluster')).toEqual([]);
  });

  it('is warned about when no leave comes within the grace', async () => {
    const first = await startServer();
    const { link, lines } = startLink(first.address, { leaveGraceMs: 50 });
    link.start();
    await once(link, 'up');
    const down = once(link, 'down');
    await first.server.close();
    await down;
    await until(() => lines.some((line) => line.msg === 'peer link down'));
    expect(lines.find((line) => line.msg === 'peer link down')).toMatchObject({ level: 40, peerNodeId: 'node-b' });
    expect(lines.filter((line) => line.msg === 'peer link closed after the peer left the cluster')).toEqual([]);
  });
});

describe('peer link limits and bad input', () => {
  it('refuses to send a frame above the peer\'s limit, and the link stays up', async () => {
    const { server, address } = await startServer({ maxFrameSize: 8192 });
    echo(server);
    const { link } = startLink(address);
    link.start();
    await once(link, 'up');
    expect(link.peer?.maxFrameSize).toBe(8192);
    expect((await rejection(link.request(Opcode.Forward, Buffer.alloc(9000)))).code).toBe('ERR_PEER_TOO_LARGE');
    expect((await link.request(Opcode.Forward, Buffer.alloc(8000, 1))).payload.length).toBe(8000);
  });

  it('closes a link that sends a frame above the limit', async () => {
    const { server, port, lines } = await startServer({ maxFrameSize: 8192 });
    echo(server);
    const raw = await RawPeer.connect(port);
    await raw.authenticate();
    raw.send(Opcode.Forward, 1, Buffer.from('fine'));
    expect((await raw.next()).payload.toString()).toBe('fine');
    raw.socket.write(encodeFrameHeader(Opcode.Forward, 2, 100_000));
    const error = await raw.next();
    expect(error.opcode).toBe(Opcode.Error);
    expect(decodeError(error.payload).code).toBe(RemoteErrorCode.FrameTooLarge);
    await raw.whenClosed();
    expect(server.counters.oversizeFrames).toBe(1);
    expect(lines.find((line) => line.msg.includes('above the maximum frame size'))).toMatchObject({ level: 40, peerNodeId: 'raw' });
  });

  it('drops garbage-sending clients without touching other links', async () => {
    const { server, address, port } = await startServer();
    echo(server);
    const { link } = startLink(address);
    link.start();
    await once(link, 'up');
    const before = link.request(Opcode.Forward, Buffer.from('before'));

    const http = await RawPeer.connect(port);
    http.socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    const binary = await RawPeer.connect(port);
    binary.socket.write(Buffer.from([0, 0, 0, 3, 0xee, 1, 2, 3, 4, 9, 9, 9]));
    const authenticatedThenGarbage = await RawPeer.connect(port);
    await authenticatedThenGarbage.authenticate();
    authenticatedThenGarbage.send(Opcode.Hello, 0, Buffer.from('again'));
    await Promise.all([http.whenClosed(), binary.whenClosed(), authenticatedThenGarbage.whenClosed()]);

    expect((await before).payload.toString()).toBe('before');
    expect((await link.request(Opcode.Forward, Buffer.from('after'))).payload.toString()).toBe('after');
    expect(link.counters.linkDrops).toBe(0);
    expect(server.counters).toMatchObject({ authRefused: 2, protocolErrors: 1 });
    await until(() => server.openConnections === 1);
  });
});

describe('peer pool and membership transport', () => {
  it('reuses one link per address and carries membership messages with the authenticated sender', async () => {
    const { log } = capturedLog();
    const counters = new PeerCounters();
    const b = await startServer({ counters });
    const poolB = new PeerPool({ nodeId: 'node-b', secret: SECRET, log, counters });
    cleanups.push(() => poolB.close());
    const transportB = new PeerMembershipTransport('node-b', poolB, b.server, log);
    const received: Array<[string, MembershipMessage]> = [];
    transportB.onMessage((from, message) => received.push([from, message]));

    const poolA = new PeerPool({ nodeId: 'node-a', secret: SECRET, log, reconnectBaseMs: 10, reconnectMaxMs: 50 });
    cleanups.push(() => poolA.close());
    const up = once<string>(poolA, 'up');
    const linkA = poolA.get(b.address);
    expect(poolA.get(b.address)).toBe(linkA);
    expect(await up).toBe(b.address);

    const aServer = await startServer({ nodeId: 'node-a' });
    const transportA = new PeerMembershipTransport('node-a', poolA, aServer.server, log);
    const member = { id: 'node-a', peerAddress: aServer.address, state: MemberState.Alive, incarnation: 3 };
    transportA.send('node-b', b.address, { kind: 'heartbeat', member, members: [member] });
    transportA.send('', b.address, { kind: 'join', member });
    transportA.send('node-c', b.address, { kind: 'leave', member }); // the address is not node-c's
    // A payload claiming another sender is dropped.
    linkA.send(Opcode.Membership, Buffer.from(JSON.stringify({ from: 'node-z', to: 'node-b', body: { kind: 'leave', member } })));
    await until(() => received.length === 2 && counters.membershipDropped === 2);
    expect(received).toEqual([['node-a', { kind: 'heartbeat', member, members: [member] }], ['node-a', { kind: 'join', member }]]);

    poolA.remove(b.address);
    expect(poolA.find(b.address)).toBeUndefined();
    expect(linkA.state).toBe(LinkState.Closed);
  });
});
