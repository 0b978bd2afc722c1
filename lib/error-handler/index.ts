import type { ErrorRequestHandler, NextFunction, Request, RequestHandler, Response } from 'express';
import type { Settings } from '../config/index.js';
import { loadSettings } from '../config/index.js';
import { activeSpan, SPAN_STATUS_ERROR } from '../context/otel.js';
import type { OtelSpan } from '../context/otel.js';
import { getContext, UNMATCHED } from '../context/store.js';
import type { AppError, ErrorFormat } from '../errors/index.js';
import {
  AppError as BaseError,
  ConfigError,
  isAppError,
  isError,
  readOptions,
  renderError,
  toAppError,
} from '../errors/index.js';
import type { Logger } from '../logging/create-logger.js';
import { createLogger, redactorOf } from '../logging/create-logger.js';
import { routeOf } from '../logging/access-log.js';
import type { RedactOptions, Redactor } from '../logging/redact.js';
import { createRedactor } from '../logging/redact.js';
import type { Metrics } from '../metrics/index.js';
import { metricsFor } from '../metrics/index.js';
import { clientDetails } from './client-safe.js';

export interface ErrorsOptions {
  /**
   * Response format: the seed's `envelope`, RFC 9457 `problem`, FHIR `fhir`, or `negotiate` from
   * `Accept` (`application/problem+json`, `application/fhir+json`, else the envelope). Default `negotiate`.
   */
  format?: ErrorFormat | 'negotiate';
  /** Add the stack and internal message to responses — honoured only when NODE_ENV=development. Default `false`. */
  exposeStack?: boolean;
  /** Logger for the one line each error gets. Default `createLogger('errors')`. */
  logger?: Logger;
  /** Base URI of problem `type`s (`${base}#${code}`). Default: `about:blank`. */
  problemTypeBase?: string;
  /** Your own mapping, tried before the built-in ones; return undefined to pass. */
  mapError?: (err: unknown) => AppError | undefined;
  /** Where `http_errors_total{error_code,status_code}` is counted; `false`: nowhere. Default: `getMetrics()`. */
  metrics?: Metrics | false;
  /** Settings for defaults (environment). Default: `loadSettings(process.env)`. */
  settings?: Settings;
  /**
   * How PHI and secrets are removed from responses (message, details, field errors, request id) and
   * from span events — the logger's `RedactOptions` (`phiMode`, `phiFields`, `phiPatterns`…).
   * Default: the rules of `logger` when it comes from `createLogger()`, else the defaults (PHI mode
   * on). Without `logger`, the default logger uses these too.
   */
  redact?: RedactOptions;
}

const KNOWN = [
  'format',
  'exposeStack',
  'logger',
  'problemTypeBase',
  'mapError',
  'metrics',
  'settings',
  'redact',
] as const satisfies readonly (keyof ErrorsOptions)[];

/**
 * Record a 5xx on the active OpenTelemetry span: the error's class, the stable code (or the message
 * clients would see, through the log redactor) and the stack frames — never the message lines of
 * the stack. An internal message can quote anything; the redactor cannot know every name or MRN.
 */
function recordOnSpan(span: OtelSpan, error: unknown, appError: AppError, redactor: Redactor): void {
  const code = appError.code;
  const source = isError(error) ? error : undefined;
  // Only the frames: a message can span lines, and every line of it would follow the first.
  const frames = source?.stack
    ?.split('\n')
    .filter((line) => /^\s+at /.test(line))
    .join('\n');
  span.recordException({
    name: source?.name ?? 'Error',
    // Spans leave the process: only a message meant for clients (through the redactor), else the
    // stable code. The full message stays in the local, redacted log line.
    message: appError.expose ? redactor.redactString(appError.message) : code,
    ...(frames === undefined ? {} : { stack: frames }),
  });
  span.setStatus({ code: SPAN_STATUS_ERROR, message: code });
}
const FORMATS = new Set(['envelope', 'problem', 'fhir', 'negotiate']);
const NEGOTIABLE = ['application/json', 'application/problem+json', 'application/fhir+json'];

function negotiate(req: Request): ErrorFormat {
  const accept = req.headers.accept;
  if (accept === undefined || !accept.includes('+json')) return 'envelope';
  const best = req.accepts(NEGOTIABLE);
  return best === 'application/problem+json'
    ? 'problem'
    : best === 'application/fhir+json'
      ? 'fhir'
      : 'envelope';
}

function checkOptions(options: Readonly<ErrorsOptions>): void {
  if (options.format !== undefined && !FORMATS.has(options.format))
    throw ConfigError.option('errors', 'format', `one of ${[...FORMATS].join(', ')}`, options.format);
  if (options.mapError !== undefined && typeof options.mapError !== 'function')
    throw ConfigError.option('errors', 'mapError', 'a function', options.mapError);
  if (
    options.problemTypeBase !== undefined &&
    (typeof options.problemTypeBase !== 'string' || !URL.canParse(options.problemTypeBase))
  ) {
    throw ConfigError.option('errors', 'problemTypeBase', 'an absolute URI', options.problemTypeBase);
  }
}

/**
 * The single place an error becomes a response. Register it last: `app.use(core.notFound(), core.errors())`.
 * Logs each error once: 5xx at error with the stack, 4xx at warn without.
 */
