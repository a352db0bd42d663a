/**
 * The peer wire format without sockets: frames read whole, byte by byte and in random splits
 * (node-redis style), payload helpers, and the handshake state machine driven in memory.
 * Opcode numbers are spelled out here, not imported, so a renumbering in src/ fails this test.
 */
import { describe, expect, it } from 'vitest';
import { FEED_MODES, split } from '../support/feed.js';
import {
  DEFAULT_MAX_FRAME_SIZE, FRAME_HEADER_SIZE, FrameDecoder, FrameStatus, encodeFrame, encodeFrameHeader, maxFrameSizeFor, tryReadFrame, type Frame,
} from '../../src/cluster/peer/frame.js';
import { Opcode, RemoteErrorCode } from '../../src/cluster/peer/opcodes.js';
import { PayloadReader, PayloadWriter, decodeError, decodeJson, encodeError, encodeJson } from '../../src/cluster/peer/payload.js';
import {
  AUTH_LABEL, Handshake, HandshakeRole, PROTOCOL_VERSION, Refusal, authProof, decodeHello, encodeHello, type HandshakeStep, type OutgoingFrame,
} from '../../src/cluster/peer/handshake.js';
import { createHmac } from 'node:crypto';
import { PeerError } from '../../src/errors.js';

describe('peer opcodes are part of the protocol', () => {
  it('keeps every number', () => {
    expect({ ...Opcode }).toMatchObject({
      Hello: 1, Auth: 2, AuthOk: 3, Membership: 4, Forward: 5, ForwardReply: 6, Replicate: 7, ReplicateAck: 8,
      Handoff: 9, HandoffAck: 10, Digest: 11, DigestReply: 12, Error: 13,
    });
    expect({ ...RemoteErrorCode }).toMatchObject({
      UnknownOpcode: 1, BadPayload: 2, Internal: 3, AuthFailed: 4, VersionMismatch: 5, NotAuthenticated: 6,
      SelfConnection: 7, FrameTooLarge: 8, HandshakeTimeout: 9,
    });
    expect(PROTOCOL_VERSION).toBe(1);
  });
});

