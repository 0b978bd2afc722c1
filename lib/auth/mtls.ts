/**
 * Mutual TLS: an https server that asks for client certificates, and `mtls()`, the middleware that
 * admits only verified ones and turns them into a service identity (`req.user`, `via: 'certificate'`).
 * A certificate may also arrive from a trusted TLS-terminating proxy in a header (nginx, Envoy XFCC).
 */
import { createHash, X509Certificate } from 'node:crypto';
import type { RequestListener } from 'node:http';
import https from 'node:https';
import { BlockList, isIP } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type { Settings } from '../config/index.js';
import { loadSettings } from '../config/index.js';
import { setUser } from '../context/index.js';
import { ConfigError, ForbiddenError, isError, readOptions, UnauthorizedError } from '../errors/index.js';
import type { Logger } from '../logging/index.js';
import { createLogger, logSecurityEvent } from '../logging/index.js';
import type { AuthUser } from './types.js';

/** PEM text (one or more blocks), as a string or Buffer, or a list of them. */
export type PemInput = string | Buffer | readonly (string | Buffer)[];

/** A verified client certificate, as `identify()` sees it and `clientCertificate(req)` returns it. */
export interface ClientCertificate {
  /** `tls`: presented on this connection; `forwarded`: taken from a trusted proxy's header. */
  readonly source: 'tls' | 'forwarded';
  /** The parsed certificate: `subject`, `issuer`, `serialNumber`, `validFrom`, … */
  readonly x509: X509Certificate;
  /** Subject alternative names of type URI (SPIFFE ids), in certificate order. */
  readonly uris: readonly string[];
  /** Subject alternative names of type DNS, in certificate order. */
  readonly dnsNames: readonly string[];
  /** The subject's common name (the last CN when there are several). */
  readonly commonName: string | undefined;
  /** SHA-256 of the DER encoding: lower-case hex without colons. */
  readonly fingerprint: string;
  /** RFC 8705 `x5t#S256`: SHA-256 of the DER encoding, base64url without padding. */
  readonly thumbprint: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

/** What `identify()` returns: the service identity and, optionally, its roles. */
export interface CertificateIdentity {
  readonly id: string;
  /** Roles of this identity. Default: `roles[id]` from the options, else none. */
  readonly roles?: readonly string[];
}

export interface MtlsForwardedOptions {
  /**
   * Request header carrying the client certificate: a URL-encoded PEM (nginx
   * `$ssl_client_escaped_cert`), base64 DER, or an Envoy `x-forwarded-client-cert` (XFCC) value
   * whose last element has a `Cert=` field. Required.
   */
  header: string;
  /**
   * Addresses of the proxies allowed to set the header: IPv4/IPv6 addresses and CIDR ranges. The
   * header is honoured only on connections from these; from anywhere else it is ignored and logged.
   * Required.
   */
  trustedProxies: readonly string[];
  /**
   * CA certificate(s) that must have issued and signed a forwarded certificate directly. Revocation
   * (CRL) is not checked for forwarded certificates: the proxy must enforce it. Required.
   */
  ca: PemInput;
}

export interface MtlsOptions {
  /** Refuse requests without a certificate (401 CERTIFICATE_REQUIRED). With `false` they pass untouched. Default `true`. */
  required?: boolean;
  /**
   * Map a verified certificate to a service identity; return `undefined` to refuse it (403).
   * Default: the first URI SAN (a SPIFFE id), else the first DNS SAN, else the subject CN.
   */
  identify?: (certificate: ClientCertificate) => CertificateIdentity | undefined;
  /** Roles per identity, e.g. `{ 'spiffe://prod/billing': ['billing'] }`. Default: no roles. */
  roles?: Readonly<Record<string, readonly string[]>>;
  /** Identities allowed in; others get 403 FORBIDDEN. Default: every verified identity (unless `fingerprints` is set). */
  allow?: readonly string[];
  /**
   * Pinned SHA-256 certificate fingerprints (hex, colons optional, any case) allowed in. With `allow`
   * too, a certificate matching either list is admitted. Default: no pinning.
   */
  fingerprints?: readonly string[];
  /** Accept a certificate forwarded by a trusted TLS-terminating proxy. Default: none (only the connection's own). */
  forwarded?: MtlsForwardedOptions;
  /** Logger for the security events. Default `createLogger('mtls')`. */
  logger?: Logger;
  /** Settings for the default logger. Default: `loadSettings(process.env)`. */
  settings?: Settings;
}

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
// prettier-ignore
const MTLS_KNOWN = [
  'required', 'identify', 'roles', 'allow', 'fingerprints', 'forwarded', 'logger', 'settings',
] as const satisfies readonly (keyof MtlsOptions)[];
const FORWARDED_KNOWN = ['header', 'trustedProxies', 'ca'] as const;
const TLS_VERSIONS: readonly string[] = ['TLSv1.2', 'TLSv1.3'];
const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]+-----END CERTIFICATE-----/g;
const XFCC_START = /^\s*(?:by|hash|cert|chain|subject|uri|dns)\s*=/i;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
const ANY_EXTENDED_KEY_USAGE = '2.5.29.37.0';
/** Forwarded header values remembered (parsed and verified); the oldest is dropped beyond this. */
const FORWARDED_CACHE_SIZE = 256;

