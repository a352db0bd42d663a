/**
 * Bad input battery. Every case runs on its own connection and must get memcached's own reply
 * (memcached 1.6.18, checked by hand and by running this file with BAD_INPUT_TARGET=memcached)
 * or a closed connection, where said so. After every case two long-lived "witness" connections
 * (one ascii, one binary, opened before the battery, each with its own key) must still get their
 * own data back, the server process must still be alive, and no case connection may ever have
 * received a witness's value.
 *
 * Target: our daemon by default; `BAD_INPUT_TARGET=memcached npx vitest run integration/bad-input.test.ts`
 * runs the very same assertions against the real memcached (to validate the expectations).
 */
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { pollUntil, startDaemon, startMemcached, type RunningServer } from './harness.js';
import {
  RawClient, Opcode, Status, buildPacket, counterExtras, describePacket, rawStats, show, storageExtras,
  type BinaryPacket,
} from './raw-client.js';

const TARGET = process.env.BAD_INPUT_TARGET === 'memcached' ? 'memcached' : 'daemon';
/**
 * Where memcached 1.6.18 and our daemon legitimately differ (or memcached's behaviour is loose), the
 * memcached target accepts the documented alternatives, but the daemon target asserts exactly what
 * the daemon does.
 */
const DAEMON = TARGET === 'daemon';
const MAX_ITEM = 1024 * 1024;
const MiB = 1024 * 1024;

const rand = (n = 6) => randomBytes(n).toString('hex');
const W_KEY = `witness-${rand()}`;
const W_VAL = `W-${rand(24)}-ascii-witness-value`;
const W_FLAGS = 77;
const B_KEY = `memc.sess.key.bwitness${rand()}`;
const B_VAL = `B-${rand(24)}-binary-witness-value`;
const B_FLAGS = 0xcafe;
const S_KEY = `sentinel-${rand()}`;
const S_VAL = `S-${rand(8)}`;
/** what `get S_KEY` answers: appended to a case, it proves the connection is still in sync */
const SENTINEL_GET = `get ${S_KEY}\r\n`;
const SENTINEL_REPLY = `VALUE ${S_KEY} 0 ${S_VAL.length}\r\n${S_VAL}\r\nEND\r\n`;

const STORE_LINE = 'SERVER_ERROR object too large for cache\r\n';
/** The message our daemon sends as the value of a binary error reply (memcached's wording). */
const STATUS_TEXT: Record<number, string> = {
  [Status.E2BIG]: 'Too large.',
  [Status.EINVAL]: 'Invalid arguments',
  [Status.UNKNOWN_COMMAND]: 'Unknown command',
};
const BAD_FORMAT = 'CLIENT_ERROR bad command line format\r\n';

let server: RunningServer;
let witness: RawClient;
let bwitness: RawClient;
let opaqueSeq = 0x01020300;
const nextOpaque = () => ++opaqueSeq;

interface Tracked { client: RawClient; leaked: boolean; label: string }
let caseConns: Tracked[] = [];

/** Opens a case connection; watches everything it receives for a witness's value. */
async function conn(label = 'case'): Promise<RawClient> {
  const client = await RawClient.connect(server.host, server.port);
  const t: Tracked = { client, leaked: false, label };
  let tail = '';
  client.socket.on('data', (chunk: Buffer) => {
    const s = tail + chunk.toString('latin1');
    if (s.includes(W_VAL) || s.includes(B_VAL)) t.leaked = true;
    tail = s.slice(-Math.max(W_VAL.length, B_VAL.length));
  });
  caseConns.push(t);
  return client;
}

/** Sends `input` then the sentinel get; returns what came before the sentinel reply. */
async function withSentinel(c: RawClient, input: string | Buffer, timeoutMs = 1500): Promise<{ reply: string; synced: boolean; closed: boolean }> {
  await c.send(input);
  await c.send(SENTINEL_GET);
  const r = await c.readUntil(SENTINEL_REPLY, timeoutMs);
  const all = r.data.toString('latin1');
  return { reply: r.matched ? all.slice(0, -SENTINEL_REPLY.length) : all, synced: r.matched, closed: r.closed };
}

/** Asserts the exact reply to `input` on a fresh connection, and that the connection stays in sync. */
async function expectAscii(input: string | Buffer, expected: string): Promise<void> {
  const c = await conn();
  const r = await withSentinel(c, input);
  expect({ reply: show(r.reply), synced: r.synced }).toEqual({ reply: show(expected), synced: true });
}

function bin(spec: Parameters<typeof buildPacket>[0]): Buffer {
  return buildPacket({ opaque: nextOpaque(), ...spec });
}

function opaqueOf(packet: Buffer): number {
  return packet.readUInt32BE(12);
}

/** Sum of VmRSS (bytes) of a process and all its descendants (bin/ may be a wrapper). */
function treeRss(rootPid: number): number {
  const children = new Map<number, number[]>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(d));
      children.set(ppid, list);
    } catch { /* process went away */ }
  }
  let total = 0;
  const todo = [rootPid];
  while (todo.length) {
    const pid = todo.pop()!;
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (m) total += Number(m[1]) * 1024;
    } catch { /* gone */ }
    todo.push(...(children.get(pid) ?? []));
  }
  return total;
}

function serverRss(): number {
  const pid = server.process.pid;
  if (!pid) throw new Error('server has no pid');
  return treeRss(pid);
}

/**
 * A `stats` figure, over a connection of its own: the server counts that connection in
 * curr_connections and its "stats\r\n" (7 bytes) in bytes_read, as it does every one of these.
 */
async function stat(name: string): Promise<number> {
  return Number((await rawStats(server))[name]);
}

/**
 * Waits until the server has read `n` bytes more than it had when stat('bytes_read') said
 * `before` (or `stop()` holds), at most `timeoutMs`; then the case goes on, as it did after a
 * fixed pause: so that input still in the socket buffers has reached the server.
 */
