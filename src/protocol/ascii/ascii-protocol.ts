/**
 * The ascii (text) protocol: a push parser that frames command lines and data blocks,
 * turns them into Commands, and writes each Reply in memcached's text format
 * (memcached doc/protocol.txt). Faults in the input become memcached's own error replies;
 * only input that cannot be framed closes the connection.
 */
import { type Command, KEY_MAX_LENGTH, StoreMode } from '../types.js';
import { FeedResult, PushProtocol } from '../handler.js';
import { TokenList, isValidKey, parseSigned, parseUint64, parseUnsigned } from './tokens.js';
import { writeAsciiReply } from './ascii-writer.js';

/** memcached closes a connection whose command line has no newline within 2048 bytes (proto_text.c). */
export const MAX_LINE_LENGTH = 2048;
/**
 * Multi-key reads may be longer (memcached lets get/gets lines grow); ours are bounded so one
 * client cannot make the daemon buffer without limit: about 1000 keys of 250 bytes.
 */
export const MAX_GET_LINE_LENGTH = 256 * 1024;

/** `bytes` is read as a signed 32-bit value, and memcached refuses anything above INT_MAX - 2. */
const MAX_DATA_LENGTH = 2 ** 31 - 3;

const enum Phase {
  Line,
  /** reading the data block of a storage command */
  Data,
  /** discarding the data block of a refused storage command */
  Swallow,
}

const ERROR = 'ERROR\r\n';
const BAD_FORMAT = 'CLIENT_ERROR bad command line format\r\n';
const BAD_CHUNK = 'CLIENT_ERROR bad data chunk\r\n';
const TOO_LARGE = 'SERVER_ERROR object too large for cache\r\n';

interface PendingStore {
  mode: StoreMode;
  key: string;
  flags: number;
  exptime: number;
  cas: number;
  noreply: boolean;
  value: Buffer;
  /** bytes of the data block (value plus its "\r\n") received so far */
  received: number;
  /** the two bytes after the value, which must be "\r\n" */
  terminator: number[];
}

export class AsciiProtocol extends PushProtocol {
  private phase = Phase.Line;
  private readonly tokens = new TokenList();
  private pendingStore: PendingStore | null = null;
  private swallowRemaining = 0;

  get midRequest(): boolean {
    return this.phase !== Phase.Line || this.input !== null;
  }

  protected consume(data: Buffer): FeedResult {
    let offset = 0;
    while (offset < data.length) {
      const pause = this.mustPause(data, offset);
      if (pause !== null) return pause;
      switch (this.phase) {
        case Phase.Data:
          offset = this.readData(data, offset);
          break;
        case Phase.Swallow: {
          const take = Math.min(this.swallowRemaining, data.length - offset);
          this.swallowRemaining -= take;
          offset += take;
          if (this.swallowRemaining === 0) {
            this.phase = Phase.Line;
            this.partsReceived++;
          }
          break;
        }
        case Phase.Line: {
          const newline = data.indexOf(0x0a, offset);
          if (newline < 0) {
            if (!this.mayGrow(data, offset)) return FeedResult.Close;
            // Keep a copy: the chunk belongs to the socket and a partial line is small.
            this.input = Buffer.from(data.subarray(offset));
            return FeedResult.NeedMore;
          }
          const lineEnd = newline > offset && data[newline - 1] === 0x0d ? newline - 1 : newline;
          this.partsReceived++;
          const result = this.handleLine(data, offset, lineEnd);
          offset = newline + 1;
          if (result === FeedResult.Close) return FeedResult.Close;
        }
      }
    }
    return FeedResult.NeedMore;
  }

  /** Whether a line with no newline yet may keep growing, as memcached allows for get/gets only. */
  private mayGrow(data: Buffer, offset: number): boolean {
    const length = data.length - offset;
    if (length <= MAX_LINE_LENGTH) return true;
    if (length > MAX_GET_LINE_LENGTH) return false;
    const head = data.toString('latin1', offset, offset + 5);
    return head.startsWith('get ') || head === 'gets ' || head.startsWith('gat ') || head === 'gats ';
  }

