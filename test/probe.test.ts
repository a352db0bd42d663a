/**
 * The pieces of `probe` that need no server: the binary VERSION request and the reading of its
 * response (the binary protocol spec's 24-byte header), the latency percentiles, and the lines
 * a person reads.
 */
import { describe, expect, it } from 'vitest';
import { readVersionResponse, versionRequest } from '../src/cli/binary-version.js';
import { formatStep } from '../src/cli/probe.js';
import { percentile } from '../src/cli/probe-steps.js';

const OPAQUE = 0xdeadbeef;

/** A response header (magic 0x81) with `body` after it. */
function response(fields: { opcode?: number; status?: number; opaque?: number; extras?: number }, body = Buffer.alloc(0)): Buffer {
  const header = Buffer.alloc(24);
  header[0] = 0x81;
  header[1] = fields.opcode ?? 0x0b;
  header[4] = fields.extras ?? 0;
  header.writeUInt16BE(fields.status ?? 0, 6);
  header.writeUInt32BE(body.length, 8);
  header.writeUInt32BE(fields.opaque ?? OPAQUE, 12);
  return Buffer.concat([header, body]);
}

describe('binary VERSION', () => {
  it('the request is a bare 24-byte header: magic 0x80, opcode 0x0b, the opaque, nothing else', () => {
    const request = versionRequest(OPAQUE);
    expect(request.length).toBe(24);
    expect(request.toString('hex')).toBe(`800b${'00'.repeat(10)}deadbeef${'00'.repeat(8)}`);
  });

  it('reads the version from the response body, waiting for all of it', () => {
    const whole = response({}, Buffer.from('1.6.18'));
    expect(readVersionResponse(whole, OPAQUE)).toBe('1.6.18');
    expect(readVersionResponse(whole.subarray(0, 10), OPAQUE)).toBeNull();
    expect(readVersionResponse(whole.subarray(0, 27), OPAQUE)).toBeNull();
  });

  it.each([
    [Buffer.from('ERROR\r\n'), 'it answered "ERROR" where a binary response (magic 0x81) was expected'],
    [Buffer.from('HTTP/1.1 400 Bad Request\r\n\r\n'), 'it answered "HTTP/1.1 400 Bad Request" where a binary response'],
    [response({ status: 0x81 }, Buffer.from('Unknown command')), 'it answered VERSION with status 0x0081 (unknown command): "Unknown command"'],
    [response({ opcode: 0x0a }), 'it answered VERSION with a response to opcode 0x0a'],
    [response({ opaque: 1 }), "its response carried another request's opaque"],
  ])('names what is wrong with %j', (bytes, problem) => {
    const outcome = readVersionResponse(bytes, OPAQUE);
    expect(outcome).toBeInstanceOf(Error);
    expect((outcome as Error).message).toContain(problem);
  });
});

describe('percentile (nearest rank)', () => {
  const hundred = Array.from({ length: 100 }, (_, i) => i + 1);
  it('is the smallest value with p% of the values at or below it', () => {
    expect(percentile(hundred, 50)).toBe(50);
    expect(percentile(hundred, 99)).toBe(99);
    expect(percentile(hundred, 100)).toBe(100);
    expect(percentile([7], 50)).toBe(7);
    expect(percentile([1, 2, 3], 99)).toBe(3);
    expect(percentile([1, 2, 3, 4], 50)).toBe(2);
  });
});

describe('formatStep', () => {
  it('one aligned line: the step, ok and what passed, or FAILED and why', () => {
    expect(formatStep({ step: 'ascii', ok: true, summary: 'version 1.6.18', figures: {} })).toBe('ascii       ok      version 1.6.18');
    expect(formatStep({ step: 'round-trip', ok: false, summary: '', figures: {}, error: 'it broke' })).toBe('round-trip  FAILED  it broke');
  });
});
