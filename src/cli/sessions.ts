/**
 * `session-cluster sessions show|find|delete|count|top`: one session or many, read as PHP wrote
 * them. A session is named by its bare id or by its full key under either extension:
 * php-memcached stores `<sess_prefix><id>`, pecl memcache stores `<id>` (docs/php.md).
 */
import type { Command } from 'commander';
import { KEY_MAX_LENGTH } from '../protocol/types.js';
import { lockStyleOf } from '../session-locks/lock-keys.js';
import { type AdminClient, type KeyInfo, type ListedItem, withAdmin } from './admin-client.js';
import { action, CliError, ExitCode, usageError } from './cli-error.js';
import { sessionPrefixOf, walkItems } from './cluster-items.js';
import { nodeOptions, type NodeOptions } from './node-address.js';
import { formatBytes, formatDuration, printJson, printLines, progressBar, table } from './output.js';
import { decodeSession, hexDump, matches, parseWhere, type Where } from './php-session.js';

/** Keys read with one `gets` while searching. */
const GET_BATCH = 100;

/** The keys a session may be stored under, most likely first, and the lock key of each. */
export function candidateKeys(input: string, prefix: string): Array<{ key: string; id: string; extension: 'php-memcached' | 'pecl memcache'; lockKey: string }> {
  if (input === '' || /[\s\x00-\x1f\x7f]/.test(input) || Buffer.byteLength(input) > KEY_MAX_LENGTH) {
    throw usageError(`not a session id or key: "${input.slice(0, 80)}" (no spaces or control characters, at most ${KEY_MAX_LENGTH} bytes)`);
  }
  if (lockStyleOf(input, prefix) !== null) throw usageError(`"${input}" is a lock key: name the session itself`);
  const memcached = (id: string) => ({ key: `${prefix}${id}`, id, extension: 'php-memcached' as const, lockKey: `${prefix}lock.${id}` });
  const memcache = (id: string) => ({ key: id, id, extension: 'pecl memcache' as const, lockKey: `${id}.lock` });
  if (prefix !== '' && input.startsWith(prefix) && input.length > prefix.length) return [memcached(input.slice(prefix.length)), memcache(input)];
  return prefix === '' ? [memcache(input)] : [memcached(input), memcache(input)];
}

function whereOption(text: string | undefined): Where | null {
  if (text === undefined) return null;
  const where = parseWhere(text);
  if (where === null) throw usageError(`not a --where: "${text}" (expected PATH=VALUE, e.g. user_id=42 or auth.user.id=42)`);
  return where;
}

export function registerSessions(program: Command): void {
  const sessions = program.command('sessions').description('find, read, count and delete sessions across the cluster');

  nodeOptions(sessions.command('show').argument('<id>', 'a session id, or its full key under either extension')
    .description('which nodes hold a session, its size, expiry, version, lock, and its contents decoded'))
    .action(action(async (id: string, options: NodeOptions) => show(id, options)));

  nodeOptions(sessions.command('find').requiredOption('--where <path=value>', 'a session variable and the value it must have, e.g. user_id=42 or auth.user.id=42')
    .description('the sessions whose data has PATH=VALUE, across the whole cluster (exit 1 when none)'))
    .action(action(async (options: NodeOptions & { where: string }) => find(options)));

  nodeOptions(sessions.command('delete').argument('[id]', 'a session id, or its full key under either extension')
    .option('--where <path=value>', 'delete every session whose data has PATH=VALUE (logs a user out everywhere)')
    .option('--yes', 'with --where: really delete them')
    .description('delete one session, or every session matching --where'))
    .action(action(async (id: string | undefined, options: NodeOptions & { where?: string; yes?: boolean }) => remove(id, options)));

  nodeOptions(sessions.command('count').description('how many sessions the cluster holds, each counted once'))
    .action(action(async (options: NodeOptions) => count(options)));

  nodeOptions(sessions.command('top').option('--by <what>', 'size (the biggest) or age (the oldest)', 'size').option('--limit <n>', 'how many to list', '20')
    .description('the biggest or the oldest sessions: the ones that slow a site down'))
    .action(action(async (options: NodeOptions & { by: string; limit: string }) => top(options)));
}

