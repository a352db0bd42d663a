/**
 * The Prometheus exposition of the `stats` figures: names, types, the member list as series, the
 * text fields as labels of one info series, and label escaping. And the health endpoints of the
 * same listener: /health and /ready, 200 or 503 with the reason.
 */
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { MetricsServer, renderMetrics } from '../src/server/metrics.js';
import { STATS_SECTIONS } from '../src/stats-catalog.js';
import type { Sample } from '../src/stats/registry.js';

/** The catalog's definitions, by name. */
const DEFS = new Map(STATS_SECTIONS.flatMap((section) => section.stats).map((def) => [def.name, def]));
/** `stats` lines as the registry would give them: each with its definition. */
const samples = (entries: Array<[string, string]>): Sample[] => entries.map(([name, value]) => ({ def: DEFS.get(name)!, value }));

const STATS: Array<[string, string]> = [
  ['pid', '1234'], ['uptime', '42'], ['time', '1795390000'], ['version', '1.6.18-session-cluster-0.1.0'],
  ['rusage_user', '1.250000'], ['curr_connections', '3'], ['cmd_get', '100'], ['get_hits', '90'],
  ['bytes', '2048'], ['curr_items', '7'], ['evictions', '0'], ['session_ids_minted', '5'],
  ['cluster_node_id', 'web1'], ['cluster_members', 'web1:alive,web2:suspect,web3:dead'],
  ['cluster_replication', 'sync'], ['cluster_peer_tls', 'off'], ['cluster_forwarded', '12'],
];

describe('renderMetrics', () => {
  const text = renderMetrics(samples(STATS));
  const lines = text.trimEnd().split('\n');

  it('counters end in _total, gauges keep their stats name, CPU is in seconds', () => {
    expect(lines).toContain('# TYPE session_cluster_cmd_get_total counter');
    expect(lines).toContain('session_cluster_cmd_get_total 100');
    expect(lines).toContain('session_cluster_cluster_forwarded_total 12');
    expect(lines).toContain('session_cluster_session_ids_minted_total 5');
    expect(lines).toContain('# TYPE session_cluster_curr_items gauge');
    expect(lines).toContain('session_cluster_curr_items 7');
    expect(lines).toContain('session_cluster_uptime 42');
    expect(lines).toContain('session_cluster_cpu_user_seconds_total 1.25');
  });

  it('the process id and the clock are not series; the text fields are labels of session_cluster_info', () => {
    expect(text).not.toMatch(/session_cluster_pid|session_cluster_time /);
    expect(lines[1]).toBe('# TYPE session_cluster_info gauge');
    expect(lines[2]).toBe('session_cluster_info{version="1.6.18-session-cluster-0.1.0",node_id="web1",replication="sync",peer_tls="off"} 1');
  });

  it('the member list becomes a count per state and a series per member', () => {
    expect(lines).toContain('session_cluster_cluster_members{state="alive"} 1');
    expect(lines).toContain('session_cluster_cluster_members{state="suspect"} 1');
    expect(lines).toContain('session_cluster_cluster_members{state="dead"} 1');
    expect(lines).toContain('session_cluster_cluster_members{state="left"} 0');
    expect(lines).toContain('session_cluster_cluster_member{node="web2",state="suspect"} 1');
  });

  it('every sample line is "name[{labels}] number", and each TYPE comes once, before its samples', () => {
    const types = lines.filter((l) => l.startsWith('# TYPE ')).map((l) => l.split(' ')[2]);
    expect(new Set(types).size).toBe(types.length);
    for (const line of lines.filter((l) => !l.startsWith('#'))) {
      expect(line).toMatch(/^session_cluster_[a-z_]+(\{[^}]*\})? -?[0-9.e+]+$/);
      const name = line.split(/[{ ]/)[0]!;
      expect(lines.indexOf(`# TYPE ${name} counter`) + lines.indexOf(`# TYPE ${name} gauge`) + 1).toBeLessThan(lines.indexOf(line));
    }
  });

  it('each TYPE line follows the HELP line its definition gives', () => {
    const types = lines.filter((l) => l.startsWith('# TYPE '));
    expect(types.length).toBeGreaterThan(10);
    for (const type of types) {
      const name = type.split(' ')[2]!;
      const help = lines[lines.indexOf(type) - 1]!;
      expect(help, type).toMatch(new RegExp(`^# HELP ${name} \\S`));
    }
    expect(lines).toContain(`# HELP session_cluster_cmd_get_total ${DEFS.get('cmd_get')!.help}`);
  });

  it('label values are escaped', () => {
    expect(renderMetrics(samples([['version', 'a"b\\c\nd']]))).toContain('session_cluster_info{version="a\\"b\\\\c\\nd"} 1');
  });
});

describe('GET /health and GET /ready', () => {
  let server: MetricsServer | null = null;
  afterEach(async () => { await server?.close(); server = null; });

  /** A listener whose readiness is `state`, read at each request; its base URL. */
  async function serve(state: { ready: boolean; why: string }): Promise<string> {
    server = new MetricsServer(() => [], pino({ level: 'silent' }), () => state);
    const address = await server.listen('127.0.0.1', 0);
    return `http://127.0.0.1:${address.port}`;
  }
  const get = async (url: string) => {
    const response = await fetch(url);
    return { status: response.status, body: await response.text() };
  };

  it('200 "ok" and "ready" while the node serves', async () => {
    const base = await serve({ ready: true, why: '' });
    expect(await get(`${base}/health`)).toEqual({ status: 200, body: 'ok\n' });
    expect(await get(`${base}/ready`)).toEqual({ status: 200, body: 'ready\n' });
  });

  it('503 with the reason otherwise, and the answer follows the node\'s state', async () => {
    const state = { ready: false, why: 'not joined: 127.0.0.1:7001 refused our cluster secret' };
    const base = await serve(state);
    expect(await get(`${base}/health`)).toEqual({ status: 503, body: 'unhealthy: not joined: 127.0.0.1:7001 refused our cluster secret\n' });
    expect(await get(`${base}/ready`)).toEqual({ status: 503, body: 'not ready: not joined: 127.0.0.1:7001 refused our cluster secret\n' });
    state.ready = true;
    state.why = '';
    expect((await get(`${base}/health`)).status).toBe(200);
  });

  it('/health fails on any reason given, even while counted ready (a state such as a drain)', async () => {
    const base = await serve({ ready: true, why: 'draining' });
    expect(await get(`${base}/health`)).toEqual({ status: 503, body: 'unhealthy: draining\n' });
  });

  it('other paths are 404, naming the ones there are', async () => {
    const base = await serve({ ready: true, why: '' });
    const answer = await get(`${base}/healthz`);
    expect(answer.status).toBe(404);
    expect(answer.body).toContain('/health');
  });
});
