import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { ConfigError, ForbiddenError } from '../errors/index.js';
import type { AuthUser } from './types.js';
import { AuthenticationFailure } from './verifier.js';

/** Roles that `requireHealthcareProvider()` accepts unless told otherwise. */
export const HEALTHCARE_PROVIDER_ROLES: readonly string[] = Object.freeze([
  'provider',
  'doctor',
  'physician',
  'nurse',
  'clinician',
  'healthcare_provider',
]);

function names(factory: string, list: readonly unknown[]): ReadonlySet<string> {
  if (list.length === 0) throw new ConfigError(`${factory}: name at least one role`);
  for (const name of list) {
    if (typeof name !== 'string' || name.trim() === '') {
      throw ConfigError.option(factory, 'role', 'a non-empty string', name);
    }
  }
  return new Set(list as string[]);
}

/** A middleware that lets through authenticated users for whom `allowed(user, req)` holds; 403 otherwise. */
function guard(
  factory: string,
  allowed: (user: AuthUser, req: Request) => boolean,
  forbidden: () => ForbiddenError = () => new ForbiddenError(),
): RequestHandler {
  const middleware = (req: Request, _res: Response, next: NextFunction): void => {
    const user = req.user;
    if (user === undefined) next(new AuthenticationFailure('missing'));
    else if (allowed(user, req)) next();
    else next(forbidden());
  };
  Object.defineProperty(middleware, 'name', { value: factory });
  return middleware;
}

/** 403 unless the user has at least one of `roles` (the seed's `require_roles`). */
export function requireRoles(...roles: string[]): RequestHandler {
  const wanted = names('requireRoles', roles);
  return guard('requireRoles', (user) => user.roles.some((r) => wanted.has(r)));
}

/** 403 unless the user has every one of `roles`. */
export function requireAllRoles(...roles: string[]): RequestHandler {
  const wanted = [...names('requireAllRoles', roles)];
  return guard('requireAllRoles', (user) => wanted.every((r) => user.roles.includes(r)));
}

/** 403 (`WWW-Authenticate: Bearer error="insufficient_scope"`) unless the token has every one of `scopes`. */
export function requireScopes(...scopes: string[]): RequestHandler {
  const wanted = [...names('requireScopes', scopes)];
  const challenge = `Bearer error="insufficient_scope", scope="${wanted.join(' ')}"`;
  return guard(
    'requireScopes',
    (user) => wanted.every((s) => user.scopes.includes(s)),
    () => new ForbiddenError('Insufficient scope', { headers: { 'WWW-Authenticate': challenge } }),
  );
}

/** 403 unless the user is an admin. Default role `admin`. */
export function requireAdmin(options: { roles?: readonly string[] } = {}): RequestHandler {
  const wanted = names('requireAdmin', options.roles ?? ['admin']);
  return guard('requireAdmin', (user) => user.roles.some((r) => wanted.has(r)));
}

/** 403 unless the user has a healthcare-provider role. Default roles: `HEALTHCARE_PROVIDER_ROLES`. */
export function requireHealthcareProvider(options: { roles?: readonly string[] } = {}): RequestHandler {
  const wanted = names('requireHealthcareProvider', options.roles ?? HEALTHCARE_PROVIDER_ROLES);
  return guard('requireHealthcareProvider', (user) => user.roles.some((r) => wanted.has(r)));
}

/** Which route parameter names the user's own resource, and how to read "own" from the user. */
export interface SelfOptions {
  /** The route parameter, e.g. `id` in `/patients/:id`. */
  param: string;
  /** The user's own value to compare with. Default: `user.id`. E.g. `(u) => u.claims.patient_id`. */
  self?: (user: AuthUser) => unknown;
}

/**
 * 403 unless `req.params[param]` is the user's own id (or what `self(user)` returns) or the user has
 * one of `roles` — so a patient reaches only their own records:
 * `router.get('/patients/:id', requireSelfOrRoles('id', 'provider'))`, or when the patient id is a
 * claim: `requireSelfOrRoles({ param: 'id', self: (u) => u.claims.patient_id }, 'provider')`.
 */
export function requireSelfOrRoles(param: string | SelfOptions, ...roles: string[]): RequestHandler {
  const options: SelfOptions = typeof param === 'string' ? { param } : param;
  if (typeof options !== 'object' || typeof options.param !== 'string' || options.param === '') {
    throw ConfigError.option('requireSelfOrRoles', 'param', 'a route parameter name', param);
  }
  if (options.self !== undefined && typeof options.self !== 'function') {
    throw ConfigError.option('requireSelfOrRoles', 'self', 'a function of the user', options.self);
  }
  const name = options.param;
  const self = options.self ?? ((user: AuthUser) => user.id);
  const wanted = roles.length === 0 ? new Set<string>() : names('requireSelfOrRoles', roles);
  return guard('requireSelfOrRoles', (user, req) => {
    const own = self(user);
    const value = req.params[name];
    // A missing parameter or own value never matches (undefined === undefined would let anyone in).
    const isSelf =
      value !== undefined && (typeof own === 'string' || typeof own === 'number') && value === String(own);
    return isSelf || user.roles.some((r) => wanted.has(r));
  });
}
