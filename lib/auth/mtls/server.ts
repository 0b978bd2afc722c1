/**
 * `createMtlsServer()`: an https server that asks every client for a certificate issued by the
 * given CA, with renegotiation disabled and refused handshakes logged.
 */
import type { X509Certificate } from 'node:crypto';
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import type { SecureContextOptions, TLSSocket } from 'node:tls';
import { createSecureContext } from 'node:tls';
import type { Settings } from '../../config/index.js';
import { loadSettings } from '../../config/index.js';
import { ConfigError, isError, readOptions } from '../../errors/index.js';
import type { Logger } from '../../logging/index.js';
import { createLogger, logSecurityEvent } from '../../logging/index.js';
import type { PemInput } from './certificate.js';
import { certificatesIn, isPemInput, pemList } from './certificate.js';
import { TLS_ERRORS, tlsErrorCode } from './refusals.js';

type TlsVersion = 'TLSv1.2' | 'TLSv1.3';

/** https.ServerOptions that are safe to pass through: they cannot weaken client authentication. */
type PassThrough =
  | 'passphrase'
  | 'ciphers'
  | 'ecdhCurve'
  | 'sigalgs'
  | 'honorCipherOrder'
  | 'sessionTimeout'
  | 'ticketKeys'
  | 'handshakeTimeout'
  | 'requestTimeout'
  | 'headersTimeout'
  | 'keepAliveTimeout'
  | 'maxHeaderSize'
  | 'keepAlive'
  | 'keepAliveInitialDelay'
  | 'noDelay'
  | 'requireHostHeader'
  | 'connectionsCheckingInterval';

export interface MtlsServerOptions extends Pick<https.ServerOptions, PassThrough> {
  /** Server certificate chain (PEM). Required. */
  cert: PemInput;
  /** Server private key (PEM); `passphrase` if it is encrypted. Required. */
  key: PemInput;
  /** CA certificate(s) that issue client certificates (PEM). Required: the public roots are never trusted for clients. */
  ca: PemInput;
  /** Certificate revocation list(s) (PEM) checked on every handshake. Default: none. */
  crl?: PemInput;
  /**
   * `true`: the handshake refuses a missing or unverified client certificate. `false`: the connection
   * is accepted and `mtls()` decides per route, answering in the JSON error envelope — then every
   * route that needs a certificate must use `mtls()`. Default `true`.
   */
  rejectUnauthorized?: boolean;
  /** Lowest TLS version accepted: `TLSv1.2` or `TLSv1.3`. Default `TLSv1.2`. */
  minVersion?: TlsVersion;
  /** Highest TLS version offered. Default: Node's (`TLSv1.3`). */
  maxVersion?: TlsVersion;
  /** Logger for refused handshakes. Default `createLogger('mtls')`. */
  logger?: Logger;
  /** Settings for the default logger. Default: `loadSettings(process.env)`. */
  settings?: Settings;
}

/** What `updateCredentials()` replaces; what it leaves out stays as it is. */
export interface MtlsCredentials {
  /** New server certificate chain (PEM); give `key` with it. */
  cert?: PemInput;
  /** New server private key (PEM). */
  key?: PemInput;
  /** Passphrase of the new key. */
  passphrase?: string;
  /** New client CA certificate(s) (PEM): clients issued by a CA left out are refused from now on. */
  ca?: PemInput;
  /** New certificate revocation list(s) (PEM), or `null` to check no CRL any more. */
  crl?: PemInput | null;
  /**
   * New session ticket keys (48 bytes). Required with `ca` or `crl` when the server was given
   * `ticketKeys`: a session resumed from a ticket of the old keys keeps its old verdict.
   */
  ticketKeys?: Buffer;
}

/** The https server `createMtlsServer()` returns. */
export interface MtlsServer extends https.Server {
  /**
   * Replace the server certificate, the client CAs or the CRL without a restart. New handshakes use
   * them at once, and every connection made before is closed — idle ones now, busy ones after their
   * current answer (`Connection: close`) — so each client is checked again under the new
   * credentials: a certificate revoked in the new CRL gets no further request through. Invalid
   * input throws a `ConfigError` and the current credentials stay.
   *
   * @example
   * fs.watchFile(crlPath, () => server.updateCredentials({ crl: fs.readFileSync(crlPath) }));
   */
  updateCredentials(update: Readonly<MtlsCredentials>): void;
}

const CREDENTIALS_KNOWN = [
  'cert',
  'key',
  'passphrase',
  'ca',
  'crl',
  'ticketKeys',
] as const satisfies readonly (keyof MtlsCredentials)[];

