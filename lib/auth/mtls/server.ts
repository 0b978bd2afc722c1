/**
 * `createMtlsServer()`: an https server that asks every client for a certificate issued by the
 * given CA, with renegotiation disabled and refused handshakes logged.
 */
import type { X509Certificate } from 'node:crypto';
import type { RequestListener } from 'node:http';
import https from 'node:https';
import type { TLSSocket } from 'node:tls';
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

// prettier-ignore
const SERVER_KNOWN = [
  'cert', 'key', 'ca', 'crl', 'rejectUnauthorized', 'minVersion', 'maxVersion', 'logger', 'settings',
  'passphrase', 'ciphers', 'ecdhCurve', 'sigalgs', 'honorCipherOrder', 'sessionTimeout', 'ticketKeys',
  'handshakeTimeout', 'requestTimeout', 'headersTimeout', 'keepAliveTimeout', 'maxHeaderSize', 'keepAlive',
  'keepAliveInitialDelay', 'noDelay', 'requireHostHeader', 'connectionsCheckingInterval',
] as const satisfies readonly (keyof MtlsServerOptions)[];
const TLS_VERSIONS: readonly string[] = ['TLSv1.2', 'TLSv1.3'];

function checkServerOptions(options: Readonly<Partial<MtlsServerOptions>>): void {
  for (const name of ['cert', 'key', 'ca'] as const) {
    if (!isPemInput(options[name]))
      throw ConfigError.option(
        'createMtlsServer',
        name,
        'PEM text (string or Buffer, or an array)',
        options[name],
      );
  }
  if (options.crl !== undefined && !isPemInput(options.crl))
    throw ConfigError.option(
      'createMtlsServer',
      'crl',
      'PEM text (string or Buffer, or an array)',
      options.crl,
    );
  let cas: X509Certificate[];
  try {
    cas = certificatesIn(options.ca as PemInput);
  } catch {
    cas = [];
  }
  if (cas.length === 0)
    throw ConfigError.option('createMtlsServer', 'ca', 'PEM CA certificate(s)', options.ca);
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
export function createMtlsServer(app: RequestListener, input: Readonly<MtlsServerOptions>): https.Server {
  if (typeof app !== 'function')
    throw ConfigError.option('createMtlsServer', 'app', 'a request listener (an Express app)', app);
  const options = readOptions<MtlsServerOptions>('createMtlsServer', input, SERVER_KNOWN);
  checkServerOptions(options);
  const { logger: given, settings, rejectUnauthorized = true, minVersion = 'TLSv1.2', ...rest } = options;
  const { cert, key, ca, crl, ...tls } = rest as MtlsServerOptions;
  // Copies: the caller's arrays are never handed to node:tls.
  const pem = { cert: pemList(cert), key: pemList(key), ca: pemList(ca), crl: crl && pemList(crl) };
  const logger = given ?? createLogger('mtls', { settings: settings ?? loadSettings(process.env) });
  let server: https.Server;
  try {
    server = https.createServer({ ...tls, ...pem, requestCert: true, rejectUnauthorized, minVersion }, app);
  } catch (err) {
    const detail = isError(err) ? err.message : String(err);
    throw new ConfigError(`createMtlsServer: the TLS options were refused (${detail})`, [
      {
        name: 'options',
        expected: 'valid cert, key, ca, crl and TLS settings',
        received: 'refused by node:tls',
      },
    ]);
  }
  server.on('secureConnection', (socket: TLSSocket) => {
    socket.disableRenegotiation();
  });
  server.on('tlsClientError', (err: Error, socket: TLSSocket) => {
    logHandshakeFailure(logger, err, socket);
  });
  return server;
}
