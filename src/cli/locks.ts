/**
 * `session-cluster locks`: the session locks held now across the cluster, with how long each has
 * been held, and how many lock takes wait on each node (lock handoff, --lock-wait-ms).
 */
import type { Command } from 'commander';
import { lockStyleOf, sessionIdOfLock } from '../session-locks/lock-keys.js';
import { withAdmin } from './admin-client.js';
import { action, ExitCode } from './cli-error.js';
import { isLive, sessionPrefixOf, walkItems } from './cluster-items.js';
import { nodeOptions, type NodeOptions } from './node-address.js';
import { formatDuration, printJson, printLines, table } from './output.js';

export function registerLocks(program: Command): void {
  nodeOptions(program.command('locks').description('session locks held now, with their age, and lock takes waiting on each node'))
    .action(action(async (options: NodeOptions) => withAdmin(options, async (admin) => {
      const prefix = await sessionPrefixOf(admin);
      const items = await walkItems(admin, { label: 'listing', keep: (item) => lockStyleOf(item.key, prefix) !== null && item.lock === 'held' });
      const now = Date.now() / 1000;
      const locks = [...items.values()].sort((a, b) => a.created - b.created).map((item) => {
        const style = lockStyleOf(item.key, prefix)!;
        return { session: sessionIdOfLock(item.key, style, prefix), key: item.key, extension: style, heldForSeconds: Math.max(0, Math.round(now - item.created)), node: item.node };
      });
      const waiting = await Promise.all((await admin.members()).filter(isLive).map(async (member) => {
        const stats = await admin.stats('', member.id);
        return { node: member.id, waiting: Number(stats.session_locks_waiting ?? 0) };
      }));
      if (options.json === true) {
        printJson({ locks, waiting });
        return ExitCode.Ok;
      }
      printLines([
        ...(locks.length === 0 ? ['no session lock is held'] : table(['SESSION', 'EXTENSION', 'HELD FOR', 'NODE'], locks.map((lock) => [lock.session, lock.extension, formatDuration(lock.heldForSeconds), lock.node]))),
        '',
        `waiting for a lock: ${waiting.map((w) => `${w.node} ${w.waiting}`).join(', ')}`,
      ]);
      return ExitCode.Ok;
    })));
}
