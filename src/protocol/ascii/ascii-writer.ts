/** Writes a Reply in memcached's text format (protocol.txt). */
import { type Reply, Status } from '../types.js';
import type { Output } from '../output.js';

const STATUS_LINES: Record<Status, string> = {
  [Status.Stored]: 'STORED\r\n',
  [Status.NotStored]: 'NOT_STORED\r\n',
  [Status.Exists]: 'EXISTS\r\n',
  [Status.NotFound]: 'NOT_FOUND\r\n',
  [Status.Deleted]: 'DELETED\r\n',
  [Status.Touched]: 'TOUCHED\r\n',
  [Status.Ok]: 'OK\r\n',
  [Status.TooLarge]: 'SERVER_ERROR object too large for cache\r\n',
  [Status.NoMemory]: 'SERVER_ERROR out of memory storing object\r\n',
  [Status.NonNumeric]: 'CLIENT_ERROR cannot increment or decrement non-numeric value\r\n',
  [Status.InvalidArguments]: 'CLIENT_ERROR bad command line format\r\n',
};

/** `withCas`: gets/gats print each item's cas unique after its length. */
export function writeAsciiReply(output: Output, reply: Reply, withCas: boolean): void {
  switch (reply.kind) {
    case 'status':
      output.writeLatin1(STATUS_LINES[reply.status]);
      return;
    case 'values':
      for (const entry of reply.entries) {
        const header = withCas
          ? `VALUE ${entry.key} ${entry.flags} ${entry.value.length} ${entry.cas}\r\n`
          : `VALUE ${entry.key} ${entry.flags} ${entry.value.length}\r\n`;
        output.writeLatin1(header);
        output.writeBytes(entry.value);
        output.writeLatin1('\r\n');
      }
      output.writeLatin1('END\r\n');
      return;
    case 'number':
      output.writeLatin1(`${reply.value}\r\n`);
      return;
    case 'stats': {
      let text = '';
      for (const [name, value] of reply.entries) text += `STAT ${name} ${value}\r\n`;
      output.writeLatin1(text + 'END\r\n');
      return;
    }
    case 'unknownStats':
      output.writeLatin1('ERROR\r\n');
      return;
    case 'statsReset':
      output.writeLatin1('RESET\r\n');
      return;
    case 'keyDump': {
      let text = '';
      for (const { key, bytes, exptime } of reply.entries) text += `ITEM ${key} [${bytes} b; ${exptime} s]\r\n`;
      output.writeLatin1(text + 'END\r\n');
      return;
    }
    case 'version':
      output.writeLatin1(`VERSION ${reply.version}\r\n`);
      return;
    case 'quit':
      return;
    case 'serverError':
      output.writeLatin1(`SERVER_ERROR ${reply.message}\r\n`);
      return;
    case 'notAllowed':
      output.writeLatin1(`CLIENT_ERROR ${reply.message}\r\n`);
      return;
    case 'authenticated':
      // memcached -Y answers the credentials' set as any set (proto_text.c, process_update_command).
      output.writeLatin1('STORED\r\n');
      return;
    case 'authFailed':
      output.writeLatin1('CLIENT_ERROR authentication failure\r\n');
      return;
    case 'saslMechs':
      output.writeLatin1(`${reply.mechanisms}\r\n`);
      return;
  }
}
