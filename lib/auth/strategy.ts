import type { IncomingMessage } from 'node:http';
import { Strategy as PassportJwtStrategy } from 'passport-jwt';
import { setUser } from '../context/index.js';
import { clientCertificateThumbprint } from './mtls/index.js';
import type { AuthMonitor } from './monitor.js';
import type { RevocationStore } from './revocation.js';
import type { AuthUser } from './types.js';
import { AuthenticationFailure, type Claims, type TokenVerifier } from './verifier.js';

/** How the strategy reads and accepts tokens; fixed per `createAuth()`. */
export interface StrategyPolicy {
  /** Dotted path of the roles claim (`roles`, `realm_access.roles`, …). */
  readonly rolesClaim: readonly string[];
}

/** Options `authenticate()` passes through passport to the strategy for one route. */
export interface StrategyCallOptions {
  readonly optional?: boolean;
  readonly allowQueryToken?: boolean;
}

const EMPTY: readonly string[] = Object.freeze([]);
const QUERY_TOKEN = 'access_token=';

/**
 * Our passport strategy: a passport-jwt `Strategy` (so `instanceof`, `name` and passport's
 * chaining work as usual) whose verification is caduceus' own `TokenVerifier` — passport-jwt's
 * jsonwebtoken path has no EdDSA, takes no `kid` ring, and its verifier hook is process-global.
 *
 * In `'error'` mode (what `authenticate()` uses) a rejected token ends the chain with our 401
 * error so `errors()` renders it; in `'fail'` mode (for applications' own passport chains)
 * it calls `fail(error, 401)` so passport can try the next strategy.
 */
export class CaduceusStrategy extends PassportJwtStrategy {
  // Plain (not #private) members: passport calls authenticate() on Object.create(strategy) per
  // request, and #private fields are not reachable through a prototype.
  private readonly verifier: TokenVerifier;
  private readonly store: RevocationStore;
  private readonly monitor: AuthMonitor;
  private readonly policy: StrategyPolicy;
  private readonly mode: 'error' | 'fail';
  private readonly users = new WeakMap<Claims, Pick<AuthUser, 'roles' | 'scopes' | 'email'>>();

  constructor(
    verifier: TokenVerifier,
    store: RevocationStore,
    monitor: AuthMonitor,
    policy: StrategyPolicy,
    mode: 'error' | 'fail',
  ) {
    super(
      {
        jwtFromRequest: () => null,
        secretOrKeyProvider: (_req, _token, done) => {
          done(new Error('caduceus verifies tokens itself'));
        },
      },
      (_payload: unknown, done: (err: unknown, user?: unknown) => void) => {
        done(null, false);
      },
    );
    this.name = 'caduceus-jwt';
    this.verifier = verifier;
    this.store = store;
    this.monitor = monitor;
    this.policy = policy;
    this.mode = mode;
  }

  /** passport's entry point: `check()` with its outcome reported through success/pass/fail/error. */
  override authenticate(req: IncomingMessage & { query?: unknown }, options?: StrategyCallOptions): void {
    let outcome: AuthUser | undefined | Promise<AuthUser | undefined>;
    try {
      outcome = this.check(req, options?.optional === true, options?.allowQueryToken === true);
    } catch (err) {
      this.report(err);
      return;
    }
    if (outcome instanceof Promise) {
      outcome.then(
        (user) => {
          this.done(user);
        },
        (err: unknown) => {
          this.report(err);
        },
      );
    } else {
      this.done(outcome);
    }
  }

  /**
   * The whole decision for one request: the user, `undefined` (optional and anonymous), or a
   * promise of either when a key must be fetched or the denylist asked; throws/rejects our 401 (or
   * a 503 when the denylist cannot answer). Counts and logs failures; on success records the user
   * in the request context. Synchronous in the common case, so `authenticate()` allocates nothing
   * per request beyond `req.user`.
   */
  check(
    req: IncomingMessage & { query?: unknown },
    optional: boolean,
    allowQuery: boolean,
  ): AuthUser | undefined | Promise<AuthUser | undefined> {
    try {
      const token = extract(req, allowQuery);
      if (token === undefined) {
        if (optional) return undefined;
        throw new AuthenticationFailure('missing');
      }
      const claims = this.verifier.verify(token, 'access');
      const user =
        claims instanceof Promise
          ? claims.then((c) => this.admit(req, c, undefined))
          : this.admit(req, claims, undefined);
      // Every refusal is counted and logged, whether it came synchronously or not.
      return user instanceof Promise ? user.catch((err: unknown) => this.failed(err)) : user;
    } catch (err) {
      return this.failed(err);
    }
  }

  /** Verify a token outside a request (WebSocket upgrades, queue consumers). */
  async verify(token: string, certificateThumbprint?: string): Promise<AuthUser> {
    try {
      return await this.admit(undefined, await this.verifier.verify(token, 'access'), certificateThumbprint);
    } catch (err) {
      return this.failed(err);
    }
  }

