/**
 * `session-cluster config check FILE`: would `start --config FILE` accept these settings? The
 * same reading and checks as start (readConfigFile, resolveSettings, with SESSION_CLUSTER_SECRET
 * from the environment), then the effective configuration; nothing is started or opened but the
 * files the settings name (TLS certificates, the auth file), which start reads the same way.
 */
import type { Command } from 'commander';
import { readConfigFile, resolveSettings } from '../config.js';
import { ConfigError } from '../errors.js';
import { action, CliError, ExitCode } from './cli-error.js';
import { printEffectiveConfig } from './effective-config.js';
import { printJson } from './output.js';

export function registerConfigCheck(program: Command): void {
  const config = program.command('config').description('work with config files');
  config
    .command('check')
    .description('validate a JSON config file as start would, and print the effective configuration (exit 1 if it is refused)')
    .argument('<file>', 'the JSON config file, as given to start --config')
    .option('--json', 'print one JSON document: {"valid":true,"file":...,"settings":{...}}, or {"valid":false,"error":...}')
    .action(action(async (file: string, flags: { json?: boolean }) => {
      let settings;
      try {
        settings = resolveSettings(readConfigFile(file, 'config file'), {}, file, process.env);
      } catch (error) {
        if (!(error instanceof ConfigError)) throw error;
        if (flags.json === true) printJson({ valid: false, file, error: error.message });
        // A refused file is a failed check (1), not a usage error: the command line was right.
        throw new CliError(error.message, ExitCode.Failed);
      }
      printEffectiveConfig(settings, { json: flags.json === true, headline: `${file}: valid; effective configuration:`, extra: { file } });
    }));
}
