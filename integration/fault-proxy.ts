/**
 * A fault-injecting TCP proxy for peer links (plaintext only), one listening proxy in front of
 * each node. A node announces its proxy (--peer-advertise) and every other node names the proxies
 * in --peers, so every connection a node dials to another passes through the proxy of the node it
 * dials. The proxy learns who dialed a connection from the dialer's Hello frame as it passes
 * (docs/peer-protocol.md, "Handshake": u16 version | 32-byte nonce | u32 maxFrameSize | u16 length
 * + nodeId), and applies a rule per directed pair and per direction:
 *
 *   link from→to  = the connections `from` dialed to `to`'s proxy
 *   'request'     = bytes `from` sends on it: its requests (forwards, copies, handoffs) and its
 *                   one-way membership messages (joins, heartbeats, leaves)
 *   'reply'       = bytes `to` sends back on it: its replies to `from`'s requests
 *
 * (`to`'s own heartbeats to `from` travel on the link to→from, which `to` dialed.)
 *
 * Rules: pass; cut (drop, the TCP connections stay open: a silent partition); hold (buffer, and
 * deliver in order on release: a stalled or saturated link); delay (deliver after N ms); and the
 * one-shot reset (destroy the connections with a TCP RST now). heal() passes everything again.
 *
 * The proxy works on whole peer frames (u32 length | u8 opcode | u32 requestId | payload), not on
 * byte chunks: a cut drops whole frames, so once healed the stream still parses, as the stream of
 * a real TCP connection would (a network drops packets, and TCP never hands the application half
 * a message followed by the tail of another). What was dropped is simply never received, like
 * messages sent into a partition that the sender's timeouts must cover.
 *
 * Frames are the unit of every rule: a frame is judged when its last byte reaches the proxy.
 * Within one direction of one connection frames leave in the order they arrived: a frame that may
 * pass waits behind held or delayed ones, as on a real stalled TCP connection.
 *
 * The proxy keeps reading while it holds: a held link buffers without limit in the test process
 * and the sender never feels backpressure. Tests hold links for seconds, not gigabytes.
 */
import net from 'node:net';

const FRAME_HEADER_SIZE = 9;
const OPCODE_HELLO = 1;
const PROTOCOL_VERSION = 1;
/** A length above this is not a peer frame (a TLS record, garbage): the connection is relayed as bytes. */
const MAX_SANE_FRAME = 64 * 1024 * 1024;

export type Direction = 'request' | 'reply';
export type Directions = Direction | 'both';

export type Rule =
  | { kind: 'pass' }
  | { kind: 'cut' }
  | { kind: 'hold' }
  | { kind: 'delay'; ms: number };

/** Bytes (and frames) of one direction of one directed pair, over every connection it had. */
export interface DirectionTraffic {
  /** bytes that reached the proxy */
  arrived: number;
  /** bytes written on to the receiver */
  delivered: number;
  /** bytes dropped: by a cut, or still queued when their connection closed */
  dropped: number;
  /** bytes held or delayed right now, waiting to be delivered */
  pending: number;
  framesArrived: number;
  framesDelivered: number;
  framesDropped: number;
}

export interface PairTraffic {
  request: DirectionTraffic;
  reply: DirectionTraffic;
  /** connections `from` has dialed to `to` so far */
  connections: number;
  /** of those, the ones open now */
  open: number;
}

const UNKNOWN_DIALER = '?';

function emptyTraffic(): DirectionTraffic {
  return { arrived: 0, delivered: 0, dropped: 0, pending: 0, framesArrived: 0, framesDelivered: 0, framesDropped: 0 };
}

/** The node id in a Hello payload, or null when the payload is not a Hello this proxy can read. */
export function helloNodeId(payload: Buffer): string | null {
  // u16 version | nonce[32] | u32 maxFrameSize | u16 length | nodeId (UTF-8)
  const idAt = 2 + 32 + 4;
  if (payload.length < idAt + 2 || payload.readUInt16BE(0) !== PROTOCOL_VERSION) return null;
  const length = payload.readUInt16BE(idAt);
  if (length === 0 || payload.length < idAt + 2 + length) return null;
  return payload.subarray(idAt + 2, idAt + 2 + length).toString('utf8');
}