async function untilServerRead(before: number, n: number, opts: { timeoutMs?: number; stop?: () => boolean } = {}): Promise<void> {
  let statRequests = 0;
  await pollUntil(async () => {
    if (opts.stop?.()) return true;
    statRequests++;
    return (await stat('bytes_read')) - before - 7 * statRequests >= n;
  }, { timeoutMs: opts.timeoutMs ?? 5000 });
}

/**
 * Waits until the server's open connections are down to `count` (a stat('curr_connections')
 * figure) again, at most 5 s: it has seen the case's dropped connections go.
 */
async function untilConnections(count: number): Promise<void> {
  await pollUntil(async () => (await stat('curr_connections')) <= count, { timeoutMs: 5000 });
}

async function checkWitnesses(timeoutMs = 3000): Promise<void> {
  const expected = `VALUE ${W_KEY} ${W_FLAGS} ${W_VAL.length}\r\n${W_VAL}\r\nEND\r\n`;
  await witness.send(`get ${W_KEY}\r\n`);
  const r = await witness.readUntil('END\r\n', timeoutMs);
  expect({ ascii: show(r.data), closed: r.closed }, 'ascii witness').toEqual({ ascii: show(expected), closed: false });

  const req = bin({ opcode: Opcode.GET, key: B_KEY });
  await bwitness.send(req);
  const p = await bwitness.readPacket(timeoutMs);
  expect(p, `binary witness got nothing (closed=${bwitness.closed}, buffered ${show(bwitness.buffered)})`).not.toBeNull();
  expect({
    status: p!.status, opaque: p!.opaque, flags: p!.extras.length === 4 ? p!.extras.readUInt32BE(0) : -1, value: p!.value.toString('latin1'),
  }, describePacket(p!)).toEqual({ status: Status.SUCCESS, opaque: opaqueOf(req), flags: B_FLAGS, value: B_VAL });
}

/** The packets, one line, for assertion messages. */
function summarize(packets: BinaryPacket[]): string {
  return packets.map(describePacket).join(' ');
}

beforeAll(async () => {
  server = TARGET === 'memcached'
    ? await startMemcached(['-I', '1m'])
    : await startDaemon(['--max-item-size', String(MAX_ITEM)]);

  witness = await RawClient.connect(server.host, server.port);
  const r1 = await witness.request(`set ${W_KEY} ${W_FLAGS} 0 ${W_VAL.length}\r\n${W_VAL}\r\n`, 'STORED\r\n');
  expect(show(r1.data)).toBe(show('STORED\r\n'));
  const r2 = await witness.request(`set ${S_KEY} 0 0 ${S_VAL.length}\r\n${S_VAL}\r\n`, 'STORED\r\n');
  expect(show(r2.data)).toBe(show('STORED\r\n'));

  bwitness = await RawClient.connect(server.host, server.port);
  await bwitness.send(bin({ opcode: Opcode.SET, key: B_KEY, extras: storageExtras(B_FLAGS, 0), value: B_VAL }));
  const p = await bwitness.readPacket();
  expect(p?.status).toBe(Status.SUCCESS);
  await checkWitnesses();
});

afterEach(async () => {
  const leaked = caseConns.filter((t) => t.leaked).map((t) => t.label);
  for (const t of caseConns) t.client.destroy();
  caseConns = [];
  expect(server.process.exitCode, 'server exited').toBeNull();
  expect(server.process.signalCode, 'server was killed').toBeNull();
  expect(leaked, 'a case connection received a witness value').toEqual([]);
  await checkWitnesses();
});

afterAll(async () => {
  witness?.destroy();
  bwitness?.destroy();
  await server?.stop();
});

