/**
 * A real web farm: one nginx in front of three php-fpm servers (php1..php3), each beside one node
 * of a three-node session-cluster (php1 -> node1, php2 -> node2, php3 -> node3), browsers played by
 * Node over HTTP with a cookie jar. The configuration lives in integration/web/ (templates filled
 * in per run, in a temp dir): each php-fpm master has three pools, one per way PHP keeps sessions
 * here — the stock php-memcached handler, the stock pecl memcache handler, the php-client — and
 * nginx routes /<pool>/rr/… round-robin over the three servers and /<pool>/php<N>/… to one server
 * (sticky).
 *
 * What is shown, through real nginx + php-fpm:
 *  1. stock handlers, round-robin: one browser's visits count 1..30 with every request on the next
 *     server, each server talking to its own daemon only;
 *  2. 20 concurrent requests of one browser over the three servers run one at a time (the session
 *     lock holds cluster-wide): visits come out 1..20, the next request says 21;
 *  3. the php-client, sticky to php2: a cluster-minted id naming node2 as master, 10 visits, no
 *     forwarded read; then round-robin: the count goes on, now with forwarded reads.
 *
 * nginx and php-fpm8.2 are required (npm test installs them with scripts/install-test-deps.sh):
 * when missing, the file fails, it does not skip.
 */
import { execa, type ResultPromise } from 'execa';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sessionOwners, startLiveCluster, stopCluster, sumStats, type Cluster, type ClusterNode } from './cluster-harness.js';
import { freePorts, repoRoot, waitForPort } from './harness.js';
import { CookieJar } from './cookie-jar.js';
import { rawGet } from './raw-client.js';

const WEB = path.join(repoRoot, 'integration', 'web');
const SERVERS = ['php1', 'php2', 'php3'] as const;
const POOLS = ['memcached', 'memcache', 'client'] as const;
type Server = (typeof SERVERS)[number];
type Pool = (typeof POOLS)[number];
const MINTED_ID = /^1[0-9a-zA-Z,-]{37,208}$/;

// ---------------------------------------------------------------------------------------------
// Programs

/** The path of a system program, looked up as scripts/install-test-deps.sh does (sbin too). */
function findProgram(name: string): string {
  const dirs = [...(process.env.PATH ?? '').split(':').filter(Boolean), '/usr/local/sbin', '/usr/sbin', '/sbin'];
  for (const dir of dirs) {
    const candidate = path.join(dir, name);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch { /* next */ }
  }
  throw new Error(`${name} is not installed (looked in ${dirs.join(', ')}): this test needs Debian's nginx and php8.2-fpm; ` +
    'run `bash scripts/install-test-deps.sh` (npm test does) or `apt-get install nginx php8.2-fpm`');
}

interface Proc {
  name: string;
  child: ResultPromise;
  /** stdout and stderr lines so far */
  output: string[];
  running(): boolean;
  /** signals the process and everything in its process group (its workers) */
  killGroup(signal: NodeJS.Signals): void;
  stop(): Promise<void>;
}

