#!/usr/bin/env node
// Turns bench/out/results.tsv (bench round server metric value) into markdown tables.
// usage: node bench/report.mjs results.tsv machine.txt sessions
import { readFileSync, existsSync } from 'node:fs';

const [resultsPath, machinePath, sessionsArg] = process.argv.slice(2);
const sessions = Number(sessionsArg ?? 100000);
const rows = readFileSync(resultsPath, 'utf8').split('\n').filter(Boolean).map((l) => {
  const [bench, round, server, metric, value] = l.split('\t');
  return { bench, round: Number(round), server, metric, value };
});
const machine = existsSync(machinePath) ? readFileSync(machinePath, 'utf8').trim() : '';
const fake = /FAKE/.test(machine);
const dName = fake ? 'daemon slot (FAKE: memcached)' : 'session-cluster';

const num = (v) => (v === undefined || v === '' || v === 'FAIL' ? NaN : Number(v));
const median = (xs) => {
  const a = xs.filter((x) => Number.isFinite(x)).sort((p, q) => p - q);
  if (!a.length) return NaN;
  const m = a.length >> 1;
  return a.length % 2 ? a[m] : (a[m - 1] + a[m]) / 2;
};
const get = (bench, round, server, metric) => rows.find((r) => r.bench === bench && r.round === round && r.server === server && r.metric === metric)?.value;
const rounds = (bench) => [...new Set(rows.filter((r) => r.bench === bench).map((r) => r.round))].sort((a, b) => a - b);
const fmtInt = (x) => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : 'FAIL');
const fmtMiB = (kb) => (Number.isFinite(kb) ? (kb / 1024).toFixed(1) : 'FAIL');
const fmtRatio = (x) => (Number.isFinite(x) ? x.toFixed(2) : 'n/a');
const verdict = (ok) => (ok === undefined ? '' : ok ? ' ✅' : ' ❌');

const out = [];
out.push('```', machine, '```', '');