describe(`bad input (${TARGET})`, () => {
  // ------------------------------------------------------------------------------------------
  // ascii
  // ------------------------------------------------------------------------------------------
  describe('ascii', () => {
    it('unknown command -> ERROR', async () => {
      await expectAscii('bogus\r\n', 'ERROR\r\n');
      await expectAscii('bogus with args 1 2 3\r\n', 'ERROR\r\n');
    });

    it('empty line, bare \\n, blank line -> ERROR', async () => {
      await expectAscii('\r\n', 'ERROR\r\n');
      await expectAscii('\n', 'ERROR\r\n');
      await expectAscii('   \r\n', 'ERROR\r\n');
    });

    it('key of 251 bytes -> CLIENT_ERROR bad command line format (set and get); 250 is fine', async () => {
      const k251 = 'k'.repeat(251);
      // memcached does not swallow the data block of a rejected set: "x" then runs as a command (ERROR).
      await expectAscii(`set ${k251} 0 0 1\r\nx\r\n`, `${BAD_FORMAT}ERROR\r\n`);
      await expectAscii(`get ${k251}\r\n`, BAD_FORMAT);
      await expectAscii(`get a ${k251} b\r\n`, BAD_FORMAT);
      const k250 = `k250-${rand()}`.padEnd(250, 'k');
      await expectAscii(`set ${k250} 0 0 1\r\nx\r\nget ${k250}\r\n`, `STORED\r\nVALUE ${k250} 0 1\r\nx\r\nEND\r\n`);
    });

    // The issue lists "key with control characters" next to the CLIENT_ERROR cases without a reply of
    // its own. memcached 1.6.18 splits ascii lines on spaces only, so \x01, ESC, DEL and TAB are plain key
    // bytes there (STORED); protocol.txt says keys must not contain control characters, so our daemon
    // rejects the line with `CLIENT_ERROR bad command line format` and does not swallow the data block
    // (the data line then -> ERROR, as for any bad command line). The memcached target accepts either;
    // the daemon target only the rejection. Either way the key must never be confused with another one,
    // and the connection must stay in sync.
    async function expectControlKey(base: string, key: string): Promise<void> {
      const c = await conn();
      const r = await withSentinel(c, `set ${key} 0 0 3\r\nabc\r\nget ${key}\r\nget ${base}\r\n`);
      const stored = `STORED\r\nVALUE ${key} 0 3\r\nabc\r\nEND\r\nEND\r\n`;
      const rejected = `${BAD_FORMAT}ERROR\r\n${BAD_FORMAT}END\r\n`;
      const expected = DAEMON ? show(rejected) : expect.toBeOneOf([show(stored), show(rejected)]);
      expect({ reply: show(r.reply), synced: r.synced }).toEqual({ reply: expected, synced: true });
    }

    it('key with control characters: stored as-is (memcached) or rejected (daemon), never confused with another key', async () => {
      const base = `ctl${rand()}k`;
      await expectControlKey(base, `${base.slice(0, -1)}\x01\x1b\x7fk`);
      await expectControlKey(base, `${base}\x7f`);
    });

    it('key with a TAB: one key (memcached) or rejected (daemon), never split', async () => {
      const base = `tab${rand()}`;
      await expectControlKey(base, `${base}\tk`);
    });

    it('NUL inside a key never reaches the key before the NUL (the witness)', async () => {
      // memcached (C strings) sees "set <witness>" -> ERROR, and "evil" -> ERROR. A server that keeps
      // the whole key (STORED under "<witness>\0evil") or rejects it is fine too (memcached target);
      // our daemon rejects the key (NUL is a control character) and then runs "evil" (ERROR).
      // Overwriting the witness is never fine (afterEach checks the witness).
      const c = await conn();
      const r = await withSentinel(c, `set ${W_KEY}\x00evil 0 0 4\r\nevil\r\n`);
      expect(r.synced, show(r.reply)).toBe(true);
      if (DAEMON) expect(show(r.reply)).toBe(show(`${BAD_FORMAT}ERROR\r\n`));
      else expect([show('ERROR\r\nERROR\r\n'), show('STORED\r\n'), show(`${BAD_FORMAT}ERROR\r\n`)]).toContain(show(r.reply));
    });

    it('wrong number of tokens -> ERROR (memcached)', async () => {
      await expectAscii('set a b\r\n', 'ERROR\r\n');
      await expectAscii('set a 0 0\r\n', 'ERROR\r\n');
      await expectAscii('set a 0 0 1 noreply extra\r\n', 'ERROR\r\n');
      await expectAscii('set a 0 0 1 2 3 4\r\n', 'ERROR\r\n');
      await expectAscii('get\r\n', 'ERROR\r\n');
      await expectAscii('get \r\n', 'ERROR\r\n');
      await expectAscii('incr\r\n', 'ERROR\r\n');
      await expectAscii('incr a\r\n', 'ERROR\r\n');
      // memcached's own wording for delete with too many tokens
      await expectAscii('delete a b c\r\n', 'CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n');
    });

    it('non-numeric flags / exptime / length -> CLIENT_ERROR bad command line format', async () => {
      // memcached does not swallow the data block after a bad command line: "x" -> ERROR.
      await expectAscii('set nn 12x 0 1\r\nx\r\n', `${BAD_FORMAT}ERROR\r\n`);
      await expectAscii('set nn 0 soon 1\r\nx\r\n', `${BAD_FORMAT}ERROR\r\n`);
      await expectAscii('set nn 0 0 one\r\nx\r\n', `${BAD_FORMAT}ERROR\r\n`);
      await expectAscii('set nn -1 0 1\r\nx\r\n', `${BAD_FORMAT}ERROR\r\n`);
    });

    it('length -1 and 2^32-1 -> CLIENT_ERROR bad command line format (nothing swallowed)', async () => {
      await expectAscii('set len 0 0 -1\r\nx\r\n', `${BAD_FORMAT}ERROR\r\n`);
      await expectAscii('set len 0 0 4294967295\r\nx\r\n', `${BAD_FORMAT}ERROR\r\n`);
      // (not tested: memcached 1.6.18 truncates 4294967296 to a length of 0 and then reports a bad data chunk)
    });

    it('length 2^31-1: memcached 1.6.18 says bad command line format; the issue says too large + swallow', async () => {
      // DISCREPANCY: the issue states `SERVER_ERROR object too large for cache` and a swallow of 2^31-1
      // bytes, but memcached 1.6.18 rejects any length > INT_MAX-2 (2147483645) with
      // `CLIENT_ERROR bad command line format` and swallows nothing. Both are accepted for the memcached
      // target; our daemon does as memcached 1.6.18 and that alone is accepted from it. The
      // too-large-and-swallow path is checked with 2147483645 in the next case.
      const c = await conn();
      const r = await withSentinel(c, 'set huge31 0 0 2147483647\r\n', 700);
      if (DAEMON) {
        expect({ reply: show(r.reply), synced: r.synced, closed: r.closed }).toEqual({ reply: show(BAD_FORMAT), synced: true, closed: false });
      } else if (r.synced) {
        expect(show(r.reply)).toBe(show(BAD_FORMAT));
      } else {
        // swallowing: the sentinel get became value bytes; at most the too-large line came back
        expect({ closed: r.closed, reply: show(r.reply) }).toEqual({ closed: false, reply: expect.toBeOneOf([show(''), show(STORE_LINE)]) });
        await c.stream(4 * MiB, () => Buffer.from(`get ${W_KEY}\r\n`.repeat(4096), 'latin1'));
        const more = await c.readFor(300);
        expect({ closed: more.closed, reply: show(r.reply + more.data.toString('latin1')) })
          .toEqual({ closed: false, reply: expect.toBeOneOf([show(''), show(STORE_LINE)]) });
      }
    });

    it('length 2147483645 (largest memcached accepts) -> too large, swallowed without buffering', async () => {
      const c = await conn();
      const before = serverRss();
      const readBefore = await stat('bytes_read');
      const command = 'set huge 0 0 2147483645\r\n';
      await c.send(command);
      // The "value" is command lines: if the server parsed them instead of discarding, we would see replies
      // (and the witness value: a leak).
      const piece = Buffer.from(`get ${W_KEY}\r\n`.repeat(Math.floor(MiB / (W_KEY.length + 6))), 'latin1');
      const total = 256 * MiB;
      const sent = await c.stream(total, () => piece, 20000);
      // RSS once the server has read everything sent (some was still in the socket buffers).
      await untilServerRead(readBefore, command.length + sent);
      const after = serverRss();
      const got = await c.readFor(200);
      expect(sent, 'the server stopped reading').toBe(total);
      // memcached sends the SERVER_ERROR line only once the whole block was swallowed; earlier is fine too.
      // Our daemon answers as soon as it has the command line, so the line must have come by now.
      const expectedReply = DAEMON ? show(STORE_LINE) : expect.toBeOneOf([show(''), show(STORE_LINE)]);
      expect({ closed: got.closed, reply: show(got.data) }).toEqual({ closed: false, reply: expectedReply });
      expect(after - before, `RSS grew ${((after - before) / MiB).toFixed(1)} MiB while swallowing ${total / MiB} MiB`).toBeLessThan(96 * MiB);
    });

    it('value bigger than --max-item-size -> SERVER_ERROR object too large for cache, block discarded, old value removed', async () => {
      const key = `big-${rand()}`;
      const c = await conn();
      const r0 = await c.request(`set ${key} 0 0 3\r\nold\r\n`, '\r\n');
      expect(show(r0.data)).toBe(show('STORED\r\n'));
      // the too-large value is made of command lines: they must be discarded, not run
      const size = MAX_ITEM + MAX_ITEM / 2;
      const line = `get ${W_KEY}\r\n`;
      const value = line.repeat(Math.floor(size / line.length)).padEnd(size, 'x');
      const r = await withSentinel(c, `set ${key} 0 0 ${size}\r\n${value}\r\nget ${key}\r\n`, 5000);
      expect({ reply: show(r.reply), synced: r.synced }).toEqual({ reply: show(`${STORE_LINE}END\r\n`), synced: true });
      // a big but allowed value still works (the limit is not absurdly low)
      const ok = 'v'.repeat(512 * 1024);
      const r2 = await withSentinel(c, `set ${key} 0 0 ${ok.length}\r\n${ok}\r\nget ${key}\r\n`, 5000);
      expect({ reply: show(r2.reply, 80), synced: r2.synced })
        .toEqual({ reply: show(`STORED\r\nVALUE ${key} 0 ${ok.length}\r\n${ok}\r\nEND\r\n`, 80), synced: true });
      expect(r2.reply.length).toBe(`STORED\r\nVALUE ${key} 0 ${ok.length}\r\n${ok}\r\nEND\r\n`.length);
    });

    it('data block not ending in \\r\\n -> CLIENT_ERROR bad data chunk (old value kept, like memcached)', async () => {
      const key = `chunk-${rand()}`;
      // memcached reads exactly <length>+2 bytes, rejects them, and goes on with what follows
      // (here "\n" -> ERROR); the old value stays.
      await expectAscii(`set ${key} 0 0 1\r\nO\r\nset ${key} 0 0 2\r\nxyz\r\nget ${key}\r\n`,
        `STORED\r\nCLIENT_ERROR bad data chunk\r\nERROR\r\nVALUE ${key} 0 1\r\nO\r\nEND\r\n`);
      await expectAscii(`set ${key} 0 0 2\r\nxyzw`, 'CLIENT_ERROR bad data chunk\r\n');
      await expectAscii(`set ${key} 0 0 2\r\nxy\n\r\n`, 'CLIENT_ERROR bad data chunk\r\nERROR\r\n');
    });

    it('a line longer than 2048 bytes without a newline -> connection closed', async () => {
      for (const junk of ['x'.repeat(4096), `set ${'k'.repeat(5000)}`]) {
        const c = await conn();
        await c.send(junk);
        const r = await c.readUntilClosed(3000);
        // memcached closes without a word; an error line before the close would be acceptable too
        // (memcached target). Our daemon closes without a word.
        if (DAEMON) {
          expect({ closed: r.closed, reply: show(r.data) }).toEqual({ closed: true, reply: show('') });
        } else {
          expect({ closed: r.closed, ok: /^((CLIENT|SERVER)_ERROR [^\r\n]*\r\n)?$/.test(r.data.toString('latin1')) }, show(r.data))
            .toEqual({ closed: true, ok: true });
        }
      }
      // and a never-ending line is not buffered forever
      const c = await conn();
      const sent = await c.stream(64 * MiB, () => Buffer.alloc(MiB, 'y'), 5000);
      const r = await c.readUntilClosed(3000);
      expect({ closed: r.closed, sentLessThanAll: sent < 64 * MiB || r.closed }).toEqual({ closed: true, sentLessThanAll: true });
      // our daemon closes without a word here too (it only half-closes, then discards what still comes,
      // so how much the client gets to send before it sees the FIN depends on timing)
      if (DAEMON) expect(show(r.data), `sent ${sent} bytes`).toBe(show(''));
    });

    it('an HTTP request -> closed without a reply (memcached, daemon); ERROR lines accepted from memcached', async () => {
      const c = await conn();
      await c.send('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
      const three = 'ERROR\r\nERROR\r\nERROR\r\n';
      const r = await c.readUntil(three, 1500);
      const extra = r.closed ? Buffer.alloc(0) : (await c.readFor(100)).data;
      const text = r.data.toString('latin1') + extra.toString('latin1');
      // memcached 1.6.18 recognises "... HTTP/1.x" request lines and closes silently; so does our daemon,
      // and from the daemon nothing else is accepted.
      if (DAEMON) {
        expect({ closed: r.closed, reply: show(text) }).toEqual({ closed: true, reply: show('') });
      } else {
        const ok = (r.closed && /^(ERROR\r\n){0,3}$/.test(text)) || text === 'ERROR\r\nERROR\r\nERROR\r\n';
        expect({ ok, closed: r.closed }, show(text)).toMatchObject({ ok: true });
      }
    });

    it('incr/decr with a non-numeric delta, or on a non-numeric value -> CLIENT_ERROR', async () => {
      const num = `num-${rand()}`;
      const word = `word-${rand()}`;
      await expectAscii(`set ${num} 0 0 2\r\n10\r\nincr ${num} x\r\nincr ${num} -1\r\ndecr ${num} 1.5\r\nincr ${num} 18446744073709551616\r\nget ${num}\r\n`,
        `STORED\r\n${'CLIENT_ERROR invalid numeric delta argument\r\n'.repeat(4)}VALUE ${num} 0 2\r\n10\r\nEND\r\n`);
      await expectAscii(`set ${word} 0 0 3\r\nabc\r\nincr ${word} 1\r\ndecr ${word} 1\r\nget ${word}\r\n`,
        `STORED\r\n${'CLIENT_ERROR cannot increment or decrement non-numeric value\r\n'.repeat(2)}VALUE ${word} 0 3\r\nabc\r\nEND\r\n`);
    });

    it('binary garbage after an ascii start -> ERROR per line', async () => {
      const miss = `miss-${rand()}`;
      await expectAscii(`get ${miss}\r\n\x80\x01\x00\x00\xff\xfe\x00\x01\x02\r\n`, 'END\r\nERROR\r\n');
      await expectAscii(`get ${miss}\r\n\xff\xfe\xfd\x00\x01\r\n`, 'END\r\nERROR\r\n');
      // a whole binary packet (no 0x0a byte inside) after an ascii command is just one bad line
      const pkt = buildPacket({ opcode: Opcode.GET, key: 'k', opaque: 0x01020304 });
      expect(pkt.includes(0x0a)).toBe(false);
      await expectAscii(Buffer.concat([Buffer.from(`get ${miss}\r\n`), pkt, Buffer.from('\r\n')]), 'END\r\nERROR\r\n');
    });

    it('client disconnects in the middle of a value: nothing stored, old value kept', async () => {
      const key = `mid-${rand()}`;
      const c = await conn();
      expect(show((await c.request(`set ${key} 0 0 3\r\nold\r\n`, '\r\n')).data)).toBe(show('STORED\r\n'));
      // The half value reaches the server before the close does, and the get waits until the
      // server has seen the connection go.
      const open = await stat('curr_connections');
      const d = await conn();
      const halfX = `set ${key} 0 0 100\r\n${'x'.repeat(50)}`;
      let readBefore = await stat('bytes_read');
      await d.send(halfX);
      await untilServerRead(readBefore, halfX.length);
      d.destroy();
      await untilConnections(open);
      expect(show((await c.request(`get ${key}\r\n`, 'END\r\n')).data)).toBe(show(`VALUE ${key} 0 3\r\nold\r\nEND\r\n`));
      // and with a RST instead of a FIN
      const e = await conn();
      const halfY = `set ${key} 0 0 100\r\n${'y'.repeat(50)}`;
      readBefore = await stat('bytes_read');
      await e.send(halfY);
      await untilServerRead(readBefore, halfY.length);
      e.reset();
      await untilConnections(open);
      expect(show((await c.request(`get ${key}\r\n`, 'END\r\n')).data)).toBe(show(`VALUE ${key} 0 3\r\nold\r\nEND\r\n`));
    });
  });

  // ------------------------------------------------------------------------------------------
  // binary
  // ------------------------------------------------------------------------------------------
  describe('binary', () => {
    /** Sends packets, reads up to `count` replies, then reports whether the server closed. */
    async function binExchange(packets: Buffer[], count: number, timeoutMs = 1500): Promise<{ replies: BinaryPacket[]; closed: boolean; rest: Buffer }> {
      const c = await conn('binary');
      await c.send(Buffer.concat(packets));
      const replies = await c.readPackets(count, timeoutMs);
      // give a closing server a moment to close
      if (!c.closed) await c.readFor(150);
      return { replies, closed: c.closed, rest: c.buffered };
    }

    /**
     * `status` came back for `req` and then the connection is either closed or still in sync (NOOP works).
     * The daemon must close: one reply (with the status message as its value), nothing else, closed.
     */
    async function expectStatusThenClosedOrSynced(req: Buffer, status: number): Promise<void> {
      const noop = bin({ opcode: Opcode.NOOP });
      const c = await conn('binary');
      await c.send(Buffer.concat([req, noop]));
      const replies = await c.readPackets(2, 1500);
      if (!c.closed) await c.readFor(150);
      expect(replies.length, `no reply (closed=${c.closed})`).toBeGreaterThanOrEqual(1);
      expect({ magic: replies[0].magic, opcode: replies[0].opcode, status: replies[0].status, opaque: replies[0].opaque }, summarize(replies))
        .toEqual({ magic: 0x81, opcode: req[1], status, opaque: opaqueOf(req) });
      if (DAEMON) {
        expect({ closed: c.closed, replies: replies.length, value: replies[0].value.toString('latin1'), rest: show(c.buffered) }, summarize(replies))
          .toEqual({ closed: true, replies: 1, value: STATUS_TEXT[status], rest: show('') });
        return;
      }
      // memcached closes the connection after this error; staying open and answering the NOOP is fine too.
      if (!c.closed) {
        expect(replies.length, summarize(replies)).toBe(2);
        expect({ opcode: replies[1].opcode, status: replies[1].status, opaque: replies[1].opaque })
          .toEqual({ opcode: Opcode.NOOP, status: Status.SUCCESS, opaque: opaqueOf(noop) });
      } else {
        expect(replies.length, summarize(replies)).toBe(1);
      }
    }

    it('unknown opcode -> status 0x81, opcode and opaque echoed', async () => {
      const u1 = bin({ opcode: 0x50 });
      const u2 = bin({ opcode: 0xee, value: 'vvv' });
      const noop = bin({ opcode: Opcode.NOOP });
      // memcached skips the body of an unknown command (and flushes its reply with the next one)
      const { replies, closed } = await binExchange([u1, u2, noop], 3);
      expect({
        closed,
        replies: replies.map((p) => ({ magic: p.magic, opcode: p.opcode, status: p.status, opaque: p.opaque })),
      }, summarize(replies)).toEqual({
        closed: false,
        replies: [
          { magic: 0x81, opcode: 0x50, status: Status.UNKNOWN_COMMAND, opaque: opaqueOf(u1) },
          { magic: 0x81, opcode: 0xee, status: Status.UNKNOWN_COMMAND, opaque: opaqueOf(u2) },
          { magic: 0x81, opcode: Opcode.NOOP, status: Status.SUCCESS, opaque: opaqueOf(noop) },
        ],
      });
    });

    it('unknown opcode with a key -> status 0x81, then closed (memcached) or in sync (daemon)', async () => {
      // memcached 1.6.18 bug: for an unknown opcode it reads key+extras and then skips the whole body
      // again, so it eats keylen+extlen bytes of the next packet, loses framing and closes. We accept
      // that (closed), or a server that skips exactly bodylen and answers the following NOOPs; the
      // daemon must do the latter.
      const u = bin({ opcode: 0xee, key: 'k', value: 'vvv' });
      const noops = [1, 2, 3].map(() => bin({ opcode: Opcode.NOOP }));
      // (memcached even closes before its 0x81 reply is flushed: closed, nothing received)
      const { replies, closed, rest } = await binExchange([u, ...noops], 4);
      const got = replies.map((p) => [p.opcode, p.status, p.opaque]);
      const unknown = [0xee, Status.UNKNOWN_COMMAND, opaqueOf(u)];
      if (DAEMON) {
        expect({ closed, got, value: replies[0]?.value.toString('latin1'), rest: show(rest) }, summarize(replies)).toEqual({
          closed: false,
          got: [unknown, ...noops.map((n) => [Opcode.NOOP, Status.SUCCESS, opaqueOf(n)])],
          value: STATUS_TEXT[Status.UNKNOWN_COMMAND],
          rest: show(''),
        });
      } else if (!closed) {
        expect(got, summarize(replies)).toEqual([unknown, ...noops.map((n) => [Opcode.NOOP, Status.SUCCESS, opaqueOf(n)])]);
      } else if (got.length > 0) {
        expect(got[0], summarize(replies)).toEqual(unknown);
        expect(got.slice(1).filter((g) => g[0] !== Opcode.NOOP || g[1] !== Status.SUCCESS), summarize(replies)).toEqual([]);
      }
    });

    it.runIf(DAEMON)('unknown opcode with extras (and key, value) -> status 0x81, whole body skipped, in sync (daemon)', async () => {
      // memcached 1.6.18 loses framing here (see above); our daemon skips exactly bodylen bytes.
      for (const spec of [
        { extras: Buffer.from('EXTR'), key: 'k', value: 'vvv' },
        { extras: Buffer.from('EXTRAS..'), value: 'v' },
        { extras: Buffer.from('E'), key: 'kk' },
      ]) {
        const u = bin({ opcode: 0xee, ...spec });
        const noops = [1, 2, 3].map(() => bin({ opcode: Opcode.NOOP }));
        const { replies, closed, rest } = await binExchange([u, ...noops], 4);
        expect({
          closed,
          got: replies.map((p) => [p.opcode, p.status, p.opaque]),
          value: replies[0]?.value.toString('latin1'),
          rest: show(rest),
        }, `${show(u)} -> ${summarize(replies)}`).toEqual({
          closed: false,
          got: [[0xee, Status.UNKNOWN_COMMAND, opaqueOf(u)], ...noops.map((n) => [Opcode.NOOP, Status.SUCCESS, opaqueOf(n)])],
          value: STATUS_TEXT[Status.UNKNOWN_COMMAND],
          rest: show(''),
        });
      }
    });

    it('keylen + extlen > bodylen -> error status and/or closed, never success (daemon: 0x04, then closed)', async () => {
      const lying = [
        // SET: extras 8 + key 4 declared, body 4
        bin({ opcode: Opcode.SET, key: 'kkkk', extrasLength: 8, bodyLength: 4 }),
        // GET: key 8 declared, body 4
        bin({ opcode: Opcode.GET, key: 'kkkk', keyLength: 8 }),
        // GET: key 0, extras 255 declared, body 4
        bin({ opcode: Opcode.GET, key: 'kkkk', keyLength: 0, extrasLength: 255 }),
      ];
      for (const p of lying) {
        // memcached reads keylen+extlen bytes before it checks, so give it enough bytes (11 NOOPs = 264)
        const noops = Array.from({ length: 11 }, () => bin({ opcode: Opcode.NOOP }));
        const { replies, closed, rest } = await binExchange([p, ...noops], 12);
        if (DAEMON) {
          // our daemon: 0x04 "Invalid arguments" at once, then closes (nothing of the body is read)
          expect({
            closed,
            got: replies.map((r) => [r.magic, r.opcode, r.status, r.opaque, r.value.toString('latin1')]),
            rest: show(rest),
          }, `${show(p)} -> ${summarize(replies)}`).toEqual({
            closed: true,
            got: [[0x81, p[1], Status.EINVAL, opaqueOf(p), STATUS_TEXT[Status.EINVAL]]],
            rest: show(''),
          });
          continue;
        }
        // memcached: 0x81 "Unknown command", then closes.
        const first = replies[0];
        const ok = (closed || replies.length > 0) && (!first || (first.status !== Status.SUCCESS && first.opcode === p[1]));
        expect({ ok, closed, n: replies.length }, `${show(p)} -> ${summarize(replies)}`).toMatchObject({ ok: true });
        if (closed) {
          expect(replies.length, summarize(replies)).toBeLessThanOrEqual(1);
        } else {
          // still open: it must have skipped exactly bodylen bytes and answered the NOOPs
          expect(replies.map((r) => [r.opcode, r.status === Status.SUCCESS]), summarize(replies))
            .toEqual([[p[1], false], ...noops.map(() => [Opcode.NOOP, true])]);
        }
      }
    });

    it('SET with body length 2^32-1 -> status 0x03 (daemon: then swallowed) or closed, never memory growth', async () => {
      const c = await conn('binary');
      const before = serverRss();
      const head = bin({ opcode: Opcode.SET, key: 'bighead', extras: storageExtras(0, 0), bodyLength: 0xffffffff });
      const readBefore = await stat('bytes_read');
      await c.send(head);
      const total = 128 * MiB;
      const sent = await c.stream(total, () => Buffer.alloc(MiB, 0x61), 15000);
      // RSS once the server has read everything sent (some was still in the socket buffers), or closed.
      await untilServerRead(readBefore, head.length + sent, { stop: () => c.closed });
      const after = serverRss();
      const replies = await c.readPackets(1, 300);
      if (!c.closed) await c.readFor(100);
      // memcached closes at once (sent is then small); a server that keeps swallowing may answer 0x03 first.
      // Our daemon answers 0x03 as soon as it has the header and key, then swallows the body: it must
      // have taken all we sent and still be open (in the middle of the 4 GiB body).
      if (DAEMON) {
        expect({
          closed: c.closed,
          sentAll: sent === total,
          replies: replies.map((p) => [p.opcode, p.status, p.opaque, p.value.toString('latin1')]),
          rest: show(c.buffered),
        }, `sent ${sent} bytes: ${summarize(replies)}`).toEqual({
          closed: false,
          sentAll: true,
          replies: [[Opcode.SET, Status.E2BIG, opaqueOf(head), STATUS_TEXT[Status.E2BIG]]],
          rest: show(''),
        });
      }
      for (const p of replies) expect({ status: p.status, opaque: p.opaque }, describePacket(p)).toEqual({ status: Status.E2BIG, opaque: opaqueOf(head) });
      expect({ closed: c.closed, replied: replies.length > 0 || c.closed || sent === total }).toMatchObject({ replied: true });
      expect(after - before, `RSS grew ${((after - before) / MiB).toFixed(1)} MiB (sent ${(sent / MiB).toFixed(1)} MiB)`).toBeLessThan(64 * MiB);
    });

    it('truncated packet then disconnect: nothing stored, old value kept', async () => {
      const key = `bmid-${rand()}`;
      const c = await conn('binary');
      await c.send(bin({ opcode: Opcode.SET, key, extras: storageExtras(0, 0), value: 'old' }));
      expect((await c.readPacket())?.status).toBe(Status.SUCCESS);
      // Each truncated packet reaches the server before its connection's close does, and the get
      // waits until the server has seen all of them go.
      const open = await stat('curr_connections');
      for (const cut of [10, 24 + 8 + 2, 24 + 8 + key.length + 50]) {
        const d = await conn('binary');
        const readBefore = await stat('bytes_read');
        await d.send(bin({ opcode: Opcode.SET, key, extras: storageExtras(0, 0), value: 'v'.repeat(100) }).subarray(0, cut));
        await untilServerRead(readBefore, cut);
        if (cut === 10) d.reset(); else d.destroy();
      }
      await untilConnections(open);
      const get = bin({ opcode: Opcode.GET, key });
      await c.send(get);
      const p = await c.readPacket();
      expect({ status: p?.status, value: p?.value.toString('latin1') }).toEqual({ status: Status.SUCCESS, value: 'old' });
    });

    it('bad magic byte after a valid first packet -> closed', async () => {
      for (const magic of [0x81, 0x00, 0x47]) {
        const noop = bin({ opcode: Opcode.NOOP });
        const bad = bin({ opcode: Opcode.NOOP, magic });
        const { replies, closed } = await binExchange([noop, bad, bin({ opcode: Opcode.NOOP })], 3, 1000);
        // memcached answers the first packet, then closes without a word
        expect({ closed, replies: replies.map((p) => [p.opcode, p.status, p.opaque]) }, summarize(replies))
          .toEqual({ closed: true, replies: [[Opcode.NOOP, Status.SUCCESS, opaqueOf(noop)]] });
      }
    });

    it('wrong extras length for SET / GET -> 0x04 invalid arguments', async () => {
      await expectStatusThenClosedOrSynced(bin({ opcode: Opcode.SET, key: 'ek', value: 'v' }), Status.EINVAL);
      await expectStatusThenClosedOrSynced(bin({ opcode: Opcode.SET, key: 'ek', extras: Buffer.alloc(4), value: 'v' }), Status.EINVAL);
      await expectStatusThenClosedOrSynced(bin({ opcode: Opcode.SET, key: 'ek', extras: Buffer.alloc(12), value: 'v' }), Status.EINVAL);
      await expectStatusThenClosedOrSynced(bin({ opcode: Opcode.GET, key: 'ek', extras: Buffer.alloc(4) }), Status.EINVAL);
      // no key at all is invalid too (memcached)
      await expectStatusThenClosedOrSynced(bin({ opcode: Opcode.GET }), Status.EINVAL);
    });

    it('key longer than 250 -> 0x04 invalid arguments (memcached); 250 is fine', async () => {
      const k251 = 'k'.repeat(251);
      await expectStatusThenClosedOrSynced(bin({ opcode: Opcode.GET, key: k251 }), Status.EINVAL);
      await expectStatusThenClosedOrSynced(bin({ opcode: Opcode.SET, key: k251, extras: storageExtras(0, 0), value: 'v' }), Status.EINVAL);
      const k250 = `b250-${rand()}`.padEnd(250, 'k');
      const { replies } = await binExchange([bin({ opcode: Opcode.GET, key: k250 })], 1);
      expect(replies.map((p) => p.status), summarize(replies)).toEqual([Status.KEY_ENOENT]);
    });

    it('incr on a non-numeric value -> 0x06', async () => {
      const key = `bword-${rand()}`;
      const set = bin({ opcode: Opcode.SET, key, extras: storageExtras(0, 0), value: 'abc' });
      const incr = bin({ opcode: Opcode.INCREMENT, key, extras: counterExtras(1n) });
      const { replies, closed } = await binExchange([set, incr], 2);
      expect({ closed, statuses: replies.map((p) => p.status) }, summarize(replies))
        .toEqual({ closed: false, statuses: [Status.SUCCESS, Status.DELTA_BADVAL] });
    });

    it('too large value -> 0x03, block discarded, old value removed', async () => {
      const key = `bbig-${rand()}`;
      const set = bin({ opcode: Opcode.SET, key, extras: storageExtras(0, 0), value: 'old' });
      // the value is itself valid binary GET packets for the witness: they must not be run
      const inner = bin({ opcode: Opcode.GET, key: B_KEY });
      const big = Buffer.concat(Array.from({ length: Math.ceil((MAX_ITEM * 1.5) / inner.length) }, () => inner));
      const tooBig = bin({ opcode: Opcode.SET, key, extras: storageExtras(0, 0), value: big });
      const get = bin({ opcode: Opcode.GET, key });
      const { replies, closed } = await binExchange([set, tooBig, get], 3, 4000);
      expect({ closed, replies: replies.map((p) => [p.opaque, p.status]) }, summarize(replies)).toEqual({
        closed: false,
        replies: [[opaqueOf(set), Status.SUCCESS], [opaqueOf(tooBig), Status.E2BIG], [opaqueOf(get), Status.KEY_ENOENT]],
      });
    });
  });

  // ------------------------------------------------------------------------------------------
  // misbehaving clients
  // ------------------------------------------------------------------------------------------
  describe('misbehaving clients', () => {
    it('a huge multi-get that never reads its replies: bounded memory, others still served', async () => {
      const key = `mg${rand(3)}`;
      const c = await conn();
      const value = 'm'.repeat(32 * 1024);
      expect(show((await c.request(`set ${key} 0 0 ${value.length}\r\n${value}\r\n`, '\r\n')).data)).toBe(show('STORED\r\n'));
      const before = serverRss();

      // A plain socket, not a RawClient: it must never read, and give up on a write that does not
      // drain within a second (RawClient always reads, and its stream() waits out its deadline).
      const flood = net.connect({ host: server.host, port: server.port });
      flood.on('error', () => undefined);
      await new Promise<void>((resolve, reject) => { flood.once('connect', resolve); flood.once('error', reject); });
      flood.pause(); // never read: the replies pile up on the server's side
      const line = `get ${`${key} `.repeat(Math.floor(1900 / (key.length + 1))).trimEnd()}\r\n`;
      const batch = Buffer.from(line.repeat(512), 'latin1'); // ~1 MiB of requests = ~10 GiB of replies
      let written = 0;
      const limit = 64 * MiB;
      const started = Date.now();
      while (written < limit && Date.now() - started < 8000) {
        written += batch.length;
        if (!flood.write(batch)) {
          const drained = await new Promise<boolean>((resolve) => {
            const t = setTimeout(() => { flood.off('drain', ok); resolve(false); }, 1000);
            const ok = () => { clearTimeout(t); resolve(true); };
            flood.once('drain', ok);
          });
          if (!drained) break; // the server stopped reading: good
        }
      }
      const t0 = Date.now();
      await checkWitnesses(3000);
      const witnessMs = Date.now() - t0;
      const after = serverRss();
      flood.destroy();
      // memcached stops reading after ~5 MiB of requests whose replies it cannot send
      expect(written, 'the server kept reading requests whose replies it could not send').toBeLessThan(limit);
      expect(witnessMs, 'witness latency during the flood (ms)').toBeLessThan(2000);
      expect(after - before, `RSS grew ${((after - before) / MiB).toFixed(1)} MiB; client pushed ${(written / MiB).toFixed(1)} MiB of gets`).toBeLessThan(128 * MiB);
    });

    it('many connections opened and dropped at once', async () => {
      const N = 200;
      const partialBin = bin({ opcode: Opcode.SET, key: 'drop', extras: storageExtras(0, 0), value: 'v'.repeat(64) }).subarray(0, 40);
      const open = await stat('curr_connections');
      // Plain sockets, not RawClients: some are dropped before they finish connecting, some
      // right after a write, with a FIN or a RST.
      await Promise.all(Array.from({ length: N }, (_, i) => new Promise<void>((resolve) => {
        const s = net.connect({ host: server.host, port: server.port });
        s.on('error', () => resolve());
        s.on('close', () => resolve());
        s.on('connect', () => {
          switch (i % 5) {
            case 0: s.destroy(); break;
            case 1: s.write(`set drop${i} 0 0 100\r\nabc`, () => s.destroy()); break;
            case 2: s.write(partialBin, () => s.resetAndDestroy()); break;
            case 3: s.write(`get ${S_KEY}\r\n`.repeat(100), () => s.destroy()); break;
            default: s.write('garbage without newline', () => s.resetAndDestroy()); break;
          }
        });
        if (i % 7 === 0) setImmediate(() => s.destroy()); // some never even finish connecting
      })));
      // once the server has seen them all go, a brand-new connection works, and nothing half-written was stored
      await untilConnections(open);
      const c = await conn();
      const r = await withSentinel(c, 'get drop1 drop6 drop11\r\n');
      expect({ reply: show(r.reply), synced: r.synced }).toEqual({ reply: show('END\r\n'), synced: true });
    });
  });
});
