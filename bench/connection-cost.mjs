#!/usr/bin/env node
// What a client connection costs the server, as PHP uses connections: php-memcached and pecl
// memcache open one per request unless persistent connections are on. Each of CONNECTIONS
// loops connects, sends a get of a missing key and a set of a 5-byte value (ascii), reads both
// replies, closes, and starts again. Reported per server: connections/s and the server's CPU
// (utime + stime from /proc) per connection, memcached and the daemon (single node, memory)
// side by side, rounds alternating the order. Needs `npm run build` (dist/) and memcached.
//
//   node bench/connection-cost.mjs [--rounds 3] [--seconds 6] [--connections 16] [--daemon-main FILE]
//
// --daemon-main runs another build of the daemon (its dist/main.js), for an A/B.
import net from 'node:net';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { freePort, waitPort } from './ports.mjs';
import { cpuTicks, launch, stop, TICKS_PER_SECOND } from './processes.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values: opt } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '6' },
    connections: { type: 'string', default: '16' },
    'daemon-main': { type: 'string' },
  },
});
const log = (...a) => console.error('[connection-cost]', ...a);

const cpuSeconds = (pid) => cpuTicks([pid]).ticks / TICKS_PER_SECOND;

function oneConnection(port) {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write('get connection-cost-missing\r\nset connection-cost 0 0 5\r\nhello\r\n'));
    let received = '';
    let ok = false;
    socket.setEncoding('latin1');
    socket.on('data', (data) => {
      received += data;
      if (received.endsWith('END\r\nSTORED\r\n')) { ok = true; socket.end(); }
    });
    socket.on('error', () => {});
    socket.on('close', () => resolve(ok));
  });
}

async function load(port, pid, seconds, connections) {
  let done = 0;
  let failed = 0;
  const until = Date.now() + seconds * 1000;
  const before = cpuSeconds(pid);
  const started = Date.now();
  await Promise.all(Array.from({ length: connections }, async () => {
    while (Date.now() < until) {
      if (await oneConnection(port)) done++;
      else failed++;
    }
  }));
  const cpu = cpuSeconds(pid) - before;
  return { connections: done, failed, perSecond: Math.round(done / ((Date.now() - started) / 1000)), cpuUsPerConnection: (cpu * 1e6) / done };
}

const targets = [
  { name: 'memcached', command: (port) => ['memcached', ['-l', '127.0.0.1', '-p', String(port), '-U', '0', '-t', '1', ...(process.getuid?.() === 0 ? ['-u', 'root'] : [])]] },
  { name: 'session-cluster', command: (port) => [process.execPath, [opt['daemon-main'] ?? path.join(ROOT, 'dist/main.js'), 'start', '--listen', `127.0.0.1:${port}`, '--log-level', 'warn']] },
];

const results = Object.fromEntries(targets.map((t) => [t.name, []]));
for (let round = 1; round <= Number(opt.rounds); round++) {
  const order = round % 2 === 1 ? targets : [...targets].reverse();
  for (const target of order) {
    const port = await freePort();
    const [cmd, args] = target.command(port);
    const child = launch(cmd, args);
    try {
      await waitPort(port, child);
      await load(port, child.pid, 1, Number(opt.connections)); // warm-up, not measured
      const m = await load(port, child.pid, Number(opt.seconds), Number(opt.connections));
      log(JSON.stringify({ round, target: target.name, ...m }));
      results[target.name].push(m);
    } finally {
      await stop([child]);
    }
  }
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const reference = median(results.memcached.map((m) => m.cpuUsPerConnection));
console.log('| server | connections/s (median) | CPU µs per connection (per round) | ÷ memcached | failed |');
console.log('|---|---:|---|---:|---:|');
for (const target of targets) {
  const runs = results[target.name];
  const cpu = median(runs.map((m) => m.cpuUsPerConnection));
  console.log(`| ${target.name} | ${median(runs.map((m) => m.perSecond))} | **${cpu.toFixed(1)}** (${runs.map((m) => m.cpuUsPerConnection.toFixed(1)).join(' / ')}) | ${(cpu / reference).toFixed(2)} | ${runs.reduce((s, m) => s + m.failed, 0)} |`);
}
