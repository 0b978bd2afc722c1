import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type { Settings } from '../config/index.js';
import type { RequestContextOptions } from '../context/index.js';
import { requestContext } from '../context/index.js';
import { ConfigError, readOptions } from '../errors/index.js';
import type { LoggingOptions } from '../logging/index.js';
import { logging } from '../logging/index.js';
import type { Metrics, MetricsMiddlewareOptions } from '../metrics/index.js';
import { isMetrics, metrics } from '../metrics/index.js';
import type { RateLimiter, RateLimitOptions } from '../rate-limit/index.js';
import { rateLimit } from '../rate-limit/index.js';
import type { SecurityMiddleware, SecurityOptions } from '../security/index.js';
import { security } from '../security/index.js';

/**
 * Everything `defaults()` accepts: one entry per part of the chain — its factory's options, `false`
 * to leave the part out, or nothing (`undefined`, `true`) for the part with its own defaults — plus
 * two values handed to every part that takes them.
 */
export interface DefaultsOptions {
  /** `requestContext()` options (request id, `traceparent`). Default `{}`. */
  context?: Readonly<RequestContextOptions> | boolean;
  /** `metrics()` options (RED metrics per route template). Default `{}`. */
  metrics?: Readonly<MetricsMiddlewareOptions> | boolean;
  /** `logging()` options (one access line per request). Default `{}`. */
  logging?: Readonly<LoggingOptions> | boolean;
  /** `security()` options (headers, CORS, input limits, JSON bodies, threats). Default `{}`. */
  security?: Readonly<SecurityOptions> | boolean;
  /** `rateLimit()` options (100 requests a minute per client by default, Redis with `REDIS_URL`). Default `{}`. */
  rateLimit?: Readonly<RateLimitOptions> | boolean;
  /**
   * Settings for every part that reads them (metrics, the access logger, security, rate limit);
   * a part's own `settings` wins. Default: each part calls `loadSettings(process.env)`.
   */
  settings?: Settings;
  /**
   * The registry `metrics()`, `security()` and `rateLimit()` report to; a part's own `metrics`
   * option wins. Default: the process's `getMetrics()`.
   */
  registry?: Metrics;
}

/**
 * What `defaults()` returns: one middleware that runs the parts in pipeline order, with the parts
 * (`handlers`), the stateful ones and one `close()` for graceful shutdown.
 */
export interface DefaultsChain extends RequestHandler {
  /** The parts, in the order they run. */
  readonly handlers: readonly RequestHandler[];
  /** The `security()` middleware (`stats()`, `unban()`), or `undefined` when switched off. */
  readonly security: SecurityMiddleware | undefined;
  /** The `rateLimit()` middleware (`stats()`, `resetKey()`), or `undefined` when switched off. */
  readonly rateLimit: RateLimiter | undefined;
  /** Close what the parts opened (Redis connections, timers). Pass the chain to `gracefulShutdown({ resources })`. */
  close(): Promise<void>;
}

const KNOWN = [
  'context',
  'metrics',
  'logging',
  'security',
  'rateLimit',
  'settings',
  'registry',
] as const satisfies readonly (keyof DefaultsOptions)[];

type Part = 'context' | 'metrics' | 'logging' | 'security' | 'rateLimit';

/** A part's options: `undefined` when the part is off, an object (possibly empty) when on. */
function partOf<T extends object>(options: Partial<DefaultsOptions>, part: Part): Partial<T> | undefined {
  const value: unknown = options[part];
  if (value === false) return undefined;
  if (value === undefined || value === true) return {};
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw ConfigError.option('defaults', part, `${part}() options, true or false`, value);
  return value;
}

/** `part` over the shared values under the keys the part does not set itself. */
function withShared<T extends object>(part: Partial<T>, shared: Partial<T>): T {
  const out: Record<string, unknown> = { ...shared };
  for (const [key, value] of Object.entries(part)) if (value !== undefined) out[key] = value;
  return out as T;
}

/**
 * The parts as one middleware: Express then runs one layer instead of five (each layer costs a
 * few microseconds of router work per request). Errors — passed on, thrown, or a rejected
 * promise, as Express 5 handles them — leave the chain for the application's error handlers.
 */
