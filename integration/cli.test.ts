/**
 * The command line as an operator meets it: port 0 logs the port bound, bad flags and config
 * values are refused with a message naming them, the config file is read, SIGTERM and SIGINT
 * stop the daemon cleanly, the unix socket serves clients, and --max-connections refuses extras.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { spawn } from 'node:child_process';
import net from 'node:net';
import { mkdtempSync, readFileSync, writeFileSync, existsSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { daemonBin, repoRoot, startDaemon, waitFor, type RunningServer } from './harness.js';
import { RawClient, exchange as rawExchange, type RawTarget } from './raw-client.js';

/** Sends `request` and collects the reply until `until` matches or the server closes. */
function exchange(target: RawTarget, request: string, until: RegExp): Promise<{ reply: string; closed: boolean }> {
  return rawExchange(target, request, until, { closeIsAnswer: true });
}

const running: RunningServer[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((server) => server.stop()));
});

async function start(args: string[] = []): Promise<RunningServer> {
  const server = await startDaemon(args);
  running.push(server);
  return server;
}

describe('session-cluster start', () => {
  it('binds a free port when given port 0 and logs it, then serves on it', async () => {
    const server = await start();
    expect(server.port).toBeGreaterThan(0);
    const { reply } = await exchange({ host: server.host, port: server.port }, 'set k 0 0 2\r\nhi\r\nget k\r\n', /END\r\n$/);
    expect(reply).toBe('STORED\r\nVALUE k 0 2\r\nhi\r\nEND\r\n');
  });

  it.each([
    [['--max-item-size', 'lots'], '--max-item-size'],
    [['--memory-limit', '-5'], '--memory-limit'],
    [['--max-connections', '0'], '--max-connections'],
    [['--listen', 'localhost'], '--listen'],
    [['--listen', '127.0.0.1:70000'], '--listen'],
    [['--log-level', 'loud'], '--log-level'],
    [['--socket-mode', '999'], '--socket-mode'],
  ])('refuses %j with a message naming %s', async (args, flag) => {
    const result = await execa(daemonBin, ['start', ...args], { reject: false, timeout: 10000 });
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain(flag);
  });

  describe('cluster flags', () => {
    // A secret in the environment of whoever runs the tests must not decide these cases.
    const run = (args: string[]) => execa(daemonBin, ['start', '--listen', '127.0.0.1:0', ...args], {
      reject: false, timeout: 10000, env: { SESSION_CLUSTER_SECRET: undefined },
    });

    it('refuses --peers without --peer-listen, naming --peers', async () => {
      const result = await run(['--peers', '127.0.0.1:11212', '--cluster-secret', 'a-secret-of-16-chars']);
      expect(result.exitCode).toBe(2);
      expect(result.stderr).toContain('--peers');
      expect(result.stderr).toContain('--peer-listen');
    });

    it('refuses --peer-listen without a secret, naming --cluster-secret and SESSION_CLUSTER_SECRET', async () => {
      const result = await run(['--peer-listen', '127.0.0.1:0']);
      expect(result.exitCode).toBe(2);
      expect(result.stderr).toContain('--cluster-secret');
      expect(result.stderr).toContain('SESSION_CLUSTER_SECRET');
    });

    it('refuses a short secret without echoing it', async () => {
      const result = await run(['--peer-listen', '127.0.0.1:0', '--cluster-secret', 'hunter2']);
      expect(result.exitCode).toBe(2);
      expect(result.stderr).toContain('--cluster-secret');
      expect(result.stderr).not.toContain('hunter2');
    });

    it('refuses --failure-timeout-ms below 3 heartbeats, naming both flags', async () => {
      const result = await run(['--heartbeat-ms', '200', '--failure-timeout-ms', '500']);
      expect(result.exitCode).toBe(2);
      expect(result.stderr).toContain('--failure-timeout-ms');
      expect(result.stderr).toContain('--heartbeat-ms');
    });

    it.each([
      [['--peer-listen', 'nowhere'], '--peer-listen'],
      [['--node-id', 'has space'], '--node-id'],
      [['--replication', 'maybe'], '--replication'],
      [['--heartbeat-ms', '5'], '--heartbeat-ms'],
    ])('refuses %j with a message naming %s', async (args, flag) => {
      const result = await run(args);
      expect(result.exitCode).toBe(2);
      expect(result.stderr).toContain(flag);
    });
  });

  it('refuses an unknown flag', async () => {
    const result = await execa(daemonBin, ['start', '--max-item', '5'], { reject: false, timeout: 10000 });
    expect(result.exitCode).not.toBe(0);
    expect(result.stderr).toContain('--max-item');
  });

  it('reads the config file, and flags win over it', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'session-cluster-'));
    const file = path.join(dir, 'config.json');
    writeFileSync(file, JSON.stringify({ maxItemSize: '2k', maxConnections: 7, memoryLimit: '64m' }));
    const server = await start(['--config', file, '--max-connections', '9']);
    const { reply } = await exchange({ host: server.host, port: server.port }, 'stats settings\r\n', /END\r\n$/);
    expect(reply).toContain('STAT item_size_max 2048\r\n');
    expect(reply).toContain('STAT maxconns 9\r\n');
    expect(reply).toContain('STAT maxbytes 67108864\r\n');
  });

  it('refuses a config file with an unknown key, naming the key', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'session-cluster-'));
    const file = path.join(dir, 'config.json');
    writeFileSync(file, JSON.stringify({ maxItemSize: '1m', memoryLimt: '1g' }));
    const result = await execa(daemonBin, ['start', '--config', file], { reject: false, timeout: 10000 });
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain('memoryLimt');
  });

  it('refuses a bad value in the config file, naming the file key', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'session-cluster-'));
    const file = path.join(dir, 'config.json');
    writeFileSync(file, JSON.stringify({ listen: 'nowhere' }));
    const result = await execa(daemonBin, ['start', '--config', file], { reject: false, timeout: 10000 });
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain('"listen"');
  });

  it('exits with a logged reason when the port is taken', async () => {
    const first = await start();
    const result = await execa(daemonBin, ['start', '--listen', `127.0.0.1:${first.port}`], { reject: false, timeout: 10000 });
    expect(result.exitCode).toBe(1);
    const fatal = result.stdout.split('\n').filter(Boolean).map((line) => JSON.parse(line)).find((entry) => entry.msg === 'cannot start');
    expect(fatal?.err).toContain('address already in use');
  });

  it.each(['SIGTERM', 'SIGINT'] as const)('stops cleanly on %s, closing client connections', async (signal) => {
    const server = await startDaemon();
    const client = await RawClient.connect(server.host, server.port);
    server.process.kill(signal);
    const result = await server.process;
    // The process is gone, so its close of our connection has arrived or is on its way.
    const clientClosed = await client.readUntilClosed(5000);
    client.destroy();
    expect(clientClosed.closed, 'the daemon closed the client connection').toBe(true);
    expect(result.exitCode).toBe(0);
    const messages = server.logs.map((entry) => entry.msg);
    expect(messages).toContain('stopping');
    expect(messages).toContain('stopped');
  });

  it('stops on SIGTERM even after whoever read its stdout went away', async () => {
    // A closed log pipe (a restarted journal, a dead supervisor) must not keep the daemon from
    // stopping cleanly. Plain spawn, so that destroying our end really closes the pipe.
    const child = spawn(daemonBin, ['start', '--listen', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'ignore'] });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    await new Promise((resolve) => child.stdout!.once('data', resolve));
    // Our end of the pipe is closed once the stream says so: from then on the daemon's writes fail.
    const pipeClosed = new Promise((resolve) => child.stdout!.once('close', resolve));
    child.stdout!.destroy();
    await pipeClosed;
    child.kill('SIGTERM');
    const killer = setTimeout(() => child.kill('SIGKILL'), 8000);
    const code = await exited;
    clearTimeout(killer);
    // 0 is the clean stop; a stop cut short by the 5 s deadline exits 1.
    expect(code).toBe(0);
  });

  it('serves on a unix socket with the requested mode, and removes it on exit', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'session-cluster-'));
    const socketPath = path.join(dir, 'sessions.sock');
    const server = await startDaemon(['--socket', socketPath, '--socket-mode', '0600']);
    try {
      expect(server.socketPath).toBe(socketPath);
      expect(statSync(socketPath).mode & 0o777).toBe(0o600);
      const { reply } = await exchange({ path: socketPath }, 'set u 3 0 1\r\nx\r\nget u\r\n', /END\r\n$/);
      expect(reply).toBe('STORED\r\nVALUE u 3 1\r\nx\r\nEND\r\n');
    } finally {
      await server.stop();
    }
    expect(existsSync(socketPath)).toBe(false);
  });

  it('never deletes what --socket names unless it is a socket: a regular file refuses the start and stays as it was', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'session-cluster-'));
    const config = path.join(dir, 'config.json');
    writeFileSync(config, '{"memoryLimit": "2g"}\n');
    const refused = await execa(daemonBin, ['start', '--listen', '127.0.0.1:0', '--socket', config], { reject: false, timeout: 10000 });
    expect(refused.exitCode).toBe(1);
    expect(refused.stdout).toContain(`cannot listen on ${config}: a file that is not a socket is there; it is left alone`);
    expect(readFileSync(config, 'utf8')).toBe('{"memoryLimit": "2g"}\n');
    // A socket in a directory that does not exist: the message says so, not "permission denied".
    const missing = path.join(dir, 'no-such-dir', 'sessions.sock');
    const noDir = await execa(daemonBin, ['start', '--listen', '127.0.0.1:0', '--socket', missing], { reject: false, timeout: 10000 });
    expect(noDir.exitCode).toBe(1);
    expect(noDir.stdout).toContain(`the directory ${path.dirname(missing)} does not exist`);
  });

  it('refuses connections beyond --max-connections with memcached\'s error line', async () => {
    // The metrics listener shows the open connections without taking a slot (a stats client would).
    const server = await start(['--max-connections', '2', '--metrics-listen', '127.0.0.1:0']);
    const metricsPort = Number(server.logs.find((l) => l.msg === 'listening' && l.transport === 'metrics')!.port);
    const openConnections = async () => /^session_cluster_curr_connections (\d+)$/m.exec(await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text())?.[1];
    const held = await Promise.all([0, 1].map(() => RawClient.connect(server.host, server.port)));
    try {
      const { reply, closed } = await exchange({ host: server.host, port: server.port }, '', /Too many open connections\r\n/);
      expect(reply).toBe('ERROR Too many open connections\r\n');
      expect(closed || reply.length > 0).toBe(true);
    } finally {
      held.forEach((client) => client.destroy());
    }
    // Once a slot frees up, a new client is served again.
    await waitFor(async () => (await openConnections()) === '0', { timeoutMs: 5000, what: 'the daemon to let go of the two connections' });
    const { reply } = await exchange({ host: server.host, port: server.port }, 'stats\r\n', /END\r\n$/);
    expect(reply).toMatch(/STAT rejected_connections 1\r\n/);
  });

  it('--metrics-listen serves the stats as Prometheus metrics at GET /metrics, and nothing else', async () => {
    const server = await start(['--metrics-listen', '127.0.0.1:0']);
    const line = server.logs.find((l) => l.msg === 'listening' && l.transport === 'metrics');
    expect(line, JSON.stringify(server.logs)).toBeDefined();
    const base = `http://127.0.0.1:${Number(line!.port)}`;
    await exchange({ host: server.host, port: server.port }, 'set k 0 0 1\r\nv\r\nget k\r\nget nothing\r\n', /END\r\nEND\r\n$/);
    const response = await fetch(`${base}/metrics`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    const text = await response.text();
    const stats = (await exchange({ host: server.host, port: server.port }, 'stats\r\n', /END\r\n$/)).reply;
    const stat = (name: string) => /STAT (\S+) (\S+)/.exec(stats.split('\r\n').find((l) => l.startsWith(`STAT ${name} `)) ?? '')?.[2];
    expect(text).toContain(`session_cluster_cmd_get_total ${stat('cmd_get')}`);
    expect(text).toContain('session_cluster_get_hits_total 1');
    expect(text).toContain('session_cluster_get_misses_total 1');
    expect(text).toContain('session_cluster_curr_items 1');
    expect(text).toMatch(/^session_cluster_info\{version="1\.6\.18-session-cluster-[^"]+",storage="memory"\} 1$/m);
    expect((await fetch(`${base}/`)).status).toBe(404);
    expect((await fetch(`${base}/metrics`, { method: 'POST', body: 'x' })).status).toBe(405);
    const head = await fetch(`${base}/metrics`, { method: 'HEAD' });
    expect([head.status, await head.text()]).toEqual([200, '']);
  });

  it('a single node remembers no deletions: stats show 0 tombstones after deletes', async () => {
    const server = await start([]);
    const { reply } = await exchange({ host: server.host, port: server.port },
      'set a 0 0 1\r\n1\r\nset b 0 0 1\r\n2\r\ndelete a\r\ndelete b\r\nstats\r\n', /END\r\n$/);
    expect(reply).toMatch(/^STORED\r\nSTORED\r\nDELETED\r\nDELETED\r\n/);
    expect(reply).toMatch(/STAT delete_hits 2\r\n/);
    expect(reply).toMatch(/STAT tombstones 0\r\n/);
    expect(reply).toMatch(/STAT tombstone_bytes 0\r\n/);
    expect(reply).toMatch(/STAT bytes 0\r\n/);
  });

  it('refuses to start when the metrics address is taken, naming it', async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', () => resolve()));
    const port = (blocker.address() as net.AddressInfo).port;
    try {
      const r = await execa(daemonBin, ['start', '--listen', '127.0.0.1:0', '--metrics-listen', `127.0.0.1:${port}`], { reject: false, timeout: 15_000 });
      expect(r.exitCode).toBe(1);
      expect(String(r.stdout)).toContain(`cannot listen for metrics on 127.0.0.1:${port}: address already in use`);
    } finally {
      blocker.close();
    }
  });

  it('npm start runs the daemon on 127.0.0.1:11211 by default', async () => {
    // On a machine where something already holds 11211 the daemon says so, naming the same
    // default address: either outcome shows the default.
    const child = execa('npm', ['start', '--silent'], { cwd: repoRoot, reject: false, buffer: false, stdin: 'ignore' });
    const first = await new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('npm start printed no listening line')), 15000);
      let rest = '';
      child.stdout!.on('data', (chunk: Buffer) => {
        rest += chunk.toString();
        for (const line of rest.split('\n').slice(0, -1)) {
          const entry = JSON.parse(line) as Record<string, unknown>;
          if (entry.msg === 'listening' || entry.msg === 'cannot start') { clearTimeout(timer); resolve(entry); }
        }
        rest = rest.slice(rest.lastIndexOf('\n') + 1);
      });
    });
    // Stop the daemon itself: npm does not always pass signals on to the script it runs.
    if (first.msg === 'listening') process.kill(Number(first.pid), 'SIGTERM');
    await child;
    if (first.msg === 'listening') {
      expect(first).toMatchObject({ transport: 'tcp', host: '127.0.0.1', port: 11211 });
    } else {
      expect(first.err).toBe('cannot listen on 127.0.0.1:11211: address already in use');
    }
  });
});
