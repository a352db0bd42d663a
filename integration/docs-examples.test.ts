/**
 * Every `session-cluster` command line the docs show runs as written, in the order written,
 * against a live two-node cluster: the README's and docs/*.md's code blocks are read, and each
 * line that runs a subcommand (not `start` itself, which the other tests run) is run. Only what
 * cannot be used here is replaced: the addresses (a test may not bind 127.0.0.1:11211, nor send
 * traffic off the machine), the config file's path, and a session id the docs make up, which the
 * test writes first. A node that the docs leave to the default address gets --node. The examples
 * that show a failure (a closed port, an HTTP server) must fail with exit 1; every other must
 * succeed.
 */
import { readdirSync, readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLiveCluster, stopCluster, type Cluster } from './cluster-harness.js';
import { daemonBin, freePort, repoRoot } from './harness.js';
import { exchange } from './raw-client.js';

/** A command line in a docs code block, where it was found. */
interface Example { file: string; line: number; text: string }

/** Subcommands that talk to a node through --node (the others take an address argument, or none). */
const WITH_NODE = /^(status|sessions|locks|drain|undrain)\b/;
/** The session id the docs use in their examples. */
const DOCS_SESSION_ID = '3g2783q0fidovr8aaabr4tgs9e';

function docsExamples(): Example[] {
  const files = ['README.md', ...readdirSync(path.join(repoRoot, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
  const examples: Example[] = [];
  for (const file of files) {
    let inBlock = false;
    readFileSync(path.join(repoRoot, file), 'utf8').split('\n').forEach((raw, i) => {
      if (raw.trimStart().startsWith('```')) {
        inBlock = !inBlock;
        return;
      }
      if (!inBlock) return;
      const match = /^\s*(?:\$ )?(?:bin\/)?session-cluster (.+)$/.exec(raw);
      if (match === null) return;
      // What a shell would run of it: no comment, nothing piped on (jq may not be installed).
      const text = match[1]!.replace(/\s+#.*$/, '').replace(/\s+\|.*$/, '').trim();
      if (/^start\b/.test(text) && !text.includes('--dry-run')) return;
      examples.push({ file, line: i + 1, text });
    });
  }
  return examples;
}

describe('the command lines in the docs run as written', () => {
  let cluster: Cluster;
  let http404: http.Server;
  let httpPort: number;
  let closedPort: number;
  let configFile: string;
  let socketPath: string;
  const examples = docsExamples();

  beforeAll(async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'sc-docs-'));
    socketPath = path.join(dir, 'sessions.sock');
    configFile = path.join(dir, 'config.json');
    writeFileSync(configFile, JSON.stringify({ listen: '127.0.0.1:11211', memoryLimit: '256m', logLevel: 'info' }));
    cluster = await startLiveCluster(2, { perNodeArgs: ({ id }) => (id === 'node1' ? ['--socket', socketPath] : []) });
    http404 = http.createServer((_request, response) => response.writeHead(404).end());
    await new Promise<void>((resolve) => http404.listen(0, '127.0.0.1', resolve));
    httpPort = (http404.address() as { port: number }).port;
    closedPort = await freePort();
    // The session the examples show, find and delete: user 42's.
    const value = 'user_id|i:42;name|s:5:"alice";';
    const { reply } = await exchange(cluster.nodes[0]!, `set memc.sess.key.${DOCS_SESSION_ID} 0 0 ${value.length}\r\n${value}\r\n`, /\r\n$/);
    expect(reply).toBe('STORED\r\n');
  }, 60_000);

  afterAll(async () => {
    await stopCluster(cluster);
    await new Promise((resolve) => http404?.close(resolve));
  });

  it('finds the examples', () => {
    const texts = examples.map((e) => e.text.split(' ').slice(0, 2).join(' '));
    for (const expected of ['status', 'sessions show', 'sessions find', 'sessions delete', 'sessions count', 'sessions top', 'locks', 'drain', 'undrain', 'probe 127.0.0.1:11211', 'config check']) {
      expect(texts.some((t) => t.startsWith(expected)), expected).toBe(true);
    }
  });

  it('each one, in order', async () => {
    const [node1, node2] = cluster.nodes as [Cluster['nodes'][0], Cluster['nodes'][0]];
    const node = `127.0.0.1:${node1!.port}`;
    for (const example of examples) {
      const failureShown = example.text.includes('127.0.0.1:11299') || example.text.includes('127.0.0.1:80');
      let text = example.text
        .replaceAll('127.0.0.1:11299', `127.0.0.1:${closedPort}`)
        .replace(/127\.0\.0\.1:80\b/, `127.0.0.1:${httpPort}`)
        .replaceAll('127.0.0.1:11211', node)
        .replaceAll('tcp://10.0.0.2:11211', `tcp://127.0.0.1:${node2!.port}`)
        .replaceAll('unix:/run/session-cluster/sessions.sock', `unix:${socketPath}`)
        .replaceAll('/etc/session-cluster/config.json', configFile);
      if (WITH_NODE.test(text) && !text.includes('--node')) text += ` --node ${node}`;
      const args = text.split(/\s+/);
      const run = await execa(daemonBin, args, { reject: false, timeout: 60_000, stdin: 'ignore', env: { SESSION_CLUSTER_SECRET: undefined } });
      const where = `${example.file}:${example.line}: session-cluster ${example.text}\nran: ${args.join(' ')}\nexit ${run.exitCode}\nstdout: ${run.stdout}\nstderr: ${run.stderr}`;
      expect(run.exitCode, where).toBe(failureShown ? 1 : 0);
      expect(String(run.stderr), where).not.toMatch(/\n\s+at /);
    }
  }, 240_000);
});
