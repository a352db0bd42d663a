/**
 * Replies computed elsewhere (another node, later): the protocol holds the input that follows,
 * and the connection's replies keep the order of its requests, in both protocols.
 */
import { describe, expect, it } from 'vitest';
import { Executor } from '../src/command/executor.js';
import { AsciiProtocol } from '../src/protocol/ascii/ascii-protocol.js';
import { BinaryProtocol } from '../src/protocol/binary/binary-protocol.js';
import { FeedResult, type ProtocolHandler } from '../src/protocol/handler.js';
import { Output } from '../src/protocol/output.js';
import type { Command, Reply } from '../src/protocol/types.js';
import { MemoryStore } from '../src/store/memory-store.js';
import { START_MS } from './support/rig.js';
import { request, storeExtras } from './support/binary-packets.js';
import { feedLent } from './support/feed.js';
import { Opcode } from '../src/protocol/binary/constants.js';

const OP = { SET: Opcode.Set, NOOP: Opcode.Noop };

/** An executor whose commands on keys starting with "remote" answer only when released. */
function deferringRig(kind: 'ascii' | 'binary') {
  const store = new MemoryStore({ memoryLimit: 1 << 24, maxItemSize: 1024 });
  const executor = new Executor({ store, version: 'v', now: () => START_MS });
  const output = new Output();
  const held: Array<() => void> = [];
  const execute = (command: Command): Reply | Promise<Reply> => {
    const key = 'key' in command ? command.key : 'keys' in command ? command.keys[0] : '';
    if (!key?.startsWith('remote')) return executor.execute(command);
    return new Promise<Reply>((resolve) => held.push(() => resolve(executor.execute(command))));
  };
  const limits = { maxItemSize: 1024 };
  const protocol: ProtocolHandler = kind === 'ascii' ? new AsciiProtocol(execute, output, limits) : new BinaryProtocol(execute, output, limits);
  const text = () => Buffer.concat(output.take()).toString('latin1');
  /** lets the first held command answer, as a connection does: wait, then feed(null) */
  const releaseOne = async () => {
    held.shift()!();
    await protocol.waiting;
    return protocol.feed(null);
  };
  return { protocol, output, text, releaseOne, held };
}

describe('replies that arrive later', () => {
  it('ascii: holds the following commands and answers in request order', async () => {
    const rig = deferringRig('ascii');
    const result = feedLent(rig.protocol, Buffer.from('set local 0 0 1\r\na\r\nset remote1 0 0 1\r\nb\r\nget local remote1\r\nget remote1\r\n'));
    expect(result).toBe(FeedResult.Waiting);
    expect(rig.text()).toBe('STORED\r\n');
    // More input while waiting is kept, not run.
    expect(feedLent(rig.protocol, Buffer.from('version\r\n'))).toBe(FeedResult.Waiting);
    expect(rig.text()).toBe('');
    expect(await rig.releaseOne()).toBe(FeedResult.Waiting);
    // the set answered; the multi-get is decided by its first key, "local", so it ran at once
    expect(rig.text()).toBe('STORED\r\nVALUE local 0 1\r\na\r\nVALUE remote1 0 1\r\nb\r\nEND\r\n');
    expect(await rig.releaseOne()).toBe(FeedResult.NeedMore);
    expect(rig.text()).toBe('VALUE remote1 0 1\r\nb\r\nEND\r\nVERSION v\r\n');
    expect(rig.held).toHaveLength(0);
  });

  it('ascii: a noreply command that waits writes nothing when it arrives', async () => {
    const rig = deferringRig('ascii');
    expect(feedLent(rig.protocol, Buffer.from('set remote2 0 0 1 noreply\r\nz\r\nget remote2\r\n'))).toBe(FeedResult.Waiting);
    expect(await rig.releaseOne()).toBe(FeedResult.Waiting);
    expect(rig.text()).toBe('');
    expect(await rig.releaseOne()).toBe(FeedResult.NeedMore);
    expect(rig.text()).toBe('VALUE remote2 0 1\r\nz\r\nEND\r\n');
  });

  it('binary: answers keep the order of the packets', async () => {
    const rig = deferringRig('binary');
    const packets = Buffer.concat([
      request({ opcode: OP.SET, key: 'remote3', value: 'v', extras: storeExtras(0, 0), opaque: 1 }),
      request({ opcode: OP.NOOP, opaque: 2 }),
    ]);
    expect(feedLent(rig.protocol, packets)).toBe(FeedResult.Waiting);
    expect(rig.output.size).toBe(0);
    expect(await rig.releaseOne()).toBe(FeedResult.NeedMore);
    const replies = Buffer.concat(rig.output.take());
    expect(replies.length).toBe(48);
    expect([replies[1], replies.readUInt32BE(12), replies[24 + 1], replies.readUInt32BE(24 + 12)]).toEqual([OP.SET, 1, OP.NOOP, 2]);
  });
});