// ---------------------------------------------------------------------------------------------
// Certificates

function sha256(der: Buffer): { fingerprint: string; thumbprint: string } {
  const digest = createHash('sha256').update(der).digest();
  return { fingerprint: digest.toString('hex'), thumbprint: digest.toString('base64url') };
}

/** Split node's `subjectAltName` text (`DNS:a, URI:b`; values with `,` or quotes are JSON strings). */
function altNames(text: string | undefined): { uris: string[]; dnsNames: string[] } {
  const uris: string[] = [];
  const dnsNames: string[] = [];
  let i = 0;
  while (text !== undefined && i < text.length) {
    const colon = text.indexOf(':', i);
    if (colon < 0) break;
    const type = text.slice(i, colon);
    let value: string;
    let end: number;
    if (text[colon + 1] === '"') {
      end = colon + 2;
      while (end < text.length && text[end] !== '"') end += text[end] === '\\' ? 2 : 1;
      end += 1;
      try {
        value = JSON.parse(text.slice(colon + 1, end)) as string;
      } catch {
        break;
      }
    } else {
      end = text.indexOf(', ', colon + 1);
      if (end < 0) end = text.length;
      value = text.slice(colon + 1, end);
    }
    if (type === 'URI') uris.push(value);
    else if (type === 'DNS') dnsNames.push(value);
    i = text.startsWith(', ', end) ? end + 2 : end;
  }
  return { uris, dnsNames };
}

function commonNameOf(x509: X509Certificate): string | undefined {
  const cn: unknown = (x509.toLegacyObject().subject as unknown as Record<string, unknown> | undefined)?.CN;
  if (Array.isArray(cn)) return typeof cn.at(-1) === 'string' ? (cn.at(-1) as string) : undefined;
  return typeof cn === 'string' ? cn : undefined;
}

function describeCertificate(x509: X509Certificate, source: ClientCertificate['source']): ClientCertificate {
  const { uris, dnsNames } = altNames(x509.subjectAltName);
  return Object.freeze({
    source,
    x509,
    uris: Object.freeze(uris),
    dnsNames: Object.freeze(dnsNames),
    commonName: commonNameOf(x509),
    ...sha256(x509.raw),
    notBefore: new Date(x509.validFrom),
    notAfter: new Date(x509.validTo),
  });
}

function isPemInput(value: unknown): value is PemInput {
  const one = (v: unknown) => (typeof v === 'string' || Buffer.isBuffer(v)) && v.length > 0;
  return Array.isArray(value) ? value.length > 0 && value.every(one) : one(value);
}

function pemList(input: PemInput): (string | Buffer)[] {
  return typeof input === 'string' || Buffer.isBuffer(input) ? [input] : [...input];
}

/** Every certificate in the PEM input (X509Certificate reads only the first block of a bundle). */
function certificatesIn(input: PemInput): X509Certificate[] {
  return pemList(input).flatMap((pem) =>
    [...pem.toString().matchAll(PEM_CERTIFICATE)].map((m) => new X509Certificate(m[0])),
  );
}

/**
 * RFC 8705 `x5t#S256` of a certificate (PEM or DER, or parsed): base64url SHA-256 of its DER
 * encoding, without padding — the value a certificate-bound token carries in `cnf`.
 */
