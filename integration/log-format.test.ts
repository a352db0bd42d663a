/**
 * --log-format: pino JSON lines (exactly the fields tests and log shippers parse) when asked for
 * or when stdout is not a terminal, pino-pretty's human lines when asked for.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { execa, type ResultPromise } from 'execa';
import { daemonBin, startDaemon, waitFor, type RunningServer } from './harness.js';

const running: RunningServer[] = [];
const children: ResultPromise[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((server) => server.stop()));
  for (const child of children.splice(0)) {
    child.kill('SIGTERM');
    await child.catch(() => undefined);
  }
});

/** The JSON fields of the "listening" line today; a format change would break every reader. */
const LISTENING_FIELDS = ['level', 'time', 'pid', 'name', 'transport', 'host', 'port', 'msg'];

async function jsonLines(args: string[]): Promise<RunningServer> {
  const server = await startDaemon(args);
  running.push(server);
  return server;
}

describe('--log-format', () => {
  it.each([
    ['without the flag on a pipe', [] as string[]],
    ['json', ['--log-format', 'json']],
  ])('%s writes one pino JSON object per line', async (_name, args) => {
    const server = await jsonLines(args);
    // startDaemon keeps a line that is not JSON as { raw }.
    expect(server.logs.filter((entry) => 'raw' in entry)).toEqual([]);
    const listening = server.logs.find((entry) => entry.msg === 'listening');
    expect(Object.keys(listening ?? {})).toEqual(LISTENING_FIELDS);
    expect(listening).toMatchObject({ level: 30, name: 'session-cluster', transport: 'tcp', host: '127.0.0.1', port: server.port });
  });

  it('pretty writes human lines: time, level name, message and fields, no JSON object per line', async () => {
    const child = execa(daemonBin, ['start', '--listen', '127.0.0.1:0', '--log-format', 'pretty'], { reject: false, buffer: false, stdin: 'ignore' });
    children.push(child);
    let output = '';
    child.stdout!.on('data', (chunk: Buffer) => { output += chunk.toString('utf8'); });
    await waitFor(() => / ready /.test(output), { timeoutMs: 15_000, what: () => `"ready" in ${JSON.stringify(output)}` });
    const lines = output.split('\n').filter((line) => line !== '');
    const listening = lines.find((line) => line.includes('listening'));
    expect(listening).toMatch(/^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} [^\]]+\] INFO \(session-cluster\/\d+\): listening \{"transport":"tcp","host":"127\.0\.0\.1","port":\d+\}$/);
    for (const line of lines) expect(() => JSON.parse(line), line).toThrow();
  });

  it('refuses another format, naming the flag (exit 2)', async () => {
    const result = await execa(daemonBin, ['start', '--log-format', 'text'], { reject: false, timeout: 10_000 });
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toBe('session-cluster: --log-format: "text" is not a log format; use one of json, pretty');
  });
});
