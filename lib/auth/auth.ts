import type { IncomingMessage } from 'node:http';
import type { RequestHandler } from 'express';
import type { Redis } from 'ioredis';
import { type JwtAlgorithm, loadSettings, type Settings } from '../config/index.js';
import { ConfigError, readOptions } from '../errors/index.js';
import { createLogger, type Logger } from '../logging/index.js';
import type { Metrics } from '../metrics/index.js';
import { metricsFor } from '../metrics/index.js';
import { connectRedis } from '../redis/index.js';
import { KeyRing, type KeyOptions } from './keys.js';
import { AuthMonitor, reportAuth, type AuthCounters } from './monitor.js';
import { RemoteJwks, type RemoteJwksOptions } from './remote-jwks.js';
import { memoryRevocationStore, redisRevocationStore, type RevocationStore } from './revocation.js';
import { CaduceusStrategy } from './strategy.js';
import { type RefreshOptions, type RevokeOptions, TokenLifecycle } from './lifecycle.js';
import { type IssueOptions, type TokenClaims, TokenIssuer, type TokenPair } from './tokens.js';

export type { RefreshOptions, RevokeOptions } from './lifecycle.js';
import type { AuthEvent, AuthUser } from './types.js';
import { TokenVerifier } from './verifier.js';

/** Everything `createAuth()` accepts; each default comes from settings (environment variables). */
export interface AuthOptions extends KeyOptions {
  /** Settings to read defaults from. Default: `loadSettings(process.env)`. */
  settings?: Settings;
  /**
   * Where `auth_success_total`, `auth_failures_total{reason}` and `auth_tokens_total{event}` are
   * reported (read from the counters at scrape time); `false`: nowhere. Default: `getMetrics()`.
   */
  metrics?: Metrics | false;
  /** Algorithm of the signing key. Default: `JWT_ALGORITHM` (HS256), or the private key's own. */
  algorithm?: JwtAlgorithm;
  /** Algorithms accepted when verifying. Default: those of our keys plus `JWT_ALGORITHM`. `none` is never accepted. */
  algorithms?: readonly JwtAlgorithm[];
  /** Accepted `iss`; the first one is written into our tokens. Default: `JWT_ISSUER` (the app name). */
  issuer?: string | readonly string[];
  /** Accepted `aud`; written into our tokens. Default: `JWT_AUDIENCE` (the app name). */
  audience?: string | readonly string[];
  /** Clock skew tolerated on `exp`, `nbf`, `iat`. Default: `JWT_CLOCK_TOLERANCE_SECONDS` (30). */
  clockToleranceSeconds?: number;
  /** Longest token accepted, in bytes. Default 8192. */
  maxTokenBytes?: number;
  /** Claims every access token must carry besides `exp` and `sub`. Default none. */
  requiredClaims?: readonly string[];
  /** Access-token lifetime. Default: `JWT_ACCESS_TOKEN_EXPIRE_MINUTES` × 60. */
  accessTokenTtlSeconds?: number;
  /** Refresh-token lifetime. Default: `JWT_REFRESH_TOKEN_EXPIRE_DAYS` × 86400. */
  refreshTokenTtlSeconds?: number;
  /** An identity provider's JWKS URL (its access tokens are accepted). Default: `JWT_JWKS_URL`; `false` for none. */
  jwksUrl?: string | false;
  /** Cache and cooldown of the remote JWKS. */
  jwks?: Omit<RemoteJwksOptions, 'url' | 'logger'>;
  /** Redis for the shared denylist: URL or ioredis client. Default: `REDIS_URL`; `false` keeps it in memory. */
  redis?: string | Redis | false;
  /** Prefix of our Redis keys and channel. Default `caduceus:auth:`. */
  keyPrefix?: string;
  /** A denylist of your own (overrides `redis`). */
  revocation?: RevocationStore;
  /** Dotted path of the roles claim in tokens (`realm_access.roles` for Keycloak). Default `roles`. */
  rolesClaim?: string;
  /** Verified access tokens remembered by their text (repeat requests skip signature work; expiry and revocation are still checked). Default 1000; 0 turns it off. */
  cacheSize?: number;
  /**
   * Called on refresh with the refresh token's claims; return fresh claims for the new pair (roles
   * may have changed), or `null` when the user may no longer have tokens. Default: keep the claims.
   */
  loadUser?: (claims: TokenClaims) => TokenClaims | null | Promise<TokenClaims | null>;
  /** Where authentication events are logged. Default `createLogger('auth')`. */
  logger?: Logger;
  /** Called for every authentication event (metrics). */
  onEvent?: (event: AuthEvent) => void;
}

/** Options of one `authenticate()` middleware. */
export interface AuthenticateOptions {
  /** Let requests without a token through (`req.user` stays undefined); a bad token is still a 401. Default false. */
  optional?: boolean;
  /** Accept `?access_token=` when there is no Authorization header (URLs end up in logs and histories). Default false. */
  allowQueryToken?: boolean;
}

/**
 * A passport strategy, as `passport.use()` takes it (a passport-jwt `Strategy` underneath; typed
 * structurally so applications need no passport types to use caduceus).
 */
