#!/usr/bin/env node
// Fills a memcached-protocol server with session-sized values until `--bytes` of values have been
// sent, through one pipelined ascii connection, then prints one JSON line:
//   {"sets":N,"valueBytes":..,"stored":N,"errors":0,"seconds":..,"stats":{..}}
//
// usage: node bench/memory-fill.mjs --port 11211 --bytes 201326592
//          [--host 127.0.0.1] [--min 512] [--max 8192] [--window 256] [--seed 1]
//
// Value sizes are uniform in [min, max] (PHP sessions of 0.5 to 8 KB by default), drawn from a
// seeded generator so that every run sends the same sizes; values are slices of one block of
// random bytes (incompressible). Keys look like php-memcached's: "memc.sess.key." + 32 chars.
// Sending more than the memory limit holds makes the server evict, as a farm whose sessions come
// and go makes it replace them: what memory looks like after that is what bench/memory.sh reads.
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';

const { values: opt } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string' },
    bytes: { type: 'string' },
    min: { type: 'string', default: '512' },
    max: { type: 'string', default: '8192' },
    window: { type: 'string', default: '256' },
    seed: { type: 'string', default: '1' },
    'timeout-ms': { type: 'string', default: '600000' },
  },
});
if (!opt.port || !opt.bytes) { console.error('--port and --bytes are required'); process.exit(2); }
const total = Number(opt.bytes);
const min = Number(opt.min);
const max = Number(opt.max);
const windowSize = Number(opt.window);

// mulberry32: small, seeded, good enough to spread sizes and keys
let state = Number(opt.seed) >>> 0;
function random() {
  state = (state + 0x6d2b79f5) >>> 0;
  let t = state;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';
function key() {
  let s = 'memc.sess.key.';
  for (let j = 0; j < 32; j++) s += ALPHABET[Math.floor(random() * ALPHABET.length)];
  return s;
}
const pool = randomBytes(4 * 1024 * 1024);

const timer = setTimeout(() => { console.error('memory-fill: timed out'); process.exit(3); }, Number(opt['timeout-ms']));
timer.unref();

const sock = net.connect({ host: opt.host, port: Number(opt.port) });
await new Promise((resolve, reject) => { sock.once('connect', resolve); sock.once('error', reject); });
sock.setNoDelay(true);

let text = '';
let inflight = 0;
let stored = 0;
let errors = 0;
const errorSamples = [];
let wake = null;
let statsWanted = null;
sock.on('data', (chunk) => {
  text += chunk.toString('latin1');
  if (statsWanted !== null) {
    if (text.includes('END\r\n')) statsWanted(text);
    return;
  }
  let nl;
  while ((nl = text.indexOf('\r\n')) >= 0) {
    const line = text.slice(0, nl);
    text = text.slice(nl + 2);
    inflight--;
    if (line === 'STORED') stored++;
    else { errors++; if (errorSamples.length < 5) errorSamples.push(line); }
  }
  if (wake !== null && inflight <= windowSize / 2) { const w = wake; wake = null; w(); }
});
sock.on('error', (error) => { console.error(`memory-fill: ${error.message}`); process.exit(1); });

const started = process.hrtime.bigint();
let sent = 0;
let sets = 0;
while (sent < total) {
  const parts = [];
  while (inflight < windowSize && sent < total) {
    const size = min + Math.floor(random() * (max - min + 1));
    const at = Math.floor(random() * (pool.length - size));
    parts.push(Buffer.from(`set ${key()} 0 0 ${size}\r\n`, 'latin1'), pool.subarray(at, at + size), Buffer.from('\r\n'));
    sent += size;
    sets++;
    inflight++;
  }
  if (!sock.write(Buffer.concat(parts))) await new Promise((resolve) => sock.once('drain', resolve));
  if (inflight >= windowSize) await new Promise((resolve) => { wake = resolve; });
}
while (inflight > 0) await new Promise((resolve) => { wake = resolve; if (inflight <= 0) resolve(); });
const seconds = Number(process.hrtime.bigint() - started) / 1e9;

const reply = await new Promise((resolve) => { statsWanted = resolve; sock.write('stats\r\n'); });
const stats = {};
for (const line of reply.split('\r\n')) {
  const m = /^STAT (\S+) (.*)$/.exec(line);
  if (m) stats[m[1]] = m[2];
}
sock.end();
console.log(JSON.stringify({ sets, valueBytes: sent, stored, errors, errorSamples, seconds, stats }));
process.exit(errors ? 1 : 0);
