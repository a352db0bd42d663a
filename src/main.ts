/** CLI entry: the subcommands, each in src/cli/, and how a usage error ends (exit 2). No logic. */
import { Command, InvalidArgumentError } from 'commander';
import { PACKAGE_VERSION } from './daemon.js';
import { registerConfigCheck } from './cli/config-check.js';
import { registerProbe } from './cli/probe.js';
import { registerStart } from './cli/start.js';
import { registerDrain } from './cli/drain.js';
import { registerLocks } from './cli/locks.js';
import { registerSessions } from './cli/sessions.js';
import { registerStatus } from './cli/status.js';

const program = new Command();
program
  .name('session-cluster')
  .description('Shared, replicated PHP sessions behind the memcached protocol.')
  .version(PACKAGE_VERSION)
  // Every usage error (unknown flag, missing value, bad value) exits with 2, like other daemons' CLIs.
  // commander's own usage errors ("error: missing required argument ...") end as every other
  // failure does: one line naming the program.
  .configureOutput({ outputError: (text, write) => write(`session-cluster: ${text.replace(/^error: /, '')}`) })
  .exitOverride((error) => {
    process.exit(error.code === 'commander.helpDisplayed' || error.code === 'commander.version' ? 0 : 2);
  });

registerStart(program);
registerStatus(program);
registerSessions(program);
registerLocks(program);
registerDrain(program);
registerConfigCheck(program);
registerProbe(program);

program.parseAsync(process.argv).catch((error: unknown) => {
  if (error instanceof InvalidArgumentError) {
    process.stderr.write(`session-cluster: ${error.message}\n`);
    process.exit(2);
  }
  throw error;
});