async function show(input: string, options: NodeOptions): Promise<ExitCode> {
  return withAdmin(options, async (admin) => {
    const prefix = await sessionPrefixOf(admin);
    for (const candidate of candidateKeys(input, prefix)) {
      const found = (await admin.client.get([candidate.key])).get(candidate.key);
      if (found === undefined) continue;
      const placement = await admin.keyInfo(candidate.key);
      const holders = [placement.master, placement.backup].filter((id): id is string => id !== null);
      const copies = await Promise.all(holders.map(async (holder) => ({ holder, info: await admin.keyInfo(candidate.key, holder).catch(() => null) })));
      const lock = placement.master === null ? null : await admin.keyInfo(candidate.lockKey, placement.master).catch(() => null);
      const masterCopy = copies.find((c) => c.holder === placement.master)?.info?.copy ?? copies.find((c) => c.info?.copy)?.info?.copy ?? null;
      const decoded = decodeSession(found.value);
      const now = Date.now() / 1000;
      const report = {
        id: candidate.id, key: candidate.key, extension: candidate.extension,
        master: placement.master, backup: placement.backup,
        copies: copies.map(({ holder, info }) => ({ node: holder, held: info?.copy != null, version: info?.copy?.version ?? null, bytes: info?.copy?.bytes ?? null })),
        bytes: found.value.length,
        expiresAt: masterCopy === null || masterCopy.exptime === 0 ? null : new Date(masterCopy.exptime * 1000).toISOString(),
        createdAt: masterCopy === null ? null : new Date(masterCopy.created * 1000).toISOString(),
        version: masterCopy?.version ?? null,
        lock: lock?.copy?.lock !== 'held' ? { held: false } : { held: true, key: candidate.lockKey, heldForSeconds: Math.max(0, Math.round(now - lock.copy.created)) },
        format: decoded.format,
        data: decoded.data,
        ...(decoded.data === null ? { hex: found.value.toString('hex') } : {}),
      };
      if (options.json === true) {
        printJson(report);
        return ExitCode.Ok;
      }
      const copyText = (info: KeyInfo | null) => (info?.copy == null ? 'no copy' : `version ${info.copy.version}, ${info.copy.bytes} bytes`);
      const lines = [
        `session   ${candidate.id}`,
        `key       ${candidate.key} (${candidate.extension})`,
        ...copies.map(({ holder, info }) => `${holder === placement.master ? 'master' : 'backup'}    ${holder} (${copyText(info)})`),
        ...(placement.backup === null ? ['backup    none (one node serves)'] : []),
        `size      ${formatBytes(found.value.length)}`,
        `expires   ${masterCopy === null ? '?' : masterCopy.exptime === 0 ? 'never' : `in ${formatDuration(masterCopy.exptime - now)} (${report.expiresAt})`}`,
        `created   ${masterCopy === null ? '?' : `${formatDuration(now - masterCopy.created)} ago`}`,
        `lock      ${report.lock.held ? `held for ${formatDuration(report.lock.heldForSeconds ?? 0)}` : 'not held'}`,
        `format    ${decoded.format}${decoded.data === null ? ' (not decoded: igbinary or unknown; hex dump below)' : ''}`,
        decoded.data === null ? hexDump(found.value) : JSON.stringify(decoded.data, null, 2),
      ];
      printLines(lines);
      return ExitCode.Ok;
    }
    throw new CliError(`no session ${input}`);
  });
}

/** The sessions (not lock keys) whose data has `where`, each once, read through `admin`. */
async function search(admin: AdminClient, where: Where): Promise<ListedItem[]> {
  const prefix = await sessionPrefixOf(admin);
  const listed = [...(await walkItems(admin, { label: 'listing', keep: (item) => lockStyleOf(item.key, prefix) === null })).values()];
  const bar = progressBar('reading');
  const matched: ListedItem[] = [];
  try {
    for (let at = 0; at < listed.length; at += GET_BATCH) {
      const batch = listed.slice(at, at + GET_BATCH);
      const values = await admin.client.get(batch.map((item) => item.key));
      for (const item of batch) {
        const value = values.get(item.key);
        if (value === undefined) continue;
        const decoded = decodeSession(value.value);
        if (decoded.data !== null && matches(decoded.data, where)) matched.push(item);
      }
      bar.update(Math.min(at + GET_BATCH, listed.length), listed.length);
    }
  } finally {
    bar.end();
  }
  return matched;
}

