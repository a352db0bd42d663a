/**
 * Protocol conformance: Debian's `memccapable` (libmemcached-tools 1.1.x) runs 27 ascii and 27
 * binary checks against a server and prints one line per check:
 *
 *     ascii set                               [pass]
 *     binary getkq                            [FAIL]
 *
 * then "All tests passed" or "N of M tests failed" (exit status 1). It FLUSHes the server, so each
 * run gets a fresh process. The same assertion also runs against real memcached as a reference:
 * if that one fails, the environment (not the daemon) is broken.
 */
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { startDaemon, startMemcached, type RunningServer } from './harness.js';

/** Every check memccapable 1.1.4 runs, in its order (verified against memcached 1.6). */
const EXPECTED_TESTS = [
  ...[
    'version', 'quit', 'verbosity', 'set', 'set noreply', 'get', 'gets', 'mget', 'flush', 'flush noreply',
    'add', 'add noreply', 'replace', 'replace noreply', 'cas', 'cas noreply', 'delete', 'delete noreply',
    'incr', 'incr noreply', 'decr', 'decr noreply', 'append', 'append noreply', 'prepend', 'prepend noreply', 'stat',
  ].map((t) => `ascii ${t}`),
  ...[
    'noop', 'quit', 'quitq', 'set', 'setq', 'flush', 'flushq', 'add', 'addq', 'replace', 'replaceq', 'delete',
    'deleteq', 'get', 'getq', 'getk', 'getkq', 'incr', 'incrq', 'decr', 'decrq', 'version', 'append', 'appendq',
    'prepend', 'prependq', 'stat',
  ].map((t) => `binary ${t}`),
];

interface CapableRun {
  results: Map<string, string>;
  /** for checks that did not pass: what memccapable printed after the check's name */
  diagnostics: Map<string, string>;
  unparsed: string[];
  exitCode: number | undefined;
  timedOut: boolean;
  report: string;
}

/** How memccapable names its checks: "ascii set noreply", "binary getkq". */
const NAME = '(?:ascii|binary) [a-z]+(?: [a-z]+)?';

async function runMemccapable(server: RunningServer): Promise<CapableRun> {
  // -t 5: per-I/O timeout, so a check the server never answers fails instead of hanging.
  // The overall timeout bounds a server that stalls on many checks (54 x 5 s would be too long).
  const r = await execa('memccapable', ['-h', server.host, '-p', String(server.port), '-t', '5'], {
    reject: false, all: true, timeout: 30_000, stdin: 'ignore',
  });
  const results = new Map<string, string>();
  const diagnostics = new Map<string, string>();
  const stdout = r.stdout ?? '';
  const all = r.all ?? '';
  // stdout gets each check's name padded to 40 columns, then "[pass]\n" (or "[skip]\n"). A
  // failing check leaves only its padded name on stdout: its reason (e.g. "Errno: 110 Connection
  // timed out") and "[FAIL]" go to stderr. So a name not followed by a verdict on stdout failed
  // (or hung).
  const check = new RegExp(`(${NAME}) +(?:\\[(pass|skip)\\]\\n)?`, 'g');
  let rest = stdout;
  for (const m of stdout.matchAll(check)) {
    results.set(m[1]!, m[2] ?? 'FAIL');
    rest = rest.replace(m[0], '');
    if (!m[2]) {
      // Best effort: what the interleaved output shows between this name and the next one.
      const from = all.indexOf(m[1]!);
      const next = all.slice(from + m[1]!.length).search(new RegExp(NAME));
      const said = all.slice(from + m[1]!.length, next < 0 ? undefined : from + m[1]!.length + next);
      diagnostics.set(m[1]!, said.replace('[FAIL]', '').replace(/\s+/g, ' ').trim());
    }
  }
  const unparsed = rest.split('\n').filter((line) => line.trim() !== '');
  return {
    results, diagnostics, unparsed, exitCode: r.exitCode, timedOut: r.timedOut,
    report: `memccapable against ${server.host}:${server.port} (exit ${r.exitCode}${r.timedOut ? ', timed out' : ''}):\n${r.all ?? ''}`,
  };
}

function expectAllPassed(run: CapableRun): void {
  // The message carries memccapable's whole output, so a failure shows which check broke and
  // the assertion it printed.
  const notPassed = EXPECTED_TESTS.filter((t) => run.results.get(t) !== 'pass')
    .map((t) => `${t}: ${run.results.get(t) ?? 'not run'}${run.diagnostics.get(t) ? ` (${run.diagnostics.get(t)})` : ''}`);
  expect(notPassed, run.report).toEqual([]);
  expect([...run.results.keys()], run.report).toEqual(EXPECTED_TESTS);
  expect(run.results.size, run.report).toBe(54);
  expect(run.unparsed, run.report).toEqual(['All tests passed']);
  expect(run.timedOut, run.report).toBe(false);
  expect(run.exitCode, run.report).toBe(0);
}

// Concurrent: two independent servers, and memccapable spends most of its ~5 s waiting.
describe.concurrent('memccapable (ascii + binary protocol conformance)', () => {
  const started: RunningServer[] = [];
  afterAll(async () => {
    await Promise.all(started.map((s) => s.stop()));
  });

  it('real memcached passes all 54 checks (reference for the assertion)', async () => {
    const mc = await startMemcached();
    started.push(mc);
    expectAllPassed(await runMemccapable(mc));
  });

  it('session-cluster passes all 54 checks', async () => {
    const daemon = await startDaemon();
    started.push(daemon);
    expectAllPassed(await runMemccapable(daemon));
    // The daemon survived the run (bad input must never crash it).
    expect(daemon.process.exitCode, JSON.stringify(daemon.logs.slice(-20))).toBeNull();
  });
});
