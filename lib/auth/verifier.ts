import { createVerifier, TokenError } from 'fast-jwt';
import { UnauthorizedError } from '../errors/index.js';
import type { KeyRing } from './keys.js';
import type { RemoteJwks } from './remote-jwks.js';
import type { AuthFailureReason, VerificationKey } from './types.js';

/** A 401 that knows why (for counters and the security log); its code and message never leak more. */
export class AuthenticationFailure extends UnauthorizedError {
  readonly reason: AuthFailureReason;
  constructor(reason: AuthFailureReason, cause?: unknown) {
    const [code, message] = FAILURES[reason];
    super(message, {
      code,
      expose: true,
      ...(reason === 'missing' ? {} : { bearerError: 'invalid_token' }),
      ...(cause === undefined ? {} : { cause }),
    });
    this.reason = reason;
  }
}

const FAILURES: Readonly<Record<AuthFailureReason, readonly [string, string]>> = {
  missing: ['TOKEN_MISSING', 'Authentication required'],
  malformed: ['TOKEN_INVALID', 'Token is malformed'],
  expired: ['TOKEN_EXPIRED', 'Token has expired'],
  not_yet_valid: ['TOKEN_INVALID', 'Token is not valid yet'],
  bad_signature: ['TOKEN_INVALID', 'Token is invalid'],
  unknown_key: ['TOKEN_INVALID', 'Token is invalid'],
  bad_algorithm: ['TOKEN_INVALID', 'Token is invalid'],
  bad_header: ['TOKEN_INVALID', 'Token is invalid'],
  bad_claims: ['TOKEN_INVALID', 'Token is invalid'],
  wrong_type: ['TOKEN_INVALID', 'Token is not of the expected type'],
  too_large: ['TOKEN_INVALID', 'Token is too large'],
  query_token: ['TOKEN_INVALID', 'Tokens in the URL are not accepted; send an Authorization: Bearer header'],
  revoked: ['TOKEN_REVOKED', 'Token has been revoked'],
  refresh_reuse: ['TOKEN_REVOKED', 'Token has been revoked'],
  certificate_mismatch: ['TOKEN_INVALID', 'Token is bound to another client certificate'],
  invalid_credentials: ['INVALID_CREDENTIALS', 'Invalid credentials'],
};

/** What every token must satisfy, fixed when `createAuth()` runs. */
export interface VerifyPolicy {
  readonly algorithms: ReadonlySet<string>;
  readonly issuer: string | readonly string[];
  readonly audience: string | readonly string[];
  readonly clockToleranceMs: number;
  readonly maxTokenBytes: number;
  readonly requiredClaims: readonly string[];
  /** Verified access tokens remembered (0 = off). */
  readonly cacheSize: number;
}

export type TokenKind = 'access' | 'refresh';
export type Claims = Readonly<Record<string, unknown>>;

interface Header {
  readonly alg?: unknown;
  readonly kid?: unknown;
  readonly typ?: unknown;
}

/** Header members that point at keys elsewhere or change how the token is read: never honoured. */
const FORBIDDEN_HEADERS = ['jku', 'x5u', 'jwk', 'x5c', 'crit', 'b64', 'enc', 'zip'] as const;
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
/** Distinct headers remembered (tokens of one issuer share a handful). */
const HEADER_CACHE = 64;

const REASON_BY_CODE: Readonly<Record<string, AuthFailureReason>> = {
  [TokenError.codes.expired]: 'expired',
  [TokenError.codes.inactive]: 'not_yet_valid',
  [TokenError.codes.invalidSignature]: 'bad_signature',
  [TokenError.codes.missingSignature]: 'bad_signature',
  [TokenError.codes.invalidAlgorithm]: 'bad_algorithm',
  [TokenError.codes.invalidClaimType]: 'bad_claims',
  [TokenError.codes.invalidClaimValue]: 'bad_claims',
  [TokenError.codes.missingRequiredClaim]: 'bad_claims',
  [TokenError.codes.invalidCritHeader]: 'bad_header',
};

