#!/usr/bin/env node
// The table of bench/disk.sh: medians over the rounds, as ratios, from its results.tsv
// (what size target round value) and machine.txt.
// usage: node bench/disk-report.mjs bench/out/disk/results.tsv bench/out/disk/machine.txt
import { readFileSync } from 'node:fs';

const [resultsFile, machineFile] = process.argv.slice(2);
const rows = readFileSync(resultsFile, 'utf8').trim().split('\n').filter(Boolean).map((l) => l.split('\t'));
const median = (xs) => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const fmt = (n) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : 'FAIL');
const ratio = (a, b) => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? (a / b).toFixed(2) : '–');
const out = [];
out.push('```', readFileSync(machineFile, 'utf8').trim(), '```', '');

const tps = rows.filter((r) => r[0] === 'tps');
const sizes = [...new Set(tps.map((r) => r[1]))];
const targets = ['memcached', 'memory', 'disk-everysec', 'disk-always', 'redis-everysec', 'redis-always'];
const names = {
  memcached: 'memcached 1.6 (reference)', memory: 'session-cluster, memory', 'disk-everysec': 'session-cluster, --data-dir --fsync everysec',
  'disk-always': 'session-cluster, --data-dir --fsync always', 'redis-everysec': 'Redis, appendonly, appendfsync everysec', 'redis-always': 'Redis, appendonly, appendfsync always',
};
for (const size of sizes) {
  const m = Object.fromEntries(targets.map((t) => [t, median(tps.filter((r) => r[1] === size && r[2] === t).map((r) => Number(r[4])))]));
  const rounds = Object.fromEntries(targets.map((t) => [t, tps.filter((r) => r[1] === size && r[2] === t).map((r) => r[4]).join(' / ')]));
  out.push(`### ${size}-byte values, 50 % writes`, '', '| server | ops/s (median) | rounds | vs memory storage | vs memcached |', '|---|---|---|---|---|');
  for (const t of targets) out.push(`| ${names[t]} | ${fmt(m[t])} | ${rounds[t]} | ${ratio(m[t], m.memory)} | ${ratio(m[t], m.memcached)} |`);
  out.push('', `- disk everysec / memory storage: **${ratio(m['disk-everysec'], m.memory)}** (target ≥ 0.8)`,
    `- disk everysec / Redis everysec: **${ratio(m['disk-everysec'], m['redis-everysec'])}** (target > 1)`,
    `- disk always / Redis always: **${ratio(m['disk-always'], m['redis-always'])}** (target > 1)`, '');
}
const one = (what, key) => rows.find((r) => r[0] === what && r[1] === key)?.[4] ?? '–';
if (rows.some((r) => r[0] === 'recovery')) {
  out.push('### Recovery', '', '| figure | value |', '|---|---|',
    `| data directory after writing, bytes | ${one('recovery', 'files_bytes')} |`,
    `| records loaded | ${one('recovery', 'records')} |`, `| sessions loaded | ${one('recovery', 'items')} (stats after: ${one('recovery', 'verify')}) |`,
    `| loading took (log "disk storage: loaded"), s | **${one('recovery', 'load_seconds')}** (target < 10) |`,
    `| from start to the client port open, s | ${one('recovery', 'start_to_port_open_seconds')} |`,
    `| then values warmed into memory in the background (log "disk storage: values warmed into memory"), s | ${one('recovery', 'warm_seconds')} (${one('recovery', 'warm_values')} values) |`, '');
}
if (rows.some((r) => r[0] === 'churn')) {
  out.push('### Churn', '', '| figure | value |', '|---|---|',
    `| disk used / live data, the highest second after the first lifetime | **${one('churn', 'peak_ratio')}** (target ≤ 2) |`,
    `| disk used / live data, at the end | ${one('churn', 'final_ratio')} |`,
    `| compaction passes (log lines "disk storage: compacted") | ${one('churn', 'compaction_passes')} |`, '');
}
console.log(out.join('\n'));
