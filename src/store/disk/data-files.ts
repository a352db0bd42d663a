/**
 * The names of the files in a data directory (docs/architecture.md, "Disk storage"):
 *
 *     snapshot-<generation>.scs   every live item and remembered deletion as of the start of
 *                                 that generation; written as .tmp, renamed once complete
 *     log-<generation>.scl        the changes made during that generation, in order
 *     LOCK                        held (flock) by the daemon that uses the directory
 *
 * Generations are numbered from 1, ten digits, so names sort in order. Recovery loads the newest
 * complete snapshot and replays the logs of its generation and after, in order.
 */
export const LOCK_FILE = 'LOCK';
const PATTERN = /^(snapshot|log)-(\d{10})\.(scs|scl)(\.tmp)?$/;

export interface DataFile {
  name: string;
  role: 'snapshot' | 'log';
  generation: number;
  /** an unfinished snapshot, left by a stop in the middle of a compaction */
  temporary: boolean;
}

export function snapshotName(generation: number, temporary = false): string {
  return `snapshot-${pad(generation)}.scs${temporary ? '.tmp' : ''}`;
}

export function logName(generation: number): string {
  return `log-${pad(generation)}.scl`;
}

export function parseDataFile(name: string): DataFile | null {
  const m = PATTERN.exec(name);
  if (m === null) return null;
  const role = m[1] as 'snapshot' | 'log';
  if ((role === 'snapshot') !== (m[3] === 'scs')) return null;
  if (role === 'log' && m[4] !== undefined) return null;
  return { name, role, generation: Number(m[2]), temporary: m[4] !== undefined };
}

function pad(generation: number): string {
  return String(generation).padStart(10, '0');
}