  private handleLine(buf: Buffer, start: number, end: number): FeedResult {
    const tokens = this.tokens;
    const count = tokens.tokenize(buf, start, end);
    if (count === 0) return this.reply(ERROR);
    const name = tokens.text(buf, 0);
    switch (name) {
      case 'get':
        return this.handleGet(buf, count, false);
      case 'gets':
        return this.handleGet(buf, count, true);
      case 'gat':
        return this.handleGat(buf, count, false);
      case 'gats':
        return this.handleGat(buf, count, true);
      case 'set':
        return this.handleStorage(buf, count, StoreMode.Set);
      case 'add':
        return this.handleStorage(buf, count, StoreMode.Add);
      case 'replace':
        return this.handleStorage(buf, count, StoreMode.Replace);
      case 'append':
        return this.handleStorage(buf, count, StoreMode.Append);
      case 'prepend':
        return this.handleStorage(buf, count, StoreMode.Prepend);
      case 'cas':
        return this.handleStorage(buf, count, StoreMode.Cas);
      case 'delete':
        return this.handleDelete(buf, count);
      case 'incr':
        return this.handleArith(buf, count, true);
      case 'decr':
        return this.handleArith(buf, count, false);
      case 'touch':
        return this.handleTouch(buf, count);
      case 'flush_all':
        return this.handleFlush(buf, count);
      case 'version':
        return this.run({ kind: 'version' }, false);
      case 'verbosity':
        return this.handleVerbosity(buf, count);
      case 'stats':
        return this.handleStats(buf, count);
      case 'quit':
        return FeedResult.Close;
      default:
        // An HTTP request line ("GET / HTTP/1.1") means the client is on the wrong port:
        // memcached 1.6 closes such a connection instead of answering each header line.
        if (count === 3 && buf.toString('latin1', this.tokens.starts[2]!, this.tokens.starts[2]! + 5) === 'HTTP/') return FeedResult.Close;
        return this.reply(ERROR);
    }
  }

  /** get|gets <key>* (protocol.txt, "Retrieval command") */
  private handleGet(buf: Buffer, count: number, withCas: boolean): FeedResult {
    if (count < 2) return this.reply(ERROR);
    const keys = this.readKeys(buf, 1, count);
    if (keys === null) return this.reply(BAD_FORMAT);
    return this.run({ kind: 'get', keys, withCas }, false, withCas);
  }

  /** gat|gats <exptime> <key>* */
  private handleGat(buf: Buffer, count: number, withCas: boolean): FeedResult {
    if (count < 2) return this.reply(ERROR);
    // memcached answers a gat without keys with an empty result
    if (count === 2) return this.reply('END\r\n');
    const exptime = parseSigned(buf, this.tokens.starts[1]!, this.tokens.ends[1]!);
    if (Number.isNaN(exptime)) return this.reply('CLIENT_ERROR invalid exptime argument\r\n');
    const keys = this.readKeys(buf, 2, count);
    if (keys === null) return this.reply(BAD_FORMAT);
    return this.run({ kind: 'touchGet', keys, exptime, withCas }, false, withCas);
  }

