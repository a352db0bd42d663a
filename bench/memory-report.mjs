#!/usr/bin/env node
// The table of bench/memory.sh, from its raw output (bench/out/memory-*):
//   node bench/memory-report.mjs memory-results.tsv memory-machine.txt memory-slope.tsv
// RSS against --memory-limit per limit (median and range over the rounds), the peak, and two
// straight lines through (limit, RSS): the typical one (medians of RSS after the fill) and the
// one to size by (the highest peak of each limit).
import fs from 'node:fs';

const [resultsFile, machineFile, slopeFile] = process.argv.slice(2);
const MiB = 1024 * 1024;
const KEY_BYTES = 'memc.sess.key.'.length + 32;
const lastJson = (file) => JSON.parse(fs.readFileSync(file, 'utf8').trim().split('\n').pop());
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };
const mib = (b) => (b / MiB).toFixed(1);

const rows = fs.readFileSync(resultsFile, 'utf8').trim().split('\n').map((line) => {
  const [limit, limitBytes, round, before, rss, hwm, json] = line.split('\t');
  return { limit, limitBytes: Number(limitBytes), round: Number(round), before: Number(before) * 1024, rss: Number(rss) * 1024, hwm: Number(hwm) * 1024, fill: lastJson(json) };
});
const limits = [...new Set(rows.map((r) => r.limit))];
const points = limits.map((limit) => {
  const of = rows.filter((r) => r.limit === limit);
  return {
    limit, limitBytes: of[0].limitBytes, rounds: of.length,
    before: median(of.map((r) => r.before)),
    rss: median(of.map((r) => r.rss)), rssMin: Math.min(...of.map((r) => r.rss)), rssMax: Math.max(...of.map((r) => r.rss)),
    hwmMax: Math.max(...of.map((r) => r.hwm)),
    items: median(of.map((r) => Number(r.fill.stats.curr_items))),
    bytes: median(of.map((r) => Number(r.fill.stats.bytes))),
    evictions: median(of.map((r) => Number(r.fill.stats.evictions))),
    avgValue: median(of.map((r) => r.fill.valueBytes / r.fill.sets)),
    seconds: median(of.map((r) => r.fill.seconds)),
  };
});

/** Least squares: y = k * x + base. */
function fit(xy) {
  const n = xy.length;
  const mx = xy.reduce((s, [x]) => s + x, 0) / n;
  const my = xy.reduce((s, [, y]) => s + y, 0) / n;
  const sxx = xy.reduce((s, [x]) => s + (x - mx) ** 2, 0);
  const sxy = xy.reduce((s, [x, y]) => s + (x - mx) * (y - my), 0);
  const k = sxy / sxx;
  return { k, base: my - k * mx };
}

const out = [];
out.push('```', fs.readFileSync(machineFile, 'utf8').trim(), '```', '');
out.push('| --memory-limit | rounds | RSS at start (MiB) | RSS after, median (MiB) | RSS after, min-max (MiB) | RSS / limit (median) | highest peak, VmHWM (MiB) | items held | stats bytes (MiB) | evictions | fill (s) |');
out.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
for (const p of points) {
  out.push(`| ${p.limit} | ${p.rounds} | ${mib(p.before)} | ${mib(p.rss)} | ${mib(p.rssMin)}-${mib(p.rssMax)} | ${(p.rss / p.limitBytes).toFixed(2)} | ${mib(p.hwmMax)} | ${p.items} | ${mib(p.bytes)} | ${p.evictions} | ${p.seconds.toFixed(1)} |`);
}
out.push('');
out.push(`Average value ${Math.round(median(points.map((p) => p.avgValue)))} B; values sent: ${(rows[0].fill.valueBytes / rows[0].limitBytes).toFixed(0)} times the limit.`);
if (points.length > 1) {
  const typical = fit(points.map((p) => [p.limitBytes, p.rss]));
  const sizing = fit(points.map((p) => [p.limitBytes, p.hwmMax]));
  // The sizing line, raised until no measured peak lies above it.
  const margin = Math.max(...points.map((p) => p.hwmMax - (sizing.k * p.limitBytes + sizing.base)));
  out.push(`Typical (medians of RSS after): **RSS = limit x ${typical.k.toFixed(2)} + ${mib(typical.base)} MiB**.`);
  out.push(`To size by (highest peaks, raised to cover each): **RSS <= limit x ${sizing.k.toFixed(2)} + ${mib(sizing.base + Math.max(0, margin))} MiB**.`);
}
const slope = fs.existsSync(slopeFile) ? fs.readFileSync(slopeFile, 'utf8').trim().split('\n').filter((line) => line !== '').map((line) => line.split('\t')) : [];
if (slope.length >= 3) {
  const fills = slope.slice(1).map(([, rss, json]) => ({ rss: Number(rss) * 1024, fill: lastJson(json) }));
  const [a, b] = [fills.at(-2), fills.at(-1)];
  const items = Number(b.fill.stats.curr_items) - Number(a.fill.stats.curr_items);
  const payloadPerItem = (b.fill.valueBytes + items * KEY_BYTES) / items;
  const perItem = (b.rss - a.rss) / items;
  const counted = (Number(b.fill.stats.bytes) - Number(a.fill.stats.bytes)) / items;
  out.push('');
  out.push(`Per item, with no eviction (${items} items added to ${a.fill.stats.curr_items}, average key + value ${payloadPerItem.toFixed(0)} B): `
    + `RSS grew by **${perItem.toFixed(0)} B** each, so an item costs **${(perItem - payloadPerItem).toFixed(0)} B** beyond its key and value; `
    + `\`stats bytes\` counts ${counted.toFixed(0)} B, i.e. ${(counted - payloadPerItem).toFixed(0)} B beyond them.`);
}
console.log(out.join('\n'));