export interface PassportStrategy {
  readonly name?: string | undefined;
  authenticate(req: IncomingMessage, options?: object): void;
}

/** Tokens, verification and revocation with one set of keys and one denylist. */
export interface Auth {
  /** Sign a new access + refresh pair (a new refresh family). */
  createTokens(claims: TokenClaims, options?: IssueOptions): TokenPair;
  /** Rotate a pair. A refresh token used twice revokes its whole family (401 TOKEN_REVOKED). */
  refreshTokens(refreshToken: string, options?: RefreshOptions): Promise<TokenPair>;
  /**
   * Deny a token (by the token, its `jti`, or the `req.user` it produced) until it expires.
   * Resolves false when there is nothing to deny (a certificate identity, a token without `jti`).
   */
  revokeToken(token: string | AuthUser, options?: RevokeOptions): Promise<boolean>;
  /**
   * Verify an access token outside a request (WebSocket upgrades, queue consumers). Rejects with a
   * 401 `AppError`; a certificate-bound token needs the thumbprint of the caller's certificate.
   */
  verifyToken(token: string, options?: { certificateThumbprint?: string | undefined }): Promise<AuthUser>;
  /** Middleware: verify the bearer token, set `req.user` and the user in the request context. */
  authenticate(options?: AuthenticateOptions): RequestHandler;
  /** The passport strategy (name `caduceus-jwt`) for an application's own passport chains. */
  strategy(): PassportStrategy;
  /** A handler serving our public keys as a JWKS (asymmetric keys only). */
  jwks(): RequestHandler;
  counters(): AuthCounters;
  /**
   * Count a failed password login (wrong password, unknown account) under
   * `auth_failures_total{reason="invalid_credentials"}` and `onEvent`, beside the token failures
   * `authenticate()` counts. Your login route logs the details; this writes no log line.
   */
  recordLoginFailure(): void;
  /**
   * Be told of every authentication event (as `onEvent` is), e.g. by `core.audit({ auth })`.
   * Returns the function that stops it. A listener that throws is logged, never the caller's problem.
   */
  subscribe(listener: (event: AuthEvent) => void): () => void;
  readonly revocation: RevocationStore;
  close(): Promise<void>;
}

const KNOWN = [
  'settings',
  'secret',
  'previousSecrets',
  'privateKey',
  'keyId',
  'publicKeys',
  'algorithm',
  'algorithms',
  'issuer',
  'audience',
  'clockToleranceSeconds',
  'maxTokenBytes',
  'requiredClaims',
  'accessTokenTtlSeconds',
  'refreshTokenTtlSeconds',
  'jwksUrl',
  'jwks',
  'redis',
  'keyPrefix',
  'revocation',
  'rolesClaim',
  'cacheSize',
  'loadUser',
  'logger',
  'onEvent',
  'metrics',
] as const;

const AUTHENTICATE_KNOWN = ['optional', 'allowQueryToken'] as const;

function positiveInt(name: string, value: number | undefined, fallback: number, min = 1): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < min)
    throw ConfigError.option('createAuth', name, `an integer ≥ ${min}`, value);
  return value;
}

function nonEmptyList(name: string, value: string | readonly string[]): readonly string[] {
  const list: readonly unknown[] = typeof value === 'string' ? [value] : Array.isArray(value) ? value : [];
  if (list.length === 0 || !list.every((v) => typeof v === 'string' && v !== '')) {
    throw ConfigError.option('createAuth', name, 'a non-empty string or list of them', value);
  }
  return list as readonly string[];
}

/**
 * Build the authentication core: keys, token issuance and rotation, the denylist, the passport
 * strategy and its middleware.
 *
 * @example
 * const auth = core.createAuth();                       // keys and lifetimes from the environment
 * app.use('/api', auth.authenticate(), routes);
 * app.post('/login', async (req, res) => res.json(auth.createTokens({ userId, email, roles })));
 */
