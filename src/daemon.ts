/**
 * The composition root: the only place that builds and wires the daemon's parts.
 */
import { readFileSync } from 'node:fs';
import { Executor } from './command/executor.js';
import type { StatsSource } from './command/stats.js';
import type { Settings } from './config.js';
import type { Logger } from './log.js';
import { ClientListeners } from './server/listeners.js';
import { ServerCounters } from './server/server-counters.js';
import { Output } from './protocol/output.js';
import { MemoryStore } from './store/memory-store.js';
import { ThrottledWarning } from './throttled-log.js';

/** How often expired items are reclaimed in the background, and how many are looked at each time. */
const SWEEP_INTERVAL_MS = 1000;
const SWEEP_BUDGET = 50_000;
/** Repeating warnings (evictions, refused connections) are logged at most this often; stats count each. */
const WARNING_INTERVAL_MS = 10_000;

export const PACKAGE_VERSION: string = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

/**
 * The version string of `version` and `stats`: memcached's version first, since clients such as
 * libmemcached read it to decide which commands the server has, then ours.
 */
export const WIRE_VERSION = `1.6.18-session-cluster-${PACKAGE_VERSION}`;

export interface Daemon {
  stop(): Promise<void>;
}

export async function startDaemon(settings: Settings, log: Logger): Promise<Daemon> {
  const evictions: ThrottledWarning = new ThrottledWarning(log,
    'evicted least recently used items to stay under --memory-limit; raise it to keep sessions',
    () => ({ totalEvictions: store.counters.evictions, memoryLimit: settings.memoryLimit }), WARNING_INTERVAL_MS);
  const store = new MemoryStore({
    memoryLimit: settings.memoryLimit,
    maxItemSize: settings.maxItemSize,
    onEvict: (count) => evictions.add(count),
  });
  const counters = new ServerCounters();
  const startedAtMs = Date.now();
  let listeners: ClientListeners | null = null;
  const stats: StatsSource = {
    startedAtMs,
    get currConnections() { return counters.currConnections; },
    get totalConnections() { return counters.totalConnections; },
    get rejectedConnections() { return counters.rejectedConnections; },
    get bytesRead() { return counters.bytesRead; },
    get bytesWritten() { return counters.bytesWritten; },
    maxConnections: settings.maxConnections,
    get tcpPort() { return listeners?.tcpPort ?? 0; },
    socketPath: settings.socket,
  };
  const executor = new Executor({ store, stats, version: WIRE_VERSION });
  listeners = new ClientListeners(
    { execute: (command) => executor.execute(command), limits: { maxItemSize: settings.maxItemSize }, counters, output: new Output() },
    {
      maxConnections: settings.maxConnections,
      log,
      refused: new ThrottledWarning(log, 'connections refused: --max-connections reached',
        () => ({ maxConnections: settings.maxConnections, totalRefused: counters.rejectedConnections }), WARNING_INTERVAL_MS),
    },
  );
  const sweeper = setInterval(() => store.sweepExpired(Date.now(), SWEEP_BUDGET), SWEEP_INTERVAL_MS);
  sweeper.unref();

  try {
    await listeners.listenTcp(settings.listen.host, settings.listen.port);
    if (settings.socket !== null) await listeners.listenUnix(settings.socket, settings.socketMode);
  } catch (error) {
    clearInterval(sweeper);
    await listeners.close();
    throw error;
  }
  log.info({ version: PACKAGE_VERSION, maxItemSize: settings.maxItemSize, memoryLimit: settings.memoryLimit, maxConnections: settings.maxConnections }, 'ready');

  return {
    async stop() {
      clearInterval(sweeper);
      executor.close();
      await listeners!.close();
      evictions.flush();
    },
  };
}
