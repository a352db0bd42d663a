/**
 * `config check FILE` and `start --dry-run`: the settings checked exactly as start checks them,
 * the effective configuration printed (never the secret), and nothing started.
 */
import { describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { SETTING_KEYS } from '../src/config.js';
import { daemonBin, freePort } from './harness.js';

const SECRET = 'correct-horse-battery-staple';

function tempDir(): string {
  return mkdtempSync(path.join(tmpdir(), 'session-cluster-config-'));
}

function writeConfig(dir: string, settings: unknown): string {
  const file = path.join(dir, 'config.json');
  writeFileSync(file, typeof settings === 'string' ? settings : JSON.stringify(settings));
  return file;
}

/** Runs the CLI with no secret in its environment unless the test gives one. */
function run(args: string[], env: Record<string, string | undefined> = {}) {
  return execa(daemonBin, args, { reject: false, timeout: 10_000, env: { SESSION_CLUSTER_SECRET: undefined, ...env } });
}

/** The "key  value" lines of the human output, as a record. */
function settingLines(stdout: string): Record<string, string> {
  return Object.fromEntries(stdout.split('\n').slice(1).filter(Boolean).map((line) => {
    const match = /^ {2}(\S+) +(.*)$/.exec(line);
    if (match === null) throw new Error(`not a setting line: ${JSON.stringify(line)}`);
    return [match[1]!, match[2]!];
  }));
}

/** Whether something accepts connections on 127.0.0.1:port. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => { socket.destroy(); resolve(true); });
    socket.once('error', () => resolve(false));
  });
}

describe('session-cluster config check', () => {
  it('prints every setting of a valid file with its effective value, the secret only as "(set)"', async () => {
    const dir = tempDir();
    const file = writeConfig(dir, { listen: '127.0.0.1:11311', memoryLimit: '2g', peerListen: '127.0.0.1:11312', clusterSecret: SECRET, logFormat: 'json' });
    const result = await run(['config', 'check', file]);
    expect(result.exitCode).toBe(0);
    expect(result.stderr).toBe('');
    expect(result.stdout.split('\n')[0]).toBe(`${file}: valid; effective configuration:`);
    const shown = settingLines(result.stdout);
    expect(Object.keys(shown)).toEqual(SETTING_KEYS);
    expect(shown).toMatchObject({
      listen: '127.0.0.1:11311', memoryLimit: String(2 * 1024 ** 3), peerListen: '127.0.0.1:11312', clusterSecret: '(set)',
      logFormat: 'json', maxItemSize: '1048576', replication: 'sync', authFile: 'none',
    });
    expect(result.stdout).not.toContain(SECRET);
  });

  it('--json prints one object with every setting', async () => {
    const dir = tempDir();
    const file = writeConfig(dir, { maxConnections: 7 });
    const result = await run(['config', 'check', file, '--json']);
    expect(result.exitCode).toBe(0);
    const parsed = JSON.parse(result.stdout) as { valid: boolean; file: string; settings: Record<string, string> };
    expect(parsed).toMatchObject({ valid: true, file });
    expect(Object.keys(parsed.settings)).toEqual(SETTING_KEYS);
    expect(parsed.settings).toMatchObject({ maxConnections: '7', listen: '127.0.0.1:11211', clusterSecret: '(not set)', logFormat: 'auto' });
  });

  it('takes the secret from SESSION_CLUSTER_SECRET, as start does, and never prints it', async () => {
    const file = writeConfig(tempDir(), { peerListen: '127.0.0.1:11312' });
    const refused = await run(['config', 'check', file]);
    expect(refused.exitCode).toBe(1);
    expect(refused.stderr).toContain('SESSION_CLUSTER_SECRET');
    const accepted = await run(['config', 'check', file], { SESSION_CLUSTER_SECRET: SECRET });
    expect(accepted.exitCode).toBe(0);
    expect(settingLines(accepted.stdout).clusterSecret).toBe('(set)');
    expect(accepted.stdout).not.toContain(SECRET);
  });

  it.each([
    [{ listen: 'nowhere' }, '"listen": "nowhere" is not HOST:PORT'],
    [{ maxItemSzie: '1m' }, 'unknown setting "maxItemSzie"'],
    [{ logFormat: 'text' }, '"logFormat": "text" is not a log format'],
    [{ clusterSecret: 'hunter2' }, '"clusterSecret": the cluster secret has 7 characters'],
  ])('refuses %j with exit 1 and one line naming the key', async (settings, problem) => {
    const file = writeConfig(tempDir(), settings);
    const result = await run(['config', 'check', file]);
    expect(result.exitCode).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr.split('\n')).toHaveLength(1);
    expect(result.stderr).toMatch(/^session-cluster: /);
    expect(result.stderr).toContain(problem);
    expect(result.stderr).not.toContain('hunter2');
  });

  it('--json says why a file is refused, in one object', async () => {
    const file = writeConfig(tempDir(), { maxConnections: 0 });
    const result = await run(['config', 'check', file, '--json']);
    expect(result.exitCode).toBe(1);
    expect(JSON.parse(result.stdout)).toEqual({ valid: false, file, error: `${file}: "maxConnections": "0" is not a whole number of at least 1` });
  });

  it('a missing or unparsable file is a failed check (exit 1) saying why', async () => {
    const dir = tempDir();
    const missing = path.join(dir, 'missing.json');
    const absent = await run(['config', 'check', missing]);
    expect(absent.exitCode).toBe(1);
    expect(absent.stderr).toMatch(new RegExp(`^session-cluster: config file: cannot read ${missing}: ENOENT`));
    const broken = writeConfig(dir, '{"listen": ');
    const unparsable = await run(['config', 'check', broken]);
    expect(unparsable.exitCode).toBe(1);
    expect(unparsable.stderr).toContain(`session-cluster: config file: ${broken} is not valid JSON`);
  });

  it('without a file it is a usage error (exit 2), one line', async () => {
    const result = await run(['config', 'check']);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toBe("session-cluster: missing required argument 'file'");
  });
});

describe('session-cluster start --dry-run', () => {
  it('prints the effective configuration from flags, file and environment, and starts nothing', async () => {
    const dir = tempDir();
    const port = await freePort();
    const socket = path.join(dir, 'sessions.sock');
    const authFile = path.join(dir, 'users');
    writeFileSync(authFile, 'php:a-password-nobody-sees\n', { mode: 0o600 });
    const file = writeConfig(dir, { maxConnections: 7, memoryLimit: '64m' });
    const result = await run([
      'start', '--dry-run', '--config', file, '--listen', `127.0.0.1:${port}`, '--socket', socket, '--memory-limit', '128m',
      '--auth-file', authFile, '--peer-listen', '127.0.0.1:0',
    ], { SESSION_CLUSTER_SECRET: SECRET });
    expect(result.exitCode).toBe(0);
    expect(result.stdout.split('\n')[0]).toBe('settings valid; effective configuration (dry run, nothing started):');
    expect(settingLines(result.stdout)).toMatchObject({
      listen: `127.0.0.1:${port}`, socket, maxConnections: '7', memoryLimit: String(128 * 1024 ** 2), authFile, clusterSecret: '(set)',
    });
    expect(result.stdout).not.toContain(SECRET);
    expect(result.stdout).not.toContain('a-password-nobody-sees');
    // Nothing was opened: no socket file left behind, and the port is still free.
    expect(existsSync(socket)).toBe(false);
    expect(await accepts(port)).toBe(false);
  });

  it('--json prints one object', async () => {
    const result = await run(['start', '--dry-run', '--json', '--max-connections', '9']);
    expect(result.exitCode).toBe(0);
    const parsed = JSON.parse(result.stdout) as { valid: boolean; settings: Record<string, string> };
    expect(parsed.valid).toBe(true);
    expect(Object.keys(parsed.settings)).toEqual(SETTING_KEYS);
    expect(parsed.settings.maxConnections).toBe('9');
  });

  it('refuses bad flags with exit 2, as start does', async () => {
    const result = await run(['start', '--dry-run', '--memory-limit', '3x']);
    expect(result.exitCode).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toBe('session-cluster: --memory-limit: "3x" is not a size; use bytes or a unit, e.g. 1048576, 512k, 64m, 1g');
  });

  it('--json without --dry-run is a usage error', async () => {
    const result = await run(['start', '--json']);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain('--json goes with --dry-run');
  });
});
