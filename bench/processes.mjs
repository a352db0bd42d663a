// Processes a bench script starts and measures (bench/peer-cost.mjs, bench/php-request-cost.mjs,
// bench/connection-cost.mjs):
// each in a session of its own, so that its CPU is read over every process of that session, and
// all of them stopped when the script ends, however it ends.
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';

/** The unit of utime and stime in /proc (cpuTicks). */
export const TICKS_PER_SECOND = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim());

const started = new Set();
function stopAll() { for (const p of started) { try { process.kill(-p.pid, 'SIGTERM'); } catch { /* gone */ } } }
process.on('exit', stopAll);
process.on('SIGINT', () => process.exit(130));
process.on('SIGTERM', () => process.exit(143));

export function launch(cmd, args, env = {}) {
  const child = spawn(cmd, args, { detached: true, stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, ...env } });
  started.add(child);
  child.once('exit', () => started.delete(child));
  return child;
}
export async function stop(children) {
  await Promise.all(children.map((c) => new Promise((resolve) => {
    if (c.exitCode !== null || c.signalCode !== null) return resolve();
    c.once('exit', resolve);
    try { process.kill(-c.pid, 'SIGTERM'); } catch { resolve(); }
    setTimeout(() => { try { process.kill(-c.pid, 'SIGKILL'); } catch { /* gone */ } }, 8000).unref();
  })));
}

/**
 * utime + stime (ticks), stime alone, and read / write system calls of every process in the
 * sessions led by `pids`. User time is the JavaScript (and libuv); system time is the kernel's
 * (socket writes and reads, their delivery on loopback, epoll and wakeups).
 */
export function cpuTicks(pids) {
  const sessions = new Set(pids);
  let ticks = 0;
  let sysTicks = 0;
  let syscalls = 0;
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let stat;
    try { stat = readFileSync(`/proc/${name}/stat`, 'utf8'); } catch { continue; }
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields after the name: state(0) ppid(1) pgrp(2) session(3) ... utime(11) stime(12)
    if (!sessions.has(Number(f[3]))) continue;
    ticks += Number(f[11]) + Number(f[12]);
    sysTicks += Number(f[12]);
    try {
      const io = readFileSync(`/proc/${name}/io`, 'utf8');
      syscalls += Number(/syscr: (\d+)/.exec(io)[1]) + Number(/syscw: (\d+)/.exec(io)[1]);
    } catch { /* not readable: counted as 0 */ }
  }
  return { ticks, sysTicks, syscalls };
}
