#!/usr/bin/env node
// One failover measurement against a running cluster (started by bench/cluster.sh):
//
//   1. waits until every node lists all members alive;
//   2. writes --keys sessions through node A (the first port) and checks that each reads back
//      through every node; opens two connections to A per session;
//   3. SIGKILLs the process group --kill-pid (node C) and, from that instant, polls every session
//      through A until a get returns the acknowledged value ("read") and, separately, until a new
//      `set` is acknowledged ("write": PHP's session lock and write need that too);
//   4. polls A's `stats` for when it reports C suspect / dead;
//   5. checks every session through A and B: no acknowledged write lost.
//
// Prints one JSON line: readAllMs (the failover time: SIGKILL -> every session readable through A
// again), writeAllMs, suspectMs/deadMs (A's view), readAffected/writeAffected (sessions that
// failed at least once), lost, failure kinds.
//
// usage: node bench/failover.mjs --ports A,B,C --kill-pid PID --node-c node3
//          [--keys 200] [--size 256] [--read-timeout-ms 2000] [--write-timeout-ms 2000]
//          [--interval-ms 10] [--deadline-ms 15000] [--seed 1]
//
// Each session has a read loop (get) and a write loop (set) on two connections of its own, opened
// before the kill. A request that gets no answer is waited for, up to 2 s (like a PHP client with
// its default timeouts): the daemon answers a command it cannot forward with SERVER_ERROR within
// its forward timeout, and the time of that answer is when the client is served. (Short timeouts
// that drop the connection and reconnect were tried: on 2 shared cores the reconnect storm then
// slows node A down and the figures measure the poller.) After a failed try a loop sleeps
// --interval-ms, the resolution of the figures.
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { createHash } from 'node:crypto';
import { parseArgs } from 'node:util';
import { stats, parseMembers, waitForMembers } from './cluster-stats.mjs';

const { values: opt } = parseArgs({
  options: {
    ports: { type: 'string' },
    'kill-pid': { type: 'string' },
    'node-c': { type: 'string' },
    keys: { type: 'string', default: '200' },
    size: { type: 'string', default: '256' },
    'read-timeout-ms': { type: 'string', default: '2000' },
    'write-timeout-ms': { type: 'string', default: '2000' },
    'interval-ms': { type: 'string', default: '10' },
    'deadline-ms': { type: 'string', default: '15000' },
    seed: { type: 'string', default: '1' },
  },
});
const ports = (opt.ports ?? '').split(',').filter(Boolean).map(Number);
if (ports.length !== 3 || !opt['kill-pid'] || !opt['node-c']) {
  console.error('usage: failover.mjs --ports A,B,C --kill-pid PID --node-c ID [...]');
  process.exit(2);
}
const [portA, portB, portC] = ports;
const killPid = Number(opt['kill-pid']);
const nodeC = opt['node-c'];
const nKeys = Number(opt.keys);
const size = Number(opt.size);
const readTimeout = Number(opt['read-timeout-ms']);
const writeTimeout = Number(opt['write-timeout-ms']);
const interval = Number(opt['interval-ms']);
const deadlineMs = Number(opt['deadline-ms']);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';
function makeKey(i) {
  const h = createHash('sha256').update(`failover:${opt.seed}:${i}`).digest();
  let s = 'memc.sess.key.';
  for (let j = 0; j < 32; j++) s += ALPHABET[h[j] % ALPHABET.length];
  return s;
}
function makeValue(i, version) {
  const head = `s${opt.seed}|k${i}|v${version}|`;
  return head + 'x'.repeat(Math.max(0, size - head.length));
}

class Timeout extends Error {}

