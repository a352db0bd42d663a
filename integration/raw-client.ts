/**
 * A small raw-socket client for protocol tests: connect (TCP or unix socket), send exact bytes,
 * read until a given reply (string, bytes, RegExp or predicate) or until the server closes, always
 * with a timeout, and tell whether the server closed the connection. Plus a builder/decoder for
 * the memcached binary protocol's 24-byte header, and one-shot ascii helpers (exchange, rawGet,
 * rawStats) for tests that only want an answer.
 *
 * RawClient never throws on a closed or reset connection: a test asks `closed` and decides. The
 * one-shot helpers do throw, naming the target, when no complete answer comes.
 */
import net from 'node:net';

export interface ReadResult {
  /** the bytes consumed by this read (up to and including the match, or all that arrived) */
  data: Buffer;
  /** the wanted reply was found */
  matched: boolean;
  /** the server closed (FIN), reset, or the socket failed, before or during this read */
  closed: boolean;
  /** the read ended because the time ran out */
  timedOut: boolean;
}

/**
 * What to wait for. A string or Buffer: that exact byte sequence anywhere in the input.
 * A RegExp: tested against the input decoded as latin1 (one char per byte).
 * A function: gets everything buffered so far; returns how many bytes to consume (> 0)
 * once satisfied, or 0 / -1 to keep waiting.
 */
export type Until = string | Buffer | RegExp | ((buffered: Buffer) => number);

export interface ConnectOptions {
  timeoutMs?: number;
}

/**
 * Where to connect: a TCP host and port, or a unix socket path. `id` (a cluster node's name) only
 * labels the target in error messages.
 */
export type RawTarget = { host: string; port: number; id?: string } | { path: string; id?: string };

/** "node1@127.0.0.1:4242", "127.0.0.1:4242" or the socket path, for messages. */
export function describeTarget(target: RawTarget): string {
  const where = 'path' in target ? target.path : `${target.host}:${target.port}`;
  return target.id ? `${target.id}@${where}` : where;
}

