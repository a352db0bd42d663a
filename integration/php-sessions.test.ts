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
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sleep, startDaemon, startMemcached, type RunningServer } from './harness.js';
import { clientSetups, php, phpOk, phpSessionEncode, type ClientSetup, type PhpRun } from './php-harness.js';
import { rawGet } from './raw-client.js';

const TARGET = process.env.SESSION_TEST_TARGET === 'memcached' ? 'memcached' : 'session-cluster';

const SETUPS = clientSetups();

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
    // seconds, so 4 s is past any rounding. A fixed wait: expiry is what is tested, so the time has to pass.
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
