/**
 * Does a node answer memcached's binary protocol? One VERSION request on its own connection
 * (a binary connection stays binary: memcached decides per connection from the first byte).
 *
 * The packet layout is the binary protocol spec's ("Packet Structure", memcached's
 * protocol_binary.h): a 24-byte header in network byte order, then extras, key and value.
 *   0 magic (0x80 request, 0x81 response)  1 opcode  2-3 key length  4 extras length
 *   5 data type  6-7 vbucket id (request) / status (response)  8-11 total body length
 *   12-15 opaque (echoed back)  16-23 CAS
 * VERSION (opcode 0x0b) has no extras, key or value; its response's value is the version string.
 */
import { randomBytes } from 'node:crypto';
import { CliError } from './cli-error.js';
import { connectSocket, firstLineOf } from './connect.js';
import { describeNode, type NodeAddress } from './node-address.js';

const HEADER_LENGTH = 24;
const MAGIC_REQUEST = 0x80;
const MAGIC_RESPONSE = 0x81;
const OPCODE_VERSION = 0x0b;
/** A version string is a few dozen bytes; anything much longer is not a VERSION response. */
const MAX_BODY = 4096;

/** Response statuses worth naming in a message (protocol_binary.h, response status). */
const STATUS_NAMES: Record<number, string> = { 0x01: 'key not found', 0x04: 'invalid arguments', 0x20: 'authentication required', 0x81: 'unknown command', 0x82: 'out of memory' };

export function versionRequest(opaque: number): Buffer {
  const header = Buffer.alloc(HEADER_LENGTH);
  header[0] = MAGIC_REQUEST;
  header[1] = OPCODE_VERSION;
  header.writeUInt32BE(opaque, 12);
  return header;
}

/**
 * Reads a VERSION response from `bytes`: the version string, null while incomplete, or an Error
 * naming what is wrong with it.
 */
export function readVersionResponse(bytes: Buffer, opaque: number): string | null | Error {
  if (bytes.length > 0 && bytes[0] !== MAGIC_RESPONSE) {
    return new Error(`it answered ${firstLineOf(bytes)} where a binary response (magic 0x81) was expected`);
  }
  if (bytes.length < HEADER_LENGTH) return null;
  const opcode = bytes[1]!;
  const status = bytes.readUInt16BE(6);
  const bodyLength = bytes.readUInt32BE(8);
  if (opcode !== OPCODE_VERSION) return new Error(`it answered VERSION with a response to opcode 0x${hex(opcode, 2)}`);
  if (bytes.readUInt32BE(12) !== opaque) return new Error('its response carried another request\'s opaque');
  if (bodyLength > MAX_BODY) return new Error(`its VERSION response claims a ${bodyLength}-byte body`);
  if (bytes.length < HEADER_LENGTH + bodyLength) return null;
  const body = bytes.subarray(HEADER_LENGTH, HEADER_LENGTH + bodyLength);
  if (status !== 0) {
    const name = STATUS_NAMES[status];
    const said = body.length > 0 ? `: ${firstLineOf(body)}` : '';
    return new Error(`it answered VERSION with status 0x${hex(status, 4)}${name === undefined ? '' : ` (${name})`}${said}`);
  }
  const extras = bytes[4]!;
  const keyLength = bytes.readUInt16BE(2);
  return body.subarray(extras + keyLength).toString('latin1');
}

/** The version the node gives over the binary protocol, or a CliError saying why there is none. */
export async function binaryVersion(address: NodeAddress, timeoutMs: number): Promise<string> {
  const socket = await connectSocket(address, timeoutMs);
  const node = describeNode(address);
  const opaque = randomBytes(4).readUInt32BE(0);
  return new Promise<string>((resolve, reject) => {
    let received = Buffer.alloc(0);
    const finish = (outcome: string | Error) => {
      clearTimeout(timer);
      socket.removeAllListeners();
      socket.on('error', () => undefined);
      socket.destroy();
      if (typeof outcome === 'string') resolve(outcome);
      else reject(new CliError(`${node} does not answer the binary protocol: ${outcome.message}`));
    };
    const timer = setTimeout(() => finish(new Error(`no answer to a VERSION request in ${timeoutMs} ms`)), timeoutMs);
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      const outcome = readVersionResponse(received, opaque);
      if (outcome !== null) finish(outcome);
    });
    socket.on('error', (error: NodeJS.ErrnoException) => finish(new Error(`the connection failed: ${error.code ?? error.message}`)));
    socket.on('close', () => finish(new Error(received.length === 0
      ? 'it closed the connection without answering a VERSION request'
      : 'it closed the connection in the middle of its answer')));
    socket.write(versionRequest(opaque));
  });
}

function hex(value: number, digits: number): string {
  return value.toString(16).padStart(digits, '0');
}
