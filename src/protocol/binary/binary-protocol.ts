/**
 * The binary protocol (memcached's "Binary Protocol" spec, protocol_binary.h): a push parser
 * that frames 24-byte headers and their bodies, checks each opcode's extras/key/value shape,
 * and answers in the binary response format. A packet that cannot be trusted (bad magic,
 * lengths that don't add up, wrong shape) gets "Invalid arguments" and the connection is
 * closed, as memcached's handle_binary_protocol_error does.
 */
import { type Command, KEY_MAX_LENGTH, StoreMode } from '../types.js';
import { FeedResult, PushProtocol } from '../handler.js';
import { BinaryStatus, HEADER_LENGTH, Opcode, REQUEST_MAGIC } from './constants.js';
import { writeBinaryReply, writeBinaryStatus, type RequestHeader } from './binary-writer.js';

const enum Phase {
  Header,
  /** reading extras and key */
  Prefix,
  /** reading the value of a storage command */
  Value,
  /** discarding a body that gets no service */
  Swallow,
}

/** What each opcode carries: extras length, and whether a key and a value are allowed. */
interface Shape {
  extras: number | 'optional4';
  key: 'required' | 'none' | 'optional';
  value: boolean;
}

const STORE: Shape = { extras: 8, key: 'required', value: true };
const CONCAT: Shape = { extras: 0, key: 'required', value: true };
const KEY_ONLY: Shape = { extras: 0, key: 'required', value: false };
const ARITH: Shape = { extras: 20, key: 'required', value: false };
const EXPIRY_AND_KEY: Shape = { extras: 4, key: 'required', value: false };
const NOTHING: Shape = { extras: 0, key: 'none', value: false };

const SHAPE_LIST: Array<[Opcode, Shape]> = [
  [Opcode.Get, KEY_ONLY], [Opcode.GetQ, KEY_ONLY], [Opcode.GetK, KEY_ONLY], [Opcode.GetKQ, KEY_ONLY],
  [Opcode.Set, STORE], [Opcode.SetQ, STORE], [Opcode.Add, STORE], [Opcode.AddQ, STORE],
  [Opcode.Replace, STORE], [Opcode.ReplaceQ, STORE],
  [Opcode.Append, CONCAT], [Opcode.AppendQ, CONCAT], [Opcode.Prepend, CONCAT], [Opcode.PrependQ, CONCAT],
  [Opcode.Delete, KEY_ONLY], [Opcode.DeleteQ, KEY_ONLY],
  [Opcode.Increment, ARITH], [Opcode.IncrementQ, ARITH], [Opcode.Decrement, ARITH], [Opcode.DecrementQ, ARITH],
  [Opcode.Quit, NOTHING], [Opcode.QuitQ, NOTHING], [Opcode.Noop, NOTHING], [Opcode.Version, NOTHING],
  [Opcode.Flush, { extras: 'optional4', key: 'none', value: false }], [Opcode.FlushQ, { extras: 'optional4', key: 'none', value: false }],
  [Opcode.Stat, { extras: 0, key: 'optional', value: false }],
  [Opcode.Verbosity, { extras: 4, key: 'none', value: false }],
  [Opcode.Touch, EXPIRY_AND_KEY], [Opcode.Gat, EXPIRY_AND_KEY], [Opcode.GatQ, EXPIRY_AND_KEY],
  [Opcode.GatK, EXPIRY_AND_KEY], [Opcode.GatKQ, EXPIRY_AND_KEY],
  // SASL (binary spec, "SASL"): the mechanism is the key, its data the value.
  [Opcode.SaslListMechs, NOTHING], [Opcode.SaslAuth, CONCAT], [Opcode.SaslStep, CONCAT],
];

const SASL_OPCODES: ReadonlySet<number> = new Set([Opcode.SaslListMechs, Opcode.SaslAuth, Opcode.SaslStep]);
/** Indexed by opcode: an array lookup per request instead of a hash lookup. */
const SHAPES: Array<Shape | undefined> = new Array(256);
for (const [opcode, shape] of SHAPE_LIST) SHAPES[opcode] = shape;

const STORE_MODES: StoreMode[] = new Array(256);
for (const [opcode, mode] of [
  [Opcode.Set, StoreMode.Set], [Opcode.SetQ, StoreMode.Set], [Opcode.Add, StoreMode.Add], [Opcode.AddQ, StoreMode.Add],
  [Opcode.Replace, StoreMode.Replace], [Opcode.ReplaceQ, StoreMode.Replace],
  [Opcode.Append, StoreMode.Append], [Opcode.AppendQ, StoreMode.Append],
  [Opcode.Prepend, StoreMode.Prepend], [Opcode.PrependQ, StoreMode.Prepend],
] as Array<[Opcode, StoreMode]>) STORE_MODES[opcode] = mode;

