// The driver of the session lock bench (bench/locks.sh): USERS browsers, each with its own
// session, each firing BURST requests at once at the session page (a page and its ajax calls)
// and, once all have answered, the next burst, ROUNDS times. A warm-up request per user starts
// its session first, and a last one reads how many requests its session counted: every request
// that answered 200 counted one, unless a store let two requests hold the session at once and
// one overwrote the other. Prints one JSON line: requests, failed (any answer but 200: a failed
// session_start() is 503), lost (requests answered 200 whose count was overwritten), p50, p99
// and max latency in ms, and the seconds it took.
//
//   node bench/lock-burst.mjs URL USERS BURST ROUNDS
import http from 'node:http';
import { randomBytes } from 'node:crypto';

const [url, users, burst, rounds] = [process.argv[2], ...process.argv.slice(3, 6).map(Number)];
if (!url || !(users > 0) || !(burst > 0) || !(rounds > 0)) {
  console.error('usage: node bench/lock-burst.mjs URL USERS BURST ROUNDS');
  process.exit(2);
}
const agent = new http.Agent({ keepAlive: true, maxSockets: users * burst });
// PHP's own id alphabet (session.sid_bits_per_character=5): 26 characters.
const alphabet = '0123456789abcdefghijklmnopqrstuv';
const newId = () => [...randomBytes(26)].map((b) => alphabet[b & 31]).join('');

function request(id) {
  const started = performance.now();
  return new Promise((resolve) => {
    const req = http.get(url, { agent, headers: { cookie: `PHPSESSID=${id}` } }, (res) => {
      let body = '';
      res.setEncoding('latin1');
      res.on('data', (chunk) => { body += chunk; });
      res.on('end', () => resolve({ ms: performance.now() - started, ok: res.statusCode === 200, hits: Number(/^ok (\d+)/.exec(body)?.[1] ?? -1) }));
    });
    req.on('error', () => resolve({ ms: performance.now() - started, ok: false, hits: -1 }));
  });
}

const ids = Array.from({ length: users }, newId);
/** requests answered 200, per user: each counted one in its session */
const counted = await Promise.all(ids.map(async (id) => ((await request(id)).ok ? 1 : 0)));
const latencies = [];
let failed = 0;
const began = performance.now();
await Promise.all(ids.map(async (id, user) => {
  for (let round = 0; round < rounds; round++) {
    const answers = await Promise.all(Array.from({ length: burst }, () => request(id)));
    for (const answer of answers) {
      latencies.push(answer.ms);
      if (answer.ok) counted[user]++;
      else failed++;
    }
  }
}));
const seconds = (performance.now() - began) / 1000;
let lost = 0;
await Promise.all(ids.map(async (id, user) => {
  const last = await request(id);
  if (last.ok) lost += Math.max(0, counted[user] + 1 - last.hits);
}));
latencies.sort((a, b) => a - b);
const at = (p) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))];
console.log(JSON.stringify({ requests: latencies.length, failed, lost, p50: +at(0.5).toFixed(1), p99: +at(0.99).toFixed(1), max: +latencies.at(-1).toFixed(1), seconds: +seconds.toFixed(2) }));
agent.destroy();
