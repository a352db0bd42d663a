/**
 * The authentication handshake (docs/peer-protocol.md, "Handshake"), as a pure state machine:
 * frames in, frames to send and an outcome out, no socket, so both roles are tested in memory.
 *
 *     dialer                                   acceptor
 *     Hello {v, nonceD, maxD, idD}  ──►  ◄──   Hello {v, nonceA, maxA, idA}
 *     Auth  {proofD}                ──►        verifies proofD, else refuses
 *                                   ◄──        Auth {proofA}, AuthOk
 *     verifies proofA, else refuses
 *     AuthOk                        ──►
 *
 *     proofX = HMAC-SHA256(secret, "session-cluster peer v1" | peerNonce | ownNodeId | ownNonce)
 *
 * Neither side ever sends the secret. The acceptor proves only after the dialer has: otherwise
 * anyone able to reach two nodes could dial one, pass its nonce to the other as a Hello, and
 * replay the proof the other computes. A peer claiming our own node id is refused, which also
 * stops a proof being reflected back to the node that made it. Nonces are 32 bytes, so the MAC
 * input splits one way only.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { NODE_ID_PATTERN } from '../../node-id.js';
import type { NodeId } from '../types.js';
import { MIN_MAX_FRAME_SIZE } from './frame.js';
import { Opcode, RemoteErrorCode } from './opcodes.js';
import { PayloadReader, PayloadWriter, decodeError, encodeError } from './payload.js';

/** Raised only for a change old nodes cannot talk to (frame, handshake, an existing payload). */
export const PROTOCOL_VERSION = 1;
export const AUTH_LABEL = 'session-cluster peer v1';
export const NONCE_SIZE = 32;
export const PROOF_SIZE = 32;
/** A node id, as --node-id accepts it (src/cluster/types.ts). */

export interface Hello {
  protocolVersion: number;
  nonce: Buffer;
  /** the largest frame the sender accepts; the other side refuses to send bigger ones */
  maxFrameSize: number;
  nodeId: NodeId;
}

/**
 * Hello payload: u16 protocolVersion | nonce[32] | u32 maxFrameSize | string16 nodeId, then
 * anything a later version appends (ignored). The version comes first so that a Hello of any
 * version can at least be read far enough to refuse it for the right reason.
 */
export function encodeHello(hello: Hello): Buffer {
  return new PayloadWriter(64).u16(hello.protocolVersion).raw(hello.nonce).u32(hello.maxFrameSize).string16(hello.nodeId).finish();
}

export function decodeHello(payload: Buffer): Hello {
  const reader = new PayloadReader(payload);
  const protocolVersion = reader.u16();
  if (protocolVersion !== PROTOCOL_VERSION) return { protocolVersion, nonce: Buffer.alloc(0), maxFrameSize: 0, nodeId: '' };
  // Copies: the payload is a view into a socket chunk.
  const nonce = Buffer.from(reader.raw(NONCE_SIZE));
  const maxFrameSize = reader.u32();
  const nodeId = reader.string16();
  return { protocolVersion, nonce, maxFrameSize, nodeId };
}

/** HMAC-SHA256(secret, label | peerNonce | ownNodeId | ownNonce). */
export function authProof(secret: Buffer, peerNonce: Buffer, ownNodeId: NodeId, ownNonce: Buffer): Buffer {
  return createHmac('sha256', secret).update(AUTH_LABEL).update(peerNonce).update(ownNodeId, 'utf8').update(ownNonce).digest();
}

export enum HandshakeRole {
  /** opened the connection (a PeerLink) */
  Dialer = 'dialer',
  /** accepted it (the PeerServer) */
  Acceptor = 'acceptor',
}

/** Why a handshake failed; logged and counted. */
export enum Refusal {
  BadSecret = 'bad-secret',
  VersionMismatch = 'version-mismatch',
  BadHello = 'bad-hello',
  SelfConnection = 'self-connection',
  /** a frame other than the next handshake step (or garbage) before authentication */
  UnexpectedFrame = 'unexpected-frame',
  Timeout = 'timeout',
  /** the other side sent an Error frame: it refused us */
  RefusedByPeer = 'refused-by-peer',
  /**
   * the TLS layer under the handshake failed: TLS on one side only, a certificate that does not
   * chain to the CA (peer-tls.ts); decided by PeerConnection and PeerServer, never by Handshake
   */
  Tls = 'tls',
}

