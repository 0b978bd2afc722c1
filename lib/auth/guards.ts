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

/**
 * 403 unless `req.params[paramName]` is the user's own id or the user has one of `roles` —
 * so a patient reaches only their own records: `router.get('/patients/:id', requireSelfOrRoles('id', 'provider'))`.
 */
export function requireSelfOrRoles(paramName: string, ...roles: string[]): RequestHandler {
  if (typeof paramName !== 'string' || paramName === '') {
    throw ConfigError.option('requireSelfOrRoles', 'paramName', 'a route parameter name', paramName);
  }
  const wanted = roles.length === 0 ? new Set<string>() : names('requireSelfOrRoles', roles);
  return guard(
    'requireSelfOrRoles',
    (user, req) => req.params[paramName] === user.id || user.roles.some((r) => wanted.has(r)),
  );
}