interface Queued {
  frame: Buffer;
  /** when it may leave (ms since the epoch); Infinity while held */
  dueAt: number;
}

/** One direction of one proxied connection: cuts the byte stream into frames and applies the rule. */
class Pipe {
  private buf: Buffer = Buffer.alloc(0);
  private framed = true;
  /** frames that arrived before the connection's dialer was known (the acceptor's Hello) */
  private early: Buffer[] = [];
  private readonly queue: Queued[] = [];
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly conn: ProxiedConnection, readonly dir: Direction, private readonly dest: net.Socket) {}

  /** Bytes from the source socket. */
  push(chunk: Buffer): void {
    if (!this.framed) {
      this.accept(chunk);
      return;
    }
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    let offset = 0;
    while (this.buf.length - offset >= 4) {
      const length = this.buf.readUInt32BE(offset);
      if (length > MAX_SANE_FRAME) {
        // Not the peer protocol: relay the rest as bytes, still under the pair's rules.
        this.framed = false;
        if (this.conn.from === null) this.conn.identify(UNKNOWN_DIALER);
        this.accept(this.buf.subarray(offset));
        this.buf = Buffer.alloc(0);
        return;
      }
      const size = FRAME_HEADER_SIZE + length;
      if (this.buf.length - offset < size) break;
      // A copy: the frame may wait in a queue while the chunk's memory is reused.
      this.accept(Buffer.from(this.buf.subarray(offset, offset + size)));
      offset += size;
    }
    this.buf = offset === this.buf.length ? Buffer.alloc(0) : this.buf.subarray(offset);
  }

  /** One frame (or a chunk of an unframed stream). */
  private accept(frame: Buffer): void {
    if (this.conn.from === null) {
      if (this.dir === 'reply') {
        // The acceptor answers the connect with its own Hello before the dialer's is read: it is
        // judged by the pair's rule once the pair is known.
        this.early.push(frame);
        return;
      }
      const opcode = frame.length >= FRAME_HEADER_SIZE ? frame.readUInt8(4) : -1;
      const id = opcode === OPCODE_HELLO ? helloNodeId(frame.subarray(FRAME_HEADER_SIZE)) : null;
      this.conn.identify(id ?? UNKNOWN_DIALER);
    }
    this.route(frame);
  }

  /** The pair is known now: judge the frames that came before. */
  flushEarly(): void {
    const early = this.early;
    this.early = [];
    for (const frame of early) this.route(frame);
  }

  private route(frame: Buffer): void {
    const traffic = this.traffic();
    traffic.arrived += frame.length;
    traffic.framesArrived++;
    const rule = this.conn.rule(this.dir);
    if (rule.kind === 'cut') {
      this.drop(frame.length);
      return;
    }
    const dueAt = rule.kind === 'hold' ? Infinity : rule.kind === 'delay' ? Date.now() + rule.ms : 0;
    traffic.pending += frame.length;
    this.queue.push({ frame, dueAt });
    this.pump();
  }

  private traffic(): DirectionTraffic {
    return this.conn.network.trafficOf(this.conn.from ?? UNKNOWN_DIALER, this.conn.to)[this.dir];
  }

  private drop(bytes: number): void {
    const traffic = this.traffic();
    traffic.dropped += bytes;
    traffic.framesDropped++;
  }

  /**
   * The rule changed: held frames are treated as if they arrived now under the new rule
   * (delivered, delayed, dropped, or still held). `flushAll` (heal) lets delayed frames go too.
   */
  reapply(flushAll: boolean): void {
    const rule = this.conn.rule(this.dir);
    const now = Date.now();
    for (let i = 0; i < this.queue.length; i++) {
      const q = this.queue[i]!;
      if (flushAll) { q.dueAt = 0; continue; }
      if (q.dueAt !== Infinity) continue;
      if (rule.kind === 'pass') q.dueAt = 0;
      else if (rule.kind === 'delay') q.dueAt = now + rule.ms;
      else if (rule.kind === 'cut') {
        this.queue.splice(i--, 1);
        this.traffic().pending -= q.frame.length;
        this.drop(q.frame.length);
      }
    }
    this.pump();
  }

  /** Writes the frames at the head of the queue that may leave now; schedules the next. */
  private pump(): void {
    if (this.timer) { clearTimeout(this.timer); this.timer = null; }
    const traffic = this.traffic();
    while (this.queue.length > 0) {
      const head = this.queue[0]!;
      if (head.dueAt === Infinity) return;
      const wait = head.dueAt - Date.now();
      if (wait > 0) {
        this.timer = setTimeout(() => { this.timer = null; this.pump(); }, wait);
        return;
      }
      this.queue.shift();
      traffic.pending -= head.frame.length;
      if (this.dest.destroyed) {
        this.drop(head.frame.length);
        continue;
      }
      this.dest.write(head.frame);
      traffic.delivered += head.frame.length;
      traffic.framesDelivered++;
    }
  }

  /** The connection is gone: what still waits is dropped. */
  discard(): void {
    if (this.timer) { clearTimeout(this.timer); this.timer = null; }
    if (this.conn.from === null) return;
    const traffic = this.traffic();
    for (const q of this.queue.splice(0)) {
      traffic.pending -= q.frame.length;
      this.drop(q.frame.length);
    }
  }
}

