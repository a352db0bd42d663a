/**
 * `session-cluster start`: run the daemon in the foreground. One flag per setting, from the
 * settings table; stops cleanly on SIGTERM/SIGINT (a cluster node drains first). With
 * --dry-run it only checks the settings and prints the effective configuration.
 */
import { type Command, InvalidArgumentError } from 'commander';
import { type RawSettings, SETTING_KEYS, SETTINGS, readConfigFile, resolveSettings } from '../config.js';
import { type Daemon, startDaemon } from '../daemon.js';
import { SessionClusterError, StartAbortedError } from '../errors.js';
import { createLogger, defaultLogFormat } from '../log.js';
import { printEffectiveConfig } from './effective-config.js';

export function registerStart(program: Command): void {
  const start = program
    .command('start')
    .description('run the daemon in the foreground');
  // One option per setting, from the settings table: its flag, argument, help and shown default.
  for (const key of SETTING_KEYS) {
    const spec = SETTINGS[key];
    const shown = spec.shownDefault ?? (spec.default === null || Array.isArray(spec.default) ? undefined : String(spec.default));
    const flag = spec.arg === '' ? spec.flag : `${spec.flag} ${spec.arg}`;
    start.option(flag, shown === undefined || spec.arg === '' ? spec.help : `${spec.help} (default ${shown})`);
  }
  start
    .option('--config <file>', `JSON file with the same settings, keyed by name (${SETTING_KEYS.join(', ')}); flags win`)
    .option('--dry-run', 'check the settings and print the effective configuration, then exit without starting')
    .option('--json', 'with --dry-run, print the effective configuration as one JSON document')
    .action(async (flags: Record<string, string | undefined>) => {
      let settings;
      try {
        const fromFile: RawSettings = flags.config ? readConfigFile(flags.config) : {};
        // commander names each option's value after its flag in camelCase, which is the setting's key.
        const fromFlags: RawSettings = Object.fromEntries(SETTING_KEYS.map((key) => [key, flags[key]]));
        // The environment gives the cluster secret (SESSION_CLUSTER_SECRET) when neither the file nor a flag does.
        settings = resolveSettings(fromFile, fromFlags, flags.config, process.env);
      } catch (error) {
        if (error instanceof SessionClusterError) throw new InvalidArgumentError(error.message);
        throw error;
      }
      if (flags.json !== undefined && flags.dryRun === undefined) throw new InvalidArgumentError('--json goes with --dry-run: a running daemon logs instead (see --log-format)');
      if (flags.dryRun !== undefined) {
        printEffectiveConfig(settings, { json: flags.json !== undefined, headline: 'settings valid; effective configuration (dry run, nothing started):' });
        return;
      }
      const log = createLogger(settings.logLevel, settings.logFormat ?? defaultLogFormat());
      // Signals are handled from the very start: "ready" goes out as soon as the listeners are
      // open, and a supervisor may send SIGTERM the moment it reads it.
      let daemon: Daemon | null = null;
      let stopRequested: string | null = null;
      let stopping = false;
      // A signal while a cluster node still waits to join (possibly for ever: --join-timeout-ms 0)
      // abandons the start rather than wait for it to finish.
      const startAbort = new AbortController();
      const stop = (signal: string) => {
        if (daemon === null) {
          if (stopRequested === null) logSafely(() => log.info({ signal }, 'stop requested while starting'));
          stopRequested = signal;
          startAbort.abort();
          return;
        }
        if (stopping) return;
        stopping = true;
        // Armed before anything else, so nothing (not even a failing log write) can keep us running.
        // A stop that had to be cut short is not a clean one: exit 1, so a supervisor can tell.
        // The requests in progress first get up to --stop-grace-ms; then a cluster node hands its
        // sessions over, for up to --drain-timeout-ms.
        const drainMs = settings.peerListen === null ? 0 : settings.drainTimeoutMs;
        const forced = setTimeout(() => { logSafely(() => log.warn('connections did not close in time; exiting')); process.exit(1); }, 5000 + settings.stopGraceMs + drainMs);
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
        daemon = await startDaemon(settings, log, startAbort.signal);
      } catch (error) {
        if (error instanceof StartAbortedError) {
          logSafely(() => log.info({ signal: stopRequested }, 'stopped'));
          process.exit(0);
        }
        // A node that could not join its cluster (JoinError) ends here too: the reason, naming each
        // peer's refusal, is in `err`, and the exit code is 1.
        logSafely(() => log.fatal({ code: (error as SessionClusterError).code, err: (error as Error).message }, 'cannot start'));
        process.exit(1);
      }
      // A signal that came while the daemon was starting stops it now that it can be stopped.
      if (stopRequested !== null) stop(stopRequested);
    });
}

/** Logging must never be what keeps a stopping daemon alive. */
function logSafely(write: () => void): void {
  try {
    write();
  } catch {
    // stdout is gone: nothing to tell, nobody to tell it to
  }
}
