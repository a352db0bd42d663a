/**
 * Builds binary protocol packets (memcached's protocol_binary.h): a 24-byte header
 *
 *   magic(1) opcode(1) keylen(2) extlen(1) datatype(1) vbucket|status(2)
 *   bodylen(4) opaque(4) cas(8)
 *
 * followed by extras, key and value. Lengths may be overridden to build broken packets.
 */

export const HEADER = 24;

export interface PacketSpec {
  opcode: number;
  key?: string | Buffer;
  extras?: Buffer;
  value?: string | Buffer;
  opaque?: number;
  cas?: bigint | number;
  /** request: 0x80, response: 0x81 */
  magic?: number;
  /** vbucket in a request, status in a response */
  status?: number;
  keyLength?: number;
  extrasLength?: number;
  bodyLength?: number;
}

const bytes = (data: string | Buffer | undefined) => (data === undefined ? Buffer.alloc(0) : typeof data === 'string' ? Buffer.from(data, 'latin1') : data);

function packet(spec: PacketSpec, magic: number): Buffer {
  const key = bytes(spec.key);
  const extras = spec.extras ?? Buffer.alloc(0);
  const value = bytes(spec.value);
  const header = Buffer.alloc(HEADER);
  header[0] = spec.magic ?? magic;
  header[1] = spec.opcode;
  header.writeUInt16BE(spec.keyLength ?? key.length, 2);
  header[4] = spec.extrasLength ?? extras.length;
  header[5] = 0;
  header.writeUInt16BE(spec.status ?? 0, 6);
  header.writeUInt32BE(spec.bodyLength ?? extras.length + key.length + value.length, 8);
  header.writeUInt32BE(spec.opaque ?? 0, 12);
  header.writeBigUInt64BE(BigInt(spec.cas ?? 0), 16);
  return Buffer.concat([header, extras, key, value]);
}

export const request = (spec: PacketSpec): Buffer => packet(spec, 0x80);
export const response = (spec: PacketSpec): Buffer => packet(spec, 0x81);

export function u32(value: number): Buffer {
  const buffer = Buffer.alloc(4);
  buffer.writeUInt32BE(value >>> 0);
  return buffer;
}

export function u64(value: bigint): Buffer {
  const buffer = Buffer.alloc(8);
  buffer.writeBigUInt64BE(value);
  return buffer;
}

/** SET/ADD/REPLACE extras: flags, expiration */
export const storeExtras = (flags: number, exptime: number): Buffer => Buffer.concat([u32(flags), u32(exptime)]);

/** INCR/DECR extras: delta, initial value, expiration */
export const arithExtras = (delta: bigint, initial: bigint, exptime: number): Buffer => Buffer.concat([u64(delta), u64(initial), u32(exptime)]);

export interface ParsedPacket {
  magic: number;
  opcode: number;
  status: number;
  opaque: number;
  cas: bigint;
  extras: Buffer;
  key: string;
  value: Buffer;
}

/** Splits a stream of response packets; throws if the last one is cut short. */
export function parsePackets(data: Buffer): ParsedPacket[] {
  const packets: ParsedPacket[] = [];
  let offset = 0;
  while (offset < data.length) {
    if (data.length - offset < HEADER) throw new Error(`trailing ${data.length - offset} bytes`);
    const keyLength = data.readUInt16BE(offset + 2);
    const extrasLength = data[offset + 4]!;
    const bodyLength = data.readUInt32BE(offset + 8);
    const body = offset + HEADER;
    if (body + bodyLength > data.length) throw new Error('packet cut short');
    packets.push({
      magic: data[offset]!,
      opcode: data[offset + 1]!,
      status: data.readUInt16BE(offset + 6),
      opaque: data.readUInt32BE(offset + 12),
      cas: data.readBigUInt64BE(offset + 16),
      extras: data.subarray(body, body + extrasLength),
      key: data.toString('latin1', body + extrasLength, body + extrasLength + keyLength),
      value: data.subarray(body + extrasLength + keyLength, body + bodyLength),
    });
    offset = body + bodyLength;
  }
  return packets;
}