type Verify = (token: string) => Record<string, unknown>;

/** A verified access token: its claims, when it stops being acceptable, and the key that verified it. */
interface Verified {
  readonly claims: Claims;
  /** exp + clock tolerance, in epoch ms. */
  readonly until: number;
  readonly key: VerificationKey;
  readonly local: boolean;
}

/** Tokens longer than this are verified every time rather than kept as cache keys. */
const CACHEABLE_BYTES = 2048;

/**
 * Verifies compact JWS tokens against our key ring and, for access tokens, an identity
 * provider's JWKS. Signature, algorithm, issuer, audience and time checks run in fast-jwt with the
 * policy passed explicitly for every key, so no default underneath can drop one; the checks
 * fast-jwt does not make (header members, `iat` in the future, token type) run here.
 */
export class TokenVerifier {
  readonly #ring: KeyRing;
  readonly #remote: RemoteJwks | undefined;
  readonly #policy: VerifyPolicy;
  readonly #verifiers = new WeakMap<VerificationKey, Verify>();
  readonly #lenient = new WeakMap<VerificationKey, Verify>();
  readonly #headers = new Map<string, Header | null>();
  /**
   * Verified access tokens by their exact text (the same bytes verify the same way), oldest first.
   * A hit skips the signature and claim checks; expiry is rechecked, and a key the identity
   * provider has since withdrawn invalidates it. Revocation is checked by the caller every time.
   */
  readonly #verified = new Map<string, Verified>();

  constructor(ring: KeyRing, remote: RemoteJwks | undefined, policy: VerifyPolicy) {
    this.#ring = ring;
    this.#remote = remote;
    this.#policy = policy;
  }

