import { createHash, createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import type { JwtAlgorithm } from '../config/index.js';
import { ConfigError } from '../errors/index.js';
import { jwkThumbprint, jwkToVerificationKey, publicJwk } from './jwk.js';
import type { VerificationKey } from './types.js';

/** Key material for signing and verifying our own tokens. */
export interface KeyOptions {
  /** HMAC secret (HS256/384/512), at least 32 bytes. Default: `JWT_SECRET_KEY`. Ignored when `privateKey` is set. */
  secret?: string | Buffer;
  /** Retired HMAC secrets that still verify, never sign. Default: `JWT_SECRET_KEY_PREVIOUS`. */
  previousSecrets?: readonly (string | Buffer)[];
  /** PEM (or KeyObject) private key for RS*, PS*, ES* or EdDSA. Default: `JWT_PRIVATE_KEY`. */
  privateKey?: string | Buffer | KeyObject;
  /** `kid` of the signing key. Default: `JWT_KEY_ID`, else the key's RFC 7638 thumbprint (or a digest of the secret). */
  keyId?: string;
  /** Verify-only public keys as a JWKS (`{keys: [...]}`, object or JSON). Default: `JWT_PUBLIC_KEYS`. */
  publicKeys?: string | { keys: readonly unknown[] };
}

/** A key that signs: its `kid`, algorithm and what the signer takes (PEM or secret bytes). */
export interface SigningKey {
  readonly kid: string;
  readonly alg: JwtAlgorithm;
  readonly material: string | Buffer;
}

const MIN_SECRET_BYTES = 32;
const CURVE_ALG: Readonly<Record<string, JwtAlgorithm>> = {
  prime256v1: 'ES256',
  secp384r1: 'ES384',
  secp521r1: 'ES512',
};

/** The algorithms a key type can verify; the configured algorithm must be one of them. */
function algorithmsFor(key: KeyObject): readonly JwtAlgorithm[] {
  switch (key.asymmetricKeyType) {
    case 'rsa':
      return ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'];
    case 'ec': {
      const alg = CURVE_ALG[key.asymmetricKeyDetails?.namedCurve ?? ''];
      return alg === undefined ? [] : [alg];
    }
    case 'ed25519':
      return ['EdDSA'];
    default:
      return [];
  }
}

function secretBytes(secret: string | Buffer, name: string): Buffer {
  const bytes = typeof secret === 'string' ? Buffer.from(secret, 'utf8') : secret;
  if (!Buffer.isBuffer(bytes) || bytes.length < MIN_SECRET_BYTES) {
    throw new ConfigError(`auth: ${name} must be at least ${MIN_SECRET_BYTES} bytes (RFC 7518 §3.2)`, [
      { name, expected: `a secret of at least ${MIN_SECRET_BYTES} bytes`, received: 'a shorter secret' },
    ]);
  }
  return bytes;
}

/** A kid for an HMAC key that says nothing about the secret (96 bits of a domain-separated digest). */
function secretKid(secret: Buffer): string {
  return `hs-${createHash('sha256').update('caduceus-kid\0').update(secret).digest('base64url').slice(0, 16)}`;
}

/** Our own keys: the one that signs and every one that verifies, by `kid`. */
export class KeyRing {
  readonly signing: SigningKey;
  readonly #verify = new Map<string, VerificationKey>();
  readonly #publicJwks: Record<string, unknown>[] = [];

  constructor(options: Readonly<KeyOptions>, algorithm: JwtAlgorithm) {
    if (options.privateKey !== undefined) {
      this.signing = this.#asymmetric(options.privateKey, options.keyId, algorithm);
    } else {
      if (options.secret === undefined) {
        throw new ConfigError('auth: no signing key — set JWT_SECRET_KEY or JWT_PRIVATE_KEY', [
          { name: 'JWT_SECRET_KEY', expected: 'a secret or a private key', received: 'nothing' },
        ]);
      }
      if (!algorithm.startsWith('HS')) {
        throw ConfigError.option('auth', 'algorithm', 'HS256, HS384 or HS512 with a secret', algorithm);
      }
      const bytes = secretBytes(options.secret, 'JWT_SECRET_KEY');
      const kid = options.keyId ?? secretKid(bytes);
      this.signing = { kid, alg: algorithm, material: bytes };
      this.#add({ kid, alg: algorithm, material: bytes });
      for (const previous of options.previousSecrets ?? []) {
        const old = secretBytes(previous, 'JWT_SECRET_KEY_PREVIOUS');
        this.#add({ kid: secretKid(old), alg: algorithm, material: old });
      }
    }
    if (options.publicKeys !== undefined) this.#addPublic(options.publicKeys);
  }

  #asymmetric(
    input: string | Buffer | KeyObject,
    keyId: string | undefined,
    configured: JwtAlgorithm,
  ): SigningKey {
    let key: KeyObject;
    try {
      key =
        typeof input === 'object' && 'type' in input && !Buffer.isBuffer(input)
          ? input
          : createPrivateKey(input);
    } catch {
      throw ConfigError.option('auth', 'privateKey', 'a PEM private key', '[unreadable key]');
    }
    if (key.type !== 'private')
      throw ConfigError.option('auth', 'privateKey', 'a private key', `a ${key.type} key`);
    const possible = algorithmsFor(key);
    const bits = key.asymmetricKeyDetails?.modulusLength;
    if (possible.length === 0 || (bits !== undefined && bits < 2048)) {
      // RSASSA-PSS-only keys (id-RSASSA-PSS) cannot be published as JWKs: use a plain RSA key with PS256.
      throw ConfigError.option(
        'auth',
        'privateKey',
        'RSA ≥ 2048 bits (RS* or PS*), EC P-256/384/521 or Ed25519',
        `a ${key.asymmetricKeyType ?? 'different'} key`,
      );
    }
    // JWT_ALGORITHM defaults to HS256; with a private key the key's own algorithm applies.
    const alg = configured.startsWith('HS') ? (possible[0] as JwtAlgorithm) : configured;
    if (!possible.includes(alg)) {
      throw ConfigError.option('auth', 'algorithm', `one of ${possible.join(', ')} for this key`, alg);
    }
    const pub = createPublicKey(key);
    const thumbprint = jwkThumbprint(pub.export({ format: 'jwk' }));
    const kid = keyId ?? thumbprint;
    const material = pub.export({ type: 'spki', format: 'pem' });
    this.#add({ kid, alg, material });
    this.#publicJwks.push(publicJwk(pub, kid, alg));
    return { kid, alg, material: key.export({ type: 'pkcs8', format: 'pem' }) };
  }

  #addPublic(input: string | { keys: readonly unknown[] }): void {
    let doc: unknown = input;
    if (typeof input === 'string') {
      try {
        doc = JSON.parse(input);
      } catch {
        throw ConfigError.option('auth', 'publicKeys', 'a JWKS JSON document', '[unparseable JSON]');
      }
    }
    const keys = (doc as { keys?: unknown } | null)?.keys;
    if (!Array.isArray(keys))
      throw ConfigError.option('auth', 'publicKeys', 'a JWKS ({"keys": [...]})', typeof doc);
    keys.forEach((jwk: unknown, i) => {
      const key = jwkToVerificationKey(jwk);
      if (key === undefined) {
        throw ConfigError.option(
          'auth',
          `publicKeys.keys[${i}]`,
          'a public signature JWK with a kid',
          '[rejected key]',
        );
      }
      this.#add(key);
      this.#publicJwks.push(
        publicJwk(createPublicKey({ key: jwk as never, format: 'jwk' }), key.kid ?? '', key.alg),
      );
    });
  }

  #add(key: VerificationKey): void {
    const kid = key.kid ?? '';
    if (this.#verify.has(kid))
      throw ConfigError.option('auth', 'keys', 'distinct key ids', `a second "${kid}"`);
    this.#verify.set(kid, key);
  }

  /** The signing key's verifying half. */
  get current(): VerificationKey {
    return this.#verify.get(this.signing.kid) as VerificationKey;
  }

  get(kid: string): VerificationKey | undefined {
    return this.#verify.get(kid);
  }

  /** The algorithms our own keys verify. */
  algorithms(): JwtAlgorithm[] {
    return [...new Set([...this.#verify.values()].map((k) => k.alg))];
  }

  /** The public JWKS (asymmetric keys only; secrets never leave). */
  jwks(): { keys: Record<string, unknown>[] } {
    return { keys: this.#publicJwks.map((k) => ({ ...k })) };
  }
}
