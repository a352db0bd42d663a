/**
 * `session-cluster probe ADDR`: is ADDR a working memcached-compatible endpoint? Our daemon and
 * real memcached alike. One line per step on stdout (or one JSON object with --json); exit 0
 * when every step passed, else 1 with the first failure's reason as the one line on stderr.
 */
import { type Command, InvalidArgumentError } from 'commander';
import { action, CliError } from './cli-error.js';
import { parseNodeAddress } from './node-address.js';
import { printJson, printLines } from './output.js';
import { probeNode, type ProbeReport, type StepResult } from './probe-steps.js';

const DEFAULT_COUNT = 100;
const DEFAULT_TIMEOUT_MS = 2000;
/** Enough for a stable p99; more only keeps the probe's key busy for longer. */
const MAX_COUNT = 100_000;

interface ProbeFlags {
  count: number;
  timeoutMs: number;
  json?: boolean;
}

export function registerProbe(program: Command): void {
  program
    .command('probe')
    .description('check that an address is a working memcached endpoint (ascii and binary protocols, a set/get/delete round trip) and time it')
    .argument('<addr>', 'host:port, tcp://host:port or unix:/path, as in php.ini\'s session.save_path')
    .option('--count <n>', `set+get round trips timed for the latency figures (1 to ${MAX_COUNT})`, wholeNumber(1, MAX_COUNT), DEFAULT_COUNT)
    .option('--timeout-ms <ms>', 'how long connecting and each request may take', wholeNumber(1, 3_600_000), DEFAULT_TIMEOUT_MS)
    .option('--json', 'print one JSON document: {"address","ok","steps":[{"step","ok",...figures or "error"}],"error"}')
    .action(action(async (addr: string, flags: ProbeFlags) => {
      const address = parseNodeAddress(addr);
      const json = flags.json === true;
      const report = await probeNode(address, {
        count: flags.count,
        timeoutMs: flags.timeoutMs,
        // A person sees each step as it ends; a script gets the whole report at once.
        onStep: json ? undefined : (result) => printLines([formatStep(result)]),
      });
      if (json) printJson(reportAsJson(report));
      if (!report.ok) throw new CliError(report.error!);
    }));
}

const STEP_WIDTH = 'round-trip'.length;

export function formatStep(result: StepResult): string {
  return result.ok
    ? `${result.step.padEnd(STEP_WIDTH)}  ok      ${result.summary}`
    : `${result.step.padEnd(STEP_WIDTH)}  FAILED  ${result.error}`;
}

function reportAsJson(report: ProbeReport): Record<string, unknown> {
  return {
    address: report.address,
    ok: report.ok,
    steps: report.steps.map((result) => (result.ok
      ? { step: result.step, ok: true, ...result.figures }
      : { step: result.step, ok: false, error: result.error })),
    ...(report.error === undefined ? {} : { error: report.error }),
  };
}

function wholeNumber(min: number, max: number): (text: string) => number {
  return (text) => {
    const value = /^\d+$/.test(text) ? Number(text) : NaN;
    if (!Number.isSafeInteger(value) || value < min || value > max) throw new InvalidArgumentError(`expected a whole number from ${min} to ${max}`);
    return value;
  };
}