export function certificateThumbprint(certificate: string | Buffer | X509Certificate): string {
  const x509 = certificate instanceof X509Certificate ? certificate : new X509Certificate(certificate);
  return sha256(x509.raw).thumbprint;
}

// ---------------------------------------------------------------------------------------------
// Refusals

type Reason =
  | 'missing'
  | 'expired'
  | 'not_yet_valid'
  | 'revoked'
  | 'untrusted'
  | 'revocation_unknown'
  | 'invalid'
  | 'malformed';

const MESSAGES: Readonly<Record<Reason, string>> = {
  missing: 'Client certificate required',
  expired: 'Client certificate has expired',
  not_yet_valid: 'Client certificate is not yet valid',
  revoked: 'Client certificate has been revoked',
  untrusted: 'Client certificate is not trusted',
  revocation_unknown: 'Client certificate revocation status could not be checked',
  invalid: 'Client certificate is not valid',
  malformed: 'Forwarded client certificate is malformed',
};

const TLS_ERRORS: Readonly<Record<string, Reason>> = {
  CERT_HAS_EXPIRED: 'expired',
  CERT_NOT_YET_VALID: 'not_yet_valid',
  CERT_REVOKED: 'revoked',
  UNABLE_TO_GET_CRL: 'revocation_unknown',
  UNABLE_TO_GET_CRL_ISSUER: 'revocation_unknown',
  CRL_HAS_EXPIRED: 'revocation_unknown',
  CRL_NOT_YET_VALID: 'revocation_unknown',
  CRL_SIGNATURE_FAILURE: 'revocation_unknown',
  UNABLE_TO_DECRYPT_CRL_SIGNATURE: 'revocation_unknown',
  UNABLE_TO_GET_ISSUER_CERT: 'untrusted',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'untrusted',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'untrusted',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'untrusted',
  SELF_SIGNED_CERT_IN_CHAIN: 'untrusted',
  CERT_SIGNATURE_FAILURE: 'untrusted',
  CERT_UNTRUSTED: 'untrusted',
  CERT_REJECTED: 'untrusted',
  INVALID_CA: 'untrusted',
};

/** Node documents `authorizationError` as an Error but sets the OpenSSL code string. */
function tlsErrorCode(socket: TLSSocket): string | undefined {
  const value: unknown = socket.authorizationError;
  if (typeof value === 'string') return value;
  return isError(value) ? ((value as { code?: string }).code ?? value.message) : undefined;
}

function refusalError(reason: Reason): UnauthorizedError {
  return new UnauthorizedError(MESSAGES[reason], {
    code: reason === 'missing' ? 'CERTIFICATE_REQUIRED' : 'CERTIFICATE_INVALID',
  });
}

type Outcome =
  | { readonly kind: 'none' }
  | {
      readonly kind: 'refused';
      readonly reason: Reason;
      readonly source?: ClientCertificate['source'];
      readonly tlsError?: string | undefined;
    }
  | { readonly kind: 'forbidden'; readonly certificate: ClientCertificate; readonly identity?: string }
  | { readonly kind: 'admitted'; readonly certificate: ClientCertificate; readonly user: AuthUser };

const NONE: Outcome = { kind: 'none' };

// ---------------------------------------------------------------------------------------------
// Forwarded certificates

/** Split on `sep` outside double quotes; undefined when a quote is left open. */
function splitUnquoted(text: string, sep: string): string[] | undefined {
  const parts: string[] = [];
  let start = 0;
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '\\' && quoted) i++;
    else if (c === '"') quoted = !quoted;
    else if (c === sep && !quoted) {
      parts.push(text.slice(start, i));
      start = i + 1;
    }
  }
  if (quoted) return undefined;
  parts.push(text.slice(start));
  return parts;
}

/** The `Cert` and `Hash` of the last XFCC element: the one the nearest (trusted) proxy added. */
function xfccFields(value: string): { cert?: string; hash?: string } | undefined {
  const last = splitUnquoted(value, ',')?.at(-1);
  const pairs = last === undefined ? undefined : splitUnquoted(last, ';');
  if (pairs === undefined) return undefined;
  const fields: { cert?: string; hash?: string } = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq < 0) return undefined;
    const key = pair.slice(0, eq).trim().toLowerCase();
    let text = pair.slice(eq + 1).trim();
    if (text.startsWith('"') && text.endsWith('"') && text.length >= 2)
      text = text.slice(1, -1).replace(/\\(.)/g, '$1');
    if (key === 'cert' || key === 'hash') fields[key] = text;
  }
  return fields;
}

