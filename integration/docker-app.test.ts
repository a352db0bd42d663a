/**
 * The demo page of the Docker examples (docker/app/index.php), run by PHP's own session module
 * outside Docker: it must not show a count its session did not keep. Its save handler is PHP's
 * files handler whose writes fail on demand (integration/php/failing-session-writes.php), as a
 * write does when the daemon stops in the middle of a request; PHP 8.2's session_write_close()
 * answers true then, so only the page's own check of PHP's warning stands between the user and a
 * count that was never saved (the cluster example's test, integration/docker.test.ts, meets this
 * only when a stop falls between a request's read and its write).
 */
import { execa } from 'execa';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from './harness.js';
import { PHP } from './php-harness.js';

const PAGE = path.join(repoRoot, 'docker', 'app', 'index.php');
const PREPEND = path.join(repoRoot, 'integration', 'php', 'failing-session-writes.php');
const ID = 'dockerapptest0123456789abcdef';
let dir = '';

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'docker-app-'));
});

afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

/** One request for the page with the session cookie ID: its body (the CLI prints no status). */
async function visit(writesFail: boolean): Promise<string> {
  const r = await execa(PHP, [
    '-n', '-d', `session.save_path=${dir}`, '-d', 'session.use_cookies=0', '-d', 'session.use_strict_mode=0',
    '-d', `auto_prepend_file=${PREPEND}`, '-d', 'display_errors=0', '-d', 'log_errors=0', PAGE,
  ], { env: { SESSION_ID: ID, SESSION_WRITES_FAIL: writesFail ? '1' : '0' }, reject: false });
  expect(r.exitCode, r.stderr).toBe(0);
  return r.stdout;
}

describe('docker/app/index.php', () => {
  it('answers "not saved" instead of a count when the session write fails, and the count stays as saved', async () => {
    expect(await visit(false)).toMatch(/^visits:\s+1$/m);
    expect(await visit(false)).toMatch(/^visits:\s+2$/m);
    const failed = await visit(true);
    expect(failed).toBe('session not saved, try again');
    // Only what was saved counts: the next request sees 2, and makes it 3.
    expect(await visit(false)).toMatch(/^visits:\s+3$/m);
    expect(await fs.readFile(path.join(dir, `sess_${ID}`), 'utf8')).toBe('visits|i:3;');
  });
});
