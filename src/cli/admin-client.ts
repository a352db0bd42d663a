/**
 * The operator's groups of `stats` (src/admin/admin-commands.ts) as typed calls, over one
 * connection to one node, which relays what it is asked of other members (`stats node`).
 */
import { AsciiClient, type Credentials } from './ascii-client.js';
import { CliError, usageError } from './cli-error.js';
import { describeNode, type NodeAddress, type NodeOptions, parseNodeAddress } from './node-address.js';

export interface Member {
  id: string;
  state: string;
  /** '' for a single node */
  peerAddress: string;
}

export interface KeyInfo {
  node: string;
  master: string | null;
  backup: string | null;
  /** this node's copy, when it holds one */
  copy: { role: string; bytes: number; flags: number; exptime: number; created: number; version: number; lock: 'held' | 'free' | null } | null;
}

export interface ListedItem {
  /** the member that listed it */
  node: string;
  key: string;
  role: string;
  bytes: number;
  /** unix seconds, 0: never */
  exptime: number;
  created: number;
  version: number;
  /** for a lock key: whether the lock is held (pecl memcache keeps a released lock as 0) */
  lock: 'held' | 'free' | null;
}

export interface DrainStatus {
  state: 'serving' | 'draining' | 'drained' | 'rejoining';
  items: number;
  copies: number;
  acknowledged: number;
  outcome: string;
  replacement: string;
}

/** How many sessions each listing page asks for. */
const PAGE = 1000;

export class AdminClient {
  private constructor(readonly client: AsciiClient) {}

  static async connect(address: NodeAddress, credentials: Credentials | null = null, timeoutMs = 15_000): Promise<AdminClient> {
    const client = await AsciiClient.connect(address, timeoutMs);
    const admin = new AdminClient(client);
    // A memcached (or an older daemon) answers our groups ERROR: say what it is instead.
    try {
      if (credentials !== null) await client.authenticate(credentials);
      await client.stats('members');
    } catch (error) {
      client.close();
      if (error instanceof CliError && /answered: ERROR/.test(error.message)) {
        throw new CliError(`${describeNode(address)} is a memcached server, not a session-cluster node (it does not know "stats members")`);
      }
      if (error instanceof CliError && /answered: CLIENT_ERROR unauthenticated/.test(error.message)) {
        throw new CliError(`${describeNode(address)} requires authentication (--auth-file): give --user, and the password in SESSION_CLUSTER_PASSWORD`);
      }
      throw error;
    }
    return admin;
  }

  close(): void {
    this.client.close();
  }

  /** `stats <args>` as member `id` answers it (the node asked relays it), or this node when id is null. */
  stats(args: string, id: string | null = null): Promise<Record<string, string>> {
    return this.client.statsRecord(id === null ? args : `node ${id} ${args}`.trimEnd());
  }

  /** Every member the node knows, itself first. */
  async members(): Promise<Member[]> {
    const entries = await this.client.stats('members');
    return entries.filter(([name]) => name === 'member').map(([, value]) => {
      const [id = '', state = '', peerAddress = ''] = value.split(' ');
      return { id, state, peerAddress: peerAddress === '-' ? '' : peerAddress };
    });
  }

  async keyInfo(key: string, id: string | null = null): Promise<KeyInfo> {
    const s = await this.stats(`key ${key}`, id);
    const none = (value: string | undefined) => (value === undefined || value === 'none' ? null : value);
    return {
      node: s.node ?? '', master: none(s.master), backup: none(s.backup),
      copy: s.held !== 'yes' ? null : {
        role: s.role ?? '', bytes: Number(s.bytes), flags: Number(s.flags), exptime: Number(s.exptime), created: Number(s.created), version: Number(s.version),
        lock: s.lock === 'held' || s.lock === 'free' ? s.lock : null,
      },
    };
  }

  /** Every item member `id` holds, page by page (a listing fixed when it starts). */
  async *items(id: string, onSize: (keys: number) => void = () => undefined): AsyncGenerator<ListedItem> {
    const started = await this.stats('sessions', id).catch((error: unknown) => {
      if (error instanceof CliError && /not allowed/.test(error.message)) {
        throw new CliError(`${id} does not list its sessions: it runs with --disable-cachedump, which also turns off the listings that sessions find, count, top and locks read`);
      }
      throw error;
    });
    const listing = started.listing;
    if (listing === undefined) throw new CliError(`${id} did not start a listing`);
    onSize(Number(started.keys));
    for (;;) {
      const entries = await this.client.stats(`node ${id} sessions ${listing} ${PAGE}`);
      let remaining = 0;
      for (const [name, value] of entries) {
        if (name === 'remaining') remaining = Number(value);
        if (name !== 'item') continue;
        const [key = '', role = '', bytes, exptime, created, version, lock] = value.split(' ');
        yield {
          node: id, key, role, bytes: Number(bytes), exptime: Number(exptime), created: Number(created), version: Number(version),
          lock: lock === 'held' || lock === 'free' ? lock : null,
        };
      }
      if (remaining === 0) return;
    }
  }

  async drain(action: 'drain' | 'drain status' | 'undrain'): Promise<DrainStatus> {
    const s = await this.stats(action);
    return {
      state: s.state as DrainStatus['state'], items: Number(s.items), copies: Number(s.copies), acknowledged: Number(s.acknowledged),
      outcome: s.outcome ?? 'none', replacement: s.replacement ?? 'none',
    };
  }
}

/**
 * Runs `run` with a connection to the node --node names, logged in as --user when given, closed
 * whatever happens.
 */
export async function withAdmin<T>(options: NodeOptions, run: (admin: AdminClient) => Promise<T>): Promise<T> {
  const address = parseNodeAddress(options.node);
  const admin = await AdminClient.connect(address, credentialsOf(options));
  try {
    return await run(admin);
  } finally {
    admin.close();
  }
}

/** --user with the password from SESSION_CLUSTER_PASSWORD, so that it shows in no process list. */
export function credentialsOf(options: NodeOptions, env: NodeJS.ProcessEnv = process.env): Credentials | null {
  if (options.user === undefined) return null;
  const password = env.SESSION_CLUSTER_PASSWORD;
  if (password === undefined || password === '') throw usageError('--user needs the password in the environment variable SESSION_CLUSTER_PASSWORD');
  if (/\s/.test(options.user) || options.user === '') throw usageError(`not a user name: "${options.user}"`);
  return { user: options.user, password };
}
