import { createHash, createPublicKey, KeyObject } from 'node:crypto';
import type { JwtAlgorithm } from '../config/index.js';
import { ConfigError } from '../errors/index.js';
import type { VerificationKey } from './types.js';

/** Longest `kid` accepted from a JWKS or given to `publicJwk()`. */
export const MAX_KID_LENGTH = 256;

/** RSA moduli below this are refused (NIST SP 800-131A); above the upper bound OpenSSL refuses to verify. */
const MIN_RSA_BITS = 2048;
const MAX_RSA_BITS = 16_384;

const RSA_ALGORITHMS: readonly JwtAlgorithm[] = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'];
const EC_ALGORITHMS: Readonly<Record<string, JwtAlgorithm>> = {
  'P-256': 'ES256',
  'P-384': 'ES384',
  'P-521': 'ES512',
};
/** Members that only a private (or symmetric) JWK carries: RFC 7518 §6.2.2, §6.3.2, §6.4; RFC 8037 §2. */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'] as const;
const BASE64URL = /^[A-Za-z0-9_-]+$/;

type Jwk = Readonly<Record<string, unknown>>;

const isRecord = (value: unknown): value is Jwk =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

const b64u = (value: unknown): value is string => typeof value === 'string' && BASE64URL.test(value);

/** The public members of a JWK, picked one by one, or undefined when one is missing or not base64url. */
function publicMembers(jwk: Jwk): Record<string, string> | undefined {
  switch (jwk.kty) {
    case 'RSA':
      return b64u(jwk.n) && b64u(jwk.e) ? { kty: 'RSA', n: jwk.n, e: jwk.e } : undefined;
    case 'EC':
      return typeof jwk.crv === 'string' && b64u(jwk.x) && b64u(jwk.y)
        ? { kty: 'EC', crv: jwk.crv, x: jwk.x, y: jwk.y }
        : undefined;
    case 'OKP':
      return typeof jwk.crv === 'string' && b64u(jwk.x) ? { kty: 'OKP', crv: jwk.crv, x: jwk.x } : undefined;
    default:
      return undefined;
  }
}

/** The one algorithm a JWK verifies, from its `kty`/`crv` and optional `alg`; undefined when they disagree. */
function algorithmOf(jwk: Jwk): JwtAlgorithm | undefined {
  const declared = jwk.alg;
  if (declared !== undefined && typeof declared !== 'string') return undefined;
  switch (jwk.kty) {
    case 'RSA': {
      const alg = declared ?? 'RS256';
      return RSA_ALGORITHMS.find((a) => a === alg);
    }
    case 'EC': {
      const alg = typeof jwk.crv === 'string' ? EC_ALGORITHMS[jwk.crv] : undefined;
      return declared === undefined || declared === alg ? alg : undefined;
    }
    case 'OKP':
      return jwk.crv === 'Ed25519' && (declared === undefined || declared === 'EdDSA') ? 'EdDSA' : undefined;
    default:
      return undefined; // 'oct' (never a symmetric key from a JWKS) and unknown key types
  }
}

function usableForVerify(jwk: Jwk): boolean {
  if (jwk.use !== undefined && jwk.use !== 'sig') return false;
  if (jwk.key_ops === undefined) return true;
  return Array.isArray(jwk.key_ops) && jwk.key_ops.includes('verify');
}

function importPublic(members: Record<string, string>): KeyObject | undefined {
  try {
    return createPublicKey({ key: members, format: 'jwk' });
  } catch {
    return undefined; // not a point on the curve, wrong length: unusable, not an error of ours
  }
}

/**
 * A verification key from one JWK of a JWKS, or `undefined` when the JWK is not a public signature
 * key caduceus accepts: RSA (RS256–512, PS256–512; RS256 when `alg` is absent; at least 2048 bits),
 * EC P-256/P-384/P-521 (ES256/384/512, `alg` must match the curve) and OKP Ed25519 (EdDSA).
 * Refused: `oct` and any private JWK, `use` other than `sig`, `key_ops` without `verify`, and a
 * missing, empty or over-long (> 256) `kid`. `material` is the SPKI PEM that fast-jwt takes.
 */
export function jwkToVerificationKey(jwk: unknown): VerificationKey | undefined {
  if (!isRecord(jwk)) return undefined;
  const kid = jwk.kid;
  if (typeof kid !== 'string' || kid.length === 0 || kid.length > MAX_KID_LENGTH) return undefined;
  if (PRIVATE_MEMBERS.some((m) => m in jwk) || !usableForVerify(jwk)) return undefined;
  const alg = algorithmOf(jwk);
  const members = publicMembers(jwk);
  if (alg === undefined || members === undefined) return undefined;
  const key = importPublic(members);
  if (key === undefined) return undefined;
  if (key.asymmetricKeyType === 'rsa') {
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
    if (bits < MIN_RSA_BITS || bits > MAX_RSA_BITS) return undefined;
  }
  return { kid, alg, material: key.export({ type: 'spki', format: 'pem' }) as string };
}

