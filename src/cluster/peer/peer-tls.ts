/**
 * TLS on peer links, for links that cross hosts: they carry session data, which is personal data
 * (docs/security.md; docs/peer-protocol.md, "TLS"). Mutual: each side presents its certificate (--peer-tls-cert, --peer-tls-key) and accepts only a peer whose
 * certificate chains to --peer-tls-ca. The cluster-secret handshake (handshake.ts) runs inside
 * TLS, unchanged: TLS keeps the frames secret and intact, the handshake still proves the secret
 * and the node id.
 */
import tls from 'node:tls';

export interface PeerTlsCredentials {
  /** PEM certificate chain this node presents */
  cert: Buffer;
  /** PEM private key of the chain's first certificate */
  key: Buffer;
  /** PEM CA bundle a peer's certificate must chain to */
  ca: Buffer;
}

/** RFC 8996 retires TLS 1.0 and 1.1. Node's default today, stated so it cannot drift lower. */
export const PEER_TLS_MIN_VERSION = 'TLSv1.2';

/**
 * The first byte of a TLS connection: a record of type handshake(22), RFC 8446 §5.1 (and RFC
 * 5246 §6.2.1 for 1.2). A peer frame never starts with it: its u32 length would be above 350 MB.
 */
export const TLS_HANDSHAKE_RECORD = 0x16;

/**
 * Peers are dialed by the address they announce (an IP address, usually), not by a name their
 * certificate could carry, so the name is not checked. Identity is proven by the chain to the
 * cluster's own CA, then by the HMAC handshake on the cluster secret, which still runs inside TLS
 * and checks the node id. The chain itself is still verified (rejectUnauthorized).
 */
const acceptAnyName = (): undefined => undefined;

export class PeerTls {
  private readonly context: tls.SecureContext;
  private readonly serverOptions: tls.TlsOptions;

  constructor(credentials: PeerTlsCredentials) {
    const { cert, key, ca } = credentials;
    this.context = tls.createSecureContext({ cert, key, ca, minVersion: PEER_TLS_MIN_VERSION });
    this.serverOptions = { cert, key, ca, minVersion: PEER_TLS_MIN_VERSION, requestCert: true, rejectUnauthorized: true };
  }

  /** Dials a peer. The socket emits 'secureConnect' once the peer's certificate is verified. */
  connect(host: string, port: number): tls.TLSSocket {
    return tls.connect({ host, port, secureContext: this.context, rejectUnauthorized: true, checkServerIdentity: acceptAnyName });
  }

  /**
   * A TLS server for one accepted connection: hand it the socket with
   * `server.emit('connection', socket)`; it emits 'secureConnection' with the verified TLS
   * socket, or 'tlsClientError'. One per connection, so those events belong to that connection
   * alone (Node gives no public way from a shared server's TLS socket back to the accepted one,
   * whose address the refusal must be logged with). It costs about 2 ms of CPU to build, once
   * per peer connection; peer connections are few and long-lived.
   */
  serverForOneConnection(): tls.Server {
    return new tls.Server(this.serverOptions);
  }
}

/** Why a TLS handshake failed, for the log; `mismatch` when one side does not speak TLS at all. */
export interface TlsFailure {
  mismatch: boolean;
  detail: string;
}

export const ONE_SIDED_TLS_ADVICE = 'TLS is on on one side only: give every node --peer-tls-cert, --peer-tls-key and --peer-tls-ca, or none of them';

/**
 * Describes a failed TLS handshake from the error Node reported and the certificate verdict.
 * `authorizationError` is the peer certificate's verification error code, when there was one.
 */
export function describeTlsFailure(error: Error | null, authorizationError: unknown, side: 'dialer' | 'acceptor'): TlsFailure {
  const { code, reason } = (error ?? {}) as { code?: string; reason?: string };
  if (code === 'ERR_SSL_WRONG_VERSION_NUMBER' || reason === 'wrong version number' || /wrong version number/.test(error?.message ?? '')) {
    const where = side === 'dialer' ? 'the peer does not speak TLS (it answered in plaintext)' : 'the peer does not speak TLS';
    return { mismatch: true, detail: `${where}; ${ONE_SIDED_TLS_ADVICE}` };
  }
  if (typeof authorizationError === 'string' && authorizationError !== '') {
    return { mismatch: false, detail: `the peer's certificate was refused (${authorizationError}): it must chain to this node's --peer-tls-ca` };
  }
  if (code === 'ECONNRESET' || code === 'EPIPE' || error === null) {
    return { mismatch: false, detail: 'the peer closed the connection during the TLS handshake: it may not trust this node\'s certificate (it must chain to the peer\'s --peer-tls-ca)' };
  }
  return { mismatch: false, detail: `TLS handshake failed: ${code ?? 'error'}: ${reason ?? error?.message ?? ''}` };
}
