#!/usr/bin/env node
// Loads N PHP-like sessions into a memcached-protocol server through one pipelined
// ascii connection, checks a sample reads back byte-identical, then prints one JSON line:
//   {"stored":N,"errors":0,"loadSeconds":..,"verified":..,"verifyErrors":0,"stats":{..}}
//
// usage: node bench/load-sessions.mjs --host 127.0.0.1 --port 11211
//          [--count 100000] [--size 2048] [--window 512] [--verify 1000] [--seed 1]
//        node bench/load-sessions.mjs --host 127.0.0.1 --port 11211 --stats-only
//
// Keys look like php-memcached's default session keys: "memc.sess.key." + 32 chars
// of [a-z0-9] (session.sid_length=32). Values are random bytes (incompressible, may
// contain \r\n: the protocol is length-prefixed, so the server must cope).
import net from 'node:net';
import { randomBytes, createHash } from 'node:crypto';
import { parseArgs } from 'node:util';

const { values: opt } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string' },
    count: { type: 'string', default: '100000' },
    size: { type: 'string', default: '2048' },
    window: { type: 'string', default: '512' },
    verify: { type: 'string', default: '1000' },
    seed: { type: 'string', default: '1' },
    'stats-only': { type: 'boolean', default: false },
    'timeout-ms': { type: 'string', default: '300000' },
  },
});
if (!opt.port) { console.error('--port is required'); process.exit(2); }
const host = opt.host;
const port = Number(opt.port);
const count = Number(opt.count);
const size = Number(opt.size);
const windowSize = Number(opt.window);
const verifyCount = Math.min(Number(opt.verify), count);

// Deterministic keys (so two servers get the same key set) from a seeded hash chain;
// the values are plain random bytes.
const ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';
function makeKey(i) {
  const h = createHash('sha256').update(`${opt.seed}:${i}`).digest();
  let s = 'memc.sess.key.';
  for (let j = 0; j < 32; j++) s += ALPHABET[h[j] % ALPHABET.length];
  return s;
}

/** A connection that hands out replies in order; the caller says what kind it expects. */
class Conn {
  constructor(sock) {
    this.sock = sock;
    this.buf = Buffer.alloc(0);
    this.waiters = []; // {kind, resolve, reject}
    sock.on('data', (chunk) => { this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk; this.pump(); });
    sock.on('error', (e) => this.failAll(e));
    sock.on('close', () => this.failAll(new Error('connection closed')));
  }
  failAll(e) { const w = this.waiters; this.waiters = []; for (const x of w) x.reject(e); }
  expect(kind) { return new Promise((resolve, reject) => { this.waiters.push({ kind, resolve, reject }); this.pump(); }); }
  pump() {
    while (this.waiters.length) {
      const w = this.waiters[0];
      const r = this.tryParse(w.kind);
      if (r === undefined) return;
      this.waiters.shift();
      w.resolve(r);
    }
  }
  line(from = 0) {
    const nl = this.buf.indexOf('\r\n', from);
    return nl < 0 ? -1 : nl;
  }
  tryParse(kind) {
    if (kind === 'line') {
      const nl = this.line(); if (nl < 0) return undefined;
      const s = this.buf.toString('latin1', 0, nl); this.buf = this.buf.subarray(nl + 2); return s;
    }
    if (kind === 'get') { // VALUE key flags len\r\n<data>\r\n ... END\r\n (single key)
      let off = 0; let value = null;
      for (;;) {
        const nl = this.buf.indexOf('\r\n', off); if (nl < 0) return undefined;
        const l = this.buf.toString('latin1', off, nl);
        if (l === 'END') { this.buf = this.buf.subarray(nl + 2); return value; }
        if (l.startsWith('VALUE ')) {
          const len = Number(l.split(' ')[3]);
          if (this.buf.length < nl + 2 + len + 2) return undefined;
          value = this.buf.subarray(nl + 2, nl + 2 + len);
          off = nl + 2 + len + 2;
          continue;
        }
        this.buf = this.buf.subarray(nl + 2); return new Error(`unexpected reply to get: ${l}`);
      }
    }
    if (kind === 'stats') {
      const stats = {}; let off = 0;
      for (;;) {
        const nl = this.buf.indexOf('\r\n', off); if (nl < 0) return undefined;
        const l = this.buf.toString('latin1', off, nl); off = nl + 2;
        if (l === 'END') { this.buf = this.buf.subarray(off); return stats; }
        const m = /^STAT (\S+) (.*)$/.exec(l);
        if (m) stats[m[1]] = m[2];
        else { this.buf = this.buf.subarray(off); return { error: l, ...stats }; }
      }
    }
    throw new Error(`bad kind ${kind}`);
  }
}

