/**
 * The socket of a client connection, as a Connection uses it, on libuv's stream handle itself.
 *
 * PHP opens a connection per request (unless persistent connections are on), so what a
 * connection costs the daemon is paid by every PHP request. A net.Socket is a Duplex stream:
 * building one, its stream states, its events, its end and destroy machinery cost the daemon
 * about 75 µs of CPU per connection over loopback, three quarters of what memcached spends on
 * the whole connection (bench/connection-cost.mjs, bench/RESULTS.md).
 *
 * So the client listeners take the handles their server accepts before Node wraps them in a
 * net.Socket (the listening handle's `onconnection`, lib/net.js), and drive each handle as
 * net.Socket does inside: reads into one shared buffer (`useUserBuffer`, the `onread` option of
 * net.Socket), writes with `writeBuffer`/`writev` and a WriteWrap that only waits when the
 * kernel did not take everything at once, `shutdown` to end, `close` to destroy. A client's end
 * of file ends the connection as a net.Socket without allowHalfOpen does.
 *
 * These are Node internals (`process.binding('stream_wrap')`, the handles' methods), not
 * documented. If a Node release changes them, connections go through net.Socket (StreamSocket):
 * slower, never wrong, and logged. `test/client-socket.test.ts` checks both kinds, and that the
 * Node running the tests takes the handle path.
 */
import net from 'node:net';
import { getSystemErrorName } from 'node:util';

/** What a ClientSocket tells the connection it carries. */
export interface SocketReceiver {
  /** What the socket read: lent, valid only until this returns (the buffer is shared). */
  receive(chunk: Buffer): void;
  /** Everything written has been taken by the kernel. */
  drained(): void;
  /** The socket is closed: by the client, by destroy(), after end(), or after an error. */
  closed(): void;
  /** A read or a write failed (the client reset the connection, ...); the socket closes. */
  failed(reason: string): void;
}

export interface ClientSocket {
  /** The client's address (TCP); undefined on a unix socket. */
  readonly remoteAddress: string | undefined;
  readonly destroyed: boolean;
  /** Bytes written that the kernel has not taken yet. */
  readonly writableLength: number;
  readonly paused: boolean;
  /** Starts reading; what happens to the socket from now on goes to `receiver`. */
  start(receiver: SocketReceiver): void;
  write(chunk: Buffer): void;
  /** Holds writes until as many uncork() calls, then sends them together. */
  cork(): void;
  uncork(): void;
  /** Stops reading (back-pressure) until resume(). */
  pause(): void;
  resume(): void;
  /** Sends what was written (once uncorked), then closes; nothing more is written or delivered. */
  end(): void;
  /** Closes at once; what was not sent is dropped. */
  destroy(): void;
}

/** The size libuv suggests for a read, and what Node reads into on its own. */
const READ_BUFFER_SIZE = 64 * 1024;

/**
 * One read buffer for every handle: a read fills it and its callback runs to completion before
 * the event loop does anything else, and what the protocols keep of a chunk they copy
 * (ProtocolHandler.feed).
 */
const sharedReadBuffer = Buffer.allocUnsafeSlow(READ_BUFFER_SIZE);

/** libuv's end of file (uv-errno.h: UV__EOF), the same on every platform. */
const UV_EOF = -4095;

/** A request object of the stream binding: its oncomplete is called with `this` the request. */
interface StreamRequest {
  oncomplete: (this: StreamRequest, status: number) => void;
  socket: HandleSocket;
  /** a write's bytes, and the buffers it must keep alive until the kernel has them */
  bytes: number;
  buffers: Buffer | Buffer[] | null;
}

/** A TCP or Pipe handle, with the methods of Node's StreamBase and HandleWrap used here. */
export interface StreamHandle {
  /** Node asserts that what is set is a function */
  onread: (this: StreamHandle) => void;
  useUserBuffer(buffer: Uint8Array): void;
  readStart(): number;
  readStop(): number;
  writeBuffer(request: StreamRequest, buffer: Buffer): number;
  writev(request: StreamRequest, buffers: Buffer[], allBuffers: true): number;
  shutdown(request: StreamRequest): number;
  close(callback: (this: StreamHandle) => void): void;
  setNoDelay?(on: boolean): number;
  getpeername?(out: { address?: string }): number;
  /** set here: the socket this handle carries */
  clientSocket?: HandleSocket;
}