describe('a binary batch of gets', () => {
  it('sends every get of the batch on at once and answers in packet order', async () => {
    const rig = deferringRig('binary');
    const packets = Buffer.concat([
      request({ opcode: OP.SET, key: 'local', value: 'L', extras: storeExtras(0, 0), opaque: 1 }),
      request({ opcode: Opcode.GetKQ, key: 'remote-a', opaque: 2 }),
      request({ opcode: Opcode.GetKQ, key: 'local', opaque: 3 }),
      request({ opcode: Opcode.GetKQ, key: 'remote-b', opaque: 4 }),
      request({ opcode: OP.NOOP, opaque: 5 }),
    ]);
    expect(feedLent(rig.protocol, packets)).toBe(FeedResult.Waiting);
    // Both remote gets are under way together; the local one's reply waits behind the first.
    expect(rig.held).toHaveLength(2);
    const setReply = Buffer.concat(rig.output.take());
    expect([setReply.length, setReply[1], setReply.readUInt32BE(12)]).toEqual([24, OP.SET, 1]);
    // The second arrives first: nothing is written until the first has arrived as well.
    rig.held[1]!();
    rig.held[0]!();
    rig.held.length = 0;
    await rig.protocol.waiting;
    expect(rig.protocol.feed(null)).toBe(FeedResult.NeedMore);
    const replies = Buffer.concat(rig.output.take());
    // remote-a and remote-b were never stored: quiet misses answer nothing.
    expect(replies.length).toBe(24 + 4 + 5 + 1 + 24);
    expect([replies[1], replies.readUInt32BE(12)]).toEqual([Opcode.GetKQ, 3]);
    expect([replies[34 + 1], replies.readUInt32BE(34 + 12)]).toEqual([OP.NOOP, 5]);
  });

  it('holds anything but a get behind the replies awaited', async () => {
    const rig = deferringRig('binary');
    const packets = Buffer.concat([
      request({ opcode: Opcode.GetK, key: 'remote-c', opaque: 1 }),
      request({ opcode: OP.SET, key: 'remote-c', value: 'v', extras: storeExtras(0, 0), opaque: 2 }),
      request({ opcode: Opcode.GetK, key: 'remote-c', opaque: 3 }),
    ]);
    expect(feedLent(rig.protocol, packets)).toBe(FeedResult.Waiting);
    expect(rig.held).toHaveLength(1);
    expect(await rig.releaseOne()).toBe(FeedResult.Waiting);
    expect(rig.held).toHaveLength(1);
    expect(await rig.releaseOne()).toBe(FeedResult.Waiting);
    expect(await rig.releaseOne()).toBe(FeedResult.NeedMore);
    const replies = Buffer.concat(rig.output.take());
    const opaques = [];
    for (let at = 0; at < replies.length; at += 24 + replies.readUInt32BE(at + 8)) opaques.push([replies.readUInt16BE(at + 6), replies.readUInt32BE(at + 12)]);
    // The first get ran before the set: not found; the last after it: found.
    expect(opaques).toEqual([[1, 1], [0, 2], [0, 3]]);
  });
});

describe('a waiting command at the very end of a read', () => {
  it('ascii: a storage command whose data block ends the read still answers', async () => {
    const rig = deferringRig('ascii');
    expect(feedLent(rig.protocol, Buffer.from('set remote4 0 0 1\r\n'))).toBe(FeedResult.NeedMore);
    expect(feedLent(rig.protocol, Buffer.from('q\r\n'))).toBe(FeedResult.Waiting);
    expect(await rig.releaseOne()).toBe(FeedResult.NeedMore);
    expect(rig.text()).toBe('STORED\r\n');
  });

  it('binary: a packet whose value ends the read still answers', async () => {
    const rig = deferringRig('binary');
    const packet = request({ opcode: OP.SET, key: 'remote5', value: 'v', extras: storeExtras(0, 0), opaque: 9 });
    expect(feedLent(rig.protocol, packet.subarray(0, 30))).toBe(FeedResult.NeedMore);
    expect(feedLent(rig.protocol, packet.subarray(30))).toBe(FeedResult.Waiting);
    expect(await rig.releaseOne()).toBe(FeedResult.NeedMore);
    expect(rig.output.size).toBe(24);
  });
});