// ---------------------------------------------------------------- throughput
const tpBenches = [...new Set(rows.map((r) => r.bench).filter((b) => b.startsWith('tp-')))];
const settings = Object.fromEntries(machine.split('\n').find((l) => l.startsWith('settings:'))?.slice(10).match(/\w+=("[^"]*"|\S+)/g)?.map((kv) => {
  const i = kv.indexOf('='); return [kv.slice(0, i), kv.slice(i + 1).replace(/"/g, '')];
}) ?? []);
for (const bench of tpBenches) {
  const proto = bench.slice(3);
  out.push(`### Throughput — memcaslap, ${proto}, 90% get / 10% set, key 40 B, value 512 B, -c ${settings.concurrency ?? '?'} -T ${settings.threads ?? '?'} -t ${settings.duration ?? '?'}`, '');
  out.push(`| round | memcached TPS | ${dName} TPS | TPS ratio | memcached CPU µs/op (usr+sys) | ${dName} CPU µs/op (usr+sys) | CPU ratio mc/daemon |`, '|---|---:|---:|---:|---:|---:|---:|');
  const mc = []; const d = []; const ratios = []; const mcCpu = []; const dCpu = []; const cpuRatios = [];
  const cpu = (r, server) => {
    const v = get(bench, r, server, 'cpu_us_per_op');
    if (!v || v === 'FAIL') return { usr: NaN, sys: NaN, total: NaN };
    const [usr, sys] = v.split(' ').map(Number);
    return { usr, sys, total: usr + sys };
  };
  const fmtCpu = (c) => (Number.isFinite(c.total) ? `${c.total.toFixed(1)} (${c.usr.toFixed(1)}+${c.sys.toFixed(1)})` : 'n/a');
  const invalid = [];
  /** a run is valid when there were no error replies and gets were ~90% of the commands */
  const valid = (r, server) => {
    const errs = num(get(bench, r, server, 'error_replies'));
    const g = num(get(bench, r, server, 'cmd_get')); const st = num(get(bench, r, server, 'cmd_set'));
    const getShare = g / (g + st);
    const ok = !(errs > 0) && !(getShare < 0.8);
    if (!ok) invalid.push(`round ${r} ${server === 'daemon' ? dName : server}: ${errs || 0} error replies (first: \`${get(bench, r, server, 'first_error') || '-'}\`), cmd_get=${g}, cmd_set=${st}`);
    return ok;
  };
  for (const r of rounds(bench)) {
    const okA = valid(r, 'memcached'); const okB = valid(r, 'daemon');
    const a = okA ? num(get(bench, r, 'memcached', 'tps')) : NaN; const b = okB ? num(get(bench, r, 'daemon', 'tps')) : NaN;
    const none = { usr: NaN, sys: NaN, total: NaN };
    const ca = okA ? cpu(r, 'memcached') : none; const cb = okB ? cpu(r, 'daemon') : none;
    mc.push(a); d.push(b); ratios.push(b / a); mcCpu.push(ca); dCpu.push(cb); cpuRatios.push(ca.total / cb.total);
    const misses = [get(bench, r, 'memcached', 'get_misses'), get(bench, r, 'daemon', 'get_misses')];
    const note = misses.some((m) => m && m !== '0') ? ` (get_misses mc=${misses[0]} d=${misses[1]})` : '';
    out.push(`| ${r}${r % 2 ? ' (mc first)' : ' (daemon first)'} | ${fmtInt(a)} | ${fmtInt(b)} | ${fmtRatio(b / a)}${note} | ${fmtCpu(ca)} | ${fmtCpu(cb)} | ${fmtRatio(ca.total / cb.total)} |`);
  }
  const medCpu = (xs) => ({ usr: median(xs.map((c) => c.usr)), sys: median(xs.map((c) => c.sys)), total: median(xs.map((c) => c.total)) });
  const ratioOfMedians = median(d) / median(mc);
  const mA = medCpu(mcCpu); const mB = medCpu(dCpu);
  out.push(`| **median** | **${fmtInt(median(mc))}** | **${fmtInt(median(d))}** | **${fmtRatio(ratioOfMedians)}**${verdict(Number.isFinite(ratioOfMedians) ? ratioOfMedians >= 0.6 : false)} | ${fmtCpu(mA)} | ${fmtCpu(mB)} | ${fmtRatio(mA.total / mB.total)} |`);
  if (invalid.length) {
    out.push('', `**INVALID runs (shown as FAIL, left out of the medians):**`, '', ...invalid.map((x) => `- ${x}`));
  }
  out.push('', `Median of the per-round TPS ratios: ${fmtRatio(median(ratios))}; of the per-round CPU ratios: ${fmtRatio(median(cpuRatios))}. Target: daemon/memcached TPS ≥ 0.6.`, '');
}

// ---------------------------------------------------------------- memory
if (rows.some((r) => r.bench === 'mem')) {
  const per = { memcached: [], daemon: [] };
  for (const server of ['memcached', 'daemon']) {
    for (const r of rounds('mem')) {
      const before = num(get('mem', r, server, 'rss_before_kb'));
      const after = num(get('mem', r, server, 'rss_after_kb'));
      const peak = num(get('mem', r, server, 'rss_peak_kb'));
      let load = {};
      const jp = get('mem', r, server, 'load_json');
      try { load = JSON.parse(readFileSync(jp, 'utf8')); } catch { /* failed run */ }
      const st = load.stats ?? {};
      per[server].push({
        r, before, after, peak, delta: after - before,
        stored: load.stored, errors: load.errors, verified: load.verified, verifyErrors: load.verifyErrors,
        loadSeconds: load.loadSeconds, currItems: st.curr_items, evictions: st.evictions, bytes: st.bytes,
        samples: load.errorSamples,
      });
    }
  }
  const med = (server, k) => median(per[server].map((x) => num(x[k])));
  out.push(`### Memory — ${sessions.toLocaleString('en-US')} sessions × ${settings.size ?? '?'} B (keys \`memc.sess.key.<32 chars>\`, random values), pipelined ascii \`set\``, '');
  out.push(`| median of ${rounds('mem').length} rounds | memcached | ${dName} | ratio |`, '|---|---:|---:|---:|');
  const line = (label, k, fmt, target) => {
    const a = med('memcached', k); const b = med('daemon', k);
    out.push(`| ${label} | ${fmt(a)} | ${fmt(b)} | ${fmtRatio(b / a)}${target ? verdict(Number.isFinite(b / a) ? b / a <= target : false) : ''} |`);
  };
  line('RSS before load (MiB)', 'before', fmtMiB);
  line('RSS after load (MiB)', 'after', fmtMiB);
  line('**RSS after − before (MiB)**', 'delta', fmtMiB, 1.5);
  line('peak RSS, VmHWM (MiB)', 'peak', fmtMiB);
  line('load time (s)', 'loadSeconds', (x) => (Number.isFinite(x) ? x.toFixed(2) : 'FAIL'));
  const payloadMiB = (sessions * ((Number(settings.size) || 2048) + 46)) / 1048576;
  out.push('', `Payload (keys + values): ${payloadMiB.toFixed(1)} MiB. Target: daemon/memcached ≤ 1.5 on RSS after − before.`, '');

  out.push('| round | server | RSS before (MiB) | after (MiB) | after − before (MiB) | peak (MiB) | stored | verified | curr_items | evictions | stats bytes |', '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of rounds('mem')) {
    for (const server of ['memcached', 'daemon']) {
      const x = per[server].find((y) => y.r === r);
      if (!x) continue;
      const itemsOk = Number(x.currItems) === sessions && (x.evictions === undefined || Number(x.evictions) === 0);
      out.push(`| ${r} | ${server === 'daemon' ? dName : server} | ${fmtMiB(x.before)} | ${fmtMiB(x.after)} | ${fmtMiB(x.delta)} | ${fmtMiB(x.peak)} | ${x.stored ?? 'FAIL'}${x.errors ? ` (${x.errors} errors)` : ''} | ${x.verified ?? '-'}${x.verifyErrors ? ` (${x.verifyErrors} bad)` : ''} | ${x.currItems ?? 'n/a'}${verdict(itemsOk)} | ${x.evictions ?? 'n/a'} | ${x.bytes ?? 'n/a'} |`);
      if (x.samples?.length) out.push(`|  |  | errors: ${x.samples.map((s) => String(s).replace(/\|/g, '\\|')).join('; ')} |  |  |  |  |  |  |  |  |`);
    }
  }
  out.push('');
}

console.log(out.join('\n'));
