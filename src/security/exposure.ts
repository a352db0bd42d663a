/**
 * The warning a daemon logs at start when its client port is open beyond this machine with nothing
 * to stop a stranger (docs/security.md).
 */
import { formatEndpoint } from '../address.js';
import type { Settings } from '../config.js';
import type { Logger } from '../log.js';
import { isLoopbackHost } from './allow-list.js';

/**
 * A client port that listens beyond loopback with no --allow and no --auth-file: whoever reaches it can read and
 * change every session, list their ids (unless --disable-cachedump) and log everyone out with
 * flush_all (unless --disable-flush). Logged at warn at every start, saying which.
 */
export function warnIfExposed(settings: Pick<Settings, 'listen' | 'allow' | 'authFile' | 'disableFlush' | 'disableCachedump'>, log: Logger): void {
  const { host, port } = settings.listen;
  if (isLoopbackHost(host) || settings.allow !== null || settings.authFile !== null) return;
  const exposed = ['read and change every session'];
  if (!settings.disableCachedump) exposed.push('list every session id (stats cachedump)');
  if (!settings.disableFlush) exposed.push('log everyone out (flush_all)');
  log.warn({ listen: formatEndpoint(host, port), exposed },
    `the client port is open beyond this machine with no --allow or --auth-file: whoever reaches it can ${exposed.join(', ')}; see docs/security.md`);
}
