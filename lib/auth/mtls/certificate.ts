/**
 * Client certificates: PEM input, the `ClientCertificate` view of a parsed certificate (SANs, CN,
 * fingerprint, RFC 8705 thumbprint), the default identity, and where a request keeps the certificate
 * `mtls()` admitted (a private symbol) or its connection's thumbprint (cached on the socket).
 */
import { createHash, X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';

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

export const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]+-----END CERTIFICATE-----/g;

// ---------------------------------------------------------------------------------------------
// Parsing

export function sha256(der: Buffer): { fingerprint: string; thumbprint: string } {
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

export function describeCertificate(
  x509: X509Certificate,
  source: ClientCertificate['source'],
): ClientCertificate {
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

export function isPemInput(value: unknown): value is PemInput {
  const one = (v: unknown) => (typeof v === 'string' || Buffer.isBuffer(v)) && v.length > 0;
  return Array.isArray(value) ? value.length > 0 && value.every(one) : one(value);
}

export function pemList(input: PemInput): (string | Buffer)[] {
  return typeof input === 'string' || Buffer.isBuffer(input) ? [input] : [...input];
}

/** Every certificate in the PEM input (X509Certificate reads only the first block of a bundle). */
export function certificatesIn(input: PemInput): X509Certificate[] {
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
// Identity

/** The default identity: the first URI SAN (a SPIFFE id), else the first DNS SAN, else the subject CN. */
export function defaultIdentity(certificate: ClientCertificate): CertificateIdentity | undefined {
  const id = certificate.uris[0] ?? certificate.dnsNames[0] ?? certificate.commonName;
  return id === undefined || id === '' ? undefined : { id };
}

/** What identify() returned, checked: a mistake there is a 500 for the request, not a silent admission. */
export function checkIdentity(found: CertificateIdentity | undefined): CertificateIdentity | undefined {
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

// ---------------------------------------------------------------------------------------------
// The certificate of a request

const CERTIFICATE = Symbol('caduceus.mtls.certificate');
const SOCKET_THUMBPRINT = Symbol('caduceus.mtls.thumbprint');

interface RequestWithCertificate {
  [CERTIFICATE]?: ClientCertificate | null;
}

export function tlsSocketOf(req: { socket: unknown }): TLSSocket | undefined {
  const socket = req.socket as Partial<TLSSocket> | null | undefined;
  return socket?.encrypted === true && typeof socket.getPeerX509Certificate === 'function'
    ? (socket as TLSSocket)
    : undefined;
}

/** Record what `mtls()` decided for this request: the admitted certificate, or `null` for none. */
export function recordClientCertificate(req: object, certificate: ClientCertificate | null): void {
  (req as RequestWithCertificate)[CERTIFICATE] = certificate;
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