/** How far the other side has come in a handshake still under way. */
export enum HandshakeProgress {
  /** nothing readable yet */
  None,
  /** a well-formed Hello of this protocol version: it speaks the protocol, and has proven nothing */
  Hello,
  /** its proof of the cluster secret verified */
  Proven,
}

export interface PeerIdentity {
  nodeId: NodeId;
  protocolVersion: number;
  maxFrameSize: number;
}

export interface OutgoingFrame {
  opcode: Opcode;
  payload: Buffer;
}

export interface HandshakeStep {
  send: OutgoingFrame[];
  /** authenticated: the link is open */
  done?: PeerIdentity;
  /**
   * refused: send `send` (an Error frame, if any), then close. `remoteCode`: the code of the
   * other side's Error frame, when it was the one that refused (RefusedByPeer)
   */
  refused?: { reason: Refusal; detail: string; remoteCode?: number };
}

export interface HandshakeOptions {
  nodeId: NodeId;
  secret: Buffer;
  /** the largest frame this node accepts once authenticated */
  maxFrameSize: number;
  /** injected in tests; 32 random bytes otherwise */
  nonce?: Buffer;
}

enum State {
  AwaitHello,
  AwaitAuth,
  AwaitAuthOk,
  Done,
  Refused,
}

const REFUSAL_ERROR: Record<Refusal, RemoteErrorCode | null> = {
  [Refusal.BadSecret]: RemoteErrorCode.AuthFailed,
  [Refusal.VersionMismatch]: RemoteErrorCode.VersionMismatch,
  [Refusal.BadHello]: RemoteErrorCode.BadPayload,
  [Refusal.SelfConnection]: RemoteErrorCode.SelfConnection,
  [Refusal.UnexpectedFrame]: RemoteErrorCode.NotAuthenticated,
  [Refusal.Timeout]: RemoteErrorCode.HandshakeTimeout,
  [Refusal.RefusedByPeer]: null,
  [Refusal.Tls]: null,
};

export class Handshake {
  readonly nonce: Buffer;
  private state = State.AwaitHello;
  private peer: Hello | null = null;
  private claimed: string | null = null;

  constructor(readonly role: HandshakeRole, private readonly options: HandshakeOptions) {
    this.nonce = options.nonce ?? randomBytes(NONCE_SIZE);
    if (this.nonce.length !== NONCE_SIZE) throw new RangeError(`a nonce is ${NONCE_SIZE} bytes`);
  }

  /** The node id the peer claimed in its Hello (for logs; proven only once done). */
  get claimedNodeId(): string | null {
    return this.claimed;
  }

  get finished(): boolean {
    return this.state === State.Done || this.state === State.Refused;
  }

  get progress(): HandshakeProgress {
    if (this.state === State.AwaitAuth) return HandshakeProgress.Hello;
    if (this.state === State.AwaitAuthOk || this.state === State.Done) return HandshakeProgress.Proven;
    return HandshakeProgress.None;
  }

  /** The first frame, sent by both sides as soon as the connection exists. */
  hello(): OutgoingFrame {
    const { nodeId, maxFrameSize } = this.options;
    return { opcode: Opcode.Hello, payload: encodeHello({ protocolVersion: PROTOCOL_VERSION, nonce: this.nonce, maxFrameSize, nodeId }) };
  }

  /** The connection gave up waiting (the caller's timer). */
  timeout(): HandshakeStep {
    return this.refuse(Refusal.Timeout, 'handshake did not finish in time');
  }

  /** Frame too large for the handshake, or otherwise unreadable. */
  garbage(detail: string): HandshakeStep {
    return this.refuse(Refusal.UnexpectedFrame, detail);
  }

