import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type { Options } from 'express-rate-limit';
import type { Settings } from '../config/index.js';
import { loadSettings } from '../config/index.js';
import type { Metrics } from '../metrics/index.js';
import { metricsFor } from '../metrics/index.js';
import { ConfigError, positiveInteger, RateLimitError, readOptions } from '../errors/index.js';
import type { Logger } from '../logging/index.js';
import { createLogger } from '../logging/index.js';
import { ClientKeys, readIpv6Subnet, trustProxyProblem } from '../net/ip.js';
import type { Cluster, Redis, RedisClient, RedisConnection } from '../redis/index.js';
import { connectRedis } from '../redis/index.js';
import type { RateLimitInfo } from './counting.js';
import { countingMiddleware } from './counting.js';
import type { KeyBy } from './keys.js';
import { keyFunction } from './keys.js';
import type { FailMode } from './store.js';
import { COST_SEPARATOR, LimiterStore } from './store.js';

export type { KeyBy } from './keys.js';
export type { RateLimitInfo } from './counting.js';
export type { FailMode } from './store.js';

/** Everything `rateLimit()` accepts. Each default is stated; settings come from the environment. */
export interface RateLimitOptions {
  /**
   * Names the counter: limiters with the same name share counts (across routes, and across
   * instances through Redis), so give each limiter its own. Shown in the `RateLimit` headers and
   * logs. Default `'api'` (`'login'` for `loginRateLimit()`).
   */
  name?: string;
  /**
   * Requests allowed per window, or a function of the request (sync or async). Default
   * `RATE_LIMIT_REQUESTS` (100).
   */
  limit?: number | ((req: Request) => number | Promise<number>);
  /** Window length in milliseconds (fixed window). Default `RATE_LIMIT_WINDOW` seconds × 1000 (60 000). */
  windowMs?: number;
  /** Whom to count: see {@link KeyBy}. Default `'auto'`. */
  keyBy?: KeyBy;
  /** Body fields holding the username for `keyBy: 'ip+username'`, first present wins. Default `['username', 'email']`. */
  usernameFields?: readonly string[];
  /** IPv6 clients are counted by this network prefix (32–64). Default 56. */
  ipv6Subnet?: number;
  /**
   * Limits by role for authenticated requests: a user gets the highest limit of their roles, and
   * `limit` when none is listed. Example `{ admin: 1000, provider: 300 }`. Default none.
   */
  tiers?: Readonly<Record<string, number>>;
  /**
   * Units a request uses, a number or a function of the request (an export may cost 10). Integers
   * from 0 (free: not counted) to 100. Default 1.
   */
  cost?: number | ((req: Request) => number);
  /**
   * IETF `RateLimit` header draft to send: `'draft-8'` (`RateLimit` + `RateLimit-Policy`, named
   * by `name`, so stacked limiters each report), `'draft-7'`, `'draft-6'`, or `false`. Default
   * `'draft-8'`. `Retry-After` is always sent on a 429.
   */
  headers?: 'draft-6' | 'draft-7' | 'draft-8' | false;
  /**
   * While Redis is unreachable: `'open'` counts in memory on each instance (a limit per instance
   * instead of no limit), `'closed'` answers 503 SERVICE_UNAVAILABLE. Default `'open'`, `'closed'`
   * for `keyBy: 'ip+username'` (login: guessing passwords must not get easier during an outage).
   */
  failMode?: FailMode;
  /**
   * Redis for counters shared by every instance: a URL, an ioredis client (standalone or Cluster;
   * it stays yours, `close()` leaves it open), or `false` for memory. Default `REDIS_URL`, else memory.
   */
  redis?: string | Redis | Cluster | false;
  /** Redis key prefix; the limiter's name follows it. Default `'caduceus:rl:'`. */
  prefix?: string;
  /** Requests for which this returns true are not counted. Default none. */
  skip?: (req: Request, res: Response) => boolean | Promise<boolean>;
  /** Count only failed requests (status ≥ 400), e.g. for a login limiter. Default `false`. */
  skipSuccessfulRequests?: boolean;
  /** Count only successful requests (status < 400). Default `false`. */
  skipFailedRequests?: boolean;
  /**
   * Where `rate_limit_hits_total{limiter}` (429s), `rate_limit_fallback_total{limiter}` and
   * `rate_limit_refused_total{limiter}` are reported (read at scrape time); `false`: nowhere.
   * Default: `getMetrics()`.
   */
  metrics?: Metrics | false;
  /** Where the outage and recovery lines go. Default `createLogger('rate-limit')`. */
  logger?: Logger;
  /** Settings to read defaults from. Default `loadSettings(process.env)`. */
  settings?: Settings;
}