/** the run's temp dir (configs, logs, docroot, the php-client copy) */
let dir: string | undefined;
const live = new Set<Proc>();
// A test run that dies mid-test must not leave nginx or php-fpm behind on their ports. Each runs
// in its own process group, so one signal also reaches the workers: php-fpm workers outlive a
// SIGKILLed master, still listening.
process.once('exit', () => {
  for (const p of live) p.killGroup('SIGKILL');
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

function startProcess(name: string, file: string, args: string[], env: NodeJS.ProcessEnv): Proc {
  const child = execa(file, args, { reject: false, buffer: false, stdin: 'ignore', env, extendEnv: false, detached: true });
  const output: string[] = [];
  for (const stream of [child.stdout, child.stderr]) {
    let rest = '';
    stream?.on('data', (chunk: Buffer) => {
      rest += chunk.toString('utf8');
      const lines = rest.split('\n');
      rest = lines.pop()!;
      output.push(...lines);
    });
  }
  const running = () => child.exitCode === null && child.signalCode === null;
  const killGroup = (signal: NodeJS.Signals) => {
    try { if (child.pid) process.kill(-child.pid, signal); } catch { /* the group is gone */ }
  };
  const proc: Proc = {
    name, child, output, running, killGroup,
    // SIGTERM is a fast shutdown for both nginx and php-fpm: the master ends its workers, then itself.
    async stop() {
      if (running()) {
        child.kill('SIGTERM');
        const killer = setTimeout(() => killGroup('SIGKILL'), 5000);
        await child.catch(() => undefined);
        clearTimeout(killer);
      }
      // Workers left without their master (it crashed, or had to be killed) go too.
      try {
        if (child.pid) process.kill(-child.pid, 0);
        killGroup('SIGKILL');
      } catch { /* none left */ }
      live.delete(proc);
    },
  };
  live.add(proc);
  return proc;
}

/** Resolves once every port accepts connections; rejects if the process exits first or time runs out. */
async function waitForPorts(proc: Proc, ports: number[], logFile: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const why = () => `${proc.name} (${proc.running() ? 'running' : `exited ${proc.child.exitCode ?? proc.child.signalCode}`}); ` +
    `output:\n  ${proc.output.slice(-20).join('\n  ')}\n${logFile}:\n  ${tail(logFile, 20).join('\n  ')}`;
  for (const port of ports) {
    await waitForPort('127.0.0.1', port, { timeoutMs: Math.max(0, deadline - Date.now()), who: proc.name, running: proc.running, describe: why });
  }
}

function readLines(file: string): string[] {
  try { return fs.readFileSync(file, 'utf8').split('\n').filter(Boolean); } catch { return []; }
}
function tail(file: string, n: number): string[] { return readLines(file).slice(-n); }

// ---------------------------------------------------------------------------------------------
// Configuration

/** A template from integration/web with every {{NAME}} replaced; an unknown or unfilled name throws. */
function fill(template: string, values: Record<string, string | number>): string {
  const text = fs.readFileSync(path.join(WEB, template), 'utf8');
  return text.replace(/\{\{([A-Z0-9_]+)\}\}/g, (_, name: string) => {
    if (!(name in values)) throw new Error(`${template}: no value for {{${name}}}`);
    return String(values[name]);
  });
}

/** chmod a tree world-readable, so php-fpm workers running as nobody can read it. */
function openUp(p: string): void {
  const st = fs.statSync(p);
  if (st.isDirectory()) {
    fs.chmodSync(p, 0o755);
    for (const entry of fs.readdirSync(p)) openUp(path.join(p, entry));
  } else {
    fs.chmodSync(p, 0o644);
  }
}

interface Farm {
  dir: string;
  cluster: Cluster;
  nginxPort: number;
  /** php server -> its daemon (php1 -> node1 …) */
  daemonOf: Record<Server, ClusterNode>;
  logs: { file: string; label: string }[];
}

let farm: Farm | undefined;
let cluster: Cluster | undefined;
const procs: Proc[] = [];
const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

async function startFarm(): Promise<Farm> {
  const phpFpm = findProgram('php-fpm8.2');
  const nginx = findProgram('nginx');
  const root = process.getuid?.() === 0;

  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'web-farm-'));
  // mkdtemp makes the dir 0700: the workers (nobody, when run as root) must get through it.
  fs.chmodSync(dir, 0o755);
  fs.cpSync(path.join(WEB, 'docroot'), path.join(dir, 'docroot'), { recursive: true });
  // A copy, so the checkout's file modes (a 0700 home, say) do not matter to the workers.
  fs.mkdirSync(path.join(dir, 'php-client'));
  fs.copyFileSync(path.join(repoRoot, 'php-client', 'bootstrap.php'), path.join(dir, 'php-client', 'bootstrap.php'));
  fs.cpSync(path.join(repoRoot, 'php-client', 'src'), path.join(dir, 'php-client', 'src'), { recursive: true });
  for (const sub of ['docroot', 'php-client']) openUp(path.join(dir, sub));
  // Whatever the umask: nginx's workers (nobody, when run as root) use the temp dirs under nginx/tmp.
  for (const sub of [...SERVERS, 'nginx', path.join('nginx', 'tmp')]) {
    fs.mkdirSync(path.join(dir, sub));
    fs.chmodSync(path.join(dir, sub), 0o755);
  }

  cluster = await startLiveCluster(3);
  const daemonOf = Object.fromEntries(SERVERS.map((s, i) => [s, cluster!.nodes[i]!])) as Record<Server, ClusterNode>;

  const ports = await freePorts(SERVERS.length * POOLS.length + 1);
  const poolPort = (s: Server, p: Pool) => ports[SERVERS.indexOf(s) * POOLS.length + POOLS.indexOf(p)]!;
  const nginxPort = ports[ports.length - 1]!;

  // The workers inherit this environment (clear_env = no): nothing in it may change how the
  // php-client registers itself.
  const env = { ...process.env };
  delete env.SESSION_CLUSTER_NO_AUTOREGISTER;
  delete env.SESSION_CLUSTER_TRANSPORT;

  const logs: Farm['logs'] = [];
  await Promise.all(SERVERS.map(async (s) => {
    const conf = path.join(dir!, s, 'php-fpm.conf');
    fs.writeFileSync(conf, fill('php-fpm.conf.template', {
      DIR: dir!, SERVER: s,
      // php-fpm will not run a pool as root (short of -R); as anyone else it runs pools as itself.
      RUN_AS: root ? 'user = nobody\ngroup = nogroup' : '; not root: the workers run as the test user',
      PORT_MEMCACHED: poolPort(s, 'memcached'), PORT_MEMCACHE: poolPort(s, 'memcache'), PORT_CLIENT: poolPort(s, 'client'),
      DAEMON_PORT: daemonOf[s].port, PHP_CLIENT: path.join(dir!, 'php-client'),
    }));
    const log = path.join(dir!, s, 'php-fpm.log');
    logs.push({ file: log, label: `${s} php-fpm` });
    const proc = startProcess(`php-fpm ${s}`, phpFpm, ['--nodaemonize', '--fpm-config', conf], env);
    procs.push(proc);
    await waitForPorts(proc, POOLS.map((p) => poolPort(s, p)), log);
  }));

  const nginxConf = path.join(dir, 'nginx', 'nginx.conf');
  const portValues: Record<string, number> = {};
  for (const s of SERVERS) for (const p of POOLS) portValues[`${s.toUpperCase()}_${p.toUpperCase()}`] = poolPort(s, p);
  fs.writeFileSync(nginxConf, fill('nginx.conf.template', {
    DIR: dir, PORT: nginxPort, ...portValues,
    // As root the master would pick nginx's built-in default; say it, and say nogroup (Debian
    // has no group "nobody").
    RUN_AS: root ? 'user nobody nogroup;' : '# not root: the workers run as the test user',
  }));
  const nginxLog = path.join(dir, 'nginx', 'error.log');
  logs.push({ file: nginxLog, label: 'nginx' });
  const proc = startProcess('nginx', nginx, ['-p', path.join(dir, 'nginx'), '-c', nginxConf, '-g', 'daemon off;'], env);
  procs.push(proc);
  await waitForPorts(proc, [nginxPort], nginxLog);

  farm = { dir, cluster, nginxPort, daemonOf, logs };
  // Ready means a page answers through nginx on every route, from the server the route names.
  for (const p of POOLS) {
    for (const s of SERVERS) {
      const res = await httpGet(`/${p}/${s}/ping.php`, {});
      expect(res.status, `ping ${p}/${s}: ${res.body}`).toBe(200);
      expect(JSON.parse(res.body), `ping ${p}/${s}`).toEqual({
        server: s, pool: p, sapi: 'fpm-fcgi', memcached: true, memcache: true,
        handler: p === 'client' ? 'user' : p, save_path: expectedSavePath(p, s),
      });
    }
  }
  return farm;
}

