/**
 * Integration harness: starts real processes (our daemon, real memcached) on free
 * loopback ports, waits until they accept connections, and stops them. Every test
 * that starts a process must call stop() itself (usually in afterAll/afterEach).
 */
import { execa, type ResultPromise } from 'execa';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { RawClient } from './raw-client.js';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const daemonBin = path.join(repoRoot, 'bin', 'session-cluster');

export interface RunningServer {
  host: string;
  port: number;
  /** unix socket path, when the daemon was started with --socket */
  socketPath?: string;
  /** the HTTP port of --metrics-listen (/metrics, /health, /ready), once it logged it */
  metricsPort?: number;
  process: ResultPromise;
  /** every log line the process printed so far, parsed when it was JSON */
  logs: Array<Record<string, unknown>>;
  /**
   * The daemon's own pid, from its first log line. It differs from process.pid when the daemon
   * runs under a wrapper that forks (faketime does, and does not pass signals on), so signals
   * meant for the daemon go here.
   */
  daemonPid?: number;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/** Sends `signal` to the daemon itself (not to a wrapper around it); false if it is gone. */
export function signalDaemon(server: RunningServer, signal: NodeJS.Signals): boolean {
  const pid = server.daemonPid ?? server.process.pid;
  if (pid === undefined) return false;
  try {
    process.kill(pid, signal);
    return true;
  } catch {
    return false;
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export interface PollOptions {
  timeoutMs: number;
  /** pause between two checks; default 20 ms */
  intervalMs?: number;
}

/**
 * Checks `condition` until it holds or `timeoutMs` has passed; whether it held. For a test that
 * waited a fixed time before its expectations: it now goes on as soon as what it waited for has
 * happened, and when it has not, the expectations that follow say what is missing.
 */
export async function pollUntil(condition: () => boolean | Promise<boolean>, opts: PollOptions): Promise<boolean> {
  const deadline = Date.now() + opts.timeoutMs;
  for (;;) {
    if (await condition()) return true;
    if (Date.now() >= deadline) return false;
    await sleep(Math.min(opts.intervalMs ?? 20, Math.max(1, deadline - Date.now())));
  }
}

/** pollUntil that throws, naming `what` (called at the time, to show the last state), when the time runs out. */
export async function waitFor(condition: () => boolean | Promise<boolean>, opts: PollOptions & { what: string | (() => string) }): Promise<void> {
  if (await pollUntil(condition, opts)) return;
  const what = typeof opts.what === 'function' ? opts.what() : opts.what;
  throw new Error(`waited ${opts.timeoutMs} ms for ${what}`);
}

/** A port nobody listens on right now (the kernel picks it, then we release it). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

function collectLines(stream: NodeJS.ReadableStream | null, sink: (line: string) => void): void {
  if (!stream) return;
  let rest = '';
  stream.on('data', (chunk: Buffer) => {
    rest += chunk.toString('utf8');
    let nl;
    while ((nl = rest.indexOf('\n')) >= 0) {
      sink(rest.slice(0, nl));
      rest = rest.slice(nl + 1);
    }
  });
}

function stopper(child: ResultPromise, server?: () => RunningServer): (signal?: NodeJS.Signals) => Promise<void> {
  const send = (sig: NodeJS.Signals) => { if (server) signalDaemon(server(), sig); else child.kill(sig); };
  return async (signal: NodeJS.Signals = 'SIGTERM') => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    send(signal);
    const killer = setTimeout(() => send('SIGKILL'), 5000);
    await child.catch(() => undefined);
    clearTimeout(killer);
  };
}

/**
 * Starts bin/session-cluster with `start --listen 127.0.0.1:0` plus `args`, and resolves
 * once it logged the port it bound ("listening") and that it is "ready". `prefix` runs the
 * daemon under another command (e.g. `faketime -f +1h`). `until: 'metrics'` resolves as soon as
 * the --metrics-listen listener is open instead: for a daemon that is not expected to serve (a
 * cluster node that cannot join), whose client port stays closed.
 */
export async function startDaemon(args: string[] = [], opts: { timeoutMs?: number; env?: Record<string, string>; prefix?: string[]; until?: 'ready' | 'metrics' } = {}): Promise<RunningServer> {
  const hasListen = args.includes('--listen');
  const fullArgs = ['start', ...(hasListen ? [] : ['--listen', '127.0.0.1:0']), ...args];
  const [file, ...before] = [...(opts.prefix ?? []), daemonBin];
  const child = execa(file!, [...before, ...fullArgs], { reject: false, buffer: false, env: opts.env, stdin: 'ignore' });
  const logs: Array<Record<string, unknown>> = [];
  const server: RunningServer = { host: '127.0.0.1', port: 0, process: child, logs, stop: stopper(child, () => server) };
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`daemon did not become ready: ${JSON.stringify(logs)}`)), opts.timeoutMs ?? 15000);
    const onLine = (line: string) => {
      let entry: Record<string, unknown>;
      try { entry = JSON.parse(line); } catch { entry = { raw: line }; }
      logs.push(entry);
      if (server.daemonPid === undefined && typeof entry.pid === 'number') server.daemonPid = entry.pid;
      if (entry.msg === 'listening' && entry.transport === 'tcp') {
        server.host = String(entry.host);
        server.port = Number(entry.port);
      }
      if (entry.msg === 'listening' && entry.transport === 'unix') server.socketPath = String(entry.path);
      if (entry.msg === 'listening' && entry.transport === 'metrics') {
        server.metricsPort = Number(entry.port);
        if (opts.until === 'metrics') { clearTimeout(timer); resolve(); }
      }
      if (entry.msg === 'ready') { clearTimeout(timer); resolve(); }
    };
    collectLines(child.stdout, onLine);
    collectLines(child.stderr, onLine);
    child.then((r) => { clearTimeout(timer); reject(new Error(`daemon exited early (${r.exitCode ?? r.signal}): ${JSON.stringify(logs)}`)); }, reject);
  });
  return server;
}