/** Counts since start, for the metrics endpoint. */
export interface RateLimitStats {
  readonly name: string;
  /** Requests answered 429. */
  readonly limited: number;
  /** Requests counted in memory because Redis was unreachable (fail-open). */
  readonly fallback: number;
  /** Requests answered 503 because Redis was unreachable (fail-closed). */
  readonly refused: number;
  /** `'redis'` or `'memory'`. */
  readonly store: 'redis' | 'memory';
}

/** The middleware `rateLimit()` returns, with its controls. */
export interface RateLimiter extends RequestHandler {
  readonly limiterName: string;
  /** Forget a client's count (e.g. after a successful password reset). `key` as in `req.rateLimit.key`. */
  resetKey(key: string): Promise<void>;
  stats(): RateLimitStats;
  /** Stop timers and close the Redis connection the limiter opened (an application's client stays open). */
  close(): Promise<void>;
}

const KNOWN = [
  'name',
  'limit',
  'windowMs',
  'keyBy',
  'usernameFields',
  'ipv6Subnet',
  'tiers',
  'cost',
  'headers',
  'failMode',
  'redis',
  'prefix',
  'skip',
  'skipSuccessfulRequests',
  'skipFailedRequests',
  'metrics',
  'logger',
  'settings',
] as const satisfies readonly (keyof RateLimitOptions)[];

const MAX_COST = 100;

/**
 * Rate limiting on express-rate-limit's stores: Redis (rate-limit-redis) when `REDIS_URL` is set,
 * its memory store otherwise; 429 RATE_LIMITED in the error envelope with `Retry-After`; IETF `RateLimit` headers.
 *
 * ```ts
 * app.use(core.rateLimit());                                   // by IP, RATE_LIMIT_* defaults
 * app.post('/login', express.json(), core.loginRateLimit(), login);  // 5/min by IP + username
 * app.use('/api', core.authenticate(), core.rateLimit({ name: 'user', keyBy: 'user', tiers: { admin: 1000 } }));
 * ```
 */