/** session.save_path of a pool on server `s`: its own daemon, in the handler's notation. */
function expectedSavePath(pool: Pool, s: Server): string {
  const port = farm!.daemonOf[s].port;
  return pool === 'memcache' ? `tcp://127.0.0.1:${port}` : `127.0.0.1:${port}`;
}

// ---------------------------------------------------------------------------------------------
// Browsers

interface HttpResult { status: number; body: string; setCookies: string[] }

function httpGet(urlPath: string, headers: Record<string, string>): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: farm!.nginxPort, path: urlPath, method: 'GET', headers, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), setCookies: res.headers['set-cookie'] ?? [] }));
      res.on('error', reject);
    });
    req.setTimeout(30_000, () => req.destroy(new Error(`GET ${urlPath}: no answer within 30 s`)));
    req.on('error', reject);
    req.end();
  });
}

interface Page {
  server: Server;
  pool: Pool;
  handler: string;
  save_path: string;
  binary: string | false;
  id: string;
  visits: number;
  locked_at: number;
  released_at: number;
}

/** A browser: a cookie jar (integration/cookie-jar.ts) and the page it was shown. */
class Browser {
  private readonly jar = new CookieJar();

  async get(urlPath: string): Promise<Page> {
    const cookie = this.jar.header();
    const res = await httpGet(urlPath, cookie ? { cookie } : {});
    this.jar.remember(res.setCookies);
    if (res.status !== 200) throw new Error(`GET ${urlPath}: HTTP ${res.status}: ${res.body.slice(0, 2000)}`);
    return JSON.parse(res.body) as Page;
  }

