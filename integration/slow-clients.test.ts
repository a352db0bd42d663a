/**
 * Slow-loris clients against a real daemon: a thousand connections that each send a request a
 * byte a second, against a smaller --max-connections. Without --command-timeout-ms they would
 * hold every slot for as long as they cared to. With it, each one stuck mid-request is closed
 * after the timeout, counted in command_timeouts; and at the limit a new connection takes the slot
 * of the one stuck the longest (reclaimed_connections), so a normal client is served while the
 * flood goes on, within a fraction of a second rather than the timeout. An idle persistent
 * connection (PHP's pconnect) is never closed, however long it idles or however full the daemon.
 */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { sleep, startDaemon, waitFor, type RunningServer } from './harness.js';
import { RawClient, buildPacket, rawStats, storageExtras } from './raw-client.js';

const LORIS = 1000;
const MAX_CONNECTIONS = 400;
const TIMEOUT_MS = 1000;
const REFUSAL = 'ERROR Too many open connections';

const running: RunningServer[] = [];
const sockets = new Set<net.Socket>();
let timers: NodeJS.Timeout[] = [];
afterEach(async () => {
  for (const timer of timers) clearInterval(timer);
  timers = [];
  for (const socket of sockets) socket.destroy();
  sockets.clear();
  await Promise.all(running.splice(0).map((server) => server.stop()));
});

/** The three ways of being stuck: on a command line, on a value, on a binary header. */
function stuckRequest(i: number): Buffer {
  switch (i % 3) {
    case 0: return Buffer.from(`set slow:${i} 0 0 10\r\n`);
    case 1: return Buffer.concat([Buffer.from(`set slow:${i} 0 0 100000\r\n`), Buffer.alloc(100_000, 0x61)]);
    default: return buildPacket({ opcode: 0x01, key: `slow:${i}`, extras: storageExtras(), value: 'v'.repeat(10) });
  }
}

interface Loris {
  socket: net.Socket;
  /** what it sends, and how much of it went out */
  request: Buffer;
  sent: number;
  accepted: boolean;
  refused: boolean;
  closed: boolean;
  /** a refused client tries again once */
  retried: boolean;
  connectedAt: number;
  closedAt: number;
  /** bytes the daemon sent it, other than the refusal */
  answered: number;
}

/**
 * One slow client: connects, sends the first part of its request at once (a whole command line
 * for the value kind, one byte otherwise), then one byte per tick, for as long as it is open.
 */
function connectLoris(port: number, i: number, all: Loris[]): Promise<Loris> {
  const request = stuckRequest(i);
  const first = i % 3 === 1 ? request.indexOf('\n') + 2 : 1;
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    sockets.add(socket);
    const loris: Loris = { socket, request, sent: 0, accepted: false, refused: false, closed: false, retried: false, connectedAt: 0, closedAt: 0, answered: 0 };
    all.push(loris);
    let received = '';
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('latin1');
      if (received.startsWith(REFUSAL)) loris.refused = true;
      else loris.answered += chunk.length;
    });
    socket.on('error', () => undefined);
    socket.on('close', () => { loris.closed = true; loris.closedAt = performance.now(); sockets.delete(socket); resolve(loris); });
    socket.on('connect', () => {
      loris.accepted = true;
      loris.connectedAt = performance.now();
      socket.write(request.subarray(0, first));
      loris.sent = first;
      resolve(loris);
    });
  });
}

/** Sends every open slow client its next byte (one still connecting sends its first part on connect). */
function trickle(all: Loris[]): void {
  for (const loris of all) {
    if (!loris.accepted || loris.closed || loris.refused || loris.sent >= loris.request.length - 1) continue;
    loris.socket.write(loris.request.subarray(loris.sent, loris.sent + 1));
    loris.sent++;
  }
}

/** Connects and sends `request` until it is answered rather than refused; the time it took. */
async function servedDespite(port: number, request: string, answer: RegExp, boundMs: number): Promise<{ ms: number; reply: string; attempts: number }> {
  const started = performance.now();
  let attempts = 0;
  for (;;) {
    attempts++;
    const client = await RawClient.connect('127.0.0.1', port);
    try {
      const read = await client.request(request, answer, 1000);
      if (read.matched) return { ms: performance.now() - started, reply: read.data.toString('latin1'), attempts };
    } finally {
      client.destroy();
    }
    if (performance.now() - started > boundMs) throw new Error(`not served within ${boundMs} ms (${attempts} attempts)`);
    await sleep(50);
  }
}

