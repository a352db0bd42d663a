#!/usr/bin/env node
// PHP session traffic against a running cluster, with stock (hashed) or cluster-minted session
// ids; used by bench/session-ids.sh.
//
//   node bench/session-ids-load.mjs --ports P1,P2,P3 --mode hashed|minted
//        [--users 64] [--duration-ms 10000] [--warmup-ms 2000] [--requests-per-session 20]
//        [--value-min 1024] [--value-max 2048]
//   node bench/session-ids-load.mjs --report results.jsonl     the markdown tables of many runs
//
// Speaks the memcached binary protocol, as php-memcached 3 does by default
// (memcached.sess_binary_protocol=On). Every simulated user has one connection to one node (a
// sticky load balancer: user u always lands on node u mod 3) and sends one command at a time,
// as one PHP worker does. One simulated PHP request is what php-memcached sends for
// session_start() ... session_write_close() (docs/architecture.md, "What the PHP side sends"):
//
//     ADD    memc.sess.key.lock.<id>  "1"  exptime 30      the session lock
//     GET    memc.sess.key.<id>                            read the session
//     SET    memc.sess.key.<id>  1-2 KB  exptime 1440      write it back
//     DELETE memc.sess.key.lock.<id>                       unlock
//
// A user starts a new session every --requests-per-session requests. Creating its id is one
// more round trip, before that request, in both modes:
//   hashed: 32 random chars of [a-z0-9] (PHP's default sid_length 32, sid_bits_per_character 5),
//           then ADD memc.sess.key.<id> "" — php-memcached's create_sid collision check;
//   minted: GET __session_cluster__.mint on the user's own node — the php-client's create_sid.
//
// After the warm-up every user finishes the request it is in, then `stats` is read from every
// node; the measured phase runs, every user finishes again, and `stats` is read again. So the
// stats deltas cover exactly the commands counted here. Prints one JSON line.
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { stats } from './cluster-stats.mjs';

const NCPU = availableParallelism();
const OP = { GET: 0x00, SET: 0x01, ADD: 0x02, DELETE: 0x04 };
const STATUS = { OK: 0x0000, NOT_FOUND: 0x0001, EXISTS: 0x0002, NOT_STORED: 0x0005 };
const PREFIX = 'memc.sess.key.';
const LOCK_PREFIX = 'memc.sess.key.lock.';
const MINT_KEY = '__session_cluster__.mint';
const ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';
const STAT_NAMES = ['cmd_get', 'cmd_set', 'delete_hits', 'delete_misses', 'get_hits', 'get_misses', 'curr_items',
  'cluster_forwarded', 'cluster_forwarded_reads', 'cluster_forward_failures', 'cluster_replicated',
  'cluster_replicas_applied', 'cluster_replication_failures', 'session_ids_minted', 'rusage_user', 'rusage_system'];

/** One binary-protocol connection with one command in flight at a time (like one PHP worker). */
class BinaryConn {
  static open(port) {
    return new Promise((resolve, reject) => {
      const sock = net.connect({ host: '127.0.0.1', port });
      sock.setNoDelay(true);
      sock.once('connect', () => { sock.removeListener('error', reject); resolve(new BinaryConn(sock)); });
      sock.once('error', reject);
    });
  }

  constructor(sock) {
    this.sock = sock;
    this.buf = Buffer.alloc(0);
    this.pending = null;
    this.opaque = 0;
    sock.on('data', (chunk) => this.onData(chunk));
    sock.on('error', (e) => this.fail(e));
    sock.on('close', () => this.fail(new Error('connection closed by the server')));
  }

  fail(error) {
    const p = this.pending;
    this.pending = null;
    this.closed = true;
    if (p) p.reject(error);
  }

