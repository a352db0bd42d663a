// The table of bench/locks.sh: per store, the median of its runs' p50, p99, failed requests and
// lost updates, and the ratio of its p99 to memcached's.
//
//   node bench/locks-report.mjs RESULTS.tsv MACHINE.txt
import { readFileSync } from 'node:fs';

const [resultsFile, machineFile] = process.argv.slice(2);
const runs = new Map();
let lockStats = '';
for (const line of readFileSync(resultsFile, 'utf8').split('\n')) {
  if (line === '') continue;
  const [target, repeat, json] = line.split('\t');
  if (target === 'locks') {
    lockStats = repeat;
    continue;
  }
  if (!runs.has(target)) runs.set(target, []);
  runs.get(target).push(JSON.parse(json));
}
const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)];
};
const NAMES = {
  memcached: 'memcached (php-memcached)',
  sc: 'session-cluster, handoff off',
  'sc-handoff': 'session-cluster, --lock-wait-ms 1000',
  files: 'files (flock)',
  redis: 'Redis (phpredis, locking on)',
};
const reference = median((runs.get('memcached') ?? []).map((r) => r.p99));
console.log(readFileSync(machineFile, 'utf8').trim().split('\n').map((l) => `    ${l}`).join('\n'));
console.log('');
console.log('| store | p50 ms | p99 ms | p99 / memcached | failed session_start() | lost updates | requests per run | seconds per run |');
console.log('|---|---|---|---|---|---|---|---|');
for (const [target, list] of runs) {
  const p99 = median(list.map((r) => r.p99));
  const ratio = reference > 0 ? (p99 / reference).toFixed(2) : 'n/a';
  console.log(`| ${NAMES[target] ?? target} | ${median(list.map((r) => r.p50))} | ${p99} | ${ratio} | ${median(list.map((r) => r.failed))} (runs: ${list.map((r) => r.failed).join(', ')}) | ${median(list.map((r) => r.lost))} | ${list[0].requests} | ${median(list.map((r) => r.seconds))} |`);
}
if (lockStats !== '') console.log(`\nsession-cluster with handoff, at the end: ${lockStats.trim()}`);
