/**
 * PHP harness: real php8.2-cli processes with the stock session extensions, each pointed at one
 * server (a single daemon, real memcached, or one cluster node: anything with a host and a port),
 * as PHP on a web server talks to its local daemon. Every setting is passed with -d, so the
 * machine's php.ini cannot change the outcome.
 *
 * Three client setups: php-memcached over the binary protocol (its default), php-memcached over
 * ascii, and pecl memcache (ascii). Each knows the keys its extension uses and how it locks.
 *
 * php() / phpOk() run integration/php/session.php, one session request per process, like separate
 * web requests; runPhpLines() runs a long-lived script that reports one line per request.
 */
import { execa } from 'execa';
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { expect } from 'vitest';
import { repoRoot } from './harness.js';

export const PHP = 'php8.2';
export const SESSION_SCRIPT = path.join(repoRoot, 'integration', 'php', 'session.php');

/** Where PHP sends its session traffic; `id` names a cluster node in messages. */
export interface SessionServer { host: string; port: number; id?: string }

export interface ClientSetup {
  name: string;
  /** short tag for session ids and data */
  tag: string;
  /** ini that points the extension's session handler at `server` */
  ini(server: SessionServer): string[];
  /** ini that turns session locking on with waits generous enough for N contenders */
  lockingIni: string[];
  /** the memcached key holding session `id` */
  key(id: string): string;
  lockKey(id: string): string;
  /** what the lock key holds once the lock is released (null: deleted) */
  releasedLock: { flags: number; value: string } | null;
  /** php-memcached validates ids with an exist check; pecl memcache has no validate_sid */
  strictRejectsUnknownId: boolean;
}

// php-memcached: lock key is ADDed (empty wait list = fail), then DELETEd on release. Waits go
// 5 ms, 10 ms, ... up to 50 ms, 1000 times: ~50 s before it gives up, far beyond what 20
// contenders need, so a give-up means a lock was never released.
export const MEMCACHED_LOCKING = [
  'memcached.sess_locking=1', 'memcached.sess_lock_wait_min=5', 'memcached.sess_lock_wait_max=50',
  'memcached.sess_lock_retries=1000', 'memcached.sess_lock_expire=30',
];

/**
 * The three setups. `memcachedLockExpire` (seconds) goes into php-memcached's every request, not
 * only the locking ones: its lock expiry defaults to max_execution_time, which the CLI sets to 0
 * (never), so without it a lock left by a failed request is never freed.
 */
export function clientSetups(opts: { memcachedLockExpire?: number } = {}): [ClientSetup, ClientSetup, ClientSetup] {
  const expire = opts.memcachedLockExpire === undefined ? [] : [`memcached.sess_lock_expire=${opts.memcachedLockExpire}`];
  return [
    {
      name: 'php-memcached binary', tag: 'mb',
      ini: (s) => ['session.save_handler=memcached', `session.save_path=${s.host}:${s.port}`, 'memcached.sess_binary_protocol=1', ...expire],
      lockingIni: MEMCACHED_LOCKING,
      key: (id) => `memc.sess.key.${id}`,
      lockKey: (id) => `memc.sess.key.lock.${id}`,
      releasedLock: null,
      strictRejectsUnknownId: true,
    },
    {
      name: 'php-memcached ascii', tag: 'ma',
      ini: (s) => ['session.save_handler=memcached', `session.save_path=${s.host}:${s.port}`, 'memcached.sess_binary_protocol=0', ...expire],
      lockingIni: MEMCACHED_LOCKING,
      key: (id) => `memc.sess.key.${id}`,
      lockKey: (id) => `memc.sess.key.lock.${id}`,
      releasedLock: null,
      strictRejectsUnknownId: true,
    },
    {
      name: 'pecl memcache', tag: 'pm',
      ini: (s) => ['session.save_handler=memcache', `session.save_path=tcp://${s.host}:${s.port}`],
      // pecl memcache always locks (`php -i`: no switch; memcache.lock_timeout=15 is both the lock's
      // TTL and half the wait budget). Lock = `incr <id>.lock` must answer 1 (or `add` succeeds);
      // release = `set <id>.lock 768 15 1` with "0". Its back-off doubles from 5 ms to 1 s.
      lockingIni: ['memcache.lock_timeout=15'],
      key: (id) => id,
      lockKey: (id) => `${id}.lock`,
      releasedLock: { flags: 768, value: '0' },
      // pecl memcache 4.0 registers no validate_sid, so PHP's fallback accepts any id whose read
      // succeeds (a miss reads as ""): it adopts unknown ids even with real memcached.
      strictRejectsUnknownId: false,
    },
  ];
}

/** Settings every PHP run gets, so the machine's php.ini can't change the outcome. */
export const BASE_INI = [
  'display_errors=stderr', 'log_errors=0', 'error_reporting=-1',
  'session.use_strict_mode=0', 'session.use_cookies=0', 'session.cache_limiter=',
  'session.serialize_handler=php', 'session.lazy_write=1', 'session.gc_probability=0',
  'session.gc_maxlifetime=1440', 'session.sid_length=32', 'session.sid_bits_per_character=5',
];

/** ini settings as php's command line takes them: -d each. */
export function iniArgs(settings: string[]): string[] {
  return settings.flatMap((s) => ['-d', s]);
}

/** The php command line for `script` through `setup` to `server`: BASE_INI, the setup's ini, then `ini`. */
export function phpArgs(server: SessionServer, setup: ClientSetup, script: string, args: string[], ini: string[] = []): string[] {
  return [...iniArgs([...BASE_INI, ...setup.ini(server), ...ini]), script, ...args];
}