/** The gets that may be read and sent on while earlier replies are awaited (mayGoOnWhileWaiting). */
const GET_OPCODES: ReadonlySet<number> = new Set([Opcode.Get, Opcode.GetQ, Opcode.GetK, Opcode.GetKQ]);
/** Replies held at once for one connection's batch of gets; past it, reading the batch waits. */
const MAX_HELD_REPLIES = 64;

/** "no auto-create" expiration of INCR/DECR (binary spec, "Increment, Decrement") */
const ARITH_NO_CREATE = 0xffffffff;

export class BinaryProtocol extends PushProtocol {
  private phase = Phase.Header;
  private header: RequestHeader = { opcode: 0, keyLength: 0, extrasLength: 0, bodyLength: 0, opaque: 0, cas: 0 };
  /**
   * where the extras and key of the current packet are: the received chunk itself when it holds
   * them whole (copied by consume() if the packet's value is still arriving when it returns)
   */
  private prefixSource: Buffer = EMPTY;
  private prefixBase = 0;
  private prefixFilled = 0;
  private value: Buffer | null = null;
  private valueFilled = 0;
  private swallowRemaining = 0;
  /** a reply to something else than a get is among those held (see mayGoOnWhileWaiting) */
  private heldOtherThanReads = false;
  /** set by QUIT: the reply is queued, then the connection closes */
  private closeAfterReply = false;

  get midRequest(): boolean {
    return this.phase !== Phase.Header || this.input !== null;
  }

  /**
   * While replies are awaited, a get of any kind (GET, GETQ, GETK, GETKQ) whose header is whole
   * and well-formed goes on: a batch of quiet gets is then forwarded key by key in one turn, to
   * each key's master at once, and the replies are held in order (PendingReply). The rest of its
   * packet (the key) follows, as it is part of the same step. Anything else, a malformed get
   * (answered at once, out of order otherwise), any get behind a held reply to something else
   * than a get, and more than MAX_HELD_REPLIES, waits its turn.
   */
  protected override mayGoOnWhileWaiting(data: Buffer, offset: number): boolean {
    if (this.phase !== Phase.Header) return true;
    // Behind anything but a read (a write forwarded), a get must see what it did: it waits.
    if (this.heldOtherThanReads) return false;
    if (data.length - offset < HEADER_LENGTH || this.pending.count >= MAX_HELD_REPLIES) return false;
    if (data[offset] !== REQUEST_MAGIC || !GET_OPCODES.has(data[offset + 1]!)) return false;
    const keyLength = data.readUInt16BE(offset + 2);
    return data[offset + 4] === 0 && keyLength > 0 && keyLength <= KEY_MAX_LENGTH && data.readUInt32BE(offset + 8) === keyLength;
  }

  protected consume(data: Buffer): FeedResult {
    const result = this.consumePackets(data);
    // A value still arriving keeps its packet's extras and key: when they were read where they
    // arrived, in the lent chunk, they are copied before the next read overwrites it.
    if (this.phase === Phase.Value && this.prefixSource === data) {
      const prefixLength = this.header.extrasLength + this.header.keyLength;
      this.prefixSource = Buffer.from(data.subarray(this.prefixBase, this.prefixBase + prefixLength));
      this.prefixBase = 0;
    }
    return result;
  }

