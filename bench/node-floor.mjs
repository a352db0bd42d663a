#!/usr/bin/env node
// The floor of a memcached server on Node's net sockets: a bare binary-protocol responder
// (GET and SET of whole packets, values in a Map, no expiry, no limits, no validation) to
// run in the daemon's place, so that what Node itself costs per request can be told apart
// from what the daemon's own code costs. Not a server for anything but this measurement.
//
//   BENCH_ONLY=throughput BENCH_DAEMON_MAIN=bench/node-floor.mjs bash bench/run.sh
//   FLOOR_READ=data   ... the same, reading through 'data' events as net.Server gives them
//
// FLOOR_READ=shared (the default) reads through the daemon's own adoptAccepted (dist/, so
// build first), into one shared buffer.
import net from 'node:net';
import { adoptAccepted } from '../dist/server/accept.js';

const listenAt = process.argv.indexOf('--listen');
const [host, port] = (listenAt > 0 ? process.argv[listenAt + 1] : '127.0.0.1:11211').split(':');
const mode = process.env.FLOOR_READ ?? 'shared';
if (mode !== 'shared' && mode !== 'data') throw new Error(`FLOOR_READ must be shared or data, not ${mode}`);

const values = new Map();
const NOT_FOUND = Buffer.from('Not found');

/** Answers every whole packet in `chunk`; returns the bytes of a trailing partial packet. */
function answer(chunk, socket) {
  const replies = [];
  let offset = 0;
  while (offset + 24 <= chunk.length) {
    const opcode = chunk[offset + 1];
    const keyLength = chunk.readUInt16BE(offset + 2);
    const extrasLength = chunk[offset + 4];
    const bodyLength = chunk.readUInt32BE(offset + 8);
    if (offset + 24 + bodyLength > chunk.length) break;
    const keyStart = offset + 24 + extrasLength;
    const key = chunk.latin1Slice(keyStart, keyStart + keyLength);
    const reply = Buffer.alloc(opcode === 0x01 ? 24 : 28 + (values.get(key)?.length ?? NOT_FOUND.length));
    reply[0] = 0x81;
    reply[1] = opcode;
    chunk.copy(reply, 12, offset + 12, offset + 16); // opaque
    if (opcode === 0x01) {
      values.set(key, Buffer.from(chunk.subarray(keyStart + keyLength, offset + 24 + bodyLength)));
    } else {
      const value = values.get(key);
      reply[4] = 4; // flags
      reply.writeUInt16BE(value ? 0 : 1, 6);
      reply.writeUInt32BE(4 + (value ?? NOT_FOUND).length, 8);
      (value ?? NOT_FOUND).copy(reply, 28);
    }
    replies.push(reply);
    offset += 24 + bodyLength;
  }
  if (replies.length > 0) socket.write(replies.length === 1 ? replies[0] : Buffer.concat(replies));
  return offset < chunk.length ? Buffer.from(chunk.subarray(offset)) : null;
}

const server = net.createServer({ pauseOnConnect: true, noDelay: true }, (accepted) => {
  let held = null;
  const onChunk = (chunk) => { held = answer(held === null ? chunk : Buffer.concat([held, chunk]), socket); };
  let socket = accepted;
  if (mode === 'shared') socket = adoptAccepted(accepted, onChunk);
  else { accepted.on('data', onChunk); accepted.resume(); }
  socket.setNoDelay(true);
  socket.on('error', () => socket.destroy());
});
server.listen(Number(port), host, () => console.log(JSON.stringify({ msg: 'ready', port: server.address().port, read: mode })));
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => process.exit(0));
