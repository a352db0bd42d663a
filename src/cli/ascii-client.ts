/**
 * The subcommands' way into a node: memcached's text protocol (protocol.txt) over one TCP or
 * unix-socket connection, one request at a time (callers may ask at once: they are queued). It
 * speaks to our daemon and to real memcached alike, which is what `probe` needs; values stay
 * bytes (a PHP session may hold any).
 */
import net from 'node:net';
import { CliError } from './cli-error.js';
import { connectSocket, firstLineOf } from './connect.js';
import { describeNode, type NodeAddress } from './node-address.js';

/** A user of the node's --auth-file, and its password. */
export interface Credentials {
  user: string;
  password: string;
}

export interface Value {
  key: string;
  flags: number;
  value: Buffer;
  cas: number;
}

/** Stops a reply that never ends (a server that is not memcached) from growing without bound. */
const MAX_REPLY_BYTES = 64 * 1024 * 1024;

/** A line or a value block found in the buffer, or null: more bytes needed. */
type Parse<T> = (buffer: Buffer) => { value: T; used: number } | null;

export class AsciiClient {
  private buffer: Buffer = Buffer.alloc(0);
  private waiting: { parse: Parse<unknown>; resolve: (value: unknown) => void; reject: (error: Error) => void } | null = null;
  private closedBecause: string | null = null;
  private timer: NodeJS.Timeout | null = null;
  private queue: Promise<void> = Promise.resolve();

  private constructor(private readonly socket: net.Socket, readonly address: NodeAddress, private readonly timeoutMs: number) {
    socket.on('data', (chunk: Buffer) => {
      this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
      this.settle();
    });
    socket.on('error', (error: NodeJS.ErrnoException) => this.fail(`connection to ${describeNode(address)} failed: ${error.code ?? error.message}`));
    socket.on('close', () => this.fail(this.buffer.length > 0
      ? this.notMemcached(`it answered ${firstLineOf(this.buffer)} and closed the connection`)
      : `${describeNode(address)} closed the connection`));
  }

  /** Connects, or fails with one line saying why (refused, no such socket, timed out). */
  static async connect(address: NodeAddress, timeoutMs = 5000): Promise<AsciiClient> {
    return new AsciiClient(await connectSocket(address, timeoutMs), address, timeoutMs);
  }

  close(): void {
    this.closedBecause ??= 'closed';
    this.socket.destroy();
  }

  /** `stats [args]`: the STAT lines as [name, value] pairs, in order. */
  async stats(args = ''): Promise<Array<[string, string]>> {
    return this.request(args === '' ? 'stats\r\n' : `stats ${args}\r\n`, parseStats);
  }

  /** `stats [args]` as a record (a later duplicate name wins). */
  async statsRecord(args = ''): Promise<Record<string, string>> {
    return Object.fromEntries(await this.stats(args));
  }

  async version(): Promise<string> {
    const line = await this.request('version\r\n', parseLine);
    // protocol.txt, "General-purpose commands": the reply is "VERSION <version>".
    if (isErrorLine(line)) throw this.unexpected('version', line);
    if (!line.startsWith('VERSION ')) throw new CliError(this.notMemcached(`it answered ${firstLineOf(Buffer.from(line, 'latin1'))}`));
    return line.slice('VERSION '.length);
  }

  /** `gets k1 k2 ...`: the values found, by key. */
  async get(keys: readonly string[]): Promise<Map<string, Value>> {
    const found = await this.request(`gets ${keys.join(' ')}\r\n`, parseValues);
    return new Map(found.map((value) => [value.key, value]));
  }

  /** `delete key`: true when the key was there. */
  async delete(key: string): Promise<boolean> {
    const line = await this.request(`delete ${key}\r\n`, parseLine);
    if (line === 'DELETED') return true;
    if (line === 'NOT_FOUND') return false;
    throw this.unexpected('delete', line);
  }

  /** `set key flags exptime bytes`: the reply line (STORED when it was stored). */
  async set(key: string, value: Buffer, exptime = 0, flags = 0): Promise<string> {
    const head = Buffer.from(`set ${key} ${flags} ${exptime} ${value.length}\r\n`, 'latin1');
    return this.request(Buffer.concat([head, value, Buffer.from('\r\n')]), parseLine);
  }

  /**
   * Logs in as a node with --auth-file expects: memcached -Y's ascii authentication, a `set` of
   * any key whose data is `user password`, answered STORED (the password never on a command line).
   */
  async authenticate(credentials: Credentials): Promise<void> {
    const line = await this.set('auth', Buffer.from(`${credentials.user} ${credentials.password}`, 'latin1'));
    if (line === 'STORED') return;
    if (line === 'CLIENT_ERROR authentication failure') throw new CliError(`${describeNode(this.address)} refused user ${credentials.user}: wrong user or password (SESSION_CLUSTER_PASSWORD)`);
    throw this.unexpected('the credentials', line);
  }

  /** Any one-line exchange (probe sends its own). */
  async line(request: string): Promise<string> {
    return this.request(`${request}\r\n`, parseLine);
  }

  /** Requests go out one after another: each waits for the reply before it, so replies never mix. */
  private request<T>(bytes: string | Buffer, parse: Parse<T | ReplyError>): Promise<T> {
    const run = this.queue.then(() => this.send(bytes, parse));
    this.queue = run.then(() => undefined, () => undefined);
    return run;
  }

