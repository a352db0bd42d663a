/**
 * Long-running PHP processes (integration/php/cluster-sessions.php) that write or read many
 * sessions, one whole request each, through one server: a single daemon or a cluster node, as
 * PHP on a web server talks to its local daemon. writeSessions records which writes PHP saw
 * acknowledged; readBack reads them back with the extension that wrote them and counts the lost.
 *
 * Writes count as acknowledged when session_start() and session_write_close() returned true and
 * PHP warned nothing (PHP 8.2's session_write_close() returns true even when the handler failed
 * to write; it only warns). See integration/php/cluster-sessions.php.
 */
import { type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { repoRoot } from './harness.js';
import { phpArgs, runPhpLines, type ClientSetup, type PhpLinesRun } from './php-harness.js';
import { rawGet } from './raw-client.js';

const BATCH_SCRIPT = path.join(repoRoot, 'integration', 'php', 'cluster-sessions.php');

/** Where a batch of PHP requests goes: a daemon or a cluster node, named for messages. */
export interface BatchServer { host: string; port: number; id: string }

const children = new Set<ChildProcess>();

/** Kills the PHP processes still running (call it after each test). */
export function killChildren(): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  children.clear();
}

export type BatchRun = PhpLinesRun;

/**
 * Runs cluster-sessions.php through one node; calls onLine for each stdout line as it arrives.
 * Resolves when the process ends (killed after timeoutMs, or after stallMs without a line).
 */
export async function runBatch(node: BatchServer, setup: ClientSetup, args: string[], opts: { stdin?: string; ini?: string[]; onLine?: (line: string) => void; timeoutMs?: number; stallMs?: number } = {}): Promise<BatchRun> {
  const run = await runPhpLines(phpArgs(node, setup, BATCH_SCRIPT, args, opts.ini), {
    stdin: opts.stdin, onLine: opts.onLine, track: children,
    timeoutMs: opts.timeoutMs ?? 45_000,
    // A process that prints nothing for stallMs is stuck on a request the daemon never answers.
    stallMs: opts.stallMs ?? 15_000,
  });
  return { ...run, stderr: run.stderr.slice(0, 4000) };
}

export interface Written { setup: ClientSetup; via: BatchServer; id: string; value: string }

export interface WriteOutcome {
  acked: Written[];
  failed: Array<{ id: string; reason: string }>;
  runs: BatchRun[];
}

export interface WriterSpec { setup: ClientSetup; via: BatchServer; prefix: string; from: number; count: number; tag: string }

/** Runs writers in parallel; onAck gets the running total of acknowledged writes. */
export async function writeSessions(writers: WriterSpec[], onAck?: (totalHandled: number) => void): Promise<WriteOutcome> {
  const acked: Written[] = [];
  const failed: Array<{ id: string; reason: string }> = [];
  let handled = 0;
  const runs = await Promise.all(writers.map((w) => runBatch(w.via, w.setup, ['write', w.prefix, String(w.from), String(w.count), w.tag], {
    onLine: (line) => {
      const [kind, id, ...rest] = line.split(' ');
      if (kind === 'ACK') {
        const i = Number(id!.slice(w.prefix.length));
        acked.push({ setup: w.setup, via: w.via, id: id!, value: `${w.tag}:${i}` });
      } else if (kind === 'FAIL') {
        failed.push({ id: id!, reason: rest.join(' ') });
      } else return;
      handled++;
      onAck?.(handled);
    },
  })));
  const expected = writers.reduce((a, w) => a + w.count, 0);
  if (acked.length + failed.length !== expected) {
    const detail = runs.map((r, i) => `${writers[i]!.setup.name} via ${writers[i]!.via.id}: ${r.lines.length} lines, exit ${r.exitCode ?? r.signal}, last line ${JSON.stringify(r.lines.at(-1))}, stderr ${JSON.stringify(r.stderr)}`).join('\n');
    throw new Error(`writers reported ${acked.length + failed.length} of ${expected} sessions:\n${detail}`);
  }
  return { acked, failed, runs };
}

export interface ReadOutcome {
  ok: number;
  missing: string[];
  mismatch: string[];
  /** PHP could not read the session, and a raw get did not find the written data either */
  failed: string[];
  /**
   * PHP could not read the session only because its lock is held, though nobody holds it: a raw
   * get shows the session holds exactly the acknowledged write. A request whose unlock fails (the
   * node it went to dies mid-request) leaves its lock behind, and php-memcached ignores a failed
   * unlock; the lock expires after memcached.sess_lock_expire (30 s here). Reported, not lost.
   */
  locked: string[];
  /** acknowledged writes not read back: missing + mismatch + failed */
  lost: number;
  /** reader processes that took over 10 ms a read (and 3 s): a reader waits on held locks */
  slow: string[];
  /** reads whose request end (session_write_close) warned: reported, not counted as lost */
  closeWarnings: string[];
}

