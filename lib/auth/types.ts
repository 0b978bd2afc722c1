import type { JwtAlgorithm } from '../config/index.js';

/** Who made the request, as `authenticate()` or `mtls()` established it. Set on `req.user`. */
export interface AuthUser {
  /** The token's `sub`, or the service identity of a client certificate. */
  readonly id: string;
  readonly email: string | undefined;
  readonly roles: readonly string[];
  /** OAuth scopes (`scope` space-separated or `scp` array). */
  readonly scopes: readonly string[];
  /** Every verified claim of the token (empty for a certificate identity). */
  readonly claims: Readonly<Record<string, unknown>>;
  /** How the identity was proven. */
  readonly via: 'token' | 'certificate';
}

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    // Merges with passport's `Express.User`, so `req.user.roles` is typed in applications.
    // eslint-disable-next-line @typescript-eslint/no-empty-object-type
    interface User extends AuthUser {}
    interface Request {
      user?: User | undefined;
    }
  }
}

/** Why a request was not authenticated. Each maps to one stable error code. */
export type AuthFailureReason =
  | 'missing'
  | 'malformed'
  | 'expired'
  | 'not_yet_valid'
  | 'bad_signature'
  | 'unknown_key'
  | 'bad_algorithm'
  | 'bad_header'
  | 'bad_claims'
  | 'wrong_type'
  | 'too_large'
  | 'query_token'
  | 'revoked'
  | 'refresh_reuse'
  | 'certificate_mismatch'
  | 'invalid_credentials';

/** An authentication event, counted and written to the security log. */
export interface AuthEvent {
  readonly type: 'success' | 'failure' | 'issued' | 'refresh' | 'revoked' | 'refresh_reuse' | 'certificate';
  /** The failure reason (`AuthFailureReason`), or what was revoked: `token` / `family`. */
  readonly reason?: string;
  /** The user or service id when known (never a token, never a claim value other than the id). */
  readonly userId?: string | undefined;
}

/** One key that can verify signatures: from the local key ring or a remote JWKS. */
export interface VerificationKey {
  /** The JWS `kid`; undefined only for a single local key configured without one. */
  readonly kid: string | undefined;
  /** The one algorithm this key verifies (RFC 8725: a key is bound to one algorithm). */
  readonly alg: JwtAlgorithm;
  /** What the verifier takes: SPKI PEM for a public key, the secret bytes for an HMAC key. */
  readonly material: string | Buffer;
}
