/**
 * `session-cluster status`: every member with its state and figures, and the cluster's totals,
 * sessions counted once (by their master), and whether every session has both its copies now.
 * Exit 1 when the cluster is not whole: a member not alive or not answering, a node not ready,
 * copies still to be made.
 */
import type { Command } from 'commander';
import { type AdminClient, type Member, withAdmin } from './admin-client.js';
import { action, ExitCode } from './cli-error.js';
import { nodeOptions, type NodeOptions } from './node-address.js';
import { formatBytes, formatDuration, printJson, printLines, table } from './output.js';

export interface MemberStatus {
  id: string;
  state: string;
  peerAddress: string;
  /** null when the member did not answer (or is not alive) */
  figures: {
    ready: boolean;
    version: string;
    uptimeSeconds: number;
    sessionsMastered: number;
    sessionsBackedUp: number;
    locksHeld: number;
    memoryBytes: number;
    memoryLimitBytes: number;
    storage: string;
    diskBytes: number;
    copiesPending: boolean;
  } | null;
  error?: string;
}

export interface ClusterStatus {
  members: MemberStatus[];
  sessions: number;
  /** every session has its master and its backup copy, and no copies are pending */
  copiesComplete: boolean;
  healthy: boolean;
}

export async function clusterStatus(admin: AdminClient): Promise<ClusterStatus> {
  const members = await admin.members();
  const statuses = await Promise.all(members.map((member) => memberStatus(admin, member)));
  const answered = statuses.filter((s) => s.figures !== null);
  const sessions = answered.reduce((sum, s) => sum + s.figures!.sessionsMastered, 0);
  const backedUp = answered.reduce((sum, s) => sum + s.figures!.sessionsBackedUp, 0);
  const serving = statuses.filter((s) => s.state === 'alive' || s.state === 'suspect');
  // Two copies need two nodes: a single node (or a cluster down to one) has one copy of each.
  const copiesComplete = serving.length >= 2 && answered.length === serving.length && backedUp === sessions && answered.every((s) => !s.figures!.copiesPending);
  const healthy = statuses.every((s) => s.state === 'left' || (s.state === 'alive' && s.figures !== null && s.figures.ready))
    && (serving.length < 2 || copiesComplete);
  return { members: statuses, sessions, copiesComplete, healthy };
}

async function memberStatus(admin: AdminClient, member: Member): Promise<MemberStatus> {
  const base = { id: member.id, state: member.state, peerAddress: member.peerAddress };
  if (member.state !== 'alive' && member.state !== 'suspect') return { ...base, figures: null };
  try {
    const [stats, roles] = await Promise.all([admin.stats('', member.id), admin.stats('roles', member.id)]);
    return {
      ...base,
      figures: {
        ready: stats.cluster_ready === undefined || stats.cluster_ready === '1',
        version: stats.version ?? '',
        uptimeSeconds: Number(stats.uptime),
        sessionsMastered: Number(roles.sessions_mastered),
        sessionsBackedUp: Number(roles.sessions_backed_up),
        locksHeld: Number(roles.locks_mastered),
        memoryBytes: Number(stats.bytes) + Number(stats.tombstone_bytes ?? 0),
        memoryLimitBytes: Number(stats.limit_maxbytes),
        storage: stats.storage ?? 'memory',
        diskBytes: Number(stats.disk_log_bytes ?? 0),
        copiesPending: roles.copies_pending === 'yes',
      },
    };
  } catch (error) {
    return { ...base, figures: null, error: (error as Error).message };
  }
}

export function registerStatus(program: Command): void {
  nodeOptions(program.command('status').description('the cluster\'s members, their sessions and figures, and whether every session has its two copies'))
    .action(action(async (options: NodeOptions) => withAdmin(options, async (admin) => {
      const status = await clusterStatus(admin);
      if (options.json === true) printJson(status);
      else printLines(describe(status));
      return status.healthy ? ExitCode.Ok : ExitCode.Failed;
    })));
}

function describe(status: ClusterStatus): string[] {
  const rows = status.members.map((m) => {
    const f = m.figures;
    if (f === null) return [m.id, m.state === 'alive' || m.state === 'suspect' ? `${m.state}, not answering` : m.state, m.peerAddress || '-', '-', '-', '-', '-', '-', '-', m.error ?? ''];
    return [
      m.id, f.ready ? m.state : `${m.state}, not ready`, m.peerAddress || '-', String(f.sessionsMastered), String(f.sessionsBackedUp),
      `${formatBytes(f.memoryBytes)} of ${formatBytes(f.memoryLimitBytes)}`, f.storage === 'disk' ? formatBytes(f.diskBytes) : '-', formatDuration(f.uptimeSeconds), f.version, '',
    ];
  });
  const lines = table(['MEMBER', 'STATE', 'PEER ADDRESS', 'MASTERED', 'BACKED UP', 'MEMORY', 'DISK', 'UPTIME', 'VERSION', ''], rows);
  const serving = status.members.filter((m) => m.state === 'alive' || m.state === 'suspect').length;
  lines.push('');
  lines.push(`sessions: ${status.sessions} (each counted once)`);
  if (serving >= 2) lines.push(status.copiesComplete ? 'copies: every session has its master and backup copy' : 'copies: re-replication pending: some sessions have one copy only for now');
  else lines.push('copies: one node serves: each session has one copy');
  lines.push(status.healthy ? 'cluster: healthy' : 'cluster: DEGRADED');
  return lines;
}