export function rateLimit(input: Readonly<RateLimitOptions> = {}): RateLimiter {
  const options = readOptions<RateLimitOptions>('rateLimit', input, KNOWN);
  const settings = options.settings ?? loadSettings(process.env);
  const logger = options.logger ?? createLogger('rate-limit', { settings });
  const name = readName(options.name ?? 'api');
  const windowMs = positiveInteger(
    'rateLimit',
    'windowMs',
    options.windowMs ?? settings.rateLimitWindow * 1000,
  );
  const keyBy = options.keyBy ?? 'auto';
  const failMode = readFailMode(options.failMode ?? (keyBy === 'ip+username' ? 'closed' : 'open'));
  const limit = readLimit(options.limit ?? settings.rateLimitRequests, options.tiers);
  const usernameFields = readFields(options.usernameFields ?? ['username', 'email']);
  const baseKey = keyFunction(
    keyBy,
    new ClientKeys(readIpv6Subnet('rateLimit', options.ipv6Subnet)),
    usernameFields,
  );
  const cost = readCost(options.cost);
  const headers = readHeaders(options.headers ?? 'draft-8');
  const prefix = readPrefix(options.prefix ?? 'caduceus:rl:');

  const redisTarget =
    options.redis === false ? undefined : (options.redis ?? settings.externalServices.redisUrl);
  const connection: RedisConnection<RedisClient> | undefined =
    redisTarget === undefined ? undefined : connectRedis(redisTarget, 'rate-limit', logger);
  if (connection === undefined && settings.environment === 'production')
    logger.warn(
      'rate limiter counts in memory: each instance has its own budget (set REDIS_URL to share it)',
      {
        limiter: name,
      },
    );
  const store = new LimiterStore(name, connection, `${prefix}${name}:`, failMode, logger);

  const proxyJudged = new WeakSet<object>();
  let proxyCheck: ((req: Request) => void) | undefined = (req: Request) => {
    const verdict = trustProxyProblem(
      req,
      'rate limiter',
      'escape its limit',
      "shares the proxy's budget",
      proxyJudged,
    );
    if (verdict === undefined) return;
    proxyCheck = undefined;
    if (verdict !== null) logger.warn(verdict, { limiter: name });
  };

  let limited = 0;
  // The store's contract is express-rate-limit's: `init` takes its options (the window is what
  // the memory store and rate-limit-redis read).
  store.init({ windowMs } as Options);
  const limiter = countingMiddleware({
    name,
    windowMs,
    store,
    limit,
    headers,
    key: (req: Request) => {
      if (proxyCheck !== undefined) proxyCheck(req);
      if (cost === undefined) return baseKey(req);
      const units = cost(req);
      return units === 1 ? baseKey(req) : `${baseKey(req)}${COST_SEPARATOR}${String(units)}`;
    },
    skip: skipFunction(options.skip, cost),
    skipSuccessfulRequests: options.skipSuccessfulRequests === true,
    skipFailedRequests: options.skipFailedRequests === true,
    refuse(req: Request, info: RateLimitInfo, next: NextFunction) {
      limited++;
      const seconds =
        info.resetTime === undefined ? windowMs / 1000 : (info.resetTime.getTime() - Date.now()) / 1000;
      next(
        new RateLimitError(Math.max(1, seconds), 'Too many requests, please try again later', {
          details: { limiter: name },
        }),
      );
    },
  }) as RateLimiter;
  Object.defineProperty(limiter, 'limiterName', { value: name });
  limiter.resetKey = (key: string) => store.resetKey(key);
  limiter.stats = () => ({
    name,
    limited,
    fallback: store.counters.fallback,
    refused: store.counters.refused,
    store: connection === undefined ? 'memory' : 'redis',
  });
  const target = metricsFor('rateLimit', options.metrics, settings);
  const reports =
    target === undefined
      ? []
      : (
          [
            ['rate_limit_hits_total', 'Requests answered 429 by each limiter.', () => limited],
            [
              'rate_limit_fallback_total',
              'Requests counted in memory because Redis was unreachable (fail-open).',
              () => store.counters.fallback,
            ],
            [
              'rate_limit_refused_total',
              'Requests answered 503 because Redis was unreachable (fail-closed).',
              () => store.counters.refused,
            ],
          ] as const
        ).map(([family, help, read]) =>
          target.pull({ name: family, help, type: 'counter', labelNames: ['limiter'] }, (emit) => {
            emit([name], read());
          }),
        );
  limiter.close = async () => {
    for (const stop of reports) stop();
    store.shutdown();
    await connection?.close();
  };
  return limiter;
}

/**
 * The login limiter: 5 requests per minute per client address and username (`keyBy: 'ip+username'`),
 * failing closed while Redis is down. Mount it after a JSON body parser, on the login route only.
 */
export function loginRateLimit(options: Readonly<RateLimitOptions> = {}): RateLimiter {
  readOptions<RateLimitOptions>('loginRateLimit', options, KNOWN);
  return rateLimit({ name: 'login', limit: 5, windowMs: 60_000, keyBy: 'ip+username', ...options });
}

