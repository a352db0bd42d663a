/**
 * Opens a connection to a node (TCP or unix socket) for a subcommand, or fails with the one line
 * an operator reads: refused, no such socket, unknown host, no answer in time.
 */
import net from 'node:net';
import { CliError } from './cli-error.js';
import { describeNode, type NodeAddress } from './node-address.js';

export function connectSocket(address: NodeAddress, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = 'path' in address ? net.connect(address.path) : net.connect(address.port, address.host);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new CliError(`cannot reach ${describeNode(address)}: no answer in ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(new CliError(`cannot reach ${describeNode(address)}: ${connectFailure(error)}`));
    });
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      socket.setNoDelay(true);
      resolve(socket);
    });
  });
}

function connectFailure(error: NodeJS.ErrnoException): string {
  switch (error.code) {
    case 'ECONNREFUSED': return 'connection refused (is the daemon running, and on this address?)';
    case 'ENOENT': return 'no such socket';
    case 'EACCES': return 'permission denied';
    case 'ENOTFOUND': case 'EAI_AGAIN': return 'unknown host';
    default: return error.code ?? error.message;
  }
}

/**
 * What a server that is not memcached said, for a message: its first line (at most 80
 * characters), quoted with JSON's escapes so that control bytes stay visible.
 */
export function firstLineOf(bytes: Buffer): string {
  const text = bytes.toString('latin1');
  const end = text.search(/\r?\n/);
  return JSON.stringify((end < 0 ? text : text.slice(0, end)).slice(0, 80));
}