  onData(chunk) {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    while (this.buf.length >= 24) {
      const body = this.buf.readUInt32BE(8);
      if (this.buf.length < 24 + body) return;
      if (this.buf[0] !== 0x81) { this.fail(new Error(`bad response magic 0x${this.buf[0].toString(16)}`)); this.sock.destroy(); return; }
      const extLen = this.buf[4];
      const keyLen = this.buf.readUInt16BE(2);
      const status = this.buf.readUInt16BE(6);
      const opaque = this.buf.readUInt32BE(12);
      const value = this.buf.subarray(24 + extLen + keyLen, 24 + body);
      this.buf = this.buf.subarray(24 + body);
      const p = this.pending;
      this.pending = null;
      if (!p) continue;
      if (opaque !== p.opaque) p.reject(new Error(`reply opaque ${opaque}, expected ${p.opaque}`));
      else p.resolve({ status, value });
    }
  }

  /** Sends one request; resolves { status, value }. */
  request(opcode, key, value = null, extras = null) {
    if (this.closed) return Promise.reject(new Error('connection closed'));
    const keyLen = Buffer.byteLength(key, 'latin1');
    const extLen = extras ? extras.length : 0;
    const valLen = value ? value.length : 0;
    const head = Buffer.allocUnsafe(24 + extLen + keyLen);
    head[0] = 0x80;
    head[1] = opcode;
    head.writeUInt16BE(keyLen, 2);
    head[4] = extLen;
    head[5] = 0;
    head.writeUInt16BE(0, 6);
    head.writeUInt32BE(extLen + keyLen + valLen, 8);
    const opaque = (this.opaque = (this.opaque + 1) >>> 0);
    head.writeUInt32BE(opaque, 12);
    head.fill(0, 16, 24);
    if (extras) extras.copy(head, 24);
    head.write(key, 24 + extLen, 'latin1');
    return new Promise((resolve, reject) => {
      this.pending = { opaque, resolve, reject };
      if (valLen) { this.sock.cork(); this.sock.write(head); this.sock.write(value); this.sock.uncork(); }
      else this.sock.write(head);
    });
  }

  close() { this.closed = true; this.sock.destroy(); }
}

/** SET/ADD extras: flags (4 bytes) then exptime (4 bytes). */
function storeExtras(flags, exptime) {
  const b = Buffer.alloc(8);
  b.writeUInt32BE(flags, 0);
  b.writeUInt32BE(exptime, 4);
  return b;
}
const LOCK_EXTRAS = storeExtras(0, 30);
const DATA_EXTRAS = storeExtras(0, 1440);
const LOCK_VALUE = Buffer.from('1');
const EMPTY = Buffer.alloc(0);

function hashedId() {
  const r = randomBytes(32);
  let s = '';
  for (let i = 0; i < 32; i++) s += ALPHABET[r[i] % 36];
  return s;
}

function median(xs) {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!s.length) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
function percentile(sorted, q) {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

/** CPU ticks of the whole machine from /proc/stat: busy (everything but idle and iowait), steal, total. */
function machineTicks() {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const [user, nice, system, idle, iowait, irq, softirq, steal = 0] = f;
    return { busy: user + nice + system + irq + softirq, steal, total: f.reduce((a, x) => a + x, 0) };
  } catch {
    return null;
  }
}

async function statsOf(ports) {
  return Promise.all(ports.map((p) => stats(p, 5000)));
}
function deltas(before, after) {
  return before.map((b, i) => Object.fromEntries(STAT_NAMES.map((n) => [n, Number(after[i][n] ?? NaN) - Number(b[n] ?? NaN)])));
}