async function find(options: NodeOptions & { where: string }): Promise<ExitCode> {
  const where = whereOption(options.where)!;
  return withAdmin(options, async (admin) => {
    const matched = await search(admin, where);
    if (options.json === true) printJson({ where: options.where, count: matched.length, sessions: matched.map(describeItem) });
    else printLines([...matched.map((item) => item.key), `${matched.length} session${matched.length === 1 ? '' : 's'} with ${options.where}`]);
    return matched.length > 0 ? ExitCode.Ok : ExitCode.Failed;
  });
}

async function remove(input: string | undefined, options: NodeOptions & { where?: string; yes?: boolean }): Promise<ExitCode> {
  const where = whereOption(options.where);
  if ((input === undefined) === (where === null)) throw usageError('name one session (sessions delete ID) or give --where PATH=VALUE, not both');
  return withAdmin(options, async (admin) => {
    if (input !== undefined) {
      const prefix = await sessionPrefixOf(admin);
      const deleted: string[] = [];
      for (const candidate of candidateKeys(input, prefix)) if (await admin.client.delete(candidate.key)) deleted.push(candidate.key);
      if (deleted.length === 0) throw new CliError(`no session ${input}`);
      if (options.json === true) printJson({ deleted });
      else printLines(deleted.map((key) => `deleted ${key}`));
      return ExitCode.Ok;
    }
    const matched = await search(admin, where!);
    if (options.yes !== true) {
      throw usageError(`${matched.length} session${matched.length === 1 ? '' : 's'} with ${options.where}: add --yes to delete ${matched.length === 1 ? 'it' : 'them'}`);
    }
    const deleted: string[] = [];
    for (const item of matched) if (await admin.client.delete(item.key)) deleted.push(item.key);
    if (options.json === true) printJson({ where: options.where, deleted });
    else printLines([...deleted.map((key) => `deleted ${key}`), `${deleted.length} session${deleted.length === 1 ? '' : 's'} deleted`]);
    return ExitCode.Ok;
  });
}

async function count(options: NodeOptions): Promise<ExitCode> {
  return withAdmin(options, async (admin) => {
    const prefix = await sessionPrefixOf(admin);
    const items = await walkItems(admin, { label: 'counting', keep: (item) => lockStyleOf(item.key, prefix) === null });
    if (options.json === true) printJson({ sessions: items.size });
    else printLines([String(items.size)]);
    return ExitCode.Ok;
  });
}

async function top(options: NodeOptions & { by: string; limit: string }): Promise<ExitCode> {
  if (options.by !== 'size' && options.by !== 'age') throw usageError(`--by must be size or age, not "${options.by}"`);
  const limit = Number(options.limit);
  if (!Number.isSafeInteger(limit) || limit <= 0) throw usageError(`--limit must be a positive whole number, not "${options.limit}"`);
  return withAdmin(options, async (admin) => {
    const prefix = await sessionPrefixOf(admin);
    const items = [...(await walkItems(admin, { label: 'listing', keep: (item) => lockStyleOf(item.key, prefix) === null })).values()];
    items.sort(options.by === 'size' ? (a, b) => b.bytes - a.bytes : (a, b) => a.created - b.created);
    const chosen = items.slice(0, limit);
    if (options.json === true) {
      printJson({ by: options.by, sessions: chosen.map(describeItem) });
      return ExitCode.Ok;
    }
    const now = Date.now() / 1000;
    printLines(table(['KEY', 'SIZE', 'AGE', 'EXPIRES IN', 'NODE'], chosen.map((item) => [
      item.key, formatBytes(item.bytes), formatDuration(now - item.created), item.exptime === 0 ? 'never' : formatDuration(item.exptime - now), item.node,
    ])));
    return ExitCode.Ok;
  });
}

function describeItem(item: ListedItem): Record<string, unknown> {
  return {
    key: item.key, node: item.node, role: item.role, bytes: item.bytes, version: item.version,
    createdAt: new Date(item.created * 1000).toISOString(), expiresAt: item.exptime === 0 ? null : new Date(item.exptime * 1000).toISOString(),
  };
}
