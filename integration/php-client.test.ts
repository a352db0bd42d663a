/**
 * The PHP library (php-client/) against real daemons: its PHPUnit suite runs once per
 * transport — php-memcached over binary and over ascii, pecl memcache, and the library's own
 * ascii socket client — with a single-node daemon (TCP and unix socket), a 3-node cluster, and a
 * single node with --auth-file (whose user the suite's authentication tests log in as).
 * The environment tells the suite where they are (php-client/phpunit.xml.dist lists the variables).
 *
 * Each run must pass and must have run at least MIN_TESTS tests: a suite that silently ran nothing
 * (a broken bootstrap, a wrong filter) fails here.
 */
import { execa } from 'execa';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLiveCluster, stopCluster, type Cluster } from './cluster-harness.js';
import { repoRoot, startDaemon, type RunningServer } from './harness.js';
import { PHP } from './php-harness.js';

const PHPUNIT = '/usr/bin/phpunit';
const CONFIG = path.join(repoRoot, 'php-client', 'phpunit.xml.dist');
const TRANSPORTS = ['memcached', 'memcached-ascii', 'memcache', 'socket'] as const;
/** The suite has about 95 tests; fewer than this means whole files did not run. */
const MIN_TESTS = 80;

let socketDir: string;
let single: RunningServer;
let cluster: Cluster;
let authenticated: RunningServer;
const AUTH_USER = 'php';
const AUTH_PASSWORD = 'pass word:with spaces';

beforeAll(async () => {
  socketDir = await mkdtemp(path.join(os.tmpdir(), 'php-client-test-'));
  const users = path.join(socketDir, 'users');
  await writeFile(users, `${AUTH_USER}:${AUTH_PASSWORD}\n`);
  await chmod(users, 0o600);
  [single, cluster, authenticated] = await Promise.all([
    startDaemon(['--socket', path.join(socketDir, 'daemon.sock')]),
    startLiveCluster(3),
    startDaemon(['--auth-file', users]),
  ]);
});

afterAll(async () => {
  await Promise.all([single?.stop(), stopCluster(cluster), authenticated?.stop()]);
  if (socketDir) await rm(socketDir, { recursive: true, force: true });
});

interface PhpunitRun {
  transport: string;
  exitCode: number | undefined;
  output: string;
  tests: number;
}

async function phpunit(transport: string): Promise<PhpunitRun> {
  const r = await execa(PHP, [PHPUNIT, '-c', CONFIG], {
    reject: false,
    all: true,
    timeout: 50_000,
    stdin: 'ignore',
    env: {
      SESSION_CLUSTER_TRANSPORT: transport,
      SESSION_CLUSTER_SINGLE: `${single.host}:${single.port}`,
      SESSION_CLUSTER_SINGLE_SOCKET: single.socketPath ?? '',
      SESSION_CLUSTER_NODES: cluster.nodes.map((n) => `${n.host}:${n.port}`).join(','),
      SESSION_CLUSTER_AUTH: `${authenticated.host}:${authenticated.port}`,
      SESSION_CLUSTER_AUTH_USER: AUTH_USER,
      SESSION_CLUSTER_AUTH_PASSWORD: AUTH_PASSWORD,
    },
  });
  const output = String(r.all);
  // PHPUnit's summary when everything passed and nothing was skipped: "OK (95 tests, 812 assertions)".
  const ok = /^OK \((\d+) tests?, \d+ assertions?\)$/m.exec(output);
  return { transport, exitCode: r.exitCode, output, tests: ok ? Number(ok[1]) : 0 };
}

describe('php-client PHPUnit suite', () => {
  // The four runs share the daemons (every test uses ids of its own) and run side by side: most of
  // the suite's time is spent waiting on locks and expiries, not on the CPU.
  let runs: Promise<PhpunitRun[]>;
  beforeAll(() => {
    runs = Promise.all(TRANSPORTS.map(phpunit));
  });

  it.each(TRANSPORTS)('passes with transport %s', async (transport) => {
    const run = (await runs).find((r) => r.transport === transport)!;
    expect(run.exitCode, run.output).toBe(0);
    expect(run.tests, run.output).toBeGreaterThanOrEqual(MIN_TESTS);
  });
});
