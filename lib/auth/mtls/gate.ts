/**
 * The decision `mtls()` makes for a request — none, refused, forbidden or admitted — from the
 * connection's certificate or a trusted proxy's header, cached per socket and per header value, and
 * the logged 401/403 errors that follow from it.
 */
import type { Request } from 'express';
import type { UnauthorizedError } from '../../errors/index.js';
import { ForbiddenError } from '../../errors/index.js';
import type { Logger } from '../../logging/index.js';
import { logSecurityEvent } from '../../logging/index.js';
import type { AuthUser } from '../types.js';
import type { CertificateIdentity, ClientCertificate } from './certificate.js';
import { checkIdentity, defaultIdentity, describeCertificate, tlsSocketOf } from './certificate.js';
import type { Forwarded } from './forwarded.js';
import { parseForwarded, verifyForwarded } from './forwarded.js';
import type { Reason } from './refusals.js';
import { refusalError, TLS_ERRORS, tlsErrorCode } from './refusals.js';

export type Outcome =
  | { readonly kind: 'none' }
  | {
      readonly kind: 'refused';
      readonly reason: Reason;
      readonly source?: ClientCertificate['source'];
      readonly tlsError?: string | undefined;
    }
  | { readonly kind: 'forbidden'; readonly certificate: ClientCertificate; readonly identity?: string }
  | { readonly kind: 'admitted'; readonly certificate: ClientCertificate; readonly user: AuthUser };

/** The `mtls()` options, checked and compiled once. */
export interface GateConfig {
  readonly identify: ((certificate: ClientCertificate) => CertificateIdentity | undefined) | undefined;
  readonly roles: ReadonlyMap<string, readonly string[]>;
  readonly allow: ReadonlySet<string> | undefined;
  /** Lower-case hex without colons. */
  readonly fingerprints: ReadonlySet<string> | undefined;
  readonly forwarded: Forwarded | undefined;
  readonly logger: Logger;
}

/** What mtls() knows about one connection; kept as long as the socket lives. */
interface SocketState {
  readonly trustedProxy: boolean;
  own: Outcome | undefined;
}

/** Forwarded header values remembered (parsed and verified); the oldest is dropped beyond this. */
const FORWARDED_CACHE_SIZE = 256;
const NONE: Outcome = { kind: 'none' };
const NO_STRINGS: readonly string[] = Object.freeze([]);
const NO_CLAIMS: Readonly<Record<string, unknown>> = Object.freeze({});

export class MtlsGate {
  readonly #config: GateConfig;
  readonly #sockets = new WeakMap<object, SocketState>();
  readonly #forwardedCache = new Map<string, Outcome>();

  constructor(config: GateConfig) {
    this.#config = config;
  }

  /** The certificate outcome of this request, from the cache when the connection or header was seen. */
  outcome(req: Request): Outcome {
    const socket = req.socket;
    const forwarded = this.#config.forwarded;
    let state = this.#sockets.get(socket);
    if (state === undefined) {
      const trustedProxy = forwarded !== undefined && forwarded.proxies.has(socket.remoteAddress);
      state = { trustedProxy, own: undefined };
      this.#sockets.set(socket, state);
    }
    if (forwarded !== undefined) {
      const raw = req.headers[forwarded.header];
      const value = Array.isArray(raw) ? raw.join(', ') : raw;
      // From a trusted proxy, the header is the client's certificate (absent: none), never the proxy's own.
      if (state.trustedProxy) return value === undefined || value === '' ? NONE : this.#fromHeader(value);
      if (value !== undefined) {
        logSecurityEvent(
          this.#config.logger,
          'mtls_forwarded_untrusted',
          { header: forwarded.header, ip: socket.remoteAddress },
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
      x509 === undefined ? 'malformed' : verifyForwarded(x509, (this.#config.forwarded as Forwarded).cas);
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
    const { identify, allow, fingerprints } = this.#config;
    const found =
      identify === undefined ? defaultIdentity(certificate) : checkIdentity(identify(certificate));
    const id = found?.id;
    const pinned = fingerprints?.has(certificate.fingerprint) === true;
    const listed = id !== undefined && allow?.has(id) === true;
    const open = allow === undefined && fingerprints === undefined;
    if (id === undefined || !(open || listed || pinned))
      return { kind: 'forbidden', certificate, identity: id };
    const roles =
      found?.roles === undefined
        ? (this.#config.roles.get(id) ?? NO_STRINGS)
        : Object.freeze([...found.roles]);
    const user: AuthUser = Object.freeze({
      id,
      email: undefined,
      roles,
      scopes: NO_STRINGS,
      claims: NO_CLAIMS,
      via: 'certificate',
    });
    // Logged once per connection (or forwarded certificate), not once per request.
    this.#config.logger.info('client certificate admitted', {
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
    logSecurityEvent(this.#config.logger, 'mtls_refused', {
      reason,
      source,
      tls_error: tlsError,
      ip: req.socket.remoteAddress,
    });
    return refusalError(reason);
  }

  /** A 403 for this request, logged with the identity and fingerprint. */
  forbid(req: Request, certificate: ClientCertificate, identity: string | undefined): ForbiddenError {
    logSecurityEvent(this.#config.logger, 'mtls_forbidden', {
      identity,
      fingerprint: certificate.fingerprint,
      source: certificate.source,
      ip: req.socket.remoteAddress,
    });
    return new ForbiddenError('Client certificate is not allowed');
  }
}
