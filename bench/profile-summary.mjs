#!/usr/bin/env node
// Summarises a .cpuprofile (node --cpu-prof): top functions by self time and by total
// (inclusive) time, with the share of all samples.
// usage: node bench/profile-summary.mjs bench/out/prof/CPU.*.cpuprofile [--top 30]
import { readFileSync } from 'node:fs';

const args = process.argv.slice(2);
const topIdx = args.indexOf('--top');
const top = topIdx >= 0 ? Number(args[topIdx + 1]) : 30;
const file = args.find((a, i) => !a.startsWith('--') && (topIdx < 0 || i !== topIdx + 1));
const prof = JSON.parse(readFileSync(file, 'utf8'));

const byId = new Map(prof.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

// time per sample = delta to next; attribute to node
const selfUs = new Map();
const { samples, timeDeltas } = prof;
for (let i = 0; i < samples.length; i++) {
  const dt = timeDeltas[i + 1] ?? 0;
  selfUs.set(samples[i], (selfUs.get(samples[i]) ?? 0) + dt);
}
const total = [...selfUs.values()].reduce((a, b) => a + b, 0);

const label = (n) => {
  const cf = n.callFrame;
  const url = cf.url.replace(/^file:\/\//, '').replace(/^.*\/(dist|node_modules)\//, '$1/');
  return `${cf.functionName || '(anonymous)'} ${url ? `${url}:${cf.lineNumber + 1}` : ''}`.trim();
};

const selfByLabel = new Map(); const totalByLabel = new Map();
for (const [id, us] of selfUs) {
  const n = byId.get(id);
  const l = label(n);
  selfByLabel.set(l, (selfByLabel.get(l) ?? 0) + us);
  const seen = new Set();
  for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
    const cl = label(byId.get(cur));
    if (seen.has(cl)) continue; // recursion: count once
    seen.add(cl);
    totalByLabel.set(cl, (totalByLabel.get(cl) ?? 0) + us);
  }
}
const pct = (us) => `${((100 * us) / total).toFixed(1).padStart(5)}%`;
const print = (title, m) => {
  console.log(`\n## ${title} (of ${(total / 1e6).toFixed(2)} s sampled)`);
  for (const [l, us] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${pct(us)}  ${l}`);
};
print('self time', selfByLabel);
print('total time', totalByLabel);
