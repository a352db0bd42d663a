/** Peer addresses as flags and membership carry them: "host:port", "[v6]:port". */
import { ConfigError } from '../../errors.js';

export interface PeerAddress {
  host: string;
  port: number;
}

export function parsePeerAddress(address: string): PeerAddress {
  const match = /^(?:\[([^\]]+)\]|([^:\s]+)):(\d{1,5})$/.exec(address);
  const port = match ? Number(match[3]) : NaN;
  if (match === null || port < 1 || port > 65535) {
    throw new ConfigError(`peer address ${JSON.stringify(address)} is not HOST:PORT (port 1-65535; IPv6 as [ADDR]:PORT)`);
  }
  return { host: match[1] ?? match[2]!, port };
}

export function formatPeerAddress(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