export class RawClient {
  readonly socket: net.Socket;
  private buf: Buffer = Buffer.alloc(0);
  /** the peer closed or reset the connection, or it failed */
  closed = false;
  /** 'end' (FIN), 'reset' (ECONNRESET/EPIPE) or the error code */
  closeReason: string | undefined;
  private waiters = new Set<() => void>();

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
      this.wake();
    });
    socket.on('end', () => this.markClosed('end'));
    socket.on('close', () => this.markClosed('close'));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      this.markClosed(err.code === 'ECONNRESET' || err.code === 'EPIPE' ? 'reset' : (err.code ?? err.message));
    });
  }

  static connect(host: string, port: number, opts: ConnectOptions = {}): Promise<RawClient> {
    return RawClient.connectTo({ host, port }, opts);
  }

  static connectTo(target: RawTarget, opts: ConnectOptions = {}): Promise<RawClient> {
    const timeoutMs = opts.timeoutMs ?? 3000;
    return new Promise((resolve, reject) => {
      const socket = 'path' in target ? net.connect({ path: target.path }) : net.connect({ host: target.host, port: target.port });
      if (!('path' in target)) socket.setNoDelay(true);
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`connect to ${describeTarget(target)} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      const onError = (err: Error) => { clearTimeout(timer); reject(err); };
      socket.once('error', onError);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.off('error', onError);
        resolve(new RawClient(socket));
      });
    });
  }

  private markClosed(reason: string): void {
    if (!this.closed) {
      this.closed = true;
      this.closeReason = reason;
    }
    this.wake();
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }

  /** Bytes received and not consumed by a read yet. */
  get buffered(): Buffer {
    return this.buf;
  }

  /**
   * Writes bytes and resolves once they were handed to the kernel (or the socket failed:
   * a server that closes on us is a legitimate outcome, so write errors only mark `closed`).
   */
  send(data: Buffer | string): Promise<void> {
    const bytes = typeof data === 'string' ? Buffer.from(data, 'latin1') : data;
    if (this.socket.destroyed || !this.socket.writable) return Promise.resolve();
    return new Promise((resolve) => {
      this.socket.write(bytes, () => resolve());
    });
  }

  /**
   * Writes `total` bytes produced by `chunk` (called with the offset, returns the next piece),
   * honouring backpressure; stops early if the connection closes or `deadlineMs` passes.
   * Resolves with the number of bytes the socket accepted.
   */
  async stream(total: number, chunk: (offset: number) => Buffer, deadlineMs = 20000): Promise<number> {
    const deadline = Date.now() + deadlineMs;
    let sent = 0;
    while (sent < total && !this.closed && !this.socket.destroyed && Date.now() < deadline) {
      let piece = chunk(sent);
      if (piece.length > total - sent) piece = piece.subarray(0, total - sent);
      const ok = this.socket.write(piece);
      sent += piece.length;
      if (!ok) {
        await new Promise<void>((resolve) => {
          const done = () => { clearTimeout(t); this.socket.off('drain', done); this.socket.off('close', done); resolve(); };
          const t = setTimeout(done, Math.max(0, deadline - Date.now()));
          this.socket.once('drain', done);
          this.socket.once('close', done);
        });
      }
    }
    return sent;
  }

  private static matchLength(buf: Buffer, until: Until): number {
    if (typeof until === 'function') return until(buf);
    if (until instanceof RegExp) {
      const re = new RegExp(until.source, until.flags.replace('g', ''));
      const m = re.exec(buf.toString('latin1'));
      return m ? m.index + m[0].length : -1;
    }
    const needle = typeof until === 'string' ? Buffer.from(until, 'latin1') : until;
    const at = buf.indexOf(needle);
    return at < 0 ? -1 : at + needle.length;
  }

  private consume(n: number): Buffer {
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }

  /**
   * Reads until `until` is satisfied, the connection closes, or `timeoutMs` passes.
   * On a match, consumes and returns the input up to and including the match; otherwise
   * consumes and returns everything that arrived.
   */
  readUntil(until: Until, timeoutMs = 2000): Promise<ReadResult> {
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const check = (timedOut: boolean): boolean => {
        const n = RawClient.matchLength(this.buf, until);
        if (n > 0) {
          finish({ data: this.consume(n), matched: true, closed: this.closed, timedOut: false });
          return true;
        }
        if (this.closed || timedOut) {
          finish({ data: this.consume(this.buf.length), matched: false, closed: this.closed, timedOut });
          return true;
        }
        return false;
      };
      const waiter = () => { check(false); };
      const finish = (r: ReadResult) => {
        if (timer) clearTimeout(timer);
        this.waiters.delete(waiter);
        resolve(r);
      };
      if (check(false)) return;
      this.waiters.add(waiter);
      timer = setTimeout(() => check(true), timeoutMs);
    });
  }

  /** Reads exactly `n` bytes (or less, if the connection closes / time runs out). */
  readBytes(n: number, timeoutMs = 2000): Promise<ReadResult> {
    return this.readUntil((b) => (b.length >= n ? n : -1), timeoutMs);
  }

  /** Collects everything that arrives for `ms` milliseconds (or until closed). */
  async readFor(ms: number): Promise<ReadResult> {
    const r = await this.readUntil(() => -1, ms);
    return { ...r, timedOut: !r.closed };
  }

  /** Waits up to `timeoutMs` for the server to close; returns everything that arrived meanwhile. */
  readUntilClosed(timeoutMs = 2000): Promise<ReadResult> {
    return this.readUntil(() => -1, timeoutMs);
  }

  /** Sends `data` and reads until `until` (see readUntil). */
  async request(data: Buffer | string, until: Until, timeoutMs = 2000): Promise<ReadResult> {
    await this.send(data);
    return this.readUntil(until, timeoutMs);
  }

  /** Reads one complete binary packet, or null if the connection closed / time ran out first. */
  async readPacket(timeoutMs = 2000): Promise<BinaryPacket | null> {
    const r = await this.readUntil((b) => completePacketLength(b), timeoutMs);
    if (!r.matched) {
      // put back what we took, so the caller can still look at it
      this.buf = Buffer.concat([r.data, this.buf]);
      return null;
    }
    return decodePacket(r.data)!.packet;
  }

  /** Reads up to `count` binary packets; stops early on close / timeout (shared deadline). */
  async readPackets(count: number, timeoutMs = 2000): Promise<BinaryPacket[]> {
    const deadline = Date.now() + timeoutMs;
    const out: BinaryPacket[] = [];
    while (out.length < count) {
      const p = await this.readPacket(Math.max(1, deadline - Date.now()));
      if (!p) break;
      out.push(p);
    }
    return out;
  }

  /** Half-closes (sends FIN) but keeps reading. */
  end(): void {
    this.socket.end();
  }

  /** Closes the connection (FIN) and forgets it. */
  destroy(): void {
    this.socket.destroy();
  }

  /** Closes the connection with a TCP RST. */
  reset(): void {
    if (typeof this.socket.resetAndDestroy === 'function' && !this.socket.destroyed) this.socket.resetAndDestroy();
    else this.socket.destroy();
  }
}

// ---------------------------------------------------------------------------------------------
// One-shot ascii exchanges
// ---------------------------------------------------------------------------------------------

export interface ExchangeOptions {
  /** for connecting and the whole answer; default 5 s */
  timeoutMs?: number;
  /** a clean close (FIN) before `until` matched is an answer (closed: true), not an error */
  closeIsAnswer?: boolean;
  /** how error messages name this exchange; default the request's first 80 bytes and the target */
  label?: string;
}

export interface ExchangeResult {
  /** what arrived up to and including the match (everything, when the server closed first), as latin1 */
  reply: string;
  /** the server had closed by the time the read ended */
  closed: boolean;
  /** bytes that had arrived after the match when the read ended */
  after: Buffer;
}

/**
 * Sends `request` on a fresh connection and reads until `until` (see RawClient.readUntil), then
 * closes. Throws, with what came back, when the connection fails, the time runs out or the server
 * closes first (unless closeIsAnswer).
 */
export async function exchange(target: RawTarget, request: string | Buffer, until: Until, opts: ExchangeOptions = {}): Promise<ExchangeResult> {
  const timeoutMs = opts.timeoutMs ?? 5000;
  const label = opts.label ?? `raw ${JSON.stringify(String(request).slice(0, 80))} via ${describeTarget(target)}`;
  const deadline = Date.now() + timeoutMs;
  let client: RawClient;
  try {
    client = await RawClient.connectTo(target, { timeoutMs });
  } catch (e) {
    throw new Error(`${label}: ${String(e)}`);
  }
  try {
    await client.send(request);
    const r = await client.readUntil(until, Math.max(1, deadline - Date.now()));
    const reply = r.data.toString('latin1');
    if (r.matched) return { reply, closed: r.closed, after: client.buffered };
    if (r.closed && opts.closeIsAnswer && client.closeReason === 'end') return { reply, closed: true, after: Buffer.alloc(0) };
    const wanted = typeof until === 'function' ? 'no complete answer' : `no answer matching ${JSON.stringify(String(until))}`;
    const why = r.timedOut ? `${wanted} within ${timeoutMs} ms`
      : client.closeReason === 'end' || client.closeReason === 'close' ? 'connection closed' : `connection failed (${client.closeReason})`;
    throw new Error(`${label}: ${why}; got ${received(reply)}`);
  } finally {
    client.destroy();
  }
}

/** An answer for a failure message: all of a short one, the start and the length of a long one. */
function received(text: string, max = 2000): string {
  return text.length > max ? `${JSON.stringify(text.slice(0, max))}... (${text.length} bytes)` : JSON.stringify(text);
}

/**
 * Length of a complete answer to `get key` at the start of `buf` (END, or one VALUE block and
 * END), or -1 while incomplete. A header line that is neither, or a VALUE for another key, counts
 * as complete, so that the caller sees it at once.
 */
function getAnswerLength(buf: Buffer, key: string): number {
  const eol = buf.indexOf('\r\n');
  if (eol < 0) return -1;
  const m = /^VALUE (\S+) \d+ (\d+)(?: \d+)?$/.exec(buf.subarray(0, eol).toString('latin1'));
  if (!m || m[1] !== key) return eol + 2;
  const total = eol + 2 + Number(m[2]) + '\r\nEND\r\n'.length;
  return buf.length >= total ? total : -1;
}

export interface RawItem { flags: number; value: string }

/**
 * `get KEY` over a fresh ascii connection: {flags, value} (latin1), null on a miss. Strict: throws,
 * showing the bytes, on a VALUE for another key, a value not followed by exactly \r\nEND\r\n, bytes
 * after END, a close or no complete answer within `timeoutMs`.
 */
export async function rawGet(target: RawTarget, key: string, timeoutMs = 5000): Promise<RawItem | null> {
  const request = `get ${key}\r\n`;
  const label = `raw get ${key} via ${describeTarget(target)}`;
  const { reply, after } = await exchange(target, request, (buf) => getAnswerLength(buf, key), { timeoutMs, label });
  const fail = (why: string): never => {
    throw new Error(`${label}: ${why}; sent ${JSON.stringify(request)}, received ${JSON.stringify(reply + after.toString('latin1'))}`);
  };
  const eol = reply.indexOf('\r\n');
  const line = reply.slice(0, eol);
  if (line === 'END') {
    if (after.length > 0) fail('bytes after END');
    return null;
  }
  const m = /^VALUE (\S+) (\d+) (\d+)(?: \d+)?$/.exec(line);
  if (!m) return fail('unexpected header line');
  if (m[1] !== key) return fail('VALUE for another key');
  const end = eol + 2 + Number(m[3]);
  if (reply.slice(end) !== '\r\nEND\r\n' || after.length > 0) fail('value not followed by exactly \\r\\nEND\\r\\n');
  return { flags: Number(m[2]), value: reply.slice(eol + 2, end) };
}

/** `stats [ARGS]` over a fresh ascii connection: the STAT lines as a map. */
export async function rawStats(target: RawTarget, opts: { args?: string; timeoutMs?: number; label?: string } = {}): Promise<Record<string, string>> {
  const command = opts.args ? `stats ${opts.args}` : 'stats';
  const { reply } = await exchange(target, `${command}\r\n`, /END\r\n$/, {
    timeoutMs: opts.timeoutMs, label: opts.label ?? `${command} on ${describeTarget(target)}`,
  });
  const map: Record<string, string> = {};
  for (const line of reply.split('\r\n')) {
    const m = /^STAT (\S+) ?(.*)$/.exec(line);
    if (m) map[m[1]!] = m[2]!;
  }
  return map;
}

// ---------------------------------------------------------------------------------------------
// Binary protocol
// ---------------------------------------------------------------------------------------------

export const MAGIC_REQUEST = 0x80;
export const MAGIC_RESPONSE = 0x81;
export const HEADER_LENGTH = 24;

export const Opcode = {
  GET: 0x00, SET: 0x01, ADD: 0x02, REPLACE: 0x03, DELETE: 0x04, INCREMENT: 0x05, DECREMENT: 0x06,
  QUIT: 0x07, FLUSH: 0x08, GETQ: 0x09, NOOP: 0x0a, VERSION: 0x0b, GETK: 0x0c, GETKQ: 0x0d,
  APPEND: 0x0e, PREPEND: 0x0f, STAT: 0x10, SETQ: 0x11, ADDQ: 0x12, REPLACEQ: 0x13, DELETEQ: 0x14,
  INCREMENTQ: 0x15, DECREMENTQ: 0x16, QUITQ: 0x17, FLUSHQ: 0x18, APPENDQ: 0x19, PREPENDQ: 0x1a,
  TOUCH: 0x1c, GAT: 0x1d, GATQ: 0x1e, GATK: 0x23, GATKQ: 0x24,
} as const;

export const Status = {
  SUCCESS: 0x00, KEY_ENOENT: 0x01, KEY_EEXISTS: 0x02, E2BIG: 0x03, EINVAL: 0x04, NOT_STORED: 0x05,
  DELTA_BADVAL: 0x06, AUTH_ERROR: 0x20, AUTH_CONTINUE: 0x21, UNKNOWN_COMMAND: 0x81, ENOMEM: 0x82,
} as const;

export interface PacketSpec {
  opcode: number;
  magic?: number;
  key?: Buffer | string;
  extras?: Buffer;
  value?: Buffer | string;
  dataType?: number;
  /** vbucket id in a request, status in a response */
  vbucket?: number;
  opaque?: number;
  cas?: bigint;
  /** override the header fields (to build lying packets); the body is still what is given */
  keyLength?: number;
  extrasLength?: number;
  bodyLength?: number;
}

export interface BinaryPacket {
  magic: number;
  opcode: number;
  keyLength: number;
  extrasLength: number;
  dataType: number;
  /** status (response) or vbucket (request) */
  status: number;
  bodyLength: number;
  opaque: number;
  cas: bigint;
  extras: Buffer;
  key: Buffer;
  value: Buffer;
  /** the whole packet as received */
  raw: Buffer;
}

const asBuf = (v: Buffer | string | undefined): Buffer =>
  v === undefined ? Buffer.alloc(0) : typeof v === 'string' ? Buffer.from(v, 'latin1') : v;

/** Builds a packet (request magic unless told otherwise): header, then extras, key, value. */
export function buildPacket(spec: PacketSpec): Buffer {
  const key = asBuf(spec.key);
  const extras = spec.extras ?? Buffer.alloc(0);
  const value = asBuf(spec.value);
  const h = Buffer.alloc(HEADER_LENGTH);
  h.writeUInt8(spec.magic ?? MAGIC_REQUEST, 0);
  h.writeUInt8(spec.opcode & 0xff, 1);
  h.writeUInt16BE(spec.keyLength ?? key.length, 2);
  h.writeUInt8(spec.extrasLength ?? extras.length, 4);
  h.writeUInt8(spec.dataType ?? 0, 5);
  h.writeUInt16BE(spec.vbucket ?? 0, 6);
  h.writeUInt32BE(spec.bodyLength ?? extras.length + key.length + value.length, 8);
  h.writeUInt32BE((spec.opaque ?? 0) >>> 0, 12);
  h.writeBigUInt64BE(spec.cas ?? 0n, 16);
  return Buffer.concat([h, extras, key, value]);
}

/** Extras of SET/ADD/REPLACE: flags (4 bytes) and expiration (4 bytes). */
export function storageExtras(flags = 0, exptime = 0): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt32BE(flags >>> 0, 0);
  b.writeUInt32BE(exptime >>> 0, 4);
  return b;
}

/** Extras of INCREMENT/DECREMENT: delta (8), initial (8), expiration (4). */
export function counterExtras(delta: bigint, initial = 0n, exptime = 0): Buffer {
  const b = Buffer.alloc(20);
  b.writeBigUInt64BE(delta, 0);
  b.writeBigUInt64BE(initial, 8);
  b.writeUInt32BE(exptime >>> 0, 16);
  return b;
}

export interface BinaryHeader {
  magic: number;
  opcode: number;
  keyLength: number;
  extrasLength: number;
  dataType: number;
  status: number;
  bodyLength: number;
  opaque: number;
  cas: bigint;
}

/** Decodes the 24-byte header at the start of `buf`, or null if fewer than 24 bytes. */
export function decodeHeader(buf: Buffer): BinaryHeader | null {
  if (buf.length < HEADER_LENGTH) return null;
  return {
    magic: buf.readUInt8(0),
    opcode: buf.readUInt8(1),
    keyLength: buf.readUInt16BE(2),
    extrasLength: buf.readUInt8(4),
    dataType: buf.readUInt8(5),
    status: buf.readUInt16BE(6),
    bodyLength: buf.readUInt32BE(8),
    opaque: buf.readUInt32BE(12),
    cas: buf.readBigUInt64BE(16),
  };
}

/** Length of the complete packet at the start of `buf`, or -1 if it is not all there yet. */
export function completePacketLength(buf: Buffer): number {
  const h = decodeHeader(buf);
  if (!h) return -1;
  const total = HEADER_LENGTH + h.bodyLength;
  return buf.length >= total ? total : -1;
}

/** Decodes one complete packet at the start of `buf` (null if incomplete). */
export function decodePacket(buf: Buffer): { packet: BinaryPacket; size: number } | null {
  const h = decodeHeader(buf);
  if (!h) return null;
  const size = HEADER_LENGTH + h.bodyLength;
  if (buf.length < size) return null;
  const body = buf.subarray(HEADER_LENGTH, size);
  // A lying header (key+extras > body) is reported as-is, with the parts clipped to the body.
  const extras = body.subarray(0, Math.min(h.extrasLength, body.length));
  const key = body.subarray(extras.length, Math.min(extras.length + h.keyLength, body.length));
  const value = body.subarray(extras.length + key.length);
  return { packet: { ...h, extras, key, value, raw: buf.subarray(0, size) }, size };
}

/** Decodes all complete packets in `buf`; `rest` is what is left (an incomplete tail or garbage). */
export function decodePackets(buf: Buffer): { packets: BinaryPacket[]; rest: Buffer } {
  const packets: BinaryPacket[] = [];
  let off = 0;
  for (;;) {
    const d = decodePacket(buf.subarray(off));
    if (!d) break;
    packets.push(d.packet);
    off += d.size;
  }
  return { packets, rest: buf.subarray(off) };
}

/** A short human-readable form of a packet, for assertion messages. */
export function describePacket(p: BinaryPacket): string {
  const hex = (n: number, w = 2) => '0x' + n.toString(16).padStart(w, '0');
  return `{magic ${hex(p.magic)} op ${hex(p.opcode)} status ${hex(p.status, 4)} opaque ${hex(p.opaque, 8)} `
    + `ext ${p.extrasLength} key ${JSON.stringify(p.key.toString('latin1'))} body ${p.bodyLength} `
    + `value ${JSON.stringify(p.value.subarray(0, 60).toString('latin1'))}}`;
}

/** Renders bytes for a failure message: printable ASCII as is, the rest escaped, long input cut. */
export function show(bytes: Buffer | string, max = 300): string {
  const b = typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes;
  const cut = b.length > max ? b.subarray(0, max) : b;
  let s = '';
  for (const c of cut) {
    if (c === 0x0d) s += '\\r';
    else if (c === 0x0a) s += '\\n';
    else if (c === 0x5c) s += '\\\\';
    else if (c >= 0x20 && c < 0x7f) s += String.fromCharCode(c);
    else s += '\\x' + c.toString(16).padStart(2, '0');
  }
  return `"${s}"` + (b.length > max ? `... (${b.length} bytes)` : '');
}
