#!/usr/bin/env node
// `stats` of memcached-protocol servers over raw ascii connections; used by bench/cluster.sh
// and bench/failover.mjs.
//
//   node bench/cluster-stats.mjs --ports 1234,1235 --wait-members 3 [--timeout-ms 15000]
//       waits until every node lists exactly that many members, all "alive"; exit 1 on timeout
//   node bench/cluster-stats.mjs --ports 1234 --wait-serving 64 [--timeout-ms 15000]
//       sets 64 session keys (spread over all masters) through the first port until every one is
//       STORED, then deletes them: the cluster forwards and replicates. Prints the ms waited and
//       the failed tries (membership can say "alive" before the forwarding links are up)
//   node bench/cluster-stats.mjs --ports 1234 [--names cluster_forwarded,curr_items]
//       prints one JSON object per port: the STAT lines (all, or the names given)
import net from 'node:net';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';

/** `stats` over a fresh connection: STAT name -> value. Rejects after timeoutMs. */
export function stats(port, timeoutMs = 1000, host = '127.0.0.1') {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host, port });
    let buf = '';
    let done = false;
    const finish = (err, value) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err); else resolve(value);
    };
    const timer = setTimeout(() => finish(new Error(`stats on ${port}: timeout after ${timeoutMs} ms`)), timeoutMs);
    sock.on('connect', () => sock.write('stats\r\n'));
    sock.on('error', (e) => finish(e));
    sock.on('close', () => finish(new Error(`stats on ${port}: connection closed`)));
    sock.on('data', (chunk) => {
      buf += chunk.toString('latin1');
      if (!buf.endsWith('END\r\n')) return;
      const map = {};
      for (const line of buf.split('\r\n')) {
        const m = /^STAT (\S+) ?(.*)$/.exec(line);
        if (m) map[m[1]] = m[2];
      }
      finish(null, map);
    });
  });
}

/** "node1:alive,node2:dead" -> { node1: 'alive', node2: 'dead' } */
export function parseMembers(value) {
  const out = {};
  for (const part of (value ?? '').split(',').filter(Boolean)) {
    const i = part.lastIndexOf(':');
    if (i > 0) out[part.slice(0, i)] = part.slice(i + 1);
  }
  return out;
}

/** Resolves (ms waited) once every port reports n members, all alive; rejects at the deadline. */
export async function waitForMembers(ports, n, timeoutMs = 15000) {
  const t0 = Date.now();
  let last = [];
  for (;;) {
    last = await Promise.all(ports.map((p) => stats(p, 1000).then((s) => s.cluster_members ?? '', (e) => String(e))));
    const ok = last.every((v) => {
      const m = parseMembers(v);
      return Object.keys(m).length === n && Object.values(m).every((s) => s === 'alive');
    });
    if (ok) return Date.now() - t0;
    if (Date.now() - t0 > timeoutMs) throw new Error(`members not converged after ${timeoutMs} ms: ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** One ascii command on a fresh connection; resolves the first reply line. */
function command(port, text, timeoutMs = 1000) {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    let buf = '';
    const t = setTimeout(() => { sock.destroy(); resolve('TIMEOUT'); }, timeoutMs);
    sock.on('connect', () => sock.write(text));
    sock.on('error', (e) => { clearTimeout(t); resolve(`ERROR ${e.code ?? e.message}`); });
    sock.on('data', (c) => {
      buf += c.toString('latin1');
      const nl = buf.indexOf('\r\n');
      if (nl >= 0) { clearTimeout(t); sock.destroy(); resolve(buf.slice(0, nl)); }
    });
  });
}

export async function waitForServing(port, n, timeoutMs = 15000) {
  const t0 = Date.now();
  const keys = Array.from({ length: n }, (_, i) => `memc.sess.key.benchprobe${String(i).padStart(22, '0')}`);
  let failed = 0; let firstError = null;
  const pending = new Set(keys);
  while (pending.size) {
    for (const k of [...pending]) {
      const r = await command(port, `set ${k} 0 0 2\r\nok\r\n`);
      if (r === 'STORED') pending.delete(k); else { failed++; firstError ??= r; }
    }
    if (!pending.size) break;
    if (Date.now() - t0 > timeoutMs) throw new Error(`${pending.size} of ${n} probe sets still failing after ${timeoutMs} ms: ${firstError}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  for (const k of keys) await command(port, `delete ${k}\r\n`);
  return { servingMs: Date.now() - t0, failedTries: failed, firstError };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values: opt } = parseArgs({
    options: {
      ports: { type: 'string' },
      'wait-members': { type: 'string' },
      'wait-serving': { type: 'string' },
      'timeout-ms': { type: 'string', default: '15000' },
      names: { type: 'string' },
    },
  });
  const ports = (opt.ports ?? '').split(',').filter(Boolean).map(Number);
  if (!ports.length) { console.error('--ports is required'); process.exit(2); }
  try {
    if (opt['wait-serving']) {
      console.log(JSON.stringify(await waitForServing(ports[0], Number(opt['wait-serving']), Number(opt['timeout-ms']))));
    } else if (opt['wait-members']) {
      const ms = await waitForMembers(ports, Number(opt['wait-members']), Number(opt['timeout-ms']));
      console.log(JSON.stringify({ convergedMs: ms }));
    } else {
      const names = opt.names?.split(',');
      for (const p of ports) {
        const s = await stats(p, Number(opt['timeout-ms']));
        console.log(JSON.stringify(names ? Object.fromEntries(names.map((k) => [k, s[k]])) : s));
      }
    }
  } catch (e) {
    console.error(String(e?.message ?? e));
    process.exit(1);
  }
}
