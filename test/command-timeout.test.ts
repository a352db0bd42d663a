/**
 * The command timeout (src/server/command-timeout.ts): what the sweep counts as a request stuck
 * midway, in both protocols, and that an idle connection, or one waiting on this daemon, is never
 * closed. Connections are driven with a stand-in socket and an explicit clock: no timers here.
 */
import { describe, expect, it } from 'vitest';
import { Executor } from '../src/command/executor.js';
import { AsciiProtocol } from '../src/protocol/ascii/ascii-protocol.js';
import { BinaryProtocol } from '../src/protocol/binary/binary-protocol.js';
import { Opcode } from '../src/protocol/binary/constants.js';
import type { Execute, ProtocolHandler } from '../src/protocol/handler.js';
import { Output } from '../src/protocol/output.js';
import { type Command, type Reply, Status } from '../src/protocol/types.js';
import { NOT_MID_REQUEST, StallWatch, reclaimAfterMs, sweepIntervalMs } from '../src/server/command-timeout.js';
import type { ClientSocket } from '../src/server/client-socket.js';
import { Connection } from '../src/server/connection.js';
import { ServerCounters } from '../src/server/server-counters.js';
import { MemoryStore } from '../src/store/memory-store.js';
import { request, storeExtras } from './support/binary-packets.js';
import { feedLent } from './support/feed.js';
import { START_MS } from './support/rig.js';

const TIMEOUT = 5000;

describe('sweepIntervalMs and reclaimAfterMs', () => {
  it('sweeps four times per timeout, and at least every 250 ms', () => {
    expect(sweepIntervalMs(5000)).toBe(250);
    expect(sweepIntervalMs(60_000)).toBe(250);
    expect(sweepIntervalMs(1000)).toBe(250);
    expect(sweepIntervalMs(100)).toBe(25);
  });

  it('at the connection limit, a connection stuck a quarter of a second (or the timeout, if shorter) gives its slot away', () => {
    expect(reclaimAfterMs(5000)).toBe(250);
    expect(reclaimAfterMs(100)).toBe(100);
  });
});

describe('StallWatch', () => {
  it('a mark seen unchanged for the timeout is stuck; the clock starts when the sweep first sees it', () => {
    const watch = new StallWatch();
    expect(watch.stuck(3, 1000, TIMEOUT)).toBe(false);
    expect(watch.stuck(3, 2000, TIMEOUT)).toBe(false);
    expect(watch.stuck(3, 5999, TIMEOUT)).toBe(false);
    expect(watch.stuck(3, 6000, TIMEOUT)).toBe(true);
  });

  it('progress (a new mark) starts the clock again', () => {
    const watch = new StallWatch();
    watch.stuck(3, 0, TIMEOUT);
    expect(watch.stuck(4, 4000, TIMEOUT)).toBe(false);
    expect(watch.stuck(4, 8999, TIMEOUT)).toBe(false);
    expect(watch.stuck(4, 9000, TIMEOUT)).toBe(true);
  });

  it('stuckSince: since when the sweeps have seen the same part pending; null once it moved on, or when idle', () => {
    const watch = new StallWatch();
    expect(watch.stuckSince(3)).toBeNull(); // never swept yet
    watch.stuck(3, 1000, TIMEOUT);
    watch.stuck(3, 2000, TIMEOUT);
    expect(watch.stuckSince(3)).toBe(1000);
    expect(watch.stuckSince(4)).toBeNull(); // progress since the last sweep
    expect(watch.stuckSince(NOT_MID_REQUEST)).toBeNull();
    watch.stuck(NOT_MID_REQUEST, 3000, TIMEOUT);
    expect(watch.stuckSince(NOT_MID_REQUEST)).toBeNull();
  });

  it('never for a connection that is not mid-request, however long', () => {
    const watch = new StallWatch();
    for (let now = 0; now <= 10 * TIMEOUT; now += 1000) expect(watch.stuck(NOT_MID_REQUEST, now, TIMEOUT)).toBe(false);
  });

  it('a connection idle in between is a new request: the same mark afterwards starts a new clock', () => {
    // A partial line, the line completes (and its command runs), the connection idles, then a new
    // partial line arrives: the count of parts is the same as during the first partial line.
    const watch = new StallWatch();
    watch.stuck(7, 0, TIMEOUT);
    watch.stuck(NOT_MID_REQUEST, 3000, TIMEOUT);
    expect(watch.stuck(7, 4000, TIMEOUT)).toBe(false);
    expect(watch.stuck(7, 8999, TIMEOUT)).toBe(false);
    expect(watch.stuck(7, 9000, TIMEOUT)).toBe(true);
  });
});

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

/** Enough of a ClientSocket for a Connection: records writes and whether it was destroyed. */
class StandInSocket implements ClientSocket {
  readonly remoteAddress = '127.0.0.1';
  destroyed = false;
  paused = false;
  written: Buffer[] = [];
  writableLength = 0;
  start(): void {}
  pause(): void { this.paused = true; }
  resume(): void { this.paused = false; }
  cork(): void {}
  uncork(): void {}
  write(chunk: Buffer): void { this.written.push(Buffer.from(chunk)); }
  end(): void {}
  destroy(): void { this.destroyed = true; }
}

function connection(execute?: Execute) {
  const socket = new StandInSocket();
  const store = new MemoryStore({ memoryLimit: 1 << 24, maxItemSize: 1024 });
  const executor = new Executor({ store, version: 'v', now: () => START_MS });
  const counters = new ServerCounters();
  const conn = new Connection(socket, {
    execute: execute ?? ((command: Command) => executor.execute(command)),
    limits: { maxItemSize: 1024 },
    counters,
    output: new Output(),
  }, { connectionClosed() {}, connectionFailed() {} });
  return { socket, conn, counters };
}