describe('slow clients (--command-timeout-ms)', () => {
  it('closes a thousand connections stuck mid-request; a normal client and an idle persistent one are served', async () => {
    const server = await startDaemon(['--max-connections', String(MAX_CONNECTIONS), '--command-timeout-ms', String(TIMEOUT_MS)]);
    running.push(server);
    const port = server.port;

    // PHP's persistent connection: one request, then idle between requests.
    const persistent = await RawClient.connect('127.0.0.1', port);
    expect((await persistent.request('set persistent 0 0 2\r\nok\r\n', 'STORED\r\n')).matched).toBe(true);
    const persistentIdleSince = performance.now();

    // The flood: every client sends its request a byte a second; refused ones try again each
    // second, as a slow-loris tool does to keep the slots it can get.
    const all: Loris[] = [];
    let flooding = true;
    for (let i = 0; i < LORIS; i += 100) {
      await Promise.all(Array.from({ length: 100 }, (_, k) => connectLoris(port, i + k, all)));
    }
    let next = LORIS;
    timers.push(setInterval(() => trickle(all), 1000));
    timers.push(setInterval(() => {
      if (!flooding) return;
      for (const loris of all.filter((l) => l.refused && l.closed && !l.retried)) {
        loris.retried = true;
        void connectLoris(port, next++, all);
      }
    }, 1000));
    await waitFor(() => all.some((loris) => loris.refused), { timeoutMs: 5000, what: 'the flood to fill --max-connections' });

    // A normal client, while the flood goes on: refused while the slow ones hold every slot, then
    // served once the sweep has closed them.
    const normal = await servedDespite(port, 'get persistent\r\n', /END\r\n/, 15_000);
    console.log(`normal client served ${normal.ms.toFixed(0)} ms after the flood filled --max-connections (${normal.attempts} attempts)`);
    expect(normal.reply).toBe('VALUE persistent 0 2\r\nok\r\nEND\r\n');

    // The persistent connection idled longer than the timeout, and is still served.
    await sleep(Math.max(0, 2.5 * TIMEOUT_MS - (performance.now() - persistentIdleSince)));
    const idleMs = performance.now() - persistentIdleSince;
    expect(idleMs).toBeGreaterThan(2 * TIMEOUT_MS);
    const again = await persistent.request('get persistent\r\n', /END\r\n/, 2000);
    expect([again.closed, again.data.toString('latin1')]).toEqual([false, 'VALUE persistent 0 2\r\nok\r\nEND\r\n']);
    console.log(`persistent connection served after idling ${idleMs.toFixed(0)} ms`);

    // The flood stops trying; every slow client the daemon took is closed, unanswered.
    flooding = false;
    await waitFor(() => all.every((loris) => loris.closed), {
      timeoutMs: 10_000, what: () => `every slow client to be closed (${all.filter((l) => !l.closed).length} of ${all.length} open)`,
    });
    const taken = all.filter((loris) => loris.accepted && !loris.refused);
    const refused = all.filter((loris) => loris.refused);
    const held = taken.map((loris) => loris.closedAt - loris.connectedAt).sort((a, b) => a - b);
    const stats = await rawStats({ host: '127.0.0.1', port });
    console.log(`${all.length} slow connections: ${taken.length} taken and closed (${stats.command_timeouts} for the timeout, ${stats.reclaimed_connections} for a newer connection at the limit), `
      + `${refused.length} refused at --max-connections; `
      + `held ${held[0]!.toFixed(0)} / ${held[held.length >> 1]!.toFixed(0)} / ${held.at(-1)!.toFixed(0)} ms (min / median / max) with a ${TIMEOUT_MS} ms timeout`);
    expect(taken.length).toBeGreaterThanOrEqual(MAX_CONNECTIONS - 1);
    expect(taken.filter((loris) => loris.answered > 0)).toEqual([]);
    // no request was completed: each one went out only in part
    expect(taken.filter((loris) => loris.sent >= loris.request.length)).toEqual([]);

    // Each slow client the daemon took was closed by the timeout, or gave its slot to a newer
    // connection at the limit (a retrying slow client, or the normal one).
    expect(Number(stats.command_timeouts) + Number(stats.reclaimed_connections)).toBe(taken.length);
    expect(Number(stats.command_timeouts)).toBeGreaterThan(0);
    expect(Number(stats.rejected_connections)).toBe(refused.length + normal.attempts - 1);
    await waitFor(() => server.logs.some((line) => String(line.msg).startsWith('closed client connections stuck')), {
      timeoutMs: 2000, what: 'the throttled warning',
    });
    persistent.destroy();
  }, 60_000);

  it('at --max-connections a new client takes the slot of the connection stuck the longest: served long before the timeout, idle ones kept', async () => {
    // A timeout far longer than the test: every slot the normal client gets is a reclaimed one.
    const timeoutMs = 60_000;
    const cap = 100;
    const server = await startDaemon(['--max-connections', String(cap), '--command-timeout-ms', String(timeoutMs)]);
    running.push(server);
    const port = server.port;

    // Twenty PHP workers' persistent connections, idle between requests, and one connection that
    // has sent nothing at all yet.
    const persistent: RawClient[] = [];
    for (let i = 0; i < 20; i++) {
      const client = await RawClient.connect('127.0.0.1', port);
      expect((await client.request(`set persistent:${i} 0 0 2\r\nok\r\n`, 'STORED\r\n')).matched).toBe(true);
      persistent.push(client);
    }
    const silent = net.connect({ host: '127.0.0.1', port });
    sockets.add(silent);
    let silentClosed = false;
    silent.on('error', () => undefined);
    silent.on('close', () => { silentClosed = true; });

    // The flood takes every other slot and more; it trickles a byte a second.
    const all: Loris[] = [];
    await Promise.all(Array.from({ length: cap }, (_, i) => connectLoris(port, i, all)));
    timers.push(setInterval(() => trickle(all), 1000));
    await waitFor(() => all.some((loris) => loris.refused), { timeoutMs: 5000, what: 'the flood to fill --max-connections' });

    // Normal clients, one after another, each keeping its connection (so each needs a slot of its
    // own): each is served, at worst after refusals while the flood's connections are younger
    // than a quarter of a second, and none thanks to a timeout.
    const served: string[] = [];
    let refusals = 0;
    const normals: RawClient[] = [];
    for (let i = 0; i < 6; i++) {
      const started = performance.now();
      for (;;) {
        const client = await RawClient.connect('127.0.0.1', port);
        const read = await client.request(i < 5 ? `get persistent:${i}\r\n` : 'stats\r\n', /END\r\n|ERROR Too many open connections\r\n/, 2000);
        const reply = read.data.toString('latin1');
        if (reply.startsWith('ERROR Too many')) {
          refusals++;
          client.destroy();
          expect(performance.now() - started).toBeLessThan(10_000);
          await sleep(50);
          continue;
        }
        normals.push(client);
        served.push((performance.now() - started).toFixed(0));
        if (i < 5) {
          expect(reply).toBe(`VALUE persistent:${i} 0 2\r\nok\r\nEND\r\n`);
        } else {
          // the sixth asks for the statistics, over its own reclaimed slot
          const stats = Object.fromEntries([...reply.matchAll(/^STAT (\S+) (\S+)\r$/gm)].map((m) => [m[1]!, m[2]!]));
          expect(Number(stats.command_timeouts)).toBe(0);
          expect(Number(stats.reclaimed_connections)).toBe(6);
          expect(Number(stats.rejected_connections)).toBe(all.filter((loris) => loris.refused).length + refusals);
        }
        break;
      }
    }
    console.log(`normal clients at the limit served after ${served.join(' / ')} ms (--command-timeout-ms ${timeoutMs}), ${refusals} refusals before that`);
    for (const client of normals) client.destroy();
    // The oldest stuck connection went first: the silent one, accepted before the flood.
    expect(silentClosed).toBe(true);
    // Idle persistent connections keep their slots, however many are reclaimed around them.
    for (const [i, client] of persistent.entries()) {
      const again = await client.request(`get persistent:${i}\r\n`, /END\r\n/, 2000);
      expect([again.closed, again.data.toString('latin1')]).toEqual([false, `VALUE persistent:${i} 0 2\r\nok\r\nEND\r\n`]);
      client.destroy();
    }
    // Every reclaimed slow client was closed unanswered.
    expect(all.filter((loris) => loris.answered > 0)).toEqual([]);
    await waitFor(() => server.logs.some((line) => String(line.msg).startsWith('closed client connections stuck in the middle of a request to admit new ones')), {
      timeoutMs: 2000, what: 'the throttled warning',
    });
  }, 60_000);
});
