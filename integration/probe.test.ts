/**
 * `session-cluster probe ADDR` against real servers: our daemon and real memcached pass every
 * step and leave no probe key behind; a closed port, an HTTP server and a malformed address fail
 * with one line and the exit code scripts test.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import http from 'node:http';
import type net from 'node:net';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { daemonBin, freePort, startDaemon, startMemcached, type RunningServer } from './harness.js';
import { rawGet, rawStats, type RawTarget } from './raw-client.js';

const running: RunningServer[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((server) => server.stop()));
});

async function started(server: Promise<RunningServer>): Promise<RunningServer> {
  const ready = await server;
  running.push(ready);
  return ready;
}

const SERVERS = {
  'our daemon': () => started(startDaemon()),
  'real memcached': () => started(startMemcached()),
};

const STEPS = ['connect', 'ascii', 'binary', 'round-trip', 'latency'];
const COUNT = 20;

function probe(args: string[]) {
  return execa(daemonBin, ['probe', ...args], { reject: false, timeout: 30_000 });
}

interface JsonReport {
  address: string;
  ok: boolean;
  steps: Array<{ step: string; ok: boolean; error?: string; [figure: string]: unknown }>;
  error?: string;
}

/** What the probe did to the server, from its own counters: sets and deletes that found the key. */
async function writesSeen(target: RawTarget): Promise<{ sets: number; deleteHits: number }> {
  const stats = await rawStats(target);
  return { sets: Number(stats.cmd_set), deleteHits: Number(stats.delete_hits) };
}

