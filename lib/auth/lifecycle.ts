import type { AuthMonitor } from './monitor.js';
import type { RevocationStore } from './revocation.js';
import type { TokenClaims, TokenIssuer, TokenPair } from './tokens.js';
import type { AuthUser } from './types.js';
import { AuthenticationFailure, type TokenVerifier } from './verifier.js';

export interface RefreshOptions {
  /**
   * The thumbprint of the client certificate of the refresh request
   * (`core.clientCertificateThumbprint(req)`). Required when the tokens were bound to a
   * certificate: a bound refresh token rotates only for its certificate, and the new pair stays bound.
   */
  certificateThumbprint?: string | undefined;
}

export interface RevokeOptions {
  /** Also revoke every token of the same refresh family (logout everywhere that login led to). Default false. */
  family?: boolean;
  /** For a bare `jti`: when its token expires (epoch ms). Default: the longest token lifetime from now. */
  expiresAt?: number;
}

export interface LifecyclePolicy {
  readonly accessTtlMs: number;
  readonly refreshTtlMs: number;
  /** Clock tolerance: a token stays acceptable this long after its exp, so its entries must too. */
  readonly graceMs: number;
  readonly loadUser: ((claims: TokenClaims) => TokenClaims | null | Promise<TokenClaims | null>) | undefined;
}

/** Rotation (with reuse detection) and revocation of our tokens. */
export class TokenLifecycle {
  readonly #verifier: TokenVerifier;
  readonly #issuer: TokenIssuer;
  readonly #store: RevocationStore;
  readonly #monitor: AuthMonitor;
  readonly #policy: LifecyclePolicy;

  constructor(
    verifier: TokenVerifier,
    issuer: TokenIssuer,
    store: RevocationStore,
    monitor: AuthMonitor,
    policy: LifecyclePolicy,
  ) {
    this.#verifier = verifier;
    this.#issuer = issuer;
    this.#store = store;
    this.#monitor = monitor;
    this.#policy = policy;
  }

  /** A revoked family outlives every token issued in it before the revocation. */
  #familyExpiry(): number {
    return Date.now() + this.#policy.refreshTtlMs + this.#policy.graceMs;
  }

  #fail(reason: AuthenticationFailure['reason']): never {
    this.#monitor.failure(reason);
    throw new AuthenticationFailure(reason);
  }

  async refresh(refreshToken: string, options: RefreshOptions = {}): Promise<TokenPair> {
    if (typeof refreshToken !== 'string') this.#fail('missing');
    const store = this.#store;
    let claims;
    try {
      claims = await this.#verifier.verify(refreshToken, 'refresh');
    } catch (err) {
      if (err instanceof AuthenticationFailure) this.#monitor.failure(err.reason);
      throw err;
    }
    const { jti, fam, sub, exp } = claims as { jti?: unknown; fam?: unknown; sub: string; exp: number };
    if (typeof jti !== 'string' || typeof fam !== 'string') this.#fail('bad_claims');
    // Checked before the token is consumed: a refresh from the wrong client must not burn it.
    const bound = (claims.cnf as { 'x5t#S256'?: unknown } | undefined)?.['x5t#S256'];
    if (bound !== undefined && bound !== options.certificateThumbprint) this.#fail('certificate_mismatch');
    if ((await store.isRevoked(jti)) || (await store.isRevoked(`fam:${fam}`))) this.#fail('revoked');
    if (!(await store.consume(jti, exp * 1000 + this.#policy.graceMs))) {
      // Used before: either the client or a thief holds a copy. End the whole family (logged
      // first, so the event survives a denylist that fails to record the revocation).
      this.#monitor.refreshReuse(sub);
      await store.revoke(`fam:${fam}`, this.#familyExpiry());
      throw new AuthenticationFailure('refresh_reuse');
    }
    const base = claimsForReissue(claims);
    const next = this.#policy.loadUser === undefined ? base : await this.#policy.loadUser(base);
    if (next === null) {
      await store.revoke(`fam:${fam}`, this.#familyExpiry());
      this.#monitor.revoked(sub, true);
      throw new AuthenticationFailure('revoked');
    }
    const issued = this.#issuer.issue(
      next,
      typeof bound === 'string' ? { certificateThumbprint: bound } : {},
      fam,
    );
    this.#monitor.refreshed(sub);
    return issued.pair;
  }

  /** Deny the token (and its family when asked); false when it carries nothing to deny (no `jti`). */
  async revoke(target: string | AuthUser, options: RevokeOptions = {}): Promise<boolean> {
    const longest = Math.max(this.#policy.accessTtlMs, this.#policy.refreshTtlMs);
    let jti: unknown;
    let fam: unknown;
    let expiresAt: number;
    let userId: string | undefined;
    if (typeof target === 'object' && (target as unknown) !== null && 'claims' in target) {
      ({ jti, fam } = target.claims);
      expiresAt = typeof target.claims.exp === 'number' ? target.claims.exp * 1000 : Date.now() + longest;
      userId = target.id;
    } else if (typeof target === 'string' && target.split('.').length === 3) {
      const claims = await this.#verifier.verify(target, isRefresh(target) ? 'refresh' : 'access', true);
      ({ jti, fam } = claims);
      expiresAt = (claims.exp as number) * 1000;
      userId = claims.sub as string;
    } else if (typeof target === 'string' && target !== '') {
      jti = target;
      expiresAt = options.expiresAt ?? Date.now() + longest;
    } else {
      throw new TypeError('revokeToken: expected a token, a jti or req.user');
    }
    const family = options.family === true && typeof fam === 'string';
    // A certificate identity or a provider's token without jti has nothing a denylist can name.
    if (typeof jti !== 'string' && !family) return false;
    const until = expiresAt + this.#policy.graceMs;
    if (typeof jti === 'string' && until > Date.now()) await this.#store.revoke(jti, until);
    if (family) await this.#store.revoke(`fam:${fam as string}`, this.#familyExpiry());
    this.#monitor.revoked(userId, family);
    return true;
  }
}

function isRefresh(token: string): boolean {
  try {
    const header = JSON.parse(
      Buffer.from(token.slice(0, token.indexOf('.')), 'base64url').toString('utf8'),
    ) as {
      typ?: unknown;
    };
    return header.typ === 'refresh+jwt';
  } catch {
    return false;
  }
}

/** What caduceus writes into every token itself; not carried over from a refresh token. */
const OWN_CLAIMS = new Set([
  'sub',
  'email',
  'roles',
  'iss',
  'aud',
  'exp',
  'iat',
  'nbf',
  'jti',
  'type',
  'fam',
  'cnf',
]);

/** The claims of a refresh token as `createTokens()` input (caduceus' own claims removed). */
function claimsForReissue(claims: Readonly<Record<string, unknown>>): TokenClaims {
  const rest: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(claims)) if (!OWN_CLAIMS.has(name)) rest[name] = value;
  return {
    ...rest,
    userId: claims.sub as string,
    email: typeof claims.email === 'string' ? claims.email : undefined,
    roles: Array.isArray(claims.roles) ? (claims.roles as string[]) : undefined,
  };
}
