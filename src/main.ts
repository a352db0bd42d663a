/** CLI entry: parse flags, load config, start the daemon, stop it on SIGTERM/SIGINT. No logic. */
import { Command, InvalidArgumentError } from 'commander';
import {
  CLUSTER_SECRET_ENV, DEFAULTS, HEARTBEATS_PER_FAILURE_TIMEOUT, MIN_HEARTBEAT_MS, MIN_SECRET_LENGTH, REPLICATION_MODES,
  type RawSettings, readConfigFile, resolveSettings,
} from './config.js';
import { type Daemon, PACKAGE_VERSION, startDaemon } from './daemon.js';
import { SessionClusterError } from './errors.js';
import { LOG_LEVELS, createLogger } from './log.js';

const program = new Command();
program
  .name('session-cluster')
  .description('Shared, replicated PHP sessions behind the memcached protocol.')
  .version(PACKAGE_VERSION)
  // Every usage error (unknown flag, missing value, bad value) exits with 2, like other daemons' CLIs.
  .exitOverride((error) => {
    process.exit(error.code === 'commander.helpDisplayed' || error.code === 'commander.version' ? 0 : 2);
  });

program
  .command('start')
  .description('run the daemon in the foreground')
  .option('--listen <host:port>', `TCP address for PHP clients; port 0 picks a free port (default ${DEFAULTS.listen.host}:${DEFAULTS.listen.port})`)
  .option('--socket <path>', 'also listen on this unix socket, for PHP on the same host')
  .option('--socket-mode <octal>', 'permission bits of the unix socket (default 0660)')
  .option('--max-item-size <bytes>', 'largest value stored, e.g. 1m (default 1 MiB, like memcached -I)')
  .option('--memory-limit <bytes>', 'memory for items before least recently used ones are evicted, e.g. 1g (default 1 GiB)')
  .option('--max-connections <n>', `client connections accepted at once (default ${DEFAULTS.maxConnections})`)
  .option('--log-level <level>', `one of ${LOG_LEVELS.join(', ')} (default ${DEFAULTS.logLevel})`)
  .option('--peer-listen <host:port>', 'address the peer listener binds; turns cluster mode on; port 0 picks a free port; 0.0.0.0 or :port needs --peer-advertise')
  .option('--peer-advertise <host:port>', 'address other nodes dial to reach this node, when it is not --peer-listen (a wildcard, NAT, a container); no wildcard, no port 0 (default: --peer-listen)')
  .option('--peers <host:port,...>', 'seed peers to join the cluster through; any one that answers is enough (needs --peer-listen)')
  .option('--node-id <id>', 'this node\'s stable identity, 1 to 64 of A-Z a-z 0-9 _ . - (default: host name and peer port)')
  .option('--replication <mode>', `${REPLICATION_MODES.join(' or ')}: sync acknowledges a write once the backup has it (default ${DEFAULTS.replication})`)
  // Only the secret's presence or length is ever reported: it is never logged or echoed.
  .option('--cluster-secret <secret>', `secret shared by all nodes, at least ${MIN_SECRET_LENGTH} characters; required with --peer-listen. Prefer the ${CLUSTER_SECRET_ENV} environment variable: ps shows command lines to every user`)
  .option('--heartbeat-ms <ms>', `how often each peer is sent a heartbeat, at least ${MIN_HEARTBEAT_MS} (default ${DEFAULTS.heartbeatMs})`)
  .option('--failure-timeout-ms <ms>', `silence after which a peer is declared dead, at least ${HEARTBEATS_PER_FAILURE_TIMEOUT} heartbeats (default ${DEFAULTS.failureTimeoutMs})`)
  .option('--drain-timeout-ms <ms>', `on SIGTERM/SIGINT, how long a cluster node may take to hand its sessions to their new owners before it leaves; 0 leaves at once (default ${DEFAULTS.drainTimeoutMs})`)
  .option('--peer-tls-cert <file>', 'PEM certificate chain this node presents on peer links; with --peer-tls-key and --peer-tls-ca, turns TLS on for every peer link, both ways')
  .option('--peer-tls-key <file>', 'PEM private key of --peer-tls-cert (unencrypted; keep it readable by the service user only)')
  .option('--peer-tls-ca <file>', 'PEM CA bundle every peer\'s certificate must chain to')
  .option('--session-prefix <prefix>', `php-memcached's memcached.sess_prefix, by which session and lock keys are recognised and kept together; "" for none (default ${DEFAULTS.sessionPrefix})`)
  .option('--metrics-listen <host:port>', 'also serve Prometheus metrics over HTTP at GET /metrics on this address (default: off)')
  .option('--config <file>', 'JSON file with the same settings (listen, socket, socketMode, maxItemSize, memoryLimit, maxConnections, logLevel, peerListen, peerAdvertise, peers, nodeId, replication, clusterSecret, heartbeatMs, failureTimeoutMs, drainTimeoutMs, sessionPrefix, peerTlsCert, peerTlsKey, peerTlsCa, metricsListen); flags win')
  .action(async (flags: Record<string, string | undefined>) => {
    let settings;
    try {
      const fromFile: RawSettings = flags.config ? readConfigFile(flags.config) : {};
      const fromFlags: RawSettings = {
        listen: flags.listen, socket: flags.socket, socketMode: flags.socketMode, maxItemSize: flags.maxItemSize,
        memoryLimit: flags.memoryLimit, maxConnections: flags.maxConnections, logLevel: flags.logLevel,
        peerListen: flags.peerListen, peerAdvertise: flags.peerAdvertise, peers: flags.peers, nodeId: flags.nodeId,
        replication: flags.replication, clusterSecret: flags.clusterSecret, heartbeatMs: flags.heartbeatMs,
        failureTimeoutMs: flags.failureTimeoutMs, drainTimeoutMs: flags.drainTimeoutMs, sessionPrefix: flags.sessionPrefix,
        peerTlsCert: flags.peerTlsCert, peerTlsKey: flags.peerTlsKey, peerTlsCa: flags.peerTlsCa,
        metricsListen: flags.metricsListen,
      };
      // The environment gives the cluster secret (SESSION_CLUSTER_SECRET) when neither the file nor a flag does.
      settings = resolveSettings(fromFile, fromFlags, flags.config, process.env);
    } catch (error) {
      if (error instanceof SessionClusterError) throw new InvalidArgumentError(error.message);
      throw error;
    }
    const log = createLogger(settings.logLevel);
    // Signals are handled from the very start: "ready" goes out as soon as the listeners are
    // open, and a supervisor may send SIGTERM the moment it reads it.
    let daemon: Daemon | null = null;
    let stopRequested: string | null = null;
    let stopping = false;
    const stop = (signal: string) => {
      if (daemon === null) {
        stopRequested = signal;
        return;
      }
      if (stopping) return;
      stopping = true;
      // Armed before anything else, so nothing (not even a failing log write) can keep us running.
      // A stop that had to be cut short is not a clean one: exit 1, so a supervisor can tell.
      // A cluster node first hands its sessions over, for up to --drain-timeout-ms.
      const drainMs = settings.peerListen === null ? 0 : settings.drainTimeoutMs;
      const forced = setTimeout(() => { logSafely(() => log.warn('connections did not close in time; exiting')); process.exit(1); }, 5000 + drainMs);
      forced.unref();
      logSafely(() => log.info({ signal }, 'stopping'));
      daemon.stop().then(() => {
        logSafely(() => log.info('stopped'));
        process.exit(0);
      }, (error: unknown) => {
        logSafely(() => log.error({ err: (error as Error).message }, 'stop failed; exiting'));
        process.exit(1);
      });
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    // Node would die on SIGHUP (a closed terminal, or a habitual "reload"); there is nothing to reload.
    process.on('SIGHUP', () => logSafely(() => log.info({ signal: 'SIGHUP' }, 'ignored: settings are read at start only')));
    try {
      daemon = await startDaemon(settings, log);
    } catch (error) {
      logSafely(() => log.fatal({ code: (error as SessionClusterError).code, err: (error as Error).message }, 'cannot start'));
      process.exit(1);
    }
    // A signal that came while the daemon was starting stops it now that it can be stopped.
    if (stopRequested !== null) stop(stopRequested);
  });

program.parseAsync(process.argv).catch((error: unknown) => {
  if (error instanceof InvalidArgumentError) {
    process.stderr.write(`session-cluster: ${error.message}\n`);
    process.exit(2);
  }
  throw error;
});

/** Logging must never be what keeps a stopping daemon alive. */
function logSafely(write: () => void): void {
  try {
    write();
  } catch {
    // stdout is gone: nothing to tell, nobody to tell it to
  }
}