describe('Connection.closeIfStuck', () => {
  it('closes a connection whose command line has trickled in for the timeout, without a reply', () => {
    const { socket, conn } = connection();
    conn.receive(Buffer.from('s'));
    expect(conn.closeIfStuck(0, TIMEOUT)).toBe(false);
    // a byte a second is not progress: the same line is still incomplete
    for (let second = 1; second < 5; second++) {
      conn.receive(Buffer.from('e'));
      expect(conn.closeIfStuck(second * 1000, TIMEOUT)).toBe(false);
    }
    expect(conn.closeIfStuck(5000, TIMEOUT)).toBe(true);
    expect(socket.destroyed).toBe(true);
    expect(socket.written).toEqual([]);
  });

  it('closes a connection whose value stopped arriving, in either protocol', () => {
    const ascii = connection();
    ascii.conn.receive(Buffer.from('set k 0 0 10\r\nabc'));
    ascii.conn.closeIfStuck(0, TIMEOUT);
    expect(ascii.conn.closeIfStuck(TIMEOUT, TIMEOUT)).toBe(true);
    const binary = connection();
    binary.conn.receive(request({ opcode: Opcode.Set, key: 'k', extras: storeExtras(0, 0), value: 'abcdefghij' }).subarray(0, 30));
    binary.conn.closeIfStuck(0, TIMEOUT);
    expect(binary.conn.closeIfStuck(TIMEOUT, TIMEOUT)).toBe(true);
  });

  it('never closes an idle connection, before its first byte or between requests', () => {
    const fresh = connection();
    const used = connection();
    used.conn.receive(Buffer.from('set k 0 0 1\r\na\r\nget k\r\n'));
    for (let now = 0; now <= 20 * TIMEOUT; now += 1000) {
      expect(fresh.conn.closeIfStuck(now, TIMEOUT)).toBe(false);
      expect(used.conn.closeIfStuck(now, TIMEOUT)).toBe(false);
    }
    expect(Buffer.concat(used.socket.written).toString('latin1')).toBe('STORED\r\nVALUE k 0 1\r\na\r\nEND\r\n');
  });

  it('keeps a client that completes parts of its requests, however long it takes in all', () => {
    const { conn } = connection();
    // Each sweep finds the client on a new part: a line, its data block, the next line, ...
    const parts = ['set k 0 0 3\r\nab', 'c\r\nget', ' k\r\nset j 0 0 2\r\nx', 'y\r\nge'];
    let now = 0;
    for (const part of parts) {
      conn.receive(Buffer.from(part));
      expect(conn.closeIfStuck(now, TIMEOUT)).toBe(false);
      now += TIMEOUT - 1;
      expect(conn.closeIfStuck(now, TIMEOUT)).toBe(false);
    }
  });

  it('does not count the time a reply from another node takes, nor the input held meanwhile', async () => {
    let release: (() => void) | null = null;
    const execute: Execute = (command: Command): Reply | Promise<Reply> => {
      if (command.kind === 'get') return new Promise((resolve) => { release = () => resolve({ kind: 'values', entries: [], missing: command.keys }); });
      return { kind: 'status', status: Status.Stored, cas: 1 };
    };
    const { conn, socket } = connection(execute);
    // the get waits for another node; a partial line that follows is held, not stuck
    conn.receive(Buffer.from('get remote\r\nset k 0'));
    for (let now = 0; now <= 3 * TIMEOUT; now += 1000) expect(conn.closeIfStuck(now, TIMEOUT)).toBe(false);
    release!();
    await new Promise((resolve) => setImmediate(resolve));
    // the reply went out; now the partial line is the client's to finish
    expect(socket.written.length).toBeGreaterThan(0);
    expect(conn.closeIfStuck(4 * TIMEOUT, TIMEOUT)).toBe(false);
    expect(conn.closeIfStuck(5 * TIMEOUT, TIMEOUT)).toBe(true);
  });
});

describe('Connection.stuckSince (the slot it gives away at --max-connections)', () => {
  it('a connection that never sent a byte is silent since it was accepted', () => {
    const before = performance.now();
    const { conn } = connection();
    const since = conn.stuckSince();
    expect(since).not.toBeNull();
    expect(since!).toBeGreaterThanOrEqual(before);
    expect(since!).toBeLessThanOrEqual(performance.now());
  });

  it('mid-request: since the sweep first saw the part pending, and null once the part completes', () => {
    const { conn, socket } = connection();
    conn.receive(Buffer.from('set k 0 0 3\r\nab'));
    expect(conn.stuckSince()).toBeNull(); // no sweep has seen it yet
    conn.closeIfStuck(1000, TIMEOUT);
    conn.closeIfStuck(1250, TIMEOUT);
    expect(conn.stuckSince()).toBe(1000);
    conn.receive(Buffer.from('c\r\n'));
    expect(conn.stuckSince()).toBeNull(); // idle between requests: never given away
    conn.reclaim();
    expect(socket.destroyed).toBe(true);
    expect(socket.written.map(String)).toEqual(['STORED\r\n']); // the reclaim itself says nothing
    expect(conn.stuckSince()).toBeNull();
  });

  it('never while the connection waits on this daemon (a reply from another node)', () => {
    const execute: Execute = (): Promise<Reply> => new Promise(() => undefined);
    const { conn } = connection(execute);
    conn.receive(Buffer.from('get remote\r\nset k 0'));
    conn.closeIfStuck(0, TIMEOUT);
    conn.closeIfStuck(TIMEOUT - 1, TIMEOUT);
    expect(conn.stuckSince()).toBeNull();
  });
});