async function load(opt) {
  const ports = opt.ports.split(',').filter(Boolean).map(Number);
  const mode = opt.mode;
  if (mode !== 'hashed' && mode !== 'minted') throw new Error('--mode must be hashed or minted');
  const users = Number(opt.users);
  const perSession = Number(opt['requests-per-session']);
  const vmin = Number(opt['value-min']);
  const vmax = Number(opt['value-max']);
  // one pool of random bytes; each SET sends a slice of it (the daemon never looks inside)
  const pool = randomBytes(vmax + 4096);

  const conns = await Promise.all(Array.from({ length: users }, (_, u) => BinaryConn.open(ports[u % ports.length])));

  // counters of the current phase; reset when the measured phase starts
  let c;
  const resetCounters = () => {
    c = { requests: 0, creates: 0, lockAdds: 0, gets: 0, sets: 0, deletes: 0, mints: 0, collisionAdds: 0,
      getHits: 0, getMisses: 0, unexpected: {}, perNodeCommands: ports.map(() => 0), latenciesMs: [] };
  };
  resetCounters();
  const unexpected = (what, status) => { const k = `${what}:0x${status.toString(16)}`; c.unexpected[k] = (c.unexpected[k] ?? 0) + 1; };
  const mintedIds = [];

  // each user's session outlives the phases: the measured phase does not start with a wave of new
  // sessions, and each user starts part-way through one, so new sessions never come in waves
  const state = conns.map((_, u) => ({ id: null, left: 0, firstLeft: 1 + (u % perSession) }));
  let stopAt = 0;
  async function user(u) {
    const conn = conns[u];
    const node = u % ports.length;
    const s = state[u];
    while (performance.now() < stopAt) {
      const t0 = performance.now();
      let cmds = 4;
      if (s.left === 0) {
        if (mode === 'hashed') {
          s.id = hashedId();
          const r = await conn.request(OP.ADD, PREFIX + s.id, EMPTY, DATA_EXTRAS);
          c.collisionAdds++;
          if (r.status !== STATUS.OK) unexpected('create-add', r.status);
        } else {
          const r = await conn.request(OP.GET, MINT_KEY);
          c.mints++;
          if (r.status !== STATUS.OK || r.value.length === 0) throw new Error(`mint on node${node + 1}: status 0x${r.status.toString(16)}`);
          s.id = r.value.toString('latin1');
          if (u < ports.length) mintedIds.push({ node, id: s.id });
        }
        c.creates++;
        cmds++;
        s.left = s.firstLeft ?? perSession;
        s.firstLeft = null;
      }
      const id = s.id;
      let r = await conn.request(OP.ADD, LOCK_PREFIX + id, LOCK_VALUE, LOCK_EXTRAS);
      c.lockAdds++;
      if (r.status !== STATUS.OK) unexpected('lock-add', r.status);
      r = await conn.request(OP.GET, PREFIX + id);
      c.gets++;
      if (r.status === STATUS.OK) c.getHits++;
      else if (r.status === STATUS.NOT_FOUND) c.getMisses++;
      else unexpected('get', r.status);
      const size = vmin + Math.floor(Math.random() * (vmax - vmin + 1));
      const off = Math.floor(Math.random() * 4096);
      r = await conn.request(OP.SET, PREFIX + id, pool.subarray(off, off + size), DATA_EXTRAS);
      c.sets++;
      if (r.status !== STATUS.OK) unexpected('set', r.status);
      r = await conn.request(OP.DELETE, LOCK_PREFIX + id);
      c.deletes++;
      if (r.status !== STATUS.OK) unexpected('delete', r.status);
      c.requests++;
      c.perNodeCommands[node] += cmds;
      c.latenciesMs.push(performance.now() - t0);
      s.left--;
    }
  }
  const phase = async (ms) => {
    stopAt = performance.now() + ms;
    const t0 = performance.now();
    await Promise.all(conns.map((_, u) => user(u)));
    return performance.now() - t0;
  };

  if (Number(opt['warmup-ms']) > 0) await phase(Number(opt['warmup-ms']));
  resetCounters();
  const before = await statsOf(ports);
  const cpu0 = process.cpuUsage();
  const m0 = machineTicks();
  const elapsedMs = await phase(Number(opt['duration-ms']));
  const cpu = process.cpuUsage(cpu0);
  const m1 = machineTicks();
  const after = await statsOf(ports);
  // owners of a few minted ids, as the node that minted them sees them (user n is on node n)
  const owners = [];
  for (const { node, id } of mintedIds.slice(-2 * ports.length)) {
    const r = await conns[node].request(OP.GET, `__session_cluster__.owners.${id}`);
    owners.push({ askedNode: node + 1, id, owners: r.value.toString('latin1') });
  }
  for (const conn of conns) conn.close();

  const d = deltas(before, after);
  const sum = (name) => d.reduce((a, x) => a + x[name], 0);
  const sessionCommands = c.lockAdds + c.gets + c.sets + c.deletes + c.collisionAdds;
  const clientCommands = sessionCommands + c.mints;
  const lat = c.latenciesMs.sort((a, b) => a - b);
  const secs = elapsedMs / 1000;
  return {
    mode, users, nodes: ports.length, requestsPerSession: perSession, valueBytes: [vmin, vmax], protocol: 'binary',
    elapsedMs: Math.round(elapsedMs),
    requests: c.requests,
    clientCommands,
    sessionCommands,
    commands: { lockAdd: c.lockAdds, get: c.gets, set: c.sets, delete: c.deletes, collisionAdd: c.collisionAdds, mint: c.mints },
    perNodeCommands: c.perNodeCommands,
    getHits: c.getHits, getMisses: c.getMisses,
    unexpected: c.unexpected,
    reqPerSec: c.requests / secs,
    opsPerSec: clientCommands / secs,
    latencyMs: { p50: percentile(lat, 0.5), p99: percentile(lat, 0.99), max: lat[lat.length - 1] ?? NaN },
    forwarded: sum('cluster_forwarded'),
    forwardedReads: sum('cluster_forwarded_reads'),
    forwardFailures: sum('cluster_forward_failures'),
    replicated: sum('cluster_replicated'),
    replicasApplied: sum('cluster_replicas_applied'),
    forwardedShare: sum('cluster_forwarded') / clientCommands,
    forwardedReadsShare: sum('cluster_forwarded_reads') / c.gets,
    // cross-check: every session command runs once, on its master (mint never reaches the store)
    serverCommands: sum('cmd_get') + sum('cmd_set') + sum('delete_hits') + sum('delete_misses'),
    mintedByNodes: sum('session_ids_minted'),
    serverCpuSeconds: sum('rusage_user') + sum('rusage_system'),
    // the generator shares the 2 cores with the nodes: its own cost, to see whether it is the limit
    clientCpuSeconds: (cpu.user + cpu.system) / 1e6,
    // the whole machine in the same interval (other work on the host included): how many of the
    // cores were busy, and the share of time the hypervisor gave to other guests
    machineBusyShare: m0 && m1 ? (m1.busy - m0.busy) / (m1.total - m0.total) : null,
    machineStealShare: m0 && m1 ? (m1.steal - m0.steal) / (m1.total - m0.total) : null,
    statsDelta: d,
    mintedOwners: owners,
  };
}