interface StreamBinding {
  WriteWrap: new () => StreamRequest;
  ShutdownWrap: new () => StreamRequest;
  streamBaseState: Int32Array;
  kReadBytesOrError: number;
  kBytesWritten: number;
  kLastWriteWasAsync: number;
}

const streamBinding: StreamBinding | null = (() => {
  try {
    // process.binding is deprecated for modules outside its allow list; stream_wrap is on it.
    const binding = (process as unknown as { binding(name: string): Partial<StreamBinding> }).binding('stream_wrap');
    const complete = typeof binding.WriteWrap === 'function' && typeof binding.ShutdownWrap === 'function'
      && binding.streamBaseState instanceof Int32Array && typeof binding.kReadBytesOrError === 'number'
      && typeof binding.kBytesWritten === 'number' && typeof binding.kLastWriteWasAsync === 'number';
    return complete ? binding as StreamBinding : null;
  } catch {
    return null;
  }
})();

const HANDLE_METHODS = ['useUserBuffer', 'readStart', 'readStop', 'writeBuffer', 'writev', 'shutdown', 'close'] as const;

/** Whether `handle` has what HandleSocket drives. */
function drivable(handle: unknown): handle is StreamHandle {
  if (typeof handle !== 'object' || handle === null) return false;
  const methods = handle as Record<string, unknown>;
  return HANDLE_METHODS.every((name) => typeof methods[name] === 'function') && 'onread' in methods;
}

/** A receiver until start(): a socket that closes before it has one drops what happens. */
const NO_RECEIVER: SocketReceiver = { receive() {}, drained() {}, closed() {}, failed() {} };

// One function each for every handle and request, not a closure per connection.
function onHandleRead(this: StreamHandle): void {
  this.clientSocket?.onRead(streamBinding!.streamBaseState[streamBinding!.kReadBytesOrError]!);
}
function onHandleClosed(this: StreamHandle): void {
  this.clientSocket?.onClosed();
}
function onWriteDone(this: StreamRequest, status: number): void {
  this.socket.onWriteDone(this, status);
}
function onShutdownDone(this: StreamRequest): void {
  this.socket.destroy();
}

/** A client connection on a libuv stream handle (module comment). */
export class HandleSocket implements ClientSocket {
  destroyed = false;
  writableLength = 0;
  paused = false;
  private receiver = NO_RECEIVER;
  /** end() was called: the write side shuts down once the corked writes are sent */
  private ending = false;
  private corks = 0;
  private corked: Buffer[] = [];
  private peer: string | undefined | null = null;

  constructor(private readonly handle: StreamHandle) {
    handle.clientSocket = this;
    handle.setNoDelay?.(true);
  }

  get remoteAddress(): string | undefined {
    if (this.peer === null) {
      const out: { address?: string } = {};
      this.peer = this.handle.getpeername?.(out) === 0 ? out.address : undefined;
    }
    return this.peer;
  }

  start(receiver: SocketReceiver): void {
    this.receiver = receiver;
    if (this.destroyed) return;
    this.handle.onread = onHandleRead;
    this.handle.useUserBuffer(sharedReadBuffer);
    this.handle.readStart();
  }

  write(chunk: Buffer): void {
    if (this.destroyed || this.ending) return;
    if (this.corks > 0) this.corked.push(chunk);
    else this.send(chunk, chunk.length);
  }

  cork(): void {
    this.corks++;
  }

  uncork(): void {
    if (this.corks === 0 || --this.corks > 0) return;
    this.sendCorked();
    if (this.ending) this.shutdown();
  }

  pause(): void {
    if (this.paused || this.destroyed) return;
    this.paused = true;
    this.handle.readStop();
  }

  resume(): void {
    if (!this.paused || this.destroyed || this.ending) return;
    this.paused = false;
    this.handle.readStart();
  }

  end(): void {
    if (this.destroyed || this.ending) return;
    this.ending = true;
    this.handle.readStop();
    // Corked replies wait for what they acknowledge (reply-batch.ts): the end waits with them.
    if (this.corks === 0) this.shutdown();
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.corked = [];
    this.handle.close(onHandleClosed);
  }

  /** @internal the handle read `result` bytes into the shared buffer, or failed (< 0) */
  onRead(result: number): void {
    if (result > 0) {
      if (!this.destroyed && !this.ending) this.receiver.receive(sharedReadBuffer.subarray(0, result));
    } else if (result === UV_EOF) {
      // The client is done (PHP at the end of a request): as a net.Socket without
      // allowHalfOpen, the connection ends once its replies are sent; with none pending, at once.
      if (this.corks === 0 && this.writableLength === 0) this.destroy();
      else this.end();
    } else if (result < 0) {
      this.fail(result);
    }
  }

