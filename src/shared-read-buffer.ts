/**
 * The one buffer sockets read into, instead of a new Buffer per read passed through the stream
 * machinery: client connections and plain-TCP peer links.
 *
 * A socket reading through 'data' events gets every chunk in a newly allocated Buffer, handed
 * through the Readable stream machinery. Under memcaslap that path cost a fifth of the daemon's
 * CPU per request (bench/RESULTS.md, "Where the daemon's time goes"). net.Socket's `onread`
 * option (Node's net docs: "incoming data is stored in a single buffer and passed to the
 * supplied callback") skips both. A dialled socket takes it directly (net.connect); a socket
 * that a net.Server accepts cannot, so adoptAccepted moves its handle into a net.Socket built
 * with it, the way Node builds accepted sockets itself (lib/net.js, onconnection) plus that
 * option. The server is created with `pauseOnConnect`, and the empty shell it made is
 * destroyed at once, which keeps the server's own connection count right.
 *
 * The handle is `_handle`, which Node does not document. If a Node release changes it, the
 * accepted socket is used as it is, reading through 'data': slower, never wrong, and logged.
 * `test/shared-read-buffer.test.ts` checks that the Node running the tests takes the shared
 * buffer.
 */
import net from 'node:net';

/** The size libuv suggests for a read, and what Node reads into on its own. */
const READ_BUFFER_SIZE = 64 * 1024;

/**
 * One buffer for every socket that reads this way (clients, plain-TCP peer links): a read fills
 * it and its callback runs to completion before the event loop reads again, and what the
 * readers keep of a chunk they copy (ProtocolHandler.feed, PeerConnection.receive).
 */
const sharedReadBuffer = Buffer.allocUnsafeSlow(READ_BUFFER_SIZE);

/** Gets each chunk a socket reads; the chunk is valid only until it returns. */
export type ChunkListener = (chunk: Buffer) => void;

/** net.Socket's `onread` option that reads into the shared buffer and lends each chunk to `onChunk`. */
export function sharedBufferReads(onChunk: ChunkListener): net.OnReadOpts {
  return {
    buffer: sharedReadBuffer,
    callback: (length: number) => {
      onChunk(sharedReadBuffer.subarray(0, length));
      return true; // false would pause the socket; readers pause it themselves when they must
    },
  };
}

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
    onread: sharedBufferReads(onChunk),
  } as net.SocketConstructorOpts);
  accepted.destroy();
  return socket;
}