/** Whether `alg` may be used with this public key (same rules as `jwkToVerificationKey`). */
function fitsKey(key: KeyObject, alg: JwtAlgorithm): boolean {
  switch (key.asymmetricKeyType) {
    case 'rsa': {
      const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
      return RSA_ALGORITHMS.includes(alg) && bits >= MIN_RSA_BITS && bits <= MAX_RSA_BITS;
    }
    case 'ec': {
      const curve = key.asymmetricKeyDetails?.namedCurve;
      const byOid: Record<string, string> = { prime256v1: 'P-256', secp384r1: 'P-384', secp521r1: 'P-521' };
      const crv = curve === undefined ? undefined : byOid[curve];
      return crv !== undefined && EC_ALGORITHMS[crv] === alg;
    }
    case 'ed25519':
      return alg === 'EdDSA';
    default:
      return false;
  }
}

/**
 * The public JWK of one of our signing keys, for `jwks()`: `kty` and the public members only, plus
 * `kid`, `alg` and `use: 'sig'`. A private KeyObject is accepted (its public half is exported);
 * a secret key, a key type or size the algorithm does not fit, or a bad `kid` throws `ConfigError`.
 *
 * @example
 * const jwk = publicJwk(privateKey, jwkThumbprint(privateKey), 'ES256');
 */
export function publicJwk(key: KeyObject, kid: string, alg: JwtAlgorithm): Record<string, unknown> {
  if (!(key instanceof KeyObject)) throw ConfigError.option('publicJwk', 'key', 'a KeyObject', key);
  if (key.type === 'secret') {
    throw new ConfigError('publicJwk: key must be an asymmetric key, got a secret key (never publish it)');
  }
  if (typeof kid !== 'string' || kid.length === 0 || kid.length > MAX_KID_LENGTH) {
    throw ConfigError.option('publicJwk', 'kid', `a string of 1 to ${MAX_KID_LENGTH} characters`, kid);
  }
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  if (!fitsKey(pub, alg)) {
    const what = pub.asymmetricKeyType ?? 'unknown';
    throw new ConfigError(
      `publicJwk: algorithm ${alg} does not fit this ${what} key` +
        ' (RSA ≥ 2048 bits: RS*/PS*; EC P-256/384/521: ES256/384/512; Ed25519: EdDSA)',
    );
  }
  const members = publicMembers(pub.export({ format: 'jwk' }));
  if (members === undefined) throw new ConfigError(`publicJwk: cannot export this key as a JWK`);
  return { ...members, kid, alg, use: 'sig' };
}

/** The members RFC 7638 §3.2 hashes, in lexicographic order, per key type. */
const THUMBPRINT_MEMBERS: Readonly<Record<string, readonly string[]>> = {
  RSA: ['e', 'kty', 'n'],
  EC: ['crv', 'kty', 'x', 'y'],
  OKP: ['crv', 'kty', 'x'],
};

/**
 * The RFC 7638 SHA-256 thumbprint of a public JWK (or of a KeyObject's public half), base64url — a
 * stable default `kid`. Symmetric (`oct`) keys are refused: the hash of a weak secret, published in
 * every token header, could be brute-forced offline.
 */
export function jwkThumbprint(jwk: Readonly<Record<string, unknown>> | KeyObject): string {
  let source: Jwk;
  if (jwk instanceof KeyObject) {
    if (jwk.type === 'secret') throw new TypeError('jwkThumbprint: secret keys have no public thumbprint');
    source = (jwk.type === 'private' ? createPublicKey(jwk) : jwk).export({ format: 'jwk' });
  } else {
    source = jwk;
  }
  const names = typeof source.kty === 'string' ? THUMBPRINT_MEMBERS[source.kty] : undefined;
  if (names === undefined) {
    throw new TypeError('jwkThumbprint: kty must be RSA, EC or OKP');
  }
  const canonical: Record<string, string> = {};
  for (const name of names) {
    const value = source[name];
    if (typeof value !== 'string') throw new TypeError(`jwkThumbprint: member "${name}" must be a string`);
    canonical[name] = value;
  }
  return createHash('sha256').update(JSON.stringify(canonical)).digest('base64url');
}