  /** The session id the browser holds (PHP url-encodes it in the cookie: a minted id's commas). */
  get sessionId(): string | undefined {
    const raw = this.jar.cookies.get('PHPSESSID');
    return raw === undefined ? undefined : decodeURIComponent(raw);
  }
}

// ---------------------------------------------------------------------------------------------
// The cluster, seen raw


function countBy<T>(items: T[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const x of items) out[String(x)] = (out[String(x)] ?? 0) + 1;
  return out;
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

// ---------------------------------------------------------------------------------------------

describe('a real web farm: nginx + three php-fpm servers + a three-node cluster', () => {
  beforeAll(async () => {
    const t0 = Date.now();
    await startFarm();
    console.log(`[web-farm] nginx 127.0.0.1:${farm!.nginxPort}, php-fpm php1..php3 x ${POOLS.join('/')} pools, daemons ` +
      `${SERVERS.map((s) => `${s}->${farm!.daemonOf[s].id}:${farm!.daemonOf[s].port}`).join(' ')}; ready in ${Date.now() - t0} ms (${dir})`);
  });

  afterAll(async () => {
    agent.destroy();
    await Promise.all(procs.map((p) => p.stop()));
    if (cluster) await stopCluster(cluster);
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  // Stock handlers: the page's session data under the handler's key, as read raw on a node.
  const sessionKey: Record<Exclude<Pool, 'client'>, (id: string) => string> = {
    memcached: (id) => `memc.sess.key.${id}`,
    memcache: (id) => id,
  };

  for (const pool of ['memcached', 'memcache'] as const) {
    it(`1. ${pool}: 30 requests of one browser round-robin over php1..php3 count 1..30`, async () => {
      const browser = new Browser();
      const pages: Page[] = [];
      for (let i = 0; i < 30; i++) pages.push(await browser.get(`/${pool}/rr/counter.php`));
      const id = browser.sessionId!;
      const served = pages.map((p) => p.server);
      console.log(`[1 ${pool}] visits ${pages.map((p) => p.visits).join(',')}; served by ${JSON.stringify(countBy(served))}; ` +
        `handler ${pages[0]!.handler}${pool === 'memcached' ? ` binary=${pages[0]!.binary}` : ''}; id ${id.slice(0, 6)}… (${id.length} chars)`);
      expect(pages.map((p) => p.visits)).toEqual(range(1, 30));
      // One nginx worker rotates strictly: each request on the next server.
      const start = SERVERS.indexOf(served[0]!);
      expect(served).toEqual(range(0, 29).map((i) => SERVERS[(start + i) % 3]));
      expect(countBy(served)).toEqual({ php1: 10, php2: 10, php3: 10 });
      for (const p of pages) {
        expect(p.pool).toBe(pool);
        expect(p.handler).toBe(pool);
        expect(p.save_path, `${p.server} talks to its own daemon`).toBe(expectedSavePath(pool, p.server));
        expect(p.id, 'one session all along').toBe(id);
      }
      if (pool === 'memcached') expect(pages[0]!.binary).toBe('1');
      // A stock PHP id: the cluster places it by hashing; every node reads the same data.
      for (const node of cluster!.nodes) {
        expect(await sessionOwners(node, id), `owners via ${node.id}`).toMatchObject({ id_kind: 'hashed' });
        expect((await rawGet(node, sessionKey[pool](id)))?.value, `session data via ${node.id}`).toBe('visits|i:30;');
      }
    });
  }

  for (const pool of ['memcached', 'memcache'] as const) {
    it(`2. ${pool}: 20 concurrent requests of one browser over php1..php3 run one at a time; the next says 21`, async () => {
      const browser = new Browser();
      const first = await browser.get(`/${pool}/rr/counter.php?reset=1`);
      expect(first.visits).toBe(0);
      const id = browser.sessionId!;
      const t0 = Date.now();
      // Each holds the session 20 ms, so the requests really overlap and wait for each other.
      const pages = await Promise.all(range(1, 20).map(() => browser.get(`/${pool}/rr/counter.php?hold_ms=20`)));
      const took = Date.now() - t0;
      const last = await browser.get(`/${pool}/rr/counter.php`);
      const byLock = [...pages].sort((a, b) => a.locked_at - b.locked_at);
      const overlaps = byLock.slice(1).filter((p, i) => p.locked_at < byLock[i]!.released_at).length;
      console.log(`[2 ${pool}] 20 concurrent in ${took} ms, served by ${JSON.stringify(countBy(pages.map((p) => p.server)))}; ` +
        `visits in lock order ${byLock.map((p) => p.visits).join(',')}; overlapping lock holds ${overlaps}; then ${last.visits}`);
      for (const p of [...pages, last]) expect(p.id).toBe(id);
      expect(pages.map((p) => p.visits).sort((a, b) => a - b)).toEqual(range(1, 20));
      // The lock held across servers: each request saw the one before it, in lock order.
      expect(byLock.map((p) => p.visits)).toEqual(range(1, 20));
      expect(overlaps).toBe(0);
      expect(new Set(pages.map((p) => p.server))).toEqual(new Set(SERVERS));
      expect(last.visits).toBe(21);
    });
  }

  it('3. php-client: sticky to php2, a minted id naming node2, 10 visits with no forwarded read; then round-robin', async () => {
    const browser = new Browser();
    const names = ['cluster_forwarded', 'cluster_forwarded_reads', 'session_ids_minted'];
    const before = await sumStats(cluster!.nodes, names);
    const sticky: Page[] = [];
    for (let i = 0; i < 10; i++) sticky.push(await browser.get('/client/php2/counter.php'));
    const after = await sumStats(cluster!.nodes, names);
    const id = browser.sessionId!;
    const ownersSeen = await Promise.all(cluster!.nodes.map((node) => sessionOwners(node, id)));
    console.log(`[3 sticky] id ${id.slice(0, 6)}… (${id.length} chars), visits ${sticky.map((p) => p.visits).join(',')} on ` +
      `${JSON.stringify(countBy(sticky.map((p) => p.server)))}; owners ${new URLSearchParams(ownersSeen[0]).toString()}; ` +
      `minted ${after.session_ids_minted! - before.session_ids_minted!}, forwarded ${after.cluster_forwarded! - before.cluster_forwarded!} ` +
      `(reads ${after.cluster_forwarded_reads! - before.cluster_forwarded_reads!})`);
    expect(id).toMatch(MINTED_ID);
    expect(sticky.map((p) => p.visits)).toEqual(range(1, 10));
    for (const p of sticky) {
      expect([p.server, p.pool, p.handler, p.id]).toEqual(['php2', 'client', 'user', id]);
      expect(p.save_path).toBe(expectedSavePath('client', 'php2'));
    }
    for (const [i, o] of ownersSeen.entries()) {
      expect(o, `owners via ${cluster!.nodes[i]!.id}`).toMatchObject({ id_kind: 'minted', named_master: 'node2', master: 'node2' });
      expect(o.backup).not.toBe('node2');
    }
    expect(after.session_ids_minted! - before.session_ids_minted!).toBe(1);
    expect(after.cluster_forwarded_reads! - before.cluster_forwarded_reads!).toBe(0);
    expect(after.cluster_forwarded! - before.cluster_forwarded!).toBe(0);

    // The balancer stops being sticky: php1 and php3 now serve the session through their own
    // daemons, which forward to node2.
    const roundRobin: Page[] = [];
    for (let i = 0; i < 9; i++) roundRobin.push(await browser.get('/client/rr/counter.php'));
    const end = await sumStats(cluster!.nodes, names);
    console.log(`[3 round-robin] visits ${roundRobin.map((p) => p.visits).join(',')} on ${JSON.stringify(countBy(roundRobin.map((p) => p.server)))}; ` +
      `same id: ${roundRobin.every((p) => p.id === id)}; forwarded reads ${end.cluster_forwarded_reads! - after.cluster_forwarded_reads!}`);
    expect(roundRobin.map((p) => p.visits)).toEqual(range(11, 19));
    expect(countBy(roundRobin.map((p) => p.server))).toEqual({ php1: 3, php2: 3, php3: 3 });
    for (const p of roundRobin) {
      expect(p.id, 'no failover, so the id stays').toBe(id);
      expect(p.save_path, `${p.server} talks to its own daemon`).toBe(expectedSavePath('client', p.server));
    }
    expect(browser.sessionId).toBe(id);
    expect(end.session_ids_minted! - after.session_ids_minted!).toBe(0);
    expect(end.cluster_forwarded_reads! - after.cluster_forwarded_reads!).toBeGreaterThan(0);
    for (const node of cluster!.nodes) expect((await rawGet(node, `memc.sess.key.${id}`))?.value, `via ${node.id}`).toBe('visits|i:19;');
  });

  it('no PHP warning or error, no nginx error, in any server log', () => {
    const bad = /PHP (Warning|Fatal|Notice|Deprecated|Parse)|\bERROR\b|\[(error|crit|alert|emerg)\]/;
    const found: string[] = [];
    for (const { file, label } of farm!.logs) {
      const lines = readLines(file);
      const warnings = lines.filter((l) => /WARNING|\[warn\]/.test(l));
      console.log(`[logs] ${label}: ${lines.length} lines${warnings.length ? `, warnings: ${warnings.join(' | ')}` : ''}`);
      found.push(...lines.filter((l) => bad.test(l)).map((l) => `${label}: ${l}`));
    }
    for (const p of procs) found.push(...p.output.filter((l) => bad.test(l)).map((l) => `${p.name} output: ${l}`));
    expect(found).toEqual([]);
  });
});