/** One ascii connection, one request at a time. */
class Conn {
  static open(port, timeoutMs) {
    return new Promise((resolve, reject) => {
      const sock = net.connect({ host: '127.0.0.1', port });
      sock.setNoDelay(true);
      const t = setTimeout(() => { sock.destroy(); reject(new Timeout('connect timeout')); }, timeoutMs);
      sock.once('connect', () => { clearTimeout(t); resolve(new Conn(sock)); });
      sock.once('error', (e) => { clearTimeout(t); reject(e); });
    });
  }
  constructor(sock) {
    this.sock = sock;
    this.buf = Buffer.alloc(0);
    this.pending = null; // { parse, resolve, reject, timer }
    sock.on('data', (c) => { this.buf = this.buf.length ? Buffer.concat([this.buf, c]) : c; this.pump(); });
    sock.on('error', (e) => this.fail(e));
    sock.on('close', () => this.fail(new Error('connection closed')));
  }
  fail(e) {
    const p = this.pending; this.pending = null;
    if (p) { clearTimeout(p.timer); p.reject(e); }
  }
  destroy() { this.sock.destroy(); this.fail(new Error('destroyed')); }
  pump() {
    const p = this.pending;
    if (!p) return;
    const r = p.parse();
    if (r === undefined) return;
    this.pending = null;
    clearTimeout(p.timer);
    p.resolve(r);
  }
  request(data, parse, timeoutMs) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.fail(new Timeout('request timeout')), timeoutMs);
      this.pending = { parse, resolve, reject, timer };
      this.sock.write(data);
    });
  }
  takeLine() {
    const nl = this.buf.indexOf('\r\n');
    if (nl < 0) return undefined;
    const s = this.buf.toString('latin1', 0, nl);
    this.buf = this.buf.subarray(nl + 2);
    return s;
  }
  get(key, timeoutMs) {
    return this.request(`get ${key}\r\n`, () => {
      const nl = this.buf.indexOf('\r\n');
      if (nl < 0) return undefined;
      const first = this.buf.toString('latin1', 0, nl);
      if (first === 'END') { this.buf = this.buf.subarray(nl + 2); return { type: 'miss' }; }
      if (!first.startsWith('VALUE ')) { this.buf = this.buf.subarray(nl + 2); return { type: 'error', line: first }; }
      const len = Number(first.split(' ')[3]);
      const need = nl + 2 + len + 2 + 5;
      if (this.buf.length < need) return undefined;
      const value = this.buf.toString('latin1', nl + 2, nl + 2 + len);
      const tail = this.buf.toString('latin1', nl + 2 + len, need);
      this.buf = this.buf.subarray(need);
      return tail === '\r\nEND\r\n' ? { type: 'value', value } : { type: 'error', line: `bad framing ${JSON.stringify(tail)}` };
    }, timeoutMs);
  }
  set(key, value, timeoutMs) {
    return this.request(`set ${key} 0 0 ${Buffer.byteLength(value)}\r\n${value}\r\n`, () => {
      const line = this.takeLine();
      if (line === undefined) return undefined;
      return line === 'STORED' ? { type: 'stored' } : { type: 'error', line };
    }, timeoutMs);
  }
}

const kindOf = (e) => (e instanceof Timeout ? 'timeout' : /ECONNREFUSED|ECONNRESET|closed|EPIPE/.test(String(e?.message)) ? 'connection' : 'other');

