/**
 * `mtls()`: the middleware that admits only verified client certificates and turns them into a
 * service identity (`req.user`, `via: 'certificate'`).
 */
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type { Settings } from '../../config/index.js';
import { loadSettings } from '../../config/index.js';
import { setUser } from '../../context/index.js';
import { ConfigError, readOptions } from '../../errors/index.js';
import type { Logger } from '../../logging/index.js';
import { createLogger } from '../../logging/index.js';
import type { CertificateIdentity, ClientCertificate } from './certificate.js';
import { recordClientCertificate } from './certificate.js';
import type { MtlsForwardedOptions } from './forwarded.js';
import { readForwarded } from './forwarded.js';
import type { GateConfig, Outcome } from './gate.js';
import { MtlsGate } from './gate.js';

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

// prettier-ignore
const MTLS_KNOWN = [
  'required', 'identify', 'roles', 'allow', 'fingerprints', 'forwarded', 'logger', 'settings',
] as const satisfies readonly (keyof MtlsOptions)[];

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

/** Check the options and compile them once: sets, maps, the proxy list and the forwarding CAs. */
function compile(options: Readonly<MtlsOptions>): { required: boolean; config: GateConfig } {
  if (options.required !== undefined && typeof options.required !== 'boolean')
    throw ConfigError.option('mtls', 'required', 'a boolean', options.required);
  if (options.identify !== undefined && typeof options.identify !== 'function')
    throw ConfigError.option('mtls', 'identify', 'a function', options.identify);
  if (options.logger !== undefined && typeof (options.logger as Partial<Logger>).log !== 'function')
    throw ConfigError.option('mtls', 'logger', 'a Logger', options.logger);
  const roles = roleMap(options.roles);
  const allow = checkList('allow', options.allow);
  const fingerprints = fingerprintSet(options.fingerprints);
  const forwarded = readForwarded(options.forwarded);
  const logger =
    options.logger ?? createLogger('mtls', { settings: options.settings ?? loadSettings(process.env) });
  return {
    required: options.required ?? true,
    config: {
      identify: options.identify,
      roles,
      allow: allow === undefined ? undefined : new Set(allow),
      fingerprints,
      forwarded,
      logger,
    },
  };
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
  const { required, config } = compile(readOptions<MtlsOptions>('mtls', input, MTLS_KNOWN));
  const gate = new MtlsGate(config);

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
        recordClientCertificate(req, outcome.certificate);
        if (req.user === undefined) {
          req.user = outcome.user;
          setUser(outcome.user.id, outcome.user.roles, req, 'service');
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
        recordClientCertificate(req, null);
        next();
    }
  };
}