describe('peer frames', () => {
  const frames: Array<[number, number, Buffer]> = [
    [5, 1, Buffer.from('hello')],
    [6, 0xffffffff, Buffer.alloc(0)],
    [13, 0, Buffer.from([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])],
    [200, 42, Buffer.alloc(3000, 0xab)],
  ];
  const stream = Buffer.concat(frames.map(([op, id, payload]) => encodeFrame(op, id, payload)));

  it('encodes the documented layout', () => {
    expect(encodeFrame(5, 0x01020304, Buffer.from('ab')).toString('hex')).toBe('00000002' + '05' + '01020304' + '6162');
    expect(encodeFrameHeader(5, 7, 1000).toString('hex')).toBe('000003e8' + '05' + '00000007');
    expect(maxFrameSizeFor(1024 * 1024)).toBe(1024 * 1024 + 64 * 1024);
    expect(() => encodeFrame(256, 1)).toThrow(RangeError);
    expect(() => encodeFrame(1, -1)).toThrow(RangeError);
  });

  it('tryReadFrame answers need-more for every prefix, then the frame and the next offset', () => {
    const one = encodeFrame(5, 9, Buffer.from('payload'));
    const padded = Buffer.concat([Buffer.from('xyz'), one, Buffer.from('rest')]);
    for (let end = 3; end < 3 + one.length; end++) {
      expect(tryReadFrame(padded.subarray(0, end), 3).status).toBe(FrameStatus.NeedMore);
    }
    const read = tryReadFrame(padded, 3);
    expect(read.status).toBe(FrameStatus.Frame);
    if (read.status !== FrameStatus.Frame) return;
    expect(read.frame.opcode).toBe(5);
    expect(read.frame.requestId).toBe(9);
    expect(read.frame.payload.toString()).toBe('payload');
    expect(read.next).toBe(3 + one.length);
  });

  it('reports a frame above the limit from its 4 length bytes alone', () => {
    const header = Buffer.alloc(4);
    header.writeUInt32BE(DEFAULT_MAX_FRAME_SIZE - FRAME_HEADER_SIZE + 1);
    expect(tryReadFrame(header, 0)).toEqual({ status: FrameStatus.TooLarge, size: DEFAULT_MAX_FRAME_SIZE + 1 });
    header.writeUInt32BE(DEFAULT_MAX_FRAME_SIZE - FRAME_HEADER_SIZE);
    expect(tryReadFrame(header, 0).status).toBe(FrameStatus.NeedMore);
    expect(tryReadFrame(encodeFrame(1, 1, Buffer.alloc(100)), 0, 100).status).toBe(FrameStatus.TooLarge);
  });

  it.each(FEED_MODES)('FrameDecoder reads a stream fed %s', (mode) => {
    const decoder = new FrameDecoder();
    const got: Frame[] = [];
    for (const chunk of split(stream, mode)) {
      decoder.push(Buffer.from(chunk));
      for (;;) {
        const read = decoder.next();
        if (read.status === FrameStatus.NeedMore) break;
        expect(read.status).toBe(FrameStatus.Frame);
        if (read.status === FrameStatus.Frame) got.push(read.frame);
      }
    }
    expect(got.map((frame) => [frame.opcode, frame.requestId, frame.payload.toString('hex')])).toEqual(
      frames.map(([op, id, payload]) => [op, id, payload.toString('hex')]));
    expect(decoder.bufferedBytes).toBe(0);
  });

  it.each(FEED_MODES)('FrameDecoder stops at an oversize frame fed %s, before its payload arrives', (mode) => {
    const decoder = new FrameDecoder(1000);
    const big = encodeFrameHeader(5, 1, 5000);
    const good = encodeFrame(5, 2, Buffer.from('ok'));
    const statuses: FrameStatus[] = [];
    for (const chunk of split(Buffer.concat([good, big]), mode)) {
      decoder.push(Buffer.from(chunk));
      for (let read = decoder.next(); read.status !== FrameStatus.NeedMore; read = decoder.next()) {
        statuses.push(read.status);
        if (read.status === FrameStatus.TooLarge) break;
      }
      if (statuses.includes(FrameStatus.TooLarge)) break;
    }
    expect(statuses).toEqual([FrameStatus.Frame, FrameStatus.TooLarge]);
  });
});