function readName(value: unknown): string {
  if (typeof value !== 'string' || !/^[A-Za-z0-9_.-]{1,64}$/.test(value))
    throw ConfigError.option('rateLimit', 'name', '1–64 characters of A–Z a–z 0–9 . _ -', value);
  return value;
}

function readPrefix(value: unknown): string {
  if (typeof value !== 'string' || value.length > 128)
    throw ConfigError.option('rateLimit', 'prefix', 'a string of up to 128 characters', value);
  return value;
}

function readFailMode(value: unknown): FailMode {
  if (value !== 'open' && value !== 'closed')
    throw ConfigError.option('rateLimit', 'failMode', "'open' or 'closed'", value);
  return value;
}

function readHeaders(value: unknown): 'draft-6' | 'draft-7' | 'draft-8' | false {
  if (value !== false && value !== 'draft-6' && value !== 'draft-7' && value !== 'draft-8')
    throw ConfigError.option('rateLimit', 'headers', "'draft-6', 'draft-7', 'draft-8' or false", value);
  return value;
}

function readFields(value: unknown): readonly string[] {
  if (!Array.isArray(value) || value.length === 0 || !value.every((f) => typeof f === 'string' && f !== ''))
    throw ConfigError.option('rateLimit', 'usernameFields', 'a non-empty array of field names', value);
  return value as string[];
}

/** `limit` and `tiers` as one value: a number, or a function of the request. */
function readLimit(
  limit: unknown,
  tiers: Readonly<Record<string, number>> | undefined,
): number | ((req: Request) => number | Promise<number>) {
  const base =
    typeof limit === 'function'
      ? (limit as (req: Request) => number)
      : positiveInteger('rateLimit', 'limit', limit);
  if (tiers === undefined) return base;
  if (typeof tiers !== 'object' || Array.isArray(tiers) || (tiers as unknown) === null)
    throw ConfigError.option('rateLimit', 'tiers', 'an object of role → limit', tiers);
  const table = new Map<string, number>();
  for (const [role, value] of Object.entries(tiers))
    table.set(role, positiveInteger('rateLimit', `tiers.${role}`, value));
  return (req: Request) => {
    let best: number | undefined;
    for (const role of req.user?.roles ?? []) {
      const tier = table.get(role);
      if (tier !== undefined && (best === undefined || tier > best)) best = tier;
    }
    return best ?? (typeof base === 'function' ? base(req) : base);
  };
}

function readCost(value: unknown): ((req: Request) => number) | undefined {
  if (value === undefined || value === 1) return undefined;
  if (typeof value === 'function') {
    const fn = value as (req: Request) => unknown;
    // Computed once per request and limiter (skip and key both need it).
    const slot = Symbol('caduceus.rateLimit.cost');
    return (req) => {
      const known = (req as Request & Record<symbol, number | undefined>)[slot];
      if (known !== undefined) return known;
      let units: unknown;
      try {
        units = fn(req);
      } catch {
        units = undefined;
      }
      // A cost function's mistake (a throw, NaN, a negative) counts one unit: it must neither
      // crash the request nor let it through uncounted. Only an explicit 0 is free.
      const cost =
        typeof units === 'number' && Number.isFinite(units) && units >= 0
          ? Math.min(MAX_COST, Math.floor(units))
          : 1;
      (req as Request & Record<symbol, number | undefined>)[slot] = cost;
      return cost;
    };
  }
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > MAX_COST)
    throw ConfigError.option('rateLimit', 'cost', `an integer from 0 to ${MAX_COST} or a function`, value);
  return () => value;
}

/** `skip`, plus requests that cost nothing. */
function skipFunction(
  skip: RateLimitOptions['skip'],
  cost: ((req: Request) => number) | undefined,
): ((req: Request, res: Response) => boolean | Promise<boolean>) | undefined {
  if (skip !== undefined && typeof skip !== 'function')
    throw ConfigError.option('rateLimit', 'skip', 'a function', skip);
  if (cost === undefined) return skip;
  return (req, res) => cost(req) === 0 || (skip?.(req, res) ?? false);
}
