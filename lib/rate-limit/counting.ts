import type { NextFunction, Request, Response } from 'express';
import type { IncrementResponse, Store } from 'express-rate-limit';
import { createHash } from 'node:crypto';

/**
 * The per-request step of `rateLimit()`: key, count in the store, headers, refuse. The counting
 * is express-rate-limit's (its `Store` contract: `MemoryStore`, rate-limit-redis); this step
 * replaces its request handler, which on every request evaluated `req.ip` (through proxy-addr)
 * for a disabled debug line, hashed the key with SHA-256 for the draft-8 partition key, awaited
 * five times and allocated about 4 kB — about a fifth of the whole pipeline's cost (see
 * docs/performance.md). Here a request costs one store call and, when the store answers with a
 * promise (every `Store` does), one `then`.
 */

/** What a counted request carries as `req.rateLimit` (express-rate-limit's shape). */
export interface RateLimitInfo {
  readonly limit: number;
  readonly used: number;
  readonly remaining: number;
  readonly resetTime: Date | undefined;
  readonly key: string;
}

export type HeaderDraft = 'draft-6' | 'draft-7' | 'draft-8' | false;

export interface CountingPlan {
  readonly name: string;
  readonly windowMs: number;
  readonly store: Store;
  readonly limit: number | ((req: Request) => number | Promise<number>);
  readonly headers: HeaderDraft;
  readonly key: (req: Request) => string;
  readonly skip: ((req: Request, res: Response) => boolean | Promise<boolean>) | undefined;
  readonly skipSuccessfulRequests: boolean;
  readonly skipFailedRequests: boolean;
  /** Over the limit: answer (the caller passes a 429 to `next`). */
  readonly refuse: (req: Request, info: RateLimitInfo, next: NextFunction) => void;
}

/** Partition keys (`pk` of draft-8) by client key: hashed once per client, not per request. */
const PK_CACHE_SIZE = 10_000;