/** The response a connection is answering (or answered last): set per request, read on an update. */
const CURRENT = Symbol('caduceus.mtls.current');
type TrackedSocket = Socket & { [CURRENT]?: ServerResponse };

// prettier-ignore
const SERVER_KNOWN = [
  'cert', 'key', 'ca', 'crl', 'rejectUnauthorized', 'minVersion', 'maxVersion', 'logger', 'settings',
  'passphrase', 'ciphers', 'ecdhCurve', 'sigalgs', 'honorCipherOrder', 'sessionTimeout', 'ticketKeys',
  'handshakeTimeout', 'requestTimeout', 'headersTimeout', 'keepAliveTimeout', 'maxHeaderSize', 'keepAlive',
  'keepAliveInitialDelay', 'noDelay', 'requireHostHeader', 'connectionsCheckingInterval',
] as const satisfies readonly (keyof MtlsServerOptions)[];
const TLS_VERSIONS: readonly string[] = ['TLSv1.2', 'TLSv1.3'];

/** `cert`, `key`, `ca` (required unless `partial`) and `crl` are PEM; `ca` holds a certificate. */
function checkPem(where: string, options: Readonly<MtlsCredentials>, partial: boolean): void {
  for (const name of ['cert', 'key', 'ca', 'crl'] as const) {
    const value = options[name];
    // Absent: fine for an update, and for the CRL always. `crl: null` (drop it) only in an update.
    if (value === undefined && (partial || name === 'crl')) continue;
    if (value === null && partial && name === 'crl') continue;
    if (!isPemInput(value))
      throw ConfigError.option(where, name, 'PEM text (string or Buffer, or an array)', value);
  }
  if (options.ca === undefined) return;
  let cas: X509Certificate[];
  try {
    cas = certificatesIn(options.ca);
  } catch {
    cas = [];
  }
  if (cas.length === 0) throw ConfigError.option(where, 'ca', 'PEM CA certificate(s)', options.ca);
}

function checkServerOptions(options: Readonly<Partial<MtlsServerOptions>>): void {
  checkPem('createMtlsServer', options, false);
  if (options.rejectUnauthorized !== undefined && typeof options.rejectUnauthorized !== 'boolean')
    throw ConfigError.option(
      'createMtlsServer',
      'rejectUnauthorized',
      'a boolean',
      options.rejectUnauthorized,
    );
  for (const name of ['minVersion', 'maxVersion'] as const) {
    const value = options[name];
    if (value !== undefined && !TLS_VERSIONS.includes(value))
      throw ConfigError.option('createMtlsServer', name, "'TLSv1.2' or 'TLSv1.3'", value);
  }
  if (options.minVersion === 'TLSv1.3' && options.maxVersion === 'TLSv1.2')
    throw ConfigError.option(
      'createMtlsServer',
      'maxVersion',
      'at least minVersion (TLSv1.3)',
      options.maxVersion,
    );
}

/** Log handshakes refused for the certificate; other handshake failures (scanners, probes) at debug. */
function logHandshakeFailure(logger: Logger, err: Error & { code?: string }, socket: TLSSocket): void {
  const tlsError = tlsErrorCode(socket);
  const ip = socket.remoteAddress;
  if (tlsError !== undefined) {
    const reason = TLS_ERRORS[tlsError] ?? 'invalid';
    logSecurityEvent(logger, 'mtls_handshake_refused', { reason, tls_error: tlsError, ip });
  } else if (err.code === 'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE') {
    logSecurityEvent(logger, 'mtls_handshake_refused', { reason: 'missing', ip });
  } else {
    logger.debug('TLS handshake failed', { error_code: err.code, ip });
  }
}

/**
 * An https server that asks every client for a certificate issued by `ca` (checked against `crl`).
 * By default the handshake itself refuses clients without a valid certificate; with
 * `rejectUnauthorized: false` they connect and `mtls()` answers them per route with a JSON error.
 * TLS renegotiation is disabled, so a connection keeps the certificate of its handshake.
 *
 * @example
 * const server = core.createMtlsServer(app, { cert, key, ca, crl });
 * server.listen(8443);
 */
