/**
 * The peer path's per-turn mechanisms: a PeerConnection hands every frame written in one turn of
 * the event loop to its socket in one write (large payloads beside their headers, uncopied), in
 * the order written; and a link's requests time out through one deadline sweep, not a timer each.
 */
import net from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { capturedLog } from '../support/captured-log.js';
import { DeadlineSweep } from '../../src/cluster/peer/deadline-sweep.js';
import { type Frame } from '../../src/cluster/peer/frame.js';
import { HandshakeRole, type PeerIdentity } from '../../src/cluster/peer/handshake.js';
import { Opcode } from '../../src/cluster/peer/opcodes.js';
import { PeerConnection } from '../../src/cluster/peer/peer-connection.js';
import { PeerCounters } from '../../src/cluster/peer/peer-counters.js';

const SECRET = Buffer.from('correct horse battery staple');
const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  vi.useRealTimers();
  while (cleanups.length > 0) await cleanups.pop()!();
});

/** Two authenticated PeerConnections over a loopback socket pair; frames each side received. */
async function connectedPair() {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
  const dialerSocket = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  const acceptorSocket = await accepted;
  const received = { dialer: [] as Frame[], acceptor: [] as Frame[] };
  const open = (role: HandshakeRole, socket: net.Socket, nodeId: string, into: Frame[]) => new Promise<PeerConnection>((resolve, reject) => {
    const connection: PeerConnection = new PeerConnection(socket, {
      role, nodeId, secret: SECRET, maxFrameSize: 1024 * 1024, handshakeTimeoutMs: 2000, log: capturedLog().log, counters: new PeerCounters(), remote: 'test',
    }, {
      onOpen: (_peer: PeerIdentity) => resolve(connection),
      // payloads are views into received bytes: copied to be kept
      onFrame: (frame) => into.push({ ...frame, payload: Buffer.from(frame.payload) }),
      onDrain: () => undefined,
      onClose: (info) => reject(new Error(info.reason)),
    });
    cleanups.push(() => connection.close('test over'));
  });
  const [dialer, acceptor] = await Promise.all([
    open(HandshakeRole.Dialer, dialerSocket, 'node-a', received.dialer),
    open(HandshakeRole.Acceptor, acceptorSocket, 'node-b', received.acceptor),
  ]);
  return { dialer, dialerSocket, acceptor, received };
}

async function until(check: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe('PeerConnection write batching', () => {
  it('sends the frames written in one turn in one socket write, in order', async () => {
    const { dialer, dialerSocket, received } = await connectedPair();
    const write = vi.spyOn(dialerSocket, 'write');
    for (let i = 1; i <= 100; i++) dialer.write(Opcode.ForwardWithin, i, Buffer.from(`request ${i}`));
    expect(write).not.toHaveBeenCalled(); // held until the end of the turn
    await new Promise((resolve) => setImmediate(resolve));
    expect(write).toHaveBeenCalledTimes(1);
    await until(() => received.acceptor.length === 100);
    expect(received.acceptor.map((frame) => frame.requestId)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    expect(received.acceptor.map((frame) => frame.payload.toString())).toEqual(Array.from({ length: 100 }, (_, i) => `request ${i + 1}`));
    // the next turn's frames go in a write of their own
    dialer.write(Opcode.ForwardWithin, 101, Buffer.from('later'));
    await new Promise((resolve) => setImmediate(resolve));
    expect(write).toHaveBeenCalledTimes(2);
    await until(() => received.acceptor.length === 101);
  });

  it('writes a large payload beside its header, uncopied, between the small frames around it', async () => {
    const { dialer, dialerSocket, received } = await connectedPair();
    const write = vi.spyOn(dialerSocket, 'write');
    const large = Buffer.alloc(100_000, 7);
    dialer.write(Opcode.ReplicateTimed, 1, Buffer.from('before'));
    dialer.write(Opcode.ReplicateTimed, 2, large);
    dialer.write(Opcode.ReplicateTimed, 3, Buffer.from('after'));
    await new Promise((resolve) => setImmediate(resolve));
    const chunks = write.mock.calls.map((call) => call[0] as Buffer);
    expect(chunks).toContain(large);
    await until(() => received.acceptor.length === 3);
    expect(received.acceptor.map((frame) => frame.requestId)).toEqual([1, 2, 3]);
    expect(received.acceptor[1]!.payload.equals(large)).toBe(true);
    expect(received.acceptor[2]!.payload.toString()).toBe('after');
  });

  it('counts the frames of the turn as queued when asked whether the socket is backed up', async () => {
    const { dialer } = await connectedPair();
    expect(dialer.isBackedUp(64 * 1024)).toBe(false);
    dialer.write(Opcode.ReplicateTimed, 1, Buffer.alloc(70 * 1024));
    expect(dialer.isBackedUp(64 * 1024)).toBe(true);
  });
});

describe('DeadlineSweep', () => {
  it('arms one timer for the earliest deadline and expires each request at its own deadline', () => {
    vi.useFakeTimers({ now: 1_000_000 });
    const deadlines = new Map<string, number>();
    const expired: Array<[string, number]> = [];
    const sweep = new DeadlineSweep((now) => {
      let next = Infinity;
      for (const [name, deadline] of deadlines) {
        if (deadline <= now) {
          deadlines.delete(name);
          expired.push([name, now]);
        } else next = Math.min(next, deadline);
      }
      return next;
    });
    const add = (name: string, inMs: number) => {
      const deadline = Date.now() + inMs;
      deadlines.set(name, deadline);
      sweep.watch(deadline);
    };
    add('a', 100);
    add('b', 300);
    add('c', 50);
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(49);
    expect(expired).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(expired).toEqual([['c', 1_000_050]]);
    deadlines.delete('a'); // answered in time: never looked at again
    vi.advanceTimersByTime(249);
    expect(expired).toEqual([['c', 1_000_050]]);
    vi.advanceTimersByTime(1);
    expect(expired).toEqual([['c', 1_000_050], ['b', 1_000_300]]);
    expect(vi.getTimerCount()).toBe(0); // nothing left: no timer
  });

  it('a later deadline does not re-arm; stop() clears the timer', () => {
    vi.useFakeTimers({ now: 0 });
    const expire = vi.fn(() => Infinity);
    const sweep = new DeadlineSweep(expire);
    sweep.watch(100);
    sweep.watch(200);
    sweep.watch(150);
    expect(vi.getTimerCount()).toBe(1);
    sweep.stop();
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(1000);
    expect(expire).not.toHaveBeenCalled();
  });
});
