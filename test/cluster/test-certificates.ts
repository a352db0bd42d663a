/**
 * Throwaway certificates for the peer TLS tests, made with the openssl CLI in a temporary
 * directory: CAs, and node certificates signed by one of them (ECDSA P-256, valid for a week,
 * usable as TLS server and client, as peer links need). Call remove() when done.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface NodeCertificate {
  /** PEM certificate */
  cert: string;
  /** PEM private key, unencrypted */
  key: string;
}

/** A peer link certificate: an end entity for both roles (RFC 5280 §4.2.1.12, id-kp-serverAuth and id-kp-clientAuth). */
const NODE_EXTENSIONS = [
  'basicConstraints = critical, CA:FALSE',
  'keyUsage = critical, digitalSignature',
  'extendedKeyUsage = serverAuth, clientAuth',
].join('\n');

export class TestCertificates {
  readonly dir = mkdtempSync(join(tmpdir(), 'session-cluster-tls-'));
  private readonly extensions = join(this.dir, 'node-extensions.cnf');

  constructor() {
    writeFileSync(this.extensions, `${NODE_EXTENSIONS}\n`);
  }

  /** A self-signed CA; its certificate is `<dir>/<name>.crt`, which is returned. */
  ca(name: string): string {
    const cert = join(this.dir, `${name}.crt`);
    openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
      '-keyout', join(this.dir, `${name}.key`), '-out', cert, '-days', '7', '-subj', `/CN=${name}`,
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
    return cert;
  }

  /** A node certificate signed by the CA `caName` (made with ca() first). */
  node(name: string, caName: string): NodeCertificate {
    const key = join(this.dir, `${name}.key`);
    const request = join(this.dir, `${name}.csr`);
    const cert = join(this.dir, `${name}.crt`);
    openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', request, '-subj', `/CN=${name}`);
    openssl('x509', '-req', '-in', request, '-CA', join(this.dir, `${caName}.crt`), '-CAkey', join(this.dir, `${caName}.key`),
      '-CAcreateserial', '-CAserial', join(this.dir, `${caName}.srl`), '-days', '7', '-extfile', this.extensions, '-out', cert);
    return { cert, key };
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function openssl(...args: string[]): void {
  try {
    execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (error) {
    const stderr = (error as { stderr?: Buffer }).stderr?.toString() ?? '';
    throw new Error(`openssl ${args[0]} failed (is the openssl package installed? scripts/install-test-deps.sh installs it): ${(error as Error).message}\n${stderr}`);
  }
}
