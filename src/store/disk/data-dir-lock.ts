/**
 * One daemon per data directory: two daemons appending to the same log would interleave their
 * records and corrupt it. The lock is an flock(2) on `LOCK`, which the kernel drops when its
 * holder dies however it dies (kill -9 included), so a crash never leaves a stale lock, and which
 * holds between containers that share a volume. Node has no flock, so a small child process holds
 * it: util-linux's flock(1) takes the lock and runs `cat`, which lives until the daemon closes its
 * end of the pipe (on stop) or dies (the pipe closes with it). The LOCK file names the holder's
 * pid, for the message a second daemon prints.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import type { Socket } from 'node:net';
import path from 'node:path';
import { LOCK_FILE } from './data-files.js';

/** flock(1) exits with this when the lock is held (--conflict-exit-code). */
const HELD = 75;

export class DataDirLockedError extends Error {
  readonly code = 'DATA_DIR_LOCKED';
}

export interface DataDirLock {
  release(): Promise<void>;
}

export async function lockDataDir(dir: string): Promise<DataDirLock> {
  const file = path.join(dir, LOCK_FILE);
  const child = spawn('flock', ['--nonblock', '--conflict-exit-code', String(HELD), file, 'sh', '-c', 'echo locked; exec cat >/dev/null'], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
  const outcome = await new Promise<'locked' | { code: number | null; error?: Error }>((resolve) => {
    child.stdout!.once('data', () => resolve('locked'));
    child.once('error', (error) => resolve({ code: null, error }));
    child.once('exit', (code) => resolve({ code }));
  });
  if (outcome !== 'locked') {
    if (outcome.code === HELD) {
      let holder = '';
      try {
        holder = fs.readFileSync(file, 'utf8').trim();
      } catch {
        // the holder's pid is a courtesy
      }
      throw new DataDirLockedError(`data directory ${dir} is in use by another daemon${holder ? ` (pid ${holder})` : ''}: `
        + 'each daemon needs a --data-dir of its own');
    }
    const why = outcome.error !== undefined ? outcome.error.message : `flock exited with ${outcome.code}: ${stderr.trim()}`;
    throw new Error(`cannot lock data directory ${dir}: ${why} (flock(1), from util-linux, must be installed)`);
  }
  fs.writeFileSync(file, `${process.pid}\n`);
  // The holder must not keep a stopping daemon alive: it ends when the daemon ends.
  unrefChild(child);
  return {
    release: () => new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      // Held by the stop from here: an unref'd child would let the process end before it exits.
      child.ref();
      child.once('exit', () => resolve());
      child.stdin!.end();
    }),
  };
}

function unrefChild(child: ChildProcess): void {
  child.unref();
  for (const stream of [child.stdin, child.stdout, child.stderr]) (stream as Socket | null)?.unref();
}
