/**
 * The peer protocol's wire enums. As memberlist says of its message types, "the numeric values
 * are part of the protocol itself": a number, once shipped, never changes meaning and is never
 * reused. New opcodes and error codes are appended with the next free number; a retired one
 * keeps its number, commented as retired. docs/peer-protocol.md carries the same tables.
 */

/** Frame opcodes (the u8 after the frame length). 0 is never sent. */
export enum Opcode {
  /** handshake: {protocolVersion, nonce, maxFrameSize, nodeId}; both sides, first frame */
  Hello = 1,
  /** handshake: HMAC proof of the cluster secret */
  Auth = 2,
  /** handshake: "I verified your proof" */
  AuthOk = 3,
  /** membership gossip: join, heartbeat, leave (JSON payload, low rate) */
  Membership = 4,
  /** a client command forwarded to the session's master */
  Forward = 5,
  /** the master's answer to Forward */
  ForwardReply = 6,
  /** master -> backup: a write to apply */
  Replicate = 7,
  /** backup -> master: the write is applied */
  ReplicateAck = 8,
  /** sessions moving owner (drain, rejoin catch-up) */
  Handoff = 9,
  /** the receiver has stored a Handoff batch */
  HandoffAck = 10,
  /**
   * {offers: [key, version, origin][]}: records about to be sent (a handoff, a scan that copies
   * everything), offered first so that a node that kept them (on disk) is sent only what changed
   */
  Digest = 11,
  /** {need: index[]}: the offers the receiver lacks, or holds in an older version */
  DigestReply = 12,
  /** {code: RemoteErrorCode, message}: a refused handshake, or the answer to a request that failed */
  Error = 13,
  /**
   * a client command forwarded to the session's master, with when it was sent and how long the
   * sender waits: the master refuses it (Error(Refused)) rather than run it after that
   */
  ForwardWithin = 14,
  /**
   * item records for another owner, with when they were sent (their expiries relative to it) and,
   * for a client's write, how long the writer waits: refused (Error(Refused)) after that
   */
  ReplicateTimed = 15,
  /**
   * a ForwardWithin that its sender could not deliver to the session's master itself: the receiver
   * forwards it there, once, if it is not the master (an asymmetric partition)
   */
  ForwardVia = 16,
}

/** Opcodes that belong to the handshake; never dispatched to handlers. */
export const HANDSHAKE_OPCODES: ReadonlySet<number> = new Set([Opcode.Hello, Opcode.Auth, Opcode.AuthOk]);

/** The `code` of an Error frame. Append-only, like Opcode. */
export enum RemoteErrorCode {
  /** this node has no handler for the opcode (a newer peer may probe with one) */
  UnknownOpcode = 1,
  /** the payload could not be decoded */
  BadPayload = 2,
  /** the handler failed (a bug on the answering side) */
  Internal = 3,
  /** the cluster-secret proof did not verify */
  AuthFailed = 4,
  /** the Hello's protocol version is not this node's */
  VersionMismatch = 5,
  /** a frame other than the next handshake step arrived before authentication */
  NotAuthenticated = 6,
  /** the peer claims this node's own id (a node dialed itself, or a reflected handshake) */
  SelfConnection = 7,
  /** a frame above the receiver's maximum frame size; the link is closed after this */
  FrameTooLarge = 8,
  /** the handshake did not finish in time */
  HandshakeTimeout = 9,
  /**
   * this node has TLS on for peer links and the sender spoke plaintext; sent in plaintext, so the
   * sender can read why it is refused, then the connection is closed
   */
  TlsRequired = 10,
  /**
   * the request was not run, and will not be: its deadline passed before it could run, or this
   * node may not acknowledge writes now (it does not reach a majority of the cluster). The sender
   * may send it elsewhere.
   */
  Refused = 11,
}

export function opcodeName(opcode: number): string {
  return Opcode[opcode] ?? `unknown(${opcode})`;
}
