/**
 * Stock PHP session handlers against the daemon, unchanged: real php8.2-cli processes (one per
 * "request", settings passed with -d) drive integration/php/session.php through three client
 * setups — php-memcached over the binary protocol (its default), php-memcached over ascii, and
 * pecl memcache (ascii). Each request is a separate process, like separate web requests.
 *
 * Besides what PHP sees, the keys are checked over a raw ascii socket: the daemon must store the
 * exact bytes, under the exact keys, with the exact flags, the extensions use with memcached.
 *
 * SESSION_TEST_TARGET=memcached runs the same file against real memcached (reference run).
 */
import { execa } from 'execa';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot, startDaemon, startMemcached, type RunningServer } from './harness.js';

const PHP = 'php8.2';
const SCRIPT = path.join(repoRoot, 'integration', 'php', 'session.php');
const TARGET = process.env.SESSION_TEST_TARGET === 'memcached' ? 'memcached' : 'session-cluster';

interface ClientSetup {
  name: string;
  ini(server: RunningServer): string[];
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
const memcachedLocking = [
  'memcached.sess_locking=1', 'memcached.sess_lock_wait_min=5', 'memcached.sess_lock_wait_max=50',
  'memcached.sess_lock_retries=1000', 'memcached.sess_lock_expire=30',
];

const SETUPS: ClientSetup[] = [
  {
    name: 'php-memcached binary',
    ini: (s) => ['session.save_handler=memcached', `session.save_path=${s.host}:${s.port}`, 'memcached.sess_binary_protocol=1'],
    lockingIni: memcachedLocking,
    key: (id) => `memc.sess.key.${id}`,
    lockKey: (id) => `memc.sess.key.lock.${id}`,
    releasedLock: null,
    strictRejectsUnknownId: true,
  },
  {
    name: 'php-memcached ascii',
    ini: (s) => ['session.save_handler=memcached', `session.save_path=${s.host}:${s.port}`, 'memcached.sess_binary_protocol=0'],
    lockingIni: memcachedLocking,
    key: (id) => `memc.sess.key.${id}`,
    lockKey: (id) => `memc.sess.key.lock.${id}`,
    releasedLock: null,
    strictRejectsUnknownId: true,
  },
  {
    name: 'pecl memcache',
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

/** Settings every PHP run gets, so the machine's php.ini can't change the outcome. */
const BASE_INI = [
  'display_errors=stderr', 'log_errors=0', 'error_reporting=-1',
  'session.use_strict_mode=0', 'session.use_cookies=0', 'session.cache_limiter=',
  'session.serialize_handler=php', 'session.lazy_write=1', 'session.gc_probability=0',
  'session.gc_maxlifetime=1440', 'session.sid_length=32', 'session.sid_bits_per_character=5',
];

interface PhpResult {
  ok: boolean;
  id: string;
  action: string;
  data: Record<string, unknown>;
  read?: number;
  status: number;
  errors: string[];
}

interface PhpRun { exitCode: number | undefined; result: PhpResult | null; details: string }

function spawnPhp(server: RunningServer, setup: ClientSetup, args: string[], ini: string[] = [], env: Record<string, string> = {}) {
  const settings = [...BASE_INI, ...setup.ini(server), ...ini].flatMap((s) => ['-d', s]);
  return execa(PHP, [...settings, SCRIPT, ...args], { reject: false, timeout: 55_000, env, stdin: 'ignore' });
}

async function php(server: RunningServer, setup: ClientSetup, args: string[], ini: string[] = [], env: Record<string, string> = {}): Promise<PhpRun> {
  const r = await spawnPhp(server, setup, args, ini, env);
  let result: PhpResult | null = null;
  try {
    result = JSON.parse(String(r.stdout).trim().split('\n').pop() ?? '') as PhpResult;
    // PHP encodes an empty $_SESSION as [], a filled one as {...}.
    if (Array.isArray(result.data)) result.data = {};
  } catch { /* reported through details */ }
  const details = `[${setup.name}] php ${args.join(' ')} -> exit ${r.exitCode}${r.timedOut ? ' (timed out)' : ''}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
  return { exitCode: r.exitCode, result, details };
}

/** Runs a request that must succeed cleanly (exit 0, session started and written, no warning). */
async function phpOk(server: RunningServer, setup: ClientSetup, args: string[], ini: string[] = [], env: Record<string, string> = {}): Promise<PhpResult> {
  const run = await php(server, setup, args, ini, env);
  expect(run.exitCode, run.details).toBe(0);
  expect(run.result, run.details).not.toBeNull();
  expect(run.result!.ok, run.details).toBe(true);
  expect(run.result!.errors, run.details).toEqual([]);
  return run.result!;
}

interface RawItem { flags: number; value: string }

/** `get KEY` over a fresh raw ascii connection; null on a miss. Shows the bytes on anything odd. */
function rawGet(server: RunningServer, key: string): Promise<RawItem | null> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: server.host, port: server.port });
    let buf = Buffer.alloc(0);
    const fail = (why: string) => {
      sock.destroy();
      reject(new Error(`raw get ${key}: ${why}; sent ${JSON.stringify(`get ${key}\r\n`)}, received ${JSON.stringify(buf.toString('latin1'))}`));
    };
    const timer = setTimeout(() => fail('no complete answer within 5 s'), 5000);
    const done = (item: RawItem | null) => { clearTimeout(timer); sock.destroy(); resolve(item); };
    sock.on('connect', () => sock.write(`get ${key}\r\n`));
    sock.on('error', (e) => { clearTimeout(timer); fail(String(e)); });
    sock.on('close', () => { clearTimeout(timer); fail('connection closed'); });
    sock.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      const eol = buf.indexOf('\r\n');
      if (eol < 0) return;
      const line = buf.subarray(0, eol).toString('latin1');
      if (line === 'END') {
        if (buf.length > eol + 2) { clearTimeout(timer); fail('bytes after END'); return; }
        sock.removeAllListeners('close');
        done(null);
        return;
      }
      const m = /^VALUE (\S+) (\d+) (\d+)(?: \d+)?$/.exec(line);
      if (!m) { clearTimeout(timer); fail('unexpected header line'); return; }
      if (m[1] !== key) { clearTimeout(timer); fail('VALUE for another key'); return; }
      const len = Number(m[3]);
      const end = eol + 2 + len;
      if (buf.length < end + 7) return; // value + "\r\nEND\r\n"
      if (buf.subarray(end, end + 7).toString('latin1') !== '\r\nEND\r\n' || buf.length !== end + 7) {
        clearTimeout(timer); fail('value not followed by exactly \\r\\nEND\\r\\n'); return;
      }
      sock.removeAllListeners('close');
      done({ flags: Number(m[2]), value: buf.subarray(eol + 2, end).toString('latin1') });
    });
  });
}

/** PHP's "php" session serializer, for the flat data these tests store. */
function phpSessionEncode(data: Record<string, string | number>): string {
  return Object.entries(data).map(([k, v]) =>
    typeof v === 'number' ? `${k}|i:${v};` : `${k}|s:${Buffer.byteLength(v)}:"${v}";`).join('');
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let server: RunningServer;

beforeAll(async () => {
  server = TARGET === 'memcached' ? await startMemcached() : await startDaemon();
});

afterAll(async () => {
  await server?.stop();
});

describe.each(SETUPS)('PHP sessions through $name', (setup) => {
  it('creates a session, reads it back in another process, changes it, destroys it', async () => {
    const created = await phpOk(server, setup, ['create', '', JSON.stringify({ user: 'alice', visits: 1 })]);
    const id = created.id;
    // A PHP-minted id (sid_length=32, 5 bits per char): proves PHP created it, not that we passed it.
    expect(id).toMatch(/^[0-9a-v]{32}$/);

    // The daemon holds exactly what the extension wrote, under the extension's key.
    expect(await rawGet(server, setup.key(id))).toEqual({ flags: 0, value: phpSessionEncode({ user: 'alice', visits: 1 }) });
    expect(await rawGet(server, setup.lockKey(id))).toEqual(setup.releasedLock);

    const read1 = await phpOk(server, setup, ['read', id]);
    expect(read1.id).toBe(id);
    expect(read1.data).toEqual({ user: 'alice', visits: 1 });

    const changed = await phpOk(server, setup, ['update', id, JSON.stringify({ visits: 2, plan: 'pro' })]);
    expect(changed.id).toBe(id);
    expect(changed.data).toEqual({ user: 'alice', visits: 2, plan: 'pro' });

    const read2 = await phpOk(server, setup, ['read', id]);
    expect(read2.id).toBe(id);
    expect(read2.data).toEqual({ user: 'alice', visits: 2, plan: 'pro' });
    expect(await rawGet(server, setup.key(id))).toEqual({ flags: 0, value: phpSessionEncode({ user: 'alice', visits: 2, plan: 'pro' }) });

    const destroyed = await phpOk(server, setup, ['destroy', id]);
    expect(destroyed.id).toBe(id);
    // Checked before any further PHP request: reading a missing id (strict mode off) would
    // re-create it empty.
    expect(await rawGet(server, setup.key(id))).toBeNull();
    expect(await rawGet(server, setup.lockKey(id))).toBeNull();

    const gone = await phpOk(server, setup, ['read', id]);
    expect(gone.data).toEqual({});
  });

  it('session.use_strict_mode=1 with an id the server never issued', async () => {
    const unknown = `unknownid${Date.now().toString(36)}${Math.random().toString(36).slice(2, 10)}`;
    const strict = ['session.use_strict_mode=1'];
    const first = await phpOk(server, setup, ['strict', unknown], strict);
    expect(first.data).toEqual({});
    if (setup.strictRejectsUnknownId) {
      expect(first.id).not.toBe(unknown);
      expect(first.id).toMatch(/^[0-9a-v]{32}$/);
      // php-memcached's exist check is `add <key> 0 2678400 0` (binary: ADD, exptime 2678400):
      // 31 days counts as an absolute unix time, long past, so memcached drops the item at once.
      // A server that took it as relative would keep an empty item: the raw get would hit and the
      // same unknown id would pass validation on the next request.
      expect(await rawGet(server, setup.key(unknown))).toBeNull();
      const second = await phpOk(server, setup, ['strict', unknown], strict);
      expect(second.id).not.toBe(unknown);
      expect(second.id).not.toBe(first.id);
      // The replacement id is a real (empty) session now, written by PHP.
      expect(await rawGet(server, setup.key(first.id))).toEqual({ flags: 0, value: '' });
    } else {
      // pecl memcache keeps the id (see SETUPS); what matters is that nothing leaks into it.
      expect(first.id).toBe(unknown);
      expect(await rawGet(server, setup.key(unknown))).toEqual({ flags: 0, value: '' });
    }
  });
});

describe('session expiry', () => {
  it('honours session.gc_maxlifetime for every client (relative TTL for php-memcached, absolute unix time for pecl memcache)', async () => {
    const ini = ['session.gc_maxlifetime=2'];
    const ids = await Promise.all(SETUPS.map(async (setup) => {
      const created = await phpOk(server, setup, ['create', '', JSON.stringify({ user: 'bob' })], ini);
      // Readable at once (a server that mistook pecl memcache's absolute exptime for an
      // already-past time, or a 2 s TTL for 2 ms, fails here).
      const read = await phpOk(server, setup, ['read', created.id], ini);
      expect(read.data, setup.name).toEqual({ user: 'bob' });
      expect(await rawGet(server, setup.key(created.id)), setup.name).toEqual({ flags: 0, value: phpSessionEncode({ user: 'bob' }) });
      return created.id;
    }));
    // The read above refreshed the TTL to 2 s (touch / rewrite); memcached's clock ticks in whole
    // seconds, so 4 s is past any rounding.
    await sleep(4000);
    for (const [i, setup] of SETUPS.entries()) {
      expect(await rawGet(server, setup.key(ids[i]!)), setup.name).toBeNull();
      const after = await phpOk(server, setup, ['read', ids[i]!], ini);
      expect(after.data, setup.name).toEqual({});
    }
  });
});

const CONTENDERS = 20;

/** Starts CONTENDERS concurrent counter requests on one session; returns each request's result. */
async function contend(setup: ClientSetup, id: string, ini: string[], sleepMs: number): Promise<PhpRun[]> {
  return Promise.all(Array.from({ length: CONTENDERS }, () =>
    php(server, setup, ['counter', id], ini, { SLEEP_MS: String(sleepMs) })));
}

describe.each(SETUPS)('session locking through $name', (setup) => {
  it(`${CONTENDERS} concurrent requests on one session lose no update`, async () => {
    const { id } = await phpOk(server, setup, ['create', '', JSON.stringify({ counter: 0 })], setup.lockingIni);
    const runs = await contend(setup, id, setup.lockingIni, 10);
    for (const run of runs) {
      expect(run.exitCode, run.details).toBe(0);
      expect(run.result?.ok, run.details).toBe(true);
      expect(run.result?.errors, run.details).toEqual([]);
    }
    // With the lock held from session_start to session_write_close, the requests run one after
    // the other: each one saw a different count, and the last write is exactly N.
    const seen = runs.map((r) => r.result!.read).sort((a, b) => a! - b!);
    expect(seen).toEqual(Array.from({ length: CONTENDERS }, (_, i) => i));
    const final = await phpOk(server, setup, ['read', id], setup.lockingIni);
    expect(final.data.counter).toBe(CONTENDERS);
    expect((final.data.writers as unknown[]).length).toBe(CONTENDERS);
    // Every request released its lock.
    expect(await rawGet(server, setup.lockKey(id))).toEqual(setup.releasedLock);
  });
});

describe('session locking control', () => {
  // Shows the race window is real: without locking, the same workload loses updates. Otherwise
  // the locking tests above could pass merely because the requests never overlapped.
  it('without locking (php-memcached, sess_locking=0) concurrent requests do lose updates', async () => {
    const setup = SETUPS[0]!;
    const ini = ['memcached.sess_locking=0'];
    const { id } = await phpOk(server, setup, ['create', '', JSON.stringify({ counter: 0 })], ini);
    // 300 ms between read and write, far longer than it takes to start 20 PHP processes.
    const runs = await contend(setup, id, ini, 300);
    for (const run of runs) expect(run.exitCode, run.details).toBe(0);
    const final = await phpOk(server, setup, ['read', id], ini);
    expect(final.data.counter).toBeLessThan(CONTENDERS);
  });
});
