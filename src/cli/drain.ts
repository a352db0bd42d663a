/**
 * `session-cluster drain` and `undrain`: hand a node's sessions to the other nodes and take it out
 * of the cluster without stopping its process, and bring it back. While drained the node answers
 * its own clients' session commands SERVER_ERROR and its health check 503, so a load balancer
 * moves its users to the other servers.
 * See docs/operations.md, "Taking a node out, and rolling restarts".
 */
import type { Command } from 'commander';
import { type DrainStatus, withAdmin } from './admin-client.js';
import { action, CliError, ExitCode } from './cli-error.js';
import { nodeOptions, type NodeOptions } from './node-address.js';
import { printJson, printLines, progressBar } from './output.js';

const POLL_MS = 200;

export function registerDrain(program: Command): void {
  nodeOptions(program.command('drain').description('hand this node\'s sessions to the other nodes and leave the cluster, keeping the process running'))
    .action(action(async (options: NodeOptions) => withAdmin(options, async (admin) => {
      const node = (await admin.members())[0]!.id;
      let status = await admin.drain('drain');
      if (status.state === 'rejoining') throw new CliError(`${node} is rejoining after an undrain: drain it once it serves`);
      const bar = progressBar(`draining ${node}`);
      try {
        while (status.state === 'draining') {
          bar.update(status.acknowledged, status.copies);
          await sleep(POLL_MS);
          status = await admin.drain('drain status');
        }
      } finally {
        bar.end();
      }
      report(options, node, status, status.outcome === 'complete'
        ? `drained ${node}: ${status.items} sessions handed over (${status.acknowledged} copies acknowledged by ${status.replacement} and the others); it serves no sessions until undrained or restarted`
        : `drain of ${node} ended ${status.outcome}: ${status.acknowledged} of ${status.copies} copies acknowledged; the rest keep their other copy, which re-replication restores`);
      return status.outcome === 'complete' ? ExitCode.Ok : ExitCode.Failed;
    })));

  nodeOptions(program.command('undrain').description('bring a drained node back into the cluster: it takes its sessions back, then serves'))
    .action(action(async (options: NodeOptions) => withAdmin(options, async (admin) => {
      const node = (await admin.members())[0]!.id;
      let status = await admin.drain('undrain');
      if (status.state === 'serving') {
        report(options, node, status, `${node} is not drained: it serves`);
        return ExitCode.Ok;
      }
      if (status.state === 'draining') throw new CliError(`${node} is draining: undrain it once the drain has ended`);
      while (status.state === 'rejoining') {
        await sleep(POLL_MS);
        status = await admin.drain('drain status');
      }
      report(options, node, status, `${node} is back: it took its sessions back and serves`);
      return ExitCode.Ok;
    })));
}

function report(options: NodeOptions, node: string, status: DrainStatus, text: string): void {
  if (options.json === true) printJson({ node, ...status });
  else printLines([text]);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
