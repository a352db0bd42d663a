/**
 * The checks of `session-cluster probe`, in order, each a step that passes with its figures or
 * fails with one line. A failure that leaves nothing to check further ends the probe; only the
 * binary protocol is checked apart, on its own connection, so the text protocol goes on without it.
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { AsciiClient } from './ascii-client.js';
import { binaryVersion } from './binary-version.js';
import { CliError } from './cli-error.js';
import { describeNode, type NodeAddress } from './node-address.js';

export type ProbeStep = 'connect' | 'ascii' | 'binary' | 'round-trip' | 'latency';

export interface StepResult {
  step: ProbeStep;
  ok: boolean;
  /** what passed, for a person: "version 1.6.18", "p50 0.081 ms, p99 0.244 ms ..." */
  summary: string;
  /** the figures behind the summary, for --json */
  figures: Record<string, string | number>;
  /** why it failed */
  error?: string;
}

export interface ProbeReport {
  address: string;
  ok: boolean;
  steps: StepResult[];
  /** the first failure's reason */
  error?: string;
}

export interface ProbeOptions {
  /** set+get round trips timed for the latency figures */
  count: number;
  /** for connecting and for each request */
  timeoutMs: number;
  /** told of each step as it ends, so a person sees progress */
  onStep?: (result: StepResult) => void;
}

/** Probe keys expire on their own should the probe die before it deletes them. */
const PROBE_EXPTIME_SECONDS = 60;
const PROBE_KEY_PREFIX = 'session-cluster-probe.';

type Passed = { summary: string; figures: Record<string, string | number> };

export async function probeNode(address: NodeAddress, options: ProbeOptions): Promise<ProbeReport> {
  const report: ProbeReport = { address: describeNode(address), ok: true, steps: [] };
  /** Runs one step; false when it failed. */
  const step = async (name: ProbeStep, run: () => Promise<Passed>): Promise<boolean> => {
    let result: StepResult;
    try {
      result = { step: name, ok: true, ...(await run()) };
    } catch (error) {
      // Anything but a CliError is a bug, and is reported as one.
      if (!(error instanceof CliError)) throw error;
      result = { step: name, ok: false, summary: '', figures: {}, error: error.message };
      report.ok = false;
      report.error ??= error.message;
    }
    report.steps.push(result);
    options.onStep?.(result);
    return result.ok;
  };

  // Set by the connect step; a holder, since the step sets it from inside its callback.
  const connection: { client?: AsciiClient } = {};
  const key = `${PROBE_KEY_PREFIX}${randomBytes(8).toString('hex')}`;
  let keyMayExist = false;
  try {
    const connected = await step('connect', async () => {
      const started = performance.now();
      connection.client = await AsciiClient.connect(address, options.timeoutMs);
      const ms = roundMs(performance.now() - started);
      return { summary: `connected in ${ms} ms`, figures: { ms } };
    });
    const ascii = connection.client;
    if (!connected || ascii === undefined) return report;
    if (!await step('ascii', async () => {
      const version = await ascii.version();
      return { summary: `version ${version}`, figures: { version } };
    })) return report;
    await step('binary', async () => {
      const version = await binaryVersion(address, options.timeoutMs);
      return { summary: `version ${version}`, figures: { version } };
    });
    // Bytes a text protocol could trip on (CR LF, "END", NUL, high bytes) between random ones:
    // the value must come back byte for byte.
    const value = Buffer.concat([randomBytes(24), Buffer.from('\r\nEND\r\n\0\xff', 'latin1'), randomBytes(24)]);
    if (!await step('round-trip', async () => {
      keyMayExist = true;
      await storeAndFetch(ascii, key, value);
      if (!await ascii.delete(key)) throw new CliError(`${report.address} answered delete of ${key} with NOT_FOUND right after storing it`);
      if ((await ascii.get([key])).has(key)) throw new CliError(`${report.address} still has ${key} after deleting it`);
      keyMayExist = false;
      return { summary: `set, get and delete of ${key}: ${value.length} bytes back byte for byte`, figures: { key, bytes: value.length } };
    })) return report;
    await step('latency', async () => {
      keyMayExist = true;
      const times: number[] = [];
      for (let i = 0; i < options.count; i++) {
        const started = performance.now();
        await storeAndFetch(ascii, key, value);
        times.push(performance.now() - started);
      }
      if (!await ascii.delete(key)) throw new CliError(`${report.address} answered delete of ${key} with NOT_FOUND right after storing it`);
      keyMayExist = false;
      times.sort((a, b) => a - b);
      const p50Ms = roundMs(percentile(times, 50));
      const p99Ms = roundMs(percentile(times, 99));
      return { summary: `p50 ${p50Ms} ms, p99 ${p99Ms} ms over ${options.count} set+get round trips`, figures: { count: options.count, p50Ms, p99Ms } };
    });
    return report;
  } finally {
    // A probe cut short still takes its key away when the connection allows.
    if (keyMayExist) await connection.client?.delete(key).catch(() => undefined);
    connection.client?.close();
  }
}

/** set, then get: the value must come back as sent (protocol.txt, "Storage commands", "Retrieval command"). */
async function storeAndFetch(client: AsciiClient, key: string, value: Buffer): Promise<void> {
  const node = describeNode(client.address);
  const stored = await client.set(key, value, PROBE_EXPTIME_SECONDS);
  if (stored !== 'STORED') throw new CliError(`${node} answered set of ${key} with ${JSON.stringify(stored.slice(0, 80))}, not STORED`);
  const found = (await client.get([key])).get(key);
  if (found === undefined) throw new CliError(`${node} stored ${key} but get does not find it`);
  if (!found.value.equals(value)) {
    throw new CliError(`${node} gave ${key} back altered: ${value.length} bytes sent, ${found.value.length} back${found.value.length === value.length ? ', different' : ''}`);
  }
}

/** The nearest-rank percentile of ascending `sorted`: the smallest value with p% of them at or below it. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) throw new Error('percentile of nothing');
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** Milliseconds to the microsecond: finer than that is noise. */
function roundMs(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
