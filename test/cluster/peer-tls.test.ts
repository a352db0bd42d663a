/**
 * Peer links over TLS (src/cluster/peer/peer-tls.ts), over real loopback TCP with throwaway
 * certificates (test-certificates.ts, openssl CLI): mutual TLS up both ways with the cluster-secret
 * handshake inside it, and every way it can fail — TLS on one side only, in both directions; a
 * certificate from another CA, on either side; a wrong secret inside TLS; a TLS handshake that
 * never finishes. Each failure is logged at warn on the side that can tell, and counted.
 */
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { capturedLog, type LogLine } from '../support/captured-log.js';
import { DEFAULT_MAX_FRAME_SIZE, FrameDecoder, FrameStatus, encodeFrame, type Frame } from '../../src/cluster/peer/frame.js';
import { Handshake, HandshakeRole, Refusal } from '../../src/cluster/peer/handshake.js';
import { Opcode, RemoteErrorCode } from '../../src/cluster/peer/opcodes.js';
import { decodeError } from '../../src/cluster/peer/payload.js';
import { PeerLink, type PeerLinkOptions } from '../../src/cluster/peer/peer-link.js';
import { PeerServer, type PeerServerOptions } from '../../src/cluster/peer/peer-server.js';
import { PeerTls } from '../../src/cluster/peer/peer-tls.js';
import { TestCertificates } from './test-certificates.js';

const SECRET = 'correct horse battery staple';

const WARN = 40;


let certificates: TestCertificates;
/** TLS settings of nodes whose certificates the cluster CA signed */
let nodeA: PeerTls;
let nodeB: PeerTls;
/** a certificate from another CA, presented by a node that trusts the cluster CA */
let outsiderTrustingUs: PeerTls;
/** a node of another cluster: another CA for its certificate and for what it trusts */
let otherCluster: PeerTls;
const files: Record<string, { cert: string; key: string; ca: string }> = {};

beforeAll(() => {
  certificates = new TestCertificates();
  const clusterCa = certificates.ca('cluster-ca');
  const otherCa = certificates.ca('other-ca');
  files.a = { ...certificates.node('node-a', 'cluster-ca'), ca: clusterCa };
  files.b = { ...certificates.node('node-b', 'cluster-ca'), ca: clusterCa };
  files.outsider = { ...certificates.node('outsider', 'other-ca'), ca: clusterCa };
  files.other = { ...certificates.node('other', 'other-ca'), ca: otherCa };
  const load = (name: string) => new PeerTls({ cert: readFileSync(files[name]!.cert), key: readFileSync(files[name]!.key), ca: readFileSync(files[name]!.ca) });
  nodeA = load('a');
  nodeB = load('b');
  outsiderTrustingUs = load('outsider');
  otherCluster = load('other');
});
afterAll(() => certificates?.remove());

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function startServer(options: Partial<PeerServerOptions> = {}) {
  const { log, lines } = capturedLog();
  const server = new PeerServer({ nodeId: 'node-b', secret: SECRET, log, handshakeTimeoutMs: 1000, tls: nodeB, ...options });
  server.handle(Opcode.Forward, (frame, reply) => reply(Opcode.ForwardReply, Buffer.from(frame.payload)));
  const address = await server.listen('127.0.0.1', 0);
  cleanups.push(() => server.close());
  return { server, port: address.port, address: `127.0.0.1:${address.port}`, lines };
}

function startLink(address: string, options: Partial<PeerLinkOptions> = {}) {
  const { log, lines } = capturedLog();
  const link = new PeerLink({
    address, nodeId: 'node-a', secret: SECRET, log, tls: nodeA,
    handshakeTimeoutMs: 1000, requestTimeoutMs: 2000, reconnectBaseMs: 10, reconnectMaxMs: 50, refusedBackoffMs: 10_000,
    ...options,
  });
  cleanups.push(() => link.close());
  return { link, lines };
}

