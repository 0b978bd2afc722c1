/**
 * Certificates forwarded by a trusted TLS-terminating proxy: the `forwarded` option, the header
 * formats (nginx URL-encoded PEM, Envoy XFCC, base64 DER), the checks OpenSSL would have made on the
 * TLS path. Which peers count as trusted proxies is an `IpList` (lib/net).
 */
import { X509Certificate } from 'node:crypto';
import { ConfigError, readOptions } from '../../errors/index.js';
import { IpList } from '../../net/ip.js';
import type { PemInput } from './certificate.js';
import { certificatesIn, isPemInput, PEM_CERTIFICATE, sha256 } from './certificate.js';
import type { Reason } from './refusals.js';

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

/** The `forwarded` option, checked and compiled once by `mtls()`. */
export interface Forwarded {
  /** Lower-case, as in `req.headers`. */
  readonly header: string;
  readonly proxies: IpList;
  readonly cas: readonly X509Certificate[];
}

const FORWARDED_KNOWN = ['header', 'trustedProxies', 'ca'] as const;
const XFCC_START = /^\s*(?:by|hash|cert|chain|subject|uri|dns)\s*=/i;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
const ANY_EXTENDED_KEY_USAGE = '2.5.29.37.0';

export function readForwarded(input: unknown): Forwarded | undefined {
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
  // A leaf in the bundle (a full-chain file) would be accepted as an issuer of client certificates.
  if (cas.some((c) => !c.ca)) {
    throw ConfigError.option(
      'mtls',
      'forwarded.ca',
      'CA certificates only (basicConstraints CA:TRUE)',
      '[a bundle with a leaf certificate]',
    );
  }
  return { header: header.toLowerCase(), proxies: trustedProxyList(options.trustedProxies), cas };
}

// ---------------------------------------------------------------------------------------------
// Header formats

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
export function parseForwarded(value: string): X509Certificate | undefined {
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

/**
 * What OpenSSL checks on the TLS path, for a forwarded leaf: issued and signed by a CA that is in
 * date, itself in date, usable by a client. Not checked: intermediates, CRLs, unknown critical
 * extensions — the proxy that terminated TLS must have.
 */
export function verifyForwarded(x509: X509Certificate, cas: readonly X509Certificate[]): Reason | undefined {
  const now = Date.now();
  const issuer = cas.find(
    (ca) =>
      x509.checkIssued(ca) &&
      x509.verify(ca.publicKey) &&
      now <= Date.parse(ca.validTo) &&
      now >= Date.parse(ca.validFrom),
  );
  if (issuer === undefined || x509.ca) return 'untrusted';
  if (now > Date.parse(x509.validTo)) return 'expired';
  if (now < Date.parse(x509.validFrom)) return 'not_yet_valid';
  const usage = x509.keyUsage as string[] | undefined;
  if (usage !== undefined && !usage.includes(CLIENT_AUTH) && !usage.includes(ANY_EXTENDED_KEY_USAGE))
    return 'invalid';
  return undefined;
}

/** `forwarded.trustedProxies`: a non-empty list of IPv4/IPv6 addresses and CIDRs; throws ConfigError. */
function trustedProxyList(entries: unknown): IpList {
  if (!Array.isArray(entries) || entries.length === 0)
    throw ConfigError.option(
      'mtls',
      'forwarded.trustedProxies',
      'a non-empty array of IPs or CIDRs',
      entries,
    );
  return new IpList('mtls', 'forwarded.trustedProxies', entries);
}
