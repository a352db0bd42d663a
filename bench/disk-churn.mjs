#!/usr/bin/env node
// A day of session traffic, compressed: new sessions arrive at a steady rate, each is rewritten
// a few times while its user is active (--lifetime seconds from its start), and each expires
// --lifetime seconds after its last write, as PHP's session.gc_maxlifetime counts (a day of a
// 24-minute gc_maxlifetime is 60 lifetimes; --seconds / --lifetime says how many are simulated).
// Every second it prints one JSON line: the live data (sessions not yet expired, that is written
// within the last --lifetime seconds, × (key + value)) and what the data directory takes on
// disk, so the bench can report their ratio.
//
// usage: node bench/disk-churn.mjs --port P --data-dir DIR [--seconds 180] [--lifetime 20]
//          [--rate 1500] [--size 2048] [--rewrites 3]
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';

const { values: opt } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string' },
    'data-dir': { type: 'string' },
    seconds: { type: 'string', default: '180' },
    lifetime: { type: 'string', default: '20' },
    rate: { type: 'string', default: '1500' },
    size: { type: 'string', default: '2048' },
    rewrites: { type: 'string', default: '3' },
  },
});
const seconds = Number(opt.seconds);
const lifetime = Number(opt.lifetime);
const rate = Number(opt.rate);
const size = Number(opt.size);
const rewrites = Number(opt.rewrites);
const dir = opt['data-dir'];

const sock = net.connect({ host: opt.host, port: Number(opt.port) });
sock.setNoDelay(true);
await new Promise((resolve, reject) => { sock.once('connect', resolve); sock.once('error', reject); });
let pending = 0;
let errors = 0;
let carry = '';
sock.on('data', (chunk) => {
  const text = carry + chunk.toString('latin1');
  const lines = text.split('\r\n');
  carry = lines.pop();
  for (const line of lines) {
    pending--;
    if (line !== 'STORED') errors++;
  }
});

const value = randomBytes(size);
/** sessions whose user is still active: id -> when created (s) */
const born = new Map();
/** sessions not expired on the server: id -> when last written (s) */
const written = new Map();
let next = 0;
const started = Date.now();
const diskBytes = () => readdirSync(dir).reduce((sum, name) => sum + statSync(path.join(dir, name)).size, 0);
const keyOf = (id) => `memc.sess.key.churn${String(id).padStart(27, '0')}`;

function write(id, now) {
  written.set(id, now);
  pending++;
  sock.write(`set ${keyOf(id)} 0 ${lifetime} ${size}\r\n`);
  sock.write(value);
  sock.write('\r\n');
}

let peakRatio = 0;
for (let second = 1; second <= seconds; second++) {
  const now = (Date.now() - started) / 1000;
  for (const [id, at] of born) if (now - at >= lifetime) born.delete(id);
  for (const [id, at] of written) if (now - at >= lifetime) written.delete(id);
  // New sessions, and a rewrite of the living ones, each `rewrites` times over its life.
  for (let i = 0; i < rate; i++) {
    born.set(next, now);
    write(next++, now);
  }
  const share = Math.min(1, rewrites / lifetime);
  for (const id of born.keys()) if (Math.random() < share) write(id, now);
  while (pending > 20_000) await new Promise((resolve) => setTimeout(resolve, 5));
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, started + second * 1000 - Date.now())));
  const live = written.size * (keyOf(0).length + size);
  const disk = diskBytes();
  if (second > lifetime) peakRatio = Math.max(peakRatio, disk / live);
  console.log(JSON.stringify({ second, liveSessions: written.size, liveBytes: live, diskBytes: disk, ratio: +(disk / live).toFixed(3), errors }));
}
console.log(JSON.stringify({ done: true, peakRatioAfterFirstLifetime: +peakRatio.toFixed(3), errors }));
sock.end();
