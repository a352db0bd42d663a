/**
 * What the protocols tell a connection about a request in progress: whether part of one has
 * arrived and the rest has not, and a count of the parts that arrived whole. The command timeout
 * (--command-timeout-ms) is built on these.
 */
import { describe, expect, it } from 'vitest';
import { Executor } from '../src/command/executor.js';
import { AsciiProtocol } from '../src/protocol/ascii/ascii-protocol.js';
import { BinaryProtocol } from '../src/protocol/binary/binary-protocol.js';
import { Opcode } from '../src/protocol/binary/constants.js';
import type { Execute, ProtocolHandler } from '../src/protocol/handler.js';
import { Output } from '../src/protocol/output.js';
import type { Command } from '../src/protocol/types.js';
import { MemoryStore } from '../src/store/memory-store.js';
import { request, storeExtras } from './support/binary-packets.js';
import { feedLent } from './support/feed.js';
import { START_MS } from './support/rig.js';

function protocol(kind: 'ascii' | 'binary', execute?: Execute): ProtocolHandler {
  const store = new MemoryStore({ memoryLimit: 1 << 24, maxItemSize: 1024 });
  const executor = new Executor({ store, version: 'v', now: () => START_MS });
  const run = execute ?? ((command: Command) => executor.execute(command));
  const limits = { maxItemSize: 1024 };
  return kind === 'ascii' ? new AsciiProtocol(run, new Output(), limits) : new BinaryProtocol(run, new Output(), limits);
}

/** Feeds `bytes` one at a time, recording [midRequest, partsReceived] after each. */
function trickle(handler: ProtocolHandler, bytes: Buffer): Array<[boolean, number]> {
  const seen: Array<[boolean, number]> = [];
  for (const byte of bytes) {
    feedLent(handler, Buffer.of(byte));
    seen.push([handler.midRequest, handler.partsReceived]);
  }
  return seen;
}

describe('what the protocols report to the sweep', () => {
  it('ascii: a command line, then its data block, are one part each; between requests nothing is pending', () => {
    const handler = protocol('ascii');
    expect([handler.midRequest, handler.partsReceived]).toEqual([false, 0]);
    const line = trickle(handler, Buffer.from('set k 0 0 3\r\n'));
    // stuck on the line (part 0) until its newline, then on the data block (part 1)
    expect(line.slice(0, -1).every(([mid, parts]) => mid && parts === 0)).toBe(true);
    expect(line.at(-1)).toEqual([true, 1]);
    const data = trickle(handler, Buffer.from('abc\r\n'));
    expect(data.slice(0, -1).every(([mid, parts]) => mid && parts === 1)).toBe(true);
    expect(data.at(-1)).toEqual([false, 2]);
    trickle(handler, Buffer.from('get k\r\n'));
    expect([handler.midRequest, handler.partsReceived]).toEqual([false, 3]);
  });

  it('ascii: the data block of a refused oversized value, discarded as it comes, is a part too', () => {
    const handler = protocol('ascii');
    feedLent(handler, Buffer.from('set k 0 0 2000\r\n'));
    expect([handler.midRequest, handler.partsReceived]).toEqual([true, 1]);
    feedLent(handler, Buffer.alloc(1000, 0x61));
    expect([handler.midRequest, handler.partsReceived]).toEqual([true, 1]);
    feedLent(handler, Buffer.concat([Buffer.alloc(1000, 0x61), Buffer.from('\r\n')]));
    expect([handler.midRequest, handler.partsReceived]).toEqual([false, 2]);
  });

  it('binary: a header, then its body, are one part each', () => {
    const handler = protocol('binary');
    const packet = request({ opcode: Opcode.Set, key: 'k', extras: storeExtras(0, 0), value: 'abc' });
    const seen = trickle(handler, packet);
    expect(seen.slice(0, 23).every(([mid, parts]) => mid && parts === 0)).toBe(true);
    expect(seen.slice(23, -1).every(([mid, parts]) => mid && parts === 1)).toBe(true);
    expect(seen.at(-1)).toEqual([false, 2]);
    feedLent(handler, request({ opcode: Opcode.Noop }));
    expect([handler.midRequest, handler.partsReceived]).toEqual([false, 4]);
  });
});
