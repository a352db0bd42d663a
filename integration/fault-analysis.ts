/**
 * What a fault scenario's history says, as pure functions over recorded operations: no sockets,
 * no clocks, so integration/fault-analysis.test.ts checks the counting on made-up histories.
 *
 * Every operation is recorded with its client's view of it:
 *  - ok: acknowledged (STORED, DELETED, a value or a miss);
 *  - failed: a definite failure the client saw (SERVER_ERROR, NOT_STORED of a lock add, a closed
 *    connection before any answer, a refused connection);
 *  - unknown: no answer before the client's timeout; the write may or may not have happened, now
 *    or later.
 *
 * Values are unique per write (the scenarios write `key:client:seq`), so a value read names the
 * write that made it. `null` is the absence of the key (a miss, or what a delete leaves).
 */

export type OpKind = 'set' | 'add' | 'delete' | 'get';
export type Outcome = 'ok' | 'failed' | 'unknown';

export interface OpRecord {
  /** the client (connection) that sent it */
  client: string;
  /** the node it was sent to */
  node: string;
  kind: OpKind;
  key: string;
  /** a write: the value written (null for a delete); a read: the value returned (null for a miss) */
  value: string | null;
  /** ms since the epoch, taken by the client just before sending and once the answer was read */
  start: number;
  end: number;
  outcome: Outcome;
  /** the answer's first line, or why there was none */
  reply: string;
}

/** A read of a key through one node after the faults healed. */
export interface FinalRead {
  node: string;
  key: string;
  value: string | null;
  /** set when no value or miss could be read (the read failed every try) */
  error?: string;
}

export interface LostKey {
  key: string;
  /** the value of the last acknowledged write (null: a delete) */
  expected: string | null;
  /** what each node that disagreed returned (or its read error) */
  got: Array<{ node: string; value: string | null; error?: string }>;
  /** how the value found was written, when a write of the history made it */
  foundWrite?: OpRecord;
}

export interface StaleRead {
  read: OpRecord;
  /** the newest write acknowledged before the read started */
  newest: OpRecord;
}

export interface Figures {
  /** writes (set/add/delete) in the window */
  writes: number;
  acknowledged: number;
  failed: number;
  unknown: number;
  reads: number;
  /** acknowledged reads in the window that returned a value older than the newest acknowledged write */
  staleReads: number;
  /** ms, nearest rank, over every write in the window whatever its outcome (an unknown counts its timeout) */
  p50: number;
  p99: number;
  max: number;
  /** acknowledged writes per second, counted by the time their answer came, over the window */
  writeRate: number;
  /** the window, ms since the epoch */
  from: number;
  to: number;
}

export interface Analysis extends Figures {
  lost: LostKey[];
  stale: StaleRead[];
  /** failed writes whose value was later seen by a read or by the final reads: they took effect after all */
  failedButApplied: OpRecord[];
}

const isWrite = (op: OpRecord) => op.kind !== 'get';

/** Nearest-rank percentile (p in 0..100) of `values`; 0 for none. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(sorted.length, rank) - 1]!;
}

function byKey(ops: OpRecord[]): Map<string, OpRecord[]> {
  const m = new Map<string, OpRecord[]>();
  for (const op of ops) {
    let list = m.get(op.key);
    if (!list) m.set(op.key, (list = []));
    list.push(op);
  }
  return m;
}

/**
 * The last acknowledged write of a key: the one whose answer came last (ties: the one sent last).
 * Undefined when no write of the key was acknowledged.
 */
export function lastAcknowledged(writes: OpRecord[]): OpRecord | undefined {
  let last: OpRecord | undefined;
  for (const w of writes) {
    if (w.outcome !== 'ok' || !isWrite(w)) continue;
    if (!last || w.end > last.end || (w.end === last.end && w.start > last.start)) last = w;
  }
  return last;
}

/**
 * Values a key may hold at the end, given its last acknowledged write `last`: `last`'s own; that
 * of any acknowledged write that overlapped it in time (either may have been applied second); and
 * that of any unknown write sent after `last` was (it may have been applied after it). A failed
 * write's value is not among them: the client was told it did not happen. An unknown write sent
 * before `last` is not either: its client had moved on, so it showing up at the end undoes `last`.
 */
export function acceptableFinalValues(writes: OpRecord[], last: OpRecord): Set<string | null> {
  const ok = new Set<string | null>([last.value]);
  for (const w of writes) {
    if (!isWrite(w) || w === last) continue;
    if (w.outcome === 'ok' && w.end >= last.start) ok.add(w.value);
    if (w.outcome === 'unknown' && w.start > last.start) ok.add(w.value);
  }
  return ok;
}

