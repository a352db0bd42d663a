/**
 * What a running daemon answers to `stats` is the catalog, section by section: a single node the
 * sections every node has, a cluster node all of them. A statistic counted somewhere but left out
 * of the catalog (and so of the docs), or one declared but never bound, fails here.
 */
import net from 'node:net';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULTS, type Settings } from '../src/config.js';
import { type Daemon, startDaemon } from '../src/daemon.js';
import { MEMBERSHIP_STATS, MembershipStats } from '../src/cluster/membership/membership-stats.js';
import { PEER_STATS, PeerCounters } from '../src/cluster/peer/peer-counters.js';
import { SETTINGS_SECTIONS, STATS_SECTIONS } from '../src/stats-catalog.js';

const log = pino({ level: 'silent' });

/** The names a `stats` request answers, in order. */
function statNames(port: number, request: string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port }, () => socket.write(`${request}\r\n`));
    let text = '';
    socket.setTimeout(5000, () => socket.destroy(new Error(`no END for ${request}: ${text}`)));
    socket.on('error', reject);
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString('latin1');
      if (!text.endsWith('END\r\n')) return;
      socket.destroy();
      resolve(text.split('\r\n').filter((line) => line.startsWith('STAT ')).map((line) => line.split(' ')[1]!));
    });
  });
}

let daemon: Daemon | null = null;
afterEach(async () => {
  await daemon?.stop();
  daemon = null;
});

const names = (sections: typeof STATS_SECTIONS | typeof SETTINGS_SECTIONS, scopes: string[]) =>
  sections.filter((section) => scopes.includes(section.scope)).flatMap((section) => section.stats.map((def) => def.name));

describe('stats is the catalog', () => {
  it('a single node: every section every node has, in order; stats settings: memcached\'s names, then every setting', async () => {
    daemon = await startDaemon({ ...DEFAULTS, listen: { host: '127.0.0.1', port: 0 } }, log);
    expect(await statNames(daemon.tcpPort, 'stats')).toEqual(names(STATS_SECTIONS, ['node']));
    expect(await statNames(daemon.tcpPort, 'stats settings')).toEqual(names(SETTINGS_SECTIONS, ['node']));
  });

  it('a cluster node: the cluster sections too', async () => {
    const settings: Settings = {
      ...DEFAULTS, listen: { host: '127.0.0.1', port: 0 }, peerListen: { host: '127.0.0.1', port: 0 },
      nodeId: 'catalog-test', clusterSecret: 'a-cluster-secret-for-this-test', drainTimeoutMs: 0,
    };
    daemon = await startDaemon(settings, log);
    const answered = await statNames(daemon.tcpPort, 'stats');
    expect(answered).toEqual(names(STATS_SECTIONS, ['node', 'cluster']));
    // every field the peer layer and membership count is shown, each under its own name
    for (const [counters, defs] of [[new PeerCounters(), PEER_STATS], [new MembershipStats(), MEMBERSHIP_STATS]] as const) {
      for (const field of Object.keys(counters)) expect(answered, field).toContain((defs as Record<string, { name: string }>)[field]!.name);
    }
  });
});