  private admit(
    req: IncomingMessage | undefined,
    claims: Claims,
    thumbprint: string | undefined,
  ): AuthUser | Promise<AuthUser> {
    const revoked = this.revoked(claims);
    if (revoked instanceof Promise) return revoked.then((r) => this.finish(req, claims, r, thumbprint));
    return this.finish(req, claims, revoked, thumbprint);
  }

  private finish(
    req: IncomingMessage | undefined,
    claims: Claims,
    revoked: boolean,
    thumbprint: string | undefined,
  ): AuthUser {
    if (revoked) throw new AuthenticationFailure('revoked');
    const bound = (claims.cnf as { 'x5t#S256'?: unknown } | undefined)?.['x5t#S256'];
    // Only a bound token needs the certificate: the thumbprint is looked up for it alone.
    if (bound !== undefined) {
      const presented = req === undefined ? thumbprint : clientCertificateThumbprint(req);
      if (bound !== presented) throw new AuthenticationFailure('certificate_mismatch');
    }
    const user = this.user(claims);
    if (req !== undefined) setUser(user.id, user.roles, req);
    this.monitor.success(user.id);
    return user;
  }

  /** Count and log an authentication failure, then rethrow it (anything else passes through). */
  private failed(err: unknown): never {
    if (err instanceof AuthenticationFailure) this.monitor.failure(err.reason);
    throw err;
  }

  private revoked(claims: Claims): boolean | Promise<boolean> {
    const { jti, fam } = claims;
    const byJti = typeof jti === 'string' ? this.store.isRevoked(jti) : false;
    if (byJti === true || typeof fam !== 'string') return byJti;
    const byFamily = this.store.isRevoked(`fam:${fam}`);
    if (byJti === false) return byFamily;
    return Promise.all([byJti, byFamily]).then(([a, b]) => a || b);
  }

  private user(claims: Claims): AuthUser {
    let derived = this.users.get(claims);
    if (derived === undefined) {
      derived = {
        roles: Object.freeze(stringList(pick(claims, this.policy.rolesClaim))),
        scopes: Object.freeze(scopesOf(claims)),
        email: typeof claims.email === 'string' ? claims.email : undefined,
      };
      Object.freeze(claims);
      this.users.set(claims, derived);
    }
    return {
      id: claims.sub as string,
      email: derived.email,
      roles: derived.roles,
      scopes: derived.scopes,
      claims,
      via: 'token',
    };
  }

  private done(user: AuthUser | undefined): void {
    if (user === undefined) this.pass();
    else this.success(user);
  }

  /** Already counted by check(): a 401 fails (passport tries the next strategy) or errors, by mode. */
  private report(err: unknown): void {
    if (err instanceof AuthenticationFailure && this.mode === 'fail') this.fail(err, 401);
    else this.error(err instanceof Error ? err : new Error(String(err)));
  }
}

/** The bearer token of a request: the Authorization header, or `?access_token=` when allowed. */
function extract(req: IncomingMessage & { query?: unknown }, allowQuery: boolean): string | undefined {
  const header = req.headers.authorization;
  if (header !== undefined) {
    // The scheme is case-insensitive (RFC 9110 §11.1); another scheme is not ours to judge.
    if (!header.startsWith('Bearer ') && !/^bearer(?: |$)/i.test(header)) return undefined;
    const token = header.slice(7).trim();
    if (token.length === 0) throw new AuthenticationFailure('malformed');
    return token;
  }
  const url = req.url;
  if (url === undefined || !url.includes(QUERY_TOKEN)) return undefined;
  const query = url.indexOf('?');
  if (query < 0) return undefined; // `access_token=` in the path is not a query parameter
  const value = new URLSearchParams(url.slice(query + 1)).getAll('access_token');
  if (value.length === 0) return undefined;
  if (!allowQuery) throw new AuthenticationFailure('query_token');
  if (value.length > 1 || value[0] === '') throw new AuthenticationFailure('malformed');
  return value[0];
}

function pick(claims: Claims, path: readonly string[]): unknown {
  let node: unknown = claims;
  for (const part of path) {
    if (typeof node !== 'object' || node === null) return undefined;
    node = (node as Record<string, unknown>)[part];
  }
  return node;
}

function stringList(value: unknown): readonly string[] {
  if (typeof value === 'string') return value === '' ? EMPTY : [value];
  if (!Array.isArray(value)) return EMPTY;
  return value.filter((v): v is string => typeof v === 'string' && v !== '');
}

function scopesOf(claims: Claims): readonly string[] {
  if (typeof claims.scope === 'string') return claims.scope.split(' ').filter((s) => s !== '');
  return stringList(claims.scp);
}