/** One connection through a proxy: the dialer's socket and ours to the node behind the proxy. */
class ProxiedConnection {
  from: string | null = null;
  readonly request: Pipe;
  readonly reply: Pipe;
  closed = false;

  constructor(readonly network: FaultNetwork, readonly to: string, readonly inbound: net.Socket, readonly outbound: net.Socket) {
    this.request = new Pipe(this, 'request', outbound);
    this.reply = new Pipe(this, 'reply', inbound);
  }

  identify(from: string): void {
    this.from = from;
    this.network.counted(from, this.to);
    this.reply.flushEarly();
  }

  rule(dir: Direction): Rule {
    return this.network.ruleOf(this.from ?? UNKNOWN_DIALER, this.to, dir);
  }

  matches(a: string, b?: string): boolean {
    if (b === undefined) return this.to === a || this.from === a;
    return (this.from === a && this.to === b) || (this.from === b && this.to === a);
  }

  /** Destroys both sockets, with a TCP RST when `reset`. */
  close(reset: boolean): void {
    if (this.closed) return;
    this.closed = true;
    for (const s of [this.inbound, this.outbound]) {
      try {
        if (reset && !s.destroyed) s.resetAndDestroy();
        else s.destroy();
      } catch {
        // resetAndDestroy refuses a socket that is not connected yet: a plain close will do.
        s.destroy();
      }
    }
    this.request.discard();
    this.reply.discard();
  }
}

/** One listening proxy, in front of one node's --peer-listen port. */
class NodeProxy {
  constructor(readonly id: string, readonly server: net.Server, readonly port: number, public target: number) {}
  get address(): string { return `127.0.0.1:${this.port}`; }
}

/**
 * The proxies of a whole test cluster and the rules between its nodes. Rules name nodes by their
 * --node-id. Every rule defaults to pass.
 */
export class FaultNetwork {
  private readonly proxies = new Map<string, NodeProxy>();
  private readonly rules = new Map<string, Rule>();
  private readonly traffic = new Map<string, PairTraffic>();
  private readonly connections = new Set<ProxiedConnection>();
  private closed = false;

  /** Starts one proxy per node id, each relaying to 127.0.0.1:targets[id] (0: set it later with setTarget). */
  static async start(targets: Record<string, number>): Promise<FaultNetwork> {
    const network = new FaultNetwork();
    try {
      for (const [id, port] of Object.entries(targets)) await network.addNode(id, port);
    } catch (e) {
      await network.close();
      throw e;
    }
    return network;
  }

