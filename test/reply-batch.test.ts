/** Replies held until the disk log has the writes they acknowledge (src/server/reply-batch.ts). */
import { describe, expect, it } from 'vitest';
import { type Corkable, ReplyBatch } from '../src/server/reply-batch.js';

/** What the batch does to a socket, in order, beside when the records were written. */
function setup(waiting: { records: boolean }) {
  const events: string[] = [];
  const socket = (name: string): Corkable => ({
    destroyed: false,
    cork: () => { events.push(`cork ${name}`); },
    uncork: () => { events.push(`uncork ${name}`); },
  });
  const batch = new ReplyBatch(() => waiting.records, () => { events.push('write records'); waiting.records = false; });
  return { events, socket, batch };
}

const turn = () => new Promise((resolve) => setImmediate(resolve));

describe('ReplyBatch', () => {
  it('replies that acknowledge no waiting record go at once', async () => {
    const { events, socket, batch } = setup({ records: false });
    batch.hold(socket('a'));
    await turn();
    expect(events).toEqual([]);
  });

  it('replies of every connection in a turn wait for one write of the records, then go', async () => {
    const waiting = { records: true };
    const { events, socket, batch } = setup(waiting);
    const a = socket('a');
    batch.hold(a);
    batch.hold(socket('b'));
    batch.hold(a);
    expect(events).toEqual(['cork a', 'cork b']);
    await turn();
    expect(events).toEqual(['cork a', 'cork b', 'write records', 'uncork a', 'uncork b']);
  });

  it('release() lets them go at once (a connection about to end)', () => {
    const { events, socket, batch } = setup({ records: true });
    batch.hold(socket('a'));
    batch.release();
    expect(events).toEqual(['cork a', 'write records', 'uncork a']);
  });
});