  /**
   * Verify `token` as an access or refresh token. Returns the claims, or a promise of them when a
   * key must first be fetched from the identity provider. Throws/rejects `AuthenticationFailure`.
   * `ignoreExpiration` serves revocation of already-expired tokens only.
   */
  verify(token: string, kind: TokenKind, ignoreExpiration = false): Claims | Promise<Claims> {
    if (token.length > this.#policy.maxTokenBytes) throw new AuthenticationFailure('too_large');
    if (kind === 'access' && !ignoreExpiration) {
      const hit = this.#verified.get(token);
      if (hit !== undefined) {
        if (hit.until > Date.now() && (hit.local || this.#remote?.get(hit.key.kid as string) === hit.key)) {
          return hit.claims;
        }
        this.#verified.delete(token);
      }
    }
    if (!COMPACT_JWS.test(token) || !canonicalTail(token)) throw new AuthenticationFailure('malformed');
    const header = this.#header(token.slice(0, token.indexOf('.')));
    const alg = header.alg;
    if (typeof alg !== 'string' || !this.#policy.algorithms.has(alg))
      throw new AuthenticationFailure('bad_algorithm');
    for (const name of FORBIDDEN_HEADERS) if (name in header) throw new AuthenticationFailure('bad_header');
    const kid = header.kid;
    if (kid !== undefined && (typeof kid !== 'string' || kid.length === 0 || kid.length > 256)) {
      throw new AuthenticationFailure('bad_header');
    }
    if (kind === 'refresh' ? header.typ !== 'refresh+jwt' : header.typ === 'refresh+jwt') {
      throw new AuthenticationFailure('wrong_type');
    }
    // A token without `kid` (minted by an older service) is tried with the current signing key only.
    const local = kid === undefined ? this.#ring.current : this.#ring.get(kid);
    if (local !== undefined) return this.#check(token, local, alg, kind, true, ignoreExpiration);
    const remote = kind === 'access' && kid !== undefined ? this.#remote : undefined;
    if (remote === undefined) throw new AuthenticationFailure('unknown_key');
    const cached = remote.get(kid as string);
    if (cached !== undefined) return this.#check(token, cached, alg, kind, false, ignoreExpiration);
    return remote.resolve(kid as string).then((key) => {
      if (key === undefined) throw new AuthenticationFailure('unknown_key');
      return this.#check(token, key, alg, kind, false, ignoreExpiration);
    });
  }

  #header(part: string): Header {
    let header = this.#headers.get(part);
    if (header === undefined) {
      header = parseHeader(part);
      if (this.#headers.size >= HEADER_CACHE) this.#headers.clear();
      this.#headers.set(part, header);
    }
    if (header === null) throw new AuthenticationFailure('malformed');
    return header;
  }

  #check(
    token: string,
    key: VerificationKey,
    alg: string,
    kind: TokenKind,
    local: boolean,
    ignoreExpiration: boolean,
  ): Claims {
    if (key.alg !== alg) throw new AuthenticationFailure('bad_algorithm');
    let claims: Record<string, unknown>;
    try {
      claims = this.#verifierFor(key, ignoreExpiration)(token);
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      throw new AuthenticationFailure(
        REASON_BY_CODE[typeof code === 'string' ? code : ''] ?? 'malformed',
        err,
      );
    }
    const { iat, sub, type } = claims;
    if (
      iat !== undefined &&
      (typeof iat !== 'number' || iat * 1000 > Date.now() + this.#policy.clockToleranceMs)
    ) {
      throw new AuthenticationFailure(typeof iat === 'number' ? 'not_yet_valid' : 'bad_claims');
    }
    if (typeof sub !== 'string' || sub.length === 0) throw new AuthenticationFailure('bad_claims');
    // Our own tokens say what they are; an identity provider's access tokens need not.
    if (kind === 'refresh' ? type !== 'refresh' : type === 'refresh' || (local && type !== 'access')) {
      throw new AuthenticationFailure('wrong_type');
    }
    if (kind === 'access' && !ignoreExpiration) this.#remember(token, claims, key, local);
    return claims;
  }

  #remember(token: string, claims: Claims, key: VerificationKey, local: boolean): void {
    const size = this.#policy.cacheSize;
    if (size === 0 || token.length > CACHEABLE_BYTES) return;
    if (this.#verified.size >= size) {
      const oldest = this.#verified.keys().next();
      if (oldest.done !== true) this.#verified.delete(oldest.value);
    }
    Object.freeze(claims);
    const until = (claims.exp as number) * 1000 + this.#policy.clockToleranceMs;
    this.#verified.set(token, { claims, until, key, local });
  }

  #verifierFor(key: VerificationKey, ignoreExpiration: boolean): Verify {
    const map = ignoreExpiration ? this.#lenient : this.#verifiers;
    let verify = map.get(key);
    if (verify === undefined) {
      const p = this.#policy;
      verify = createVerifier({
        key: key.material,
        algorithms: [key.alg],
        allowedIss: [...[p.issuer].flat()],
        allowedAud: [...[p.audience].flat()],
        // fast-jwt checks iss/aud only when present: requiring them is what makes the checks unskippable.
        requiredClaims: ['exp', 'iss', 'aud', ...p.requiredClaims],
        clockTolerance: p.clockToleranceMs,
        ignoreExpiration,
        // Our own cache (#verified) keys on the token text: fast-jwt's hashes every token with SHA-256.
        cache: false,
      }) as Verify;
      map.set(key, verify);
    }
    return verify;
  }
}

const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/**
 * The signature's last character must have its padding bits clear: decoders ignore them, so
 * otherwise one signature has up to 16 spellings and a token can be replayed as a "different" one.
 */
function canonicalTail(token: string): boolean {
  const length = token.length - token.lastIndexOf('.') - 1;
  const rest = length % 4;
  if (rest === 0) return true;
  if (rest === 1) return false;
  const value = BASE64URL.indexOf(token.charAt(token.length - 1));
  return (value & (rest === 2 ? 15 : 3)) === 0;
}

function parseHeader(part: string): Header | null {
  try {
    const value: unknown = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? value : null;
  } catch {
    return null;
  }
}
