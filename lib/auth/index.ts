import type { RequestHandler } from 'express';
import {
  type Auth,
  type AuthenticateOptions,
  type AuthOptions,
  createAuth,
  type RefreshOptions,
  type RevokeOptions,
} from './auth.js';
import type { IssueOptions, TokenClaims, TokenPair } from './tokens.js';
import type { AuthUser } from './types.js';

export type {
  Auth,
  AuthOptions,
  AuthenticateOptions,
  PassportStrategy,
  RefreshOptions,
  RevokeOptions,
} from './auth.js';
export { createAuth } from './auth.js';
export type { AuthCounters } from './monitor.js';
export type { KeyOptions } from './keys.js';
export type { RevocationStore } from './revocation.js';
export type { TokenClaims, TokenPair, IssueOptions } from './tokens.js';
export type { AuthUser, AuthEvent, AuthFailureReason, VerificationKey } from './types.js';
export type { RemoteJwksOptions } from './remote-jwks.js';
export { AuthenticationFailure } from './verifier.js';
export {
  requireRoles,
  requireAllRoles,
  requireScopes,
  requireAdmin,
  requireHealthcareProvider,
  requireSelfOrRoles,
  HEALTHCARE_PROVIDER_ROLES,
} from './guards.js';
export type {
  MtlsOptions,
  MtlsCredentials,
  MtlsServer,
  MtlsServerOptions,
  MtlsForwardedOptions,
  ClientCertificate,
  CertificateIdentity,
  PemInput,
} from './mtls/index.js';
export {
  createMtlsServer,
  mtls,
  clientCertificate,
  clientCertificateThumbprint,
  certificateThumbprint,
} from './mtls/index.js';
export type { SelfOptions } from './guards.js';
export type { PasswordHashOptions } from './password.js';
export { hashPassword, verifyPassword } from './password.js';

/**
 * The process-wide `Auth` behind `core.createTokens()`, `core.authenticate()` and friends (the
 * seed's module-level functions). Created from the environment on first use unless
 * `configureAuth()` set it; applications that need several, or tests, use `createAuth()`.
 */
let shared: Auth | undefined;

function sharedAuth(): Auth {
  shared ??= createAuth();
  return shared;
}

/** Set (or replace) the Auth used by `core.createTokens()`, `core.authenticate()`, etc. Returns it. */
export function configureAuth(options: Readonly<AuthOptions> | Auth = {}): Auth {
  const next = 'authenticate' in options ? options : createAuth(options);
  const previous = shared;
  shared = next;
  if (previous !== undefined && previous !== next) {
    previous.close().catch(() => undefined);
  }
  return next;
}

/** `createTokens({userId, email, roles, ...claims})` on the shared Auth (the seed's `create_tokens`). */
export function createTokens(claims: TokenClaims, options?: IssueOptions): TokenPair {
  return sharedAuth().createTokens(claims, options);
}

/** Rotate a token pair on the shared Auth; reuse of a refresh token revokes its family. */
export function refreshTokens(refreshToken: string, options?: RefreshOptions): Promise<TokenPair> {
  return sharedAuth().refreshTokens(refreshToken, options);
}

/** Revoke a token, a `jti`, or `req.user`'s token on the shared Auth. */
export function revokeToken(token: string | AuthUser, options?: RevokeOptions): Promise<boolean> {
  return sharedAuth().revokeToken(token, options);
}

/**
 * Verify the bearer token and set `req.user` — on the shared Auth, or on `options.auth`.
 *
 * @example
 * app.use('/api', core.authenticate(), routes);
 * app.use('/public', core.authenticate({ optional: true }), publicRoutes);
 */
export function authenticate(options: Readonly<AuthenticateOptions & { auth?: Auth }> = {}): RequestHandler {
  const { auth, ...rest } = options;
  if (auth !== undefined) return auth.authenticate(rest);
  // Follows configureAuth(): a middleware made before a swap must use the new Auth (and its
  // denylist), never the closed one.
  let current = sharedAuth();
  let handler = current.authenticate(rest);
  return function authenticate(req, res, next) {
    if (shared !== current) {
      current = sharedAuth();
      handler = current.authenticate(rest);
    }
    handler(req, res, next);
  };
}

/** Serve the shared Auth's public keys as a JWKS: `app.get('/.well-known/jwks.json', core.jwks())`. */
export function jwks(options: Readonly<{ auth?: Auth }> = {}): RequestHandler {
  return (options.auth ?? sharedAuth()).jwks();
}