  private send<T>(bytes: string | Buffer, parse: Parse<T | ReplyError>): Promise<T> {
    if (this.closedBecause !== null) return Promise.reject(new CliError(this.closedBecause));
    return new Promise<T | ReplyError>((resolve, reject) => {
      this.waiting = { parse: parse as Parse<unknown>, resolve: resolve as (value: unknown) => void, reject };
      this.timer = setTimeout(() => this.fail(`${describeNode(this.address)} did not answer in ${this.timeoutMs} ms`), this.timeoutMs);
      this.socket.write(bytes);
      this.settle();
    }).then((reply) => {
      if (reply instanceof ReplyError) throw new CliError(`${describeNode(this.address)} answered: ${reply.line}`);
      return reply;
    });
  }

  private settle(): void {
    const waiting = this.waiting;
    if (waiting === null) {
      if (this.buffer.length > 0) this.fail(this.notMemcached(`it sent ${firstLineOf(this.buffer)} unasked`));
      return;
    }
    let parsed: { value: unknown; used: number } | null;
    try {
      parsed = waiting.parse(this.buffer);
    } catch (error) {
      this.fail(this.notMemcached(`it answered ${firstLineOf(this.buffer)} (${(error as Error).message})`));
      return;
    }
    if (parsed === null) {
      if (this.buffer.length > MAX_REPLY_BYTES) this.fail(`${describeNode(this.address)} sent a reply over ${MAX_REPLY_BYTES} bytes`);
      return;
    }
    this.buffer = this.buffer.subarray(parsed.used);
    this.waiting = null;
    if (this.timer !== null) clearTimeout(this.timer);
    waiting.resolve(parsed.value);
  }

  private fail(reason: string): void {
    this.closedBecause ??= reason;
    if (this.timer !== null) clearTimeout(this.timer);
    const waiting = this.waiting;
    this.waiting = null;
    this.socket.destroy();
    waiting?.reject(new CliError(reason));
  }

  /** The reason when the other end does not speak memcached's text protocol, naming what it said. */
  private notMemcached(what: string): string {
    return `${describeNode(this.address)} is not a memcached server: ${what}`;
  }

  private unexpected(what: string, line: string): CliError {
    return new CliError(`${describeNode(this.address)} answered ${what} with "${line.slice(0, 80)}"`);
  }
}

/** An error line (ERROR, CLIENT_ERROR ..., SERVER_ERROR ...) in place of the reply asked for. */
class ReplyError {
  constructor(readonly line: string) {}
}

function isErrorLine(line: string): boolean {
  return line === 'ERROR' || line.startsWith('CLIENT_ERROR') || line.startsWith('SERVER_ERROR');
}

/** The next \r\n-terminated line at `from`, or null. A line over 64 KB is no memcached reply. */
function lineAt(buffer: Buffer, from: number): { line: string; next: number } | null {
  const end = buffer.indexOf('\r\n', from);
  if (end < 0) {
    if (buffer.length - from > 65536) throw new Error('a line over 64 KB');
    return null;
  }
  return { line: buffer.toString('latin1', from, end), next: end + 2 };
}

const parseLine: Parse<string> = (buffer) => {
  const found = lineAt(buffer, 0);
  return found === null ? null : { value: found.line, used: found.next };
};

const parseStats: Parse<Array<[string, string]> | ReplyError> = (buffer) => {
  const entries: Array<[string, string]> = [];
  let at = 0;
  for (;;) {
    const found = lineAt(buffer, at);
    if (found === null) return null;
    at = found.next;
    if (found.line === 'END') return { value: entries, used: at };
    if (isErrorLine(found.line)) return { value: new ReplyError(found.line), used: at };
    if (!found.line.startsWith('STAT ')) throw new Error(`"${found.line.slice(0, 60)}" where STAT lines were expected`);
    const rest = found.line.slice(5);
    const space = rest.indexOf(' ');
    entries.push(space < 0 ? [rest, ''] : [rest.slice(0, space), rest.slice(space + 1)]);
  }
};

const parseValues: Parse<Value[] | ReplyError> = (buffer) => {
  const values: Value[] = [];
  let at = 0;
  for (;;) {
    const found = lineAt(buffer, at);
    if (found === null) return null;
    if (found.line === 'END') return { value: values, used: found.next };
    if (isErrorLine(found.line)) return { value: new ReplyError(found.line), used: found.next };
    // VALUE <key> <flags> <bytes> [<cas unique>] (protocol.txt, "Retrieval command")
    const parts = found.line.split(' ');
    if (parts[0] !== 'VALUE' || parts.length < 4) throw new Error(`"${found.line.slice(0, 60)}" where VALUE or END was expected`);
    const bytes = Number(parts[3]);
    if (!Number.isInteger(bytes) || bytes < 0) throw new Error(`a VALUE line with length "${parts[3]}"`);
    if (buffer.length < found.next + bytes + 2) return null;
    values.push({ key: parts[1]!, flags: Number(parts[2]), value: Buffer.from(buffer.subarray(found.next, found.next + bytes)), cas: Number(parts[4] ?? 0) });
    at = found.next + bytes + 2;
  }
};