describe('peer payload helpers', () => {
  it('round-trips every field type', () => {
    const payload = new PayloadWriter(4)
      .u8(255).u16(65535).u32(0xffffffff).u64(2n ** 64n - 1n).u64(Number.MAX_SAFE_INTEGER)
      .string16('clé ☃').string32('x'.repeat(70000)).string16('\xff\x00key', 'latin1')
      .bytes32(Buffer.from([1, 2, 3])).raw(Buffer.from('zz'))
      .finish();
    const reader = new PayloadReader(payload);
    expect(reader.u8()).toBe(255);
    expect(reader.u16()).toBe(65535);
    expect(reader.u32()).toBe(0xffffffff);
    expect(reader.u64()).toBe(2n ** 64n - 1n);
    expect(reader.u64Number()).toBe(Number.MAX_SAFE_INTEGER);
    expect(reader.string16()).toBe('clé ☃');
    expect(reader.string32()).toBe('x'.repeat(70000));
    expect(reader.string16('latin1')).toBe('\xff\x00key');
    expect([...reader.bytes32()]).toEqual([1, 2, 3]);
    expect(reader.raw(2).toString()).toBe('zz');
    expect(() => reader.end()).not.toThrow();
  });

  it('refuses out-of-range values as bugs', () => {
    const writer = new PayloadWriter();
    expect(() => writer.u8(256)).toThrow(RangeError);
    expect(() => writer.u16(-1)).toThrow(RangeError);
    expect(() => writer.u32(1.5)).toThrow(RangeError);
    expect(() => writer.u64(2n ** 64n)).toThrow(RangeError);
    expect(() => writer.string16('x'.repeat(65536))).toThrow(RangeError);
  });

  it('throws ERR_PEER_PAYLOAD on truncated or malformed input', () => {
    const payload = new PayloadWriter().u32(10).finish();
    const expectPayloadError = (fn: () => unknown) => {
      try {
        fn();
        expect.unreachable();
      } catch (error) {
        expect(error).toBeInstanceOf(PeerError);
        expect((error as PeerError).code).toBe('ERR_PEER_PAYLOAD');
      }
    };
    expectPayloadError(() => new PayloadReader(payload).bytes32());
    expectPayloadError(() => new PayloadReader(payload).u64());
    expectPayloadError(() => new PayloadReader(Buffer.from([0, 5, 65])).string16());
    expectPayloadError(() => { const reader = new PayloadReader(payload); reader.u16(); reader.end(); });
    expectPayloadError(() => new PayloadReader(new PayloadWriter().u64(2n ** 60n).finish()).u64Number());
    expectPayloadError(() => decodeJson(Buffer.from('{nope')));
  });

  it('carries JSON and Error payloads', () => {
    expect(decodeJson(encodeJson({ kind: 'heartbeat', n: [1, 2] }))).toEqual({ kind: 'heartbeat', n: [1, 2] });
    expect(decodeError(encodeError(RemoteErrorCode.UnknownOpcode, 'no handler'))).toEqual({ code: 1, message: 'no handler' });
    expect(decodeError(encodeError(RemoteErrorCode.Internal, 'é'.repeat(5000))).message.length).toBe(300);
  });
});

