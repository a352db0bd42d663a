/**
 * Accepted client sockets that read into one shared buffer.
 *
 * A socket a net.Server accepts reads every chunk into a newly allocated Buffer and hands it
 * through the Readable stream machinery to 'data' listeners. Under memcaslap that path cost a
 * fifth of the daemon's CPU per request (bench/RESULTS.md, "Where the daemon's time goes").
 * net.Socket's `onread` option (Node's net docs: "incoming data is stored in a single buffer
 * and passed to the supplied callback") skips both, but net.Server has no way to ask for it.
 *
 * So the server is created with `pauseOnConnect`, and the accepted socket is given, before it
 * reads anything, what the `onread` option would have given it: the fields the constructor sets
 * from it (found by their names on a socket constructed with the option), and the buffer handed
 * to its handle (`useUserBuffer`), as Node's initSocketHandle does (lib/net.js). It was done by
 * moving the handle into a second net.Socket constructed with `onread`; for PHP, which opens a
 * connection per request, building and destroying that second socket cost about 30 µs per
 * connection, an eighth of what a connection costs the daemon.
 *
 * The fields and the handle are Node internals, not documented. If a Node release changes
 * them, the accepted socket reads through 'data': slower, never wrong, and logged.
 * `test/accept.test.ts` checks that the Node running the tests takes the shared buffer.
 */
import net from 'node:net';

/** The size libuv suggests for a read, and what Node reads into on its own. */
const READ_BUFFER_SIZE = 64 * 1024;

/**
 * One buffer for every client socket: a read fills it and its callback runs to completion
 * before the event loop does anything else, and what the protocols keep of a chunk they copy
 * (ProtocolHandler.feed).
 */
const sharedReadBuffer = Buffer.allocUnsafeSlow(READ_BUFFER_SIZE);

/** Gets each chunk a socket reads; the chunk is valid only until it returns. */
export type ChunkListener = (chunk: Buffer) => void;

interface HandleCarrier {
  _handle?: { useUserBuffer?: (buffer: Uint8Array) => void; readStart?: unknown } | null;
}

/** The symbols under which a net.Socket keeps what its `onread` option gave it. */
interface OnreadFields {
  buffer: symbol;
  generator: symbol;
  callback: symbol;
}

const onreadFields: OnreadFields | null = (() => {
  const buffer = Buffer.alloc(1);
  const callback = (): void => {};
  const socket = new net.Socket({ onread: { buffer, callback } } as net.SocketConstructorOpts);
  const probe = socket as unknown as Record<symbol, unknown>;
  const find = (test: (symbol: symbol) => boolean): symbol | null => Object.getOwnPropertySymbols(probe).find(test) ?? null;
  const fields = {
    buffer: find((s) => probe[s] === buffer),
    callback: find((s) => probe[s] === callback),
    generator: find((s) => s.description === 'kBufferGen' && probe[s] === null),
  };
  socket.destroy();
  return fields.buffer !== null && fields.callback !== null && fields.generator !== null ? (fields as OnreadFields) : null;
})();

/**
 * Makes a socket accepted by a server created with `pauseOnConnect: true` deliver what it reads
 * to `onChunk`, and resumes it. Returns whether it reads into the shared buffer (false: through
 * 'data', this Node's internals being other than expected). Nothing is read before the caller's
 * synchronous code has run, so `onChunk` may refer to objects built after this call.
 */
export function adoptAccepted(accepted: net.Socket, onChunk: ChunkListener): boolean {
  const handle = (accepted as unknown as HandleCarrier)._handle;
  if (onreadFields === null || !handle || typeof handle.useUserBuffer !== 'function' || typeof handle.readStart !== 'function') {
    accepted.on('data', onChunk);
    accepted.resume();
    return false;
  }
  const socket = accepted as unknown as Record<symbol, unknown>;
  socket[onreadFields.buffer] = sharedReadBuffer;
  socket[onreadFields.generator] = null;
  socket[onreadFields.callback] = (length: number) => onChunk(sharedReadBuffer.subarray(0, length));
  handle.useUserBuffer(sharedReadBuffer);
  accepted.resume();
  return true;
}
