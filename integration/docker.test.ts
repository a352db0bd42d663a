/**
 * The Docker examples under docker/, run as a user runs them: each compose file is built and
 * started with docker-compose (Debian 12's 1.29; SESSION_CLUSTER_COMPOSE="docker compose" runs
 * them with Compose v2 instead), the daemons' health checks must turn healthy, and 50 browsers
 * (Node's fetch, one cookie jar each) use the demo page docker/app/index.php through nginx.
 *
 *  1. docker/docker-compose.yml: nginx -> php-fpm -> one daemon; every browser's visits count
 *     1, 2, 3, … in one session.
 *  2. docker/docker-compose.cluster.yml: three daemons, each beside its PHP container. Mid-run the
 *     daemon serving the browsers is killed (SIGKILL, `kill -s KILL`), and later the one serving
 *     them then is stopped (`stop`: SIGTERM, a drain). No browser loses its session or a count:
 *     every request is served (200) with visits one more than the one before. While a node fails
 *     over, a request may get an error page first (the page answers 503 when its session cannot be
 *     read right now); the browser reloads it, as a user would, and the error must not have
 *     counted. How many requests needed that is printed with the timings.
 *
 * Every request reaches nginx from the same address (the compose network's gateway), so nginx's
 * ip_hash sends all browsers to one PHP container, and its daemon is the one that holds their
 * sessions: the daemons killed and stopped are picked from the pages' "handler" line.
 *
 * Needs a Docker engine, docker-compose and debootstrap: scripts/install-test-deps.sh (npm test
 * runs it) installs them and starts dockerd when none runs; this file stops that dockerd at the end
 * (scripts/docker-engine.sh stop), and only that one. Where no image registry is reachable,
 * docker/build-base-images.sh builds local stand-ins for the base images (once: they stay in the
 * engine, like the layers of the builds). Without an engine this file fails, it does not skip.
 * Everything it starts (containers, networks, volumes) is removed in afterAll, failed or not.
 */
import { execa } from 'execa';
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CookieJar } from './cookie-jar.js';
import { freePort, repoRoot, sleep, waitFor } from './harness.js';

const COMPOSE = (process.env.SESSION_CLUSTER_COMPOSE ?? 'docker-compose').split(' ').filter(Boolean);
const SINGLE = path.join(repoRoot, 'docker', 'docker-compose.yml');
const CLUSTER = path.join(repoRoot, 'docker', 'docker-compose.cluster.yml');
const USERS = 50;
/** a project name per file and run: runs side by side, or left over from a crash, do not meet */
const RUN = `sctest${process.pid}${crypto.randomBytes(2).toString('hex')}`;

let httpPort = 0;
const env: Record<string, string> = {
  // Builds on the classic builder: BuildKit needs a buildx plugin the Debian CLI lacks, and
  // docker-compose 1.29 builds through the engine API this way anyway. The same environment every
  // time, whatever the caller's shell says.
  DOCKER_BUILDKIT: '0',
  COMPOSE_DOCKER_CLI_BUILD: '0',
  SESSION_CLUSTER_SECRET: crypto.randomBytes(32).toString('hex'),
};
const started = new Set<string>();
const timings: string[] = [];

async function run(file: string, args: string[], opts: { timeoutMs?: number } = {}): Promise<string> {
  const r = await execa(file, args, {
    cwd: repoRoot, env: { ...env, SESSION_CLUSTER_HTTP_PORT: String(httpPort) }, reject: false, all: true,
    timeout: opts.timeoutMs ?? 120_000, stdin: 'ignore',
  });
  if (r.exitCode !== 0) throw new Error(`${file} ${args.join(' ')} failed (${r.exitCode ?? r.signal}${r.timedOut ? ', timed out' : ''}):\n${(r.all ?? '').slice(-4000)}`);
  return r.stdout ?? '';
}

