/**
 * The names of the files in a data directory (docs/architecture.md, "Disk storage"):
 *
 *     log-<generation>.scl   the store's changes, in order: a new one at each start and each
 *                            time the one being written reaches its size; the oldest are
 *                            compacted away (their records still current copied to the newest)
 *     LOCK                   held (flock) by the daemon that uses the directory
 *
 * Generations are numbered from 1, ten digits, so names sort in order. Recovery replays every
 * log, oldest first.
 */
export const LOCK_FILE = 'LOCK';
const PATTERN = /^log-(\d{10})\.scl$/;

export interface DataFile {
  name: string;
  generation: number;
}

export function logName(generation: number): string {
  return `log-${String(generation).padStart(10, '0')}.scl`;
}

export function parseDataFile(name: string): DataFile | null {
  const m = PATTERN.exec(name);
  return m === null ? null : { name, generation: Number(m[1]) };
}