/** GET `path` on a daemon's --metrics-listen port: the status and the body. */
export async function httpGet(server: { metricsPort?: number }, path: string): Promise<{ status: number; body: string }> {
  if (server.metricsPort === undefined) throw new Error(`GET ${path}: the daemon has no --metrics-listen port (yet)`);
  const response = await fetch(`http://127.0.0.1:${server.metricsPort}${path}`, { signal: AbortSignal.timeout(2000) });
  return { status: response.status, body: await response.text() };
}

/** `n` different free ports (see freePort). */
export async function freePorts(n: number): Promise<number[]> {
  const ports: number[] = [];
  while (ports.length < n) {
    const p = await freePort();
    if (!ports.includes(p)) ports.push(p);
  }
  return ports;
}

export interface WaitForPortOptions {
  /** default 10 s */
  timeoutMs?: number;
  /** names the process that should listen, in failure messages */
  who?: string;
  /** false once that process has exited: waiting stops there, and fails */
  running?: () => boolean;
  /** more about that process for a failure message (its output, say) */
  describe?: () => string;
}

/** Waits until something accepts TCP connections on host:port. */
export async function waitForPort(host: string, port: number, opts: WaitForPortOptions = {}): Promise<void> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const deadline = Date.now() + timeoutMs;
  const who = opts.who ?? 'the server';
  const more = () => (opts.describe ? `: ${opts.describe()}` : '');
  for (;;) {
    if (opts.running && !opts.running()) throw new Error(`${who} exited before listening on ${host}:${port}${more()}`);
    const accepted = await RawClient.connect(host, port).then((c) => { c.destroy(); return true; }, () => false);
    if (accepted) return;
    if (Date.now() > deadline) throw new Error(`${who}: nothing listens on ${host}:${port} after ${timeoutMs} ms${more()}`);
    await sleep(50);
  }
}

/** Starts the real memcached (Debian's package) on a free loopback port, for side-by-side checks. */
export async function startMemcached(extraArgs: string[] = []): Promise<RunningServer> {
  const port = await freePort();
  // memcached refuses to run as root unless told which user to run as.
  const asUser = process.getuid?.() === 0 && !extraArgs.includes('-u') ? ['-u', 'root'] : [];
  const child = execa('memcached', ['-l', '127.0.0.1', '-p', String(port), '-U', '0', ...asUser, ...extraArgs], {
    reject: false, buffer: false, stdin: 'ignore',
  });
  const logs: Array<Record<string, unknown>> = [];
  collectLines(child.stderr, (line) => logs.push({ raw: line }));
  await waitForPort('127.0.0.1', port);
  return { host: '127.0.0.1', port, process: child, logs, stop: stopper(child) };
}
