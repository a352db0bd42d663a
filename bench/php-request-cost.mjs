#!/usr/bin/env node
// What one PHP session request costs the session store, measured with PHP itself: LOOPS PHP CLI
// processes each run session_start() / session_write_close() in a loop for SECONDS over their
// share of SESSIONS sessions of about 2 KB, created beforehand, unmeasured
// (bench/php-session-loop.php; with php-memcached a request is a connection, ADD of the lock,
// GET, SET, DELETE, QUIT). Reported per store: PHP requests/s, and
// per request the store's CPU (user and system, summed over all its processes, from /proc) and
// its read and write system calls. Rounds alternate the order of the stores.
//
//   memcached       php-memcached on memcached (-t 4, its default)
//   single          php-memcached on one session-cluster node
//   cluster3        php-memcached on a 3-node cluster, PHP process i on node i % 3, as each PHP
//                   server of a farm talks to its own daemon: two thirds of the commands forwarded
//   cluster3-client the php-client on the same kind of cluster: ids minted by the node a PHP
//                   process talks to, so nothing is forwarded (a farm with sticky sessions)
//
// Every write on a cluster is copied to a backup before it is answered (--replication sync).
// Needs `npm run build` (dist/), php8.2 with php-memcached, and memcached.
//
//   node bench/php-request-cost.mjs [--rounds 2] [--seconds 5] [--loops 4] [--sessions 1000]
//        [--targets memcached,single,cluster3,cluster3-client]
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { waitForMembers } from './cluster-stats.mjs';
import { freePort, waitPort } from './ports.mjs';
import { cpuTicks, launch, stop, TICKS_PER_SECOND as HZ } from './processes.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values: opt } = parseArgs({
  options: {
    rounds: { type: 'string', default: '2' },
    seconds: { type: 'string', default: '5' },
    loops: { type: 'string', default: '4' },
    sessions: { type: 'string', default: '1000' },
    targets: { type: 'string', default: 'memcached,single,cluster3,cluster3-client' },
  },
});
const SECRET = 'bench-php-request-cost-secret-0123';
const log = (...a) => console.error('[php-request-cost]', ...a);

async function startStore(target) {
  if (target === 'memcached') {
    const port = await freePort();
    const c = launch('memcached', [...(process.getuid() === 0 ? ['-u', 'root'] : []), '-l', '127.0.0.1', '-p', String(port), '-U', '0', '-m', '1024']);
    await waitPort(port, c);
    return { children: [c], ports: [port] };
  }
  if (target === 'single') {
    const port = await freePort();
    const c = launch('node', [`${ROOT}/dist/main.js`, 'start', '--listen', `127.0.0.1:${port}`, '--log-level', 'warn']);
    await waitPort(port, c);
    return { children: [c], ports: [port] };
  }
  const ports = [];
  const peerPorts = [];
  for (let i = 0; i < 3; i++) { ports.push(await freePort()); peerPorts.push(await freePort()); }
  const peers = peerPorts.map((p) => `127.0.0.1:${p}`).join(',');
  const children = ports.map((port, i) => launch('node', [`${ROOT}/dist/main.js`, 'start', '--listen', `127.0.0.1:${port}`,
    '--peer-listen', `127.0.0.1:${peerPorts[i]}`, '--peers', peers, '--node-id', `node${i + 1}`, '--log-level', 'warn'], { SESSION_CLUSTER_SECRET: SECRET }));
  for (let i = 0; i < 3; i++) await waitPort(ports[i], children[i]);
  await waitForMembers(ports, 3, 20000);
  return { children, ports };
}

/** One PHP loop to the end: the requests it did. `fill`: until its sessions all exist, too. */
function phpLoop(port, seconds, handler, worker, idsDir, fill = false) {
  const sessions = String(Math.ceil(Number(opt.sessions) / Number(opt.loops)));
  return new Promise((resolve, reject) => {
    const child = spawn('php', [path.join(ROOT, 'bench/php-session-loop.php'), `127.0.0.1:${port}`, String(seconds), handler, String(worker), sessions,
      path.join(idsDir, `worker-${worker}.json`), ...(fill ? ['fill'] : [])], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out).requests) : reject(new Error(`php loop ${worker} exited ${code}`))));
  });
}

async function measure(target, seconds) {
  const store = await startStore(target);
  const handler = target === 'cluster3-client' ? 'client' : 'stock';
  const loops = Number(opt.loops);
  const portOf = (worker) => store.ports[worker % store.ports.length];
  const idsDir = mkdtempSync(path.join(tmpdir(), 'php-request-cost-'));
  try {
    // Unmeasured: the sessions exist and the JIT has compiled the paths.
    await Promise.all(Array.from({ length: loops }, (_, w) => phpLoop(portOf(w), 1, handler, w, idsDir, true)));
    const pids = store.children.map((c) => c.pid);
    const before = cpuTicks(pids);
    const started = Date.now();
    const counts = await Promise.all(Array.from({ length: loops }, (_, w) => phpLoop(portOf(w), seconds, handler, w, idsDir)));
    const elapsed = (Date.now() - started) / 1000;
    const after = cpuTicks(pids);
    const requests = counts.reduce((a, b) => a + b, 0);
    const perRequest = (ticks) => (ticks / HZ) * 1e6 / requests;
    return {
      requests,
      perSecond: Math.round(requests / elapsed),
      userUs: perRequest(after.ticks - after.sysTicks - (before.ticks - before.sysTicks)),
      systemUs: perRequest(after.sysTicks - before.sysTicks),
      syscalls: (after.syscalls - before.syscalls) / requests,
    };
  } finally {
    await stop(store.children);
    rmSync(idsDir, { recursive: true, force: true });
  }
}

const TARGETS = opt.targets.split(',');
const results = Object.fromEntries(TARGETS.map((t) => [t, []]));
for (let round = 1; round <= Number(opt.rounds); round++) {
  for (const target of round % 2 === 1 ? TARGETS : [...TARGETS].reverse()) {
    const r = await measure(target, Number(opt.seconds));
    log(JSON.stringify({ round, target, ...r }));
    results[target].push(r);
  }
}

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor((s.length - 1) / 2)]; };
const fmt = (xs) => xs.map((x) => x.toFixed(0)).join(' / ');
console.log(`\n${opt.loops} PHP loops, ${opt.sessions} sessions in all, ${opt.seconds} s x ${opt.rounds} rounds; medians (per round)\n`);
console.log('| store | PHP requests/s | store CPU µs per request, user | system | user + system | ÷ memcached | store reads + writes per request |');
console.log('|---|---|---|---|---:|---:|---:|');
const baseline = results.memcached ? median(results.memcached.map((r) => r.userUs + r.systemUs)) : null;
for (const target of TARGETS) {
  const rs = results[target];
  const total = median(rs.map((r) => r.userUs + r.systemUs));
  console.log(`| ${target} | ${median(rs.map((r) => r.perSecond))} (${fmt(rs.map((r) => r.perSecond))}) | ${median(rs.map((r) => r.userUs)).toFixed(0)} (${fmt(rs.map((r) => r.userUs))}) | ` +
    `${median(rs.map((r) => r.systemUs)).toFixed(0)} (${fmt(rs.map((r) => r.systemUs))}) | **${total.toFixed(0)}** | ${baseline ? (total / baseline).toFixed(2) : ''} | ${median(rs.map((r) => r.syscalls)).toFixed(1)} |`);
}
