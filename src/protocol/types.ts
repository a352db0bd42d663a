/**
 * Command and Reply: the only things the ascii and binary protocols share.
 * CAS uniques are plain numbers: the counter starts at 1 and would need centuries at
 * millions of writes a second to pass 2^53, so they stay exact.
 * A protocol parses bytes into a Command, the executor turns it into a Reply, and the
 * protocol writes the Reply in its own wire format. No bytes or sockets beyond this line.
 * How a storage command treats an existing item is the store's own vocabulary (StoreMode).
 */
import { StoreMode } from '../store/types.js';

export { StoreMode };

export type Command =
  | { kind: 'store'; mode: StoreMode; key: string; flags: number; exptime: number; value: Buffer; cas: number }
  /** a storage command whose value is over the item size limit, refused before its data is read */
  | { kind: 'refuseOversized'; mode: StoreMode; key: string }
  | { kind: 'get'; keys: string[]; withCas: boolean }
  /** gat/gats (ascii), GAT/GATQ/GATK (binary): fetch and set a new exptime */
  | { kind: 'touchGet'; keys: string[]; exptime: number; withCas: boolean }
  | { kind: 'touch'; key: string; exptime: number }
  | { kind: 'delete'; key: string; cas: number }
  /**
   * incr/decr. `initial` and `exptime` come from the binary protocol: when the item is missing
   * and exptime is not 0xffffffff, the item is created with `initial`.
   */
  | { kind: 'arith'; key: string; incr: boolean; delta: bigint; initial: bigint | null; exptime: number; cas: number }
  | { kind: 'flush'; delaySeconds: number }
  | { kind: 'version' }
  | { kind: 'verbosity'; level: number }
  /** stats [group [args…]]: `args` are the words after "stats" */
  | { kind: 'stats'; args: string[] }
  | { kind: 'quit' }
  /** SASL on the binary protocol (--auth-file): which mechanisms the server offers */
  | { kind: 'saslList' }
  /** SASL AUTH or STEP: the mechanism named and its data (PLAIN: authzid NUL user NUL password) */
  | { kind: 'saslAuth'; mechanism: string; data: Buffer };

/** Result of a command, the memcached store's result enum (items.c, do_store_item). */
export enum Status {
  Stored,
  NotStored,
  Exists,
  NotFound,
  Deleted,
  Touched,
  Ok,
  TooLarge,
  NoMemory,
  NonNumeric,
  /** a request that parsed but makes no sense, e.g. an invalid exptime (binary status 0x04) */
  InvalidArguments,
}

export interface ValueEntry {
  key: string;
  flags: number;
  value: Buffer;
  cas: number;
}

export type Reply =
  /** `flags` only where the binary reply carries them (TOUCH) */
  | { kind: 'status'; status: Status; cas: number; flags?: number }
  | { kind: 'values'; entries: ValueEntry[]; missing: string[] }
  | { kind: 'number'; value: bigint; cas: number }
  | { kind: 'stats'; entries: Array<[string, string]> }
  | { kind: 'unknownStats' }
  | { kind: 'statsReset' }
  /** `stats cachedump`: keys with their value size and absolute expiry (unix seconds, 0 = never) */
  | { kind: 'keyDump'; entries: Array<{ key: string; bytes: number; exptime: number }> }
  | { kind: 'version'; version: string }
  | { kind: 'quit' }
  /** the command could not be served (e.g. its owner node is unreachable): SERVER_ERROR / binary 0x86 */
  | { kind: 'serverError'; message: string }
  /**
   * the command is turned off on this daemon (--disable-flush, --disable-cachedump): memcached's
   * `CLIENT_ERROR flush_all not allowed` in ascii, its binary status 0x20 (memcached -F, -X)
   */
  | { kind: 'notAllowed'; message: string }
  /** SASL LIST MECHS: the mechanisms, space separated */
  | { kind: 'saslMechs'; mechanisms: string }
  /** credentials accepted: binary "Authenticated", ascii STORED (memcached -Y) */
  | { kind: 'authenticated' }
  /** credentials refused: binary status 0x20 "Auth failure.", ascii CLIENT_ERROR authentication failure */
  | { kind: 'authFailed' };

/** memcached's key limit (protocol.txt: "the key must not include control characters or whitespace", at most 250 bytes). */
export const KEY_MAX_LENGTH = 250;