/** The php serializer's encoding of $_SESSION['v'], which cluster-sessions.php writes first. */
const encodedV = (value: string) => `v|s:${Buffer.byteLength(value)}:"${value}";`;

/** After a failed PHP read: is the acknowledged data there, behind a leftover lock? */
async function lockedButIntact(node: BatchServer, w: Written): Promise<string | null> {
  try {
    const [item, lock] = [await rawGet(node, w.setup.key(w.id)), await rawGet(node, w.setup.lockKey(w.id))];
    if (item === null || !item.value.startsWith(encodedV(w.value))) return null;
    if (lock === null || lock.value === '0') return null;
    return `${w.id} data intact, lock ${w.setup.lockKey(w.id)}=${JSON.stringify(lock.value)} left behind (${w.setup.name} via ${node.id})`;
  } catch {
    return null;
  }
}

/**
 * Reads every written session back with the extension that wrote it, through `via(written)`,
 * one reader process per (setup, node) pair, all in parallel. Each read is a whole request
 * (session_start ... session_write_close); see cluster-sessions.php for why not read_and_close.
 */
export async function readBack(written: Written[], via: (w: Written) => BatchServer): Promise<ReadOutcome> {
  const groups = new Map<string, { setup: ClientSetup; node: BatchServer; items: Written[] }>();
  for (const w of written) {
    const node = via(w);
    const k = `${w.setup.name}@${node.id}`;
    if (!groups.has(k)) groups.set(k, { setup: w.setup, node, items: [] });
    groups.get(k)!.items.push(w);
  }
  const out: ReadOutcome = { ok: 0, missing: [], mismatch: [], failed: [], locked: [], lost: 0, slow: [], closeWarnings: [] };
  await Promise.all([...groups.values()].map(async (g) => {
    const t0 = Date.now();
    const run = await runBatch(g.node, g.setup, ['read'], { stdin: g.items.map((w) => `${w.id} ${w.value}\n`).join('') });
    if (Date.now() - t0 > Math.max(3000, 10 * g.items.length)) out.slow.push(`${g.setup.name} via ${g.node.id} ${Date.now() - t0} ms for ${g.items.length} reads`);
    const byId = new Map(g.items.map((w) => [w.id, w]));
    const seen = new Set<string>();
    const unreadable: Array<[Written, string]> = [];
    for (const line of run.lines) {
      const [kind, id, ...rest] = line.split(' ');
      if (kind === 'DONE') continue;
      if (kind === 'WARN') { out.closeWarnings.push(`${id} ${rest.join(' ')} (${g.setup.name} via ${g.node.id})`); continue; }
      seen.add(id!);
      if (kind === 'OK') out.ok++;
      else if (kind === 'MISSING') out.missing.push(`${id} (${g.setup.name} via ${g.node.id})`);
      else if (kind === 'MISMATCH') out.mismatch.push(`${id} got ${rest.join(' ')} (${g.setup.name} via ${g.node.id})`);
      else unreadable.push([byId.get(id!)!, `${id} ${rest.join(' ')} (${g.setup.name} via ${g.node.id})`]);
    }
    for (const w of g.items) {
      if (!seen.has(w.id)) unreadable.push([w, `${w.id} not reported by the reader (exit ${run.exitCode ?? run.signal}, stderr ${JSON.stringify(run.stderr.slice(0, 300))})`]);
    }
    for (const [w, why] of unreadable) {
      const locked = w ? await lockedButIntact(g.node, w) : null;
      if (locked) out.locked.push(locked); else out.failed.push(why);
    }
  }));
  out.lost = out.missing.length + out.mismatch.length + out.failed.length;
  return out;
}

export function describeRead(r: ReadOutcome): string {
  const sample = (xs: string[]) => (xs.length ? ` e.g. ${xs.slice(0, 3).join('; ')}` : '');
  return `ok ${r.ok}, missing ${r.missing.length}${sample(r.missing)}, mismatch ${r.mismatch.length}${sample(r.mismatch)}, read errors ${r.failed.length}${sample(r.failed)}`
    + (r.locked.length ? `, locked by a leftover lock (not lost) ${r.locked.length}${sample(r.locked)}` : '')
    + (r.slow.length ? `, slow readers: ${r.slow.join('; ')}` : '')
    + (r.closeWarnings.length ? `, warnings when ending the read request ${r.closeWarnings.length}${sample(r.closeWarnings)}` : '');
}
