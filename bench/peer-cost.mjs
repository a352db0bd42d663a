#!/usr/bin/env node
// What the peer path costs, in CPU per request summed over every node, in one run:
//
// 1. mixed load (90 % get / 10 % set over 1000 keys set beforehand, 40-byte keys, 512-byte
//    values) on node1 of a single daemon, a 2-node and a 3-node cluster (sync), ascii and binary,
//    plus memcached for the throughput ratio. The load comes from this script's own client, not
//    memcaslap: memcaslap's ascii keys hold control characters, which the daemon refuses
//    (CLIENT_ERROR), so its ascii runs measured error replies;
// 2. one kind of request at a time, on node1 of a 2-node cluster, from this script's own client
//    (each connection one request in flight, as PHP): reads of keys node1 masters (local), reads
//    of keys node2 masters (each forwarded), sets of keys node1 masters (each copied to node2).
//
// Every connection keeps one request in flight, as PHP does.
// CPU is utime + stime from /proc of each node's processes (every node runs in a session of its
// own), read before and after each load, divided by the requests answered. Rounds alternate the
// order of the targets. Needs `npm run build` (dist/) and memcached on the PATH.
//
//   node bench/peer-cost.mjs [--rounds 3] [--seconds 8] [--connections 32]
//        [--parts mixed,kinds] [--profile DIR] [--json FILE]
//
// --profile DIR runs every node under `node --cpu-prof` into DIR/<target>-<proto>/ (summarise
// with bench/profile-summary.mjs); profiling costs CPU, so do not compare those figures.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { stats, waitForMembers, waitForServing } from './cluster-stats.mjs';
import { freePort, waitPort } from './ports.mjs';
import { cpuTicks, launch, stop, TICKS_PER_SECOND as HZ } from './processes.mjs';
import { owners } from '../dist/cluster/placement/rendezvous.js';
import { routingKey } from '../dist/cluster/placement/routing-key.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values: opt } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '8' },
    connections: { type: 'string', default: '32' },
    parts: { type: 'string', default: 'mixed,kinds' },
    targets: { type: 'string', default: 'memcached,single,cluster2,cluster3' },
    protocols: { type: 'string', default: 'ascii,binary' },
    kinds: { type: 'string', default: 'local-get,forward-get,replicated-set' },
    profile: { type: 'string' },
    json: { type: 'string' },
  },
});
const ROUNDS = Number(opt.rounds);
const SECONDS = Number(opt.seconds);
/** load before each measurement, unmeasured: the JIT has compiled the paths by then */
const WARMUP_SECONDS = 2;
const CONNECTIONS = Number(opt.connections);
const PARTS = opt.parts.split(',');
const PROTOCOLS = opt.protocols.split(',');
const SECRET = 'bench-peer-cost-secret-0123456789';
const log = (...a) => console.error('[peer-cost]', ...a);

// ------------------------------------------------------------------ processes

async function startTarget(kind, profileDir) {
  const nodeArgs = profileDir ? ['--cpu-prof', '--cpu-prof-dir', profileDir] : [];
  if (kind === 'memcached') {
    const port = await freePort();
    const c = launch('memcached', [...(process.getuid() === 0 ? ['-u', 'root'] : []), '-l', '127.0.0.1', '-p', String(port), '-U', '0', '-t', '1', '-m', '1024']);
    await waitPort(port, c);
    return { children: [c], ports: [port], nodes: [] };
  }
  if (kind === 'single') {
    const port = await freePort();
    const c = launch('node', [...nodeArgs, `${ROOT}/bin/session-cluster`, 'start', '--listen', `127.0.0.1:${port}`, '--memory-limit', '1073741824', '--log-level', 'warn']);
    await waitPort(port, c);
    return { children: [c], ports: [port], nodes: [] };
  }
  const n = Number(kind.replace('cluster', ''));
  const ports = []; const peerPorts = []; const nodes = [];
  for (let i = 0; i < n; i++) { ports.push(await freePort()); peerPorts.push(await freePort()); nodes.push(`node${i + 1}`); }
  const children = [];
  for (let i = 0; i < n; i++) {
    const peers = peerPorts.filter((_, j) => j !== i).map((p) => `127.0.0.1:${p}`).join(',');
    children.push(launch('node', [...nodeArgs, `${ROOT}/bin/session-cluster`, 'start', '--listen', `127.0.0.1:${ports[i]}`, '--peer-listen', `127.0.0.1:${peerPorts[i]}`,
      '--peers', peers, '--node-id', nodes[i], '--replication', 'sync', '--memory-limit', '1073741824', '--log-level', 'warn'], { SESSION_CLUSTER_SECRET: SECRET }));
  }
  for (let i = 0; i < n; i++) await waitPort(ports[i], children[i]);
  await waitForMembers(ports, n, 20000);
  await waitForServing(ports[0], 64, 20000);
  return { children, ports, nodes };
}