/** Parse a forwarded header value into a certificate; undefined when it is not one. */
function parseForwarded(value: string): X509Certificate | undefined {
  try {
    let encoded = value.trim();
    let hash: string | undefined;
    if (XFCC_START.test(encoded)) {
      const fields = xfccFields(encoded);
      if (fields?.cert === undefined) return undefined;
      encoded = fields.cert;
      hash = fields.hash;
    }
    const text = decodeURIComponent(encoded).trim();
    let x509: X509Certificate;
    if (text.startsWith('-----BEGIN CERTIFICATE-----')) {
      const pems = text.match(PEM_CERTIFICATE);
      if (pems?.length !== 1 || pems[0] !== text) return undefined;
      x509 = new X509Certificate(text);
    } else {
      const compact = text.replace(/\s+/g, '');
      if (!BASE64.test(compact)) return undefined;
      x509 = new X509Certificate(Buffer.from(compact, 'base64'));
    }
    if (hash !== undefined && hash.toLowerCase() !== sha256(x509.raw).fingerprint) return undefined;
    return x509;
  } catch {
    return undefined;
  }
}

/** What OpenSSL checks on the TLS path, for a forwarded leaf: issued and signed by a CA, in date, usable by a client. */
function verifyForwarded(x509: X509Certificate, cas: readonly X509Certificate[]): Reason | undefined {
  const issuer = cas.find((ca) => x509.checkIssued(ca) && x509.verify(ca.publicKey));
  if (issuer === undefined || x509.ca) return 'untrusted';
  const now = Date.now();
  if (now > Date.parse(x509.validTo)) return 'expired';
  if (now < Date.parse(x509.validFrom)) return 'not_yet_valid';
  const usage = x509.keyUsage as string[] | undefined;
  if (usage !== undefined && !usage.includes(CLIENT_AUTH) && !usage.includes(ANY_EXTENDED_KEY_USAGE))
    return 'invalid';
  return undefined;
}

function trustedProxyList(entries: unknown): BlockList {
  const list = new BlockList();
  if (!Array.isArray(entries) || entries.length === 0)
    throw ConfigError.option(
      'mtls',
      'forwarded.trustedProxies',
      'a non-empty array of IPs or CIDRs',
      entries,
    );
  entries.forEach((entry: unknown, index) => {
    const [address = '', prefix, extra] = typeof entry === 'string' ? entry.split('/') : [];
    const family = isIP(address);
    const max = family === 4 ? 32 : 128;
    const bits = prefix === undefined ? max : /^\d{1,3}$/.test(prefix) ? Number(prefix) : NaN;
    if (family === 0 || extra !== undefined || !(bits <= max))
      throw ConfigError.option('mtls', `forwarded.trustedProxies[${index}]`, 'an IP address or CIDR', entry);
    list.addSubnet(address, bits, family === 4 ? 'ipv4' : 'ipv6');
  });
  return list;
}

interface Forwarded {
  readonly header: string;
  readonly proxies: BlockList;
  readonly cas: readonly X509Certificate[];
}

function readForwarded(input: unknown): Forwarded | undefined {
  if (input === undefined) return undefined;
  const options = readOptions<MtlsForwardedOptions>('mtls.forwarded', input, FORWARDED_KNOWN);
  const { header, ca } = options;
  if (typeof header !== 'string' || !/^[A-Za-z0-9-]+$/.test(header))
    throw ConfigError.option('mtls', 'forwarded.header', 'a header name', header);
  let cas: X509Certificate[] = [];
  try {
    if (ca !== undefined && isPemInput(ca)) cas = certificatesIn(ca);
  } catch {
    cas = [];
  }
  if (cas.length === 0) throw ConfigError.option('mtls', 'forwarded.ca', 'PEM CA certificate(s)', ca);
  return { header: header.toLowerCase(), proxies: trustedProxyList(options.trustedProxies), cas };
}

// ---------------------------------------------------------------------------------------------
// mtls()