  /**
   * <command> <key> <flags> <exptime> <bytes> [noreply]
   * cas <key> <flags> <exptime> <bytes> <cas unique> [noreply]
   */
  private handleStorage(buf: Buffer, count: number, mode: StoreMode): FeedResult {
    const t = this.tokens;
    const fixed = mode === StoreMode.Cas ? 6 : 5;
    if (count !== fixed && count !== fixed + 1) return this.reply(ERROR);
    const noreply = count === fixed + 1 && t.equals(buf, fixed, 'noreply');
    if (!isValidKey(buf, t.starts[1]!, t.ends[1]!, KEY_MAX_LENGTH)) return this.reply(BAD_FORMAT);
    const flags = parseUnsigned(buf, t.starts[2]!, t.ends[2]!);
    const exptime = parseSigned(buf, t.starts[3]!, t.ends[3]!);
    const length = parseSigned(buf, t.starts[4]!, t.ends[4]!);
    const cas = mode === StoreMode.Cas ? parseUnsigned(buf, t.starts[5]!, t.ends[5]!) : 0;
    if (flags < 0 || flags > 0xffffffff || Number.isNaN(exptime) || Number.isNaN(length) || cas < 0) {
      return this.reply(BAD_FORMAT);
    }
    // memcached (proto_text.c) answers a bad length without reading any data block.
    if (length < 0 || length > MAX_DATA_LENGTH) return this.reply(BAD_FORMAT);
    const key = t.text(buf, 1);
    if (length > this.limits.maxItemSize) {
      // Refused before the data arrives: answer now and discard the block as it streams in.
      this.execute({ kind: 'refuseOversized', mode, key });
      this.phase = Phase.Swallow;
      this.swallowRemaining = length + 2;
      return noreply ? FeedResult.NeedMore : this.reply(TOO_LARGE);
    }
    this.pendingStore = { mode, key, flags, exptime, cas, noreply, value: Buffer.allocUnsafeSlow(length), received: 0, terminator: [] };
    this.phase = Phase.Data;
    return FeedResult.NeedMore;
  }

  /** Copies the data block of the pending storage command as it arrives. */
  private readData(data: Buffer, offset: number): number {
    const pending = this.pendingStore!;
    const valueLength = pending.value.length;
    if (pending.received < valueLength) {
      const take = Math.min(valueLength - pending.received, data.length - offset);
      data.copy(pending.value, pending.received, offset, offset + take);
      pending.received += take;
      offset += take;
    }
    while (pending.received >= valueLength && pending.received < valueLength + 2 && offset < data.length) {
      pending.terminator.push(data[offset++]!);
      pending.received++;
    }
    if (pending.received < valueLength + 2) return offset;
    this.pendingStore = null;
    this.phase = Phase.Line;
    this.partsReceived++;
    if (pending.terminator[0] !== 0x0d || pending.terminator[1] !== 0x0a) {
      if (!pending.noreply) this.output.writeLatin1(BAD_CHUNK);
      return offset;
    }
    const command: Command = { kind: 'store', mode: pending.mode, key: pending.key, flags: pending.flags, exptime: pending.exptime, value: pending.value, cas: pending.cas };
    this.run(command, pending.noreply);
    return offset;
  }

  /** delete <key> [0] [noreply]: memcached still accepts the legacy hold time if it is 0. */
  private handleDelete(buf: Buffer, count: number): FeedResult {
    const t = this.tokens;
    if (count < 2 || count > 4) return this.reply(ERROR);
    const noreply = t.equals(buf, count - 1, 'noreply');
    const holdIsZero = count > 2 && t.equals(buf, 2, '0');
    const valid = count === 2 || (count === 3 && (holdIsZero || noreply)) || (count === 4 && holdIsZero && noreply);
    if (!valid) return this.reply('CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n');
    if (!isValidKey(buf, t.starts[1]!, t.ends[1]!, KEY_MAX_LENGTH)) return this.reply(BAD_FORMAT);
    return this.run({ kind: 'delete', key: t.text(buf, 1), cas: 0 }, noreply);
  }

  /** incr|decr <key> <value> [noreply] */
  private handleArith(buf: Buffer, count: number, incr: boolean): FeedResult {
    const t = this.tokens;
    if (count !== 3 && count !== 4) return this.reply(ERROR);
    const noreply = count === 4 && t.equals(buf, 3, 'noreply');
    if (!isValidKey(buf, t.starts[1]!, t.ends[1]!, KEY_MAX_LENGTH)) return this.reply(BAD_FORMAT);
    const delta = parseUint64(buf, t.starts[2]!, t.ends[2]!);
    if (delta === null) return this.reply('CLIENT_ERROR invalid numeric delta argument\r\n');
    return this.run({ kind: 'arith', key: t.text(buf, 1), incr, delta, initial: null, exptime: 0, cas: 0 }, noreply);
  }