let stage = 'start';
async function main() {
  stage = 'waiting for membership';
  const convergedMs = await waitForMembers(ports, 3, 15000);
  const keys = Array.from({ length: nKeys }, (_, i) => makeKey(i));

  // ---- write through A, check through every node
  // (membership can report every peer alive a moment before the forwarding links are up, and
  // writes then fail with "session owner unreachable": retry those for up to 5 s, and count them)
  stage = 'writing the sessions through A';
  const setup = await Conn.open(portA, 2000);
  const setupStart = performance.now();
  let setupRetries = 0; let firstSetupError = null;
  for (let i = 0; i < nKeys; i++) {
    for (;;) {
      const r = await setup.set(keys[i], makeValue(i, 0), 2000);
      if (r.type === 'stored') break;
      setupRetries++;
      firstSetupError ??= r.line;
      if (performance.now() - setupStart > 5000) throw new Error(`setup set ${keys[i]}: ${JSON.stringify(r)}`);
      await sleep(10);
    }
  }
  const setupMs = performance.now() - setupStart;
  setup.destroy();
  for (const p of ports) {
    stage = `checking the sessions through port ${p} before the kill`;
    const c = await Conn.open(p, 2000);
    for (let i = 0; i < nKeys; i++) {
      const r = await c.get(keys[i], 2000);
      if (r.type !== 'value' || r.value !== makeValue(i, 0)) throw new Error(`setup check via ${p}: ${keys[i]} -> ${JSON.stringify(r).slice(0, 200)}`);
    }
    c.destroy();
  }
  const before = await stats(portA, 1000);

  stage = 'opening the polling connections';
  // ---- one pre-opened connection to A per session
  const workers = await Promise.all(keys.map(async (key, i) => ({
    i, key, conn: await Conn.open(portA, 2000), wconn: await Conn.open(portA, 2000),
    values: [makeValue(i, 0)], acked: 0, // values[acked..] are what a read may return
    readMs: null, writeMs: null, readFails: 0, writeFails: 0,
  })));
  const kinds = {};
  const staleSamples = [];
  const count = (phase, k) => { kinds[`${phase}:${k}`] = (kinds[`${phase}:${k}`] ?? 0) + 1; };

  // ---- kill C
  stage = 'killing C';
  const t0 = performance.now();
  process.kill(-killPid, 'SIGKILL');
  stage = 'polling after the kill';
  const since = () => performance.now() - t0;
  const deadline = t0 + deadlineMs;

  let suspectMs = null; let deadMs = null; let statsErrors = 0;
  const watcher = (async () => {
    while (deadMs === null && performance.now() < deadline) {
      try {
        const st = parseMembers((await stats(portA, 1000)).cluster_members)[nodeC];
        if (st !== 'alive' && suspectMs === null) suspectMs = since();
        if (st === 'dead' || st === 'left' || st === undefined) deadMs = since();
      } catch { statsErrors++; }
      if (deadMs === null) await sleep(10);
    }
  })();

  // reads and writes of a session run in two independent loops on their own connections, so a
  // write held by sync replication (backup = C, until C is declared dead) never delays a read
  const loop = async (w, phase) => {
    const msKey = phase === 'read' ? 'readMs' : 'writeMs';
    const failKey = phase === 'read' ? 'readFails' : 'writeFails';
    const timeout = phase === 'read' ? readTimeout : writeTimeout;
    let conn = phase === 'read' ? w.conn : w.wconn;
    while (w[msKey] === null && performance.now() < deadline) {
      try {
        conn ??= await Conn.open(portA, timeout);
        if (phase === 'read') {
          // a get may return any value from the last write acknowledged before it was sent on
          const ackedAtSend = w.acked;
          const r = await conn.get(w.key, timeout);
          if (r.type === 'value' && w.values.slice(ackedAtSend).includes(r.value)) w.readMs = since();
          else {
            w.readFails++;
            count('read', r.type === 'value' ? 'stale-value' : r.type === 'miss' ? 'miss' : `error ${r.line}`);
            if (r.type === 'value' && staleSamples.length < 5) staleSamples.push({ key: w.i, got: r.value.split('|')[2], ackedAtSend, acked: w.acked, written: w.values.length - 1, ms: Math.round(since()) });
          }
        } else {
          const v = makeValue(w.i, w.values.length);
          w.values.push(v);
          const r = await conn.set(w.key, v, timeout);
          if (r.type === 'stored') { w.acked = w.values.indexOf(v); w.writeMs = since(); } else { w.writeFails++; count('write', `error ${r.line}`); }
        }
      } catch (e) {
        w[failKey]++; count(phase, kindOf(e));
        conn?.destroy();
        conn = null;
      }
      if (w[msKey] === null) await sleep(interval);
    }
    conn?.destroy();
  };
  await Promise.all(workers.flatMap((w) => [loop(w, 'read'), loop(w, 'write')]));
  await watcher;

  // ---- no acknowledged write lost: check every session through A and B
  let lost = 0; const lostSamples = [];
  for (const p of [portA, portB]) {
    stage = `final check through port ${p}`;
    const c = await Conn.open(p, 2000);
    for (const w of workers) {
      const r = await c.get(w.key, 2000);
      if (!(r.type === 'value' && w.values.slice(w.acked).includes(r.value))) {
        lost++;
        if (lostSamples.length < 3) lostSamples.push(`${p} ${w.key}: ${JSON.stringify(r).slice(0, 120)}`);
      }
    }
    c.destroy();
  }
  const after = await stats(portA, 1000);

  const done = (k) => workers.every((w) => w[k] !== null);
  const maxOf = (k) => (done(k) ? Math.max(...workers.map((w) => w[k])) : null);
  const affected = (k) => workers.filter((w) => w[k] > 0).length;
  const r1 = (x) => (x === null ? null : Math.round(x * 10) / 10);
  const delta = (name) => Number(after[name]) - Number(before[name]);
  console.log(JSON.stringify({
    keys: nKeys,
    readAllMs: r1(maxOf('readMs')),
    writeAllMs: r1(maxOf('writeMs')),
    suspectMs: r1(suspectMs), deadMs: r1(deadMs),
    readAffected: affected('readFails'), writeAffected: affected('writeFails'),
    readUnrecovered: workers.filter((w) => w.readMs === null).length,
    writeUnrecovered: workers.filter((w) => w.writeMs === null).length,
    lost, lostSamples, staleSamples,
    failures: kinds, statsErrors, convergedMs,
    setupRetries, firstSetupError, setupMs: Math.round(setupMs),
    membersAfter: after.cluster_members,
    failoversOnA: delta('cluster_failovers'), rereplicatedOnA: delta('cluster_rereplicated'),
  }));
}

main().catch((e) => { console.error(`failed while ${stage}: ${String(e?.message ?? e)}\n${e?.stack ?? ''}`); process.exit(1); });
