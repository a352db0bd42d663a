/**
 * Addresses as flags, config files and membership carry them: HOST:PORT, [IPv6]:PORT for IPv6
 * addresses, and :PORT for every address. Read and written here only.
 */
import { isIP } from 'node:net';

export interface Endpoint {
  host: string;
  port: number;
}

/** HOST:PORT, [v6]:PORT or :PORT (every address, 0.0.0.0); null if `text` is not one. Port 0 passes. */
export function matchEndpoint(text: string): Endpoint | null {
  const match = /^(?:\[([^\]]+)\]|([^:\s]*)):(\d{1,5})$/.exec(text);
  const port = match ? Number(match[3]) : NaN;
  if (!match || port > 65535) return null;
  const host = match[1] ?? match[2]!;
  return { host: host === '' ? '0.0.0.0' : host, port };
}

/** "host:port", with brackets around an IPv6 address. */
export function formatEndpoint(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** 0.0.0.0, ::, and their longer spellings: "every address", which nobody can dial. */
export function isWildcardHost(host: string): boolean {
  switch (isIP(host)) {
    case 4: return host.split('.').every((part) => Number(part) === 0);
    case 6: return /^[0:]+$/.test(host);
    default: return false;
  }
}
