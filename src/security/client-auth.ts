/**
 * Client authentication (--auth-file; docs/security.md), as memcached 1.6 does it:
 *
 * - binary protocol: SASL with the PLAIN mechanism (LIST MECHS, AUTH, STEP; binary spec, "SASL").
 *   php-memcached authenticates its session handler this way (memcached.sess_sasl_username and
 *   memcached.sess_sasl_password, binary protocol);
 * - ascii protocol: memcached's -Y: the first command is a `set` whose data is `user password`
 *   (any key, flags and exptime), answered STORED.
 *
 * Until a connection has authenticated, every other command gets the auth error (binary status
 * 0x20) or `CLIENT_ERROR unauthenticated`; only quit and no-op pass. A failed attempt is counted
 * (auth_errors), logged with the user name and address but never the password, and answered
 * after a delay that doubles with each failure on the connection, so guessing is slow. The check
 * is made by the node the client is connected to, before routing: a forwarded command was
 * authenticated there, and the peers trust each other through the cluster secret.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { ConfigError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Execute } from '../protocol/handler.js';
import { type Reply, StoreMode } from '../protocol/types.js';

/** The first failure on a connection is answered after this long; each next one after twice as long. */
const FAILURE_DELAY_MS = 100;
const FAILURE_DELAY_MAX_MS = 2000;

/** The users of --auth-file: memcached's SASL password database format, `user:password` a line. */
export class AuthFile {
  private constructor(readonly path: string, private readonly users: ReadonlyMap<string, Buffer>) {}

  /**
   * Reads `path`. Refuses a file every user may read (the passwords are in clear, as in
   * memcached's), one with no user, and lines that are not `user:password`.
   */
  static read(path: string, name: string): AuthFile {
    let mode: number;
    let text: string;
    try {
      mode = statSync(path).mode;
      text = readFileSync(path, 'utf8');
    } catch (error) {
      throw new ConfigError(`${name}: cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
    if ((mode & 0o004) !== 0) {
      throw new ConfigError(`${name}: ${path} is readable by every user (mode ${(mode & 0o777).toString(8).padStart(4, '0')}); `
        + 'it holds passwords: make it readable by the service user only (chmod 0600, or 0640 with its group)');
    }
    const users = new Map<string, Buffer>();
    text.split('\n').forEach((raw, index) => {
      const line = raw.replace(/\r$/, '');
      if (line.trim() === '' || line.startsWith('#')) return;
      const colon = line.indexOf(':');
      if (colon <= 0 || colon === line.length - 1) throw new ConfigError(`${name}: ${path} line ${index + 1} is not user:password`);
      users.set(line.slice(0, colon), digest(line.slice(colon + 1)));
    });
    if (users.size === 0) throw new ConfigError(`${name}: ${path} names no user (one user:password a line)`);
    return new AuthFile(path, users);
  }

  /** Whether `password` is `user`'s, in time that does not depend on where they differ. */
  verify(user: string, password: string): boolean {
    // An unknown user costs the same comparison as a known one.
    const same = timingSafeEqual(this.users.get(user) ?? NO_USER, digest(password));
    return same && this.users.has(user);
  }
}

const NO_USER = Buffer.alloc(32);

function digest(password: string): Buffer {
  return createHash('sha256').update(password, 'utf8').digest();
}

export class AuthCounters {
  /** authentication attempts (memcached's auth_cmds) */
  attempts = 0;
  /** failed ones (memcached's auth_errors) */
  failures = 0;
}

/** The node's client authentication: the users, the counters, the log. */
export class ClientAuth {
  readonly counters = new AuthCounters();

  constructor(private readonly file: AuthFile, private readonly log: Logger) {}

  /** The gate of one connection, speaking `protocol`, from `remote`. */
  forConnection(protocol: 'ascii' | 'binary', remote: string): ConnectionAuth {
    return new ConnectionAuth(this, protocol, remote);
  }

  /** Checks credentials, counts and logs the attempt. */
  check(user: string, password: string, remote: string, how: string): boolean {
    this.counters.attempts++;
    if (this.file.verify(user, password)) return true;
    this.counters.failures++;
    // The user name is the client's to choose: shown, but cut short.
    this.log.warn({ user: user.slice(0, 64), remote, how, totalFailures: this.counters.failures }, 'client authentication failed');
    return false;
  }
}

/** One connection's authentication: nothing but authenticating passes until it has. */
export class ConnectionAuth {
  private authenticated = false;
  private failures = 0;

  constructor(private readonly auth: ClientAuth, private readonly protocol: 'ascii' | 'binary', private readonly remote: string) {}

  wrap(execute: Execute): Execute {
    return (command) => {
      if (command.kind === 'saslList') return { kind: 'saslMechs', mechanisms: 'PLAIN' };
      if (command.kind === 'saslAuth') return this.answer(this.sasl(command.mechanism, command.data));
      if (this.authenticated || command.kind === 'quit') return execute(command);
      // memcached -Y: an ascii connection authenticates with a set whose data is "user password".
      if (this.protocol === 'ascii' && command.kind === 'store' && command.mode === StoreMode.Set) return this.answer(this.ascii(command.value));
      return { kind: 'notAllowed', message: 'unauthenticated' };
    };
  }

  /** SASL PLAIN (RFC 4616): [authzid] NUL authcid NUL passwd. */
  private sasl(mechanism: string, data: Buffer): boolean {
    if (mechanism !== 'PLAIN') return this.auth.check('', '', this.remote, `sasl ${mechanism.slice(0, 20)}`);
    const first = data.indexOf(0);
    const second = first < 0 ? -1 : data.indexOf(0, first + 1);
    if (second < 0) return this.auth.check('', '', this.remote, 'sasl PLAIN, malformed');
    return this.auth.check(data.toString('utf8', first + 1, second), data.toString('utf8', second + 1), this.remote, 'sasl PLAIN');
  }

  private ascii(value: Buffer): boolean {
    const text = value.toString('utf8').replace(/\r?\n$/, '');
    const space = text.indexOf(' ');
    if (space <= 0) return this.auth.check('', '', this.remote, 'ascii, malformed');
    return this.auth.check(text.slice(0, space), text.slice(space + 1), this.remote, 'ascii');
  }

  private answer(ok: boolean): Reply | Promise<Reply> {
    if (ok) {
      this.authenticated = true;
      this.failures = 0;
      return { kind: 'authenticated' };
    }
    // A wrong password costs the client time, more with each try on the connection; a failed
    // attempt after a good one leaves the connection unauthenticated.
    this.authenticated = false;
    const delay = Math.min(FAILURE_DELAY_MAX_MS, FAILURE_DELAY_MS * 2 ** this.failures);
    this.failures++;
    return new Promise((resolve) => setTimeout(() => resolve({ kind: 'authFailed' }), delay));
  }
}
