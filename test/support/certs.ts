/**
 * A throw-away PKI for the mTLS tests, made with the openssl CLI (OpenSSL 3) in a temporary directory:
 * two unrelated CAs, a server certificate for localhost, and client certificates that are valid,
 * from the other CA, expired, and revoked (with a CRL). EC P-256 keys keep it to about a second.
 */
import { execFile } from 'node:child_process';
import https from 'node:https';
import type { TLSSocket } from 'node:tls';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Run openssl; the config reads the client SAN from the environment, so it must always be set. */
function openssl(args: readonly string[], san = 'DNS:unused') {
  return run('openssl', args, { env: { ...process.env, CLIENT_SAN: san } });
}

export interface KeyPair {
  /** PEM certificate. */
  cert: string;
  /** PEM private key (unencrypted). */
  key: string;
  /** Path of the certificate file, for openssl commands in tests. */
  certPath: string;
}

export interface TestPki {
  dir: string;
  /** The CA that issued the server and the trusted client certificates. */
  ca: KeyPair;
  /** An unrelated CA: its certificates must never be admitted. */
  otherCa: KeyPair;
  /** CRL of `ca`, listing `revoked`. */
  crl: string;
  /** Server certificate for DNS:localhost, IP:127.0.0.1, IP:::1. */
  server: KeyPair;
  /** SAN URI spiffe://caduceus/billing, CN billing-service. */
  client: KeyPair;
  /** SAN DNS reports.internal only (no URI), CN reports-service. */
  dnsClient: KeyPair;
  /** No SAN; CN lab-gateway. */
  cnClient: KeyPair;
  /** spiffe://caduceus/billing again, but issued by `otherCa`. */
  foreignClient: KeyPair;
  /** Issued by `ca`, valid 2020-01-01 to 2021-01-01. */
  expiredClient: KeyPair;
  /** Issued by `ca`, then revoked (listed in `crl`). */
  revokedClient: KeyPair;
  /** Issue one more client certificate from `ca` (SAN URI `spiffe://caduceus/<cn>`); one call at a time. */
  issueClient(cn: string): Promise<KeyPair>;
  /** Issue a new server certificate for localhost from `ca` (a renewal). */
  renewServer(): Promise<KeyPair>;
  /** Revoke a certificate of `ca` and return a new CRL listing it and every one revoked before. */
  revoke(pair: KeyPair): Promise<string>;
  /** Remove the directory. */
  cleanup(): Promise<void>;
}