/** What integration/php/session.php prints. */
export interface PhpResult {
  ok: boolean;
  id: string;
  action?: string;
  data: Record<string, unknown>;
  read?: number;
  status?: number;
  errors: string[];
}

export interface PhpRun { exitCode: number | undefined; result: PhpResult | null; details: string }

/** One session request (integration/php/session.php ACTION [ID] [JSON]) in its own php process. */
export async function php(server: SessionServer, setup: ClientSetup, args: string[], ini: string[] = [], env: Record<string, string> = {}): Promise<PhpRun> {
  const r = await execa(PHP, phpArgs(server, setup, SESSION_SCRIPT, args, ini), { reject: false, timeout: 55_000, env, stdin: 'ignore' });
  let result: PhpResult | null = null;
  try {
    result = JSON.parse(String(r.stdout).trim().split('\n').pop() ?? '') as PhpResult;
    // PHP encodes an empty $_SESSION as [], a filled one as {...}.
    if (Array.isArray(result.data)) result.data = {};
  } catch { /* reported through details */ }
  const via = server.id ? ` via ${server.id}` : '';
  const details = `[${setup.name}${via}] php session.php ${args.join(' ')} -> exit ${r.exitCode}${r.timedOut ? ' (timed out)' : ''}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
  return { exitCode: r.exitCode, result, details };
}

/** Asserts a request succeeded cleanly (exit 0, session started and written, no warning). */
export function expectPhpOk(run: PhpRun): PhpResult {
  expect(run.exitCode, run.details).toBe(0);
  expect(run.result, run.details).not.toBeNull();
  expect(run.result!.ok, run.details).toBe(true);
  expect(run.result!.errors, run.details).toEqual([]);
  return run.result!;
}

/** Runs a request that must succeed cleanly (see expectPhpOk). */
export async function phpOk(server: SessionServer, setup: ClientSetup, args: string[], ini: string[] = [], env: Record<string, string> = {}): Promise<PhpResult> {
  return expectPhpOk(await php(server, setup, args, ini, env));
}

/**
 * Starts a PHP request (session.php hold) that takes the session's lock and keeps it; settles
 * once it holds it. The process is added to `track`, for the test to kill.
 */
export async function holdSessionLock(server: SessionServer, setup: ClientSetup, id: string, track: Set<ChildProcess>): Promise<ChildProcess> {
  const holder = spawn(PHP, phpArgs(server, setup, SESSION_SCRIPT, ['hold', id], setup.lockingIni), { stdio: ['ignore', 'pipe', 'pipe'] });
  track.add(holder);
  let out = '';
  await new Promise<void>((resolve, reject) => {
    holder.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes('"locked":true')) resolve();
    });
    holder.stderr!.on('data', (chunk: Buffer) => { out += chunk.toString(); });
    holder.on('exit', (code) => reject(new Error(`the holder ended (${code}) before it held the lock: ${out}`)));
  });
  return holder;
}

/** PHP's "php" session serializer, for the flat data these tests store. */
export function phpSessionEncode(data: Record<string, string | number>): string {
  return Object.entries(data).map(([k, v]) =>
    typeof v === 'number' ? `${k}|i:${v};` : `${k}|s:${Buffer.byteLength(v)}:"${v}";`).join('');
}

export interface PhpLinesRun {
  lines: string[];
  exitCode: number | null;
  /** the signal that ended it, with the reason when the harness killed it */
  signal: string | null;
  stderr: string;
}

export interface PhpLinesOptions {
  /** written to the process's stdin, which is then closed */
  stdin?: string;
  /** the process's whole environment; default this process's */
  env?: NodeJS.ProcessEnv;
  /** killed after this long */
  timeoutMs: number;
  /** killed when it prints no line for this long (a request the server never answers) */
  stallMs?: number;
  /** each stdout line as it arrives */
  onLine?: (line: string) => void;
  /** the running process is in this set until it ends, for a test's cleanup to kill */
  track?: Set<ChildProcess>;
}

/** Runs php with `args` (a script reporting one stdout line per request); resolves when it ends. */
export function runPhpLines(args: string[], opts: PhpLinesOptions): Promise<PhpLinesRun> {
  const child = spawn(PHP, args, { stdio: ['pipe', 'pipe', 'pipe'], env: opts.env });
  opts.track?.add(child);
  const lines: string[] = [];
  let stderr = '';
  let why = '';
  const stop = (reason: string) => { why ||= reason; child.kill('SIGKILL'); };
  const stallMs = opts.stallMs;
  let stall = stallMs === undefined ? undefined : setTimeout(() => stop(`stalled: no line for ${stallMs} ms`), stallMs);
  createInterface({ input: child.stdout! }).on('line', (line) => {
    lines.push(line);
    if (stallMs !== undefined) {
      clearTimeout(stall);
      stall = setTimeout(() => stop(`stalled: no line for ${stallMs} ms`), stallMs);
    }
    opts.onLine?.(line);
  });
  child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
  child.stdin!.on('error', () => undefined);
  child.stdin!.end(opts.stdin ?? '');
  const timer = setTimeout(() => stop(`killed after ${opts.timeoutMs} ms`), opts.timeoutMs);
  return new Promise((resolve) => {
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      clearTimeout(stall);
      opts.track?.delete(child);
      resolve({ lines, exitCode: code, signal: why ? `${signal} (${why})` : signal, stderr });
    });
  });
}