  private consumePackets(data: Buffer): FeedResult {
    let offset = 0;
    while (offset < data.length) {
      const pause = this.mustPause(data, offset);
      if (pause !== null) return pause;
      switch (this.phase) {
        case Phase.Header: {
          if (data.length - offset < HEADER_LENGTH) {
            this.input = Buffer.from(data.subarray(offset));
            return FeedResult.NeedMore;
          }
          this.partsReceived++;
          const result = this.readHeader(data, offset);
          offset += HEADER_LENGTH;
          if (result !== FeedResult.NeedMore) return result;
          break;
        }
        case Phase.Prefix: {
          const prefixLength = this.header.extrasLength + this.header.keyLength;
          if (this.prefixFilled === 0 && data.length - offset >= prefixLength) {
            // The common case: read extras and key where they arrived, no copy.
            this.prefixSource = data;
            this.prefixBase = offset;
            offset += prefixLength;
          } else {
            // Split across reads: gather them into a buffer of their own.
            if (this.prefixFilled === 0) {
              this.prefixSource = Buffer.allocUnsafe(prefixLength);
              this.prefixBase = 0;
            }
            const take = Math.min(prefixLength - this.prefixFilled, data.length - offset);
            data.copy(this.prefixSource, this.prefixFilled, offset, offset + take);
            this.prefixFilled += take;
            offset += take;
            if (this.prefixFilled < prefixLength) break;
          }
          if (this.afterPrefix() === FeedResult.Close) return FeedResult.Close;
          break;
        }
        case Phase.Value: {
          const value = this.value!;
          const take = Math.min(value.length - this.valueFilled, data.length - offset);
          data.copy(value, this.valueFilled, offset, offset + take);
          this.valueFilled += take;
          offset += take;
          if (this.valueFilled === value.length) this.dispatch(value);
          break;
        }
        case Phase.Swallow: {
          const take = Math.min(this.swallowRemaining, data.length - offset);
          this.swallowRemaining -= take;
          offset += take;
          if (this.swallowRemaining === 0) {
            this.phase = Phase.Header;
            this.partsReceived++;
          }
          break;
        }
      }
    }
    return FeedResult.NeedMore;
  }

  private readHeader(data: Buffer, offset: number): FeedResult {
    // A client that loses framing sends anything: no reply can reach it reliably (memcached closes too).
    if (data[offset] !== REQUEST_MAGIC) return FeedResult.Close;
    const header: RequestHeader = {
      opcode: data[offset + 1]!,
      keyLength: data.readUInt16BE(offset + 2),
      extrasLength: data[offset + 4]!,
      bodyLength: data.readUInt32BE(offset + 8),
      opaque: data.readUInt32BE(offset + 12),
      // CAS uniques we hand out stay below 2^53 (types.ts); a larger one can match nothing.
      cas: data.readUInt32BE(offset + 16) * 2 ** 32 + data.readUInt32BE(offset + 20),
    };
    this.header = header;
    const shape = SASL_OPCODES.has(header.opcode) && this.limits.sasl !== true ? undefined : SHAPES[header.opcode];
    if (shape === undefined) {
      // Unknown opcodes, SASL included (memcached without -S answers SASL this way): the body is discarded.
      writeBinaryStatus(this.output, header, BinaryStatus.UnknownCommand);
      return this.swallow(header.bodyLength);
    }
    if (!this.fits(shape, header)) return this.protocolError();
    this.prefixFilled = 0;
    this.phase = Phase.Prefix;
    if (header.extrasLength + header.keyLength === 0) {
      this.prefixSource = EMPTY;
      this.prefixBase = 0;
      return this.afterPrefix();
    }
    return FeedResult.NeedMore;
  }

  /** Whether the header's lengths add up and match the opcode's shape (binary spec, per command). */
  private fits(shape: Shape, header: RequestHeader): boolean {
    const { keyLength, extrasLength, bodyLength } = header;
    if (keyLength + extrasLength > bodyLength) return false;
    if (keyLength > KEY_MAX_LENGTH) return false;
    if (shape.extras === 'optional4' ? extrasLength !== 0 && extrasLength !== 4 : extrasLength !== shape.extras) return false;
    if (shape.key === 'required' && keyLength === 0) return false;
    if (shape.key === 'none' && keyLength !== 0) return false;
    if (!shape.value && bodyLength !== keyLength + extrasLength) return false;
    return true;
  }

  private afterPrefix(): FeedResult {
    const header = this.header;
    const valueLength = header.bodyLength - header.extrasLength - header.keyLength;
    if (valueLength === 0) {
      this.dispatch(EMPTY);
      return this.closeAfterReply ? FeedResult.Close : FeedResult.NeedMore;
    }
    if (valueLength > this.limits.maxItemSize) {
      const mode = STORE_MODES[header.opcode]!;
      this.execute({ kind: 'refuseOversized', mode, key: this.key() });
      writeBinaryStatus(this.output, header, BinaryStatus.TooLarge);
      this.swallow(valueLength);
      return FeedResult.NeedMore;
    }
    this.value = Buffer.allocUnsafeSlow(valueLength);
    this.valueFilled = 0;
    this.phase = Phase.Value;
    return FeedResult.NeedMore;
  }

  private key(): string {
    const start = this.prefixBase + this.header.extrasLength;
    return this.prefixSource.toString('latin1', start, start + this.header.keyLength);
  }

