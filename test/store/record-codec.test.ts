/** The disk log's framing: every kind of record whole, cut short at every byte, and damaged. */
import { describe, expect, it } from 'vitest';
import { crc32, crc32Portable } from '../../src/store/disk/crc32.js';
import { encodeEntry, type LogEntry, RecordKind, tryReadFrame } from '../../src/store/disk/record-codec.js';

const ENTRIES: LogEntry[] = [
  { kind: RecordKind.Item, key: 'memc.sess.key.abc', value: Buffer.from('a|s:1:"x";'), flags: 0xffffffff, expiresAt: 1_796_637_000_123, cas: 2 ** 40, version: 123456, origin: 'node-1' },
  { kind: RecordKind.Item, key: 'k'.repeat(250), value: Buffer.alloc(0), flags: 0, expiresAt: 0, cas: 1, version: 1, origin: 'n' },
  { kind: RecordKind.Deletion, key: 'memc.sess.key.lock.abc', version: 99, origin: 'n2', until: 1_796_637_060_000 },
  { kind: RecordKind.Removal, key: 'gone' },
  { kind: RecordKind.Flush },
];

describe('CRC-32', () => {
  it('matches the check value of the IEEE polynomial ("123456789" -> 0xcbf43926), natively and in JavaScript, and continues across pieces', () => {
    const data = Buffer.from('123456789');
    for (const crc of [crc32, crc32Portable]) {
      expect(crc(data)).toBe(0xcbf43926);
      expect(crc(data, 4, 9, crc(data, 0, 4))).toBe(0xcbf43926);
    }
    const random = Buffer.from(Array.from({ length: 4099 }, (_, i) => (i * 7919) & 0xff));
    expect(crc32Portable(random, 3, 4000)).toBe(crc32(random, 3, 4000));
  });
});

describe('record frames', () => {
  it('each kind reads back as written, and the next frame starts where it ends', () => {
    const all = Buffer.concat(ENTRIES.map(encodeEntry));
    let at = 0;
    for (const entry of ENTRIES) {
      const read = tryReadFrame(all, at);
      expect(read.kind).toBe('entry');
      if (read.kind !== 'entry') return;
      expect(read.entry).toEqual(entry);
      at = read.next;
    }
    expect(at).toBe(all.length);
  });

  it('a frame cut short at any byte is short, never an entry and never corrupt', () => {
    for (const entry of ENTRIES) {
      const frame = encodeEntry(entry);
      for (let end = 0; end < frame.length; end++) expect(tryReadFrame(frame.subarray(0, end), 0).kind).toBe('short');
    }
  });

  it('any single flipped bit in the payload is caught by the checksum', () => {
    const frame = encodeEntry(ENTRIES[0]!);
    for (let byte = 8; byte < frame.length; byte++) {
      for (let bit = 0; bit < 8; bit++) {
        const damaged = Buffer.from(frame);
        damaged[byte] ^= 1 << bit;
        expect(tryReadFrame(damaged, 0)).toMatchObject({ kind: 'corrupt' });
      }
    }
  });

  it('an impossible length is corrupt', () => {
    const frame = encodeEntry(ENTRIES[3]!);
    frame.writeUInt32LE(0, 0);
    expect(tryReadFrame(frame, 0)).toMatchObject({ kind: 'corrupt', why: expect.stringContaining('length 0') });
  });
});