  /** Adds a proxy for one more node (listening on a free loopback port); its port. */
  async addNode(id: string, target = 0): Promise<number> {
    if (this.proxies.has(id)) throw new Error(`a proxy for ${id} exists already`);
    const server = net.createServer({ noDelay: true });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => { server.off('error', reject); resolve(); });
    });
    const proxy = new NodeProxy(id, server, (server.address() as net.AddressInfo).port, target);
    server.on('connection', (inbound) => this.accept(proxy, inbound));
    this.proxies.set(id, proxy);
    return proxy.port;
  }

  /** Node ids with a proxy, in the order they were added. */
  get ids(): string[] { return [...this.proxies.keys()]; }

  /** The address node `id` announces (--peer-advertise) and the others dial. */
  addressOf(id: string): string { return this.proxy(id).address; }

  portOf(id: string): number { return this.proxy(id).port; }

  /** Where node `id`'s proxy relays to: the node's own --peer-listen port. */
  setTarget(id: string, port: number): void { this.proxy(id).target = port; }

  private proxy(id: string): NodeProxy {
    const p = this.proxies.get(id);
    if (!p) throw new Error(`no proxy for ${id}`);
    return p;
  }

  private accept(proxy: NodeProxy, inbound: net.Socket): void {
    if (this.closed) { inbound.destroy(); return; }
    inbound.setNoDelay(true);
    const outbound = net.connect({ host: '127.0.0.1', port: proxy.target });
    outbound.setNoDelay(true);
    const conn = new ProxiedConnection(this, proxy.id, inbound, outbound);
    this.connections.add(conn);
    const done = () => {
      if (conn.from !== null) this.trafficOf(conn.from, conn.to).open--;
      this.connections.delete(conn);
    };
    let finished = false;
    const close = () => {
      if (finished) return;
      finished = true;
      // When one side goes, so does the other, as when a real connection breaks.
      conn.close(false);
      done();
    };
    for (const s of [inbound, outbound]) {
      s.on('error', close);
      s.on('close', close);
    }
    inbound.on('data', (chunk: Buffer) => conn.request.push(chunk));
    outbound.on('data', (chunk: Buffer) => conn.reply.push(chunk));
  }

  /** Called once a connection's dialer is known. */
  counted(from: string, to: string): void {
    const t = this.trafficOf(from, to);
    t.connections++;
    t.open++;
  }

  /** The live counters of a pair (created on first use). */
  trafficOf(from: string, to: string): PairTraffic {
    const key = `${from}>${to}`;
    let t = this.traffic.get(key);
    if (!t) this.traffic.set(key, (t = { request: emptyTraffic(), reply: emptyTraffic(), connections: 0, open: 0 }));
    return t;
  }

  /** A copy of the counters of the link from→to: what `from` sent on it ('request') and what `to` answered ('reply'). */
  bytes(from: string, to: string): PairTraffic {
    const t = this.trafficOf(from, to);
    return { request: { ...t.request }, reply: { ...t.reply }, connections: t.connections, open: t.open };
  }

  ruleOf(from: string, to: string, dir: Direction): Rule {
    return this.rules.get(`${from}>${to}:${dir}`) ?? { kind: 'pass' };
  }

  /** Sets the rule of the link from→to, in one direction or both, and applies it to what is held. */
  setRule(from: string, to: string, rule: Rule, dir: Directions = 'both'): void {
    for (const d of dir === 'both' ? (['request', 'reply'] as const) : [dir]) {
      if (rule.kind === 'pass') this.rules.delete(`${from}>${to}:${d}`);
      else this.rules.set(`${from}>${to}:${d}`, rule);
    }
    for (const conn of this.connections) {
      if (conn.from !== from || conn.to !== to) continue;
      if (dir !== 'reply') conn.request.reapply(false);
      if (dir !== 'request') conn.reply.reapply(false);
    }
  }

  pass(from: string, to: string, dir: Directions = 'both'): void { this.setRule(from, to, { kind: 'pass' }, dir); }

  /** Drops the frames of the link from→to (default both directions); its connections stay open. */
  cut(from: string, to: string, dir: Directions = 'both'): void { this.setRule(from, to, { kind: 'cut' }, dir); }

  /** Buffers the frames of the link from→to until release() (or heal()). */
  hold(from: string, to: string, dir: Directions = 'both'): void { this.setRule(from, to, { kind: 'hold' }, dir); }

  /** Delivers each frame of the link from→to `ms` after it reached the proxy, in order. */
  delay(from: string, to: string, ms: number, dir: Directions = 'both'): void { this.setRule(from, to, { kind: 'delay', ms }, dir); }

  /**
   * Delivers, in order, everything held on the matching links (all links when no argument), and
   * lets those links pass again.
   */
  release(from?: string, to?: string, dir: Directions = 'both'): void {
    for (const [key, rule] of [...this.rules]) {
      if (rule.kind !== 'hold') continue;
      const m = /^(.*)>(.*):(request|reply)$/.exec(key)!;
      if ((from !== undefined && m[1] !== from) || (to !== undefined && m[2] !== to)) continue;
      if (dir !== 'both' && m[3] !== dir) continue;
      this.setRule(m[1]!, m[2]!, { kind: 'pass' }, m[3] as Direction);
    }
  }

  /**
   * Everything from `from` to `to` is lost, whichever of them dialed: `from`'s requests and
   * heartbeats on its link to `to`, and `from`'s replies on `to`'s link to it. Everything `to`
   * sends to `from` passes.
   */
  cutOneWay(from: string, to: string): void {
    this.cut(from, to, 'request');
    this.cut(to, from, 'reply');
  }

  /** Every pair across two groups is cut, both ways, on both links. Nodes in no group are untouched. */
  partition(groups: string[][]): void {
    for (const [i, group] of groups.entries()) {
      for (const [j, other] of groups.entries()) {
        if (i === j) continue;
        for (const a of group) for (const b of other) this.cut(a, b, 'both');
      }
    }
  }

  /** Cuts `id` off from every other node, both ways. */
  isolate(id: string): void {
    this.partition([[id], this.ids.filter((x) => x !== id)]);
  }

  /**
   * Destroys now, with a TCP RST, every connection between a and b (either one dialed), or every
   * connection to or from a when b is not given. The nodes dial again by themselves. How many.
   */
  reset(a: string, b?: string): number {
    let n = 0;
    for (const conn of [...this.connections]) {
      if (!conn.matches(a, b)) continue;
      conn.close(true);
      n++;
    }
    return n;
  }

  /** Every rule back to pass; everything held or delayed is delivered now, in order. */
  heal(): void {
    this.rules.clear();
    for (const conn of this.connections) {
      conn.request.reapply(true);
      conn.reply.reapply(true);
    }
  }

  /** Rules in force and the traffic of every pair, one line each, for logs and failure messages. */
  describe(): string {
    const lines: string[] = [];
    for (const [key, rule] of this.rules) lines.push(`rule ${key} ${rule.kind}${rule.kind === 'delay' ? ` ${rule.ms} ms` : ''}`);
    for (const [key, t] of this.traffic) {
      const d = (x: DirectionTraffic) => `${x.arrived}B in, ${x.delivered} out, ${x.dropped} dropped, ${x.pending} pending`;
      lines.push(`${key}: ${t.open}/${t.connections} connections open; request ${d(t.request)}; reply ${d(t.reply)}`);
    }
    return lines.join('\n');
  }

  /** Closes every connection and every proxy. */
  async close(): Promise<void> {
    this.closed = true;
    for (const conn of [...this.connections]) conn.close(false);
    this.connections.clear();
    await Promise.all([...this.proxies.values()].map((p) => new Promise<void>((resolve) => p.server.close(() => resolve()))));
  }
}