const CERTIFICATE = Symbol('caduceus.mtls.certificate');
const SOCKET_THUMBPRINT = Symbol('caduceus.mtls.thumbprint');

interface RequestWithCertificate {
  [CERTIFICATE]?: ClientCertificate | null;
}

function tlsSocketOf(req: { socket: unknown }): TLSSocket | undefined {
  const socket = req.socket as Partial<TLSSocket> | null | undefined;
  return socket?.encrypted === true && typeof socket.getPeerX509Certificate === 'function'
    ? (socket as TLSSocket)
    : undefined;
}

/** What mtls() knows about one connection; kept as long as the socket lives. */
interface SocketState {
  readonly trustedProxy: boolean;
  own: Outcome | undefined;
}

function checkList(name: string, value: unknown): readonly string[] | undefined {
  if (value === undefined) return undefined;
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string' && v.length > 0))
    throw ConfigError.option('mtls', name, 'an array of non-empty strings', value);
  return value as string[];
}

function fingerprintSet(value: unknown): ReadonlySet<string> | undefined {
  const list = checkList('fingerprints', value);
  return list === undefined
    ? undefined
    : new Set(
        list.map((entry, index) => {
          const hex = entry.replaceAll(':', '').toLowerCase();
          if (!/^[0-9a-f]{64}$/.test(hex))
            throw ConfigError.option('mtls', `fingerprints[${index}]`, 'a SHA-256 fingerprint in hex', entry);
          return hex;
        }),
      );
}

function roleMap(value: unknown): ReadonlyMap<string, readonly string[]> {
  const map = new Map<string, readonly string[]>();
  if (value === undefined) return map;
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw ConfigError.option('mtls', 'roles', 'an object of identity → role names', value);
  for (const [identity, roles] of Object.entries(value)) {
    map.set(identity, Object.freeze([...(checkList(`roles["${identity}"]`, roles) ?? [])]));
  }
  return map;
}

/** What identify() returned, checked: a mistake there is a 500 for the request, not a silent admission. */
function checkIdentity(found: CertificateIdentity | undefined): CertificateIdentity | undefined {
  if (found === undefined) return undefined;
  const roles: unknown = found.roles;
  if (
    typeof found.id !== 'string' ||
    found.id === '' ||
    (roles !== undefined && (!Array.isArray(roles) || !roles.every((r) => typeof r === 'string')))
  )
    throw new TypeError(
      'mtls: identify() must return { id: non-empty string, roles?: string[] } or undefined',
    );
  return found;
}

const NO_STRINGS: readonly string[] = Object.freeze([]);
const NO_CLAIMS: Readonly<Record<string, unknown>> = Object.freeze({});

class MtlsGate {
  readonly required: boolean;
  readonly #identify: MtlsOptions['identify'];
  readonly #roles: ReadonlyMap<string, readonly string[]>;
  readonly #allow: ReadonlySet<string> | undefined;
  readonly #fingerprints: ReadonlySet<string> | undefined;
  readonly #forwarded: Forwarded | undefined;
  readonly #logger: Logger;
  readonly #sockets = new WeakMap<object, SocketState>();
  readonly #forwardedCache = new Map<string, Outcome>();

  constructor(options: Readonly<MtlsOptions>) {
    if (options.required !== undefined && typeof options.required !== 'boolean')
      throw ConfigError.option('mtls', 'required', 'a boolean', options.required);
    if (options.identify !== undefined && typeof options.identify !== 'function')
      throw ConfigError.option('mtls', 'identify', 'a function', options.identify);
    if (options.logger !== undefined && typeof (options.logger as Partial<Logger>).log !== 'function')
      throw ConfigError.option('mtls', 'logger', 'a Logger', options.logger);
    this.required = options.required ?? true;
    this.#identify = options.identify;
    this.#roles = roleMap(options.roles);
    const allow = checkList('allow', options.allow);
    this.#allow = allow === undefined ? undefined : new Set(allow);
    this.#fingerprints = fingerprintSet(options.fingerprints);
    this.#forwarded = readForwarded(options.forwarded);
    this.#logger =
      options.logger ?? createLogger('mtls', { settings: options.settings ?? loadSettings(process.env) });
  }

