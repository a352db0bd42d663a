/**
 * A protocol wired to the real executor and store, with an injected clock, as daemon.ts wires
 * them but without sockets.
 */
import { Executor } from '../../src/command/executor.js';
import { ServerCounters } from '../../src/server/server-counters.js';
import { SETTINGS_SECTIONS, STATS_SECTIONS, bindSections } from '../../src/stats-catalog.js';
import { StatsRegistry } from '../../src/stats/registry.js';
import { AsciiProtocol } from '../../src/protocol/ascii/ascii-protocol.js';
import { BinaryProtocol } from '../../src/protocol/binary/binary-protocol.js';
import type { ProtocolHandler } from '../../src/protocol/handler.js';
import { Output } from '../../src/protocol/output.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { type FeedMode, type FeedOutcome, feed } from './feed.js';

/** 2023-11-14T22:13:20Z: well past 30 days after the epoch, so absolute exptimes make sense. */
export const START_MS = 1_700_000_000_000;
export const START_SECONDS = START_MS / 1000;
export const VERSION = '1.6.18 session-cluster/test';

export interface RigOptions {
  maxItemSize?: number;
  memoryLimit?: number;
}

export interface Rig {
  store: MemoryStore;
  executor: Executor;
  output: Output;
  protocol: ProtocolHandler;
  /** the clock the executor reads; tests move it */
  clock: { now: number };
  send(request: Buffer | string): FeedOutcome;
  /** moves the clock on by `ms` */
  advance(ms: number): void;
}

/** The listeners' side of `stats`, as a daemon with a few connections would have it. */
function serverCounters(): ServerCounters {
  return Object.assign(new ServerCounters(), { currConnections: 3, totalConnections: 7, rejectedConnections: 0, bytesRead: 100, bytesWritten: 200 });
}

/**
 * An executor whose `stats` and `stats settings` are bound as the daemon binds a single node's
 * (the process, the listeners, the commands, the store), read off `clock`.
 */
export function executorWithStats(store: MemoryStore, clock: { now: number }): Executor {
  const stats = new StatsRegistry();
  const settings = new StatsRegistry();
  const executor = new Executor({ store, version: VERSION, stats, settings, now: () => clock.now });
  bindSections(stats, STATS_SECTIONS, {
    process: { startedAtMs: START_MS - 5000, version: VERSION, now: () => clock.now },
    server: { counters: serverCounters(), maxConnections: 1024 },
    commands: executor.counters,
    storeCounters: store.counters,
    store,
  });
  bindSections(settings, SETTINGS_SECTIONS, {
    memcached: { store, maxConnections: 1024, tcpPort: 11211, socketPath: null, get verbosity() { return executor.verbosity; } },
  });
  return executor;
}

export function createRig(kind: 'ascii' | 'binary', mode: FeedMode, options: RigOptions = {}): Rig {
  const maxItemSize = options.maxItemSize ?? 1024;
  const clock = { now: START_MS };
  const store = new MemoryStore({ memoryLimit: options.memoryLimit ?? 64 * 1024 * 1024, maxItemSize });
  const executor = executorWithStats(store, clock);
  const output = new Output();
  const execute = (command: Parameters<Executor['execute']>[0]) => executor.execute(command);
  const limits = { maxItemSize };
  const protocol = kind === 'ascii' ? new AsciiProtocol(execute, output, limits) : new BinaryProtocol(execute, output, limits);
  return {
    store, executor, output, protocol, clock,
    send: (request) => feed(protocol, output, request, mode),
    advance: (ms) => { clock.now += ms; },
  };
}
