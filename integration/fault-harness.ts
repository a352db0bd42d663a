/**
 * Records every operation of a fault scenario and reports the outcome.
 *
 * A RecordingClient is one memcached ascii connection to one node, like one PHP worker talking
 * to its local daemon: each set / add / delete / get it sends is recorded (integration/
 * fault-analysis.ts, OpRecord) with its node, key, value, start and end time and the client's
 * view of the outcome. After the heal, readFinal() reads every key through every node, and
 * report() prints the one-line summary the test log shows:
 *
 *     [faults] <scenario>: acknowledged N, lost N, stale reads N, failed N, unknown N, p99 …
 */
import { summaryLine, type Analysis, type FinalRead, type OpKind, type OpRecord } from './fault-analysis.js';
import { reservedValue, sessionOwners } from './cluster-harness.js';
import { sleep } from './harness.js';
import { RawClient } from './raw-client.js';

export * from './fault-analysis.js';

export interface NodeTarget { id: string; host: string; port: number }

/** How long a client waits for an answer before it calls the operation unknown. */
export const DEFAULT_CLIENT_TIMEOUT_MS = 10_000;

/**
 * Length of one complete ascii answer at the start of `buf`, or -1: a VALUE block and END, or any
 * single line (END, STORED, SERVER_ERROR …).
 */
function answerLength(buf: Buffer): number {
  const eol = buf.indexOf('\r\n');
  if (eol < 0) return -1;
  const m = /^VALUE \S+ \d+ (\d+)(?: \d+)?$/.exec(buf.subarray(0, eol).toString('latin1'));
  if (!m) return eol + 2;
  const total = eol + 2 + Number(m[1]) + '\r\nEND\r\n'.length;
  return buf.length >= total ? total : -1;
}

/** A memcached ascii connection to one node that records every operation in `history`. */
export class RecordingClient {
  private conn: RawClient | null = null;

  constructor(
    readonly name: string,
    readonly node: NodeTarget,
    readonly history: OpRecord[],
    readonly timeoutMs = DEFAULT_CLIENT_TIMEOUT_MS,
  ) {}

  set(key: string, value: string, exptime = 0): Promise<OpRecord> {
    return this.op('set', key, value, `set ${key} 0 ${exptime} ${Buffer.byteLength(value, 'latin1')}\r\n${value}\r\n`);
  }

  add(key: string, value: string, exptime = 0): Promise<OpRecord> {
    return this.op('add', key, value, `add ${key} 0 ${exptime} ${Buffer.byteLength(value, 'latin1')}\r\n${value}\r\n`);
  }

  delete(key: string): Promise<OpRecord> {
    return this.op('delete', key, null, `delete ${key}\r\n`);
  }

  get(key: string): Promise<OpRecord> {
    return this.op('get', key, null, `get ${key}\r\n`);
  }

  close(): void {
    this.conn?.destroy();
    this.conn = null;
  }

  private async op(kind: OpKind, key: string, value: string | null, request: string): Promise<OpRecord> {
    const start = Date.now();
    const record = (outcome: OpRecord['outcome'], reply: string, read: string | null = value): OpRecord => {
      const op: OpRecord = { client: this.name, node: this.node.id, kind, key, value: read, start, end: Date.now(), outcome, reply };
      this.history.push(op);
      return op;
    };
    if (!this.conn || this.conn.closed) {
      this.conn?.destroy();
      try {
        this.conn = await RawClient.connect(this.node.host, this.node.port, { timeoutMs: this.timeoutMs });
      } catch (e) {
        this.conn = null;
        // Refused, or no connection within the timeout: nothing was sent, a definite failure.
        return record('failed', `connect: ${(e as Error).message}`);
      }
    }
    const conn = this.conn;
    await conn.send(request);
    const r = await conn.readUntil(answerLength, Math.max(1, this.timeoutMs - (Date.now() - start)));
    if (!r.matched) {
      // The stream is out of step now (an answer may still come): the next operation reconnects.
      this.close();
      if (r.timedOut) return record('unknown', `no answer within ${this.timeoutMs} ms`);
      return record('failed', `connection closed before an answer (${conn.closeReason})`);
    }
    const text = r.data.toString('latin1');
    const line = text.slice(0, text.indexOf('\r\n'));
    // A node that forwarded a write and got no answer in time says so: the write may have been
    // applied (before its deadline) or not. Its outcome is unknown, not failed.
    const writeFailure = /^SERVER_ERROR .*may have been applied/.test(line) ? 'unknown' : 'failed';
    switch (kind) {
      case 'set':
      case 'add':
        return record(line === 'STORED' ? 'ok' : writeFailure, line);
      case 'delete':
        // NOT_FOUND leaves the key absent, as asked.
        return record(line === 'DELETED' || line === 'NOT_FOUND' ? 'ok' : writeFailure, line);
      case 'get': {
        if (line === 'END') return record('ok', line, null);
        if (line.startsWith('VALUE ')) {
          const body = text.slice(line.length + 2, text.length - '\r\nEND\r\n'.length);
          return record('ok', line, body);
        }
        return record('failed', line, null);
      }
    }
  }
}