  /** The certificate outcome of this request, from the cache when the connection or header was seen. */
  outcome(req: Request): Outcome {
    const socket = req.socket;
    let state = this.#sockets.get(socket);
    if (state === undefined) {
      const address = socket.remoteAddress;
      const proxies = this.#forwarded?.proxies;
      const trustedProxy =
        proxies !== undefined &&
        address !== undefined &&
        proxies.check(address, isIP(address) === 6 ? 'ipv6' : 'ipv4');
      state = { trustedProxy, own: undefined };
      this.#sockets.set(socket, state);
    }
    if (this.#forwarded !== undefined) {
      const raw = req.headers[this.#forwarded.header];
      const value = Array.isArray(raw) ? raw.join(', ') : raw;
      // From a trusted proxy, the header is the client's certificate (absent: none), never the proxy's own.
      if (state.trustedProxy) return value === undefined || value === '' ? NONE : this.#fromHeader(value);
      if (value !== undefined) {
        logSecurityEvent(
          this.#logger,
          'mtls_forwarded_untrusted',
          { header: this.#forwarded.header, ip: socket.remoteAddress },
          'high',
        );
      }
    }
    state.own ??= this.#fromSocket(req);
    return state.own;
  }

  #fromSocket(req: Request): Outcome {
    const socket = tlsSocketOf(req);
    const x509 = socket?.getPeerX509Certificate();
    if (socket === undefined || x509 === undefined) return NONE;
    if (!socket.authorized) {
      const tlsError = tlsErrorCode(socket);
      return { kind: 'refused', reason: TLS_ERRORS[tlsError ?? ''] ?? 'invalid', source: 'tls', tlsError };
    }
    return this.#classify(describeCertificate(x509, 'tls'));
  }

  #fromHeader(value: string): Outcome {
    const cache = this.#forwardedCache;
    const cached = cache.get(value);
    if (cached !== undefined) return cached;
    const x509 = parseForwarded(value);
    const reason =
      x509 === undefined ? 'malformed' : verifyForwarded(x509, (this.#forwarded as Forwarded).cas);
    const outcome: Outcome =
      reason === undefined && x509 !== undefined
        ? this.#classify(describeCertificate(x509, 'forwarded'))
        : { kind: 'refused', reason: reason ?? 'malformed', source: 'forwarded' };
    // Not remembered: the clock will change the answer.
    if (reason === 'expired' || reason === 'not_yet_valid') return outcome;
    if (cache.size >= FORWARDED_CACHE_SIZE) cache.delete(cache.keys().next().value as string);
    cache.set(value, outcome);
    return outcome;
  }

  /** Identity, roles and allow-lists of a verified certificate. */
  #classify(certificate: ClientCertificate): Outcome {
    let found: CertificateIdentity | undefined;
    if (this.#identify === undefined) {
      const id = certificate.uris[0] ?? certificate.dnsNames[0] ?? certificate.commonName;
      found = id === undefined || id === '' ? undefined : { id };
    } else {
      found = checkIdentity(this.#identify(certificate));
    }
    const id = found?.id;
    const pinned = this.#fingerprints?.has(certificate.fingerprint) === true;
    const listed = id !== undefined && this.#allow?.has(id) === true;
    const open = this.#allow === undefined && this.#fingerprints === undefined;
    if (id === undefined || !(open || listed || pinned))
      return { kind: 'forbidden', certificate, identity: id };
    const roles =
      found?.roles === undefined ? (this.#roles.get(id) ?? NO_STRINGS) : Object.freeze([...found.roles]);
    const user: AuthUser = Object.freeze({
      id,
      email: undefined,
      roles,
      scopes: NO_STRINGS,
      claims: NO_CLAIMS,
      via: 'certificate',
    });
    // Logged once per connection (or forwarded certificate), not once per request.
    this.#logger.info('client certificate admitted', {
      identity: id,
      fingerprint: certificate.fingerprint,
      source: certificate.source,
      category: 'security',
      security_event: 'mtls_admitted',
    });
    return { kind: 'admitted', certificate, user };
  }

  /** A 401 for this request, logged with the reason only: the certificate may name a person. */
  refuse(
    req: Request,
    reason: Reason,
    source?: ClientCertificate['source'],
    tlsError?: string,
  ): UnauthorizedError {
    logSecurityEvent(this.#logger, 'mtls_refused', {
      reason,
      source,
      tls_error: tlsError,
      ip: req.socket.remoteAddress,
    });
    return refusalError(reason);
  }

