/**
 * The operator's questions, asked over the client port as `stats` groups of our own (memcached's
 * extension point: `stats items`, `stats slabs`, `stats settings` ...), so that they travel both
 * protocols, any node answers them, and whatever reaches PHP's port reaches them, behind the same
 * allow-list and SASL (docs/operations.md, "Command line"):
 *
 *   stats members                every member this node knows: id, state, peer address
 *   stats node <id> [group ...]  the same question, answered by member <id> (over the peer link)
 *   stats key <key>              the key's master and backup, and this node's copy of it
 *   stats roles                  sessions this node masters and backs up; copies still to be made
 *   stats sessions               starts a listing of the sessions held here: its id and size
 *   stats sessions <id> <count>  the next page of that listing
 *   stats drain [status]         hands this node's sessions over and leaves (the process stays)
 *   stats undrain                back into the cluster after a drain
 *   stats locks held <key>...    which of these lock keys this node's client connections hold
 *                                (asked by the other nodes when a member dies: dead-node-locks.ts)
 *
 * A malformed group is answered ERROR, as memcached answers a stats group it does not know.
 */
import type { DrainReport } from '../cluster/cluster-node.js';
import type { KeyOwners, MemberInfo, NodeId, Owner } from '../cluster/types.js';
import { MemberState } from '../cluster/types.js';
import type { Command, Reply } from '../protocol/types.js';
import { LockStyle, lockStyleOf } from '../session-locks/lock-keys.js';
import type { Item } from '../store/change.js';
import type { MemoryStore } from '../store/memory-store.js';
import { SessionListings } from './session-listings.js';

type Execute = (command: Command) => Reply | Promise<Reply>;
type Entries = Array<[string, string]>;

/** What the operator groups need of a cluster node; absent on a single node. */
export interface AdminCluster {
  readonly self: NodeId;
  members(): MemberInfo[];
  owners(key: string): KeyOwners;
  /** `stats <args>` answered by `member` */
  ask(member: Owner, args: string[]): Promise<Reply>;
  /** whether re-replication still has copies to make */
  copiesPending(): boolean;
  /** starts a drain (throws with the reason when it cannot), or says where the one under way is */
  drain(): DrainReport;
  drainStatus(): DrainReport;
  undrain(): DrainReport;
}

export interface AdminOptions {
  store: MemoryStore;
  nodeId: NodeId;
  /** the session key prefix (--session-prefix), to tell lock keys from sessions */
  sessionPrefix: string;
  cluster: AdminCluster | null;
  /**
   * --disable-cachedump: listings name every session id, as `stats cachedump` does, so the same
   * guard refuses them (the subcommands that list sessions then say so)
   */
  disableListings?: boolean;
  /** whether this node's client connections hold the lock `key` */
  holdsLock?: (key: string) => boolean;
  now?: () => number;
}

export enum Role {
  Master = 'master',
  Backup = 'backup',
  /** held here, owned elsewhere: a copy re-replication has yet to drop */
  Other = 'other',
}

export class AdminCommands {
  private readonly listings: SessionListings;
  private readonly now: () => number;

  constructor(private readonly options: AdminOptions) {
    this.now = options.now ?? Date.now;
    this.listings = new SessionListings(this.now);
  }

  /** Answers an operator group; passes every other command to `next`. */
  execute(command: Command, next: Execute): Reply | Promise<Reply> {
    if (command.kind !== 'stats') return next(command);
    const [group, ...rest] = command.args;
    switch (group) {
      case 'members':
        return rest.length === 0 ? stats(this.memberEntries()) : ERROR;
      case 'node':
        return this.handleNode(rest, next);
      case 'key':
        return rest.length === 1 ? stats(this.keyEntries(rest[0]!)) : ERROR;
      case 'roles':
        return rest.length === 0 ? stats(this.roleEntries()) : ERROR;
      case 'sessions':
        return this.handleSessions(rest);
      case 'drain':
      case 'undrain':
        return this.handleDrain(group, rest);
      case 'locks':
        return this.handleLocks(rest);
      default:
        return next(command);
    }
  }

