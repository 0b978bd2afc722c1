import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { getContext } from '../context/index.js';
import type { FlagContext, FlagEvaluation } from './evaluate.js';
import type { FeatureFlags, RequestFlags } from './types.js';

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Request {
      /** Set by `flags.middleware()`: flag evaluations for this request's user. */
      flags?: import('./types.js').RequestFlags;
    }
  }
}

/**
 * Who a request is, for flags: `req.user` once `authenticate()` has run, else the request
 * context (`setUser()`), else nobody. Read at each call, so the middleware may sit before
 * `authenticate()`.
 */
export function requestUser(req: Request): FlagContext {
  const user = req.user;
  if (user !== undefined) return { userId: user.id, roles: user.roles };
  const ctx = getContext(req);
  return { userId: ctx?.userId, roles: ctx?.roles };
}

/** `req.flags`: one small object per request; the methods live on the prototype. */
class BoundFlags implements RequestFlags {
  readonly #flags: FeatureFlags;
  readonly #req: Request;

  constructor(flags: FeatureFlags, req: Request) {
    this.#flags = flags;
    this.#req = req;
  }

  isEnabled(name: string): boolean {
    return this.#flags.isEnabled(name, requestUser(this.#req));
  }

  variant(name: string): string | undefined {
    return this.#flags.variant(name, requestUser(this.#req));
  }

  evaluate(name: string): FlagEvaluation {
    return this.#flags.evaluate(name, requestUser(this.#req));
  }
}

export function flagsMiddleware(flags: FeatureFlags): RequestHandler {
  return function featureFlagsMiddleware(req: Request, _res: Response, next: NextFunction): void {
    req.flags = new BoundFlags(flags, req);
    next();
  };
}
