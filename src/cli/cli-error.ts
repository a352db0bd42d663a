/**
 * How every subcommand ends when it cannot do its job: one line on stderr, never a stack trace,
 * and the exit code scripts test (0 done, 1 a failed check or an unreachable node, 2 a usage
 * error), as the daemon's own flags do.
 */
import { InvalidArgumentError } from 'commander';
import { SessionClusterError } from '../errors.js';

export enum ExitCode {
  Ok = 0,
  /** the check failed, the node could not be reached, or what was asked for is not there */
  Failed = 1,
  /** the command line itself is wrong: an unknown flag, a malformed address or --where */
  Usage = 2,
}

export class CliError extends SessionClusterError {
  constructor(message: string, readonly exitCode: ExitCode = ExitCode.Failed) {
    super('ERR_CLI', message);
  }
}

/** A usage error found after commander parsed the line (a malformed --node, say). */
export function usageError(message: string): CliError {
  return new CliError(message, ExitCode.Usage);
}

/** Writes `error` as the one line an operator reads, and says which exit code it means. */
export function reportError(error: unknown, write: (line: string) => void = (line) => process.stderr.write(line)): ExitCode {
  if (error instanceof CliError) {
    write(`session-cluster: ${error.message}\n`);
    return error.exitCode;
  }
  if (error instanceof InvalidArgumentError || error instanceof SessionClusterError) {
    write(`session-cluster: ${error.message}\n`);
    return ExitCode.Usage;
  }
  // A bug: still one line, with enough to report it.
  write(`session-cluster: internal error: ${error instanceof Error ? error.message : String(error)}\n`);
  return ExitCode.Failed;
}

/**
 * Wraps a subcommand's action: whatever it throws ends the process with its line and code,
 * and a finished action exits with the code it returns (a check that printed its failure).
 */
export function action<A extends unknown[]>(run: (...args: A) => Promise<ExitCode | void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    let code: ExitCode;
    try {
      code = (await run(...args)) ?? ExitCode.Ok;
    } catch (error) {
      code = reportError(error);
    }
    // stdout and stderr are synchronous for files, pipes and terminals on Linux: nothing is cut.
    process.exit(code);
  };
}
