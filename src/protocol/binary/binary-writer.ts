/** Writes binary protocol responses (memcached's binary protocol spec, "Response header"). */
import { type Command, type Reply, Status, StoreMode } from '../types.js';
import type { Output } from '../output.js';
import { BinaryStatus, HEADER_LENGTH, KEYED_REPLY_OPCODES, QUIET_OPCODES, RESPONSE_MAGIC, STATUS_MESSAGES } from './constants.js';

export interface RequestHeader {
  opcode: number;
  keyLength: number;
  extrasLength: number;
  bodyLength: number;
  opaque: number;
  cas: number;
}

/** One response packet: header, then extras (flags, when given), key and value. */
export function writeResponse(
  output: Output, header: RequestHeader, status: BinaryStatus, cas: number,
  flags: number | null, key: string, value: Buffer | null,
): void {
  const extrasLength = flags === null ? 0 : 4;
  const valueLength = value === null ? 0 : value.length;
  const { buffer, offset } = output.claim(HEADER_LENGTH + extrasLength + key.length);
  buffer[offset] = RESPONSE_MAGIC;
  buffer[offset + 1] = header.opcode;
  buffer.writeUInt16BE(key.length, offset + 2);
  buffer[offset + 4] = extrasLength;
  buffer[offset + 5] = 0;
  buffer.writeUInt16BE(status, offset + 6);
  buffer.writeUInt32BE(extrasLength + key.length + valueLength, offset + 8);
  buffer.writeUInt32BE(header.opaque, offset + 12);
  buffer.writeUInt32BE(Math.floor(cas / 2 ** 32), offset + 16);
  buffer.writeUInt32BE(cas >>> 0, offset + 20);
  if (flags !== null) buffer.writeUInt32BE(flags >>> 0, offset + HEADER_LENGTH);
  if (key.length > 0) buffer.write(key, offset + HEADER_LENGTH + extrasLength, 'latin1');
  if (value !== null && valueLength > 0) output.writeBytes(value);
}

/** A status-only response; errors carry memcached's message text as their value. */
export function writeBinaryStatus(output: Output, header: RequestHeader, status: BinaryStatus, cas = 0): void {
  const message = STATUS_MESSAGES[status];
  writeResponse(output, header, status, cas, null, '', message === undefined ? null : Buffer.from(message, 'latin1'));
}

/** How a store result reads in binary (proto_bin.c, complete_update_bin): it depends on the command. */
function storeStatus(status: Status, command: Command): BinaryStatus {
  switch (status) {
    case Status.Stored:
    case Status.Deleted:
    case Status.Touched:
    case Status.Ok:
      return BinaryStatus.Success;
    case Status.NotStored:
      if (command.kind === 'store' && command.mode === StoreMode.Add) return BinaryStatus.KeyExists;
      if (command.kind === 'store' && command.mode === StoreMode.Replace) return BinaryStatus.KeyNotFound;
      return BinaryStatus.NotStored;
    case Status.Exists:
      return BinaryStatus.KeyExists;
    case Status.NotFound:
      return BinaryStatus.KeyNotFound;
    case Status.TooLarge:
      return BinaryStatus.TooLarge;
    case Status.NoMemory:
      return BinaryStatus.OutOfMemory;
    case Status.NonNumeric:
      return BinaryStatus.NonNumeric;
    case Status.InvalidArguments:
      return BinaryStatus.InvalidArguments;
  }
}

export function writeBinaryReply(output: Output, header: RequestHeader, reply: Reply, command: Command): void {
  const quiet = QUIET_OPCODES.has(header.opcode);
  switch (reply.kind) {
    case 'status': {
      const status = storeStatus(reply.status, command);
      if (status === BinaryStatus.Success) {
        if (!quiet) writeResponse(output, header, status, reply.cas, reply.flags ?? null, '', null);
      } else {
        writeBinaryStatus(output, header, status);
      }
      return;
    }
    case 'values': {
      const keyed = KEYED_REPLY_OPCODES.has(header.opcode);
      const entry = reply.entries[0];
      if (entry !== undefined) {
        writeResponse(output, header, BinaryStatus.Success, entry.cas, entry.flags, keyed ? entry.key : '', entry.value);
      } else if (!quiet) {
        // GETK's miss names the key instead of a message (proto_bin.c, process_bin_get_or_touch).
        if (keyed) writeResponse(output, header, BinaryStatus.KeyNotFound, 0, null, reply.missing[0] ?? '', null);
        else writeBinaryStatus(output, header, BinaryStatus.KeyNotFound);
      }
      return;
    }
    case 'number': {
      if (quiet) return;
      const body = Buffer.allocUnsafe(8);
      body.writeBigUInt64BE(reply.value);
      writeResponse(output, header, BinaryStatus.Success, reply.cas, null, '', body);
      return;
    }
    case 'stats':
      // One packet per statistic, then one with no key and no value (binary spec, "Stat").
      for (const [name, value] of reply.entries) writeResponse(output, header, BinaryStatus.Success, 0, null, name, Buffer.from(value, 'latin1'));
      writeResponse(output, header, BinaryStatus.Success, 0, null, '', null);
      return;
    case 'unknownStats':
    case 'keyDump':
      writeBinaryStatus(output, header, BinaryStatus.KeyNotFound);
      return;
    case 'statsReset':
      writeResponse(output, header, BinaryStatus.Success, 0, null, '', null);
      return;
    case 'version':
      writeResponse(output, header, BinaryStatus.Success, 0, null, '', Buffer.from(reply.version, 'latin1'));
      return;
    case 'quit':
      return;
    case 'serverError':
      writeResponse(output, header, BinaryStatus.TemporaryFailure, 0, null, '', Buffer.from(reply.message, 'latin1'));
      return;
    case 'notAllowed':
      // memcached -F answers a binary flush with its auth error (proto_bin.c, process_bin_flush).
      writeResponse(output, header, BinaryStatus.AuthError, 0, null, '', Buffer.from(reply.message, 'latin1'));
      return;
    case 'saslMechs':
      writeResponse(output, header, BinaryStatus.Success, 0, null, '', Buffer.from(reply.mechanisms, 'latin1'));
      return;
    case 'authenticated':
      writeResponse(output, header, BinaryStatus.Success, 0, null, '', Buffer.from('Authenticated', 'latin1'));
      return;
    case 'authFailed':
      writeResponse(output, header, BinaryStatus.AuthError, 0, null, '', Buffer.from('Auth failure.', 'latin1'));
      return;
  }
}