  /** @internal */
  onWriteDone(request: StreamRequest, status: number): void {
    this.writableLength -= request.bytes;
    request.buffers = null;
    if (this.destroyed) return;
    if (status < 0) this.fail(status);
    else if (this.writableLength === 0 && !this.ending) this.receiver.drained();
  }

  /** @internal */
  onClosed(): void {
    this.handle.clientSocket = undefined;
    this.receiver.closed();
  }

  private shutdown(): void {
    if (this.destroyed) return;
    // libuv shuts the write side down once the writes queued before it are done.
    const request = new streamBinding!.ShutdownWrap();
    request.socket = this;
    request.oncomplete = onShutdownDone;
    if (this.handle.shutdown(request) !== 0) this.destroy();
  }

  private sendCorked(): void {
    const chunks = this.corked;
    if (chunks.length === 0) return;
    this.corked = [];
    if (chunks.length === 1) {
      this.send(chunks[0]!, chunks[0]!.length);
      return;
    }
    let bytes = 0;
    for (const chunk of chunks) bytes += chunk.length;
    this.send(chunks, bytes);
  }

  private send(buffers: Buffer | Buffer[], bytes: number): void {
    const binding = streamBinding!;
    const request = new binding.WriteWrap();
    request.socket = this;
    request.oncomplete = onWriteDone;
    const error = Array.isArray(buffers) ? this.handle.writev(request, buffers, true) : this.handle.writeBuffer(request, buffers);
    if (error !== 0) {
      this.fail(error);
      return;
    }
    // Written at once (the usual case): the request is done and oncomplete is never called.
    if (binding.streamBaseState[binding.kLastWriteWasAsync] === 0) return;
    request.bytes = bytes;
    request.buffers = buffers;
    this.writableLength += bytes;
  }

  private fail(status: number): void {
    this.receiver.failed(getSystemErrorName(status));
    this.destroy();
  }
}

/** A client connection on a net.Socket: for a Node whose internals HandleSocket cannot drive. */
export class StreamSocket implements ClientSocket {
  private receiver = NO_RECEIVER;

  constructor(private readonly socket: net.Socket) {
    socket.setNoDelay(true);
  }

  get remoteAddress(): string | undefined { return this.socket.remoteAddress; }
  get destroyed(): boolean { return this.socket.destroyed; }
  get writableLength(): number { return this.socket.writableLength; }
  get paused(): boolean { return this.socket.isPaused(); }

  start(receiver: SocketReceiver): void {
    this.receiver = receiver;
    const socket = this.socket;
    socket.on('data', (chunk: Buffer) => this.receiver.receive(chunk));
    socket.on('drain', () => this.receiver.drained());
    socket.on('error', (error: NodeJS.ErrnoException) => {
      this.receiver.failed(error.code ?? error.message);
      socket.destroy();
    });
    socket.on('close', () => this.receiver.closed());
  }

  write(chunk: Buffer): void { this.socket.write(chunk); }
  cork(): void { this.socket.cork(); }
  uncork(): void { this.socket.uncork(); }
  pause(): void { this.socket.pause(); }
  resume(): void { this.socket.resume(); }
  end(): void {
    this.socket.pause();
    this.socket.end(() => this.socket.destroy());
  }
  destroy(): void { this.socket.destroy(); }
}

interface ListeningHandle {
  onconnection: (this: ListeningHandle, error: number, handle: unknown) => void;
}

/**
 * Hands every connection `server` accepts to `accepted`: as a HandleSocket where this Node's
 * internals allow, otherwise as a StreamSocket (through the server's 'connection' event).
 * Call once the server listens. Returns whether connections get handles.
 */
export function acceptClients(server: net.Server, accepted: (socket: ClientSocket) => void): boolean {
  server.on('connection', (socket: net.Socket) => accepted(new StreamSocket(socket)));
  const listening = (server as unknown as { _handle?: ListeningHandle | null })._handle;
  if (streamBinding === null || !listening || typeof listening.onconnection !== 'function') return false;
  const wrapInSocket = listening.onconnection;
  listening.onconnection = function onClientHandle(error: number, handle: unknown): void {
    // An accept error and a handle of a kind not expected take Node's own path.
    if (error !== 0 || !drivable(handle)) wrapInSocket.call(this, error, handle);
    else accepted(new HandleSocket(handle));
  };
  return true;
}
