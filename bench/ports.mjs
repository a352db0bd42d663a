// Ports for the servers a bench script starts (bench/peer-cost.mjs, bench/connection-cost.mjs).
import net from 'node:net';

/** A port nobody listens on right now on 127.0.0.1 (the kernel picks it, then it is released). */
export function freePort() {
  return new Promise((resolve) => { const s = net.createServer(); s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); }); });
}

/** Settles once `port` accepts connections; rejects if `child` exits first or after `ms`. */
export function waitPort(port, child, ms = 30000) {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const tryOnce = () => {
      if (child.exitCode !== null) return reject(new Error(`exited during startup (${child.exitCode})`));
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => { s.destroy(); resolve(); });
      s.once('error', () => { s.destroy(); if (Date.now() - t0 > ms) reject(new Error(`port ${port} not open`)); else setTimeout(tryOnce, 100); });
    };
    tryOnce();
  });
}