// ---------------------------------------------------------------- report
const pct = (x) => (Number.isFinite(x) ? `${(100 * x).toFixed(1)} %` : '—');
const int = (x) => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : '—');
const fix = (x, n = 2) => (Number.isFinite(x) ? x.toFixed(n) : '—');

function report(file) {
  const runs = readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
  const ok = runs.filter((r) => !r.error);
  const failed = runs.filter((r) => r.error);
  const by = (mode) => ok.filter((r) => r.mode === mode);
  const rounds = [...new Set(runs.map((r) => r.round))].sort((a, b) => a - b);
  const out = [];
  const row = (cells) => out.push(`| ${cells.join(' | ')} |`);

  const med = {};
  for (const mode of ['hashed', 'minted']) {
    const rs = by(mode);
    med[mode] = {
      req: median(rs.map((r) => r.reqPerSec)), ops: median(rs.map((r) => r.opsPerSec)),
      fwd: median(rs.map((r) => r.forwardedShare)), fwdR: median(rs.map((r) => r.forwardedReadsShare)),
      cpu: median(rs.map((r) => (1e6 * r.serverCpuSeconds) / r.requests)),
      busy: median(rs.map((r) => r.serverCpuSeconds / (r.elapsedMs / 1000))),
      clientBusy: median(rs.map((r) => r.clientCpuSeconds / (r.elapsedMs / 1000))),
      machine: median(rs.map((r) => r.machineBusyShare)),
      p50: median(rs.map((r) => r.latencyMs.p50)), p99: median(rs.map((r) => r.latencyMs.p99)),
    };
  }
  const ratios = rounds.map((k) => {
    const h = ok.find((r) => r.round === k && r.mode === 'hashed');
    const m = ok.find((r) => r.round === k && r.mode === 'minted');
    return h && m ? m.reqPerSec / h.reqPerSec : NaN;
  });
  const cpuRatios = rounds.map((k) => {
    const h = ok.find((r) => r.round === k && r.mode === 'hashed');
    const m = ok.find((r) => r.round === k && r.mode === 'minted');
    return h && m ? (m.serverCpuSeconds / m.requests) / (h.serverCpuSeconds / h.requests) : NaN;
  });

  out.push(`Medians of ${rounds.length} rounds; ratio = minted ÷ hashed, the median of the per-round ratios.`, '');
  row(['mode', 'PHP req/s', 'memcached ops/s', 'commands forwarded', 'reads forwarded', 'node CPU µs per PHP req (3 nodes)', 'cores busy: nodes / generator / whole machine', 'req latency p50 / p99 (ms)', 'req/s ratio']);
  row(['---', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:']);
  for (const mode of ['hashed', 'minted']) {
    const m = med[mode];
    row([mode, int(m.req), int(m.ops), pct(m.fwd), pct(m.fwdR), int(m.cpu), `${fix(m.busy)} / ${fix(m.clientBusy)} / ${fix(m.machine * NCPU)}`, `${fix(m.p50)} / ${fix(m.p99)}`,
      mode === 'minted' ? `**${fix(median(ratios))}**` : '1.00']);
  }
  out.push('', `Per-round req/s ratios minted ÷ hashed: ${ratios.map((x) => fix(x)).join(' / ')}. Node CPU per PHP request, minted ÷ hashed: ${cpuRatios.map((x) => fix(x)).join(' / ')} (median ${fix(median(cpuRatios))}).`, '');

  row(['round', 'mode', 'PHP req/s', 'ops/s', 'client commands', 'forwarded', 'share', 'reads (GET)', 'forwarded reads', 'share', 'server commands', 'get hits / misses', 'cores busy: nodes / generator / machine (steal)', 'unexpected replies']);
  row(['---', '---', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---']);
  for (const r of runs) {
    if (r.error) { row([r.round, r.mode, 'FAILED', '', '', '', '', '', '', '', '', '', '', r.error]); continue; }
    row([r.round, r.mode, int(r.reqPerSec), int(r.opsPerSec), int(r.clientCommands), int(r.forwarded), pct(r.forwardedShare),
      int(r.commands.get), int(r.forwardedReads), pct(r.forwardedReadsShare), int(r.serverCommands),
      `${int(r.getHits)} / ${int(r.getMisses)}`,
      `${fix(r.serverCpuSeconds / (r.elapsedMs / 1000))} / ${fix(r.clientCpuSeconds / (r.elapsedMs / 1000))} / ${fix((r.machineBusyShare ?? NaN) * NCPU)} (${fix((r.machineStealShare ?? NaN) * NCPU)})`,
      Object.keys(r.unexpected).length ? JSON.stringify(r.unexpected) : 'none']);
  }
  if (failed.length) out.push('', `${failed.length} run(s) failed; see the logs.`);
  const sample = ok.find((r) => r.mode === 'minted' && r.mintedOwners?.length);
  if (sample) {
    out.push('', 'Owners of some minted ids (`get __session_cluster__.owners.<id>` on the node that minted them, round ' + sample.round + '):', '');
    for (const o of sample.mintedOwners.slice(0, 3)) out.push(`- node${o.askedNode}: \`${o.owners}\``);
  }
  return out.join('\n');
}

const { values: opt } = parseArgs({
  options: {
    ports: { type: 'string' },
    mode: { type: 'string' },
    users: { type: 'string', default: '64' },
    'duration-ms': { type: 'string', default: '10000' },
    'warmup-ms': { type: 'string', default: '2000' },
    'requests-per-session': { type: 'string', default: '20' },
    'value-min': { type: 'string', default: '1024' },
    'value-max': { type: 'string', default: '2048' },
    report: { type: 'string' },
  },
});
try {
  if (opt.report) console.log(report(opt.report));
  else if (!opt.ports || !opt.mode) { console.error('usage: session-ids-load.mjs --ports P1,P2,P3 --mode hashed|minted [...] | --report FILE'); process.exit(2); }
  else console.log(JSON.stringify(await load(opt)));
} catch (e) {
  console.error(String(e?.stack ?? e));
  process.exit(1);
}
