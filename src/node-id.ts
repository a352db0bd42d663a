/**
 * What a node id is (--node-id): 1 to 64 of [A-Za-z0-9_.-], so it fits a session id's alphabet
 * and a query string unescaped. Config, membership, the peer handshake and minted session ids
 * all check it here.
 */
import { randomBytes } from 'node:crypto';

export type NodeId = string;

export const NODE_ID_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;

/** The rule in words, for messages and help. */
export const NODE_ID_RULE = '1 to 64 of A-Z a-z 0-9 _ . -';

export function isNodeId(value: unknown): value is NodeId {
  return typeof value === 'string' && NODE_ID_PATTERN.test(value);
}

/** A host name made fit for a node id: anything outside the alphabet becomes "-", cut to `max`. */
function hostPart(host: string, max: number): string {
  const name = host.replace(/[^A-Za-z0-9_.-]/g, '-').slice(0, max);
  return name === '' ? 'node' : name;
}

/**
 * The default node id: `${hostname}-${port}`, the host name shortened so the whole fits 64
 * characters. Derived, not random, so it is stable across restarts of the same host and peer
 * port: a restarted node comes back as the same member, and takes back its sessions (rejoin)
 * instead of appearing as a stranger next to its own ghost.
 */
export function defaultNodeId(host: string, port: number): NodeId {
  const suffix = `-${port}`;
  return `${hostPart(host, 64 - suffix.length)}${suffix}`;
}

/**
 * A fresh id for a node with no stable port to derive one from (--peer-listen on port 0 and no
 * --node-id): it is a new member at each start (tests name their nodes; production pins the port).
 */
export function randomNodeId(host: string): NodeId {
  return `${hostPart(host, 50)}-${randomBytes(4).toString('hex')}`;
}