export function countingMiddleware(plan: CountingPlan) {
  const { store, windowMs, name, headers, skip, refuse } = plan;
  const windowSeconds = Math.ceil(windowMs / 1000);
  const fixedLimit = typeof plan.limit === 'number' ? plan.limit : undefined;
  const limitOf = typeof plan.limit === 'function' ? plan.limit : undefined;
  const decrementLater = plan.skipSuccessfulRequests || plan.skipFailedRequests;
  const nameJson = `"${name}"`;
  const partitionKeys = new Map<string, string>();

  const partitionKey = (key: string): string => {
    let pk = partitionKeys.get(key);
    if (pk === undefined) {
      // express-rate-limit's derivation (12 hex digits of SHA-256, base64), so the value is the same.
      pk = Buffer.from(createHash('sha256').update(key).digest('hex').slice(0, 12)).toString('base64');
      if (partitionKeys.size >= PK_CACHE_SIZE) partitionKeys.clear();
      partitionKeys.set(key, pk);
    }
    return pk;
  };

  const secondsToReset = (info: RateLimitInfo): number =>
    info.resetTime === undefined
      ? windowSeconds
      : Math.max(0, Math.ceil((info.resetTime.getTime() - Date.now()) / 1000));

  const setHeaders = (res: Response, info: RateLimitInfo): void => {
    const reset = secondsToReset(info);
    switch (headers) {
      case 'draft-8':
        appendHeader(res, 'RateLimit', `${nameJson}; r=${info.remaining}; t=${reset}`);
        appendHeader(
          res,
          'RateLimit-Policy',
          `${nameJson}; q=${info.limit}; w=${windowSeconds}; pk=:${partitionKey(info.key)}:`,
        );
        break;
      case 'draft-7':
        res.setHeader('RateLimit-Policy', `${info.limit};w=${windowSeconds}`);
        res.setHeader('RateLimit', `limit=${info.limit}, remaining=${info.remaining}, reset=${reset}`);
        break;
      case 'draft-6':
        res.setHeader('RateLimit-Policy', `${info.limit};w=${windowSeconds}`);
        res.setHeader('RateLimit-Limit', String(info.limit));
        res.setHeader('RateLimit-Remaining', String(info.remaining));
        res.setHeader('RateLimit-Reset', String(reset));
        break;
      default:
        break;
    }
  };

  /** With skipSuccessfulRequests / skipFailedRequests: give the unit back once the outcome is known. */
  const arrangeDecrement = (res: Response, key: string, resetTime: Date | undefined): void => {
    let done = false;
    const giveBack = (): void => {
      if (done) return;
      done = true;
      if (resetTime !== undefined && Date.now() >= resetTime.getTime()) return; // a new window already
      void Promise.resolve()
        .then(() => store.decrement(key))
        .catch(() => undefined);
    };
    res.once('finish', () => {
      const success = res.statusCode < 400;
      if (success ? plan.skipSuccessfulRequests : plan.skipFailedRequests) giveBack();
    });
    if (plan.skipFailedRequests) {
      res.once('close', () => {
        if (!res.writableEnded) giveBack();
      });
      res.once('error', giveBack);
    }
  };

  const decide = (
    req: Request,
    res: Response,
    next: NextFunction,
    key: string,
    counted: IncrementResponse,
    limit: number,
  ): void => {
    if (typeof limit !== 'number' || !(limit >= 0)) {
      next(new TypeError(`rate limiter ${name}: limit() returned ${String(limit)}, not a number ≥ 0`));
      return;
    }
    const used = counted.totalHits;
    const info: RateLimitInfo = {
      limit,
      used,
      remaining: used >= limit ? 0 : limit - used,
      resetTime: counted.resetTime,
      key,
    };
    (req as Request & { rateLimit?: RateLimitInfo }).rateLimit = info;
    if (headers !== false && !res.headersSent) setHeaders(res, info);
    if (decrementLater) arrangeDecrement(res, key, counted.resetTime);
    if (used <= limit) {
      next();
      return;
    }
    // As express-rate-limit did: the wait is on the response even for an application's own
    // error handler (errors() sets the same from the RateLimitError).
    if (headers !== false && !res.headersSent) res.setHeader('Retry-After', String(secondsToReset(info)));
    refuse(req, info, next);
  };

  const afterCount = (
    req: Request,
    res: Response,
    next: NextFunction,
    key: string,
    counted: IncrementResponse,
  ): void => {
    if (fixedLimit !== undefined) {
      decide(req, res, next, key, counted, fixedLimit);
      return;
    }
    let limit: number | Promise<number>;
    try {
      limit = (limitOf as (req: Request) => number | Promise<number>)(req);
    } catch (err) {
      next(err);
      return;
    }
    if (limit instanceof Promise)
      limit.then(
        (value) => {
          decide(req, res, next, key, counted, value);
        },
        (err: unknown) => {
          next(reason(err));
        },
      );
    else decide(req, res, next, key, counted, limit);
  };

  // Only our options' and the store's own calls are guarded: `next()` is never inside a `try`, so a
  // throw further down can never make a second `next`.
  const count = (req: Request, res: Response, next: NextFunction): void => {
    let key: string;
    let pending: Promise<IncrementResponse> | IncrementResponse;
    try {
      key = plan.key(req);
      pending = store.increment(key);
    } catch (err) {
      next(err);
      return;
    }
    if (pending instanceof Promise)
      pending.then(
        (counted) => {
          afterCount(req, res, next, key, counted);
        },
        (err: unknown) => {
          next(reason(err));
        },
      );
    else afterCount(req, res, next, key, pending);
  };

  return function rateLimitMiddleware(req: Request, res: Response, next: NextFunction): void {
    if (skip === undefined) {
      count(req, res, next);
      return;
    }
    let skipped: boolean | Promise<boolean>;
    try {
      skipped = skip(req, res);
    } catch (err) {
      next(err);
      return;
    }
    if (skipped instanceof Promise)
      skipped.then(
        (yes) => {
          if (yes) next();
          else count(req, res, next);
        },
        (err: unknown) => {
          next(reason(err));
        },
      );
    else if (skipped) next();
    else count(req, res, next);
  };
}

/** A header stacked limiters each add a value to (draft-8 names its limiter in the value). */
function appendHeader(res: Response, header: string, value: string): void {
  const existing = res.getHeader(header);
  if (existing === undefined) res.setHeader(header, value);
  else res.setHeader(header, Array.isArray(existing) ? [...existing, value] : [String(existing), value]);
}

/** A rejection's reason, never a falsy one (`next(undefined)` would let the request through). */
function reason(err: unknown): unknown {
  return err ?? new Error('rate limiter: a promise was rejected without a reason');
}