describe('session-cluster probe', () => {
  it.each(Object.keys(SERVERS) as Array<keyof typeof SERVERS>)('passes every step against %s, and takes its key away (--json)', async (name) => {
    const server = await SERVERS[name]();
    const target = { host: server.host, port: server.port };
    const result = await probe([`${server.host}:${server.port}`, '--count', String(COUNT), '--json']);
    expect(result.stderr).toBe('');
    expect(result.exitCode).toBe(0);
    const report = JSON.parse(result.stdout) as JsonReport;
    expect(report).toMatchObject({ address: `${server.host}:${server.port}`, ok: true });
    expect(report.steps.map((step) => [step.step, step.ok])).toEqual(STEPS.map((step) => [step, true]));
    const [connect, ascii, binary, roundTrip, latency] = report.steps;
    expect(connect!.ms).toBeTypeOf('number');
    expect(ascii!.version).toMatch(/^1\.6\.\d+/);
    expect(binary!.version).toBe(ascii!.version);
    expect(roundTrip!.key).toMatch(/^session-cluster-probe\.[0-9a-f]{16}$/);
    expect(latency).toMatchObject({ count: COUNT });
    expect(latency!.p50Ms).toBeTypeOf('number');
    expect(latency!.p99Ms as number).toBeGreaterThanOrEqual(latency!.p50Ms as number);
    // It really wrote (one set for the round trip, COUNT for the latency, each deleted once)...
    expect(await writesSeen(target)).toEqual({ sets: 1 + COUNT, deleteHits: 2 });
    // ...and left nothing behind.
    expect(await rawGet(target, String(roundTrip!.key))).toBeNull();
  });

  it('prints one line per step for a person, over a unix socket too', async () => {
    const socket = path.join(mkdtempSync(path.join(tmpdir(), 'session-cluster-probe-')), 'sessions.sock');
    const server = await started(startDaemon(['--socket', socket]));
    for (const address of [`tcp://127.0.0.1:${server.port}`, `unix:${socket}`]) {
      const result = await probe([address, '--count', '5']);
      expect(result.exitCode, result.stderr).toBe(0);
      const lines = result.stdout.split('\n');
      expect(lines.map((line) => line.split(/ +/).slice(0, 2))).toEqual(STEPS.map((step) => [step, 'ok']));
      expect(lines[1]).toMatch(/ version 1\.6\.18-session-cluster-/);
      expect(lines[3]).toMatch(/ set, get and delete of session-cluster-probe\.[0-9a-f]{16}: \d+ bytes back byte for byte$/);
      expect(lines[4]).toMatch(/ p50 \d+(\.\d+)? ms, p99 \d+(\.\d+)? ms over 5 set\+get round trips$/);
      const key = /(session-cluster-probe\.[0-9a-f]{16})/.exec(lines[3]!)![1]!;
      expect(await rawGet({ path: socket }, key)).toBeNull();
    }
  });

  it('goes on past a server without the binary protocol, then fails (exit 1) naming it', async () => {
    const memcached = await started(startMemcached(['-B', 'ascii']));
    const result = await probe([`127.0.0.1:${memcached.port}`, '--count', '3', '--timeout-ms', '500']);
    expect(result.exitCode).toBe(1);
    expect(result.stdout.split('\n').map((line) => line.split(/ +/).slice(0, 2))).toEqual([
      ['connect', 'ok'], ['ascii', 'ok'], ['binary', 'FAILED'], ['round-trip', 'ok'], ['latency', 'ok'],
    ]);
    expect(result.stderr).toBe(`session-cluster: 127.0.0.1:${memcached.port} does not answer the binary protocol: no answer to a VERSION request in 500 ms`);
  });

  it('against a node that wants authentication, fails (exit 1) with its refusal, not as a stranger', async () => {
    const authFile = path.join(mkdtempSync(path.join(tmpdir(), 'session-cluster-probe-')), 'users');
    writeFileSync(authFile, 'php:a-password\n', { mode: 0o600 });
    const server = await started(startDaemon(['--auth-file', authFile]));
    const result = await probe([`127.0.0.1:${server.port}`]);
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toBe(`session-cluster: 127.0.0.1:${server.port} answered version with "CLIENT_ERROR unauthenticated"`);
  });

  it('fails with exit 1 and one line on a closed port', async () => {
    const port = await freePort();
    const result = await probe([`127.0.0.1:${port}`]);
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toBe(`session-cluster: cannot reach 127.0.0.1:${port}: connection refused (is the daemon running, and on this address?)`);
    expect(result.stdout).toBe(`connect     FAILED  cannot reach 127.0.0.1:${port}: connection refused (is the daemon running, and on this address?)`);
  });

  it('fails with exit 1 and one line naming what an HTTP server answered', async () => {
    const server = http.createServer((_request, response) => response.end('not memcached'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    const { port } = server.address() as net.AddressInfo;
    try {
      const result = await probe([`127.0.0.1:${port}`, '--json']);
      expect(result.exitCode).toBe(1);
      const reason = `127.0.0.1:${port} is not a memcached server: it answered "HTTP/1.1 400 Bad Request"`;
      expect(result.stderr).toBe(`session-cluster: ${reason}`);
      const report = JSON.parse(result.stdout) as JsonReport;
      expect(report).toMatchObject({ ok: false, error: reason });
      expect(report.steps.map((step) => [step.step, step.ok])).toEqual([['connect', true], ['ascii', false]]);
    } finally {
      server.close();
    }
  });

  it.each([
    ['nowhere', 'not a node address: "nowhere"'],
    ['127.0.0.1:0', 'not a node address: "127.0.0.1:0"'],
    ['unix:relative.sock', 'not a node address: "unix:relative.sock" (a unix socket is unix:/absolute/path)'],
    ['127.0.0.1:11211 --count 0', "option '--count <n>' argument '0' is invalid"],
    ['127.0.0.1:11211 --timeout-ms soon', "option '--timeout-ms <ms>' argument 'soon' is invalid"],
  ])('refuses %s as a usage error (exit 2): one line, no stack trace', async (args, problem) => {
    const result = await probe(args.split(' '));
    expect(result.exitCode).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr.split('\n')).toHaveLength(1);
    expect(result.stderr).toMatch(/^session-cluster: /);
    expect(result.stderr).toContain(problem);
  });
});
