/**
 * Every item in the cluster, each once: the listings of every live member, merged by key (a
 * session is listed by its master and its backup; the master's entry is kept). A member that does
 * not answer makes the walk fail rather than quietly count less.
 */
import type { AdminClient, ListedItem, Member } from './admin-client.js';
import { CliError } from './cli-error.js';
import { progressBar } from './output.js';

export interface WalkOptions {
  /** the progress bar's label (shown on a terminal only) */
  label: string;
  /** which items to keep */
  keep: (item: ListedItem) => boolean;
}

export async function walkItems(admin: AdminClient, options: WalkOptions): Promise<Map<string, ListedItem>> {
  const members = (await admin.members()).filter(isLive);
  const found = new Map<string, ListedItem>();
  const bar = progressBar(options.label);
  let seen = 0;
  /** the keys of the listings started so far: the bar's total grows as each member answers */
  let total = 0;
  try {
    for (const member of members) {
      try {
        for await (const item of admin.items(member.id, (keys) => { total += keys; })) {
          seen++;
          bar.update(seen, total);
          if (!options.keep(item)) continue;
          const known = found.get(item.key);
          if (known === undefined || (known.role !== 'master' && item.role === 'master')) found.set(item.key, item);
        }
      } catch (error) {
        throw new CliError(`${member.id} did not list its sessions, so the result would be incomplete: ${(error as Error).message}`);
      }
    }
  } finally {
    bar.end();
  }
  return found;
}

export function isLive(member: Member): boolean {
  return member.state === 'alive' || member.state === 'suspect';
}

/** The session prefix the node was started with (--session-prefix), as `stats settings` says. */
export async function sessionPrefixOf(admin: AdminClient): Promise<string> {
  const settings = await admin.stats('settings');
  const shown = settings.session_prefix ?? 'memc.sess.key.';
  // `stats settings` shows an empty prefix as "" (config.ts).
  return shown === '""' ? '' : shown;
}