  receive(opcode: number, payload: Buffer): HandshakeStep {
    if (this.finished) throw new Error('Handshake.receive after the handshake finished');
    if (opcode === Opcode.Error) return this.refusedByPeer(payload);
    switch (this.state) {
      case State.AwaitHello:
        if (opcode !== Opcode.Hello) break;
        return this.receiveHello(payload);
      case State.AwaitAuth:
        if (opcode !== Opcode.Auth) break;
        return this.receiveAuth(payload);
      case State.AwaitAuthOk:
        if (opcode !== Opcode.AuthOk) break;
        this.state = State.Done;
        return {
          send: this.role === HandshakeRole.Dialer ? [{ opcode: Opcode.AuthOk, payload: Buffer.alloc(0) }] : [],
          done: { nodeId: this.peer!.nodeId, protocolVersion: this.peer!.protocolVersion, maxFrameSize: this.peer!.maxFrameSize },
        };
    }
    return this.refuse(Refusal.UnexpectedFrame, `opcode ${opcode} before authentication`);
  }

  private receiveHello(payload: Buffer): HandshakeStep {
    let hello: Hello;
    try {
      hello = decodeHello(payload);
    } catch {
      return this.refuse(Refusal.BadHello, 'Hello payload is malformed');
    }
    if (hello.protocolVersion !== PROTOCOL_VERSION) {
      return this.refuse(Refusal.VersionMismatch, `peer speaks protocol version ${hello.protocolVersion}; this node speaks ${PROTOCOL_VERSION}`);
    }
    this.claimed = hello.nodeId;
    if (!NODE_ID_PATTERN.test(hello.nodeId)) return this.refuse(Refusal.BadHello, 'node id is not [A-Za-z0-9_.-]{1,64}');
    if (hello.maxFrameSize < MIN_MAX_FRAME_SIZE) return this.refuse(Refusal.BadHello, `max frame size ${hello.maxFrameSize} is below ${MIN_MAX_FRAME_SIZE}`);
    if (hello.nodeId === this.options.nodeId) return this.refuse(Refusal.SelfConnection, `peer claims this node's own id ${hello.nodeId}`);
    if (hello.nonce.equals(this.nonce)) return this.refuse(Refusal.BadHello, 'peer echoed our nonce');
    this.peer = hello;
    this.state = State.AwaitAuth;
    // The dialer proves first (see the header comment); the acceptor waits for that proof.
    return { send: this.role === HandshakeRole.Dialer ? [this.auth()] : [] };
  }

  private receiveAuth(payload: Buffer): HandshakeStep {
    const peer = this.peer!;
    const expected = authProof(this.options.secret, this.nonce, peer.nodeId, peer.nonce);
    if (payload.length !== PROOF_SIZE || !timingSafeEqual(payload, expected)) {
      return this.refuse(Refusal.BadSecret, 'cluster secret proof did not verify');
    }
    this.state = State.AwaitAuthOk;
    const ok: OutgoingFrame = { opcode: Opcode.AuthOk, payload: Buffer.alloc(0) };
    return { send: this.role === HandshakeRole.Acceptor ? [this.auth(), ok] : [] };
  }

  private auth(): OutgoingFrame {
    return { opcode: Opcode.Auth, payload: authProof(this.options.secret, this.peer!.nonce, this.options.nodeId, this.nonce) };
  }

  private refusedByPeer(payload: Buffer): HandshakeStep {
    this.state = State.Refused;
    try {
      const error = decodeError(payload);
      return { send: [], refused: { reason: Refusal.RefusedByPeer, detail: `code ${error.code}: ${error.message}`, remoteCode: error.code } };
    } catch {
      return { send: [], refused: { reason: Refusal.RefusedByPeer, detail: 'unreadable Error frame' } };
    }
  }

  private refuse(reason: Refusal, detail: string): HandshakeStep {
    this.state = State.Refused;
    const code = REFUSAL_ERROR[reason];
    const send: OutgoingFrame[] = code === null ? [] : [{ opcode: Opcode.Error, payload: encodeError(code, detail) }];
    return { send, refused: { reason, detail } };
  }
}