// ------------------------------------------------------------------ loads
const VALUE = Buffer.alloc(512, 0x61);
/** `count` 40-byte keys whose master in ['node1','node2'] is `master`. */
function keysMasteredBy(master, members, count) {
  const keys = [];
  for (let i = 0; keys.length < count; i++) {
    const key = `peer-cost-${String(i).padStart(30, '0')}`;
    if (owners(routingKey(key), members).master === master) keys.push(key);
  }
  return keys;
}

/** `count` 40-byte keys, spread over every master. */
function mixedKeys(count) {
  return Array.from({ length: count }, (_, i) => `peer-cost-mixed-${String(i * 7919).padStart(24, '0')}`);
}

function asciiRequest(kind, key) {
  return kind === 'replicated-set' ? Buffer.concat([Buffer.from(`set ${key} 0 0 ${VALUE.length}\r\n`), VALUE, Buffer.from('\r\n')]) : Buffer.from(`get ${key}\r\n`);
}
function binaryRequest(kind, key) {
  const set = kind === 'replicated-set';
  const extras = set ? 8 : 0;
  const value = set ? VALUE : Buffer.alloc(0);
  const h = Buffer.alloc(24 + extras + key.length + value.length);
  h[0] = 0x80; h[1] = set ? 0x01 : 0x00; h.writeUInt16BE(key.length, 2); h[4] = extras;
  h.writeUInt32BE(extras + key.length + value.length, 8);
  h.write(key, 24 + extras, 'latin1');
  value.copy(h, 24 + extras + key.length);
  return h;
}
/** Whether `buf` holds one whole reply. */
function asciiComplete(buf) {
  const s = buf.toString('latin1');
  return s.endsWith('END\r\n') || s === 'STORED\r\n' || /^(SERVER_ERROR|CLIENT_ERROR|ERROR|NOT_STORED)/.test(s) && s.endsWith('\r\n');
}
function binaryComplete(buf) { return buf.length >= 24 && buf.length >= 24 + buf.readUInt32BE(8); }

/** C connections, each one request in flight, for SECONDS: requests answered (errors counted apart). */
function ownLoad(port, kind, binary, keys, seconds = SECONDS) {
  const build = binary ? binaryRequest : asciiRequest;
  // mixed: 9 reads to 1 write, over all the keys
  const requests = kind === 'mixed'
    ? keys.map((k, n) => build(n % 10 === 0 ? 'replicated-set' : 'get', k))
    : keys.map((k) => build(kind, k));
  const complete = binary ? binaryComplete : asciiComplete;
  let ops = 0; let errors = 0; let stopAt = 0; let i = 0;
  return new Promise((resolve) => {
    let open = CONNECTIONS;
    for (let c = 0; c < CONNECTIONS; c++) {
      const s = net.connect(port, '127.0.0.1');
      s.setNoDelay(true);
      let buf = Buffer.alloc(0);
      const next = () => { if (Date.now() >= stopAt) { s.end(); return; } s.write(requests[i++ % requests.length]); };
      s.once('connect', () => { stopAt ||= Date.now() + seconds * 1000; next(); });
      s.on('data', (d) => {
        buf = buf.length === 0 ? d : Buffer.concat([buf, d]);
        if (!complete(buf)) return;
        // a binary status other than ok / not found; an ascii SERVER_ERROR, CLIENT_ERROR or ERROR
        if (binary ? buf.readUInt16BE(6) > 1 : (buf[0] === 0x53 && buf[1] === 0x45) || buf[0] === 0x43 || buf[0] === 0x45) errors++;
        else ops++;
        buf = Buffer.alloc(0);
        next();
      });
      s.on('error', () => {});
      s.on('close', () => { if (--open === 0) resolve({ ops, errors }); });
    }
  });
}

async function prime(port, keys) {
  // every key holds a value, so that every read finds one
  const s = net.connect(port, '127.0.0.1');
  await new Promise((r) => s.once('connect', r));
  for (const key of keys) {
    await new Promise((resolve) => { s.once('data', resolve); s.write(asciiRequest('replicated-set', key)); });
  }
  s.destroy();
}

// ------------------------------------------------------------------ runs
const results = [];
const record = (r) => { results.push(r); log(JSON.stringify(r)); };

async function measure(target, load) {
  const pids = target.children.map((c) => c.pid);
  const t0 = cpuTicks(pids);
  const r = await load();
  const t1 = cpuTicks(pids);
  return {
    ...r,
    cpuUsPerOp: r.ops > 0 ? ((t1.ticks - t0.ticks) * 1e6) / HZ / r.ops : null,
    sysUsPerOp: r.ops > 0 ? ((t1.sysTicks - t0.sysTicks) * 1e6) / HZ / r.ops : null,
    syscallsPerOp: r.ops > 0 ? (t1.syscalls - t0.syscalls) / r.ops : null,
  };
}

const profileDirFor = (name) => {
  if (!opt.profile) return undefined;
  const dir = path.resolve(opt.profile, name);
  mkdirSync(dir, { recursive: true });
  return dir;
};

