import { randomUUID } from 'node:crypto';
import { createSigner } from 'fast-jwt';
import type { SigningKey } from './keys.js';

/** What `createTokens()` takes: the seed's `user_id`, `email`, `roles`, plus claims of your own. */
export interface TokenClaims {
  readonly userId: string | number;
  readonly email?: string | undefined;
  readonly roles?: readonly string[] | undefined;
  readonly [claim: string]: unknown;
}

/** The seed's token response. */
export interface TokenPair {
  readonly access_token: string;
  readonly refresh_token: string;
  readonly token_type: 'bearer';
  /** Seconds until the access token expires. */
  readonly expires_in: number;
  /** Seconds until the refresh token expires. */
  readonly refresh_expires_in: number;
}

export interface IssueOptions {
  /**
   * Bind the tokens to a client certificate (RFC 8705 `cnf.x5t#S256`, base64url SHA-256 of its DER):
   * the access token is accepted only over a connection with that certificate, and the refresh
   * token rotates only when the same thumbprint is presented.
   */
  readonly certificateThumbprint?: string | undefined;
}

/** Claims that caduceus sets itself and an application may not pass in. */
const RESERVED = new Set(['sub', 'iss', 'aud', 'exp', 'iat', 'nbf', 'jti', 'type', 'fam', 'cnf', 'user_id']);

export interface IssuerPolicy {
  readonly issuer: string;
  readonly audience: string | readonly string[];
  readonly accessTtlSeconds: number;
  readonly refreshTtlSeconds: number;
}

/** One issued pair, with what revocation and rotation need to know about it. */
export interface Issued {
  readonly pair: TokenPair;
  readonly family: string;
  readonly refreshJti: string;
  readonly refreshExpiresAt: number;
}

export class TokenIssuer {
  readonly #access: (payload: Record<string, unknown>) => string;
  readonly #refresh: (payload: Record<string, unknown>) => string;
  readonly #policy: IssuerPolicy;

  constructor(key: SigningKey, policy: IssuerPolicy) {
    const signer = (typ: string): ((payload: Record<string, unknown>) => string) =>
      createSigner({ key: key.material, algorithm: key.alg, kid: key.kid, header: { alg: key.alg, typ } });
    // RFC 9068's media type for access tokens; refresh tokens get their own, so neither passes as the other.
    this.#access = signer('at+jwt');
    this.#refresh = signer('refresh+jwt');
    this.#policy = policy;
  }

  /** A new pair; `family` continues a refresh chain (rotation), else a new one starts. */
  issue(input: TokenClaims, options: IssueOptions = {}, family: string = randomUUID()): Issued {
    const claims = readClaims(input);
    const now = Math.floor(Date.now() / 1000);
    const p = this.#policy;
    const common = { ...claims, iss: p.issuer, aud: p.audience, iat: now, fam: family };
    const cnf = options.certificateThumbprint;
    // Both tokens carry the binding: the refresh token so that rotation keeps it (RFC 8705 §3, §4).
    const bound = cnf === undefined ? {} : { cnf: { 'x5t#S256': cnf } };
    const access = this.#access({
      ...common,
      ...bound,
      type: 'access',
      jti: randomUUID(),
      exp: now + p.accessTtlSeconds,
    });
    const refreshJti = randomUUID();
    const refreshExp = now + p.refreshTtlSeconds;
    const refresh = this.#refresh({ ...common, ...bound, type: 'refresh', jti: refreshJti, exp: refreshExp });
    return {
      pair: {
        access_token: access,
        refresh_token: refresh,
        token_type: 'bearer',
        expires_in: p.accessTtlSeconds,
        refresh_expires_in: p.refreshTtlSeconds,
      },
      family,
      refreshJti,
      refreshExpiresAt: refreshExp * 1000,
    };
  }
}

/** `{userId, email, roles, ...rest}` → the token's claims (`sub`, `email`, `roles`, rest), checked. */
function readClaims(input: TokenClaims): Record<string, unknown> {
  if (typeof input !== 'object' || (input as unknown) === null) {
    throw new TypeError('createTokens: expected {userId, email?, roles?, ...claims}');
  }
  const { userId, email, roles, ...rest } = input;
  const sub = typeof userId === 'number' && Number.isFinite(userId) ? String(userId) : userId;
  if (typeof sub !== 'string' || sub.length === 0 || sub.length > 256) {
    throw new TypeError('createTokens: userId must be a non-empty string or a number');
  }
  if (email !== undefined && typeof email !== 'string')
    throw new TypeError('createTokens: email must be a string');
  if (
    roles !== undefined &&
    (!Array.isArray(roles) || !roles.every((r) => typeof r === 'string' && r !== ''))
  ) {
    throw new TypeError('createTokens: roles must be an array of non-empty strings');
  }
  for (const name of Object.keys(rest)) {
    if (RESERVED.has(name))
      throw new TypeError(`createTokens: "${name}" is set by caduceus and cannot be passed`);
  }
  return { sub, ...(email === undefined ? {} : { email }), roles: roles ?? [], ...rest };
}