  /** A 403 for this request, logged with the identity and fingerprint. */
  forbid(req: Request, certificate: ClientCertificate, identity: string | undefined): ForbiddenError {
    logSecurityEvent(this.#logger, 'mtls_forbidden', {
      identity,
      fingerprint: certificate.fingerprint,
      source: certificate.source,
      ip: req.socket.remoteAddress,
    });
    return new ForbiddenError('Client certificate is not allowed');
  }
}

/**
 * Admit only requests with a verified client certificate, as a service identity: `req.user` (unless
 * a token already set it) becomes `{ id, roles, via: 'certificate' }` and the id goes to the request
 * context. No certificate → 401 CERTIFICATE_REQUIRED; unverified, expired or revoked → 401
 * CERTIFICATE_INVALID; verified but not allowed → 403 FORBIDDEN.
 *
 * @example
 * const server = core.createMtlsServer(app, { cert, key, ca, crl, rejectUnauthorized: false });
 * app.use('/internal', core.mtls({ allow: ['spiffe://prod/billing'], roles: { 'spiffe://prod/billing': ['billing'] } }));
 */
export function mtls(input: Readonly<MtlsOptions> = {}): RequestHandler {
  const gate = new MtlsGate(readOptions<MtlsOptions>('mtls', input, MTLS_KNOWN));
  const required = gate.required;

  return function mtlsMiddleware(req: Request, _res: Response, next: NextFunction): void {
    let outcome: Outcome;
    try {
      outcome = gate.outcome(req);
    } catch (err) {
      next(err);
      return;
    }
    if (outcome.kind === 'admitted' || outcome.kind === 'forbidden') {
      const now = Date.now();
      const { notBefore, notAfter } = outcome.certificate;
      // The handshake checked the dates; a keep-alive connection (or a cached header) can outlive them.
      if (now > notAfter.getTime() || now < notBefore.getTime()) {
        next(
          gate.refuse(
            req,
            now > notAfter.getTime() ? 'expired' : 'not_yet_valid',
            outcome.certificate.source,
          ),
        );
        return;
      }
    }
    switch (outcome.kind) {
      case 'admitted':
        (req as RequestWithCertificate)[CERTIFICATE] = outcome.certificate;
        if (req.user === undefined) {
          req.user = outcome.user;
          setUser(outcome.user.id, outcome.user.roles, req);
        }
        next();
        return;
      case 'forbidden':
        next(gate.forbid(req, outcome.certificate, outcome.identity));
        return;
      case 'refused':
        next(gate.refuse(req, outcome.reason, outcome.source, outcome.tlsError));
        return;
      case 'none':
        if (required) {
          next(gate.refuse(req, 'missing'));
          return;
        }
        (req as RequestWithCertificate)[CERTIFICATE] = null;
        next();
    }
  };
}

/** The certificate `mtls()` admitted for this request, or undefined. */
export function clientCertificate(req: object): ClientCertificate | undefined {
  return (req as RequestWithCertificate)[CERTIFICATE] ?? undefined;
}

/**
 * RFC 8705 `x5t#S256` of the request's client certificate — the one `mtls()` admitted or, where
 * `mtls()` did not run, the verified certificate of the TLS connection — for checking a
 * certificate-bound token's `cnf["x5t#S256"]`. Undefined when there is none.
 */
export function clientCertificateThumbprint(req: { socket: unknown }): string | undefined {
  const admitted = (req as RequestWithCertificate)[CERTIFICATE];
  if (admitted !== undefined) return admitted?.thumbprint;
  const socket: (TLSSocket & { [SOCKET_THUMBPRINT]?: string | null }) | undefined = tlsSocketOf(req);
  if (socket === undefined || !socket.authorized) return undefined;
  // Cached on the socket: keep-alive requests reuse the certificate of the handshake.
  let thumbprint = socket[SOCKET_THUMBPRINT];
  if (thumbprint === undefined) {
    const raw = socket.getPeerX509Certificate()?.raw;
    thumbprint = raw === undefined ? null : sha256(raw).thumbprint;
    socket[SOCKET_THUMBPRINT] = thumbprint;
  }
  return thumbprint ?? undefined;
}

// ---------------------------------------------------------------------------------------------
// createMtlsServer()

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
