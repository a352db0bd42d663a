/**
 * Where a subcommand finds a node: the same address syntax as php.ini's session.save_path, so
 * an operator can paste what PHP uses. host:port, [v6]:port, tcp://host:port (pecl memcache),
 * unix:/path, unix:///path and a bare /path (a unix socket).
 */
import { formatEndpoint, matchEndpoint } from '../address.js';
import { usageError } from './cli-error.js';

export type NodeAddress = { host: string; port: number } | { path: string };

export const DEFAULT_NODE = '127.0.0.1:11211';

export function parseNodeAddress(text: string): NodeAddress {
  const trimmed = text.trim();
  if (trimmed.startsWith('unix:') || trimmed.startsWith('/')) {
    const path = trimmed.replace(/^unix:(\/\/)?/, '');
    if (!path.startsWith('/')) throw usageError(`not a node address: "${text}" (a unix socket is unix:/absolute/path)`);
    return { path };
  }
  const endpoint = matchEndpoint(trimmed.replace(/^tcp:\/\//, ''));
  if (endpoint === null || endpoint.port === 0 || endpoint.host === '0.0.0.0') {
    throw usageError(`not a node address: "${text}" (expected host:port, as in php.ini, or unix:/path)`);
  }
  return endpoint;
}

export function describeNode(address: NodeAddress): string {
  return 'path' in address ? `unix:${address.path}` : formatEndpoint(address.host, address.port);
}

/** The options every subcommand that talks to a node has: --node and --json. */
export interface NodeOptions {
  node: string;
  json?: boolean;
  /** a user of the node's --auth-file; its password comes from SESSION_CLUSTER_PASSWORD */
  user?: string;
}

export function nodeOptions<T extends { option: (flags: string, description: string, defaultValue?: string) => T }>(command: T): T {
  return command
    .option('--node <addr>', 'the node to ask, as in php.ini: host:port or unix:/path', DEFAULT_NODE)
    .option('--user <name>', 'log in as this user of the node\'s --auth-file; the password is read from SESSION_CLUSTER_PASSWORD')
    .option('--json', 'print one JSON document, for scripts');
}
