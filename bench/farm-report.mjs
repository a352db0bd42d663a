// The table of bench/farm.sh: per store, the median requests/s over the rounds and its ratio to
// memcached's, the median p50 and p99 (wrk's latency distribution) with the p99's ratio to
// memcached's, and the failed requests (non-2xx answers and socket errors) over all rounds.
//
//   node bench/farm-report.mjs OUT_DIR TARGET...
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

const [dir, ...targets] = process.argv.slice(2);

/** wrk's "12.34ms" / "850.00us" / "1.02s" in ms */
function ms(text) {
  const match = /^([\d.]+)(us|ms|s|m)$/.exec(text);
  if (match === null) throw new Error(`not a wrk duration: ${text}`);
  const factor = { us: 0.001, ms: 1, s: 1000, m: 60_000 }[match[2]];
  return Number(match[1]) * factor;
}

function parse(file) {
  const text = readFileSync(file, 'utf8');
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(text)?.[1]);
  const requests = Number(/(\d+) requests in/.exec(text)?.[1]);
  const p50 = ms(/^\s+50%\s+(\S+)/m.exec(text)[1]);
  const p99 = ms(/^\s+99%\s+(\S+)/m.exec(text)[1]);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(text)?.[1] ?? 0);
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  const socketErrors = socket === null ? 0 : socket.slice(1).reduce((sum, n) => sum + Number(n), 0);
  // the 3-node cluster's commands and forwards during this run (bench/farm.sh, cluster_counts)
  let commands = 0;
  let forwarded = 0;
  try {
    [commands, forwarded] = readFileSync(file.replace(/wrk-(.+)\.txt$/, 'cluster-$1.txt'), 'utf8').trim().split(' ').map(Number);
  } catch {
    // an older run without the counts
  }
  return { rps, requests, p50, p99, errors: non2xx + socketErrors, commands, forwarded };
}

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)];
};

const runs = new Map(targets.map((t) => [t, []]));
for (const file of readdirSync(dir).filter((f) => /^wrk-.+-\d+\.txt$/.test(f)).sort()) {
  const [, target, round] = /^wrk-(.+)-(\d+)\.txt$/.exec(file);
  runs.get(target)?.push({ round: Number(round), ...parse(path.join(dir, file)) });
}
const NAMES = {
  files: 'files (one shared directory)',
  memcached: 'memcached (php-memcached)',
  redis: 'Redis (phpredis)',
  'sc-single': 'session-cluster, one node',
  'sc-3-stock': 'session-cluster, 3 nodes, stock handler, round robin',
  'sc-3-sticky': 'session-cluster, 3 nodes, php-client, sticky',
};
const TARGET_RATIO = { 'sc-single': 0.95, 'sc-3-sticky': 0.9, 'sc-3-stock': 0.8 };
const reference = runs.get('memcached') ?? [];
const refRps = median(reference.map((r) => r.rps));
const refP99 = median(reference.map((r) => r.p99));

console.log(readFileSync(path.join(dir, 'machine.txt'), 'utf8').trim().split('\n').map((l) => `    ${l}`).join('\n'));
console.log('');
console.log('| store | req/s, median (per round) | ÷ memcached | p50 ms | p99 ms | p99 ÷ memcached | failed requests | commands forwarded | target |');
console.log('|---|---|---:|---:|---:|---:|---:|---:|---|');
for (const target of targets) {
  const list = (runs.get(target) ?? []).sort((a, b) => a.round - b.round);
  if (list.length === 0) continue;
  const rps = median(list.map((r) => r.rps));
  const p99 = median(list.map((r) => r.p99));
  const ratio = refRps > 0 ? rps / refRps : NaN;
  const p99Ratio = refP99 > 0 ? p99 / refP99 : NaN;
  const failed = list.reduce((sum, r) => sum + r.errors, 0);
  const goal = TARGET_RATIO[target];
  const verdict = goal === undefined ? '' : `≥ ${goal} and p99 ≤ memcached's: ${ratio >= goal && p99Ratio <= 1 && failed === 0 ? 'met' : 'NOT met'}`;
  const commands = list.reduce((sum, r) => sum + r.commands, 0);
  const forwarded = commands > 0 && target.startsWith('sc-3') ? `${(100 * list.reduce((sum, r) => sum + r.forwarded, 0) / commands).toFixed(0)} %` : '';
  console.log(`| ${NAMES[target] ?? target} | ${Math.round(rps)} (${list.map((r) => Math.round(r.rps)).join(' / ')}) | ${ratio.toFixed(2)} | ${median(list.map((r) => r.p50)).toFixed(2)} | ${p99.toFixed(2)} | ${p99Ratio.toFixed(2)} | ${failed} of ${list.reduce((sum, r) => sum + r.requests, 0)} | ${forwarded} | ${verdict} |`);
}
try {
  const stats = readFileSync(path.join(dir, 'cluster-stats.txt'), 'utf8').trim();
  if (stats !== '') console.log(`\nthe 3-node cluster at the end (both 3-node stores together):\n\n${stats.split('\n').map((l) => `    ${l}`).join('\n')}`);
} catch {
  // no cluster in this run
}