function config(dir: string): string {
  return `[ ca ]
default_ca = test_ca

[ test_ca ]
dir = ${dir}
database = $dir/index.txt
new_certs_dir = $dir/newcerts
serial = $dir/serial
crlnumber = $dir/crlnumber
certificate = $dir/ca.crt
private_key = $dir/ca.key
default_md = sha256
default_days = 30
default_crl_days = 30
policy = policy_any
unique_subject = no
email_in_dn = no
copy_extensions = none

[ policy_any ]
commonName = supplied

[ req ]
distinguished_name = req_dn
prompt = no

[ req_dn ]
CN = placeholder

[ v3_ca ]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[ server_ext ]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1
authorityKeyIdentifier = keyid

[ client_ext ]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
authorityKeyIdentifier = keyid
subjectAltName = $ENV::CLIENT_SAN

[ client_ext_nosan ]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
authorityKeyIdentifier = keyid
`;
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

interface Ca {
  dir: string;
  cnf: string;
  pair: KeyPair;
}

async function makeCa(root: string, name: string, cn: string): Promise<Ca> {
  const dir = join(root, name);
  await mkdir(join(dir, 'newcerts'), { recursive: true });
  await writeFile(join(dir, 'index.txt'), '');
  await writeFile(join(dir, 'serial'), '1000\n');
  await writeFile(join(dir, 'crlnumber'), '1000\n');
  const cnf = join(dir, 'openssl.cnf');
  await writeFile(cnf, config(dir));
  const certPath = join(dir, 'ca.crt');
  // prettier-ignore
  await openssl([
    'req', '-x509', '-new', ...EC, '-config', cnf, '-extensions', 'v3_ca',
    '-keyout', join(dir, 'ca.key'), '-out', certPath, '-days', '3650', '-subj', `/CN=${cn}`,
  ]);
  return { dir, cnf, pair: await readPair(certPath, join(dir, 'ca.key')) };
}

async function readPair(certPath: string, keyPath: string): Promise<KeyPair> {
  const [cert, key] = await Promise.all([readFile(certPath, 'utf8'), readFile(keyPath, 'utf8')]);
  return { cert, key, certPath };
}

interface IssueOptions {
  cn: string;
  /** subjectAltName value, e.g. `URI:spiffe://x`; none when omitted. */
  san?: string;
  extensions?: 'server_ext' | 'client_ext';
  /** `openssl ca` dates (YYYYMMDDHHMMSSZ); default: now for 30 days. */
  startdate?: string;
  enddate?: string;
}

async function issue(ca: Ca, name: string, options: IssueOptions): Promise<KeyPair> {
  const keyPath = join(ca.dir, `${name}.key`);
  const csrPath = join(ca.dir, `${name}.csr`);
  const certPath = join(ca.dir, `${name}.crt`);
  // prettier-ignore
  await openssl([
    'req', '-new', ...EC, '-config', ca.cnf, '-keyout', keyPath, '-out', csrPath, '-subj', `/CN=${options.cn}`,
  ]);
  const extensions = options.extensions ?? (options.san === undefined ? 'client_ext_nosan' : 'client_ext');
  const dates =
    options.startdate === undefined
      ? []
      : ['-startdate', options.startdate, '-enddate', options.enddate ?? options.startdate];
  await openssl(
    ['ca', '-batch', '-notext', '-config', ca.cnf, '-extensions', extensions, ...dates].concat([
      '-in',
      csrPath,
      '-out',
      certPath,
    ]),
    options.san,
  );
  return readPair(certPath, keyPath);
}

/** Build the whole PKI in a fresh temporary directory. */
export async function createTestPki(): Promise<TestPki> {
  const root = await mkdtemp(join(tmpdir(), 'caduceus-mtls-'));
  try {
    const [ca, other] = await Promise.all([
      makeCa(root, 'ca', 'Caduceus Test CA'),
      makeCa(root, 'other-ca', 'Unrelated Test CA'),
    ]);
    // `openssl ca` appends to index.txt and bumps the serial: one at a time per CA.
    const server = await issue(ca, 'server', { cn: 'localhost', extensions: 'server_ext' });
    const client = await issue(ca, 'client', { cn: 'billing-service', san: 'URI:spiffe://caduceus/billing' });
    const dnsClient = await issue(ca, 'dns-client', { cn: 'reports-service', san: 'DNS:reports.internal' });
    const cnClient = await issue(ca, 'cn-client', { cn: 'lab-gateway' });
    const expiredClient = await issue(ca, 'expired', {
      cn: 'expired-service',
      san: 'URI:spiffe://caduceus/expired',
      startdate: '20200101000000Z',
      enddate: '20210101000000Z',
    });
    const revokedClient = await issue(ca, 'revoked', {
      cn: 'revoked-service',
      san: 'URI:spiffe://caduceus/revoked',
    });
    const crlPath = join(ca.dir, 'crl.pem');
    const revoke = async (pair: KeyPair): Promise<string> => {
      await openssl(['ca', '-batch', '-config', ca.cnf, '-revoke', pair.certPath]);
      await openssl(['ca', '-batch', '-config', ca.cnf, '-gencrl', '-out', crlPath]);
      return readFile(crlPath, 'utf8');
    };
    const crl = await revoke(revokedClient);
    let renewals = 0;
    const foreignClient = await issue(other, 'foreign', {
      cn: 'billing-service',
      san: 'URI:spiffe://caduceus/billing',
    });
    return {
      dir: root,
      ca: ca.pair,
      otherCa: other.pair,
      crl,
      server,
      client,
      dnsClient,
      cnClient,
      foreignClient,
      expiredClient,
      revokedClient,
      issueClient: (cn) => issue(ca, cn, { cn, san: `URI:spiffe://caduceus/${cn}` }),
      renewServer: () =>
        issue(ca, `server-${String(++renewals)}`, { cn: 'localhost', extensions: 'server_ext' }),
      revoke,
      cleanup: () => rm(root, { recursive: true, force: true }),
    };
  } catch (err) {
    await rm(root, { recursive: true, force: true });
    throw err;
  }
}

/** `openssl x509 -outform DER | openssl dgst -sha256 -binary`, base64url: the RFC 8705 `x5t#S256`. */
export async function opensslThumbprint(certPath: string): Promise<string> {
  const derPath = `${certPath}.der`;
  await run('openssl', ['x509', '-in', certPath, '-outform', 'DER', '-out', derPath]);
  const digest = await run('openssl', ['dgst', '-sha256', '-binary', derPath], { encoding: 'buffer' });
  return digest.stdout.toString('base64url');
}

/** `openssl x509 -fingerprint -sha256`: colon-separated upper-case hex. */
export async function opensslFingerprint(certPath: string): Promise<string> {
  const { stdout } = await run('openssl', ['x509', '-in', certPath, '-noout', '-fingerprint', '-sha256']);
  return stdout.trim().replace(/^.*=/, '');
}

export interface HttpsReply {
  status: number;
  /** The `Connection` response header (`close` when the server ends the connection after it). */
  connection: string | undefined;
  /** Serial number of the certificate the server presented. */
  serverSerial: string;
  /** Whether the TLS session was resumed rather than negotiated in full. */
  reused: boolean;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- parsed JSON, read by assertions (like supertest's body)
  body: Record<string, any>;
}

export interface HttpsGetOptions {
  /** Client certificate to present; none when omitted. */
  as?: KeyPair;
  headers?: Record<string, string>;
  agent?: https.Agent;
}

/** One HTTPS GET to 127.0.0.1 with node's client, trusting `ca`, as a service would call another. */
export function httpsGet(
  ca: string,
  port: number,
  path: string,
  options: HttpsGetOptions = {},
): Promise<HttpsReply> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
        path,
        ca,
        cert: options.as?.cert,
        key: options.as?.key,
        agent: options.agent ?? false,
        headers: options.headers,
      },
      (res) => {
        // Read now: a kept-alive socket is detached from the response at its end.
        const socket = res.socket as TLSSocket;
        const serverSerial = socket.getPeerCertificate().serialNumber;
        const reused = socket.isSessionReused();
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => {
          resolve({
            status: res.statusCode ?? 0,
            connection: res.headers.connection,
            serverSerial,
            reused,
            body: text === '' ? {} : JSON.parse(text),
          });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
}