/**
 * Keys whose last acknowledged write is not what every node returns after the heal (allowing the
 * values acceptableFinalValues allows). A key no node could be read for counts as lost too: the
 * final reads come after the heal, when every node must answer.
 */
export function findLost(ops: OpRecord[], finals: FinalRead[]): LostKey[] {
  const writes = byKey(ops.filter(isWrite));
  const finalsByKey = new Map<string, FinalRead[]>();
  for (const f of finals) {
    let list = finalsByKey.get(f.key);
    if (!list) finalsByKey.set(f.key, (list = []));
    list.push(f);
  }
  const lost: LostKey[] = [];
  for (const [key, ws] of writes) {
    const last = lastAcknowledged(ws);
    if (!last) continue;
    const ok = acceptableFinalValues(ws, last);
    const reads = finalsByKey.get(key) ?? [];
    const bad = reads.filter((r) => r.error !== undefined || !ok.has(r.value));
    if (reads.length === 0) {
      lost.push({ key, expected: last.value, got: [{ node: '(none)', value: null, error: 'no final read of this key' }] });
    } else if (bad.length > 0) {
      const found = bad.find((r) => r.error === undefined);
      const foundWrite = found ? ws.find((w) => w.value === found.value && found.value !== null) : undefined;
      lost.push({
        key, expected: last.value,
        got: bad.map((r) => ({ node: r.node, value: r.value, ...(r.error !== undefined ? { error: r.error } : {}) })),
        ...(foundWrite ? { foundWrite } : {}),
      });
    }
  }
  return lost;
}

/**
 * Is `read` stale: did it return a value older than the newest write acknowledged before it
 * started? The newest such write W is the acknowledged write of the key whose answer came last
 * before the read was sent. The read is fine if it returned W's value, or the value of a write
 * that may have been applied after W: one not known to have finished before W began (an
 * acknowledged or failed write that overlapped W or came after it, or any unknown write, which
 * may take effect at any time after it was sent) and that was sent before the read ended. A miss
 * is fine only if such a write was a delete. Anything else, including a value no write made, is
 * stale. A read with no acknowledged write before it is never stale.
 */
export function staleness(read: OpRecord, writesOfKey: OpRecord[]): StaleRead | null {
  if (read.kind !== 'get' || read.outcome !== 'ok') return null;
  let newest: OpRecord | undefined;
  for (const w of writesOfKey) {
    if (w.outcome !== 'ok' || w.end >= read.start) continue;
    if (!newest || w.end > newest.end) newest = w;
  }
  if (!newest || read.value === newest.value) return null;
  const W = newest;
  const mayFollowW = (w: OpRecord) => w !== W && w.value === read.value && w.start <= read.end
    && (w.outcome === 'unknown' || w.end >= W.start);
  return writesOfKey.some(mayFollowW) ? null : { read, newest: W };
}

export function findStaleReads(ops: OpRecord[]): StaleRead[] {
  const writes = byKey(ops.filter(isWrite));
  const stale: StaleRead[] = [];
  for (const op of ops) {
    if (op.kind !== 'get') continue;
    const s = staleness(op, writes.get(op.key) ?? []);
    if (s) stale.push(s);
  }
  return stale;
}

/** Failed writes whose (non-null) value a read saw, during the run or at the end. */
export function findFailedButApplied(ops: OpRecord[], finals: FinalRead[]): OpRecord[] {
  const seen = new Set<string>();
  for (const op of ops) if (op.kind === 'get' && op.outcome === 'ok' && op.value !== null) seen.add(`${op.key}\0${op.value}`);
  for (const f of finals) if (f.value !== null) seen.add(`${f.key}\0${f.value}`);
  return ops.filter((op) => isWrite(op) && op.outcome === 'failed' && op.value !== null && seen.has(`${op.key}\0${op.value}`));
}

/**
 * Counts over a window [from, to): writes and reads sent in it; the rate counts acknowledged
 * writes answered in it. Default window: the whole history.
 */
