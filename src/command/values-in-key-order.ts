/**
 * A multi-key read answered in parts (by several masters, or partly by the daemon itself) is put
 * back together in the order its keys were asked, as memcached answers `get k1 k2 …`: a key asked
 * twice is answered twice, a key found nowhere is a miss.
 */
import type { Reply, ValueEntry } from '../protocol/types.js';

export function valuesInKeyOrder(keys: readonly string[], found: ReadonlyMap<string, ValueEntry>): Reply {
  const entries: ValueEntry[] = [];
  const missing: string[] = [];
  for (const key of keys) {
    const entry = found.get(key);
    if (entry === undefined) missing.push(key);
    else entries.push(entry);
  }
  return { kind: 'values', entries, missing };
}
