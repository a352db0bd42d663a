/** One error base class with a stable `code` per subclass, so callers and tests match on codes. */
export class SessionClusterError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** A setting given on the command line or in the config file that cannot be used. */
export class ConfigError extends SessionClusterError {
  constructor(message: string) {
    super('ERR_CONFIG', message);
  }
}

/** A listener that could not be opened (port in use, socket path taken, no permission). */
export class ListenError extends SessionClusterError {
  constructor(message: string) {
    super('ERR_LISTEN', message);
  }

  /** "cannot listen <what>: <why>", the why in words for the errors operators meet. */
  static from(what: string, error: NodeJS.ErrnoException): ListenError {
    const reason = error.code === 'EADDRINUSE' ? 'address already in use' : error.code === 'EACCES' ? 'permission denied' : error.message;
    return new ListenError(`cannot listen ${what}: ${reason}`);
  }
}

/**
 * A node given --peers joined none of them within --join-timeout-ms: it exits rather than serve
 * alone as if it were the whole cluster. The message names why each peer could not be joined.
 */
export class JoinError extends SessionClusterError {
  constructor(message: string) {
    super('ERR_JOIN', message);
  }
}

/** The start was abandoned on request (a signal while the node waited to join its cluster). */
export class StartAbortedError extends SessionClusterError {
  constructor(message: string) {
    super('ERR_START_ABORTED', message);
  }
}

/**
 * A peer link could not carry a request. The code says what the caller may assume:
 * - never sent, safe to retry elsewhere: ERR_PEER_UNAVAILABLE (no connection right now),
 *   ERR_PEER_BUSY (bounded queue full), ERR_PEER_CLOSED (link closed by its owner),
 *   ERR_PEER_TOO_LARGE (frame above the peer's announced limit);
 * - sent, outcome unknown: ERR_PEER_DISCONNECTED (link dropped before the reply),
 *   ERR_PEER_TIMEOUT (no reply in time);
 * - refused, certainly not run, safe to send elsewhere: ERR_PEER_REFUSED (its deadline passed
 *   before it could run, or the peer may not acknowledge writes now);
 * - answered: ERR_PEER_REMOTE (the peer replied with an Error frame; see remoteCode);
 * - ERR_PEER_PAYLOAD: a payload that cannot be decoded.
 */
export type PeerErrorCode =
  | 'ERR_PEER_UNAVAILABLE'
  | 'ERR_PEER_BUSY'
  | 'ERR_PEER_CLOSED'
  | 'ERR_PEER_TOO_LARGE'
  | 'ERR_PEER_DISCONNECTED'
  | 'ERR_PEER_TIMEOUT'
  | 'ERR_PEER_REMOTE'
  | 'ERR_PEER_REFUSED'
  | 'ERR_PEER_PAYLOAD';

export class PeerError extends SessionClusterError {
  constructor(code: PeerErrorCode, message: string, readonly remoteCode?: number) {
    super(code, message);
  }

  declare readonly code: PeerErrorCode;
}