export function figures(ops: OpRecord[], window?: { from: number; to: number }): Figures {
  // reduce, not Math.min(...): a long history would overflow the argument list. The default window
  // ends 1 ms after the last answer, so that an operation sent and answered in that last
  // millisecond is inside it.
  const from = window?.from ?? ops.reduce((m, o) => Math.min(m, o.start), Infinity);
  const to = window?.to ?? ops.reduce((m, o) => Math.max(m, o.end), -Infinity) + 1;
  const inWindow = ops.filter((o) => o.start >= from && o.start < to);
  const writes = inWindow.filter(isWrite);
  const reads = inWindow.filter((o) => o.kind === 'get');
  const latencies = writes.map((w) => w.end - w.start);
  const answeredIn = ops.filter((o) => isWrite(o) && o.outcome === 'ok' && o.end >= from && o.end < to).length;
  const seconds = (to - from) / 1000;
  return {
    writes: writes.length,
    acknowledged: writes.filter((w) => w.outcome === 'ok').length,
    failed: writes.filter((w) => w.outcome === 'failed').length,
    unknown: writes.filter((w) => w.outcome === 'unknown').length,
    reads: reads.length,
    staleReads: findStaleReads(ops).filter((s) => s.read.start >= from && s.read.start < to).length,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    max: latencies.reduce((m, x) => Math.max(m, x), 0),
    writeRate: seconds > 0 ? answeredIn / seconds : 0,
    from, to,
  };
}

/**
 * The history analysed: figures and stale reads over `window` (default: all of it); lost keys
 * and failed writes that took effect over all of it, against the final reads.
 */
export function analyze(ops: OpRecord[], finals: FinalRead[], window?: { from: number; to: number }): Analysis {
  const f = figures(ops, window);
  return {
    ...f,
    lost: findLost(ops, finals),
    stale: findStaleReads(ops).filter((s) => s.read.start >= f.from && s.read.start < f.to),
    failedButApplied: findFailedButApplied(ops, finals),
  };
}

const ms = (x: number) => (x >= 1000 ? `${(x / 1000).toFixed(2)} s` : `${Math.round(x)} ms`);

/**
 * The one-line summary a scenario prints:
 * `acknowledged N, lost N, stale reads N, failed N, unknown N, p99 …` and a few more figures.
 */
export function summaryLine(a: Analysis): string {
  return `acknowledged ${a.acknowledged}, lost ${a.lost.length}, stale reads ${a.staleReads}, failed ${a.failed}, unknown ${a.unknown}, `
    + `p99 ${ms(a.p99)}, p50 ${ms(a.p50)}, max ${ms(a.max)}; writes ${a.writes}, reads ${a.reads}, `
    + `${a.writeRate.toFixed(0)} acknowledged writes/s, failed writes that took effect ${a.failedButApplied.length}`;
}

/** The same figures for a window (no lost count: that is a property of the end state). */
export function windowLine(f: Figures): string {
  const pct = (n: number, of: number) => (of > 0 ? `${((100 * n) / of).toFixed(2)} %` : '0 %');
  return `${((f.to - f.from) / 1000).toFixed(1)} s: ${f.writeRate.toFixed(0)} acknowledged writes/s, writes ${f.writes} `
    + `(acknowledged ${f.acknowledged}, failed ${f.failed} = ${pct(f.failed, f.writes)}, unknown ${f.unknown}), `
    + `p50 ${ms(f.p50)}, p99 ${ms(f.p99)}, max ${ms(f.max)}, reads ${f.reads}, stale ${f.staleReads} = ${pct(f.staleReads, f.reads)}`;
}

/** A few lost keys and stale reads, spelled out, for failure messages. */
export function describeProblems(a: Analysis, max = 5): string {
  const out: string[] = [];
  for (const l of a.lost.slice(0, max)) {
    const got = l.got.map((g) => `${g.node}=${g.error ?? JSON.stringify(g.value)}`).join(' ');
    const outcome = { ok: 'acknowledged', failed: 'failed', unknown: 'unknown' }[l.foundWrite?.outcome ?? 'ok'];
    const how = l.foundWrite ? ` (the ${l.foundWrite.kind} of that value via ${l.foundWrite.node} was ${outcome}: ${l.foundWrite.reply})` : '';
    out.push(`lost ${l.key}: expected ${JSON.stringify(l.expected)}, got ${got}${how}`);
  }
  for (const s of a.stale.slice(0, max)) {
    out.push(`stale read of ${s.read.key} via ${s.read.node} at +${s.read.start - a.from} ms: got ${JSON.stringify(s.read.value)}, `
      + `newest acknowledged ${JSON.stringify(s.newest.value)} (via ${s.newest.node}, answered at +${s.newest.end - a.from} ms)`);
  }
  for (const f of a.failedButApplied.slice(0, max)) out.push(`failed ${f.kind} of ${f.key} via ${f.node} (${f.reply}) took effect: ${JSON.stringify(f.value)} was read`);
  return out.join('\n');
}
