/**
 * Reserved keys: a read-only key namespace the local daemon answers itself, so PHP can reach the
 * cluster's own functions through the stock memcached and memcache extensions — mcrouter's
 * precedent (`__mcrouter__.route(...)` and friends are answered by the router, not forwarded).
 *
 *     get __session_cluster__.mint           a new session id, minted by this node
 *     get __session_cluster__.mint.<id>      a new id to re-home session <id> here after a failover
 *     get __session_cluster__.owners.<id>    who serves <id> now, as a query string
 *     get __session_cluster__.valid.<id>     "1" if the cluster minted <id>, a miss otherwise
 *     get __session_cluster__.self           this node's id
 *
 * Any read form works (get, gets, gat, gats; binary GET, GETK, GETQ, GETKQ, GAT, GATQ, multi-get);
 * values carry flags 0 and cas 0. Writes to the namespace are refused as a missing or unstorable
 * item would be (NOT_STORED / NOT_FOUND), so no client can shadow it. Other unknown names miss.
 */
import type { SessionIds } from './cluster/session-ids.js';
import { valuesInKeyOrder } from './command/values-in-key-order.js';
import type { Execute } from './protocol/handler.js';
import { type Command, type Reply, Status, type ValueEntry } from './protocol/types.js';

export const RESERVED_PREFIX = '__session_cluster__.';

const MINT = 'mint';
const MINT_FOR = 'mint.';
const OWNERS = 'owners.';
const VALID = 'valid.';
const SELF = 'self';

export function isReservedKey(key: string): boolean {
  // '_' first: one comparison for almost every key
  return key.charCodeAt(0) === 0x5f && key.startsWith(RESERVED_PREFIX);
}

export class ReservedKeys {
  constructor(private readonly ids: SessionIds, private readonly self: string) {}

  /** Wraps `next` so that reserved keys are answered here and everything else passes through. */
  wrap(next: Execute): Execute {
    return (command) => {
      switch (command.kind) {
        case 'get':
        case 'touchGet':
          return this.read(command, next);
        case 'store':
        case 'refuseOversized':
          return isReservedKey(command.key) ? { kind: 'status', status: Status.NotStored, cas: 0 } : next(command);
        case 'delete':
        case 'touch':
        case 'arith':
          return isReservedKey(command.key) ? { kind: 'status', status: Status.NotFound, cas: 0 } : next(command);
        default:
          return next(command);
      }
    };
  }

  /** The value of a reserved key, or null (a miss). */
  answer(key: string): string | null {
    const name = key.slice(RESERVED_PREFIX.length);
    if (name === MINT) return this.ids.mint();
    if (name === SELF) return this.self;
    if (name.startsWith(MINT_FOR)) {
      const id = name.slice(MINT_FOR.length);
      return id.length === 0 ? null : this.ids.mint(id);
    }
    if (name.startsWith(VALID)) return this.ids.isMinted(name.slice(VALID.length)) ? '1' : null;
    if (name.startsWith(OWNERS)) {
      const id = name.slice(OWNERS.length);
      if (id.length === 0) return null;
      const owners = this.ids.describe(id);
      const fields: Array<[string, string]> = [
        ['id_kind', owners.kind],
        ['master', owners.master ?? ''],
        ['backup', owners.backup ?? ''],
        ['self', this.self],
      ];
      if (owners.named !== undefined) {
        fields.push(['named_master', owners.named.master], ['named_backup', owners.named.backup ?? ''], ['revision', String(owners.named.revision)]);
      }
      // Node ids are [A-Za-z0-9_.-]: nothing to escape in a query string.
      return fields.map(([name, value]) => `${name}=${value}`).join('&');
    }
    return null;
  }

  private read(command: Extract<Command, { kind: 'get' | 'touchGet' }>, next: Execute): Reply | Promise<Reply> {
    let reserved = 0;
    for (const key of command.keys) if (isReservedKey(key)) reserved++;
    if (reserved === 0) return next(command);

    const answered = new Map<string, ValueEntry>();
    for (const key of command.keys) {
      if (!isReservedKey(key) || answered.has(key)) continue;
      const value = this.answer(key);
      if (value !== null) answered.set(key, { key, flags: 0, value: Buffer.from(value, 'latin1'), cas: 0 });
    }
    const merge = (rest: Reply | null): Reply => {
      if (rest !== null && rest.kind !== 'values') return rest;
      const found = new Map<string, ValueEntry>(answered);
      if (rest !== null) for (const entry of rest.entries) found.set(entry.key, entry);
      return valuesInKeyOrder(command.keys, found);
    };
    if (reserved === command.keys.length) return merge(null);
    const rest = next({ ...command, keys: command.keys.filter((key) => !isReservedKey(key)) });
    return rest instanceof Promise ? rest.then(merge) : merge(rest);
  }
}