  /** Who does what with `key`, as this node's placement says. */
  roleOf(key: string): Role {
    const cluster = this.options.cluster;
    if (cluster === null) return Role.Master;
    const { master, backup } = cluster.owners(key);
    return master?.id === cluster.self ? Role.Master : backup?.id === cluster.self ? Role.Backup : Role.Other;
  }

  private handleNode(args: string[], next: Execute): Reply | Promise<Reply> {
    const [id, ...question] = args;
    // One hop only: a relayed question is never relayed again.
    if (id === undefined || question[0] === 'node') return ERROR;
    const cluster = this.options.cluster;
    if (id === this.options.nodeId || id === cluster?.self) return this.execute({ kind: 'stats', args: question }, next);
    if (cluster === null) return serverError(`no member ${id}: this is a single node (${this.options.nodeId})`);
    const member = cluster.members().find((m) => m.id === id);
    if (member === undefined) return serverError(`no member ${id} in this cluster`);
    if (member.state === MemberState.Left || member.state === MemberState.Dead) return serverError(`member ${id} is ${member.state}`);
    return cluster.ask({ id, address: member.peerAddress }, question).catch((error: unknown) => serverError(`member ${id} did not answer: ${(error as Error).message}`));
  }

  /** `member <id> <state> <peer address>`, this node first; a single node lists itself with no address. */
  private memberEntries(): Entries {
    const cluster = this.options.cluster;
    if (cluster === null) return [['member', `${this.options.nodeId} alive -`]];
    const members = cluster.members();
    const self = members.filter((m) => m.id === cluster.self);
    return [...self, ...members.filter((m) => m.id !== cluster.self)].map((m) => ['member', `${m.id} ${m.state} ${m.peerAddress}`]);
  }

  private keyEntries(key: string): Entries {
    const cluster = this.options.cluster;
    const self = cluster?.self ?? this.options.nodeId;
    const owners = cluster?.owners(key) ?? { master: { id: self, address: '' }, backup: null };
    const entries: Entries = [['node', self], ['master', owners.master?.id ?? 'none'], ['backup', owners.backup?.id ?? 'none']];
    const item = this.options.store.inspect(key, this.now());
    if (item === undefined) return [...entries, ['held', 'no']];
    const lock = this.lockState(item);
    return [
      ...entries, ['held', 'yes'], ['role', this.roleOf(key)], ['bytes', String(item.valueLength)], ['flags', String(item.flags)],
      ['exptime', String(unixSeconds(item.expiresAt, Math.ceil))], ['created', String(unixSeconds(this.createdAt(item), Math.floor))],
      ['version', String(item.version)], ['origin', item.origin], ['cas', String(item.cas)],
      ...(lock === null ? [] : [['lock', lock] as [string, string]]),
    ];
  }

  /**
   * For a lock key: whether the lock is held. php-memcached's is held while its key exists; pecl
   * memcache releases its lock by setting it to 0, and holds it while it is not (lock-keys.ts).
   */
  private lockState(item: Item): 'held' | 'free' | null {
    const style = lockStyleOf(item.key, this.options.sessionPrefix);
    if (style === null) return null;
    if (style === LockStyle.Memcached) return 'held';
    // A lock's value is a digit or two, and recently written: in memory, not read back from disk.
    return item.value.toString('latin1').trim() === '0' ? 'free' : 'held';
  }

  private roleEntries(): Entries {
    const counts = { sessions: { master: 0, backup: 0, other: 0 }, locks: { master: 0, backup: 0, other: 0 } };
    for (const item of this.options.store.liveItems(this.now())) {
      const kind = lockStyleOf(item.key, this.options.sessionPrefix) === null ? counts.sessions : counts.locks;
      kind[this.roleOf(item.key)]++;
    }
    const pending = this.options.cluster?.copiesPending() ?? false;
    return [
      ['node', this.options.cluster?.self ?? this.options.nodeId],
      ['sessions_mastered', String(counts.sessions.master)], ['sessions_backed_up', String(counts.sessions.backup)],
      ['sessions_other', String(counts.sessions.other)],
      ['locks_mastered', String(counts.locks.master)], ['locks_backed_up', String(counts.locks.backup)],
      ['copies_pending', pending ? 'yes' : 'no'],
    ];
  }