export function errors(input: Readonly<ErrorsOptions> = {}): ErrorRequestHandler {
  if (typeof input === 'function')
    throw new ConfigError(
      'errors: call it to get the middleware — app.use(core.errors()), not app.use(core.errors)',
    );
  const options = readOptions<ErrorsOptions>('errors', input, KNOWN);
  checkOptions(options);
  const settings = options.settings ?? loadSettings(process.env);
  const exposeStack = options.exposeStack === true && settings.environment === 'development';
  const logger = options.logger ?? createLogger('errors', { settings, redact: options.redact });
  const fixedFormat =
    options.format === undefined || options.format === 'negotiate' ? undefined : options.format;
  const { mapError, problemTypeBase } = options;
  const target = metricsFor('errors', options.metrics, settings);
  const counted = target?.counter(
    'http_errors_total',
    'Errors answered by errors(), by error_code and status.',
    ['error_code', 'status_code'],
  );
  // Responses follow the logger's rules, unless `redact` is given beside a logger of your own.
  const redactor =
    options.redact !== undefined && options.logger !== undefined
      ? createRedactor(options.redact)
      : (redactorOf(logger) ?? createRedactor(options.redact));

  return function errorsMiddleware(err: unknown, req: Request, res: Response, next: NextFunction): void {
    let appError: AppError;
    try {
      appError = (mapError === undefined ? undefined : mapError(err)) ?? toAppError(err);
    } catch (mapFailure) {
      appError = new BaseError('Internal server error', {
        status: 500,
        code: 'INTERNAL_ERROR',
        cause: mapFailure,
      });
    }
    const ctx = getContext(req);
    const status = appError.status;
    const meta = { status, error_code: appError.code, method: req.method, route: routeOf(req) };
    counted?.inc({ error_code: appError.code, status_code: status });
    const span = activeSpan();
    // Our stable code, beside the instrumentation's `error.type` (it writes the status there).
    span?.setAttribute('app.error_code', appError.code);
    if (status >= 500) {
      const logged = appError === err || !isAppError(err) ? (appError.cause ?? appError) : err;
      logger.error(appError.expose ? appError.message : 'request failed', { ...meta, error: logged });
      if (span !== undefined) recordOnSpan(span, logged, appError, redactor);
    } else {
      logger.warn(appError.message, meta);
    }

    if (res.headersSent) {
      // Too late for a response of ours: let Express close the connection.
      next(err);
      return;
    }
    const format = fixedFormat ?? negotiate(req);
    const details: Record<string, unknown> = { ...appError.details };
    if (exposeStack) {
      const source = isError(appError.cause) ? appError.cause : appError;
      details.internal_message = source.message;
      details.stack = source.stack;
    }
    const message =
      appError.expose || exposeStack
        ? appError.message
        : status >= 500
          ? 'Internal server error'
          : appError.message;
    // Exposed messages and details often quote input ("No patient with email …"): the body gets
    // the log's redaction, so no PHI value is sent back, whatever the thrower put in.
    const requestId =
      ctx === undefined || ctx.requestIdGenerated ? ctx?.requestId : redactor.redactString(ctx.requestId);
    const rendered = renderError(
      format,
      {
        status,
        code: appError.code,
        message: redactor.redactString(message),
        details: clientDetails(redactor, details),
        requestId,
      },
      problemTypeBase,
    );
    if (appError.headers !== undefined) {
      for (const [name, value] of Object.entries(appError.headers)) res.setHeader(name, value);
    }
    res.setHeader('Cache-Control', 'no-store');
    res.setHeader('Content-Type', rendered.contentType);
    res.status(status).send(JSON.stringify(rendered.body));
  };
}

/** 404 NOT_FOUND for requests no route matched; register after your routes, before `errors()`. */
export function notFound(input: Readonly<Record<string, never>> = {}): RequestHandler {
  readOptions('notFound', input, []);
  return function notFoundMiddleware(req: Request, _res: Response, next: NextFunction): void {
    (req as unknown as Record<symbol, boolean>)[UNMATCHED] = true;
    next(
      new BaseError('Route not found', { status: 404, code: 'NOT_FOUND', details: { method: req.method } }),
    );
  };
}

type AsyncRequestHandler<Req, Res> = (req: Req, res: Res, next: NextFunction) => unknown;

/**
 * Wrap an async handler so its rejection reaches `errors()` on Express 4 too (Express 5 does this
 * itself; wrapping there is harmless).
 *
 * @example
 * router.get('/patients/:id', core.asyncHandler(async (req, res) => { res.json(await repo.get(req.params.id)); }));
 */
export function asyncHandler<Req extends Request = Request, Res extends Response = Response>(
  fn: AsyncRequestHandler<Req, Res>,
): (req: Req, res: Res, next: NextFunction) => void {
  if (typeof fn !== 'function') throw ConfigError.option('asyncHandler', 'fn', 'a function', fn);
  return function asyncHandlerWrapper(req: Req, res: Res, next: NextFunction): void {
    try {
      const result = fn(req, res, next);
      if (result instanceof Promise) result.catch(next);
    } catch (err) {
      next(err);
    }
  };
}