function compose(project: string, file: string, args: string[], opts: { timeoutMs?: number } = {}): Promise<string> {
  return run(COMPOSE[0]!, [...COMPOSE.slice(1), '-p', project, '-f', file, ...args], opts);
}

async function timed<T>(what: string, f: () => Promise<T>): Promise<T> {
  const t0 = Date.now();
  try {
    return await f();
  } finally {
    timings.push(`${what}: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  }
}

/** The container of a compose service, by id. */
async function containerOf(project: string, file: string, service: string): Promise<string> {
  const id = (await compose(project, file, ['ps', '-q', service])).trim();
  if (!id) throw new Error(`service ${service} of ${project} has no container`);
  return id;
}

async function health(container: string): Promise<string> {
  return (await run('docker', ['inspect', '--format', '{{.State.Health.Status}}', container])).trim();
}

async function waitHealthy(project: string, file: string, services: string[]): Promise<void> {
  for (const service of services) {
    const id = await containerOf(project, file, service);
    let last = '';
    await waitFor(async () => (last = await health(id)) === 'healthy', { timeoutMs: 90_000, intervalMs: 500, what: () => `${service}'s health check to pass (it says ${last})` });
  }
}

async function up(project: string, file: string): Promise<void> {
  started.add(`${project}\n${file}`);
  await timed(`${path.basename(file)}: up`, () => compose(project, file, ['up', '-d', '--no-build'], { timeoutMs: 180_000 }));
}

/**
 * The test's error, with the last lines each container logged and which container is which (the
 * pages name their php-fpm container by its id): what a failed run needs to be read. The whole logs
 * go to a file beside, named in the message.
 */
async function withLogs(project: string, file: string, err: unknown): Promise<never> {
  const logs = await compose(project, file, ['logs', '--no-color', '--tail', '150']).catch((e: Error) => `(no logs: ${e.message})`);
  const containers = await run('docker', ['ps', '-a', '--filter', `label=com.docker.compose.project=${project}`,
    '--format', '{{.ID}} {{.Label "com.docker.compose.service"}} {{.Status}}']).catch((e: Error) => `(no list: ${e.message})`);
  const saved = path.join(os.tmpdir(), `${project}-logs.txt`);
  await compose(project, file, ['logs', '--no-color', '--timestamps'], { timeoutMs: 60_000 })
    .then((all) => fs.writeFile(saved, all), (e: Error) => fs.writeFile(saved, `(no logs: ${e.message})`)).catch(() => undefined);
  if (err instanceof Error) {
    err.message += `\n--- containers ---\n${containers}\n--- ${COMPOSE.join(' ')} logs (last 150 lines per container; all of them in ${saved}) ---\n${logs}`;
  }
  throw err;
}

async function down(project: string, file: string): Promise<void> {
  // -t: the daemons left would each drain towards the others while they all stop; nothing to keep.
  await compose(project, file, ['down', '-v', '--remove-orphans', '-t', '5'], { timeoutMs: 120_000 });
  started.delete(`${project}\n${file}`);
}

/**
 * Containers and networks of this file's projects whose test process is gone (a run killed before
 * its afterAll): removed, so that they do not pile up on a machine that runs the tests daily.
 * Projects of a run still going (another checkout's) are left alone.
 */
async function removeLeftovers(): Promise<void> {
  const label = 'com.docker.compose.project';
  const alive = (project: string) => {
    const pid = Number(/^sctest(\d+)[0-9a-f]{4}(?:single|cluster)$/.exec(project)?.[1] ?? NaN);
    if (!Number.isInteger(pid)) return true;
    try { process.kill(pid, 0); return true; } catch { return false; }
  };
  const containers = (await run('docker', ['ps', '-a', '--filter', `label=${label}`, '--format', `{{.ID}} {{.Label "${label}"}}`])).split('\n').filter(Boolean);
  const stale = containers.map((line) => line.split(' ') as [string, string]).filter(([, project]) => !alive(project));
  if (stale.length) await run('docker', ['rm', '-f', '-v', ...stale.map(([id]) => id)]);
  const networks = (await run('docker', ['network', 'ls', '--filter', `label=${label}`, '--format', `{{.ID}} {{.Label "${label}"}}`])).split('\n').filter(Boolean);
  const staleNets = networks.map((line) => line.split(' ') as [string, string]).filter(([, project]) => !alive(project));
  if (staleNets.length) await run('docker', ['network', 'rm', ...staleNets.map(([id]) => id)]);
}

// ---------------------------------------------------------------------------------------------
// Browsers

interface Visit { status: number; visits: number; sessionId: string; handler: string; fpm: string; body: string }

/** One user: a cookie jar for the session cookie, and every visit count the page showed. */
class Browser {
  private readonly jar = new CookieJar();
  readonly seen: Visit[] = [];
  readonly problems: string[] = [];
  /**
   * Every answer, error pages included: when it came (wall clock, as the daemons log it), the
   * status, the session cookie sent and the one set (its first characters), the id the page showed,
   * and the php-fpm container and daemon that served it. Printed with a problem, so that a session
   * that went missing shows where the browser's cookie changed and who served each step.
   */
  private readonly trail: string[] = [];

  constructor(readonly name: string) {}

  /** requests answered with an error first, then served on another try */
  retries = 0;
  /** the statuses of those error answers (0: no answer), and the longest wait through them */
  readonly retryStatuses = new Map<number, number>();
  longestRetryMs = 0;

  /**
   * One request, as a user makes it: an error page (5xx, or no answer) is tried again, as a user
   * reloads, for up to about 15 s. What counts is what the user finally sees.
   */
  async visit(): Promise<void> {
    const t0 = Date.now();
    let visit = await this.once();
    for (let attempt = 1; visit.status !== 200 && attempt < 60; attempt++) {
      this.retries++;
      this.retryStatuses.set(visit.status, (this.retryStatuses.get(visit.status) ?? 0) + 1);
      await sleep(250);
      visit = await this.once();
    }
    if (this.retries) this.longestRetryMs = Math.max(this.longestRetryMs, Date.now() - t0);
    // One more than the last count shown: an error answer must not have counted, a session must
    // not have been lost (a slip is reported once, not again on every request after it).
    const expected = (this.seen.filter((v) => v.status === 200).at(-1)?.visits ?? 0) + 1;
    this.seen.push(visit);
    if (visit.status !== 200 || visit.visits !== expected) {
      this.problems.push(`${this.name}, request ${this.seen.length}: HTTP ${visit.status}, visits ${visit.visits} (expected ${expected}): ${visit.body.slice(0, 300)}`
        + `\nits answers, oldest first (time, status, cookie sent > cookie set, id shown (php-fpm > daemon)):\n  ${this.trail.join('\n  ')}`);
    }
  }

  private async once(): Promise<Visit> {
    const cookie = this.jar.header();
    // Enough of an id to tell two apart: its owners, its revision, a little of its random part.
    const short = (text: string | undefined) => (text === undefined || text === '' ? '-' : text.slice(0, 32));
    try {
      const res = await fetch(`http://127.0.0.1:${httpPort}/`, { headers: cookie ? { cookie } : {}, signal: AbortSignal.timeout(60_000) });
      const setCookies = res.headers.getSetCookie();
      this.jar.remember(setCookies);
      const body = await res.text();
      const shown = /^session id:\s+(\S+)$/m.exec(body)?.[1] ?? '';
      const handler = /^handler:\s+\S+\s+(\S+?):\d+$/m.exec(body)?.[1] ?? '';
      const fpm = /^php-fpm:\s+(\S+)$/m.exec(body)?.[1] ?? '';
      this.trail.push(`${stamp()} ${res.status}, ${short(cookie)} > ${short(setCookies.map((c) => c.split(';')[0]).join(' '))}, ${short(shown)}` +
        (fpm ? ` (${fpm} > ${handler})` : ''));
      return {
        status: res.status,
        visits: Number(/^visits:\s+(\d+)$/m.exec(body)?.[1] ?? NaN),
        sessionId: shown,
        handler,
        fpm,
        body,
      };
    } catch (err) {
      this.trail.push(`${stamp()} no answer (${String(err).slice(0, 60)}), ${short(cookie)}`);
      return { status: 0, visits: NaN, sessionId: '', handler: '', fpm: '', body: String(err) };
    }
  }
}

/** Wall-clock time of day with milliseconds (UTC), as the daemons' logs can be read beside it. */
function stamp(): string {
  return new Date().toISOString().slice(11, 23);
}

/** Every browser visits once, all at the same time; `rounds` times. */
async function rounds(browsers: Browser[], n: number): Promise<void> {
  for (let i = 0; i < n; i++) await Promise.all(browsers.map((b) => b.visit()));
}

/** The daemon that served most of the last round. */
function servingDaemon(browsers: Browser[]): string {
  const counts = new Map<string, number>();
  for (const b of browsers) {
    const h = b.seen.at(-1)?.handler ?? '';
    counts.set(h, (counts.get(h) ?? 0) + 1);
  }
  const [daemon] = [...counts].sort((a, b) => b[1] - a[1])[0]!;
  if (!/^sc[123]$/.test(daemon)) throw new Error(`no daemon named in the last round's pages (${JSON.stringify([...counts])})`);
  return daemon;
}

function expectNothingLost(what: string, browsers: Browser[], requests: number): void {
  const statuses = new Map<number, number>();
  for (const b of browsers) for (const [status, n] of b.retryStatuses) statuses.set(status, (statuses.get(status) ?? 0) + n);
  timings.push(`${what}: error pages before a request was served: ${browsers.reduce((n, b) => n + b.retries, 0)} ` +
    `(by status: ${JSON.stringify(Object.fromEntries(statuses))}; longest wait ${Math.max(0, ...browsers.map((b) => b.longestRetryMs))} ms)`);
  expect(browsers.flatMap((b) => b.problems)).toEqual([]);
  for (const b of browsers) expect(b.seen.map((v) => v.visits)).toEqual(Array.from({ length: requests }, (_, i) => i + 1));
}

// ---------------------------------------------------------------------------------------------

beforeAll(async () => {
  // The engine: running already, or started now (and then recorded, to be stopped in afterAll).
  await timed('engine', () => run('bash', [path.join(repoRoot, 'scripts', 'docker-engine.sh'), 'start'], { timeoutMs: 90_000 })).catch((err: Error) => {
    throw new Error(`No Docker engine answers, and none could be started: this test needs one (apt-get install docker.io ` +
      `docker-compose debootstrap, or run bash scripts/install-test-deps.sh, as npm test does).\n${err.message}`);
  });
  await run(COMPOSE[0]!, [...COMPOSE.slice(1), 'version']).catch((err: Error) => {
    throw new Error(`${COMPOSE.join(' ')} is not usable (apt-get install docker-compose; scripts/install-test-deps.sh does):\n${err.message}`);
  });
  await removeLeftovers();
  httpPort = await freePort();
  // Cold, this debootstraps Debian and installs nginx (about a minute); then nothing.
  await timed('base images', () => run('bash', [path.join(repoRoot, 'docker', 'build-base-images.sh')], { timeoutMs: 600_000 }));
  // Both files build the same two images (session-cluster, session-cluster-example-php-fpm): the
  // second build is all cache.
  await timed('build docker-compose.yml', () => compose(`${RUN}single`, SINGLE, ['build'], { timeoutMs: 600_000 }));
  await timed('build docker-compose.cluster.yml', () => compose(`${RUN}cluster`, CLUSTER, ['build'], { timeoutMs: 600_000 }));
}, 1_200_000);

afterAll(async () => {
  const failures: string[] = [];
  try {
    for (const entry of [...started]) {
      const [project, file] = entry.split('\n') as [string, string];
      await down(project, file).catch((err: Error) => failures.push(err.message));
    }
  } finally {
    await run('bash', [path.join(repoRoot, 'scripts', 'docker-engine.sh'), 'stop'], { timeoutMs: 60_000 }).catch((err: Error) => failures.push(err.message));
    console.log(`docker test timings:\n  ${timings.join('\n  ')}`);
  }
  if (failures.length) throw new Error(`teardown: ${failures.join('\n')}`);
}, 300_000);

describe('docker/docker-compose.yml', () => {
  const project = `${RUN}single`;

  it('serves 50 users their sessions through nginx and php-fpm, the daemon healthy', async () => {
    try {
      await up(project, SINGLE);
      await waitHealthy(project, SINGLE, ['session-cluster']);
      const browsers = Array.from({ length: USERS }, (_, i) => new Browser(`user${i + 1}`));
      await timed('docker-compose.yml: 50 users x 5 requests', () => rounds(browsers, 5));
      expectNothingLost('docker-compose.yml', browsers, 5);
      // one session each, all different
      for (const b of browsers) expect(new Set(b.seen.map((v) => v.sessionId)).size).toBe(1);
      expect(new Set(browsers.map((b) => b.seen[0]!.sessionId)).size).toBe(USERS);
      expect(await health(await containerOf(project, SINGLE, 'session-cluster'))).toBe('healthy');
    } catch (err) {
      await withLogs(project, SINGLE, err);
    } finally {
      await timed('docker-compose.yml: down', () => down(project, SINGLE));
    }
  }, 600_000);
});

describe('docker/docker-compose.cluster.yml', () => {
  const project = `${RUN}cluster`;

  it('keeps every session and count of 50 users while one daemon is killed and another drains', async () => {
    try {
      await up(project, CLUSTER);
      await waitHealthy(project, CLUSTER, ['sc1', 'sc2', 'sc3']);
      const browsers = Array.from({ length: USERS }, (_, i) => new Browser(`user${i + 1}`));
      let requests = 0;
      const go = async (n: number) => { await rounds(browsers, n); requests += n; };

      await timed('cluster: 50 users x 4 requests', () => go(4));
      const killed = servingDaemon(browsers);
      await timed(`cluster: kill -s KILL ${killed}`, () => compose(project, CLUSTER, ['kill', '-s', 'KILL', killed]));
      await timed('cluster: 50 users x 4 requests, after the kill', () => go(4));

      const drained = servingDaemon(browsers);
      expect(drained).not.toBe(killed);
      // The drain runs while the users go on: SIGTERM, the daemon hands its sessions over, exits.
      const stopping = timed(`cluster: stop ${drained} (drain)`, () => compose(project, CLUSTER, ['stop', drained], { timeoutMs: 120_000 }));
      await timed('cluster: 50 users x 4 requests, during the drain', () => Promise.all([stopping, go(4)]));
      await timed('cluster: 50 users x 4 requests, after it', () => go(4));

      expectNothingLost('cluster', browsers, requests);
      const [survivor] = ['sc1', 'sc2', 'sc3'].filter((s) => s !== killed && s !== drained);
      expect(servingDaemon(browsers)).toBe(survivor);
      expect(await health(await containerOf(project, CLUSTER, survivor!))).toBe('healthy');
      const states = await run('docker', ['inspect', '--format', '{{.State.Status}} {{.State.ExitCode}}', await containerOf(project, CLUSTER, killed), await containerOf(project, CLUSTER, drained)]);
      // SIGKILL: 137, and not restarted (a kill is a stop that restart: on-failure respects); a drain: 0.
      expect(states.trim().split('\n')).toEqual(['exited 137', 'exited 0']);
    } catch (err) {
      await withLogs(project, CLUSTER, err);
    } finally {
      await timed('docker-compose.cluster.yml: down', () => down(project, CLUSTER));
    }
  }, 600_000);
});
