/**
 * Accepted client sockets that read into one shared buffer.
 *
 * A socket a net.Server accepts reads every chunk into a newly allocated Buffer and hands it
 * through the Readable stream machinery to 'data' listeners. Under memcaslap that path cost a
 * fifth of the daemon's CPU per request (bench/RESULTS.md, "Where the daemon's time goes").
 * net.Socket's `onread` option (Node's net docs: "incoming data is stored in a single buffer
 * and passed to the supplied callback") skips both, but net.Server has no way to ask for it.
 * So the server is created with `pauseOnConnect`, and the accepted socket's handle is moved
 * into a net.Socket constructed with `onread`, the way Node builds accepted sockets itself
 * (lib/net.js, onconnection) plus that option. The empty shell the server made is destroyed
 * at once, which keeps the server's own connection count right.
 *
 * The handle is `_handle`, which Node does not document. If a Node release changes it, the
 * accepted socket is used as it is, reading through 'data': slower, never wrong, and logged.
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
  _handle?: { useUserBuffer?: unknown; readStart?: unknown } | null;
}

/**
 * Takes a socket accepted by a server created with `pauseOnConnect: true` and returns the
 * socket to use in its place, which delivers what it reads to `onChunk`. The returned socket
 * is `accepted` itself only when this Node cannot move the handle. Nothing is read before the
 * caller's synchronous code has run, so `onChunk` may refer to objects built after this call.
 */
export function adoptAccepted(accepted: net.Socket, onChunk: ChunkListener): net.Socket {
  const carrier = accepted as unknown as HandleCarrier;
  const handle = carrier._handle;
  if (!handle || typeof handle.useUserBuffer !== 'function' || typeof handle.readStart !== 'function') {
    accepted.on('data', onChunk);
    accepted.resume();
    return accepted;
  }
  carrier._handle = null;
  const socket = new net.Socket({
    handle,
    readable: true,
    writable: true,
    onread: { buffer: sharedReadBuffer, callback: (length: number) => onChunk(sharedReadBuffer.subarray(0, length)) },
  } as net.SocketConstructorOpts);
  accepted.destroy();
  return socket;
}