describe('peer handshake (in memory)', () => {
  const secret = Buffer.from('the cluster secret');
  const nonceD = Buffer.alloc(32, 1);
  const nonceA = Buffer.alloc(32, 2);

  /** Delivers frames between the two sides until both are finished; returns each side's outcome. */
  function run(dialer: Handshake, acceptor: Handshake, tamper: (from: HandshakeRole, frame: OutgoingFrame) => OutgoingFrame = (_f, frame) => frame) {
    const outcomes = new Map<HandshakeRole, HandshakeStep>();
    const toAcceptor: OutgoingFrame[] = [dialer.hello()];
    const toDialer: OutgoingFrame[] = [acceptor.hello()];
    const wire: Array<{ frame: OutgoingFrame; to: Handshake }> = [];
    const deliver = (to: Handshake, frames: OutgoingFrame[]) => {
      for (const frame of frames) wire.push({ frame: tamper(to === acceptor ? HandshakeRole.Dialer : HandshakeRole.Acceptor, frame), to });
    };
    deliver(acceptor, toAcceptor);
    deliver(dialer, toDialer);
    while (wire.length > 0) {
      const { frame, to } = wire.shift()!;
      if (to.finished) continue;
      const step = to.receive(frame.opcode, frame.payload);
      deliver(to === acceptor ? dialer : acceptor, step.send);
      if (step.done || step.refused) outcomes.set(to.role, step);
    }
    return { dialer: outcomes.get(HandshakeRole.Dialer), acceptor: outcomes.get(HandshakeRole.Acceptor) };
  }

  const pair = (dialerSecret = secret, acceptorSecret = secret, ids: [string, string] = ['node-a', 'node-b']) => [
    new Handshake(HandshakeRole.Dialer, { nodeId: ids[0], secret: dialerSecret, maxFrameSize: DEFAULT_MAX_FRAME_SIZE, nonce: nonceD }),
    new Handshake(HandshakeRole.Acceptor, { nodeId: ids[1], secret: acceptorSecret, maxFrameSize: 70_000, nonce: nonceA }),
  ] as const;

  it('computes the documented proof', () => {
    const expected = createHmac('sha256', secret).update(Buffer.concat([Buffer.from(AUTH_LABEL), nonceA, Buffer.from('node-a'), nonceD])).digest();
    expect(authProof(secret, nonceA, 'node-a', nonceD).equals(expected)).toBe(true);
    expect(decodeHello(encodeHello({ protocolVersion: 1, nonce: nonceD, maxFrameSize: 5000, nodeId: 'x' }))).toEqual({ protocolVersion: 1, nonce: nonceD, maxFrameSize: 5000, nodeId: 'x' });
  });

  it('authenticates both sides with the same secret, without ever sending it', () => {
    const [dialer, acceptor] = pair();
    const seen: Buffer[] = [];
    const result = run(dialer, acceptor, (_from, frame) => { seen.push(frame.payload); return frame; });
    expect(result.dialer?.done).toEqual({ nodeId: 'node-b', protocolVersion: 1, maxFrameSize: 70_000 });
    expect(result.acceptor?.done).toEqual({ nodeId: 'node-a', protocolVersion: 1, maxFrameSize: DEFAULT_MAX_FRAME_SIZE });
    expect(Buffer.concat(seen).includes(secret)).toBe(false);
  });

  it('the acceptor refuses a dialer with another secret, and proves nothing to it', () => {
    const [dialer, acceptor] = pair(Buffer.from('wrong'));
    const sentByAcceptor: number[] = [];
    const result = run(dialer, acceptor, (from, frame) => { if (from === HandshakeRole.Acceptor) sentByAcceptor.push(frame.opcode); return frame; });
    expect(result.acceptor?.refused?.reason).toBe(Refusal.BadSecret);
    expect(result.dialer?.refused?.reason).toBe(Refusal.RefusedByPeer);
    expect(sentByAcceptor).toEqual([Opcode.Hello, Opcode.Error]);
  });

  it('the dialer refuses an acceptor whose proof is wrong', () => {
    const [dialer, acceptor] = pair();
    const result = run(dialer, acceptor, (from, frame) =>
      from === HandshakeRole.Acceptor && frame.opcode === Opcode.Auth ? { opcode: Opcode.Auth, payload: Buffer.alloc(32) } : frame);
    expect(result.dialer?.refused?.reason).toBe(Refusal.BadSecret);
  });

  it('refuses another protocol version, a node claiming our id, and frames before authentication', () => {
    const [dialer, acceptor] = pair();
    const v2 = encodeHello({ protocolVersion: 2, nonce: nonceD, maxFrameSize: 5000, nodeId: 'node-a' });
    const step = acceptor.receive(Opcode.Hello, v2);
    expect(step.refused?.reason).toBe(Refusal.VersionMismatch);
    expect(decodeError(step.send[0]!.payload).code).toBe(RemoteErrorCode.VersionMismatch);

    const [, self] = pair(secret, secret, ['node-b', 'node-b']);
    expect(self.receive(Opcode.Hello, encodeHello({ protocolVersion: 1, nonce: nonceD, maxFrameSize: 5000, nodeId: 'node-b' })).refused?.reason).toBe(Refusal.SelfConnection);

    const [, early] = pair();
    expect(early.receive(Opcode.Forward, Buffer.alloc(0)).refused?.reason).toBe(Refusal.UnexpectedFrame);
    const [, afterHello] = pair();
    expect(afterHello.receive(Opcode.Hello, dialer.hello().payload).send).toEqual([]);
    expect(afterHello.receive(Opcode.AuthOk, Buffer.alloc(0)).refused?.reason).toBe(Refusal.UnexpectedFrame);
    const [, badId] = pair();
    expect(badId.receive(Opcode.Hello, encodeHello({ protocolVersion: 1, nonce: nonceD, maxFrameSize: 5000, nodeId: 'no spaces' })).refused?.reason).toBe(Refusal.BadHello);
    const [, truncated] = pair();
    expect(truncated.receive(Opcode.Hello, Buffer.from([0, 1, 2])).refused?.reason).toBe(Refusal.BadHello);
  });
});