  /** A 32-bit field of the extras. */
  private extrasUInt32(at: number): number {
    return this.prefixSource.readUInt32BE(this.prefixBase + at);
  }

  private extrasUInt64(at: number): bigint {
    return this.prefixSource.readBigUInt64BE(this.prefixBase + at);
  }

  /** Builds the Command for a complete packet, runs it and writes the reply. */
  private dispatch(value: Buffer): void {
    const header = this.header;
    this.phase = Phase.Header;
    this.partsReceived++;
    this.value = null;
    const op = header.opcode;
    let command: Command;
    switch (op) {
      case Opcode.Get: case Opcode.GetQ: case Opcode.GetK: case Opcode.GetKQ:
        command = { kind: 'get', keys: [this.key()], withCas: true };
        break;
      case Opcode.Set: case Opcode.SetQ: case Opcode.Add: case Opcode.AddQ: case Opcode.Replace: case Opcode.ReplaceQ:
        command = {
          kind: 'store', mode: STORE_MODES[op]!, key: this.key(), value,
          flags: this.extrasUInt32(0), exptime: this.extrasUInt32(4), cas: header.cas,
        };
        break;
      case Opcode.Append: case Opcode.AppendQ: case Opcode.Prepend: case Opcode.PrependQ:
        command = { kind: 'store', mode: STORE_MODES[op]!, key: this.key(), value, flags: 0, exptime: 0, cas: header.cas };
        break;
      case Opcode.Delete: case Opcode.DeleteQ:
        command = { kind: 'delete', key: this.key(), cas: header.cas };
        break;
      case Opcode.Increment: case Opcode.IncrementQ: case Opcode.Decrement: case Opcode.DecrementQ: {
        const exptime = this.extrasUInt32(16);
        command = {
          kind: 'arith', key: this.key(), incr: op === Opcode.Increment || op === Opcode.IncrementQ,
          delta: this.extrasUInt64(0), initial: exptime === ARITH_NO_CREATE ? null : this.extrasUInt64(8),
          exptime, cas: header.cas,
        };
        break;
      }
      case Opcode.Quit: case Opcode.QuitQ:
        this.closeAfterReply = true;
        if (op === Opcode.Quit) writeBinaryStatus(this.output, header, BinaryStatus.Success);
        return;
      case Opcode.Noop:
        writeBinaryStatus(this.output, header, BinaryStatus.Success);
        return;
      case Opcode.Version:
        command = { kind: 'version' };
        break;
      case Opcode.Flush: case Opcode.FlushQ:
        command = { kind: 'flush', delaySeconds: header.extrasLength === 4 ? this.extrasUInt32(0) : 0 };
        break;
      case Opcode.Stat:
        command = { kind: 'stats', args: this.key().split(' ').filter((word) => word !== '') };
        break;
      case Opcode.Verbosity:
        command = { kind: 'verbosity', level: this.extrasUInt32(0) };
        break;
      case Opcode.Touch:
        command = { kind: 'touch', key: this.key(), exptime: this.extrasUInt32(0) };
        break;
      case Opcode.Gat: case Opcode.GatQ: case Opcode.GatK: case Opcode.GatKQ:
        command = { kind: 'touchGet', keys: [this.key()], exptime: this.extrasUInt32(0), withCas: true };
        break;
      case Opcode.SaslListMechs:
        command = { kind: 'saslList' };
        break;
      case Opcode.SaslAuth: case Opcode.SaslStep:
        command = { kind: 'saslAuth', mechanism: this.key(), data: value };
        break;
      default:
        writeBinaryStatus(this.output, header, BinaryStatus.UnknownCommand);
        return;
    }
    if (!this.pending.busy) this.heldOtherThanReads = false;
    const reply = this.execute(command);
    if (reply instanceof Promise && command.kind !== 'get') this.heldOtherThanReads = true;
    // Behind replies still awaited (a batch of gets), even one known now waits its turn.
    if (reply instanceof Promise || this.pending.busy) this.pending.wait(reply, (arrived) => writeBinaryReply(this.output, header, arrived, command));
    else writeBinaryReply(this.output, header, reply, command);
  }

  private swallow(length: number): FeedResult {
    this.swallowRemaining = length;
    this.phase = length > 0 ? Phase.Swallow : Phase.Header;
    return FeedResult.NeedMore;
  }

  private protocolError(): FeedResult {
    writeBinaryStatus(this.output, this.header, BinaryStatus.InvalidArguments);
    return FeedResult.Close;
  }
}

const EMPTY = Buffer.alloc(0);