  /** touch <key> <exptime> [noreply] */
  private handleTouch(buf: Buffer, count: number): FeedResult {
    const t = this.tokens;
    if (count !== 3 && count !== 4) return this.reply(ERROR);
    const noreply = count === 4 && t.equals(buf, 3, 'noreply');
    if (!isValidKey(buf, t.starts[1]!, t.ends[1]!, KEY_MAX_LENGTH)) return this.reply(BAD_FORMAT);
    const exptime = parseSigned(buf, t.starts[2]!, t.ends[2]!);
    if (Number.isNaN(exptime)) return this.reply('CLIENT_ERROR invalid exptime argument\r\n');
    return this.run({ kind: 'touch', key: t.text(buf, 1), exptime }, noreply);
  }

  /** flush_all [delay] [noreply]; like memcached, a word after the delay other than noreply is ignored. */
  private handleFlush(buf: Buffer, count: number): FeedResult {
    const t = this.tokens;
    if (count > 3) return this.reply(ERROR);
    const noreply = count > 1 && t.equals(buf, count - 1, 'noreply');
    let delaySeconds = 0;
    if (count === 3 || (count === 2 && !noreply)) {
      delaySeconds = parseSigned(buf, t.starts[1]!, t.ends[1]!);
      if (Number.isNaN(delaySeconds)) return noreply ? FeedResult.NeedMore : this.reply(BAD_FORMAT);
    }
    return this.run({ kind: 'flush', delaySeconds }, noreply);
  }

  /** verbosity <level> [noreply] */
  private handleVerbosity(buf: Buffer, count: number): FeedResult {
    const t = this.tokens;
    if (count !== 2 && count !== 3) return this.reply(ERROR);
    const noreply = t.equals(buf, count - 1, 'noreply');
    // memcached 1.6 answers "verbosity noreply" with nothing at all.
    if (noreply && count === 2) return FeedResult.NeedMore;
    const level = parseUnsigned(buf, t.starts[1]!, t.ends[1]!);
    if (level < 0) return noreply ? FeedResult.NeedMore : this.reply(BAD_FORMAT);
    return this.run({ kind: 'verbosity', level }, noreply);
  }

  /** stats [group] */
  private handleStats(buf: Buffer, count: number): FeedResult {
    const args: string[] = [];
    for (let i = 1; i < count; i++) args.push(this.tokens.text(buf, i));
    return this.run({ kind: 'stats', args }, false);
  }

  /** The keys of tokens [from, count), or null if one is not a valid key. */
  private readKeys(buf: Buffer, from: number, count: number): string[] | null {
    const t = this.tokens;
    const keys: string[] = [];
    for (let i = from; i < count; i++) {
      if (!isValidKey(buf, t.starts[i]!, t.ends[i]!, KEY_MAX_LENGTH)) return null;
      keys.push(t.text(buf, i));
    }
    return keys;
  }

  private run(command: Command, noreply: boolean, withCas = false): FeedResult {
    const reply = this.execute(command);
    if (reply instanceof Promise) {
      this.pending.wait(reply, (arrived) => { if (!noreply) writeAsciiReply(this.output, arrived, withCas); });
      return FeedResult.Waiting;
    }
    if (reply.kind === 'quit') return FeedResult.Close;
    if (!noreply) writeAsciiReply(this.output, reply, withCas);
    return FeedResult.NeedMore;
  }

  private reply(text: string): FeedResult {
    this.output.writeLatin1(text);
    return FeedResult.NeedMore;
  }
}
