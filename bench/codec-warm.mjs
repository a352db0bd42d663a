#!/usr/bin/env node
// The peer codec warm: encode and decode of a forwarded get and of its reply (a 512-byte value),
// each run 300,000 times after 50,000 unmeasured, in µs per call. Set beside a profile of the
// one-request-in-flight forward (bench/CLUSTER-RESULTS.md), where the same calls take several
// times longer: each message wakes a process whose caches went cold meanwhile.
// Needs `npm run build` (dist/).
//
//   node bench/codec-warm.mjs
import { encodeTimedCommand, decodeTimedCommand, encodeReply, decodeReply } from '../dist/cluster/peer/command-codec.js';
const key = 'memc.sess.key.' + 'k'.repeat(26);
const cmd = { kind: 'get', keys: [key], withCas: false };
const value = Buffer.alloc(512, 1);
const reply = { kind: 'values', entries: [{ key, flags: 0, value, cas: 12345 }], missing: [] };
function time(name, f, n = 300000) {
  for (let i = 0; i < 50000; i++) f();
  const t = process.hrtime.bigint();
  for (let i = 0; i < n; i++) f();
  console.log(name, (Number(process.hrtime.bigint() - t) / n / 1000).toFixed(2), 'µs');
}
const timed = { sentAt: Date.now(), validForMs: 2000 };
const enc = encodeTimedCommand(timed, cmd);
time('encodeTimedCommand get', () => encodeTimedCommand(timed, cmd));
time('decodeTimedCommand get', () => decodeTimedCommand(enc));
const encodedReply = encodeReply(reply);
time('encodeReply values', () => encodeReply(reply));
time('decodeReply values', () => decodeReply(encodedReply));
