/** A pino logger whose lines are kept, parsed, for assertions on what was logged. */
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';

export interface LogLine { level: number; msg: string; [field: string]: unknown }

export function capturedLog(): { log: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line !== '') lines.push(JSON.parse(line) as LogLine);
      done();
    },
  });
  return { log: pino({ level: 'debug' }, sink), lines };
}