export function createAuth(input: Readonly<AuthOptions> = {}): Auth {
  const options = readOptions<AuthOptions>('createAuth', input, KNOWN);
  const settings = options.settings ?? loadSettings(process.env);
  const s = settings.auth;
  const logger = options.logger ?? createLogger('auth', { settings });
  const ring = new KeyRing(
    {
      secret: options.secret ?? s.secretKey,
      previousSecrets:
        options.previousSecrets ?? (s.previousSecretKey === undefined ? [] : [s.previousSecretKey]),
      privateKey: options.privateKey ?? s.privateKey,
      keyId: options.keyId ?? s.keyId,
      publicKeys: options.publicKeys ?? s.publicKeys,
    },
    options.algorithm ?? s.algorithm,
  );
  const algorithms = options.algorithms ?? [...new Set([...ring.algorithms(), s.algorithm])];
  if (
    !Array.isArray(algorithms) ||
    algorithms.length === 0 ||
    algorithms.some((a) => !String(a).match(/^(HS|RS|PS|ES)(256|384|512)$|^EdDSA$/))
  ) {
    throw ConfigError.option(
      'createAuth',
      'algorithms',
      'a non-empty list of HS*/RS*/PS*/ES*/EdDSA (never none)',
      algorithms,
    );
  }
  const issuers = nonEmptyList('issuer', options.issuer ?? s.issuer);
  const audience = nonEmptyList('audience', options.audience ?? s.audience);
  const toleranceSeconds = positiveInt(
    'clockToleranceSeconds',
    options.clockToleranceSeconds,
    s.clockToleranceSeconds,
    0,
  );
  const jwksUrl = options.jwksUrl === false ? undefined : (options.jwksUrl ?? s.jwksUrl);
  const remote =
    jwksUrl === undefined ? undefined : new RemoteJwks({ ...options.jwks, url: jwksUrl, logger });
  const verifier = new TokenVerifier(ring, remote, {
    algorithms: new Set(algorithms),
    issuer: issuers,
    audience,
    clockToleranceMs: toleranceSeconds * 1000,
    maxTokenBytes: positiveInt('maxTokenBytes', options.maxTokenBytes, 8192, 256),
    requiredClaims: options.requiredClaims ?? [],
    cacheSize: positiveInt('cacheSize', options.cacheSize, 1000, 0),
  });
  const accessTtl = positiveInt(
    'accessTokenTtlSeconds',
    options.accessTokenTtlSeconds,
    s.accessTokenExpireMinutes * 60,
  );
  const refreshTtl = positiveInt(
    'refreshTokenTtlSeconds',
    options.refreshTokenTtlSeconds,
    s.refreshTokenExpireDays * 86_400,
  );
  const issuer = new TokenIssuer(ring.signing, {
    issuer: issuers[0] as string,
    audience: audience.length === 1 ? (audience[0] as string) : audience,
    accessTtlSeconds: accessTtl,
    refreshTtlSeconds: refreshTtl,
  });
  const redis = options.redis === false ? undefined : (options.redis ?? settings.externalServices.redisUrl);
  const store =
    options.revocation ??
    (redis === undefined
      ? memoryRevocationStore()
      : redisRevocationStore(
          connectRedis(redis, 'auth', logger),
          options.keyPrefix ?? 'caduceus:auth:',
          logger,
        ));
  if (store.kind === 'memory' && options.revocation === undefined) {
    logger.info('token revocation list kept in memory (set REDIS_URL to share it between instances)');
  }
  const monitor = new AuthMonitor(logger, options.onEvent);
  const unreport = reportAuth(metricsFor('createAuth', options.metrics, settings), monitor);
  const rolesClaim = (options.rolesClaim ?? 'roles').split('.');
  const strategy = new CaduceusStrategy(verifier, store, monitor, { rolesClaim }, 'error');
  const lifecycle = new TokenLifecycle(verifier, issuer, store, monitor, {
    accessTtlMs: accessTtl * 1000,
    refreshTtlMs: refreshTtl * 1000,
    graceMs: toleranceSeconds * 1000,
    loadUser: options.loadUser,
  });

  return {
    createTokens(claims, issueOptions) {
      const issued = issuer.issue(claims, issueOptions);
      monitor.issued(String(claims.userId));
      return issued.pair;
    },
    refreshTokens: (token, refreshOptions) => lifecycle.refresh(token, refreshOptions),
    revokeToken: (target, revokeOptions) => lifecycle.revoke(target, revokeOptions),
    verifyToken: (token, verifyOptions) => strategy.verify(token, verifyOptions?.certificateThumbprint),
    authenticate(authOptions = {}) {
      const o = readOptions<AuthenticateOptions>('authenticate', authOptions, AUTHENTICATE_KNOWN);
      const optional = o.optional === true;
      const allowQuery = o.allowQueryToken === true;
      // The strategy's decision without passport's per-request dispatcher (Object.create of the
      // strategy, ~8 closures, 7 properties on req: a third of the cost of authenticating).
      return function authenticate(req, _res, next) {
        let user: AuthUser | undefined | Promise<AuthUser | undefined>;
        try {
          user = strategy.check(req, optional, allowQuery);
        } catch (err) {
          next(err);
          return;
        }
        if (user instanceof Promise) {
          user.then((u) => {
            if (u !== undefined) req.user = u;
            next();
          }, next);
          return;
        }
        if (user !== undefined) req.user = user;
        next();
      };
    },
    strategy: () => new CaduceusStrategy(verifier, store, monitor, { rolesClaim }, 'fail'),
    jwks() {
      const set = ring.jwks();
      if (set.keys.length === 0) {
        throw new ConfigError('jwks: there are no public keys to serve — HMAC secrets are never published');
      }
      const body = JSON.stringify(set);
      return function jwks(_req, res) {
        res.set('Cache-Control', 'public, max-age=300');
        res.type('application/json').send(body);
      };
    },
    counters: () => monitor.counters(),
    recordLoginFailure: () => {
      monitor.loginFailure();
    },
    subscribe: (listener) => monitor.subscribe(listener),
    revocation: store,
    async close() {
      unreport();
      remote?.close();
      await store.close();
    },
  };
}