function once<T>(emitter: { once(event: string, listener: (...args: never[]) => void): unknown }, event: string, timeoutMs = 3000): Promise<T[]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} within ${timeoutMs} ms`)), timeoutMs);
    emitter.once(event, ((...args: T[]) => { clearTimeout(timer); resolve(args); }) as (...args: never[]) => void);
  });
}

async function until(check: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

const warnings = (lines: LogLine[]) => lines.filter((line) => line.level === WARN);

/** Connects, sends `bytes`, and collects what comes back until the other side closes. */
function exchange(socket: net.Socket, bytes: Buffer, timeoutMs = 3000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => { socket.destroy(); reject(new Error(`not closed within ${timeoutMs} ms; got ${Buffer.concat(chunks).toString('hex')}`)); }, timeoutMs);
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', () => undefined);
    socket.on('close', () => { clearTimeout(timer); resolve(Buffer.concat(chunks)); });
    socket.write(bytes);
  });
}

function framesIn(bytes: Buffer): Frame[] {
  const decoder = new FrameDecoder(1 << 20);
  decoder.push(bytes);
  const frames: Frame[] = [];
  for (let read = decoder.next(); read.status === FrameStatus.Frame; read = decoder.next()) frames.push(read.frame);
  return frames;
}

function plaintextHello(): Buffer {
  const hello = new Handshake(HandshakeRole.Dialer, { nodeId: 'plain-dialer', secret: Buffer.from(SECRET), maxFrameSize: DEFAULT_MAX_FRAME_SIZE }).hello();
  return encodeFrame(hello.opcode, 0, hello.payload);
}

describe('peer links over TLS', () => {
  it('come up with mutual TLS, then carry requests; the secret handshake runs inside', async () => {
    const { server, address, port } = await startServer();
    const { link } = startLink(address);
    const up = once<{ nodeId: string }>(link, 'up');
    link.start();
    expect((await up)[0]!.nodeId).toBe('node-b');
    const reply = await link.request(Opcode.Forward, Buffer.from('personal data'));
    expect(reply.payload.toString()).toBe('personal data');
    await until(() => server.openConnections === 1);
    expect(server.counters.tlsRefused + link.counters.tlsRefused).toBe(0);

    // What a listener hears on the wire is TLS: a client with a cluster certificate is answered
    // with a TLS handshake, and the peer's Hello arrives inside it, not before.
    const socket = tls.connect({
      host: '127.0.0.1', port, cert: readFileSync(files.a!.cert), key: readFileSync(files.a!.key), ca: readFileSync(files.a!.ca),
      checkServerIdentity: () => undefined,
    });
    cleanups.push(() => socket.destroy());
    const [first] = await once<Buffer>(socket, 'data');
    expect(socket.authorized).toBe(true);
    expect(socket.getProtocol()).toMatch(/^TLSv1\.[23]$/);
    expect(framesIn(first!)[0]?.opcode).toBe(Opcode.Hello);
  });

  it('the HMAC handshake still refuses a wrong secret inside TLS', async () => {
    const { server, address } = await startServer();
    const { link } = startLink(address, { secret: 'another secret, same CA' });
    const refused = once<Refusal>(link, 'refused');
    link.start();
    const [reason] = await refused;
    expect(reason).toBe(Refusal.RefusedByPeer);
    await until(() => server.counters.authRefused === 1);
    expect(server.counters.tlsRefused).toBe(0);
  });
});

describe('TLS on one side only', () => {
  it('a plaintext dialer gets Error(TlsRequired) in plaintext, no Hello; both sides warn', async () => {
    const { server, address, port, lines: serverLines } = await startServer();
    // A raw dialer first: what exactly comes back to a plaintext Hello.
    const raw = net.connect({ host: '127.0.0.1', port });
    await once(raw, 'connect');
    const answer = await exchange(raw, plaintextHello());
    const frames = framesIn(answer);
    expect(frames.map((frame) => frame.opcode)).toEqual([Opcode.Error]);
    expect(decodeError(frames[0]!.payload)).toMatchObject({ code: RemoteErrorCode.TlsRequired, message: expect.stringContaining('requires TLS') });

    // A real plain link is refused by the peer and says why.
    const { link, lines } = startLink(address, { tls: null });
    const refused = once<string>(link, 'refused');
    link.start();
    const [reason] = await refused;
    expect(reason).toBe(Refusal.RefusedByPeer);
    expect(warnings(lines)).toEqual([expect.objectContaining({
      msg: 'peer refused our handshake', detail: expect.stringMatching(new RegExp(`^code ${RemoteErrorCode.TlsRequired}: this node requires TLS on peer links; TLS is on on one side only`)),
    })]);
    await until(() => server.counters.tlsRefused === 2);
    const serverWarnings = warnings(serverLines);
    expect(serverWarnings.map((line) => line.msg)).toEqual(['peer refused: TLS is on on one side only', 'peer refused: TLS is on on one side only']);
    expect(serverWarnings[0]).toMatchObject({ reason: 'tls', role: 'acceptor', remote: expect.stringMatching(/^127\.0\.0\.1:\d+$/) });
  });

  it('a TLS dialer to a plain listener fails its TLS handshake; both sides warn', async () => {
    const { server, address, lines: serverLines } = await startServer({ tls: null });
    const { link, lines } = startLink(address);
    let wentUp = false;
    link.on('up', () => { wentUp = true; });
    const refused = once<string>(link, 'refused');
    link.start();
    const [reason, detail] = await refused;
    expect(reason).toBe(Refusal.Tls);
    expect(detail).toContain('the peer does not speak TLS');
    expect(warnings(lines)).toEqual([expect.objectContaining({ msg: 'peer refused: TLS is on on one side only', reason: 'tls', role: 'dialer' })]);
    expect(link.counters.tlsRefused).toBe(1);
    await until(() => server.counters.tlsRefused === 1);
    expect(warnings(serverLines)).toEqual([expect.objectContaining({
      msg: 'peer refused: TLS is on on one side only', detail: expect.stringContaining('the peer speaks TLS and this node does not'),
    })]);
    expect(wentUp).toBe(false);
  });
});

describe('certificates from another CA', () => {
  it('the acceptor refuses a dialer whose certificate does not chain to its CA', async () => {
    const { server, address, lines: serverLines } = await startServer();
    const { link, lines } = startLink(address, { tls: outsiderTrustingUs, nodeId: 'outsider' });
    let wentUp = false;
    link.on('up', () => { wentUp = true; });
    const refused = once<string>(link, 'refused');
    link.start();
    const [reason] = await refused;
    expect(reason).toBe(Refusal.Tls);
    await until(() => server.counters.tlsRefused === 1);
    expect(warnings(serverLines)).toEqual([expect.objectContaining({
      msg: 'peer refused: TLS handshake failed', detail: expect.stringMatching(/the peer's certificate was refused \(UNABLE_TO_VERIFY_LEAF_SIGNATURE\)/),
    })]);
    expect(warnings(lines)).toEqual([expect.objectContaining({ msg: 'peer refused: TLS handshake failed', detail: expect.stringContaining('not trust this node\'s certificate') })]);
    expect(server.openConnections).toBe(0);
    expect(wentUp).toBe(false);
  });

  it('the dialer refuses an acceptor whose certificate does not chain to its CA', async () => {
    const { server, address, lines: serverLines } = await startServer({ tls: otherCluster });
    const { link, lines } = startLink(address);
    const refused = once<string>(link, 'refused');
    link.start();
    const [reason, detail] = await refused;
    expect(reason).toBe(Refusal.Tls);
    expect(detail).toMatch(/the peer's certificate was refused \(SELF_SIGNED_CERT_IN_CHAIN\)/);
    expect(warnings(lines)).toHaveLength(1);
    await until(() => server.counters.tlsRefused === 1);
    expect(warnings(serverLines)[0]?.detail).toContain('closed the connection during the TLS handshake');
  });
});

describe('the TLS handshake is bounded', () => {
  it('a connection that says nothing is closed after the handshake timeout, counted and logged', async () => {
    const { server, port, lines } = await startServer({ handshakeTimeoutMs: 200 });
    const silent = net.connect({ host: '127.0.0.1', port });
    cleanups.push(() => silent.destroy());
    const started = Date.now();
    await exchange(silent, Buffer.alloc(0));
    expect(Date.now() - started).toBeGreaterThanOrEqual(150);
    expect(server.counters.tlsRefused).toBe(1);
    // Logged throttled, as a flood of such connections would repeat it.
    expect(warnings(lines)).toEqual([expect.objectContaining({ msg: 'peer connections closed: nothing received within the handshake timeout', count: 1 })]);
  });

  it('a connection that starts a TLS handshake and stalls is refused for the timeout, one line each', async () => {
    const { server, port, lines } = await startServer({ handshakeTimeoutMs: 200 });
    const stalled = net.connect({ host: '127.0.0.1', port });
    cleanups.push(() => stalled.destroy());
    // the first bytes of a TLS record header (a handshake record), and nothing more
    await exchange(stalled, Buffer.from([0x16, 0x03, 0x01]));
    expect(server.counters.tlsRefused).toBe(1);
    expect(warnings(lines)).toEqual([expect.objectContaining({ msg: 'peer refused: TLS handshake failed', detail: 'the TLS handshake did not finish in time' })]);
  });

  it('connections in their TLS handshake hold the handshake slots; a newcomer makes room, so a real peer links at once', async () => {
    const { server, port, address, lines } = await startServer({ handshakeTimeoutMs: 5000, maxHandshakes: 1 });
    const silent = net.connect({ host: '127.0.0.1', port });
    cleanups.push(() => silent.destroy());
    await once(silent, 'connect');
    await until(() => server.counters.connectionsAccepted === 1);
    // A second silent connection takes the only slot: the first is closed to make room.
    const second = net.connect({ host: '127.0.0.1', port });
    cleanups.push(() => second.destroy());
    await exchange(silent, Buffer.alloc(0), 1000);
    expect(server.counters.connectionsRejected).toBe(1);
    expect(server.handshakesUnderWay).toBe(1);
    // A real peer links while the second one still holds the slot, long before any timeout.
    const { link } = startLink(address);
    const up = once(link, 'up');
    link.start();
    await up;
    await until(() => server.openConnections === 1);
    expect(server.counters.connectionsRejected).toBe(2);
    expect(server.counters.tlsRefused).toBe(0);
    expect(server.handshakesUnderWay).toBe(0);
    expect(warnings(lines)).toEqual([expect.objectContaining({ msg: expect.stringContaining('to make room for new ones'), count: 1, maxHandshakes: 1 })]);
  });

  it('closing the server drops connections still in their TLS handshake, quietly', async () => {
    const { server, port, lines } = await startServer({ handshakeTimeoutMs: 5000 });
    const silent = net.connect({ host: '127.0.0.1', port });
    cleanups.push(() => silent.destroy());
    await once(silent, 'connect');
    await new Promise((resolve) => setTimeout(resolve, 50));
    const closed = once(silent, 'close');
    const started = Date.now();
    await server.close();
    await closed;
    expect(Date.now() - started).toBeLessThan(1000);
    await new Promise((resolve) => setImmediate(resolve));
    expect(warnings(lines)).toEqual([]);
  });
});