const TARGETS = opt.targets.split(',');
const KINDS = opt.kinds.split(',');
for (let round = 1; round <= ROUNDS; round++) {
  if (PARTS.includes('mixed')) {
    const order = round % 2 === 1 ? TARGETS : [...TARGETS].reverse();
    for (const proto of PROTOCOLS) {
      for (const kind of order) {
        const target = await startTarget(kind, kind === 'memcached' ? undefined : profileDirFor(`${kind}-${proto}`));
        log(`round ${round}: ${kind} ${proto}`);
        const keys = mixedKeys(1000);
        await prime(target.ports[0], keys);
        await ownLoad(target.ports[0], 'mixed', proto === 'binary', keys, WARMUP_SECONDS); // JIT, not measured
        const m = await measure(target, () => ownLoad(target.ports[0], 'mixed', proto === 'binary', keys));
        const node1 = kind.startsWith('cluster') ? await stats(target.ports[0], 3000) : {};
        record({ part: 'mixed', round, target: kind, proto, ...m, tps: Math.round(m.ops / SECONDS), forwarded: Number(node1.cluster_forwarded ?? 0), replicated: Number(node1.cluster_replicated ?? 0),
          loadavg: readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ') });
        await stop(target.children);
      }
    }
  }
  if (PARTS.includes('kinds')) {
    for (const proto of PROTOCOLS) {
      const target = await startTarget('cluster2', profileDirFor(`kinds-${proto}`));
      const members = target.nodes;
      const local = keysMasteredBy('node1', members, 256);
      const remote = keysMasteredBy('node2', members, 256);
      await prime(target.ports[0], [...local, ...remote]);
      for (const kind of KINDS) await ownLoad(target.ports[0], kind, proto === 'binary', kind === 'forward-get' ? remote : local, WARMUP_SECONDS / KINDS.length);
      const order = round % 2 === 1 ? KINDS : [...KINDS].reverse();
      for (const kind of order) {
        const keys = kind === 'forward-get' ? remote : local;
        log(`round ${round}: ${kind} ${proto}`);
        const m = await measure(target, () => ownLoad(target.ports[0], kind, proto === 'binary', keys));
        record({ part: 'kinds', round, target: 'cluster2', kind, proto, ...m, tps: Math.round(m.ops / SECONDS) });
      }
      await stop(target.children);
    }
  }
}

// ------------------------------------------------------------------ report
const median = (xs) => { const s = xs.filter((x) => x != null).sort((a, b) => a - b); return s.length ? s[Math.floor((s.length - 1) / 2)] : null; };
const f = (x, d = 2) => (x == null ? '–' : x.toFixed(d));
const lines = [];
if (PARTS.includes('mixed')) {
  lines.push('| protocol | target | median TPS | ÷ memcached TPS | CPU µs/request, all nodes (per round) | ÷ single | of which system µs | read+write syscalls/request |', '|---|---|---:|---:|---|---:|---:|---:|');
  for (const proto of PROTOCOLS) {
    const of = (t) => results.filter((r) => r.part === 'mixed' && r.proto === proto && r.target === t);
    const mcTps = median(of('memcached').map((r) => r.tps));
    const single = median(of('single').map((r) => r.cpuUsPerOp));
    for (const t of TARGETS) {
      const rs = of(t);
      const cpu = median(rs.map((r) => r.cpuUsPerOp));
      lines.push(`| ${proto} | ${t} | ${median(rs.map((r) => r.tps)) ?? '–'} | ${mcTps ? f(median(rs.map((r) => r.tps)) / mcTps) : '–'} | **${f(cpu, 1)}** (${rs.map((r) => f(r.cpuUsPerOp, 1)).join(' / ')}) | ${t === 'memcached' || !single ? '' : f(cpu / single)} | ${f(median(rs.map((r) => r.sysUsPerOp)), 1)} | ${f(median(rs.map((r) => r.syscallsPerOp)))} |`);
    }
  }
}
if (PARTS.includes('kinds')) {
  lines.push('', '| protocol | request kind (2-node cluster, client on node1) | median requests/s | CPU µs/request, both nodes (per round) | ÷ local read | of which system µs | read+write syscalls/request |', '|---|---|---:|---|---:|---:|---:|');
  for (const proto of PROTOCOLS) {
    const of = (k) => results.filter((r) => r.part === 'kinds' && r.proto === proto && r.kind === k);
    const local = median(of('local-get').map((r) => r.cpuUsPerOp));
    for (const k of KINDS) {
      const rs = of(k);
      const cpu = median(rs.map((r) => r.cpuUsPerOp));
      const errs = rs.reduce((a, r) => a + r.errors, 0);
      lines.push(`| ${proto} | ${k}${errs ? ` (${errs} errors)` : ''} | ${median(rs.map((r) => r.tps))} | **${f(cpu, 1)}** (${rs.map((r) => f(r.cpuUsPerOp, 1)).join(' / ')}) | ${local ? f(cpu / local) : '–'} | ${f(median(rs.map((r) => r.sysUsPerOp)), 1)} | ${f(median(rs.map((r) => r.syscallsPerOp)))} |`);
    }
  }
}
console.log(lines.join('\n'));
if (opt.json) writeFileSync(opt.json, JSON.stringify(results, null, 1));
