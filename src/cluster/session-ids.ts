/**
 * Minting and describing session ids (docs/architecture.md, "Placement", minted ids). This node mints:
 * it is the master of every id it mints, so with a sticky load balancer the session's reads stay
 * on the node PHP talks to; the backup is the least-loaded other live node.
 */
import { randomBytes } from 'node:crypto';
import type { CounterDefs } from '../stats/registry.js';
import type { ClusterView } from './cluster-view.js';
import { MAX_REVISION, mintSessionId, type ClusterSecret } from './placement/session-id.js';
import type { NodeId } from './types.js';

export interface SessionIdsOptions {
  view: ClusterView;
  secret: ClusterSecret;
  /** the items a member last reported holding (membership heartbeats); undefined if unknown */
  loadOf: (member: NodeId) => number | undefined;
  /** the CSPRNG; crypto.randomBytes unless a test injects one */
  random?: (size: number) => Uint8Array;
}

export class SessionIdCounters {
  minted = 0;
  rehomed = 0;
}

export const SESSION_ID_STATS: CounterDefs<SessionIdCounters> = {
  minted: { name: 'session_ids_minted', type: 'counter', help: 'session ids minted here for new sessions (the php-client\'s __session_cluster__.mint)' },
  rehomed: { name: 'session_ids_rehomed', type: 'counter', help: 'session ids minted here to re-home a session after its master failed' },
};

/** What placement says of one session id: the `__session_cluster__.owners.<id>` answer. */
export interface SessionIdOwners {
  kind: 'minted' | 'hashed';
  /** who serves the session now */
  master: NodeId | null;
  backup: NodeId | null;
  /** minted ids only: the owners the id names, and its revision */
  named?: { master: NodeId; backup: NodeId | null; revision: number };
}

export class SessionIds {
  readonly counters = new SessionIdCounters();
  /**
   * Backups assigned since each member's last load report. Loads arrive once per heartbeat, so
   * without this a burst of new sessions would all get the same "least-loaded" backup.
   */
  private readonly assignedSinceReport = new Map<NodeId, { reported: number; assigned: number }>();
  private readonly random: (size: number) => Uint8Array;

  constructor(private readonly options: SessionIdsOptions) {
    this.random = options.random ?? randomBytes;
  }

  /**
   * A new id whose master is this node. `rehomeOf`: the id of a session being moved here after a
   * failover; a minted one passes on its revision + 1, so ownership changes stay ordered.
   */
  mint(rehomeOf?: string): string {
    const { view, secret } = this.options;
    let revision = 0;
    if (rehomeOf !== undefined) {
      const previous = view.minted(rehomeOf);
      if (previous !== null) revision = Math.min(previous.revision + 1, MAX_REVISION);
      this.counters.rehomed++;
    } else {
      this.counters.minted++;
    }
    return mintSessionId({ master: view.self, backup: this.chooseBackup(), revision, secret, random: this.random });
  }

  describe(id: string): SessionIdOwners {
    const { view } = this.options;
    const { master, backup } = view.ownersOfId(id);
    const named = view.minted(id);
    if (named === null) return { kind: 'hashed', master, backup };
    return { kind: 'minted', master, backup, named: { master: named.master, backup: named.backup, revision: named.revision } };
  }

  /** True when the cluster minted `id` (its tag verifies under the cluster secret). */
  isMinted(id: string): boolean {
    return this.options.view.minted(id) !== null;
  }

  /** The live member other than this node holding the fewest items (ties: lowest id); null when alone. */
  leastLoadedOther(): NodeId | null {
    return this.leastLoaded((member) => this.options.loadOf(member) ?? 0);
  }

  /** As leastLoadedOther, counting the backups assigned since each member's last report. */
  private chooseBackup(): NodeId | null {
    const best = this.leastLoaded((member) => {
      const reported = this.options.loadOf(member) ?? 0;
      let entry = this.assignedSinceReport.get(member);
      if (entry === undefined || entry.reported !== reported) {
        entry = { reported, assigned: 0 };
        this.assignedSinceReport.set(member, entry);
      }
      return reported + entry.assigned;
    });
    if (best !== null) this.assignedSinceReport.get(best)!.assigned++;
    return best;
  }

  /** The live member other than this node with the lowest `load` (ties: lowest id); null when alone. */
  private leastLoaded(load: (member: NodeId) => number): NodeId | null {
    let best: NodeId | null = null;
    let bestLoad = Infinity;
    for (const member of this.options.view.liveOthers()) {
      const value = load(member);
      if (value < bestLoad) {
        best = member;
        bestLoad = value;
      }
    }
    return best;
  }
}
