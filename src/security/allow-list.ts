/**
 * --allow: the client addresses the client port accepts connections from, as CIDR blocks. For the
 * clients that cannot authenticate (pecl memcache): only the web servers' addresses reach the
 * sessions. Checked once per connection, at accept; a unix socket is governed by its file mode
 * instead (--socket-mode).
 */
import net from 'node:net';

/** One block of an allow-list, as written. */
export interface AllowedBlock {
  readonly address: string;
  readonly prefix: number;
  readonly family: 'ipv4' | 'ipv6';
}

/** Parses "10.0.0.0/24" or a single address ("10.0.0.5" is 10.0.0.5/32); null when it is neither. */
export function parseBlock(text: string): AllowedBlock | null {
  const [address, prefixText, extra] = text.split('/');
  if (address === undefined || extra !== undefined) return null;
  const version = net.isIP(address);
  if (version === 0) return null;
  const bits = version === 4 ? 32 : 128;
  const prefix = prefixText === undefined ? bits : /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : NaN;
  if (!(prefix >= 0 && prefix <= bits)) return null;
  return { address, prefix, family: version === 4 ? 'ipv4' : 'ipv6' };
}

export class AllowList {
  private readonly list = new net.BlockList();

  constructor(readonly blocks: readonly AllowedBlock[]) {
    for (const block of blocks) this.list.addSubnet(block.address, block.prefix, block.family);
  }

  /** Whether a connection from `remote` (a socket's remoteAddress) is allowed. */
  allows(remote: string | undefined): boolean {
    if (remote === undefined) return false;
    // A dual-stack listener sees IPv4 clients as IPv4-mapped IPv6 addresses.
    const mapped = remote.startsWith('::ffff:') && net.isIPv4(remote.slice(7)) ? remote.slice(7) : remote;
    return this.list.check(mapped, net.isIPv4(mapped) ? 'ipv4' : 'ipv6');
  }

  toString(): string {
    return this.blocks.map((b) => `${b.address}/${b.prefix}`).join(',');
  }
}

/** Whether `host` (a listen address) is reachable from this machine only. */
export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}
