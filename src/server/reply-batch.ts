/**
 * Replies held until the disk log has the writes they acknowledge, as Redis writes its
 * append-only file before it sends the replies of a turn of its event loop
 * (docs/architecture.md, "Disk storage"): a connection about to send replies while log records
 * are waiting corks its socket; at the end of the turn the log is written, in one write for every
 * connection's commands, and the sockets are uncorked. Replies that acknowledge nothing new
 * (reads) are not held.
 */
import type { ClientSocket } from './client-socket.js';

/** What the batch does with a socket. */
export type Corkable = Pick<ClientSocket, 'cork' | 'uncork' | 'destroyed'>;

export class ReplyBatch {
  private readonly held = new Set<Corkable>();
  private scheduled = false;

  constructor(
    /** whether log records are waiting to be written */
    private readonly recordsWaiting: () => boolean,
    /** writes them (synchronously) */
    private readonly writeRecords: () => void,
  ) {}

  /** Called before replies are written to `socket`: holds them if records are waiting. */
  hold(socket: Corkable): void {
    if (!this.held.has(socket)) {
      if (!this.recordsWaiting()) return;
      socket.cork();
      this.held.add(socket);
    }
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.release());
  }

  /** Writes the records, then lets every held reply go (also called before a socket is ended). */
  release(): void {
    this.scheduled = false;
    this.writeRecords();
    for (const socket of this.held) if (!socket.destroyed) socket.uncork();
    this.held.clear();
  }
}
