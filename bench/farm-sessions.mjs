// Creates the sessions of the PHP farm bench (bench/farm.sh): COUNT requests without a cookie to
// URL, as many new visitors, and writes each one's cookies ("PHPSESSID=...; route=...") to FILE,
// one line per session, for bench/farm.lua to send back.
//
//   node bench/farm-sessions.mjs URL COUNT FILE
import { writeFileSync } from 'node:fs';

const [url, countText, file] = process.argv.slice(2);
const count = Number(countText);
const lines = [];
const CONCURRENCY = 16;
let started = 0;
async function visitor() {
  while (started < count) {
    started++;
    const response = await fetch(url);
    const body = await response.text();
    if (response.status !== 200) throw new Error(`${url}: ${response.status} ${body.slice(0, 200)}`);
    const cookies = response.headers.getSetCookie().map((cookie) => cookie.split(';')[0]).filter((c) => /^(PHPSESSID|route)=/.test(c));
    if (!cookies.some((c) => c.startsWith('PHPSESSID='))) throw new Error(`${url}: no session cookie in ${JSON.stringify(response.headers.getSetCookie())}`);
    lines.push(cookies.join('; '));
  }
}
await Promise.all(Array.from({ length: CONCURRENCY }, visitor));
writeFileSync(file, `${lines.join('\n')}\n`);
