import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { performance } from 'node:perf_hooks';
import type { LogLevel } from '../config/index.js';
import { CONTEXT_KEY } from '../context/store.js';
import type { RequestContext } from '../context/store.js';
import { ConfigError, readOptions } from '../errors/index.js';
import type { Logger, LoggerOptions } from './create-logger.js';
import { createLogger } from './create-logger.js';

export interface LoggingOptions {
  /** Logger for access lines. Default: `createLogger('http', loggerOptions)`. */
  logger?: Logger;
  /** Options for the default logger (ignored when `logger` is given). */
  loggerOptions?: LoggerOptions;
  /** Paths (exact, or RegExp) or a predicate for requests not logged. Default: health and metrics endpoints. */
  skip?: readonly (string | RegExp)[] | ((req: Request, res: Response) => boolean);
  /** Requests slower than this are logged at warn with `slow: true`. Default 1000 ms. */
  slowMs?: number;
  /** Level for a finished request. Default: 5xx error, 4xx warn, else info. */
  levelFor?: (status: number) => LogLevel;
  /** Also log the raw path (query string removed). Default `false`: paths can carry identifiers, the route template cannot. */
  includePath?: boolean;
  /** Message of access lines. Default `request completed`. */
  message?: string;
}

const DEFAULT_SKIP = [
  '/health',
  '/healthz',
  '/livez',
  '/readyz',
  '/health/live',
  '/health/ready',
  '/metrics',
];
const KNOWN = ['logger', 'loggerOptions', 'skip', 'slowMs', 'levelFor', 'includePath', 'message'] as const;

const defaultLevel = (status: number): LogLevel =>
  status >= 500 ? 'error' : status >= 400 ? 'warn' : 'info';

function pathOf(url: string): string {
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

type SkipFn = (req: Request, res: Response) => boolean;

function compileSkip(skip: LoggingOptions['skip']): SkipFn {
  if (typeof skip === 'function') return skip;
  const list = skip ?? DEFAULT_SKIP;
  if (!Array.isArray(list) || list.some((s) => typeof s !== 'string' && !(s instanceof RegExp))) {
    throw ConfigError.option('logging', 'skip', 'an array of paths or RegExps, or a function', skip);
  }
  const exact = new Set(list.filter((s): s is string => typeof s === 'string'));
  const patterns = list.filter((s): s is RegExp => s instanceof RegExp);
  return (req) => {
    const path = pathOf(req.originalUrl);
    return exact.has(path) || patterns.some((p) => p.test(path));
  };
}

/**
 * The matched route template (`/api/patients/:id`), never the raw URL: as recorded by
 * `requestContext()` at match time, else (without it) from `baseUrl` + the route's path.
 */
export function routeOf(req: Request): string | undefined {
  const recorded = (req as unknown as Record<symbol, RequestContext | undefined>)[CONTEXT_KEY]?.route;
  if (recorded !== undefined) return recorded;
  const route = (req as { route?: { path?: unknown } }).route;
  if (route === undefined) return undefined;
  return `${req.baseUrl}${String(route.path)}`;
}

interface Pending {
  req: Request;
  ctx: RequestContext | undefined;
  start: number;
}
const PENDING = Symbol('caduceus.accessLog');

/**
 * One access-log line per request when the response finishes (or the client goes away): method,
 * route template, status, duration_ms, bytes, request_id, user_id, ip, user agent.
 *
 * @example
 * app.use(core.requestContext(), core.logging({ loggerOptions: { file: 'logs/access.log' } }));
 */
export function logging(input: Readonly<LoggingOptions> = {}): RequestHandler {
  const options = readOptions<LoggingOptions>('logging', input, KNOWN);
  const slowMs = options.slowMs ?? 1000;
  if (typeof slowMs !== 'number' || !(slowMs > 0))
    throw ConfigError.option('logging', 'slowMs', 'a positive number (milliseconds)', slowMs);
  if (options.levelFor !== undefined && typeof options.levelFor !== 'function')
    throw ConfigError.option('logging', 'levelFor', 'a function', options.levelFor);
  const logger = options.logger ?? createLogger('http', options.loggerOptions);
  const skip = compileSkip(options.skip);
  const levelFor = options.levelFor ?? defaultLevel;
  const includePath = options.includePath ?? false;
  const message = options.message ?? 'request completed';

  // Built once: `this` is the response, so no closure is allocated per request (`once` wraps it).
  function onDone(this: Response): void {
    const pending = (this as unknown as Record<symbol, Pending | undefined>)[PENDING];
    if (pending === undefined) return;
    (this as unknown as Record<symbol, Pending | undefined>)[PENDING] = undefined;
    const { req, ctx } = pending;
    const durationMs = Math.round((performance.now() - pending.start) * 1000) / 1000;
    const status = this.headersSent ? this.statusCode : 0;
    const slow = durationMs > slowMs;
    let level = levelFor(status);
    if (slow && level === 'info') level = 'warn';
    if (!logger.isLevelEnabled(level)) return;
    const length = this.getHeader('content-length');
    const user = (req as { user?: { id?: unknown } }).user;
    logger.log(level, message, {
      method: req.method,
      route: routeOf(req),
      path: includePath ? pathOf(req.originalUrl) : undefined,
      status,
      duration_ms: durationMs,
      bytes: length === undefined ? undefined : Number(length),
      request_id: ctx?.requestId,
      trace_id: ctx?.traceId,
      user_id:
        ctx?.userId ??
        (typeof user?.id === 'string' || typeof user?.id === 'number' ? String(user.id) : undefined),
      ip: ctx === undefined ? req.ip : ctx.ip,
      user_agent: req.headers['user-agent'],
      aborted: this.writableFinished ? undefined : true,
      slow: slow ? true : undefined,
    });
  }

  return function loggingMiddleware(req: Request, res: Response, next: NextFunction): void {
    if (skip(req, res)) {
      next();
      return;
    }
    const ctx = (req as unknown as Record<symbol, RequestContext | undefined>)[CONTEXT_KEY];
    const pending: Pending = { req, ctx, start: ctx === undefined ? performance.now() : ctx.startHr };
    (res as unknown as Record<symbol, Pending>)[PENDING] = pending;
    // Every response emits 'close' once: after 'finish', or when the client goes away.
    res.once('close', onDone);
    next();
  };
}