export function createMtlsServer(app: RequestListener, input: Readonly<MtlsServerOptions>): MtlsServer {
  if (typeof app !== 'function')
    throw ConfigError.option('createMtlsServer', 'app', 'a request listener (an Express app)', app);
  const options = readOptions<MtlsServerOptions>('createMtlsServer', input, SERVER_KNOWN);
  checkServerOptions(options);
  const { logger: given, settings, rejectUnauthorized = true, minVersion = 'TLSv1.2', ...rest } = options;
  const { cert, key, ca, crl, ...tls } = rest as MtlsServerOptions;
  // Copies: the caller's arrays are never handed to node:tls.
  const pem = { cert: pemList(cert), key: pemList(key), ca: pemList(ca), crl: crl && pemList(crl) };
  const logger = given ?? createLogger('mtls', { settings: settings ?? loadSettings(process.env) });
  let context: SecureContextOptions = { ...tls, ...pem, minVersion };
  let server: https.Server;
  try {
    server = https.createServer({ ...context, requestCert: true, rejectUnauthorized }, app);
  } catch (err) {
    throw refused('createMtlsServer', 'valid cert, key, ca, crl and TLS settings', err);
  }
  const sockets = new Set<TrackedSocket>();
  server.on('secureConnection', (socket: TLSSocket) => {
    socket.disableRenegotiation();
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  server.prependListener('request', (req: IncomingMessage, res: ServerResponse) => {
    (req.socket as TrackedSocket)[CURRENT] = res;
  });
  server.on('tlsClientError', (err: Error, socket: TLSSocket) => {
    logHandshakeFailure(logger, err, socket);
  });
  const mtlsServer = server as MtlsServer;
  mtlsServer.updateCredentials = (update) => {
    const next = nextContext(context, update);
    server.setSecureContext(next);
    context = next;
    const changed = CREDENTIALS_KNOWN.filter((name) => update[name] !== undefined);
    logger.info('mtls: credentials updated; connections made before are closed', {
      updated: changed,
      connections: sockets.size,
    });
    for (const socket of sockets) recycle(socket);
    sockets.clear();
  };
  return mtlsServer;
}

function refused(where: string, expected: string, err: unknown): ConfigError {
  const detail = isError(err) ? err.message : String(err);
  return new ConfigError(`${where}: the TLS options were refused (${detail})`, [
    { name: 'options', expected, received: 'refused by node:tls' },
  ]);
}

/** The current context with `update` applied, checked by building it (nothing is changed on a throw). */
function nextContext(current: SecureContextOptions, input: Readonly<MtlsCredentials>): SecureContextOptions {
  const update = readOptions<MtlsCredentials>('updateCredentials', input, CREDENTIALS_KNOWN);
  checkPem('updateCredentials', update, true);
  if (CREDENTIALS_KNOWN.every((name) => update[name] === undefined))
    throw ConfigError.option('updateCredentials', 'update', `one of ${CREDENTIALS_KNOWN.join(', ')}`, input);
  if (update.passphrase !== undefined && typeof update.passphrase !== 'string')
    throw ConfigError.option('updateCredentials', 'passphrase', 'a string', update.passphrase);
  if (
    update.ticketKeys !== undefined &&
    !(Buffer.isBuffer(update.ticketKeys) && update.ticketKeys.length === 48)
  )
    throw ConfigError.option('updateCredentials', 'ticketKeys', 'a 48-byte Buffer', update.ticketKeys);
  // Without keys of the caller's, each context gets random ones and old tickets die with it.
  if (
    current.ticketKeys !== undefined &&
    update.ticketKeys === undefined &&
    (update.ca !== undefined || update.crl !== undefined)
  )
    throw ConfigError.option(
      'updateCredentials',
      'ticketKeys',
      'new keys with a new ca or crl (the server has ticketKeys of its own: a session resumed with the old ones would skip the new check)',
      undefined,
    );
  const next: SecureContextOptions = { ...current };
  if (update.cert !== undefined) next.cert = pemList(update.cert);
  if (update.key !== undefined) next.key = pemList(update.key);
  if (update.passphrase !== undefined) next.passphrase = update.passphrase;
  if (update.ticketKeys !== undefined) next.ticketKeys = update.ticketKeys;
  if (update.ca !== undefined) next.ca = pemList(update.ca);
  if (update.crl === null) delete next.crl;
  else if (update.crl !== undefined) next.crl = pemList(update.crl);
  try {
    createSecureContext(next);
  } catch (err) {
    throw refused('updateCredentials', 'valid cert, key, ca and crl', err);
  }
  return next;
}

/** Close a connection admitted under the old credentials: now if idle, after its answer if busy. */
function recycle(socket: TrackedSocket): void {
  const res = socket[CURRENT];
  if (res === undefined || res.writableFinished) socket.destroy();
  else if (!res.headersSent) res.setHeader('Connection', 'close');
  else
    res.once('finish', () => {
      socket.destroySoon();
    });
}