/** A unique value per write: its key, its client and a sequence number. */
export function valueFor(key: string, client: string, seq: number): string {
  return `${key}:${client}:${seq}`;
}

/** A random session id in PHP's alphabet (a hashed id: not minted by the cluster). */
export function randomSessionId(tag: string): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  let s = '';
  for (let i = 0; i < 26; i++) s += alphabet[Math.floor(Math.random() * alphabet.length)];
  return `${tag}${s}`;
}

export interface FinalReadOptions {
  /** how long to keep retrying a read that fails (a node still catching up); default 10 s */
  retryMs?: number;
  /**
   * Reads rounds until two in a row agree (replication and re-replication still settling after a
   * heal are not losses), for at most this long; default 15 s. The last round is returned.
   */
  settleMs?: number;
}

/** One round: every key through every node, one connection per node. */
async function readRound(nodes: NodeTarget[], keys: string[], retryMs: number): Promise<FinalRead[]> {
  const rounds = await Promise.all(nodes.map(async (node) => {
    const out: FinalRead[] = [];
    const scratch: OpRecord[] = [];
    const client = new RecordingClient(`final@${node.id}`, node, scratch, 5000);
    try {
      for (const key of keys) {
        const deadline = Date.now() + retryMs;
        for (;;) {
          const op = await client.get(key);
          if (op.outcome === 'ok') { out.push({ node: node.id, key, value: op.value }); break; }
          if (Date.now() >= deadline) { out.push({ node: node.id, key, value: null, error: op.reply }); break; }
          await sleep(100);
        }
      }
    } finally {
      client.close();
    }
    return out;
  }));
  return rounds.flat();
}

/** Reads every key through every node, after the heal (see FinalReadOptions). */
export async function readFinal(nodes: NodeTarget[], keys: string[], opts: FinalReadOptions = {}): Promise<{ reads: FinalRead[]; rounds: number; settled: boolean }> {
  const deadline = Date.now() + (opts.settleMs ?? 15_000);
  let previous = await readRound(nodes, keys, opts.retryMs ?? 10_000);
  let rounds = 1;
  for (;;) {
    if (Date.now() >= deadline) return { reads: previous, rounds, settled: false };
    await sleep(300);
    const next = await readRound(nodes, keys, opts.retryMs ?? 10_000);
    rounds++;
    const same = next.length === previous.length && next.every((r, i) => r.value === previous[i]!.value && r.error === previous[i]!.error);
    previous = next;
    if (same) return { reads: next, rounds, settled: true };
  }
}

/** Prints the scenario's one-line summary (and any extra lines) to stdout, for the test log. */
export function report(scenario: string, a: Analysis, ...extra: string[]): void {
  console.log([`[faults] ${scenario}: ${summaryLine(a)}`, ...extra.map((e) => `[faults] ${scenario}: ${e}`)].join('\n'));
}

/**
 * Runs `worker(i)` for each of `count` workers in parallel until `stop()` is called; resolves
 * when every worker finished its current operation. A worker loops on its own: it is one
 * client doing one request after another.
 */
export function runWorkers(count: number, step: (worker: number, iteration: number) => Promise<void>): { stop: () => Promise<void> } {
  let running = true;
  const loops = Array.from({ length: count }, async (_, w) => {
    for (let i = 0; running; i++) await step(w, i);
  });
  return {
    stop: async () => {
      running = false;
      await Promise.all(loops);
    },
  };
}

/**
 * A hashed session id whose master is `master` now (asked through `via`, with
 * `get __session_cluster__.owners.<id>`), and its backup.
 */
export async function sessionMasteredBy(via: NodeTarget, master: string, tag: string): Promise<{ id: string; backup: string }> {
  for (let i = 0; i < 500; i++) {
    const id = randomSessionId(tag);
    const owners = await sessionOwners(via, id);
    if (owners.master === master) return { id, backup: owners.backup ?? '' };
  }
  throw new Error(`no session id mastered by ${master} in 500 tries (asked ${via.id})`);
}

/** `count` session ids minted by the cluster (`get __session_cluster__.mint`), through the nodes in turn. */
export async function mintIds(nodes: NodeTarget[], count: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    const id = await reservedValue(nodes[i % nodes.length]!, 'mint');
    if (!id) throw new Error(`mint through ${nodes[i % nodes.length]!.id}: miss`);
    ids.push(id);
  }
  return ids;
}
