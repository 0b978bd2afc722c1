import { randomBytes } from 'node:crypto';
import type { Request, Response, Router } from 'express';
import type {
  Auth,
  AuthOptions,
  Database,
  Logger,
  PasswordHashOptions,
  Settings,
  TokenPair,
} from '../../lib/index';
import {
  asyncHandler,
  createAuth,
  hashPassword,
  logSecurityEvent,
  requireAdmin,
  requireSelfOrRoles,
  UnauthorizedError,
  verifyPassword,
} from '../../lib/index';
import { ADMIN, userOf } from './access';
import { claimsOf, loginSchema, refreshSchema, UserRepository } from './users';
import { parseBody } from './validation';

export interface ServiceAuthOptions extends Omit<AuthOptions, 'settings' | 'loadUser'> {
  db: Database;
  settings: Settings;
}

/**
 * The service's `core.Auth`: keys and lifetimes from `settings` (JWT_*), the denylist in Redis when
 * `REDIS_URL` is set and in memory otherwise, and a refresh that re-reads the user — a changed role
 * is in the next pair, a deleted login gets no new pair (its token family is revoked). Other
 * `createAuth()` options pass through. The caller closes it (`auth.close()`).
 */
export function serviceAuth(options: Readonly<ServiceAuthOptions>): Auth {
  const { db, settings, ...rest } = options;
  const users = new UserRepository(db);
  return createAuth({
    settings,
    redis: settings.externalServices.redisUrl ?? false,
    async loadUser(claims) {
      const user = await users.findById(String(claims.userId));
      return user === undefined ? null : claimsOf(user);
    },
    ...rest,
  });
}

export interface AuthRoutesOptions {
  router: Router;
  auth: Auth;
  users: UserRepository;
  /** Security events (failed logins) go here; token events go to the Auth's own logger. */
  logger: Logger;
  /** scrypt cost of the passwords this service hashes. Default: `core.hashPassword()`'s. */
  passwordHash?: Readonly<PasswordHashOptions> | undefined;
}

/** A token pair in the envelope; never cached (RFC 6749 §5.1). */
function sendTokens(res: Response, pair: TokenPair): void {
  res.set('Cache-Control', 'no-store').json({ success: true, data: pair });
}

/**
 * `POST /auth/login`, `POST /auth/refresh`, `POST /auth/logout`, `GET /auth/me`. Login and refresh
 * are public; logout and me authenticate themselves (the rest of the API is behind one
 * `authenticate()` mounted after this router).
 */
export function authRoutes(options: AuthRoutesOptions): Router {
  const { router, auth, users, logger } = options;
  // An unknown email is checked against this hash, so it costs the same scrypt work as a wrong
  // password: the response time does not tell which accounts exist. Computed once, up front.
  const dummyHash = hashPassword(randomBytes(32).toString('base64url'), options.passwordHash);
  dummyHash.catch(() => undefined); // a failure surfaces at the first login that awaits it

  router.post(
    '/auth/login',
    asyncHandler(async (req: Request, res: Response) => {
      const { email, password } = parseBody(loginSchema, req.body, 'Invalid login request');
      const found = await users.credentials(email);
      const valid = await verifyPassword(password, found?.passwordHash ?? (await dummyHash));
      if (found === undefined || !valid) {
        // The same 401 for both; the log (never the email or the password) says which.
        logSecurityEvent(logger, 'login_failed', {
          reason: found === undefined ? 'unknown_email' : 'wrong_password',
          user_id: found?.user.id,
        });
        auth.recordLoginFailure(); // auth_failures_total{reason="invalid_credentials"}
        throw new UnauthorizedError('Invalid email or password', { code: 'INVALID_CREDENTIALS' });
      }
      sendTokens(res, auth.createTokens(claimsOf(found.user)));
    }),
  );

  // Rotation: the old refresh token is spent; presenting it again revokes its whole family (401 TOKEN_REVOKED).
  router.post(
    '/auth/refresh',
    asyncHandler(async (req: Request, res: Response) => {
      const { refresh_token } = parseBody(refreshSchema, req.body, 'Invalid refresh request');
      sendTokens(res, await auth.refreshTokens(refresh_token));
    }),
  );

  // Revokes this access token and its family: the refresh token of the same login is dead too.
  router.post(
    '/auth/logout',
    auth.authenticate(),
    asyncHandler(async (req: Request, res: Response) => {
      await auth.revokeToken(userOf(req), { family: true });
      res.status(204).end();
    }),
  );

  router.get(
    '/auth/me',
    auth.authenticate(),
    asyncHandler(async (req: Request, res: Response) => {
      res.json({ success: true, data: await users.getById(userOf(req).id) });
    }),
  );

  return router;
}

export interface UserRoutesOptions {
  router: Router;
  users: UserRepository;
  /** Where the router is mounted, for `Location` headers. */
  basePath: string;
  passwordHash?: Readonly<PasswordHashOptions> | undefined;
}

/**
 * `POST /users` (administrators) and `GET /users/:id` (the user themselves, or an administrator).
 * `requireSelfOrRoles('id', …)` fits here because `:id` is a user id; patient routes use scoped
 * queries instead (a patient's user id is not their patient id).
 */
export function userRoutes(options: UserRoutesOptions): Router {
  const { router, users, basePath } = options;

  router.post(
    '/users',
    requireAdmin(),
    asyncHandler(async (req: Request, res: Response) => {
      const user = await users.register(req.body, options.passwordHash);
      res
        .status(201)
        .location(`${basePath}/users/${encodeURIComponent(user.id)}`)
        .json({ success: true, data: user });
    }),
  );

  router.get(
    '/users/:id',
    requireSelfOrRoles('id', ADMIN),
    asyncHandler(async (req: Request, res: Response) => {
      res.json({ success: true, data: await users.getById(String(req.params.id)) });
    }),
  );

  return router;
}