function connect() {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host, port }, () => { sock.setNoDelay(true); resolve(new Conn(sock)); });
    sock.once('error', reject);
  });
}

async function stats(conn) {
  conn.sock.write('stats\r\n');
  return conn.expect('stats');
}

const timer = setTimeout(() => { console.error('load-sessions: timed out'); process.exit(3); }, Number(opt['timeout-ms']));
timer.unref();

const conn = await connect();
if (opt['stats-only']) {
  console.log(JSON.stringify({ stats: await stats(conn) }));
  conn.sock.end();
  process.exit(0);
}

// Pre-generate everything so the load phase measures the server, not our RNG.
const keys = new Array(count);
for (let i = 0; i < count; i++) keys[i] = makeKey(i);
const values = randomBytes(count * size); // value i = values[i*size, (i+1)*size)

let stored = 0; let errors = 0; const errorSamples = [];
const t0 = process.hrtime.bigint();
{
  // Keep `windowSize` sets in flight; write each batch as one buffer.
  const batch = Math.max(1, Math.floor(windowSize / 4));
  let next = 0; let inflight = [];
  while (next < count || inflight.length) {
    while (next < count && inflight.length < windowSize) {
      const end = Math.min(count, next + batch);
      const parts = [];
      for (let i = next; i < end; i++) {
        parts.push(Buffer.from(`set ${keys[i]} 0 0 ${size}\r\n`, 'latin1'), values.subarray(i * size, (i + 1) * size), Buffer.from('\r\n'));
        inflight.push(conn.expect('line'));
      }
      conn.sock.write(Buffer.concat(parts));
      next = end;
    }
    // wait for the oldest quarter of the window
    const take = inflight.splice(0, Math.min(inflight.length, batch));
    for (const reply of await Promise.all(take)) {
      if (reply === 'STORED') stored++;
      else { errors++; if (errorSamples.length < 5) errorSamples.push(reply); }
    }
  }
}
const loadSeconds = Number(process.hrtime.bigint() - t0) / 1e9;

// Read back an evenly spread sample and compare bytes.
let verified = 0; let verifyErrors = 0;
if (verifyCount > 0) {
  const step = Math.max(1, Math.floor(count / verifyCount));
  const idx = []; for (let i = 0; i < count && idx.length < verifyCount; i += step) idx.push(i);
  const replies = [];
  const parts = [];
  for (const i of idx) { parts.push(`get ${keys[i]}\r\n`); replies.push(conn.expect('get')); }
  conn.sock.write(parts.join(''));
  const got = await Promise.all(replies);
  got.forEach((v, n) => {
    const i = idx[n];
    if (v instanceof Buffer && v.equals(values.subarray(i * size, (i + 1) * size))) verified++;
    else { verifyErrors++; if (errorSamples.length < 10) errorSamples.push(`verify ${keys[i]}: ${v === null ? 'miss' : v instanceof Error ? v.message : `len ${v.length}`}`); }
  });
}

const st = await stats(conn);
conn.sock.end();
console.log(JSON.stringify({ stored, errors, loadSeconds, verified, verifyErrors, errorSamples, stats: st }));
process.exit(errors || verifyErrors ? 1 : 0);