function compose(handlers: readonly RequestHandler[]): RequestHandler {
  // A function of its own (never a shared one): the chain's properties are defined on it.
  if (handlers.length === 0)
    return function defaultsMiddleware(req: Request, res: Response, next: NextFunction): void {
      passThrough(req, res, next);
    };
  return function defaultsMiddleware(req: Request, res: Response, next: NextFunction): void {
    let i = 0;
    const step = (err?: unknown): void => {
      if (err !== undefined && err !== null && err !== false) {
        next(err);
        return;
      }
      const handler = handlers[i++];
      if (handler === undefined) {
        next();
        return;
      }
      try {
        const result: unknown = handler(req, res, step);
        if (result instanceof Promise)
          result.catch((e: unknown) => {
            step(e ?? new Error('Rejected promise'));
          });
      } catch (e) {
        step(e);
      }
    };
    step();
  };
}

function passThrough(_req: Request, _res: Response, next: NextFunction): void {
  next();
}

/**
 * The recommended front of the pipeline in one call: `requestContext()`, `metrics()`,
 * `logging()`, `security()` and `rateLimit()`, in that order — the context first so everything
 * below reads the request id, metrics next so refused requests (403, 413, 429) are counted, the
 * access log before the guards so their refusals are logged. Mount it before your routes and keep
 * `notFound()` and `errors()` last. Options are checked here, at start-up: an unknown part or a
 * bad option of a part throws a `ConfigError` naming it.
 *
 * @example
 * app.use(core.health({ database: db }));          // probes: before the chain, never rate-limited
 * app.get('/metrics', core.metricsEndpoint());      // scrapes: likewise
 * app.use(core.defaults());
 * app.use('/api', core.authenticate(), routes);
 * app.use(core.notFound(), core.errors());
 *
 * @example
 * app.use(core.defaults({ rateLimit: { limit: 300 }, security: { cors: false }, logging: false }));
 */
export function defaults(input: Readonly<DefaultsOptions> = {}): DefaultsChain {
  const options = readOptions<DefaultsOptions>('defaults', input, KNOWN);
  const { settings, registry } = options;
  if (registry !== undefined && !isMetrics(registry))
    throw ConfigError.option('defaults', 'registry', 'a Metrics from core.createMetrics()', registry);
  if (settings !== undefined && (typeof settings !== 'object' || (settings as unknown) === null))
    throw ConfigError.option('defaults', 'settings', 'Settings from core.loadSettings()', settings);
  // Every part is read before any is built: a mistake anywhere throws before Redis is opened.
  const parts = {
    context: partOf<RequestContextOptions>(options, 'context'),
    metrics: partOf<MetricsMiddlewareOptions>(options, 'metrics'),
    logging: partOf<LoggingOptions>(options, 'logging'),
    security: partOf<SecurityOptions>(options, 'security'),
    rateLimit: partOf<RateLimitOptions>(options, 'rateLimit'),
  };

  const handlers: RequestHandler[] = [];
  const closers: (() => Promise<void>)[] = [];
  let securityPart: SecurityMiddleware | undefined;
  let limiter: RateLimiter | undefined;
  try {
    if (parts.context !== undefined) handlers.push(requestContext(parts.context));
    if (parts.metrics !== undefined)
      handlers.push(
        metrics(withShared<MetricsMiddlewareOptions>(parts.metrics, { settings, metrics: registry })),
      );
    if (parts.logging !== undefined) handlers.push(logging(loggingOptions(parts.logging, settings)));
    if (parts.security !== undefined) {
      securityPart = security(withShared<SecurityOptions>(parts.security, { settings, metrics: registry }));
      const part = securityPart;
      closers.push(() => part.close());
      handlers.push(part);
    }
    if (parts.rateLimit !== undefined) {
      limiter = rateLimit(withShared<RateLimitOptions>(parts.rateLimit, { settings, metrics: registry }));
      const part = limiter;
      closers.push(() => part.close());
      handlers.push(part);
    }
  } catch (err) {
    // A later part refused its options: release what the earlier ones opened.
    for (const close of closers) void close().catch(() => undefined);
    throw err;
  }
  const chain = compose(handlers) as DefaultsChain;
  Object.defineProperties(chain, {
    handlers: { value: Object.freeze([...handlers]), enumerable: false },
    security: { value: securityPart, enumerable: false },
    rateLimit: { value: limiter, enumerable: false },
    close: {
      value: async () => {
        await Promise.all(closers.map((close) => close()));
      },
      enumerable: false,
    },
  });
  return chain;
}

/** `logging()` options, its default logger reading the shared settings unless told otherwise. */
function loggingOptions(part: Partial<LoggingOptions>, settings: Settings | undefined): LoggingOptions {
  if (settings === undefined || part.logger !== undefined) return part;
  const loggerOptions: unknown = part.loggerOptions ?? {};
  if (typeof loggerOptions !== 'object' || loggerOptions === null) return part; // logging() names it
  return { ...part, loggerOptions: { settings, ...loggerOptions } };
}
