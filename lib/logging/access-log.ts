import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { performance } from 'node:perf_hooks';
import type { LogLevel } from '../config/index.js';
import {
  ACCESS_LOG_START,
  onResponseClose,
  pinnedContext,
  routeTemplateOf,
  storage,
} from '../context/store.js';
import { ConfigError, readOptions } from '../errors/index.js';
import type { Logger, LoggerOptions } from './create-logger.js';
import { levelEnabled } from './helpers.js';
import { createLogger } from './create-logger.js';
import { lineWriterOf } from './line-writer.js';

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
  return routeTemplateOf(req);
}

/** On the response while its access line is pending: when the request started (performance.now()). */
const STARTED = Symbol('caduceus.accessLog.started');

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

  const writer = lineWriterOf(logger);
  const messageJson = JSON.stringify(message);
  const als = storage();

  // Built once: `this` is the response, so no closure is allocated per request (`once` wraps it).
  function onDone(this: Response): void {
    const res = this as unknown as Record<symbol, number | undefined> & Response;
    const req = this.req;
    // The context pinned to the request, never whatever async context 'close' happens to run in.
    const ctx = pinnedContext(req);
    // Pending on the context (or on the response, for a logging() that ran before any context);
    // the first logging() to get here takes both and writes the one line, any other finds none.
    let start = ctx?.[ACCESS_LOG_START];
    if (ctx !== undefined && start !== undefined) ctx[ACCESS_LOG_START] = undefined;
    const own = res[STARTED];
    if (own !== undefined) {
      res[STARTED] = undefined;
      start ??= own;
    }
    if (start === undefined) return;
    const durationMs = Math.round((performance.now() - start) * 1000) / 1000;
    const status = this.headersSent ? this.statusCode : 0;
    const slow = durationMs > slowMs;
    let level = levelFor(status);
    if (slow && level === 'info') level = 'warn';
    if (!levelEnabled(logger, level)) return;
    const length = this.getHeader('content-length');
    const bytes = length === undefined ? undefined : Number(length);
    const user = (req as { user?: { id?: unknown } }).user;
    const userId =
      ctx?.userId === undefined && (typeof user?.id === 'string' || typeof user?.id === 'number')
        ? String(user.id)
        : undefined;
    const route = routeOf(req);
    const ip = ctx === undefined ? req.ip : ctx.ip;
    const agent = req.headers['user-agent'];
    const aborted = !this.writableFinished;
    if (writer !== undefined) {
      let body = `,"method":${JSON.stringify(req.method)}`;
      if (route !== undefined) body += `,"route":${writer.text(route)}`;
      if (includePath) body += `,"path":${writer.text(pathOf(req.originalUrl))}`;
      body += `,"status":${status},"duration_ms":${durationMs}`;
      if (bytes !== undefined && Number.isFinite(bytes)) body += `,"bytes":${bytes}`;
      if (userId !== undefined) body += `,"user_id":${writer.text(userId)}`;
      if (ip !== undefined) body += `,"ip":${writer.text(ip)}`;
      if (agent !== undefined) body += `,"user_agent":${writer.text(agent)}`;
      if (aborted) body += ',"aborted":true';
      if (slow) body += ',"slow":true';
      writer.write(level, messageJson, ctx, body);
      return;
    }
    const fields = {
      method: req.method,
      route,
      path: includePath ? pathOf(req.originalUrl) : undefined,
      status,
      duration_ms: durationMs,
      bytes,
      user_id: userId,
      ip,
      user_agent: agent,
      aborted: aborted ? true : undefined,
      slow: slow ? true : undefined,
    };
    const log = (): void => {
      logger.log(level, message, fields);
    };
    if (ctx === undefined) log();
    else als.run(ctx, log);
  }

  return function loggingMiddleware(req: Request, res: Response, next: NextFunction): void {
    if (skip(req, res)) {
      next();
      return;
    }
    const ctx = pinnedContext(req);
    if (ctx === undefined) (res as unknown as Record<symbol, number>)[STARTED] = performance.now();
    else ctx[ACCESS_LOG_START] = ctx.startHr;
    // Every response emits 'close' once: after 'finish', or when the client goes away. The listener
    // stays (it goes with the response); `onDone` itself runs its body only once.
    onResponseClose(req, res, onDone);
    next();
  };
}