  private handleSessions(args: string[]): Reply {
    if (this.options.disableListings === true) return { kind: 'notAllowed', message: 'stats sessions not allowed' };
    const now = this.now();
    if (args.length === 0) {
      const keys: string[] = [];
      for (const item of this.options.store.liveItems(now)) keys.push(item.key);
      return stats([['listing', String(this.listings.start(keys))], ['keys', String(keys.length)]]);
    }
    const id = Number(args[0]);
    const count = Number(args[1]);
    if (args.length !== 2 || !Number.isSafeInteger(id) || !Number.isSafeInteger(count) || count <= 0) return ERROR;
    const page = this.listings.page(id, count, (key) => this.options.store.inspect(key, now));
    if (page === null) return serverError(`no listing ${args[0]}: it ended, or was dropped after a minute unread`);
    const entries: Entries = page.items.map((item) => ['item', this.itemLine(item)]);
    entries.push(['remaining', String(page.remaining)]);
    return stats(entries);
  }

  /**
   * `<key> <role> <bytes> <exptime> <created> <version>`, and for a lock key `held` or `free`:
   * what a listing says of one item.
   */
  private itemLine(item: Item): string {
    const lock = this.lockState(item);
    return `${item.key} ${this.roleOf(item.key)} ${item.valueLength} ${unixSeconds(item.expiresAt, Math.ceil)} ${unixSeconds(this.createdAt(item), Math.floor)} ${item.version}${lock === null ? '' : ` ${lock}`}`;
  }

  /**
   * When the session was first held here; for a lock key, when the lock was taken. pecl memcache
   * takes a lock by incrementing the key it released to 0, so its take is the key's newest write.
   */
  private createdAt(item: Item): number {
    return lockStyleOf(item.key, this.options.sessionPrefix) === LockStyle.Memcache ? item.writtenAt : item.createdAt;
  }

  /**
   * `locks held <key>...`: `held <key>` for each of the keys a client connection here holds. Only
   * keys the asker names are answered: the question lists no session id it did not know.
   */
  private handleLocks(args: string[]): Reply {
    const [what, ...keys] = args;
    if (what !== 'held' || keys.length === 0) return ERROR;
    const holds = this.options.holdsLock ?? (() => false);
    return stats(keys.filter((key) => holds(key)).map((key) => ['held', key]));
  }

  private handleDrain(group: 'drain' | 'undrain', args: string[]): Reply {
    const cluster = this.options.cluster;
    if (cluster === null) return serverError('a single node has nothing to drain to: drain works on cluster nodes (--peer-listen)');
    let report: DrainReport;
    if (group === 'undrain') {
      if (args.length !== 0) return ERROR;
      report = cluster.undrain();
    } else if (args.length === 1 && args[0] === 'status') {
      report = cluster.drainStatus();
    } else if (args.length === 0) {
      try {
        report = cluster.drain();
      } catch (error) {
        return serverError(`cannot drain: ${(error as Error).message}`);
      }
    } else {
      return ERROR;
    }
    return stats([
      ['state', report.state], ['items', String(report.items)], ['copies', String(report.copies)], ['acknowledged', String(report.acknowledged)],
      ['outcome', report.outcome ?? 'none'], ['replacement', report.replacement ?? 'none'],
    ]);
  }
}

const ERROR: Reply = { kind: 'unknownStats' };

function stats(entries: Entries): Reply {
  return { kind: 'stats', entries };
}

function serverError(message: string): Reply {
  return { kind: 'serverError', message };
}

/** ms since the epoch as unix seconds; 0 stays 0 (never expires). */
function unixSeconds(ms: number, round: (x: number) => number): number {
  return ms === 0 ? 0 : round(ms / 1000);
}
